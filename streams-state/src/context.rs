//! What a store needs to open: its task's directory and the shared engine resources.

use std::path::PathBuf;

use crate::StateError;
use crate::resources::RocksDbResources;

/// Where and with what a task's stores are opened.
#[derive(Debug, Clone)]
pub struct StoreContext {
    task_dir: Option<PathBuf>,
    resources: RocksDbResources,
}

impl StoreContext {
    /// Stores of a task whose directory is `task_dir` (`None`: in-memory stores only).
    pub fn new(task_dir: Option<PathBuf>, resources: RocksDbResources) -> Self {
        Self {
            task_dir,
            resources,
        }
    }

    /// The task's directory, if any.
    pub fn task_dir(&self) -> Option<&std::path::Path> {
        self.task_dir.as_deref()
    }

    /// The directory of the persistent store `store`: `<task dir>/rocksdb/<store>`.
    pub fn store_dir(&self, store: &str) -> Result<PathBuf, StateError> {
        self.task_dir
            .as_ref()
            .map(|d| d.join("rocksdb").join(store))
            .ok_or_else(|| StateError::NoStateDir {
                store: store.to_string(),
            })
    }

    /// The shared RocksDB resources (the memory budget).
    pub fn resources(&self) -> &RocksDbResources {
        &self.resources
    }
}
