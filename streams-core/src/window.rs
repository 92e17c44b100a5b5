//! Windowed keys: a record key together with the time window it belongs to.

use std::fmt;

/// A time window `[start, end)` for time windows, or `[start, end]` (both inclusive) for
/// sessions and sliding windows. Times are ms since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// The window's start.
    pub start: i64,
    /// The window's end.
    pub end: i64,
}

/// A key and its window: the key type of windowed tables. Displays as `[key@start/end]`,
/// like Kafka Streams' `Windowed`.
///
/// ```
/// use streams_core::window::{Window, Windowed};
/// let w = Windowed { key: "page-1", window: Window { start: 0, end: 60_000 } };
/// assert_eq!(w.to_string(), "[page-1@0/60000]");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Windowed<K> {
    /// The record key.
    pub key: K,
    /// The window.
    pub window: Window,
}

impl<K: fmt::Display> fmt::Display for Windowed<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}@{}/{}]",
            self.key, self.window.start, self.window.end
        )
    }
}
