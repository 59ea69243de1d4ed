//! Wire forms with no dependency on the rest of the node: dag-pb nodes and UnixFS's Data
//! message (protobuf), unsigned varints, and blocks as the IPLD data model (ipld).

pub mod ipld;
pub mod pb;
pub mod varint;
