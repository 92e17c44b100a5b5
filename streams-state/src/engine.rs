//! The embedded log engine: topics of N partitions on local disk, and durable consumer
//! group offsets. It is the broker the runtime uses when no `bootstrap.servers` is set.
//!
//! Layout: `<dir>/.lock` (held while the engine is open), `<dir>/topics/<topic>/topic.meta`
//! (partition count and settings), `<dir>/topics/<topic>/<partition>/` (a [`PartitionLog`]),
//! `<dir>/groups/<group>.offsets` (committed offsets, written atomically) and
//! `<dir>/transactions.state` (transactional ids, see [`crate::transactions`]).
//!
//! Transactions work as Kafka's: [`LogEngine::init_producer_id`] registers a transactional
//! id (fencing the previous producer of the id and aborting what it left open), appends
//! ([`LogEngine::append_transactional`]) and group offsets
//! ([`LogEngine::add_offsets_to_transaction`]) join the open transaction, and
//! [`LogEngine::end_transaction`] commits or aborts it with a marker in every partition it
//! wrote to. `read_committed` readers ([`LogEngine::read_with`]) see only committed records.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, RwLock};

use crate::log::{
    FsyncPolicy, LogConfig, LogRecord, NewRecord, PartitionLog, ReadResult, RecoveryReport,
    StoredBatch,
};
use crate::transactions::{
    Coordinator, Durable, TransactionRecovery, TransactionStatus, TxnOffsets,
};
use crate::txn::{Isolation, ProducerId};
use crate::{LogError, StateError};

/// Kafka's default `delete.retention.ms`: how long tombstones of a compacted topic stay
/// readable after their first compaction (1 day).
pub const DEFAULT_DELETE_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

/// How a topic's old records go away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupPolicy {
    /// Whole old segments are deleted by retention (`cleanup.policy=delete`).
    Delete,
    /// The latest value per key is kept (`cleanup.policy=compact`): maintenance compacts the
    /// closed segments. Time and size retention still apply if set (Kafka's
    /// `compact,delete`).
    Compact,
}

/// A topic's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicConfig {
    /// The number of partitions (at least 1).
    pub partitions: u32,
    /// How old records go away.
    pub cleanup: CleanupPolicy,
    /// For compacted topics: how long a tombstone stays after its first compaction (Kafka's
    /// `delete.retention.ms`).
    pub delete_retention_ms: i64,
    /// The partitions' storage settings (segment size and roll time, fsync, size and time
    /// retention).
    pub log: LogConfig,
}

impl TopicConfig {
    /// `partitions` partitions, delete policy, default storage settings (no retention).
    pub fn new(partitions: u32) -> Self {
        Self {
            partitions,
            cleanup: CleanupPolicy::Delete,
            delete_retention_ms: DEFAULT_DELETE_RETENTION_MS,
            log: LogConfig::default(),
        }
    }

    /// The same settings with `cleanup.policy=compact`.
    pub fn compacted(mut self) -> Self {
        self.cleanup = CleanupPolicy::Compact;
        self
    }

    /// The same settings with time retention (`retention.ms`).
    pub fn with_retention_ms(mut self, retention_ms: i64) -> Self {
        self.log.retention_ms = Some(retention_ms);
        self
    }
}

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
type GroupOffsets = BTreeMap<(String, u32), i64>;

struct Topic {
    config: TopicConfig,
    partitions: Vec<Mutex<PartitionLog>>,
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
    dir: PathBuf,
    config: EngineConfig,
    _lock: File,
    topics: RwLock<BTreeMap<String, Topic>>,
    groups: Mutex<HashMap<String, GroupOffsets>>,
    coordinator: Coordinator,
    recovery: RecoveryReport,
    txn_recovery: TransactionRecovery,
    /// Topic directories holding data whose `topic.meta` is missing or unreadable, with
    /// the reason: not opened, and not to be adopted by a new topic of the same name.
    damaged: BTreeMap<String, String>,
}

impl std::fmt::Debug for LogEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogEngine").field("dir", &self.dir).finish()
    }
}

fn err(e: LogError) -> StateError {
    StateError::Log(e)
}

fn io<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(std::io::Error) -> StateError + 'a {
    move |source| StateError::io(path, action, source)
}

/// Topic names as Kafka allows them: 1 to 249 of ASCII letters, digits, '.', '_', '-'.
fn valid_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes `path` atomically: a synced temporary file renamed over it.
pub(crate) fn write_atomic(
    path: &Path,
    text: &str,
    action: &'static str,
) -> Result<(), StateError> {
    write_atomic_with(path, text, action, true)
}

/// Writes `path` atomically (a temporary file renamed over it); `sync`: durably (the file
/// and its directory synced), else only as far as a process crash is concerned.
pub(crate) fn write_atomic_with(
    path: &Path,
    text: &str,
    action: &'static str,
    sync: bool,
) -> Result<(), StateError> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).map_err(io(&tmp, action))?;
        std::io::Write::write_all(&mut f, text.as_bytes()).map_err(io(&tmp, action))?;
        if sync {
            f.sync_all().map_err(io(&tmp, action))?;
        }
    }
    fs::rename(&tmp, path).map_err(io(path, action))?;
    if sync
        && let Some(parent) = path.parent()
        && let Ok(d) = File::open(parent)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The milliseconds since the epoch now.
fn now_ms() -> i64 {
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

    fn with_partition<R>(
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
    pub fn append(
        &self,
        topic: &str,
        partition: u32,
        records: &[NewRecord],
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

    fn group_path(&self, group: &str) -> PathBuf {
        self.dir.join("groups").join(format!("{group}.offsets"))
    }

    fn write_group(&self, group: &str, offsets: &GroupOffsets) -> Result<(), StateError> {
        self.write_group_with(group, offsets, true)
    }

    fn write_group_with(
        &self,
        group: &str,
        offsets: &GroupOffsets,
        sync: bool,
    ) -> Result<(), StateError> {
        let mut text = String::new();
        for ((t, p), o) in offsets {
            text.push_str(&format!("{t} {p} {o}\n"));
        }
        write_atomic_with(
            &self.group_path(group),
            &text,
            "writing group offsets",
            sync,
        )
    }

    /// Commits a transaction's offsets of `group`: synced when commits are; at recovery
    /// (`forward_only`) an offset never moves back (a later commit of the same partition
    /// by another producer may have passed it).
    fn commit_txn_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<(String, u32), i64>,
        forward_only: bool,
    ) -> Result<(), StateError> {
        let mut groups = lock(&self.groups);
        let g = groups.entry(group.to_string()).or_default();
        for (tp, o) in offsets {
            let current = g.entry(tp.clone()).or_insert(*o);
            if !forward_only || *o > *current {
                *current = *o;
            }
        }
        self.write_group_with(group, g, self.config.commit_fsync)
    }

    /// Commits `group`'s offsets (the next offset to read, per partition) durably:
    /// the group's file is rewritten atomically.
    pub fn commit_offsets(
        &self,
        group: &str,
        offsets: &[(&str, u32, i64)],
    ) -> Result<(), StateError> {
        if !valid_topic(group) {
            return Err(err(LogError::InvalidGroupId(group.to_string())));
        }
        let mut groups = lock(&self.groups);
        let g = groups.entry(group.to_string()).or_default();
        for (t, p, o) in offsets {
            g.insert(((*t).to_string(), *p), *o);
        }
        self.write_group(group, g)
    }

    /// The offset `group` committed for a partition, if any.
    pub fn committed(&self, group: &str, topic: &str, partition: u32) -> Option<i64> {
        lock(&self.groups)
            .get(group)
            .and_then(|g| g.get(&(topic.to_string(), partition)).copied())
    }

    /// Every group with committed offsets, by name.
    pub fn groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = lock(&self.groups).keys().cloned().collect();
        groups.sort();
        groups
    }

    /// Every offset `group` committed, as (topic, partition, offset) in order; `None` if the
    /// group is unknown.
    pub fn group_offsets(&self, group: &str) -> Option<Vec<(String, u32, i64)>> {
        lock(&self.groups)
            .get(group)
            .map(|g| g.iter().map(|((t, p), o)| (t.clone(), *p, *o)).collect())
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

    /// Every transactional id with its producer and open transaction.
    pub fn transactions(&self) -> Vec<TransactionStatus> {
        self.coordinator.statuses()
    }

    /// Registers `transactional_id` (Kafka's InitProducerId): aborts the transaction its
    /// previous producer left open and returns a producer with a higher epoch, which fences
    /// the previous one (its appends, offsets and commits fail with
    /// [`LogError::ProducerFenced`]).
    pub fn init_producer_id(&self, transactional_id: &str) -> Result<ProducerId, StateError> {
        let entry = self.coordinator.entry_or_new(transactional_id);
        let mut e = lock(&entry);
        if !e.partitions.is_empty() {
            let partitions: BTreeSet<(String, u32)> =
                std::mem::take(&mut e.partitions).into_keys().collect();
            self.write_markers(e.producer, &partitions, false)?;
        }
        e.offsets.clear();
        e.preparing = false;
        // The last commit's decision is replaced: its markers reach the disk first.
        for (t, p) in std::mem::take(&mut e.unsynced) {
            if self.topic_config(&t).is_some_and(|c| p < c.partitions) {
                self.with_partition(&t, p, |log| log.flush())?;
            }
        }
        let producer = self.coordinator.next_producer(e.producer)?;
        self.coordinator.persist(
            transactional_id,
            Durable {
                producer,
                commit: None,
            },
            true,
        )?;
        e.producer = producer;
        Ok(producer)
    }

    /// Appends `records` to a partition in `producer`'s open transaction (beginning one if
    /// none is open); returns the first one's offset. They stay invisible to
    /// `read_committed` readers until the transaction commits.
    pub fn append_transactional(
        &self,
        transactional_id: &str,
        producer: ProducerId,
        topic: &str,
        partition: u32,
        records: &[NewRecord],
    ) -> Result<i64, StateError> {
        let entry = self.coordinator.entry(transactional_id)?;
        let mut e = lock(&entry);
        e.check(transactional_id, producer)?;
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        let t = get_topic(&topics, topic)?;
        check_keys(t, topic, records)?;
        let log = get_partition(t, topic, partition)?;
        let base = lock(log).append_transactional(records, producer)?;
        e.partitions
            .entry((topic.to_string(), partition))
            .or_insert(base);
        Ok(base)
    }

    /// Adds `group`'s offsets (the next offset to read per partition) to `producer`'s open
    /// transaction: they are committed with it, or not at all.
    pub fn add_offsets_to_transaction(
        &self,
        transactional_id: &str,
        producer: ProducerId,
        group: &str,
        offsets: &[(&str, u32, i64)],
    ) -> Result<(), StateError> {
        if !valid_topic(group) {
            return Err(err(LogError::InvalidGroupId(group.to_string())));
        }
        let entry = self.coordinator.entry(transactional_id)?;
        let mut e = lock(&entry);
        e.check(transactional_id, producer)?;
        {
            let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
            for (t, p, _) in offsets {
                get_partition(get_topic(&topics, t)?, t, *p)?;
            }
        }
        let g = e.offsets.entry(group.to_string()).or_default();
        for (t, p, o) in offsets {
            g.insert(((*t).to_string(), *p), *o);
        }
        Ok(())
    }

    /// Commits (`commit`) or aborts `producer`'s open transaction; nothing if none is open.
    ///
    /// A commit syncs what the transaction wrote (unless [`EngineConfig::commit_fsync`] is
    /// off), then stores the decision durably — from then on it is committed, a crash
    /// included — then writes a commit marker to every partition it wrote to and commits
    /// its group offsets. The decision stays stored until the transactional id's next
    /// commit, whose sync covers this one's markers; opening the engine applies it again
    /// (markers only where still missing, offsets never backwards). An abort writes abort
    /// markers and drops the offsets.
    pub fn end_transaction(
        &self,
        transactional_id: &str,
        producer: ProducerId,
        commit: bool,
    ) -> Result<(), StateError> {
        let entry = self.coordinator.entry(transactional_id)?;
        let mut e = lock(&entry);
        e.check(transactional_id, producer)?;
        let firsts = std::mem::take(&mut e.partitions);
        let partitions: BTreeSet<(String, u32)> = firsts.keys().cloned().collect();
        let offsets = std::mem::take(&mut e.offsets);
        if !commit {
            return self.write_markers(producer, &partitions, false);
        }
        if partitions.is_empty() && offsets.is_empty() {
            return Ok(());
        }
        if self.config.commit_fsync {
            // This transaction's records, and the previous commit's markers (its decision
            // is about to be replaced), reach the disk first.
            let previous = std::mem::take(&mut e.unsynced);
            for (t, p) in partitions.union(&previous) {
                if self.topic_config(t).is_some_and(|c| *p < c.partitions) {
                    self.with_partition(t, *p, |log| log.flush())?;
                }
            }
        }
        let decided = Durable {
            producer,
            commit: Some((
                firsts
                    .into_iter()
                    .map(|((t, p), first)| (t, p, first))
                    .collect(),
                offsets.clone(),
            )),
        };
        e.preparing = true;
        let completed = self
            .coordinator
            .persist(transactional_id, decided, self.config.commit_fsync)
            .and_then(|()| self.complete_commit(producer, &partitions, &offsets, false));
        e.preparing = false;
        e.unsynced = partitions;
        completed
    }

    /// Writes commit markers and commits the offsets of a decided transaction.
    fn complete_commit(
        &self,
        producer: ProducerId,
        partitions: &BTreeSet<(String, u32)>,
        offsets: &TxnOffsets,
        recovering: bool,
    ) -> Result<(), StateError> {
        self.write_markers(producer, partitions, true)?;
        for (group, o) in offsets {
            self.commit_txn_offsets(group, o, recovering)?;
        }
        Ok(())
    }

    /// Ends `producer`'s transaction in each of `partitions` with a marker (where it has one
    /// open). Not synced here: see [`LogEngine::end_transaction`].
    fn write_markers(
        &self,
        producer: ProducerId,
        partitions: &BTreeSet<(String, u32)>,
        commit: bool,
    ) -> Result<(), StateError> {
        for (t, p) in partitions {
            self.with_partition(t, *p, |log| log.append_marker(producer, commit).map(drop))?;
        }
        Ok(())
    }

    /// At open: completes the commits decided before a crash, then aborts every transaction
    /// still open in any partition.
    fn recover_transactions(&self) -> Result<TransactionRecovery, StateError> {
        let mut report = TransactionRecovery::default();
        for (id, d) in self.coordinator.decided() {
            if let Some((partitions, offsets)) = &d.commit {
                // Only where the decided transaction is still open: the same producer may
                // have begun another one since, which is not decided.
                let mut pending = BTreeSet::new();
                for (t, p, first) in partitions {
                    if self.topic_config(t).is_some_and(|c| *p < c.partitions)
                        && self
                            .open_transactions(t, *p)?
                            .contains(&(d.producer.id, *first))
                    {
                        pending.insert((t.clone(), *p));
                    }
                }
                self.complete_commit(d.producer, &pending, offsets, true)?;
                for (t, p) in &pending {
                    self.with_partition(t, *p, |log| log.flush())?;
                }
                if !pending.is_empty() {
                    report.completed += 1;
                }
            }
            self.coordinator.persist(
                &id,
                Durable {
                    producer: d.producer,
                    commit: None,
                },
                true,
            )?;
        }
        let mut aborted = std::collections::BTreeSet::new();
        for (topic, config) in self.topics() {
            for p in 0..config.partitions {
                for (producer, _) in self.open_transactions(&topic, p)? {
                    let id = ProducerId {
                        id: producer,
                        epoch: self.coordinator.epoch_of(producer),
                    };
                    self.with_partition(&topic, p, |log| {
                        log.append_marker(id, false)?;
                        log.flush()
                    })?;
                    aborted.insert(producer);
                }
            }
        }
        report.aborted = aborted.len() as u64;
        if report != TransactionRecovery::default() {
            tracing::warn!(
                completed = report.completed,
                aborted = report.aborted,
                "transactions a crash left open were completed or aborted"
            );
        }
        Ok(report)
    }
}

fn get_topic<'a>(
    topics: &'a BTreeMap<String, Topic>,
    topic: &str,
) -> Result<&'a Topic, StateError> {
    topics
        .get(topic)
        .ok_or_else(|| err(LogError::UnknownTopic(topic.to_string())))
}

fn get_partition<'a>(
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
fn check_keys(t: &Topic, topic: &str, records: &[NewRecord]) -> Result<(), StateError> {
    if t.config.cleanup == CleanupPolicy::Compact && records.iter().any(|r| r.key.is_none()) {
        return Err(err(LogError::KeyRequired(topic.to_string())));
    }
    Ok(())
}

/// A topic's partition settings with the engine's overrides applied.
fn effective_log_config(engine: &EngineConfig, topic: &TopicConfig) -> LogConfig {
    let mut log = topic.log;
    if let Some(fsync) = engine.fsync {
        log.fsync = fsync;
    }
    log
}

fn write_meta(dir: &Path, c: &TopicConfig) -> Result<(), StateError> {
    let cleanup = match c.cleanup {
        CleanupPolicy::Delete => "delete",
        CleanupPolicy::Compact => "compact",
    };
    let text = format!(
        "partitions={}\ncleanup.policy={}\nsegment.bytes={}\nsegment.ms={}\nretention.bytes={}\n\
         retention.ms={}\ndelete.retention.ms={}\nfsync={}\n",
        c.partitions,
        cleanup,
        c.log.segment_bytes,
        c.log.segment_ms.unwrap_or(-1),
        c.log.retention_bytes.map_or(-1, |b| b as i64),
        c.log.retention_ms.unwrap_or(-1),
        c.delete_retention_ms,
        match c.log.fsync {
            FsyncPolicy::EveryBatch => "batch",
            FsyncPolicy::OnFlush => "flush",
        }
    );
    write_atomic(
        &dir.join("topic.meta"),
        &with_checksum(&text),
        "writing topic settings",
    )
}

/// `text` preceded by a line `crc32=<hex>` of its CRC-32, so that any change to a settings
/// file is detected ([`checked_text`]).
pub(crate) fn with_checksum(text: &str) -> String {
    format!("crc32={:08x}\n{text}", crc32fast::hash(text.as_bytes()))
}

/// The body of a file written by [`with_checksum`]: `Err` when the checksum does not
/// match; a file without the checksum line (written by an earlier version) as it is.
pub(crate) fn checked_text(text: &str) -> Result<&str, String> {
    let Some(rest) = text.strip_prefix("crc32=") else {
        return Ok(text);
    };
    let (crc, body) = rest
        .split_once('\n')
        .ok_or_else(|| "its checksum line is cut".to_string())?;
    match u32::from_str_radix(crc, 16) {
        Ok(crc) if crc == crc32fast::hash(body.as_bytes()) && rest.len() == 9 + body.len() => {
            Ok(body)
        }
        _ => Err("its checksum does not match its contents".to_string()),
    }
}

/// Whether a topic directory holds any partition data (a segment file).
fn holds_data(dir: &Path) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries
        .flatten()
        .any(|e| e.path().is_dir() && holds_partition_data(&e.path()))
}

/// A topic's settings from its `topic.meta`: `Ok(None)` when the file is missing, an error
/// naming the problem when it cannot be read.
fn read_meta(dir: &Path) -> Result<Option<TopicConfig>, String> {
    let path = dir.join("topic.meta");
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("its topic.meta cannot be read: {e}")),
    };
    let body = checked_text(&text).map_err(|why| format!("its topic.meta is damaged: {why}"))?;
    let config = parse_meta(body)
        .ok_or_else(|| format!("its topic.meta is damaged ({} bytes)", text.len()))?;
    // A partition directory beyond the count holds data the settings do not know of.
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let beyond = e
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|p| p >= config.partitions);
            if beyond && e.path().is_dir() && holds_partition_data(&e.path()) {
                return Err(format!(
                    "its topic.meta says {} partitions but {} holds data",
                    config.partitions,
                    e.path().display()
                ));
            }
        }
    }
    if body.len() == text.len() {
        // Written by an earlier version: from now on with a checksum.
        write_meta(dir, &config).map_err(|e| e.to_string())?;
    }
    Ok(Some(config))
}

/// Whether a partition directory holds a non-empty segment.
fn holds_partition_data(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|files| {
        files.flatten().any(|f| {
            f.file_name().to_string_lossy().ends_with(".log")
                && f.metadata().is_ok_and(|m| m.len() > 0)
        })
    })
}

/// The most partitions a topic may have (a damaged count must not create millions of
/// directories).
const MAX_PARTITIONS: u32 = 100_000;

fn parse_meta(text: &str) -> Option<TopicConfig> {
    let mut c = TopicConfig::new(1);
    let mut partitions = false;
    // Topics written before a setting existed get its default.
    for line in text.lines() {
        let (k, v) = line.split_once('=')?;
        let non_negative = |v: &str| v.parse::<i64>().ok().map(|n| (n >= 0).then_some(n));
        match k {
            "partitions" => {
                c.partitions = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_PARTITIONS).contains(n))?;
                partitions = true;
            }
            "cleanup.policy" => {
                c.cleanup = match v {
                    "compact" => CleanupPolicy::Compact,
                    "delete" => CleanupPolicy::Delete,
                    _ => return None,
                }
            }
            "segment.bytes" => c.log.segment_bytes = v.parse().ok().filter(|b| *b > 0)?,
            "segment.ms" => c.log.segment_ms = non_negative(v)?,
            "retention.bytes" => {
                let b: i64 = v.parse().ok().filter(|b| *b >= -1)?;
                c.log.retention_bytes = u64::try_from(b).ok();
            }
            "retention.ms" => c.log.retention_ms = non_negative(v)?,
            "delete.retention.ms" => {
                c.delete_retention_ms = v.parse().ok().filter(|ms| *ms >= 0)?;
            }
            "fsync" => {
                c.log.fsync = match v {
                    "batch" => FsyncPolicy::EveryBatch,
                    "flush" => FsyncPolicy::OnFlush,
                    _ => return None,
                }
            }
            // A key this version does not write: damage (or a newer version's file).
            _ => return None,
        }
    }
    partitions.then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(v: &str) -> NewRecord {
        NewRecord {
            timestamp: 7,
            key: Some(b"k".to_vec()),
            value: Some(v.as_bytes().to_vec()),
            headers: Vec::new(),
        }
    }

    #[test]
    fn a_topic_with_a_damaged_or_missing_meta_is_reported_and_not_adopted() {
        for damage in ["garbage", "missing"] {
            let dir = tempfile::tempdir().unwrap();
            {
                let e = LogEngine::open(dir.path()).unwrap();
                e.create_topic("t", TopicConfig::new(2)).unwrap();
                e.append("t", 1, &[rec("a"), rec("b")]).unwrap();
                e.flush().unwrap();
                // Created, never written: dropped quietly as an unfinished creation would be.
                e.create_topic("empty", TopicConfig::new(1)).unwrap();
            }
            let meta = dir.path().join("topics").join("t").join("topic.meta");
            match damage {
                "garbage" => fs::write(&meta, "\u{0}\u{0}partitions=x").unwrap(),
                _ => fs::remove_file(&meta).unwrap(),
            }
            fs::remove_file(dir.path().join("topics").join("empty").join("topic.meta")).unwrap();
            let e = LogEngine::open(dir.path()).unwrap();
            let names: Vec<String> = e.topics().into_iter().map(|(n, _)| n).collect();
            assert!(names.is_empty(), "{damage}: {names:?}");
            let why = e.damaged_topics().get("t").cloned().unwrap();
            assert!(why.contains("topic.meta"), "{damage}: {why}");
            assert!(!e.damaged_topics().contains_key("empty"), "{damage}");
            // Re-creating it would silently adopt the old records: refused, with the reason.
            let err = e
                .create_topic("t", TopicConfig::new(2))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("topic.meta") && err.contains("remove"),
                "{err}"
            );
            e.create_topic("empty", TopicConfig::new(1)).unwrap();
            assert!(
                dir.path().join("topics").join("t").join("1").exists(),
                "{damage}: the data is kept"
            );
        }
    }

    #[test]
    fn edited_settings_files_are_reported_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        {
            let e = LogEngine::open(dir.path()).unwrap();
            e.create_topic("t", TopicConfig::new(3)).unwrap();
            e.append("t", 2, &[rec("a")]).unwrap();
            let p = e.init_producer_id("x").unwrap();
            e.append_transactional("x", p, "t", 0, &[rec("b")]).unwrap();
            e.end_transaction("x", p, true).unwrap();
        }
        let meta = dir.path().join("topics/t/topic.meta");
        let original = fs::read_to_string(&meta).unwrap();
        assert!(original.starts_with("crc32="), "{original}");
        // One changed digit: the checksum no longer matches.
        fs::write(&meta, original.replace("partitions=3", "partitions=2")).unwrap();
        let e = LogEngine::open(dir.path()).unwrap();
        assert!(
            e.damaged_topics()["t"].contains("checksum"),
            "{:?}",
            e.damaged_topics()
        );
        drop(e);
        // A file of an earlier version (no checksum) is read, and rewritten with one; but a
        // partition directory beyond its count holding data is damage.
        let body = original.split_once('\n').unwrap().1.to_string();
        fs::write(&meta, &body).unwrap();
        let e = LogEngine::open(dir.path()).unwrap();
        assert_eq!(e.topic_config("t").unwrap().partitions, 3);
        drop(e);
        assert_eq!(fs::read_to_string(&meta).unwrap(), original);
        fs::write(&meta, body.replace("partitions=3", "partitions=2")).unwrap();
        let e = LogEngine::open(dir.path()).unwrap();
        assert!(
            e.damaged_topics()["t"].contains("holds data"),
            "{:?}",
            e.damaged_topics()
        );
        drop(e);
        fs::write(&meta, &original).unwrap();
        // The transaction state is checked the same way.
        let state = dir.path().join("transactions.state");
        let text = fs::read_to_string(&state).unwrap();
        fs::write(&state, text.replace("txn 78 0 0", "txn 79 0 0")).unwrap();
        let err = LogEngine::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("transactions.state") && err.contains("checksum"),
            "{err}"
        );
        let body = text.split_once('\n').unwrap().1;
        let exhausted = format!("next-producer-id {}\n", i64::MAX);
        fs::write(&state, exhausted + body.split_once('\n').unwrap().1).unwrap();
        let e = LogEngine::open(dir.path()).unwrap();
        assert!(
            e.init_producer_id("y").is_err(),
            "no producer id left: an error, no panic"
        );
    }

    #[test]
    fn topics_records_and_group_offsets_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let e = LogEngine::open(dir.path()).unwrap();
            e.create_topic("page_views", TopicConfig::new(4)).unwrap();
            assert!(
                e.create_topic("page_views", TopicConfig::new(4))
                    .unwrap_err()
                    .to_string()
                    .contains("already exists")
            );
            assert!(e.create_topic("bad name", TopicConfig::new(1)).is_err());
            assert!(e.create_topic("none", TopicConfig::new(0)).is_err());
            assert_eq!(e.append("page_views", 2, &[rec("a"), rec("b")]).unwrap(), 0);
            assert_eq!(e.append("page_views", 2, &[rec("c")]).unwrap(), 2);
            let missing = e.append("page_views", 4, &[rec("x")]).unwrap_err();
            assert!(missing.to_string().contains("no partition 4"), "{missing}");
            e.commit_offsets("app", &[("page_views", 2, 2)]).unwrap();
            let second = LogEngine::open(dir.path()).unwrap_err();
            assert!(second.to_string().contains("in use"), "{second}");
            e.flush().unwrap();
        }
        let e = LogEngine::open(dir.path()).unwrap();
        assert_eq!(e.topics().len(), 1);
        assert_eq!(e.topics()[0].1.partitions, 4);
        assert_eq!(e.offsets("page_views", 2).unwrap(), (0, 3));
        assert_eq!(e.committed("app", "page_views", 2), Some(2));
        assert_eq!(e.committed("app", "page_views", 1), None);
        let from = e.committed("app", "page_views", 2).unwrap();
        let rest = e.read("page_views", 2, from, usize::MAX).unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].value.as_deref(), Some(b"c".as_slice()));
        e.delete_topic("page_views").unwrap();
        assert!(e.read("page_views", 0, 0, 10).is_err());
    }

    fn keyed(k: &str, v: Option<&str>, ts: i64) -> NewRecord {
        NewRecord {
            timestamp: ts,
            key: Some(k.as_bytes().to_vec()),
            value: v.map(|v| v.as_bytes().to_vec()),
            headers: Vec::new(),
        }
    }

    #[test]
    fn open_with_overrides_every_partitions_fsync_policy() {
        let dir = tempfile::tempdir().unwrap();
        let fsync = |e: &LogEngine, t: &str| e.with_partition(t, 0, |p| Ok(p.config().fsync));
        {
            let e = LogEngine::open(dir.path()).unwrap();
            let mut c = TopicConfig::new(1);
            c.log.fsync = FsyncPolicy::OnFlush;
            e.create_topic("t", c).unwrap();
            assert_eq!(fsync(&e, "t").unwrap(), FsyncPolicy::OnFlush);
        }
        let config = EngineConfig::default().with_fsync(FsyncPolicy::EveryBatch);
        let e = LogEngine::open_with(dir.path(), config).unwrap();
        assert_eq!(e.config(), config);
        assert_eq!(fsync(&e, "t").unwrap(), FsyncPolicy::EveryBatch);
        e.create_topic("u", TopicConfig::new(1)).unwrap();
        assert_eq!(fsync(&e, "u").unwrap(), FsyncPolicy::EveryBatch);
        // The topic's own setting is what it keeps.
        assert_eq!(e.topic_config("t").unwrap().log.fsync, FsyncPolicy::OnFlush);
    }

    #[test]
    fn topic_settings_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = TopicConfig::new(3).compacted().with_retention_ms(60_000);
        c.delete_retention_ms = 5;
        c.log.segment_ms = None;
        c.log.retention_bytes = Some(1 << 20);
        {
            let e = LogEngine::open(dir.path()).unwrap();
            e.create_topic("t", c).unwrap();
            assert!(
                e.create_topic("neg", TopicConfig::new(1).with_retention_ms(-1))
                    .is_err()
            );
        }
        let e = LogEngine::open(dir.path()).unwrap();
        assert_eq!(e.topic_config("t"), Some(c));
        assert_eq!(e.topic_config("neg"), None);
    }

    #[test]
    fn offset_for_time_and_maintenance_through_the_engine() {
        let dir = tempfile::tempdir().unwrap();
        let e = LogEngine::open(dir.path()).unwrap();
        let mut timed = TopicConfig::new(1).with_retention_ms(1_000);
        timed.log.segment_ms = Some(100);
        e.create_topic("timed", timed).unwrap();
        let mut compact = TopicConfig::new(1).compacted();
        compact.log.segment_bytes = 100;
        compact.delete_retention_ms = 0;
        e.create_topic("compact", compact).unwrap();
        for i in 0..20 {
            e.append("timed", 0, &[keyed("k", Some("v"), i * 50)])
                .unwrap();
            e.append("compact", 0, &[keyed(&format!("k{}", i % 4), Some("v"), 0)])
                .unwrap();
        }
        e.append("compact", 0, &[keyed("k0", None, 0)]).unwrap();
        for k in ["k5", "k6", "k7", "k8"] {
            e.append("compact", 0, &[keyed(k, Some("last"), 0)])
                .unwrap();
        }
        assert_eq!(e.offset_for_time("timed", 0, 125).unwrap(), Some(3));
        assert_eq!(e.offset_for_time("timed", 0, 951).unwrap(), None);
        assert!(e.offset_for_time("nope", 0, 0).is_err());
        let nulls = e.append("compact", 0, &[NewRecord::default()]).unwrap_err();
        assert!(nulls.to_string().contains("without a key"), "{nulls}");
        // At 1.6s, records before 0.6s are expired: 12 of them, in 100ms segments.
        let report = e.run_maintenance_at(1_600).unwrap();
        assert_eq!(report.segments_deleted, 6);
        assert_eq!(e.offsets("timed", 0).unwrap(), (12, 20));
        assert_eq!(e.offset_for_time("timed", 0, 0).unwrap(), Some(12));
        assert!(report.records_removed >= 16, "{report:?}");
        let left: Vec<(String, Option<Vec<u8>>)> = e
            .read("compact", 0, 0, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|r| (String::from_utf8(r.key.unwrap()).unwrap(), r.value))
            .collect();
        let keys: Vec<&str> = left.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["k1", "k2", "k3", "k5", "k6", "k7", "k8"],
            "the k0 tombstone expired at once"
        );
        assert_eq!(e.offsets("compact", 0).unwrap(), (0, 25));
    }

    #[test]
    fn deleting_a_topic_drops_its_committed_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let e = LogEngine::open(dir.path()).unwrap();
        e.create_topic("a", TopicConfig::new(1)).unwrap();
        e.create_topic("b", TopicConfig::new(2)).unwrap();
        e.commit_offsets("g1", &[("a", 0, 1), ("b", 1, 2)]).unwrap();
        e.commit_offsets("g2", &[("b", 0, 3)]).unwrap();
        assert_eq!(e.groups(), ["g1", "g2"]);
        e.delete_topic("b").unwrap();
        assert_eq!(e.groups(), ["g1"]);
        assert_eq!(e.group_offsets("g1").unwrap(), [("a".to_string(), 0, 1)]);
        assert_eq!(e.group_offsets("g2"), None);
        drop(e);
        let e = LogEngine::open(dir.path()).unwrap();
        assert_eq!(e.groups(), ["g1"]);
        assert_eq!(e.committed("g1", "b", 1), None);
    }

    fn committed_values(
        e: &LogEngine,
        topic: &str,
        partition: u32,
        max_bytes: usize,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let r = e
                .read_with(
                    topic,
                    partition,
                    offset,
                    max_bytes,
                    Isolation::ReadCommitted,
                )
                .unwrap();
            let lso = e.last_stable_offset(topic, partition).unwrap();
            assert!(
                r.records.iter().all(|r| r.offset < lso),
                "nothing at or past the LSO"
            );
            out.extend(
                r.records
                    .iter()
                    .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap()),
            );
            if r.next_offset == offset {
                return out;
            }
            assert!(r.next_offset > offset);
            offset = r.next_offset;
        }
    }

    fn val(v: &str) -> NewRecord {
        keyed("k", Some(v), 1)
    }

    #[test]
    fn read_committed_sees_a_transaction_only_once_it_commits() {
        let dir = tempfile::tempdir().unwrap();
        let e = LogEngine::open(dir.path()).unwrap();
        e.create_topic("in", TopicConfig::new(1)).unwrap();
        e.create_topic("out", TopicConfig::new(2)).unwrap();
        let p = e.init_producer_id("app-1").unwrap();
        e.append("out", 0, &[val("plain-1")]).unwrap();
        e.append_transactional("app-1", p, "out", 0, &[val("t1"), val("t2")])
            .unwrap();
        e.append_transactional("app-1", p, "out", 1, &[val("t3")])
            .unwrap();
        e.append("out", 0, &[val("plain-2")]).unwrap();
        e.add_offsets_to_transaction("app-1", p, "g", &[("in", 0, 7)])
            .unwrap();
        // Open: read_committed stops at the transaction's first offset; uncommitted sees all.
        assert_eq!(e.last_stable_offset("out", 0).unwrap(), 1);
        assert_eq!(committed_values(&e, "out", 0, usize::MAX), ["plain-1"]);
        assert!(committed_values(&e, "out", 1, usize::MAX).is_empty());
        assert_eq!(e.read("out", 0, 0, usize::MAX).unwrap().len(), 4);
        assert_eq!(
            e.committed("g", "in", 0),
            None,
            "offsets wait for the commit"
        );
        let status = &e.transactions()[0];
        assert_eq!(status.state, crate::TransactionState::Ongoing);
        assert_eq!(status.partitions.len(), 2);
        e.end_transaction("app-1", p, true).unwrap();
        assert_eq!(e.committed("g", "in", 0), Some(7));
        for max_bytes in [1, usize::MAX] {
            assert_eq!(
                committed_values(&e, "out", 0, max_bytes),
                ["plain-1", "t1", "t2", "plain-2"]
            );
            assert_eq!(committed_values(&e, "out", 1, max_bytes), ["t3"]);
        }
        // The markers take offsets but are never read.
        assert_eq!(e.offsets("out", 0).unwrap().1, 5);
        assert_eq!(e.last_stable_offset("out", 0).unwrap(), 5);
        assert_eq!(e.read("out", 1, 0, usize::MAX).unwrap().len(), 1);
        assert_eq!(e.transactions()[0].state, crate::TransactionState::Empty);
        // An aborted one is never visible to read_committed, and commits no offsets.
        e.append_transactional("app-1", p, "out", 1, &[val("gone")])
            .unwrap();
        e.add_offsets_to_transaction("app-1", p, "g", &[("in", 0, 9)])
            .unwrap();
        e.end_transaction("app-1", p, false).unwrap();
        e.append("out", 1, &[val("after")]).unwrap();
        assert_eq!(committed_values(&e, "out", 1, usize::MAX), ["t3", "after"]);
        assert_eq!(e.read("out", 1, 0, usize::MAX).unwrap().len(), 3);
        assert_eq!(e.committed("g", "in", 0), Some(7));
        drop(e);
        let e = LogEngine::open(dir.path()).unwrap();
        assert_eq!(e.transaction_recovery(), TransactionRecovery::default());
        assert_eq!(committed_values(&e, "out", 1, 1), ["t3", "after"]);
    }

    #[test]
    fn registering_a_transactional_id_again_fences_the_old_producer() {
        let dir = tempfile::tempdir().unwrap();
        let e = LogEngine::open(dir.path()).unwrap();
        e.create_topic("out", TopicConfig::new(1)).unwrap();
        let old = e.init_producer_id("t").unwrap();
        e.append_transactional("t", old, "out", 0, &[val("zombie")])
            .unwrap();
        let new = e.init_producer_id("t").unwrap();
        assert_eq!((new.id, new.epoch), (old.id, old.epoch + 1));
        let fenced = |r: Result<(), StateError>| {
            assert!(
                matches!(r, Err(StateError::Log(LogError::ProducerFenced { .. }))),
                "{r:?}"
            );
        };
        fenced(
            e.append_transactional("t", old, "out", 0, &[val("late")])
                .map(drop),
        );
        fenced(e.add_offsets_to_transaction("t", old, "g", &[("out", 0, 1)]));
        fenced(e.end_transaction("t", old, true));
        // The old producer's open transaction was aborted by the registration.
        assert!(committed_values(&e, "out", 0, usize::MAX).is_empty());
        e.append_transactional("t", new, "out", 0, &[val("live")])
            .unwrap();
        e.end_transaction("t", new, true).unwrap();
        assert_eq!(committed_values(&e, "out", 0, usize::MAX), ["live"]);
        assert!(matches!(
            e.append_transactional("nobody", new, "out", 0, &[val("x")]),
            Err(StateError::Log(LogError::UnknownTransactionalId(_)))
        ));
        // Producer ids and epochs survive a restart.
        drop(e);
        let e = LogEngine::open(dir.path()).unwrap();
        let again = e.init_producer_id("t").unwrap();
        assert_eq!(again.epoch, new.epoch + 1);
        let other = e.init_producer_id("u").unwrap();
        assert!(other.id > new.id, "producer ids are never reused");
    }

    #[test]
    fn a_crash_aborts_open_transactions_and_completes_decided_commits() {
        let dir = tempfile::tempdir().unwrap();
        {
            let e = LogEngine::open(dir.path()).unwrap();
            e.create_topic("out", TopicConfig::new(2)).unwrap();
            e.create_topic("in", TopicConfig::new(1)).unwrap();
            let a = e.init_producer_id("a").unwrap();
            let b = e.init_producer_id("b").unwrap();
            e.append_transactional("a", a, "out", 0, &[val("open")])
                .unwrap();
            e.append_transactional("b", b, "out", 0, &[val("decided")])
                .unwrap();
            e.append_transactional("b", b, "out", 1, &[val("decided-1")])
                .unwrap();
            // What a crash right after the commit decision leaves behind.
            let mut offsets = TxnOffsets::new();
            offsets
                .entry("g".into())
                .or_default()
                .insert(("in".into(), 0), 3);
            e.coordinator
                .persist(
                    "b",
                    Durable {
                        producer: b,
                        commit: Some((vec![("out".into(), 0, 1), ("out".into(), 1, 0)], offsets)),
                    },
                    true,
                )
                .unwrap();
        }
        let e = LogEngine::open(dir.path()).unwrap();
        assert_eq!(
            e.transaction_recovery(),
            TransactionRecovery {
                completed: 1,
                aborted: 1
            }
        );
        assert_eq!(committed_values(&e, "out", 0, usize::MAX), ["decided"]);
        assert_eq!(committed_values(&e, "out", 1, usize::MAX), ["decided-1"]);
        assert_eq!(e.committed("g", "in", 0), Some(3));
        assert_eq!(
            e.last_stable_offset("out", 0).unwrap(),
            e.offsets("out", 0).unwrap().1
        );
        drop(e);
        let e = LogEngine::open(dir.path()).unwrap();
        assert_eq!(e.transaction_recovery(), TransactionRecovery::default());
    }

    #[test]
    fn a_stored_decision_applied_again_never_moves_offsets_back() {
        let dir = tempfile::tempdir().unwrap();
        {
            let e = LogEngine::open(dir.path()).unwrap();
            e.create_topic("in", TopicConfig::new(1)).unwrap();
            e.create_topic("out", TopicConfig::new(1)).unwrap();
            let a = e.init_producer_id("a").unwrap();
            e.append_transactional("a", a, "out", 0, &[val("x")])
                .unwrap();
            e.add_offsets_to_transaction("a", a, "g", &[("in", 0, 3)])
                .unwrap();
            e.end_transaction("a", a, true).unwrap();
            // The partition moved to another producer, which committed further.
            let b = e.init_producer_id("b").unwrap();
            e.add_offsets_to_transaction("b", b, "g", &[("in", 0, 8)])
                .unwrap();
            e.end_transaction("b", b, true).unwrap();
            assert_eq!(e.committed("g", "in", 0), Some(8));
        }
        // Opening applies both stored decisions again: markers are there, offsets stay.
        let e = LogEngine::open(dir.path()).unwrap();
        assert_eq!(e.transaction_recovery(), TransactionRecovery::default());
        assert_eq!(e.committed("g", "in", 0), Some(8));
        assert_eq!(committed_values(&e, "out", 0, usize::MAX), ["x"]);
    }

    #[test]
    fn compaction_keeps_committed_records_and_drops_aborted_ones() {
        let dir = tempfile::tempdir().unwrap();
        let e = LogEngine::open(dir.path()).unwrap();
        let mut c = TopicConfig::new(1).compacted();
        c.log.segment_bytes = 200;
        e.create_topic("cl", c).unwrap();
        let p = e.init_producer_id("t").unwrap();
        for round in 0..6 {
            e.append_transactional(
                "t",
                p,
                "cl",
                0,
                &[keyed("a", Some(&format!("a{round}")), 1)],
            )
            .unwrap();
            e.append_transactional(
                "t",
                p,
                "cl",
                0,
                &[keyed(&format!("k{round}"), Some("x"), 1)],
            )
            .unwrap();
            e.end_transaction("t", p, round % 2 == 0).unwrap();
        }
        // An open transaction at the end: nothing at or after it is compacted.
        e.append_transactional("t", p, "cl", 0, &[keyed("a", Some("open"), 1)])
            .unwrap();
        let before: Vec<(String, String)> = read_all_committed(&e);
        e.run_maintenance_at(0).unwrap();
        let after = read_all_committed(&e);
        let latest = |v: &[(String, String)]| {
            let mut m = BTreeMap::new();
            for (k, x) in v {
                m.insert(k.clone(), x.clone());
            }
            m
        };
        assert_eq!(latest(&after), latest(&before));
        assert_eq!(latest(&after).get("a").map(String::as_str), Some("a4"));
        assert!(
            !after.iter().any(|(k, _)| k == "k1" || k == "k3"),
            "aborted"
        );
        e.end_transaction("t", p, true).unwrap();
        drop(e);
        let e = LogEngine::open(dir.path()).unwrap();
        assert_eq!(
            latest(&read_all_committed(&e)).get("a").map(String::as_str),
            Some("open")
        );
    }

    fn read_all_committed(e: &LogEngine) -> Vec<(String, String)> {
        let r = e
            .read_with("cl", 0, 0, usize::MAX, Isolation::ReadCommitted)
            .unwrap();
        r.records
            .into_iter()
            .map(|r| {
                (
                    String::from_utf8(r.key.unwrap()).unwrap(),
                    String::from_utf8(r.value.unwrap()).unwrap(),
                )
            })
            .collect()
    }

    #[derive(Debug, Clone)]
    enum Op {
        Append { producer: usize, partition: u32 },
        Plain { partition: u32 },
        End { producer: usize, commit: bool },
        Crash,
        Reregister { producer: usize },
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (0usize..3, 0u32..2).prop_map(|(producer, partition)| Op::Append { producer, partition }),
            1 => (0u32..2).prop_map(|partition| Op::Plain { partition }),
            2 => (0usize..3, any::<bool>()).prop_map(|(producer, commit)| Op::End { producer, commit }),
            1 => Just(Op::Crash),
            1 => (0usize..3).prop_map(|producer| Op::Reregister { producer }),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(40))]
        /// Whatever the interleaving of transactions, aborts, re-registrations and crashes,
        /// read_committed returns exactly the records of committed transactions and the
        /// plain ones, in offset order, and nothing at or past the last stable offset.
        #[test]
        fn read_committed_matches_a_model(ops in proptest::collection::vec(op(), 1..60), max_bytes in 1usize..200) {
            let dir = tempfile::tempdir().unwrap();
            let mut e = LogEngine::open(dir.path()).unwrap();
            e.create_topic("t", TopicConfig::new(2)).unwrap();
            let ids = ["p0", "p1", "p2"];
            let mut producers: Vec<ProducerId> = ids.iter().map(|id| e.init_producer_id(id).unwrap()).collect();
            // Per partition: (value, whose open transaction or None, decided).
            let mut written: Vec<Vec<(String, Option<usize>)>> = vec![Vec::new(), Vec::new()];
            let mut committed: Vec<std::collections::BTreeSet<String>> = vec![Default::default(), Default::default()];
            let mut pending: Vec<Vec<(u32, String)>> = vec![Vec::new(); 3];
            let mut n = 0;
            for op in ops {
                match op {
                    Op::Append { producer, partition } => {
                        n += 1;
                        let v = format!("v{n}");
                        e.append_transactional(ids[producer], producer_of(&producers, producer), "t", partition, &[val(&v)]).unwrap();
                        written[partition as usize].push((v.clone(), Some(producer)));
                        pending[producer].push((partition, v));
                    }
                    Op::Plain { partition } => {
                        n += 1;
                        let v = format!("v{n}");
                        e.append("t", partition, &[val(&v)]).unwrap();
                        written[partition as usize].push((v.clone(), None));
                        committed[partition as usize].insert(v);
                    }
                    Op::End { producer, commit } => {
                        e.end_transaction(ids[producer], producers[producer], commit).unwrap();
                        for (p, v) in pending[producer].drain(..) {
                            if commit {
                                committed[p as usize].insert(v);
                            }
                        }
                    }
                    Op::Crash => {
                        drop(e);
                        e = LogEngine::open(dir.path()).unwrap();
                        for p in &mut pending {
                            p.clear();
                        }
                        producers = ids.iter().map(|id| e.init_producer_id(id).unwrap()).collect();
                    }
                    Op::Reregister { producer } => {
                        producers[producer] = e.init_producer_id(ids[producer]).unwrap();
                        pending[producer].clear();
                    }
                }
                for partition in 0..2u32 {
                    let got = committed_values(&e, "t", partition, max_bytes);
                    // Expected: in write order, committed ones, up to the first record of a
                    // transaction still open.
                    let open_values: std::collections::BTreeSet<&String> =
                        pending.iter().flatten().filter(|(p, _)| *p == partition).map(|(_, v)| v).collect();
                    let mut want = Vec::new();
                    for (v, _) in &written[partition as usize] {
                        if open_values.contains(v) {
                            break;
                        }
                        if committed[partition as usize].contains(v) {
                            want.push(v.clone());
                        }
                    }
                    proptest::prop_assert_eq!(got, want);
                }
            }
        }
    }

    fn producer_of(producers: &[ProducerId], i: usize) -> ProducerId {
        producers[i]
    }
}
