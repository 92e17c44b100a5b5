//! The byte-level records passed between the layers of a store: what a logged store writes
//! to its changelog and reads back on restore, and what a cache passes on when it flushes.

/// One changelog record: a key and its new value (`None` is a tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangelogRecord {
    /// The record's offset in its changelog partition.
    pub offset: i64,
    /// The store key.
    pub key: Vec<u8>,
    /// The new value; `None` deletes the key.
    pub value: Option<Vec<u8>>,
}

/// An update leaving the cache: the key, its new value (`None`: deleted) and the value the
/// store held before (for the old value of downstream table changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlushedEntry {
    /// The key.
    pub key: Vec<u8>,
    /// The new value.
    pub new: Option<Vec<u8>>,
    /// The previous value in the store.
    pub old: Option<Vec<u8>>,
}
