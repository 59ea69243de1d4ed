//! Wire forms with no dependency on the rest of the node: dag-pb nodes and UnixFS's Data
//! message (protobuf), and unsigned varints.

pub mod pb;
pub mod varint;
