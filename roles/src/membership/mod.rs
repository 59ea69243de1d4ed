//! Cluster membership: the cluster's root key, kept in a master's repo, and the members'
//! certificates it signs (`cluster init`, `cluster root export|import`), and the invites a
//! master issues (`cluster invite`, `cluster invites`); the members each node knows, and the
//! keeper that fills that table (certificates exchanged per connection, records in the
//! replicated state, revocations, renewal).

pub mod admit;
pub mod invites;
pub mod join;
pub mod keeper;
pub mod members;
pub mod root;
