//! Topics of the embedded log engine: their settings, names, and the `topic.meta` file that
//! holds them.

use std::fs;
use std::path::Path;

use super::files::{checked_text, with_checksum, write_atomic};
use super::partition::{FsyncPolicy, LogConfig};
use crate::error::StateError;

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

/// Topic names as Kafka allows them: 1 to 249 of ASCII letters, digits, '.', '_', '-'.
pub(super) fn valid_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

pub(super) fn write_meta(dir: &Path, c: &TopicConfig) -> Result<(), StateError> {
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

/// Whether a topic directory holds any partition data (a segment file).
pub(super) fn holds_data(dir: &Path) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries
        .flatten()
        .any(|e| e.path().is_dir() && holds_partition_data(&e.path()))
}

/// A topic's settings from its `topic.meta`: `Ok(None)` when the file is missing, an error
/// naming the problem when it cannot be read.
pub(super) fn read_meta(dir: &Path) -> Result<Option<TopicConfig>, String> {
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
pub(super) fn holds_partition_data(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|files| {
        files.flatten().any(|f| {
            f.file_name().to_string_lossy().ends_with(".log")
                && f.metadata().is_ok_and(|m| m.len() > 0)
        })
    })
}

/// The most partitions a topic may have (a damaged count must not create millions of
/// directories).
pub(super) const MAX_PARTITIONS: u32 = 100_000;

pub(super) fn parse_meta(text: &str) -> Option<TopicConfig> {
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
