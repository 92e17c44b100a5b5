//! The log engine over the Kafka wire protocol (feature `serve`): Kafka clients (librdkafka,
//! the Java client, ...) produce to, fetch from and form consumer groups on a
//! [`LogEngine`](crate::LogEngine) without a Kafka cluster. `streams serve` runs it; tests
//! start it in-process with [`Server::start`].
//!
//! One node (id 0) leads every partition; there is no replication, no SASL and no TLS. Every
//! request, response and record batch goes through the `kafka-protocol` crate. The modules:
//! - `server`: the listener and the connection loop (length-prefixed frames, one request
//!   at a time per connection, as Kafka answers them in order);
//! - `dispatch`: the request header, the versions served ([`SUPPORTED_APIS`]), decoding the
//!   request and encoding the response;
//! - `data`: Produce (idempotent and transactional producers), Fetch (long polling,
//!   `read_committed`), ListOffsets, DeleteRecords;
//! - `admin`: Metadata, CreateTopics, DeleteTopics, FindCoordinator;
//! - `group`: the classic consumer group coordinator and committed offsets;
//! - `txn`: transactional producers (InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn,
//!   TxnOffsetCommit, EndTxn) and transaction timeouts;
//! - `codes`: engine errors as Kafka error codes.
//!
//! See docs/SERVE.md.

mod admin;
mod codes;
mod data;
mod dispatch;
mod group;
mod server;
#[cfg(test)]
mod tests;
mod txn;

use std::time::Duration;

pub use dispatch::SUPPORTED_APIS;
pub use server::{Server, ServerHandle};

/// How a [`Server`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    /// The host and port clients are told to connect to (Metadata, FindCoordinator).
    /// `None`: the address the listener is bound to (`127.0.0.1` for an unspecified IP).
    pub advertised: Option<(String, u16)>,
    /// The largest request frame accepted; a larger one closes the connection (Kafka's
    /// `socket.request.max.bytes`, 100 MiB).
    pub max_frame_bytes: usize,
    /// How long the first rebalance of an empty group waits for more members (Kafka's
    /// `group.initial.rebalance.delay.ms`; 0 here, Kafka's default is 3 s).
    pub initial_rebalance_delay: Duration,
    /// How often retention and compaction run ([`crate::LogEngine::run_maintenance`]);
    /// `None`: never.
    pub maintenance_interval: Option<Duration>,
    /// The server's worker threads.
    pub worker_threads: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            advertised: None,
            max_frame_bytes: 100 << 20,
            initial_rebalance_delay: Duration::ZERO,
            maintenance_interval: Some(Duration::from_secs(60)),
            worker_threads: 2,
        }
    }
}

/// Why a [`Server`] could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The server's runtime or thread could not be started.
    #[error("cannot start the server: {0}")]
    Start(#[source] std::io::Error),
}
