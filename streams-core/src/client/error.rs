//! The clients' errors: a leaf, so that the framework's error type can wrap them without
//! depending on the clients.

use std::time::Duration;

use super::partition::TopicPartition;

/// Failures of the clients. [`is_retriable`](Self::is_retriable) and
/// [`is_fatal`](Self::is_fatal) classify them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The topic does not exist.
    #[error("topic `{0}` does not exist")]
    UnknownTopic(String),
    /// The topic exists already.
    #[error("topic `{0}` exists already")]
    TopicExists(String),
    /// The partition is not assigned to this consumer.
    #[error("partition {0} is not assigned to this consumer")]
    NotAssigned(TopicPartition),
    /// An operation did not complete in time (an unreachable broker, for example).
    #[error("{operation} did not complete within {after:?}: {detail}")]
    Timeout {
        /// What was attempted.
        operation: String,
        /// How long it was given.
        after: Duration,
        /// What is known about why.
        detail: String,
    },
    /// The broker or the client library refused an operation.
    #[error("{operation} failed: {detail}")]
    Broker {
        /// What was attempted.
        operation: String,
        /// What the broker or library said.
        detail: String,
    },
    /// Records could not be delivered (after the producer's own retries). The runtime
    /// hands this to the configured production handler.
    #[error("{failed} record(s) could not be delivered: {detail}")]
    Delivery {
        /// How many records failed since the last report.
        failed: u64,
        /// The first failures: topic-partition and cause.
        detail: String,
    },
    /// The embedded engine failed (I/O, a damaged log).
    #[error(transparent)]
    Engine(#[from] streams_state::StateError),
    /// The client cannot be used any more: the broker or the client library reported a
    /// fatal error (for a producer: fenced, or an idempotence sequence broken).
    #[error("{operation} failed for good: {detail}")]
    Fatal {
        /// What was attempted.
        operation: String,
        /// What the broker or library said.
        detail: String,
    },
    /// The client was closed.
    #[error("the client is closed")]
    Closed,
    /// A transactional producer was fenced: another producer registered the same
    /// transactional id with a newer epoch, or the consumer group moved on to a newer
    /// generation than the one the offsets were sent with (a zombie). Kafka Streams'
    /// `TaskMigratedException`: the thread closes its tasks dirty, makes a new producer
    /// and rejoins the group.
    #[error("{operation}: the producer was fenced: {detail}")]
    ProducerFenced {
        /// What was attempted.
        operation: String,
        /// What the broker or library said.
        detail: String,
    },
    /// The current transaction failed and must be aborted (an abortable error in
    /// librdkafka's terms); the producer stays usable. The thread aborts, closes its tasks
    /// dirty and revives them from their changelogs.
    #[error("{operation}: the transaction must be aborted: {detail}")]
    TransactionAborted {
        /// What was attempted.
        operation: String,
        /// What the broker or library said.
        detail: String,
    },
}

impl ClientError {
    /// Whether the same operation may succeed if tried again later: the broker did not
    /// answer in time (unreachable, a coordinator or leader moving, overloaded), or the
    /// embedded engine's disk is full ([`StateError::DiskFull`](streams_state::StateError::DiskFull)). Refusals
    /// ([`Broker`](Self::Broker)), unknown topics and fatal errors are not retriable.
    ///
    /// ```
    /// use std::time::Duration;
    /// use streams_core::client::ClientError;
    /// let e = ClientError::Timeout { operation: "poll".into(), after: Duration::from_secs(1), detail: String::new() };
    /// assert!(e.is_retriable() && !e.is_fatal());
    /// assert!(ClientError::Closed.is_fatal());
    /// ```
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Timeout { .. } => true,
            Self::Engine(e) => e.is_retriable(),
            _ => false,
        }
    }

    /// Whether the client that reported it can no longer be used (it is closed, or the
    /// broker reported a fatal error): the caller must close it and make a new one. On the
    /// embedded engine also damaged data that an operator must repair
    /// ([`StateError::is_fatal`](streams_state::StateError::is_fatal)).
    pub fn is_fatal(&self) -> bool {
        match self {
            Self::Fatal { .. } | Self::Closed => true,
            Self::Engine(e) => e.is_fatal(),
            _ => false,
        }
    }

    /// Whether the error means this thread's tasks may have moved to another member, or its
    /// transaction can no longer commit: Kafka Streams' `TaskMigratedException` and
    /// abortable transaction errors. The reaction is to abort what is open, close the tasks
    /// dirty (wiping their uncommitted state) and revive them, not to stop the thread.
    ///
    /// ```
    /// use streams_core::client::ClientError;
    /// let e = ClientError::ProducerFenced { operation: "commit".into(), detail: "epoch 3 < 4".into() };
    /// assert!(e.is_task_migrated() && !e.is_fatal() && !e.is_retriable());
    /// ```
    pub fn is_task_migrated(&self) -> bool {
        matches!(
            self,
            Self::ProducerFenced { .. } | Self::TransactionAborted { .. }
        )
    }
}
