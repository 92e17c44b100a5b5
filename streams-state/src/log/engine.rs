//! The embedded log engine: topics of N partitions on local disk, and durable consumer
//! group offsets. It is the broker the runtime uses when no `bootstrap.servers` is set.
//!
//! Layout: `<dir>/.lock` (held while the engine is open), `<dir>/topics/<topic>/topic.meta`
//! (partition count and settings), `<dir>/topics/<topic>/<partition>/` (a [`PartitionLog`]),
//! `<dir>/groups/<group>.offsets` (committed offsets, written atomically) and
//! `<dir>/transactions.state` (transactional ids, see [`TransactionStatus`](super::TransactionStatus)).
//!
//! Transactions work as Kafka's: [`LogEngine::init_producer_id`] registers a transactional
//! id (fencing the previous producer of the id and aborting what it left open), appends
//! ([`LogEngine::append_transactional`]) and group offsets
//! ([`LogEngine::add_offsets_to_transaction`]) join the open transaction, and
//! [`LogEngine::end_transaction`] commits or aborts it with a marker in every partition it
//! wrote to. `read_committed` readers ([`LogEngine::read_with`]) see only committed records.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use super::batch::{AppendRecord, LogRecord};
use super::coordinator::{Coordinator, TransactionRecovery};
use super::error::LogError;
use super::files::*;
use super::partition::{FsyncPolicy, LogConfig, PartitionLog, RawBatch, ReadResult, StoredBatch};
use super::segment::RecoveryReport;
use super::topics::*;
use super::txn::Isolation;
use crate::error::StateError;
use crate::sync::lock;

/// Engine-wide settings, given to [`LogEngine::open_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// When appends reach the disk, for every partition of every topic. `None` (the
    /// default): each topic's own [`LogConfig::fsync`].
    pub fsync: Option<FsyncPolicy>,
    /// Whether a transaction's commit syncs what it wrote before it is acknowledged
    /// (default: yes), so that an acknowledged commit survives a power loss; without, it
    /// survives a process crash only (the operating system still holds the writes).
    pub commit_fsync: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            fsync: None,
            commit_fsync: true,
        }
    }
}

impl EngineConfig {
    /// The same settings with `commit_fsync`.
    pub fn with_commit_fsync(mut self, commit_fsync: bool) -> Self {
        self.commit_fsync = commit_fsync;
        self
    }

    /// The same settings with every partition using `fsync`.
    pub fn with_fsync(mut self, fsync: FsyncPolicy) -> Self {
        self.fsync = Some(fsync);
        self
    }
}

/// What a maintenance pass ([`LogEngine::run_maintenance`]) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MaintenanceReport {
    /// Segments deleted by time retention.
    pub segments_deleted: u64,
    /// Segments rewritten by compaction.
    pub segments_compacted: u64,
    /// Records removed by compaction.
    pub records_removed: u64,
}

/// A group's committed offsets by (topic, partition).
pub(super) type GroupOffsets = BTreeMap<(String, u32), i64>;

pub(super) struct Topic {
    pub(super) config: TopicConfig,
    pub(super) partitions: Vec<Mutex<PartitionLog>>,
}

/// One partition's size and offsets, from [`LogEngine::partition_stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionStats {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// Segments (files of record batches).
    pub segments: usize,
    /// Bytes of the segment files.
    pub size_bytes: u64,
    /// The first readable offset.
    pub start_offset: i64,
    /// The offset the next record gets.
    pub end_offset: i64,
}

/// The embedded log engine (see the [module docs](self)). Shareable between threads.
pub struct LogEngine {
    pub(super) dir: PathBuf,
    pub(super) config: EngineConfig,
    pub(super) _lock: File,
    pub(super) topics: RwLock<BTreeMap<String, Topic>>,
    pub(super) groups: Mutex<HashMap<String, GroupOffsets>>,
    pub(super) coordinator: Coordinator,
    pub(super) recovery: RecoveryReport,
    pub(super) txn_recovery: TransactionRecovery,
    /// Topic directories holding data whose `topic.meta` is missing or unreadable, with
    /// the reason: not opened, and not to be adopted by a new topic of the same name.
    pub(super) damaged: BTreeMap<String, String>,
}

impl std::fmt::Debug for LogEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogEngine").field("dir", &self.dir).finish()
    }
}

pub(super) fn err(e: LogError) -> StateError {
    StateError::Log(e)
}

/// The milliseconds since the epoch now.
pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl LogEngine {
    /// Opens (creating if needed) the engine in `dir` with default settings, recovering
    /// every partition.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        Self::open_with(dir, EngineConfig::default())
    }

    /// Opens (creating if needed) the engine in `dir`, recovering every partition (torn
    /// tails, interrupted compactions) and the transactions a crash left: decided commits
    /// are completed, every other open transaction is aborted.
    /// Fails if another engine has the directory open.
    pub fn open_with(dir: &Path, config: EngineConfig) -> Result<Self, StateError> {
        fs::create_dir_all(dir.join("topics")).map_err(io(dir, "creating the log directory"))?;
        fs::create_dir_all(dir.join("groups")).map_err(io(dir, "creating the log directory"))?;
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(".lock"))
            .map_err(io(dir, "opening the lock file"))?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StateError::StateDir {
                    path: dir.to_path_buf(),
                    detail: "the log directory is in use by another process".into(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(dir, "locking the log directory")(e)),
        }
        let mut recovery = RecoveryReport::default();
        let mut topics = BTreeMap::new();
        let mut damaged = BTreeMap::new();
        for entry in fs::read_dir(dir.join("topics")).map_err(io(dir, "listing topics"))? {
            let entry = entry.map_err(io(dir, "listing topics"))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let topic_config = match read_meta(&entry.path()) {
                Ok(Some(c)) => c,
                // A topic whose creation did not finish: nothing was written to it.
                Ok(None) if !holds_data(&entry.path()) => continue,
                Ok(None) => {
                    let why = "its topic.meta is missing".to_string();
                    tracing::error!(topic = %name, dir = %entry.path().display(), "topic not opened: its directory holds data but {why}; restore topic.meta or remove the directory");
                    damaged.insert(name, why);
                    continue;
                }
                Err(why) => {
                    tracing::error!(topic = %name, dir = %entry.path().display(), "topic not opened: {why}; repair topic.meta or remove the directory");
                    damaged.insert(name, why);
                    continue;
                }
            };
            let mut partitions = Vec::new();
            for p in 0..topic_config.partitions {
                let (log, report) = PartitionLog::open(
                    &entry.path().join(p.to_string()),
                    effective_log_config(&config, &topic_config),
                )?;
                recovery.truncated_bytes += report.truncated_bytes;
                recovery.valid_batches += report.valid_batches;
                partitions.push(Mutex::new(log));
            }
            topics.insert(
                name,
                Topic {
                    config: topic_config,
                    partitions,
                },
            );
        }
        let mut groups = HashMap::new();
        for entry in fs::read_dir(dir.join("groups")).map_err(io(dir, "listing groups"))? {
            let entry = entry.map_err(io(dir, "listing groups"))?;
            let path = entry.path();
            let Some(group) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".offsets"))
            else {
                continue;
            };
            let text = fs::read_to_string(&path).map_err(io(&path, "reading group offsets"))?;
            let mut offsets = BTreeMap::new();
            for line in text.lines() {
                let f: Vec<&str> = line.split(' ').collect();
                if let [t, p, o] = f.as_slice()
                    && let (Ok(p), Ok(o)) = (p.parse::<u32>(), o.parse::<i64>())
                {
                    offsets.insert(((*t).to_string(), p), o);
                }
            }
            groups.insert(group.to_string(), offsets);
        }
        let mut engine = Self {
            dir: dir.to_path_buf(),
            config,
            _lock: lock_file,
            topics: RwLock::new(topics),
            groups: Mutex::new(groups),
            coordinator: Coordinator::open(dir)?,
            recovery,
            txn_recovery: TransactionRecovery::default(),
            damaged,
        };
        engine.txn_recovery = engine.recover_transactions()?;
        Ok(engine)
    }

    /// Topics found on disk with data but a missing or unreadable `topic.meta`, with the
    /// reason: they are not open, and creating a topic of the same name is refused until
    /// the file is repaired or the directory removed.
    pub fn damaged_topics(&self) -> &BTreeMap<String, String> {
        &self.damaged
    }

    /// What opening found: bytes of torn tails truncated, valid batches.
    pub fn recovery_report(&self) -> RecoveryReport {
        self.recovery
    }

    /// What opening did with the transactions a crash left.
    pub fn transaction_recovery(&self) -> TransactionRecovery {
        self.txn_recovery
    }

    /// The engine's settings.
    pub fn config(&self) -> EngineConfig {
        self.config
    }

    /// Creates a topic; fails if it exists or its name or settings are invalid.
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<(), StateError> {
        if !valid_topic(name) {
            return Err(err(LogError::InvalidTopicName(name.to_string())));
        }
        if config.partitions == 0 || config.partitions > MAX_PARTITIONS {
            return Err(err(LogError::InvalidTopicConfig {
                topic: name.to_string(),
                detail: format!("a topic needs 1 to {MAX_PARTITIONS} partitions"),
            }));
        }
        if config.log.retention_ms.is_some_and(|ms| ms < 0)
            || config.log.segment_ms.is_some_and(|ms| ms <= 0)
            || config.delete_retention_ms < 0
            || config.log.segment_bytes == 0
        {
            return Err(err(LogError::InvalidTopicConfig {
                topic: name.to_string(),
                detail: "retention.ms, delete.retention.ms must not be negative, segment.ms \
                         and segment.bytes must be positive"
                    .into(),
            }));
        }
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        if topics.contains_key(name) {
            return Err(err(LogError::TopicExists(name.to_string())));
        }
        if let Some(why) = self.damaged.get(name) {
            return Err(err(LogError::DamagedTopic {
                topic: name.to_string(),
                dir: self.dir.join("topics").join(name).display().to_string(),
                why: why.clone(),
            }));
        }
        let dir = self.dir.join("topics").join(name);
        fs::create_dir_all(&dir).map_err(io(&dir, "creating a topic"))?;
        let mut partitions = Vec::new();
        for p in 0..config.partitions {
            partitions.push(Mutex::new(
                PartitionLog::open(
                    &dir.join(p.to_string()),
                    effective_log_config(&self.config, &config),
                )?
                .0,
            ));
        }
        write_meta(&dir, &config)?;
        topics.insert(name.to_string(), Topic { config, partitions });
        Ok(())
    }

    /// Deletes a topic and its data, and every group's committed offsets for it (a topic
    /// created again under the name starts afresh).
    pub fn delete_topic(&self, name: &str) -> Result<(), StateError> {
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        if topics.remove(name).is_none() {
            return Err(err(LogError::UnknownTopic(name.to_string())));
        }
        let dir = self.dir.join("topics").join(name);
        fs::remove_dir_all(&dir).map_err(io(&dir, "deleting a topic"))?;
        let mut groups = lock(&self.groups);
        let mut emptied = Vec::new();
        for (group, offsets) in groups.iter_mut() {
            let before = offsets.len();
            offsets.retain(|(t, _), _| t != name);
            if offsets.len() != before {
                self.write_group(group, offsets)?;
                if offsets.is_empty() {
                    emptied.push(group.clone());
                }
            }
        }
        for group in emptied {
            groups.remove(&group);
            let path = self.group_path(&group);
            fs::remove_file(&path).map_err(io(&path, "deleting group offsets"))?;
        }
        Ok(())
    }

    /// The size and offsets of every partition of every topic, by topic then partition:
    /// what an operator watches of a broker's logs (Kafka's `kafka.log:type=Log` metrics).
    pub fn partition_stats(&self) -> Vec<PartitionStats> {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (name, t) in topics.iter() {
            for (p, log) in t.partitions.iter().enumerate() {
                let log = lock(log);
                out.push(PartitionStats {
                    topic: name.clone(),
                    partition: p as u32,
                    segments: log.segment_count(),
                    size_bytes: log.size_bytes(),
                    start_offset: log.start_offset(),
                    end_offset: log.end_offset(),
                });
            }
        }
        out
    }

    /// Every topic with its settings, by name.
    pub fn topics(&self) -> Vec<(String, TopicConfig)> {
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(n, t)| (n.clone(), t.config))
            .collect()
    }

    /// A topic's settings, if it exists.
    pub fn topic_config(&self, topic: &str) -> Option<TopicConfig> {
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(topic)
            .map(|t| t.config)
    }

    pub(super) fn with_partition<R>(
        &self,
        topic: &str,
        partition: u32,
        f: impl FnOnce(&mut PartitionLog) -> Result<R, StateError>,
    ) -> Result<R, StateError> {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        let t = get_topic(&topics, topic)?;
        f(&mut lock(get_partition(t, topic, partition)?))
    }

    /// Appends records to a partition as one batch; returns the first one's offset. A
    /// compacted topic refuses records without a key (as Kafka does).
    pub fn append<R: AppendRecord>(
        &self,
        topic: &str,
        partition: u32,
        records: &[R],
    ) -> Result<i64, StateError> {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        let t = get_topic(&topics, topic)?;
        check_keys(t, topic, records)?;
        lock(get_partition(t, topic, partition)?).append(records)
    }

    /// Records of a partition from `offset` on (about `max_bytes`). Offsets of a compacted
    /// topic have gaps: continue from the last record's offset + 1 (see
    /// [`PartitionLog::read`]).
    pub fn read(
        &self,
        topic: &str,
        partition: u32,
        offset: i64,
        max_bytes: usize,
    ) -> Result<Vec<LogRecord>, StateError> {
        self.with_partition(topic, partition, |p| p.read(offset, max_bytes))
    }

    /// A partition's (start offset, end offset).
    pub fn offsets(&self, topic: &str, partition: u32) -> Result<(i64, i64), StateError> {
        self.with_partition(topic, partition, |p| Ok((p.start_offset(), p.end_offset())))
    }

    /// The first offset of a partition whose record's timestamp is at or after
    /// `timestamp_ms` (Kafka's ListOffsets by time), or `None` if no record is that new.
    pub fn offset_for_time(
        &self,
        topic: &str,
        partition: u32,
        timestamp_ms: i64,
    ) -> Result<Option<i64>, StateError> {
        self.with_partition(topic, partition, |p| p.offset_for_time(timestamp_ms))
    }

    /// Makes every offset of the partition below `offset` unreadable (DeleteRecords).
    pub fn delete_records(
        &self,
        topic: &str,
        partition: u32,
        offset: i64,
    ) -> Result<(), StateError> {
        self.with_partition(topic, partition, |p| p.delete_records(offset))
    }

    /// Syncs every partition to disk.
    pub fn flush(&self) -> Result<(), StateError> {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        for t in topics.values() {
            for p in &t.partitions {
                lock(p).flush()?;
            }
        }
        Ok(())
    }

    /// One maintenance pass at the current time: see [`LogEngine::run_maintenance_at`].
    /// The runtime calls it periodically; it locks one partition at a time.
    pub fn run_maintenance(&self) -> Result<MaintenanceReport, StateError> {
        self.run_maintenance_at(now_ms())
    }

    /// One maintenance pass as of `now_ms`: time retention (topics with `retention.ms`)
    /// deletes expired old segments, and compacted topics are compacted (tombstones expire
    /// against `now_ms` too).
    pub fn run_maintenance_at(&self, now_ms: i64) -> Result<MaintenanceReport, StateError> {
        let mut report = MaintenanceReport::default();
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        for t in topics.values() {
            for p in &t.partitions {
                let mut log = lock(p);
                report.segments_deleted += log.enforce_time_retention(now_ms)?;
                if t.config.cleanup == CleanupPolicy::Compact {
                    let c = log.compact(now_ms, t.config.delete_retention_ms)?;
                    report.segments_compacted += c.segments_rewritten;
                    report.records_removed += c.records_removed;
                }
            }
        }
        Ok(report)
    }

    /// Records of a partition from `offset` on (about `max_bytes`) as a reader with
    /// `isolation` sees them, and the offset to read from next (see
    /// [`PartitionLog::read_with`]).
    pub fn read_with(
        &self,
        topic: &str,
        partition: u32,
        offset: i64,
        max_bytes: usize,
        isolation: Isolation,
    ) -> Result<ReadResult, StateError> {
        self.with_partition(topic, partition, |p| {
            p.read_with(offset, max_bytes, isolation)
        })
    }

    /// The batches of a partition from `offset` on (about `max_bytes`), transaction
    /// markers included, as a reader with `isolation` sees them, and the offset to read from
    /// next: what a Kafka fetch returns (see [`PartitionLog::read_batches`]).
    pub fn read_batches(
        &self,
        topic: &str,
        partition: u32,
        offset: i64,
        max_bytes: usize,
        isolation: Isolation,
    ) -> Result<(Vec<StoredBatch>, i64), StateError> {
        self.with_partition(topic, partition, |p| {
            p.read_batches(offset, max_bytes, isolation)
        })
    }

    /// [`read_batches`](Self::read_batches) with each batch's records still encoded (see
    /// [`PartitionLog::read_raw_batches`]): the Kafka-protocol server reads them in place.
    #[cfg_attr(not(feature = "serve"), allow(dead_code))]
    pub(crate) fn read_raw_batches(
        &self,
        topic: &str,
        partition: u32,
        offset: i64,
        max_bytes: usize,
        isolation: Isolation,
    ) -> Result<(Vec<RawBatch>, i64), StateError> {
        self.with_partition(topic, partition, |p| {
            p.read_raw_batches(offset, max_bytes, isolation)
        })
    }

    /// A partition's last stable offset: `read_committed` readers read only below it.
    pub fn last_stable_offset(&self, topic: &str, partition: u32) -> Result<i64, StateError> {
        self.with_partition(topic, partition, |p| Ok(p.last_stable_offset()))
    }

    /// A partition's open transactions: (producer id, first offset).
    pub fn open_transactions(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<Vec<(i64, i64)>, StateError> {
        self.with_partition(topic, partition, |p| Ok(p.open_transactions()))
    }
}

pub(super) fn get_topic<'a>(
    topics: &'a BTreeMap<String, Topic>,
    topic: &str,
) -> Result<&'a Topic, StateError> {
    topics
        .get(topic)
        .ok_or_else(|| err(LogError::UnknownTopic(topic.to_string())))
}

pub(super) fn get_partition<'a>(
    t: &'a Topic,
    topic: &str,
    partition: u32,
) -> Result<&'a Mutex<PartitionLog>, StateError> {
    t.partitions.get(partition as usize).ok_or_else(|| {
        err(LogError::UnknownPartition {
            topic: topic.to_string(),
            partition,
            partitions: u32::try_from(t.partitions.len()).unwrap_or(u32::MAX),
        })
    })
}

/// A compacted topic takes only keyed records.
pub(super) fn check_keys<R: AppendRecord>(
    t: &Topic,
    topic: &str,
    records: &[R],
) -> Result<(), StateError> {
    if t.config.cleanup == CleanupPolicy::Compact && records.iter().any(|r| r.key().is_none()) {
        return Err(err(LogError::KeyRequired(topic.to_string())));
    }
    Ok(())
}

/// A topic's partition settings with the engine's overrides applied.
pub(super) fn effective_log_config(engine: &EngineConfig, topic: &TopicConfig) -> LogConfig {
    let mut log = topic.log;
    if let Some(fsync) = engine.fsync {
        log.fsync = fsync;
    }
    log
}
