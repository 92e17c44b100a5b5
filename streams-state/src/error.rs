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
    /// A stored value could not be decoded (a corrupted or foreign store).
    #[error("state store `{store}`: corrupt data: {detail}")]
    Corrupt {
        /// The store's name.
        store: String,
        /// What was wrong.
        detail: String,
    },
}
