//! Wire forms shared by every layer: dag-pb nodes and UnixFS's Data message (protobuf),
//! unsigned varints, DAG-CBOR (the subset the replicated state's blocks use), and blocks as
//! the IPLD data model (ipld).

pub mod cbor;
pub mod ipld;
pub mod pb;
pub mod varint;

#[cfg(test)]
mod testing;
