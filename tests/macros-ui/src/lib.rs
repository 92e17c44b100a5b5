//! The parts of `streams-core` that the derive macros expand to, compiled from
//! streams-core's own source files (not copies), without the state stores: trybuild's
//! compile-fail cases build against this crate in seconds instead of rebuilding RocksDB.

#[path = "../../../streams-core/src/record.rs"]
pub mod record;
#[path = "../../../streams-core/src/serde.rs"]
pub mod serde;
#[path = "../../../streams-core/src/time.rs"]
pub mod time;

pub use streams_macros::{EventTime, StreamsSerde};
