//! The embedded log engine: topics of N partitions on local disk, and durable consumer
//! group offsets. It is the broker the runtime uses when no `bootstrap.servers` is set.
//!
//! Layout: `<dir>/.lock` (held while the engine is open), `<dir>/topics/<topic>/topic.meta`
//! (partition count and settings), `<dir>/topics/<topic>/<partition>/` (a [`PartitionLog`]),
//! `<dir>/groups/<group>.offsets` (committed offsets, written atomically) and, only while an
//! [`LogEngine::append_and_commit`] is in flight, `<dir>/txn.intent`.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, RwLock};

use crate::log::{FsyncPolicy, LogConfig, LogRecord, NewRecord, PartitionLog, RecoveryReport};
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineConfig {
    /// When appends reach the disk, for every partition of every topic. `None` (the
    /// default): each topic's own [`LogConfig::fsync`].
    pub fsync: Option<FsyncPolicy>,
}

impl EngineConfig {
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

/// What opening the engine did with a transaction a crash interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionRecovery {
    /// Every append was durable: the offset commit was applied.
    Completed,
    /// Some append was not: every append was truncated away and nothing was committed.
    RolledBack,
}

/// A group's committed offsets by (topic, partition).
type GroupOffsets = BTreeMap<(String, u32), i64>;

struct Topic {
    config: TopicConfig,
    partitions: Vec<Mutex<PartitionLog>>,
}

/// The embedded log engine (see the [module docs](self)). Shareable between threads.
pub struct LogEngine {
    dir: PathBuf,
    config: EngineConfig,
    _lock: File,
    topics: RwLock<BTreeMap<String, Topic>>,
    groups: Mutex<HashMap<String, GroupOffsets>>,
    /// Serializes transactions (there is one intent file).
    txn: Mutex<()>,
    recovery: RecoveryReport,
    txn_recovery: Option<TransactionRecovery>,
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
    move |source| StateError::Io {
        store: path.display().to_string(),
        action,
        source,
    }
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
fn write_atomic(path: &Path, text: &str, action: &'static str) -> Result<(), StateError> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).map_err(io(&tmp, action))?;
        std::io::Write::write_all(&mut f, text.as_bytes()).map_err(io(&tmp, action))?;
        f.sync_all().map_err(io(&tmp, action))?;
    }
    fs::rename(&tmp, path).map_err(io(path, action))?;
    if let Some(parent) = path.parent()
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

/// The steps of a transaction after which a crash is survivable (tests stop there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxnStep {
    /// The intent is durable; nothing is appended.
    Intent,
    /// The first partition's batch is appended and synced.
    FirstAppend,
    /// Every batch is appended and synced; offsets not committed.
    Appended,
    /// The offsets are committed; the intent is still there.
    Committed,
}

/// A transaction's intent: what it appends where and what it commits.
#[derive(Debug, Default, PartialEq, Eq)]
struct Intent {
    group: String,
    commits: Vec<(String, u32, i64)>,
    /// (topic, partition, end offset before, end offset after).
    appends: Vec<(String, u32, i64, i64)>,
}

impl Intent {
    fn encode(&self) -> String {
        let mut out = format!("group {}\n", self.group);
        for (t, p, o) in &self.commits {
            out.push_str(&format!("commit {t} {p} {o}\n"));
        }
        for (t, p, before, after) in &self.appends {
            out.push_str(&format!("append {t} {p} {before} {after}\n"));
        }
        out
    }

    fn decode(text: &str) -> Option<Self> {
        let mut intent = Intent::default();
        for line in text.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            match f.as_slice() {
                ["group", g] => intent.group = (*g).to_string(),
                ["commit", t, p, o] => {
                    intent
                        .commits
                        .push(((*t).to_string(), p.parse().ok()?, o.parse().ok()?));
                }
                ["append", t, p, b, a] => intent.appends.push((
                    (*t).to_string(),
                    p.parse().ok()?,
                    b.parse().ok()?,
                    a.parse().ok()?,
                )),
                _ => return None,
            }
        }
        (!intent.group.is_empty()).then_some(intent)
    }
}

impl LogEngine {
    /// Opens (creating if needed) the engine in `dir` with default settings, recovering
    /// every partition.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        Self::open_with(dir, EngineConfig::default())
    }

    /// Opens (creating if needed) the engine in `dir`, recovering every partition (torn
    /// tails, interrupted compactions) and an interrupted [`LogEngine::append_and_commit`].
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
            txn: Mutex::new(()),
            recovery,
            txn_recovery: None,
            damaged,
        };
        engine.txn_recovery = engine.recover_transaction()?;
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

    /// What opening did with a transaction a crash interrupted, if there was one.
    pub fn transaction_recovery(&self) -> Option<TransactionRecovery> {
        self.txn_recovery
    }

    /// The engine's settings.
    pub fn config(&self) -> EngineConfig {
        self.config
    }

    fn intent_path(&self) -> PathBuf {
        self.dir.join("txn.intent")
    }

    /// Completes or rolls back the transaction whose intent survived a crash.
    fn recover_transaction(&self) -> Result<Option<TransactionRecovery>, StateError> {
        let path = self.intent_path();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path, "reading a transaction intent")(e)),
        };
        let intent = Intent::decode(&text).ok_or_else(|| StateError::Corrupt {
            store: path.display().to_string(),
            detail: "unreadable transaction intent".into(),
        })?;
        let mut complete = true;
        for (t, p, _, after) in &intent.appends {
            // A partition that is gone (its topic deleted by hand) cannot be complete.
            let end = self.with_partition(t, *p, |log| Ok(log.end_offset())).ok();
            complete &= end.is_some_and(|end| end >= *after);
        }
        let outcome = if complete {
            let offsets: Vec<(&str, u32, i64)> = intent
                .commits
                .iter()
                .map(|(t, p, o)| (t.as_str(), *p, *o))
                .collect();
            self.commit_offsets(&intent.group, &offsets)?;
            TransactionRecovery::Completed
        } else {
            for (t, p, before, _) in &intent.appends {
                if self.topic_config(t).is_some_and(|c| *p < c.partitions) {
                    self.with_partition(t, *p, |log| log.truncate_to(*before))?;
                }
            }
            TransactionRecovery::RolledBack
        };
        fs::remove_file(&path).map_err(io(&path, "removing a transaction intent"))?;
        Ok(Some(outcome))
    }

    /// Creates a topic; fails if it exists or its name or settings are invalid.
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<(), StateError> {
        if !valid_topic(name) {
            return Err(err(LogError::InvalidTopicName(name.to_string())));
        }
        if config.partitions == 0 {
            return Err(err(LogError::InvalidTopicConfig {
                topic: name.to_string(),
                detail: "a topic needs at least one partition".into(),
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
        let mut text = String::new();
        for ((t, p), o) in offsets {
            text.push_str(&format!("{t} {p} {o}\n"));
        }
        write_atomic(&self.group_path(group), &text, "writing group offsets")
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

    /// Appends batches to several partitions and commits `group`'s offsets atomically:
    /// after a crash at any point, either every batch is there and the offsets are
    /// committed, or no batch is there and the offsets are as before (the building block
    /// of exactly-once: consume, produce and commit in one step). Returns the offset of
    /// each append's first record. Several appends to one partition become one batch.
    ///
    /// How: an intent file naming every partition's end offset before and after and the
    /// offsets to commit is written and synced first; then the batches are appended and
    /// synced (whatever the fsync policy), the offsets committed, and the intent removed.
    /// Opening the engine with an intent still there completes the commit if every batch is
    /// durable and otherwise truncates the batches away. Transactions are serialized with
    /// each other; plain appends to the same partitions wait for the transaction.
    pub fn append_and_commit(
        &self,
        appends: &[(&str, u32, Vec<NewRecord>)],
        group: &str,
        offsets: &[(&str, u32, i64)],
    ) -> Result<Vec<i64>, StateError> {
        self.append_and_commit_with(appends, group, offsets, &mut |_| true)
    }

    /// [`LogEngine::append_and_commit`], asking `proceed` after each crash-safe step
    /// (tests stop there to simulate a crash).
    fn append_and_commit_with(
        &self,
        appends: &[(&str, u32, Vec<NewRecord>)],
        group: &str,
        offsets: &[(&str, u32, i64)],
        proceed: &mut dyn FnMut(TxnStep) -> bool,
    ) -> Result<Vec<i64>, StateError> {
        if !valid_topic(group) {
            return Err(err(LogError::InvalidGroupId(group.to_string())));
        }
        let _txn = lock(&self.txn);
        let intent_path = self.intent_path();
        if intent_path.exists() {
            return Err(err(LogError::RollbackPending));
        }
        // Group the appends by partition, in a fixed order (the lock order).
        let mut by_partition: BTreeMap<(&str, u32), Vec<usize>> = BTreeMap::new();
        for (i, (t, p, _)) in appends.iter().enumerate() {
            by_partition.entry((*t, *p)).or_default().push(i);
        }
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        let mut work = Vec::new();
        for ((t, p), idx) in &by_partition {
            let topic = get_topic(&topics, t)?;
            let partition = get_partition(topic, t, *p)?;
            let records: Cow<'_, [NewRecord]> = match idx.as_slice() {
                [one] => Cow::Borrowed(appends[*one].2.as_slice()),
                many => Cow::Owned(
                    many.iter()
                        .flat_map(|i| appends[*i].2.iter().cloned())
                        .collect(),
                ),
            };
            check_keys(topic, t, &records)?;
            work.push((*t, *p, idx, partition, records));
        }
        for (t, p, _) in offsets {
            get_partition(get_topic(&topics, t)?, t, *p)?;
        }
        let mut guards: Vec<MutexGuard<'_, PartitionLog>> =
            work.iter().map(|w| lock(w.3)).collect();
        let mut intent = Intent {
            group: group.to_string(),
            commits: offsets
                .iter()
                .map(|(t, p, o)| ((*t).to_string(), *p, *o))
                .collect(),
            appends: Vec::new(),
        };
        for ((t, p, _, _, records), log) in work.iter().zip(&guards) {
            let before = log.end_offset();
            intent
                .appends
                .push(((*t).to_string(), *p, before, before + records.len() as i64));
        }
        write_atomic(
            &intent_path,
            &intent.encode(),
            "writing a transaction intent",
        )?;
        if !proceed(TxnStep::Intent) {
            return Ok(Vec::new());
        }
        let mut bases = vec![0i64; appends.len()];
        let appended = (|| -> Result<bool, StateError> {
            for (n, ((_, _, idx, _, records), log)) in work.iter().zip(&mut guards).enumerate() {
                let mut base = log.append(records)?;
                log.flush()?;
                for i in idx.iter() {
                    bases[*i] = base;
                    base += appends[*i].2.len() as i64;
                }
                if n == 0 && !proceed(TxnStep::FirstAppend) {
                    return Ok(false);
                }
            }
            if !proceed(TxnStep::Appended) {
                return Ok(false);
            }
            self.commit_offsets(group, offsets)?;
            Ok(true)
        })();
        match appended {
            Ok(true) => {}
            Ok(false) => return Ok(Vec::new()),
            Err(e) => {
                // Undo what was appended, as recovery would; the intent stays if that fails.
                for ((_, _, before, _), log) in intent.appends.iter().zip(&mut guards) {
                    log.truncate_to(*before)?;
                }
                fs::remove_file(&intent_path)
                    .map_err(io(&intent_path, "removing a transaction intent"))?;
                return Err(e);
            }
        }
        if !proceed(TxnStep::Committed) {
            return Ok(Vec::new());
        }
        fs::remove_file(&intent_path).map_err(io(&intent_path, "removing a transaction intent"))?;
        Ok(bases)
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
    write_atomic(&dir.join("topic.meta"), &text, "writing topic settings")
}

/// Whether a topic directory holds any partition data (a segment file).
fn holds_data(dir: &Path) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        e.path().is_dir()
            && fs::read_dir(e.path()).is_ok_and(|files| {
                files.flatten().any(|f| {
                    f.file_name().to_string_lossy().ends_with(".log")
                        && f.metadata().is_ok_and(|m| m.len() > 0)
                })
            })
    })
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
    parse_meta(&text)
        .map(Some)
        .ok_or_else(|| format!("its topic.meta is damaged ({} bytes)", text.len()))
}

fn parse_meta(text: &str) -> Option<TopicConfig> {
    let mut c = TopicConfig::new(1);
    let mut partitions = false;
    // Topics written before a setting existed get its default.
    for line in text.lines() {
        let (k, v) = line.split_once('=')?;
        let non_negative = |v: &str| v.parse::<i64>().ok().map(|n| (n >= 0).then_some(n));
        match k {
            "partitions" => {
                c.partitions = v.parse().ok().filter(|n| *n > 0)?;
                partitions = true;
            }
            "cleanup.policy" => {
                c.cleanup = if v == "compact" {
                    CleanupPolicy::Compact
                } else {
                    CleanupPolicy::Delete
                }
            }
            "segment.bytes" => c.log.segment_bytes = v.parse().ok()?,
            "segment.ms" => c.log.segment_ms = non_negative(v)?,
            "retention.bytes" => {
                let b: i64 = v.parse().ok()?;
                c.log.retention_bytes = u64::try_from(b).ok();
            }
            "retention.ms" => c.log.retention_ms = non_negative(v)?,
            "delete.retention.ms" => c.delete_retention_ms = v.parse().ok()?,
            "fsync" => {
                c.log.fsync = if v == "batch" {
                    FsyncPolicy::EveryBatch
                } else {
                    FsyncPolicy::OnFlush
                }
            }
            _ => {}
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

    fn txn_setup(dir: &Path) -> LogEngine {
        let e = LogEngine::open(dir).unwrap();
        e.create_topic("in", TopicConfig::new(1)).unwrap();
        e.create_topic("out", TopicConfig::new(2)).unwrap();
        let mut small = TopicConfig::new(1).compacted();
        small.log.segment_bytes = 60; // the transaction rolls a segment
        e.create_topic("log", small).unwrap();
        e.append("out", 0, &[keyed("before", Some("x"), 1)])
            .unwrap();
        e.append("log", 0, &[keyed("before", Some("x"), 1)])
            .unwrap();
        e.commit_offsets("app", &[("in", 0, 5)]).unwrap();
        e
    }

    fn txn(e: &LogEngine, proceed: &mut dyn FnMut(TxnStep) -> bool) -> Vec<i64> {
        e.append_and_commit_with(
            &[
                (
                    "out",
                    0,
                    vec![keyed("a", Some("1"), 2), keyed("b", Some("2"), 2)],
                ),
                ("log", 0, vec![keyed("c", Some("3"), 2)]),
                ("out", 1, vec![keyed("d", Some("4"), 2)]),
                ("out", 0, vec![keyed("e", Some("5"), 2)]),
            ],
            "app",
            &[("in", 0, 9)],
            proceed,
        )
        .unwrap()
    }

    #[test]
    fn append_and_commit_appends_everything_and_commits() {
        let dir = tempfile::tempdir().unwrap();
        let e = txn_setup(dir.path());
        assert_eq!(
            txn(&e, &mut |_| true),
            [1, 1, 0, 3],
            "same-partition appends follow"
        );
        let check = |e: &LogEngine| {
            assert_eq!(e.offsets("out", 0).unwrap(), (0, 4));
            assert_eq!(e.offsets("out", 1).unwrap(), (0, 1));
            assert_eq!(e.offsets("log", 0).unwrap(), (0, 2));
            assert_eq!(e.committed("app", "in", 0), Some(9));
            let values: Vec<_> = e
                .read("out", 0, 0, usize::MAX)
                .unwrap()
                .into_iter()
                .map(|r| r.key.unwrap())
                .collect();
            assert_eq!(
                values,
                [
                    b"before".to_vec(),
                    b"a".to_vec(),
                    b"b".to_vec(),
                    b"e".to_vec()
                ]
            );
        };
        check(&e);
        assert!(!dir.path().join("txn.intent").exists());
        drop(e);
        let e = LogEngine::open(dir.path()).unwrap();
        assert_eq!(e.transaction_recovery(), None);
        check(&e);
        // Nothing is written when a partition is missing or a compacted topic gets a null key.
        let bad = e.append_and_commit(
            &[("out", 0, vec![keyed("z", None, 1)]), ("out", 7, vec![])],
            "app",
            &[],
        );
        assert!(bad.unwrap_err().to_string().contains("no partition 7"));
        let bad = e.append_and_commit(
            &[
                ("out", 0, vec![keyed("z", None, 1)]),
                ("log", 0, vec![NewRecord::default()]),
            ],
            "app",
            &[("in", 0, 11)],
        );
        assert!(bad.is_err());
        check(&e);
    }

    #[test]
    fn a_crash_inside_append_and_commit_is_all_or_nothing() {
        for (step, outcome) in [
            (TxnStep::Intent, TransactionRecovery::RolledBack),
            (TxnStep::FirstAppend, TransactionRecovery::RolledBack),
            (TxnStep::Appended, TransactionRecovery::Completed),
            (TxnStep::Committed, TransactionRecovery::Completed),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let e = txn_setup(dir.path());
            assert!(txn(&e, &mut |s| s != step).is_empty());
            if step == TxnStep::FirstAppend {
                // What a crash leaves: the first partition's batch is on disk.
                assert_eq!(e.offsets("log", 0).unwrap().1, 2, "{step:?}");
            }
            drop(e); // the crash
            assert!(dir.path().join("txn.intent").exists());
            let e = LogEngine::open(dir.path()).unwrap();
            assert_eq!(e.transaction_recovery(), Some(outcome), "{step:?}");
            assert!(!dir.path().join("txn.intent").exists());
            let ends = (
                e.offsets("out", 0).unwrap().1,
                e.offsets("out", 1).unwrap().1,
                e.offsets("log", 0).unwrap().1,
                e.committed("app", "in", 0),
            );
            match outcome {
                TransactionRecovery::RolledBack => assert_eq!(ends, (1, 0, 1, Some(5)), "{step:?}"),
                TransactionRecovery::Completed => assert_eq!(ends, (4, 1, 2, Some(9)), "{step:?}"),
            }
            // The log goes on from there.
            assert_eq!(
                e.append("log", 0, &[keyed("f", Some("6"), 3)]).unwrap(),
                ends.2
            );
            assert_eq!(
                e.read("log", 0, ends.2, 10).unwrap()[0].key.as_deref(),
                Some(b"f".as_slice())
            );
            drop(e);
            let e = LogEngine::open(dir.path()).unwrap();
            assert_eq!(e.transaction_recovery(), None);
            assert_eq!(e.offsets("log", 0).unwrap().1, ends.2 + 1);
        }
    }
}
