//! The inference runtime model benchmarks run on: ONNX models read from bytes (straight from
//! the block store) with [tract](https://github.com/sonos/tract), pure Rust, nothing
//! downloaded at build time.
//!
//! - [`describe`] reads what a model takes and gives (names, element types, shapes with their
//!   open axes), its parameter count and its operators, or refuses it with the runtime's
//!   reason;
//! - [`Loaded`] is a model made runnable for one batch size (and sizes for its other open
//!   axes), with [`Loaded::inputs`] deterministic inputs of the declared types and
//!   [`Loaded::run`] one inference;
//! - [`fixtures`] writes real ONNX models in Rust for the tests, the benchmarks and the demo.
//!
//! This crate depends on nothing of the project, so editing the project never rebuilds
//! tract.

pub mod fixtures;
mod model;

pub use model::{describe, Description, Dim, Error, Loaded, Port, RUNTIME, VERSION};
