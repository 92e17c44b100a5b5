//! Delegation for stores built on another: the wrapping layers (logging, metered, caching)
//! and the window and session engines over their core. [`delegate!`] writes the methods of a
//! store trait that only pass the call on, so that a store spells out just the methods that
//! add behaviour.
//!
//! Inside an `impl` of [`StateStore`](crate::StateStore),
//! [`KeyValueStore`](crate::KeyValueStore), [`WindowStore`](crate::WindowStore) or
//! [`SessionStore`](crate::SessionStore):
//!
//! ```text
//! impl KeyValueStore for LoggingKeyValueStore {
//!     delegate!(KeyValueStore to inner: get, range, reverse_range);
//!     fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StateError> { … }
//! }
//! ```
//!
//! writes `fn get(&self, key: &[u8]) -> … { self.inner.get(key) }` and so on, and
//! `delegate!(KeyValueStore to inner via timed(metrics.get): get)` writes
//! `timed(&self.metrics.get, || self.inner.get(key))` instead (how the metered stores time
//! their operations).
//!
//! Only the methods named are written: one left out keeps the trait's default, which is not
//! the same as passing the call on (a default `put_if_absent` calls the wrapper's own `get`
//! and `put`, so a logging store logs it). The written methods are the calls one would write
//! by hand: a static call on the field, nothing boxed or allocated on the way.
//!
//! The signatures name the stores' types unqualified (`StateError`, `KeyValueIter`,
//! `WindowIter`, `WindowedKeyValueIter`, `SessionIter`, `ChangelogRecord`, `FlushedEntry`,
//! `RocksDbProperties`): they resolve where the macro is used, which imports those it needs.
//! So this module depends on no other and sits at the bottom of the crate's layers.

/// Writes methods of a store trait that pass the call on to the store in a field.
///
/// - `delegate!(Trait to field: m1, m2, …)`: each `mi` calls `self.field.mi(…)`;
/// - `delegate!(Trait to (a.b()): m1, …)`: each calls `self.a.b().mi(…)`;
/// - `delegate!(Trait to field via wrap(a.b): m1, …)`: each calls
///   `wrap(&self.a.b, || self.field.mi(…))`.
///
/// `Trait` is `StateStore`, `KeyValueStore`, `WindowStore` or `SessionStore`; naming a
/// method the trait does not have fails to compile. See the module's documentation.
macro_rules! delegate {
    ($tr:ident to $f:ident $($rest:tt)+) => {
        $crate::delegate::delegate!($tr to ($f) $($rest)+);
    };
    ($tr:ident to $p:tt : $($m:ident),+ $(,)?) => {
        $( $crate::delegate::delegate!(@$tr $p [] $m); )+
    };
    ($tr:ident to $p:tt via $wrap:ident $stat:tt : $($m:ident),+ $(,)?) => {
        $( $crate::delegate::delegate!(@$tr $p [$wrap $stat] $m); )+
    };

    // The call itself. `self` and the arguments come from the method's own rule, so that
    // they resolve to its parameters.
    (@call $s:tt ($($p:tt)+) [] $m:ident ($($a:ident),*)) => {
        $s.$($p)+.$m($($a),*)
    };
    (@call $s:tt ($($p:tt)+) [$wrap:ident ($($stat:ident).+)] $m:ident ($($a:ident),*)) => {
        $wrap(&$s.$($stat).+, || $s.$($p)+.$m($($a),*))
    };

    // StateStore.
    (@StateStore $f:tt $w:tt name) => {
        fn name(&self) -> &str {
            $crate::delegate::delegate!(@call self $f $w name())
        }
    };
    (@StateStore $f:tt $w:tt persistent) => {
        fn persistent(&self) -> bool {
            $crate::delegate::delegate!(@call self $f $w persistent())
        }
    };
    (@StateStore $f:tt $w:tt flush) => {
        fn flush(&mut self) -> Result<(), StateError> {
            $crate::delegate::delegate!(@call self $f $w flush())
        }
    };
    (@StateStore $f:tt $w:tt close) => {
        fn close(&mut self) -> Result<(), StateError> {
            $crate::delegate::delegate!(@call self $f $w close())
        }
    };
    (@StateStore $f:tt $w:tt is_open) => {
        fn is_open(&self) -> bool {
            $crate::delegate::delegate!(@call self $f $w is_open())
        }
    };

    // KeyValueStore.
    (@KeyValueStore $f:tt $w:tt get) => {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
            $crate::delegate::delegate!(@call self $f $w get(key))
        }
    };
    (@KeyValueStore $f:tt $w:tt put) => {
        fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StateError> {
            $crate::delegate::delegate!(@call self $f $w put(key, value))
        }
    };
    (@KeyValueStore $f:tt $w:tt put_if_absent) => {
        fn put_if_absent(
            &mut self,
            key: &[u8],
            value: &[u8],
        ) -> Result<Option<Vec<u8>>, StateError> {
            $crate::delegate::delegate!(@call self $f $w put_if_absent(key, value))
        }
    };
    (@KeyValueStore $f:tt $w:tt put_all) => {
        fn put_all(&mut self, entries: &[(&[u8], &[u8])]) -> Result<(), StateError> {
            $crate::delegate::delegate!(@call self $f $w put_all(entries))
        }
    };
    (@KeyValueStore $f:tt $w:tt delete) => {
        fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
            $crate::delegate::delegate!(@call self $f $w delete(key))
        }
    };
    (@KeyValueStore $f:tt $w:tt remove) => {
        fn remove(&mut self, key: &[u8]) -> Result<(), StateError> {
            $crate::delegate::delegate!(@call self $f $w remove(key))
        }
    };
    (@KeyValueStore $f:tt $w:tt range) => {
        fn range<'a>(
            &'a self,
            from: ::std::ops::Bound<&[u8]>,
            to: ::std::ops::Bound<&[u8]>,
        ) -> Result<KeyValueIter<'a>, StateError> {
            $crate::delegate::delegate!(@call self $f $w range(from, to))
        }
    };
    (@KeyValueStore $f:tt $w:tt reverse_range) => {
        fn reverse_range<'a>(
            &'a self,
            from: ::std::ops::Bound<&[u8]>,
            to: ::std::ops::Bound<&[u8]>,
        ) -> Result<KeyValueIter<'a>, StateError> {
            $crate::delegate::delegate!(@call self $f $w reverse_range(from, to))
        }
    };
    (@KeyValueStore $f:tt $w:tt all) => {
        fn all(&self) -> Result<KeyValueIter<'_>, StateError> {
            $crate::delegate::delegate!(@call self $f $w all())
        }
    };
    (@KeyValueStore $f:tt $w:tt prefix_scan) => {
        fn prefix_scan<'a>(&'a self, prefix: &[u8]) -> Result<KeyValueIter<'a>, StateError> {
            $crate::delegate::delegate!(@call self $f $w prefix_scan(prefix))
        }
    };
    (@KeyValueStore $f:tt $w:tt approximate_num_entries) => {
        fn approximate_num_entries(&self) -> Result<u64, StateError> {
            $crate::delegate::delegate!(@call self $f $w approximate_num_entries())
        }
    };
    (@KeyValueStore $f:tt $w:tt begin_restore) => {
        fn begin_restore(&mut self) -> Result<(), StateError> {
            $crate::delegate::delegate!(@call self $f $w begin_restore())
        }
    };
    (@KeyValueStore $f:tt $w:tt end_restore) => {
        fn end_restore(&mut self) -> Result<(), StateError> {
            $crate::delegate::delegate!(@call self $f $w end_restore())
        }
    };
    (@KeyValueStore $f:tt $w:tt snapshot_to) => {
        fn snapshot_to(&self, dir: &::std::path::Path) -> Result<bool, StateError> {
            $crate::delegate::delegate!(@call self $f $w snapshot_to(dir))
        }
    };
    (@KeyValueStore $f:tt $w:tt $m:ident) => {
        $crate::delegate::delegate!(@any $f $w $m);
    };

    // WindowStore.
    (@WindowStore $f:tt $w:tt put) => {
        fn put(
            &mut self,
            key: &[u8],
            value: Option<&[u8]>,
            window_start: i64,
        ) -> Result<(), StateError> {
            $crate::delegate::delegate!(@call self $f $w put(key, value, window_start))
        }
    };
    (@WindowStore $f:tt $w:tt fetch) => {
        fn fetch(&self, key: &[u8], window_start: i64) -> Result<Option<Vec<u8>>, StateError> {
            $crate::delegate::delegate!(@call self $f $w fetch(key, window_start))
        }
    };
    (@WindowStore $f:tt $w:tt fetch_range) => {
        fn fetch_range(
            &self,
            key: &[u8],
            time_from: i64,
            time_to: i64,
        ) -> Result<WindowIter<'_>, StateError> {
            $crate::delegate::delegate!(@call self $f $w fetch_range(key, time_from, time_to))
        }
    };
    (@WindowStore $f:tt $w:tt backward_fetch_range) => {
        fn backward_fetch_range(
            &self,
            key: &[u8],
            time_from: i64,
            time_to: i64,
        ) -> Result<WindowIter<'_>, StateError> {
            $crate::delegate::delegate!(
                @call self $f $w backward_fetch_range(key, time_from, time_to)
            )
        }
    };
    (@WindowStore $f:tt $w:tt fetch_key_range) => {
        fn fetch_key_range(
            &self,
            key_from: Option<&[u8]>,
            key_to: Option<&[u8]>,
            time_from: i64,
            time_to: i64,
        ) -> Result<WindowedKeyValueIter<'_>, StateError> {
            $crate::delegate::delegate!(
                @call self $f $w fetch_key_range(key_from, key_to, time_from, time_to)
            )
        }
    };
    (@WindowStore $f:tt $w:tt backward_fetch_key_range) => {
        fn backward_fetch_key_range(
            &self,
            key_from: Option<&[u8]>,
            key_to: Option<&[u8]>,
            time_from: i64,
            time_to: i64,
        ) -> Result<WindowedKeyValueIter<'_>, StateError> {
            $crate::delegate::delegate!(
                @call self $f $w backward_fetch_key_range(key_from, key_to, time_from, time_to)
            )
        }
    };
    (@WindowStore $f:tt $w:tt fetch_all) => {
        fn fetch_all(
            &self,
            time_from: i64,
            time_to: i64,
        ) -> Result<WindowedKeyValueIter<'_>, StateError> {
            $crate::delegate::delegate!(@call self $f $w fetch_all(time_from, time_to))
        }
    };
    (@WindowStore $f:tt $w:tt backward_fetch_all) => {
        fn backward_fetch_all(
            &self,
            time_from: i64,
            time_to: i64,
        ) -> Result<WindowedKeyValueIter<'_>, StateError> {
            $crate::delegate::delegate!(@call self $f $w backward_fetch_all(time_from, time_to))
        }
    };
    (@WindowStore $f:tt $w:tt all) => {
        fn all(&self) -> Result<WindowedKeyValueIter<'_>, StateError> {
            $crate::delegate::delegate!(@call self $f $w all())
        }
    };
    (@WindowStore $f:tt $w:tt $m:ident) => {
        $crate::delegate::delegate!(@retained $f $w $m);
    };

    // SessionStore.
    (@SessionStore $f:tt $w:tt put) => {
        fn put(
            &mut self,
            key: &[u8],
            start: i64,
            end: i64,
            value: &[u8],
        ) -> Result<(), StateError> {
            $crate::delegate::delegate!(@call self $f $w put(key, start, end, value))
        }
    };
    (@SessionStore $f:tt $w:tt remove) => {
        fn remove(&mut self, key: &[u8], start: i64, end: i64) -> Result<(), StateError> {
            $crate::delegate::delegate!(@call self $f $w remove(key, start, end))
        }
    };
    (@SessionStore $f:tt $w:tt fetch_session) => {
        fn fetch_session(
            &self,
            key: &[u8],
            start: i64,
            end: i64,
        ) -> Result<Option<Vec<u8>>, StateError> {
            $crate::delegate::delegate!(@call self $f $w fetch_session(key, start, end))
        }
    };
    (@SessionStore $f:tt $w:tt find_sessions) => {
        fn find_sessions(
            &self,
            key: &[u8],
            earliest_session_end: i64,
            latest_session_start: i64,
        ) -> Result<SessionIter<'_>, StateError> {
            $crate::delegate::delegate!(
                @call self $f $w find_sessions(key, earliest_session_end, latest_session_start)
            )
        }
    };
    (@SessionStore $f:tt $w:tt backward_find_sessions) => {
        fn backward_find_sessions(
            &self,
            key: &[u8],
            earliest_session_end: i64,
            latest_session_start: i64,
        ) -> Result<SessionIter<'_>, StateError> {
            $crate::delegate::delegate!(
                @call self $f $w
                backward_find_sessions(key, earliest_session_end, latest_session_start)
            )
        }
    };
    (@SessionStore $f:tt $w:tt find_sessions_in_range) => {
        fn find_sessions_in_range(
            &self,
            key_from: Option<&[u8]>,
            key_to: Option<&[u8]>,
            earliest_session_end: i64,
            latest_session_start: i64,
        ) -> Result<SessionIter<'_>, StateError> {
            $crate::delegate::delegate!(
                @call self $f $w find_sessions_in_range(
                    key_from,
                    key_to,
                    earliest_session_end,
                    latest_session_start
                )
            )
        }
    };
    (@SessionStore $f:tt $w:tt backward_find_sessions_in_range) => {
        fn backward_find_sessions_in_range(
            &self,
            key_from: Option<&[u8]>,
            key_to: Option<&[u8]>,
            earliest_session_end: i64,
            latest_session_start: i64,
        ) -> Result<SessionIter<'_>, StateError> {
            $crate::delegate::delegate!(
                @call self $f $w backward_find_sessions_in_range(
                    key_from,
                    key_to,
                    earliest_session_end,
                    latest_session_start
                )
            )
        }
    };
    (@SessionStore $f:tt $w:tt fetch) => {
        fn fetch(&self, key: &[u8]) -> Result<SessionIter<'_>, StateError> {
            $crate::delegate::delegate!(@call self $f $w fetch(key))
        }
    };
    (@SessionStore $f:tt $w:tt backward_fetch) => {
        fn backward_fetch(&self, key: &[u8]) -> Result<SessionIter<'_>, StateError> {
            $crate::delegate::delegate!(@call self $f $w backward_fetch(key))
        }
    };
    (@SessionStore $f:tt $w:tt $m:ident) => {
        $crate::delegate::delegate!(@retained $f $w $m);
    };

    // What window and session stores have alike.
    (@retained $f:tt $w:tt retention_period) => {
        fn retention_period(&self) -> i64 {
            $crate::delegate::delegate!(@call self $f $w retention_period())
        }
    };
    (@retained $f:tt $w:tt observed_stream_time) => {
        fn observed_stream_time(&self) -> i64 {
            $crate::delegate::delegate!(@call self $f $w observed_stream_time())
        }
    };
    (@retained $f:tt $w:tt $m:ident) => {
        $crate::delegate::delegate!(@any $f $w $m);
    };

    // What key-value, window and session stores have alike.
    (@any $f:tt $w:tt restore_batch) => {
        fn restore_batch(&mut self, records: &[ChangelogRecord]) -> Result<(), StateError> {
            $crate::delegate::delegate!(@call self $f $w restore_batch(records))
        }
    };
    (@any $f:tt $w:tt flush_cache) => {
        fn flush_cache(&mut self) -> Result<(), StateError> {
            $crate::delegate::delegate!(@call self $f $w flush_cache())
        }
    };
    (@any $f:tt $w:tt take_flushed) => {
        fn take_flushed(&mut self) -> Vec<FlushedEntry> {
            $crate::delegate::delegate!(@call self $f $w take_flushed())
        }
    };
    (@any $f:tt $w:tt rocksdb_properties) => {
        fn rocksdb_properties(&self) -> Option<RocksDbProperties> {
            $crate::delegate::delegate!(@call self $f $w rocksdb_properties())
        }
    };
}

pub(crate) use delegate;
