//! Cluster membership on the wire: the cluster's root key (Ed25519) signs a [`Certificate`]
//! for each member (its peer id, what it may do, its tags, when it was issued and when it
//! expires), and an [`Invite`] token carries what a new node needs to ask for one.
//!
//! A [`Revocation`], signed by the same root, removes a member. All are postcard encodings with a version byte, bounded in size and checked whole when
//! decoded: a certificate that does not verify under the root, names another cluster or has
//! expired is an [`Error`], never a member.

mod admission;
mod cert;
mod error;
mod invite;
mod revocation;

pub use admission::{
    JoinRequest, JoinResponse, JOIN_PROTOCOL, MAX_JOIN_REQUEST, MAX_JOIN_RESPONSE, MEMBER_PROTOCOL,
};
pub use cert::{Certificate, Grant, SignedCertificate, MAX_CERT_BYTES};
pub use error::Error;
pub use invite::{Invite, InviteId, INVITE_PREFIX, MAX_INVITE_ADDRS, MAX_INVITE_BYTES};
pub use revocation::{Revocation, SignedRevocation, MAX_REASON, MAX_REVOCATION_BYTES};
