use thiserror::Error;

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
    /// A log engine request names a topic or partition that does not exist, or a topic
    /// that already does.
    #[error("log engine: {0}")]
    Log(String),
}
