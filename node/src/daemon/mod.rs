//! The node's parts below the role, started in two halves so that whoever knows the role
//! builds everything in order (repo -> [`Node`] -> the role's parts -> [`Servers`]) and stops
//! it in reverse: the API and the gateway first, the host and the store last.

mod host;
mod options;
mod servers;

pub use host::Node;
pub use options::{api_multiaddr, cap_malloc_arenas, Error, Options, MIN_TOKEN_LEN};
pub use servers::Servers;
