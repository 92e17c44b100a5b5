//! Global stores (Kafka Streams' `GlobalStateManager`): each holds every partition of its
//! source topic, which is also its changelog, so a record is written into the store as it is
//! on the topic (key and value bytes; a null value deletes). The test driver applies records
//! as they are piped; the runtime loads every partition to its end before the stream threads
//! start and then follows the topic on a global thread.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use streams_state::{ChangelogRecord, RocksDbResources, StoreContext, ThreadCache};

use crate::config::StreamsConfig;
use crate::error::{Result, StreamsError};
use crate::internals::spec::TopologyInner;
use crate::state::{StoreBuild, StoreEntry};

/// A record of a global topic as the stores take it: offset, key, value.
pub(crate) type GlobalRecord = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

/// The global stores of one instance (or driver), opened once.
pub(crate) struct GlobalStores {
    /// (source topic, store) per global store, in topology order.
    stores: Vec<(String, StoreEntry)>,
    /// Checks that a record of the store's topic decodes, per store.
    checks: Vec<crate::internals::spec::GlobalCheck>,
    /// Records skipped because they did not decode.
    pub(crate) skipped: AtomicU64,
    /// Where checkpoints go (`None`: not persistent, e.g. an in-memory driver).
    dir: Option<PathBuf>,
}

impl std::fmt::Debug for GlobalStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalStores")
            .field(
                "stores",
                &self
                    .stores
                    .iter()
                    .map(|(t, e)| (t, e.name()))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl GlobalStores {
    /// Opens the topology's global stores under `dir` (`<state.dir>/<application.id>/global`).
    pub(crate) fn open(
        topology: &TopologyInner,
        config: &StreamsConfig,
        dir: Option<&Path>,
        resources: RocksDbResources,
    ) -> Result<Self> {
        let ctx = StoreContext::new(dir.map(Path::to_path_buf), resources);
        let cache = ThreadCache::new(0);
        let mut stores = Vec::new();
        let mut checks = Vec::new();
        for spec in &topology.global_stores {
            let entry = (spec.factory)(StoreBuild {
                ctx: &ctx,
                cache: &cache,
                config,
                changelog: None,
            })?;
            stores.push((spec.topic.clone(), entry));
            checks.push(spec.check.clone());
        }
        Ok(Self {
            stores,
            checks,
            skipped: AtomicU64::new(0),
            dir: dir.map(Path::to_path_buf),
        })
    }

    /// The stores, for tasks (which look them up by name) and queries.
    pub(crate) fn entries(&self) -> Vec<StoreEntry> {
        self.stores.iter().map(|(_, e)| e.clone()).collect()
    }

    /// The source topics.
    pub(crate) fn topics(&self) -> Vec<String> {
        self.stores.iter().map(|(t, _)| t.clone()).collect()
    }

    /// Writes records of `topic` into its store: `(offset, key, value)`; a record whose key
    /// or value does not decode is skipped (logged once per batch, counted), and so is a
    /// record without key.
    pub(crate) fn apply(
        &self,
        topic: &str,
        records: impl IntoIterator<Item = GlobalRecord>,
    ) -> Result<()> {
        let Some(i) = self.stores.iter().position(|(t, _)| t == topic) else {
            return Ok(());
        };
        let check = &self.checks[i];
        let mut batch = Vec::new();
        let mut logged = false;
        for (offset, key, value) in records {
            let Some(key) = key else {
                self.skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            if let Err(e) = check(&key, value.as_deref()) {
                self.skipped.fetch_add(1, Ordering::Relaxed);
                if !logged {
                    tracing::warn!(
                        topic,
                        offset,
                        error = %e,
                        "skipping a record of a global table's topic that does not decode"
                    );
                    logged = true;
                }
                continue;
            }
            batch.push(ChangelogRecord { offset, key, value });
        }
        if !batch.is_empty() {
            self.stores[i].1.restore(&batch)?;
        }
        Ok(())
    }

    fn checkpoint_path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(".checkpoint"))
    }

    /// The offsets to resume from, per (topic, partition): the next offset to read, as the
    /// last [`write_checkpoint`](Self::write_checkpoint) left them (persistent stores only).
    pub(crate) fn read_checkpoint(&self) -> HashMap<(String, u32), i64> {
        let mut out = HashMap::new();
        if self.stores.iter().any(|(_, e)| !e.persistent()) {
            return out; // an in-memory store is empty again: load from the start
        }
        let Some(path) = self.checkpoint_path() else {
            return out;
        };
        let Ok(text) = std::fs::read_to_string(&path) else {
            return out;
        };
        for line in text.lines() {
            let mut parts = line.rsplitn(3, ' ');
            let (Some(offset), Some(partition), Some(topic)) =
                (parts.next(), parts.next(), parts.next())
            else {
                tracing::warn!(path = %path.display(), "ignoring a damaged global checkpoint");
                return HashMap::new();
            };
            match (partition.parse::<u32>(), offset.parse::<i64>()) {
                (Ok(p), Ok(o)) => {
                    out.insert((topic.to_string(), p), o);
                }
                _ => {
                    tracing::warn!(path = %path.display(), "ignoring a damaged global checkpoint");
                    return HashMap::new();
                }
            }
        }
        out
    }

    /// Flushes the stores and records the next offset to read per partition.
    pub(crate) fn write_checkpoint(&self, positions: &HashMap<(String, u32), i64>) -> Result<()> {
        for (_, e) in &self.stores {
            e.flush()?;
        }
        let Some(path) = self.checkpoint_path() else {
            return Ok(());
        };
        let mut text = String::new();
        let mut sorted: Vec<_> = positions.iter().collect();
        sorted.sort();
        for ((topic, partition), offset) in sorted {
            text.push_str(&format!("{topic} {partition} {offset}\n"));
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| StreamsError::System {
                what: "writing the global stores' checkpoint",
                source: e,
            })
    }

    /// Closes the stores.
    pub(crate) fn close(&self) -> Result<()> {
        for (_, e) in &self.stores {
            e.close()?;
        }
        Ok(())
    }
}

/// The stores of `globals` as a shared list for [`TaskEnv`](crate::internals::task::TaskEnv).
pub(crate) fn shared(globals: Option<&GlobalStores>) -> Arc<Vec<StoreEntry>> {
    Arc::new(globals.map(GlobalStores::entries).unwrap_or_default())
}
