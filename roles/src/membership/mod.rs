//! Cluster membership: the cluster's root key, kept in a master's repo, and the members'
//! certificates it signs (`cluster init`, `cluster root export|import`), and the invites a
//! master issues (`cluster invite`, `cluster invites`).

pub mod admit;
pub mod invites;
pub mod join;
pub mod root;
