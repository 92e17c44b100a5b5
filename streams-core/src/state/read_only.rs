//! The read-only views of stores that interactive queries get.

use crate::window::Windowed;

use crate::error::Result;

use super::*;

/// Read-only access to a key-value store (one task's handle, or a view across tasks), for
/// interactive queries.
pub trait ReadOnlyKeyValueStore<K, V> {
    /// The value for `key`.
    fn get(&self, key: &K) -> Result<Option<V>>;
    /// Pairs with `from <= key <= to` by serialized key bytes (`None` is open).
    fn range(&self, from: Option<&K>, to: Option<&K>) -> Result<Vec<(K, V)>>;
    /// Every pair.
    fn all(&self) -> Result<Vec<(K, V)>>;
    /// An estimate of the number of keys.
    fn approximate_num_entries(&self) -> Result<u64>;
}

/// Read-only access to a window store, for interactive queries.
pub trait ReadOnlyWindowStore<K, V> {
    /// The value of `key` in the window starting at `window_start`.
    fn fetch(&self, key: &K, window_start: i64) -> Result<Option<V>>;
    /// `(window start, value)` of `key` for starts in `[from, to]`, ascending.
    fn fetch_range(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V)>>;
    /// Every window with a start in `[from, to]`.
    fn fetch_all(&self, from: i64, to: i64) -> Result<Vec<(Windowed<K>, V)>>;
}

/// Read-only access to a session store, for interactive queries.
pub trait ReadOnlySessionStore<K, V> {
    /// Every live session of `key`, ascending by end.
    fn fetch(&self, key: &K) -> Result<Vec<(Windowed<K>, V)>>;
    /// Sessions of `key` with `end >= earliest_end` and `start <= latest_start`.
    fn find_sessions(
        &self,
        key: &K,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<(Windowed<K>, V)>>;
}

impl<K: 'static, V: 'static> ReadOnlyKeyValueStore<K, V> for KeyValueStoreHandle<K, V> {
    fn get(&self, key: &K) -> Result<Option<V>> {
        KeyValueStoreHandle::get(self, key)
    }
    fn range(&self, from: Option<&K>, to: Option<&K>) -> Result<Vec<(K, V)>> {
        KeyValueStoreHandle::range(self, from, to)
    }
    fn all(&self) -> Result<Vec<(K, V)>> {
        KeyValueStoreHandle::all(self)
    }
    fn approximate_num_entries(&self) -> Result<u64> {
        KeyValueStoreHandle::approximate_num_entries(self)
    }
}

impl<K: 'static, V: 'static> ReadOnlyWindowStore<K, V> for WindowStoreHandle<K, V> {
    fn fetch(&self, key: &K, window_start: i64) -> Result<Option<V>> {
        WindowStoreHandle::fetch(self, key, window_start)
    }
    fn fetch_range(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V)>> {
        WindowStoreHandle::fetch_range(self, key, from, to)
    }
    fn fetch_all(&self, from: i64, to: i64) -> Result<Vec<(Windowed<K>, V)>> {
        WindowStoreHandle::fetch_all(self, from, to)
    }
}

impl<K: 'static, V: 'static> ReadOnlySessionStore<K, V> for SessionStoreHandle<K, V> {
    fn fetch(&self, key: &K) -> Result<Vec<(Windowed<K>, V)>> {
        SessionStoreHandle::fetch(self, key)
    }
    fn find_sessions(
        &self,
        key: &K,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<(Windowed<K>, V)>> {
        SessionStoreHandle::find_sessions(self, key, earliest_end, latest_start)
    }
}
