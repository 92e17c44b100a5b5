//! The embedded log engine: topics of N partitions on local disk, and durable consumer
//! group offsets. It is the broker the runtime uses when no `bootstrap.servers` is set.
//!
//! Layout: `<dir>/.lock` (held while the engine is open), `<dir>/topics/<topic>/topic.meta`
//! (partition count and settings), `<dir>/topics/<topic>/<partition>/` (a [`PartitionLog`]),
//! `<dir>/groups/<group>.offsets` (committed offsets, written atomically).

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, RwLock};

use crate::StateError;
use crate::log::{LogConfig, LogRecord, NewRecord, PartitionLog, RecoveryReport};

/// How a topic's old records go away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupPolicy {
    /// Whole old segments are deleted by retention (`cleanup.policy=delete`).
    Delete,
    /// The latest value per key is kept (`cleanup.policy=compact`; compaction itself is
    /// not implemented yet, so nothing is removed).
    Compact,
}

/// A topic's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicConfig {
    /// The number of partitions (at least 1).
    pub partitions: u32,
    /// How old records go away.
    pub cleanup: CleanupPolicy,
    /// The partitions' storage settings.
    pub log: LogConfig,
}

impl TopicConfig {
    /// `partitions` partitions, delete policy, default storage settings.
    pub fn new(partitions: u32) -> Self {
        Self {
            partitions,
            cleanup: CleanupPolicy::Delete,
            log: LogConfig::default(),
        }
    }
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
    _lock: File,
    topics: RwLock<BTreeMap<String, Topic>>,
    groups: Mutex<HashMap<String, GroupOffsets>>,
    recovery: RecoveryReport,
}

impl std::fmt::Debug for LogEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogEngine").field("dir", &self.dir).finish()
    }
}

fn err(msg: impl Into<String>) -> StateError {
    StateError::Log(msg.into())
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

impl LogEngine {
    /// Opens (creating if needed) the engine in `dir`, recovering every partition.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
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
        for entry in fs::read_dir(dir.join("topics")).map_err(io(dir, "listing topics"))? {
            let entry = entry.map_err(io(dir, "listing topics"))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Some(config) = read_meta(&entry.path()) else {
                continue; // a topic whose creation did not finish
            };
            let mut partitions = Vec::new();
            for p in 0..config.partitions {
                let (log, report) =
                    PartitionLog::open(&entry.path().join(p.to_string()), config.log)?;
                recovery.truncated_bytes += report.truncated_bytes;
                recovery.valid_batches += report.valid_batches;
                partitions.push(Mutex::new(log));
            }
            topics.insert(name, Topic { config, partitions });
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
        Ok(Self {
            dir: dir.to_path_buf(),
            _lock: lock_file,
            topics: RwLock::new(topics),
            groups: Mutex::new(groups),
            recovery,
        })
    }

    /// What opening found: bytes of torn tails truncated, valid batches.
    pub fn recovery_report(&self) -> RecoveryReport {
        self.recovery
    }

    /// Creates a topic; fails if it exists or its name or settings are invalid.
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<(), StateError> {
        if !valid_topic(name) {
            return Err(err(format!(
                "invalid topic name `{name}`: use 1-249 ASCII letters, digits, '.', '_' or '-'"
            )));
        }
        if config.partitions == 0 {
            return Err(err(format!("topic `{name}` needs at least one partition")));
        }
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        if topics.contains_key(name) {
            return Err(err(format!("topic `{name}` already exists")));
        }
        let dir = self.dir.join("topics").join(name);
        fs::create_dir_all(&dir).map_err(io(&dir, "creating a topic"))?;
        let mut partitions = Vec::new();
        for p in 0..config.partitions {
            partitions.push(Mutex::new(
                PartitionLog::open(&dir.join(p.to_string()), config.log)?.0,
            ));
        }
        write_meta(&dir, &config)?;
        topics.insert(name.to_string(), Topic { config, partitions });
        Ok(())
    }

    /// Deletes a topic and its data.
    pub fn delete_topic(&self, name: &str) -> Result<(), StateError> {
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        if topics.remove(name).is_none() {
            return Err(err(format!("topic `{name}` does not exist")));
        }
        let dir = self.dir.join("topics").join(name);
        fs::remove_dir_all(&dir).map_err(io(&dir, "deleting a topic"))
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

    fn with_partition<R>(
        &self,
        topic: &str,
        partition: u32,
        f: impl FnOnce(&mut PartitionLog) -> Result<R, StateError>,
    ) -> Result<R, StateError> {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        let t = topics
            .get(topic)
            .ok_or_else(|| err(format!("topic `{topic}` does not exist")))?;
        let p = t.partitions.get(partition as usize).ok_or_else(|| {
            err(format!(
                "topic `{topic}` has {} partitions, there is no partition {partition}",
                t.partitions.len()
            ))
        })?;
        f(&mut lock(p))
    }

    /// Appends records to a partition as one batch; returns the first one's offset.
    pub fn append(
        &self,
        topic: &str,
        partition: u32,
        records: &[NewRecord],
    ) -> Result<i64, StateError> {
        self.with_partition(topic, partition, |p| p.append(records))
    }

    /// Records of a partition from `offset` on (about `max_bytes`).
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

    /// Commits `group`'s offsets (the next offset to read, per partition) durably:
    /// the group's file is rewritten atomically.
    pub fn commit_offsets(
        &self,
        group: &str,
        offsets: &[(&str, u32, i64)],
    ) -> Result<(), StateError> {
        if !valid_topic(group) {
            return Err(err(format!("invalid group id `{group}`")));
        }
        let mut groups = lock(&self.groups);
        let g = groups.entry(group.to_string()).or_default();
        for (t, p, o) in offsets {
            g.insert(((*t).to_string(), *p), *o);
        }
        let mut text = String::new();
        for ((t, p), o) in g.iter() {
            text.push_str(&format!("{t} {p} {o}\n"));
        }
        let path = self.dir.join("groups").join(format!("{group}.offsets"));
        let tmp = path.with_extension("tmp");
        {
            let mut f = File::create(&tmp).map_err(io(&tmp, "writing group offsets"))?;
            std::io::Write::write_all(&mut f, text.as_bytes())
                .map_err(io(&tmp, "writing group offsets"))?;
            f.sync_all().map_err(io(&tmp, "syncing group offsets"))?;
        }
        fs::rename(&tmp, &path).map_err(io(&path, "writing group offsets"))
    }

    /// The offset `group` committed for a partition, if any.
    pub fn committed(&self, group: &str, topic: &str, partition: u32) -> Option<i64> {
        lock(&self.groups)
            .get(group)
            .and_then(|g| g.get(&(topic.to_string(), partition)).copied())
    }
}

fn write_meta(dir: &Path, c: &TopicConfig) -> Result<(), StateError> {
    let cleanup = match c.cleanup {
        CleanupPolicy::Delete => "delete",
        CleanupPolicy::Compact => "compact",
    };
    let text = format!(
        "partitions={}\ncleanup.policy={}\nsegment.bytes={}\nretention.bytes={}\nfsync={}\n",
        c.partitions,
        cleanup,
        c.log.segment_bytes,
        c.log.retention_bytes.map_or(-1, |b| b as i64),
        match c.log.fsync {
            crate::log::FsyncPolicy::EveryBatch => "batch",
            crate::log::FsyncPolicy::OnFlush => "flush",
        }
    );
    let tmp = dir.join("topic.meta.tmp");
    fs::write(&tmp, text).map_err(io(&tmp, "writing topic settings"))?;
    fs::rename(&tmp, dir.join("topic.meta")).map_err(io(dir, "writing topic settings"))
}

fn read_meta(dir: &Path) -> Option<TopicConfig> {
    let text = fs::read_to_string(dir.join("topic.meta")).ok()?;
    let mut c = TopicConfig::new(1);
    for line in text.lines() {
        let (k, v) = line.split_once('=')?;
        match k {
            "partitions" => c.partitions = v.parse().ok()?,
            "cleanup.policy" => {
                c.cleanup = if v == "compact" {
                    CleanupPolicy::Compact
                } else {
                    CleanupPolicy::Delete
                }
            }
            "segment.bytes" => c.log.segment_bytes = v.parse().ok()?,
            "retention.bytes" => {
                let b: i64 = v.parse().ok()?;
                c.log.retention_bytes = u64::try_from(b).ok();
            }
            "fsync" => {
                c.log.fsync = if v == "batch" {
                    crate::log::FsyncPolicy::EveryBatch
                } else {
                    crate::log::FsyncPolicy::OnFlush
                }
            }
            _ => {}
        }
    }
    Some(c)
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
}
