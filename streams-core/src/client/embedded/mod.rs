//! The clients on the embedded [`LogEngine`]: consumers that form groups in-process,
//! buffered producers, and topic administration.
//!
//! Every consumer of one engine and group id — from any app instance or stream thread in
//! the process — meets at one in-process group coordinator, so several instances sharing an
//! engine split the partitions as a Kafka consumer group would. Rebalances are eager, with
//! a barrier: when a member joins or leaves, every member revokes its partitions (committing
//! their offsets first) in its next poll, and only when all have done so does anyone get
//! the new assignment. A partition is therefore never owned by two members at once.

mod admin;
mod consumer;
mod group;
mod producer;
#[cfg(test)]
mod unit_tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use streams_state::LogEngine;

use super::{Admin, ClientResult, ClientSupplier, Consumer, IsolationLevel, Producer};

use crate::sync::lock;

use admin::EmbeddedAdmin;
use consumer::EmbeddedConsumer;
use consumer::{FETCH_MAX_BYTES, FETCH_MAX_BYTES_PER_PARTITION};
use group::Group;
use producer::{EmbeddedProducer, Transactional};

/// The clients of an app instance on a [`LogEngine`].
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use streams_core::client::embedded::EmbeddedClients;
/// use streams_core::client::{ClientSupplier, NewTopic, NoRebalanceListener, OutgoingRecord, TopicPartition};
/// use streams_core::runtime::LogEngine;
///
/// let dir = std::env::temp_dir().join(format!("doc-embedded-{}", std::process::id()));
/// let engine = Arc::new(LogEngine::open(&dir).unwrap());
/// let clients = EmbeddedClients::new(engine);
/// clients.admin().unwrap().create_topic(&NewTopic::new("events", 1)).unwrap();
/// let mut producer = clients.producer("p").unwrap();
/// producer.send(OutgoingRecord {
///     partition: TopicPartition::new("events", 0),
///     timestamp: 1,
///     key: Some(b"k".to_vec()),
///     value: Some(b"v".to_vec()),
///     headers: vec![],
/// }).unwrap();
/// producer.flush(Duration::from_secs(1)).unwrap();
/// let mut consumer = clients.consumer("group", "c").unwrap();
/// consumer.subscribe(&["events".to_string()]).unwrap();
/// let records = consumer.poll(Duration::from_secs(5), &mut NoRebalanceListener).unwrap();
/// assert_eq!(records[0].record.value.as_deref(), Some(&b"v"[..]));
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Clone)]
pub struct EmbeddedClients {
    engine: Arc<LogEngine>,
    groups: Arc<Groups>,
    limits: ConsumerSettings,
}

/// Where a consumer starts when its position is outside the log (Kafka's
/// `auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// The log start (Kafka Streams' default for its main consumer).
    #[default]
    Earliest,
    /// The log end.
    Latest,
    /// No reset: the poll fails, naming the partition.
    None,
}

/// What an embedded consumer's poll returns and where it starts: Kafka's consumer settings
/// of the same names, read from `consumer.`-prefixed properties by
/// [`from_properties`](Self::from_properties).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerSettings {
    /// `max.poll.records`: records per poll at most (default: no limit but the bytes).
    pub max_poll_records: usize,
    /// `max.partition.fetch.bytes`: bytes read per partition per poll (default 1 MiB; the
    /// first record is returned even when it is larger).
    pub max_partition_fetch_bytes: usize,
    /// `fetch.max.bytes`: bytes read per poll in all (default 4 MiB).
    pub fetch_max_bytes: usize,
    /// `auto.offset.reset`: where to go when a position (a committed offset) is past the
    /// log end (the log lost records) or before its start (deleted records).
    pub auto_offset_reset: OffsetReset,
    /// `isolation.level`: `read_committed` reads only below the last stable offset and
    /// skips aborted records (the runtime sets it under `exactly_once_v2`, for every
    /// consumer).
    pub isolation: IsolationLevel,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            max_poll_records: usize::MAX,
            max_partition_fetch_bytes: FETCH_MAX_BYTES_PER_PARTITION,
            fetch_max_bytes: FETCH_MAX_BYTES,
            auto_offset_reset: OffsetReset::Earliest,
            isolation: IsolationLevel::ReadUncommitted,
        }
    }
}

impl ConsumerSettings {
    /// The limits set in consumer properties (keys without the `consumer.` prefix);
    /// other consumer properties are logged as ignored (they mean nothing to the embedded
    /// engine). A value that is not a positive integer is refused, naming the setting.
    pub fn from_properties(
        props: &std::collections::BTreeMap<String, String>,
    ) -> Result<Self, crate::config::ConfigError> {
        let mut limits = Self::default();
        for (key, value) in props {
            if key == "isolation.level" {
                limits.isolation = match value.trim() {
                    "read_committed" => IsolationLevel::ReadCommitted,
                    "read_uncommitted" => IsolationLevel::ReadUncommitted,
                    _ => {
                        return Err(crate::config::ConfigError::Invalid {
                            setting: "consumer.isolation.level",
                            detail: format!(
                                "`{value}`: expected read_committed or read_uncommitted"
                            ),
                        });
                    }
                };
                continue;
            }
            if key == "auto.offset.reset" {
                limits.auto_offset_reset = match value.trim() {
                    "earliest" | "smallest" | "beginning" => OffsetReset::Earliest,
                    "latest" | "largest" | "end" => OffsetReset::Latest,
                    "none" | "error" => OffsetReset::None,
                    _ => {
                        return Err(crate::config::ConfigError::Invalid {
                            setting: "consumer.auto.offset.reset",
                            detail: format!("`{value}`: expected earliest, latest or none"),
                        });
                    }
                };
                continue;
            }
            let (slot, setting) = match key.as_str() {
                "max.poll.records" => (&mut limits.max_poll_records, "consumer.max.poll.records"),
                "max.partition.fetch.bytes" => (
                    &mut limits.max_partition_fetch_bytes,
                    "consumer.max.partition.fetch.bytes",
                ),
                "fetch.max.bytes" => (&mut limits.fetch_max_bytes, "consumer.fetch.max.bytes"),
                other => {
                    tracing::warn!(
                        setting = %format!("consumer.{other}"),
                        "ignored: the embedded engine's consumer knows only max.poll.records, max.partition.fetch.bytes, fetch.max.bytes, auto.offset.reset and isolation.level"
                    );
                    continue;
                }
            };
            *slot = value
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| crate::config::ConfigError::Invalid {
                    setting,
                    detail: format!("`{value}` is not a positive integer"),
                })?;
        }
        Ok(limits)
    }
}

impl std::fmt::Debug for EmbeddedClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedClients").finish_non_exhaustive()
    }
}

/// The group coordinators of one engine, by group id.
#[derive(Default)]
struct Groups {
    groups: Mutex<HashMap<String, Arc<Group>>>,
}

/// Coordinators are per engine and process-wide: clients made separately for one engine
/// still meet in the same groups.
type Registry = Mutex<Vec<(Weak<LogEngine>, Arc<Groups>)>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(Vec::new()))
}

impl EmbeddedClients {
    /// Clients on `engine`. Clients made for the same engine share its consumer groups.
    pub fn new(engine: Arc<LogEngine>) -> Self {
        let mut reg = lock(registry());
        reg.retain(|(e, _)| e.strong_count() > 0);
        let groups = match reg
            .iter()
            .find(|(e, _)| e.upgrade().is_some_and(|e| Arc::ptr_eq(&e, &engine)))
        {
            Some((_, g)) => g.clone(),
            None => {
                let g = Arc::new(Groups::default());
                reg.push((Arc::downgrade(&engine), g.clone()));
                start_maintenance(Arc::downgrade(&engine));
                g
            }
        };
        Self {
            engine,
            groups,
            limits: ConsumerSettings::default(),
        }
    }

    /// The same clients, whose consumers read at most `limits` per poll.
    pub fn with_consumer_settings(mut self, limits: ConsumerSettings) -> Self {
        self.limits = limits;
        self
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<LogEngine> {
        &self.engine
    }

    fn group(&self, id: &str) -> Arc<Group> {
        lock(&self.groups.groups)
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(Group::default()))
            .clone()
    }
}

/// How often the embedded engine's retention and compaction run while clients use it.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(30);

/// Runs the engine's maintenance (time retention, compaction) in the background, as a
/// broker's log cleaner would, until the engine is dropped.
fn start_maintenance(engine: Weak<LogEngine>) {
    let spawned = std::thread::Builder::new()
        .name("log-maintenance".into())
        .spawn(move || {
            loop {
                let mut waited = Duration::ZERO;
                while waited < MAINTENANCE_INTERVAL {
                    if engine.strong_count() == 0 {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                    waited += Duration::from_millis(200);
                }
                let Some(e) = engine.upgrade() else { return };
                match e.run_maintenance() {
                    Ok(r) => tracing::debug!(?r, "log maintenance"),
                    Err(err) => tracing::warn!(error = %err, "log maintenance failed"),
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start log maintenance; retention and compaction will not run");
    }
}

impl ClientSupplier for EmbeddedClients {
    fn log_stats(&self) -> Option<Vec<streams_state::PartitionStats>> {
        Some(self.engine.partition_stats())
    }

    fn consumer(&self, group_id: &str, client_id: &str) -> ClientResult<Box<dyn Consumer>> {
        Ok(Box::new(EmbeddedConsumer::new(
            self.engine.clone(),
            Some((group_id.to_string(), self.group(group_id))),
            client_id,
            self.limits,
        )))
    }

    fn restore_consumer(&self, client_id: &str) -> ClientResult<Box<dyn Consumer>> {
        Ok(Box::new(EmbeddedConsumer::new(
            self.engine.clone(),
            None,
            client_id,
            ConsumerSettings {
                isolation: self.limits.isolation,
                ..ConsumerSettings::default()
            },
        )))
    }

    fn producer(&self, _client_id: &str) -> ClientResult<Box<dyn Producer>> {
        Ok(Box::new(EmbeddedProducer::new(self.engine.clone(), None)))
    }

    fn transactional_producer(
        &self,
        _client_id: &str,
        transactional_id: &str,
    ) -> ClientResult<Box<dyn Producer>> {
        Ok(Box::new(EmbeddedProducer::new(
            self.engine.clone(),
            Some(Transactional {
                id: transactional_id.to_string(),
                producer: None,
                open: false,
                groups: self.groups.clone(),
            }),
        )))
    }

    fn admin(&self) -> ClientResult<Arc<dyn Admin>> {
        Ok(Arc::new(EmbeddedAdmin {
            engine: self.engine.clone(),
        }))
    }
}
