//! State stores for the streams framework.
//!
//! This crate owns everything the framework keeps on behalf of a task: byte-level store
//! traits ([`KeyValueStore`]) and their engines ([`InMemoryKeyValueStore`]). Stores work on
//! raw bytes (keys compare in lexicographic byte order, like RocksDB); typed views with serdes
//! live in `streams-core`, which depends on this crate. This crate must never depend on a
//! Kafka client: changelog writes go through a trait that the runtime implements.
//!
//! Layering: `streams-state` depends on nothing of ours. See docs/ARCHITECTURE.md.

mod error;
mod kv;
mod memory;

pub use error::StateError;
pub use kv::{KeyValueBytesStoreSupplier, KeyValueIter, KeyValueStore, StateStore};
pub use memory::{InMemoryKeyValueStore, InMemoryKeyValueStoreSupplier};

/// A key and a value as raw bytes, as returned by range scans.
pub type KeyValueBytes = (Vec<u8>, Vec<u8>);
