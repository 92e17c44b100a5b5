//! The log engine's typed refusals ([`LogError`]), wrapped by [`crate::StateError::Log`].

use thiserror::Error;

/// Why the log engine refused a request (as opposed to an I/O failure or damage, which are
/// [`StateError::Io`](crate::StateError::Io) and [`StateError::Corrupt`](crate::StateError::Corrupt)).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum LogError {
    /// A topic name outside Kafka's rules.
    #[error("invalid topic name `{0}`: use 1-249 ASCII letters, digits, '.', '_' or '-'")]
    InvalidTopicName(String),
    /// A group id outside the same rules.
    #[error("invalid group id `{0}`")]
    InvalidGroupId(String),
    /// Topic settings that cannot work.
    #[error("topic `{topic}`: {detail}")]
    InvalidTopicConfig {
        /// The topic.
        topic: String,
        /// What is wrong.
        detail: String,
    },
    /// The topic exists already.
    #[error("topic `{0}` already exists")]
    TopicExists(String),
    /// The topic does not exist.
    #[error("topic `{0}` does not exist")]
    UnknownTopic(String),
    /// The partition does not exist.
    #[error("topic `{topic}` has {partitions} partitions, there is no partition {partition}")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many the topic has.
        partitions: u32,
    },
    /// A compacted topic takes only keyed records.
    #[error("topic `{0}` is compacted and cannot take a record without a key")]
    KeyRequired(String),
    /// A topic directory holds data but its metadata is missing or damaged: creating the
    /// topic again would adopt the data.
    #[error(
        "topic `{topic}` cannot be created: its directory {dir} holds data but {why}; repair \
         topic.meta or remove the directory (the data would be adopted otherwise)"
    )]
    DamagedTopic {
        /// The topic.
        topic: String,
        /// Its directory.
        dir: String,
        /// What is wrong with its metadata.
        why: String,
    },
    /// A producer registered the transactional id again since this one did: its appends,
    /// offsets and commits are refused (Kafka's `ProducerFencedException`).
    #[error(
        "producer {producer} (epoch {epoch}) of transactional id `{transactional_id}` is fenced: \
         the id was registered again (now producer {current}, epoch {current_epoch})"
    )]
    ProducerFenced {
        /// The transactional id.
        transactional_id: String,
        /// The fenced producer's id.
        producer: i64,
        /// Its epoch.
        epoch: i16,
        /// The current producer id of the transactional id.
        current: i64,
        /// The current epoch.
        current_epoch: i16,
    },
    /// A segment is damaged somewhere other than the torn tail of the active segment:
    /// nothing was cut; the operator decides (`streams verify`, `streams repair`).
    #[error(
        "segment {file} is damaged at bytes {from}..{to} (records from offset {offset} on); \
         nothing was removed: run `streams verify` to list the damage and `streams repair` to \
         keep every intact batch (the damaged file is copied aside first)"
    )]
    DamagedSegment {
        /// The segment file.
        file: String,
        /// The first damaged byte.
        from: u64,
        /// Where the next intact batch starts (or the file's end).
        to: u64,
        /// The first offset the damage may hold.
        offset: i64,
    },
    /// A transactional operation before the transactional id was registered.
    #[error("transactional id `{0}` is not registered (call init_transactions first)")]
    UnknownTransactionalId(String),
    /// The engine's transaction state file cannot be read.
    #[error("the transaction state {path} is damaged: {detail}")]
    DamagedTransactionState {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
}
