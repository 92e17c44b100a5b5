//! Changelogs, checkpoints and restoration.
//!
//! A logged store writes every change (after its cache) to a [`ChangelogSink`]; the runtime
//! implements the sink with the embedded log or Kafka (topic
//! `<application.id>-<store>-changelog`, partition = the task's partition). A per-task
//! [`Checkpoint`] file records, per changelog partition, the offset up to which the local
//! store reflects the changelog; restoration replays the changelog from there in large
//! batches and reports progress to a [`RestoreListener`].

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::StateError;
use crate::delegate::delegate;
use crate::entry::ChangelogRecord;
use crate::kv::{KeyValueIter, KeyValueStore};
use crate::stats::RocksDbProperties;

/// Where a logged store sends its changes. Implemented by the runtime (and by tests).
pub trait ChangelogSink: Send {
    /// Records that `key` now has `value` (`None`: deleted).
    fn send(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), StateError>;
}

/// Declares a store of `$store`s that logs their writes to a changelog: the struct, `new`,
/// `Debug` and the `StateStore` part (passed on: flushing and closing log nothing). The
/// store trait's part, which logs, is each store's own.
macro_rules! logging_store {
    ($(#[$doc:meta])* $name:ident, $store:ident) => {
        $(#[$doc])*
        pub struct $name {
            inner: Box<dyn $store>,
            sink: Box<dyn $crate::ChangelogSink>,
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("store", &self.inner.name())
                    .finish()
            }
        }

        impl $name {
            /// Logs the writes to `inner` to `sink`.
            pub fn new(inner: Box<dyn $store>, sink: Box<dyn $crate::ChangelogSink>) -> Self {
                Self { inner, sink }
            }
        }

        impl $crate::StateStore for $name {
            $crate::delegate::delegate!(StateStore to inner:
                name, persistent, flush, close, is_open);
        }
    };
}

pub(crate) use logging_store;

logging_store!(
    /// A key-value store that logs every write to a changelog.
    LoggingKeyValueStore,
    KeyValueStore
);

impl KeyValueStore for LoggingKeyValueStore {
    // Reads pass through. `put_if_absent`, `all` and `prefix_scan` keep the trait's
    // defaults, which go through this store's own (logged) writes and ranges.
    // Restoration writes what the changelog already holds: it is not logged again.
    delegate!(KeyValueStore to inner:
        get, range, reverse_range, approximate_num_entries, restore_batch, begin_restore,
        end_restore, rocksdb_properties, snapshot_to);
    // The change is logged before the store is written, so that the changelog always holds
    // at least what the store does, even if the process dies between the two.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        self.sink.send(key, Some(value))?;
        self.inner.put(key, value)
    }
    fn put_all(&mut self, entries: &[(&[u8], &[u8])]) -> Result<(), StateError> {
        for (k, v) in entries {
            self.sink.send(k, Some(v))?;
        }
        self.inner.put_all(entries)
    }
    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.sink.send(key, None)?;
        self.inner.delete(key)
    }
    fn remove(&mut self, key: &[u8]) -> Result<(), StateError> {
        self.sink.send(key, None)?;
        self.inner.remove(key)
    }
}

/// A changelog partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChangelogPartition {
    /// The changelog topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
}

/// What a task's stores reflect: per changelog partition, the offset of the next record to
/// restore (every record before it is in the local store).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Next offset to restore from, per changelog partition.
    pub offsets: BTreeMap<ChangelogPartition, i64>,
}

/// The outcome of reading a checkpoint file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointRead {
    /// No checkpoint: restore everything.
    Missing,
    /// A damaged or foreign file: restore everything (the reason says why).
    Corrupt(String),
    /// A valid checkpoint.
    Valid(Checkpoint),
}

const CHECKPOINT_MAGIC: &str = "streams-checkpoint";
const CHECKPOINT_VERSION: u32 = 1;

impl Checkpoint {
    /// The checkpoint file's name inside a task directory.
    pub const FILE_NAME: &'static str = ".checkpoint";

    fn body(&self) -> String {
        let mut body = String::new();
        for (p, off) in &self.offsets {
            body.push_str(&format!("{} {} {}\n", p.topic, p.partition, off));
        }
        body
    }

    /// Writes the file atomically: a temporary file, fsync, rename, fsync of the directory.
    ///
    /// Format (text): `streams-checkpoint 1 <crc32 of the body, hex>` then one line per
    /// changelog partition: `<topic> <partition> <next offset>`.
    pub fn write(&self, path: &Path) -> Result<(), StateError> {
        let io = |action: &'static str| move |source| StateError::io(path, action, source);
        let body = self.body();
        let crc = crc32fast::hash(body.as_bytes());
        let tmp = path.with_extension("tmp");
        {
            let mut f = File::create(&tmp).map_err(io("creating the checkpoint"))?;
            write!(
                f,
                "{CHECKPOINT_MAGIC} {CHECKPOINT_VERSION} {crc:08x}\n{body}"
            )
            .map_err(io("writing the checkpoint"))?;
            f.sync_all().map_err(io("syncing the checkpoint"))?;
        }
        fs::rename(&tmp, path).map_err(io("renaming the checkpoint"))?;
        if let Some(dir) = path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io("syncing the task directory"))?;
        }
        Ok(())
    }

    /// Reads the file. A missing or damaged file is not an error: it means a full restore.
    pub fn read(path: &Path) -> CheckpointRead {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return CheckpointRead::Missing,
            Err(e) => return CheckpointRead::Corrupt(format!("unreadable: {e}")),
        };
        let Some((header, body)) = text.split_once('\n') else {
            return CheckpointRead::Corrupt("no header line".into());
        };
        let mut parts = header.split(' ');
        if parts.next() != Some(CHECKPOINT_MAGIC) {
            return CheckpointRead::Corrupt("not a checkpoint file".into());
        }
        match parts.next().and_then(|v| v.parse::<u32>().ok()) {
            Some(CHECKPOINT_VERSION) => {}
            other => return CheckpointRead::Corrupt(format!("unsupported version {other:?}")),
        }
        let Some(crc) = parts.next().and_then(|c| u32::from_str_radix(c, 16).ok()) else {
            return CheckpointRead::Corrupt("no checksum".into());
        };
        if crc32fast::hash(body.as_bytes()) != crc {
            return CheckpointRead::Corrupt("checksum mismatch (torn or edited file)".into());
        }
        let mut offsets = BTreeMap::new();
        for line in body.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            let parsed = match f.as_slice() {
                [t, p, o] => p
                    .parse::<u32>()
                    .ok()
                    .zip(o.parse::<i64>().ok())
                    .map(|(p, o)| (t, p, o)),
                _ => None,
            };
            match parsed {
                Some((t, p, o)) => {
                    offsets.insert(
                        ChangelogPartition {
                            topic: (*t).to_string(),
                            partition: p,
                        },
                        o,
                    );
                }
                None => return CheckpointRead::Corrupt(format!("bad line `{line}`")),
            }
        }
        CheckpointRead::Valid(Checkpoint { offsets })
    }
}

/// Hears about restoration progress.
pub trait RestoreListener: Send + Sync {
    /// Restoration of `store` starts at `start_offset`; the changelog ends at `end_offset`.
    fn on_restore_start(&self, store: &str, start_offset: i64, end_offset: i64);
    /// A batch up to `batch_end_offset` (exclusive) with `restored` records was applied.
    fn on_batch_restored(&self, store: &str, batch_end_offset: i64, restored: u64);
    /// Restoration ended after `total` records.
    fn on_restore_end(&self, store: &str, total: u64);
}

/// A listener that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopRestoreListener;

impl RestoreListener for NoopRestoreListener {
    fn on_restore_start(&self, _: &str, _: i64, _: i64) {}
    fn on_batch_restored(&self, _: &str, _: i64, _: u64) {}
    fn on_restore_end(&self, _: &str, _: u64) {}
}

/// The outcome of a restoration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreSummary {
    /// Records applied.
    pub restored: u64,
    /// The offset to checkpoint: one past the last record applied (or the start offset).
    pub next_offset: i64,
}

/// Replays changelog records into `store` in batches of `batch_size`, from `start_offset`
/// up to `end_offset` (exclusive, the changelog's end when restoration began).
pub fn restore_store<I>(
    store: &mut dyn KeyValueStore,
    records: I,
    start_offset: i64,
    end_offset: i64,
    batch_size: usize,
    listener: &dyn RestoreListener,
) -> Result<RestoreSummary, StateError>
where
    I: IntoIterator<Item = Result<ChangelogRecord, StateError>>,
{
    let name = store.name().to_string();
    listener.on_restore_start(&name, start_offset, end_offset);
    store.begin_restore()?;
    let mut batch = Vec::with_capacity(batch_size.max(1));
    let mut restored = 0u64;
    let mut next_offset = start_offset;
    let apply = |store: &mut dyn KeyValueStore,
                 batch: &mut Vec<ChangelogRecord>,
                 restored: &mut u64,
                 next: &mut i64|
     -> Result<(), StateError> {
        if let Some(last) = batch.last() {
            *next = last.offset + 1;
            store.restore_batch(batch)?;
            *restored += batch.len() as u64;
            listener.on_batch_restored(&name, *next, batch.len() as u64);
            batch.clear();
        }
        Ok(())
    };
    for r in records {
        let r = r?;
        if r.offset < start_offset {
            continue;
        }
        if r.offset >= end_offset {
            break;
        }
        batch.push(r);
        if batch.len() >= batch_size.max(1) {
            apply(store, &mut batch, &mut restored, &mut next_offset)?;
        }
    }
    apply(store, &mut batch, &mut restored, &mut next_offset)?;
    store.end_restore()?;
    listener.on_restore_end(&name, restored);
    Ok(RestoreSummary {
        restored,
        next_offset,
    })
}

/// The directory of a snapshot taken at `offset` under `task_dir`.
pub fn snapshot_dir(task_dir: &Path, store: &str, offset: i64) -> PathBuf {
    task_dir
        .join("snapshots")
        .join(store)
        .join(format!("{offset:020}"))
}

/// The newest snapshot of `store` under `task_dir`, with the changelog offset it reflects
/// (the next offset to restore after installing it).
pub fn latest_snapshot(task_dir: &Path, store: &str) -> Option<(PathBuf, i64)> {
    let dir = task_dir.join("snapshots").join(store);
    fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let offset = e.file_name().to_str()?.parse::<i64>().ok()?;
            e.path()
                .join("CURRENT")
                .exists()
                .then(|| (e.path(), offset))
        })
        .max_by_key(|(_, o)| *o)
}

/// Takes a snapshot of `store` reflecting the changelog up to `next_offset` (exclusive) and
/// removes older snapshots of it. Returns the snapshot's directory, or `None` for engines
/// without snapshots. Flush the store first.
pub fn take_snapshot(
    store: &dyn KeyValueStore,
    task_dir: &Path,
    next_offset: i64,
) -> Result<Option<PathBuf>, StateError> {
    let dir = snapshot_dir(task_dir, store.name(), next_offset);
    if dir.exists() {
        return Ok(Some(dir));
    }
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent).map_err(|source| StateError::Io {
            store: store.name().to_string(),
            action: "creating the snapshot directory",
            source,
        })?;
    }
    if !store.snapshot_to(&dir)? {
        return Ok(None);
    }
    if let Some(parent) = dir.parent()
        && let Ok(entries) = fs::read_dir(parent)
    {
        for e in entries.filter_map(Result::ok) {
            if e.path() != dir {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(Some(dir))
}

/// Installs a snapshot as the store directory `store_dir` (which must not exist), linking
/// its immutable files where the filesystem allows and copying otherwise.
pub fn install_snapshot(snapshot: &Path, store_dir: &Path) -> Result<(), StateError> {
    let io = |action: &'static str| move |source| StateError::io(store_dir, action, source);
    fs::create_dir_all(store_dir).map_err(io("creating the store directory"))?;
    for e in fs::read_dir(snapshot).map_err(io("reading the snapshot"))? {
        let e = e.map_err(io("reading the snapshot"))?;
        let to = store_dir.join(e.file_name());
        if fs::hard_link(e.path(), &to).is_err() {
            fs::copy(e.path(), &to).map_err(io("copying the snapshot"))?;
        }
    }
    Ok(())
}
