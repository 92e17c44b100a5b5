use thiserror::Error;

use crate::log::error::LogError;

/// Errors raised by state stores.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StateError {
    /// The store was used before `init` or after `close`.
    #[error("state store `{store}` is not open (was it closed, or used before init?)")]
    NotOpen {
        /// The store's name.
        store: String,
    },
    /// An I/O error from the storage engine, with what the store was doing.
    #[error("state store `{store}`: {action} failed: {source}")]
    Io {
        /// The store's name.
        store: String,
        /// What the store was doing.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The storage engine reported an error.
    #[error("state store `{store}`: {action} failed: {detail}")]
    Engine {
        /// The store's name.
        store: String,
        /// What the store was doing.
        action: &'static str,
        /// The engine's message.
        detail: String,
    },
    /// The state directory cannot be used.
    #[error("state directory {path}: {detail}")]
    StateDir {
        /// The directory.
        path: std::path::PathBuf,
        /// What is wrong and what to do.
        detail: String,
    },
    /// A persistent store was asked for where no state directory is configured.
    #[error(
        "store `{store}` is persistent but no state directory is configured (set state.dir, or use an in-memory store)"
    )]
    NoStateDir {
        /// The store's name.
        store: String,
    },
    /// A changelog sink failed.
    #[error("changelog of store `{store}`: {detail}")]
    Changelog {
        /// The store's name.
        store: String,
        /// What failed.
        detail: String,
    },
    /// A stored value could not be decoded (a corrupted or foreign store).
    #[error("state store `{store}`: corrupt data: {detail}")]
    Corrupt {
        /// The store's name.
        store: String,
        /// What was wrong.
        detail: String,
    },
    /// A store was configured or called with an invalid argument (a bad retention period, a
    /// session that ends before it starts, ...).
    #[error("state store `{store}`: invalid argument: {detail}")]
    InvalidArgument {
        /// The store's name.
        store: String,
        /// What is wrong and what is expected.
        detail: String,
    },
    /// The file system holding the store or log is full (or the user's quota is spent):
    /// nothing was written past the last good position. Retriable: the same write succeeds
    /// once space is freed.
    #[error(
        "{action} failed: the disk holding {path} is full ({}); free space there (or move \
         state.dir / the data directory to a larger disk): the write is retried until then",
        free_text(*.available_bytes)
    )]
    DiskFull {
        /// The file or directory written to.
        path: std::path::PathBuf,
        /// What was being written.
        action: &'static str,
        /// Bytes available to this process on that file system when the write failed, if
        /// the operating system said.
        available_bytes: Option<u64>,
    },
    /// A log engine request that cannot be served: see [`LogError`].
    #[error("log engine: {0}")]
    Log(#[from] LogError),
}

fn free_text(available: Option<u64>) -> String {
    match available {
        Some(b) => format!("{b} bytes free"),
        None => "free space unknown".into(),
    }
}

impl StateError {
    /// An I/O failure of `action` on `path`: [`DiskFull`](Self::DiskFull) when the file
    /// system is full or the quota spent (with the space left), else [`Io`](Self::Io).
    pub fn io(path: &std::path::Path, action: &'static str, source: std::io::Error) -> Self {
        if is_disk_full(&source) {
            return Self::DiskFull {
                path: path.to_path_buf(),
                action,
                available_bytes: available_bytes(path),
            };
        }
        Self::Io {
            store: path.display().to_string(),
            action,
            source,
        }
    }

    /// Whether the same operation may succeed later without anyone repairing anything:
    /// a full disk once space is freed.
    ///
    /// ```
    /// use streams_state::StateError;
    /// let e = StateError::DiskFull { path: "/data".into(), action: "appending", available_bytes: Some(0) };
    /// assert!(e.is_retriable() && !e.is_fatal());
    /// ```
    pub fn is_retriable(&self) -> bool {
        matches!(self, Self::DiskFull { .. })
    }

    /// Whether the store or log cannot be used until an operator acts: damaged data, an
    /// unusable state directory, a damaged transaction state. Retrying will not help;
    /// restarting will fail the same way until it is repaired.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Self::Corrupt { .. }
                | Self::StateDir { .. }
                | Self::NoStateDir { .. }
                | Self::Log(
                    LogError::DamagedSegment { .. }
                        | LogError::DamagedTopic { .. }
                        | LogError::DamagedTransactionState { .. }
                )
        )
    }
}

/// ENOSPC or EDQUOT (Rust maps both to these kinds).
fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// Bytes available to unprivileged users on the file system of `path` (or of its nearest
/// existing ancestor).
#[cfg(unix)]
fn available_bytes(path: &std::path::Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let st = rustix::fs::statvfs(existing).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(not(unix))]
fn available_bytes(_path: &std::path::Path) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_or_quota_is_disk_full_with_the_path_and_other_errors_stay_io() {
        let dir = std::env::temp_dir();
        for kind in [
            std::io::ErrorKind::StorageFull,
            std::io::ErrorKind::QuotaExceeded,
        ] {
            let e = StateError::io(&dir.join("x"), "appending", std::io::Error::from(kind));
            match &e {
                StateError::DiskFull {
                    path,
                    available_bytes,
                    ..
                } => {
                    assert_eq!(path, &dir.join("x"));
                    // The temporary directory exists: statvfs answers for it.
                    assert!(available_bytes.is_some());
                }
                other => panic!("{other:?}"),
            }
            assert!(e.is_retriable() && !e.is_fatal());
            assert!(e.to_string().contains(&dir.display().to_string()));
        }
        let e = StateError::io(
            &dir,
            "reading",
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert!(matches!(e, StateError::Io { .. }) && !e.is_retriable());
    }
}
