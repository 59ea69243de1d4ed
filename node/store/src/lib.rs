//! The node's storage layer: the repo (lock, config, identity) and its block store (packs,
//! storage tiers, pins, garbage collection), and Kubo-identical UnixFS import and export with
//! CAR v1.
//!
//! A [`repo::Repo`] is the entry point: it owns the lock, the config, the node identity and
//! the stores. The pieces below it work on the [`store::BlockStore`] trait, so each can be
//! tested against a [`store::MemoryStore`].

pub mod config;
pub mod repo;
pub mod store;
pub mod unixfs;
