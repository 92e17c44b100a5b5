//! The crate's error types. Every variant says what went wrong and what to fix.

use thiserror::Error;

pub use crate::serde::SerdeError;
pub use streams_state::StateError;

/// Errors from building a topology: caught before any record is processed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopologyError {
    /// An operator needs a serde that was neither given nor inherited.
    #[error(
        "{operator}: no {which} serde for `{type_name}`; pass one in its options (e.g. Grouped::with / Materialized::with / Produced::with) or derive StreamsSerde for the type"
    )]
    MissingSerde {
        /// The operator (node name) that needs it.
        operator: String,
        /// "key" or "value".
        which: &'static str,
        /// The Rust type that has no serde.
        type_name: &'static str,
    },
    /// Two nodes or two stores share a name.
    #[error(
        "the name `{0}` is used twice in this topology; names of processors, sources, sinks and stores must be unique"
    )]
    DuplicateName(String),
    /// A node refers to a parent, child or store that does not exist.
    #[error("`{node}` refers to unknown {what} `{name}`")]
    UnknownName {
        /// The node that refers to it.
        node: String,
        /// "parent", "child" or "store".
        what: &'static str,
        /// The missing name.
        name: String,
    },
    /// A topic is read by two source nodes.
    #[error(
        "topic `{0}` is already read by another source; read it once and branch the stream instead"
    )]
    TopicReadTwice(String),
    /// The topology has no source.
    #[error("the topology has no source: add one with StreamsBuilder::stream or table")]
    NoSource,
    /// The topics of a join have different partition counts, so equal keys would not meet
    /// in one task.
    #[error(
        "`{operator}` joins topics that are not co-partitioned: {topics}; give them the same \
         partition count (or repartition one side with `repartition_with`)"
    )]
    NotCopartitioned {
        /// The joining operator.
        operator: String,
        /// The topics and their partition counts.
        topics: String,
    },
    /// An option has a value that cannot work.
    #[error("invalid option for `{operator}`: {detail}")]
    InvalidOption {
        /// The operator.
        operator: String,
        /// What is wrong with it.
        detail: String,
    },
}

/// Errors raised while processing records (in the test driver or the runtime).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StreamsError {
    /// The topology is invalid.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// A record's key or value could not be deserialized and the handler says fail.
    #[error(
        "cannot deserialize the {which} of the record at {topic}-{partition}@{offset}: {source} (to skip such records set `deserialization.exception.handler=log_and_continue`, or `errors.dead.letter.queue.topic.name` to keep them in a dead-letter topic)"
    )]
    Deserialization {
        /// "key" or "value".
        which: &'static str,
        /// The record's topic.
        topic: String,
        /// The record's partition.
        partition: u32,
        /// The record's offset.
        offset: i64,
        /// What the serde said.
        #[source]
        source: SerdeError,
    },
    /// A record could not be serialized for a sink, repartition topic or store.
    #[error("cannot serialize the {which} of a record for `{target}`: {source}")]
    Serialization {
        /// "key" or "value".
        which: &'static str,
        /// The topic or store it was written to.
        target: String,
        /// What the serde said.
        #[source]
        source: SerdeError,
    },
    /// A record's timestamp is invalid (negative) and the policy says fail.
    #[error(
        "invalid timestamp {timestamp} for the record at {topic}-{partition}@{offset}; the extractor returned a negative time (choose another InvalidTimestampPolicy to skip such records or use the partition time)"
    )]
    InvalidTimestamp {
        /// The extracted timestamp.
        timestamp: i64,
        /// The record's topic.
        topic: String,
        /// The record's partition.
        partition: u32,
        /// The record's offset.
        offset: i64,
    },
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A processor asked for a store that is not connected to it, or with the wrong types.
    #[error("store `{store}`: {detail}")]
    StoreAccess {
        /// The store name.
        store: String,
        /// What is wrong.
        detail: String,
    },
    /// A processor forwarded to a child that does not exist.
    #[error("processor `{node}` has no child named `{child}`")]
    UnknownChild {
        /// The forwarding processor.
        node: String,
        /// The requested child.
        child: String,
    },
    /// A user's processor failed.
    #[error("processor `{node}` failed: {message}")]
    Processor {
        /// The processor's name.
        node: String,
        /// What it said.
        message: String,
    },
    /// A topic given to the test driver or runtime is unknown or misconfigured.
    #[error("topic `{topic}`: {detail}")]
    Topic {
        /// The topic.
        topic: String,
        /// What is wrong.
        detail: String,
    },
    /// A client (consumer, producer, admin) failed.
    #[error(transparent)]
    Client(#[from] crate::client::error::ClientError),
    /// A stream thread failed and the application stopped; `cause` is that thread's error
    /// (a record that does not deserialize under the `fail` handler, a broker refusing
    /// writes...), the same text the thread logged.
    #[error("the app stopped: {cause}")]
    Stopped {
        /// The failed thread's error.
        cause: String,
    },
    /// An operation of the runtime did not complete in time (`wait_until_caught_up`, a
    /// close whose threads did not stop).
    #[error("{operation} did not complete within {after:?}{}", detail_suffix(.detail))]
    Timeout {
        /// What was waited for.
        operation: String,
        /// How long.
        after: std::time::Duration,
        /// What is known about why (may be empty).
        detail: String,
    },
    /// The operating system refused something the runtime needs: a thread, a signal
    /// handler.
    #[error("{what}: {source}")]
    System {
        /// What was attempted.
        what: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Code on a stream thread panicked (a processor, a closure given to the DSL, a
    /// serde): the thread closed its tasks dirty (their stores are restored from the
    /// changelogs by whoever owns them next) and left the group, and the uncaught-error
    /// handler decided what follows (by default the app stops with this error).
    #[error("stream thread `{thread}` panicked: {message}")]
    Panicked {
        /// The thread's name.
        thread: String,
        /// The panic's message (where Rust's panic hook printed it too, with its place).
        message: String,
    },
    /// A bug in the framework: please report it.
    #[error("internal error (a bug in the framework, please report it): {0}")]
    Internal(String),
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

impl StreamsError {
    /// Whether the same operation may succeed later without a change by anyone: a broker
    /// that did not answer in time, an operation that timed out, a full disk once space is
    /// freed. The runtime retries these itself for a while before it reports them.
    ///
    /// ```
    /// use streams_core::error::{StateError, StreamsError};
    /// let full = StreamsError::State(StateError::DiskFull {
    ///     path: "/data/log".into(),
    ///     action: "appending a batch",
    ///     available_bytes: Some(0),
    /// });
    /// assert!(full.is_retriable() && !full.is_fatal());
    /// assert!(StreamsError::Internal("x".into()).is_fatal());
    /// ```
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Client(e) => e.is_retriable(),
            Self::State(e) => e.is_retriable(),
            Self::Timeout { .. } => true,
            _ => false,
        }
    }

    /// Whether the app cannot go on until someone changes something: the configuration or
    /// topology is invalid, data is damaged, a client is unusable, or a bug in the
    /// framework. Neither retriable nor fatal: errors about one record or one request
    /// (deserialization, a processor's own failure), which the handlers decide on.
    pub fn is_fatal(&self) -> bool {
        match self {
            Self::Client(e) => e.is_fatal(),
            Self::State(e) => e.is_fatal(),
            Self::Topology(_) | Self::Config(_) | Self::Internal(_) => true,
            _ => false,
        }
    }

    /// A processor failure with a message, for use in [`crate::processor::Processor`] code.
    pub fn processor(node: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Self::Processor {
            node: node.into(),
            message: message.to_string(),
        }
    }
}

/// Results of processing.
pub type Result<T, E = StreamsError> = std::result::Result<T, E>;
