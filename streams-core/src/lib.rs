//! A stream-processing framework for Rust, with the semantics of Kafka Streams.
//!
//! Write a topology with the typed DSL ([`dsl::StreamsBuilder`], [`dsl::KStream`],
//! [`dsl::KTable`]) or by hand with the [`processor`] API, then run it:
//! deterministically with no broker in the [`testing::TopologyTestDriver`], or for real with
//! the runtime. One task runs per (sub-topology, partition), exactly as Kafka Streams does.
//!
//! Reading order: [`serde`] (how keys and values become bytes), [`record`], [`dsl`],
//! [`processor`], [`topology`], [`state`], [`testing`]. Everyday types are in [`prelude`].
//!
//! ```
//! use streams_core::prelude::*;
//!
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream::<String, String>("words")
//!     .group_by(|_, word| word.clone())
//!     .count()
//!     .to_stream()
//!     .to("word-counts");
//!
//! let mut driver =
//!     TopologyTestDriver::builder(builder.build().unwrap(), StreamsConfig::new("wc"))
//!         .partitions("words", 4)
//!         .build()
//!         .unwrap();
//! let words = driver.input_topic::<String, String>("words");
//! for w in ["a", "b", "a"] {
//!     words.pipe_input(w.to_string(), w.to_string()).unwrap();
//! }
//! let counts = driver
//!     .output_topic::<String, Option<i64>>("word-counts")
//!     .read_key_values_to_map()
//!     .unwrap();
//! assert_eq!(counts["a"], Some(2));
//! ```
//!
//! Layering (see docs/ARCHITECTURE.md): `dsl` and `processor` build a [`topology::Topology`];
//! the private `internals` turn it into tasks of typed nodes; `state` wraps the byte-level
//! stores of `streams-state`. Feature `test-util` (on by default) provides the test driver.

pub mod client;
pub mod config;
pub mod dsl;
pub mod error;
pub(crate) mod internals;
pub mod metrics;
pub mod metrics_export;
pub mod partitioner;
pub mod processor;
pub(crate) mod punctuation;
pub mod query;
pub mod record;
pub mod runtime;
pub mod serde;
pub(crate) mod snapshot;
pub mod state;
pub(crate) mod sync;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod time;
pub mod topology;
pub mod window;

pub use streams_macros::{EventTime, StreamsSerde};

/// What a key or value type must be to flow through a topology: cloneable (a record fanned
/// out to several children is cloned), sendable between threads, and owned.
pub trait Data: Clone + Send + 'static {}

impl<T: Clone + Send + 'static> Data for T {}

/// The types most apps need, in one import.
pub mod prelude {
    pub use crate::Data;
    pub use crate::config::{DeserializationHandler, StreamsConfig};
    pub use crate::dsl::{
        Branched, CogroupedKStream, Consumed, GlobalKTable, Grouped, Joined, KGroupedStream,
        KGroupedTable, KStream, KTable, Materialized, Named, Produced, Repartitioned, StreamJoined,
        StreamsBuilder,
    };
    pub use crate::error::{StreamsError, TopologyError};
    pub use crate::processor::{
        Processor, ProcessorContext, Punctuation, PunctuationType, ScheduleId,
    };
    pub use crate::record::{Headers, Record};
    pub use crate::serde::{DefaultSerde, Serde, SerdeRef, default_serde};
    pub use crate::state::{
        KeyValueStoreHandle, ReadOnlyKeyValueStore, ReadOnlySessionStore, ReadOnlyWindowStore,
        SessionStoreHandle, StoreBuilder, Stores, WindowStoreHandle,
    };
    #[cfg(feature = "test-util")]
    pub use crate::testing::{TestInputTopic, TestOutputTopic, TopologyTestDriver};
    pub use crate::time::{EventTime, EventTimeExtractor, InvalidTimestampPolicy};
    pub use crate::topology::Topology;
    pub use crate::window::{JoinWindows, Window, Windowed};
    pub use streams_macros::{EventTime, StreamsSerde};
}
