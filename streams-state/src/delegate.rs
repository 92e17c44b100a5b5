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
///   `wrap(&self.a.b, || self.field.mi(…))`;
/// - `delegate!(Trait to field as scans: m1, …)` (window and session scans): each calls the
///   one scan of `field` that takes the key range and the direction, `scan_range(key, from,
///   to, reverse)` or `scan_key_range(key_from, key_to, from, to, reverse)` for windows,
///   `find(key_from, key_to, earliest_end, latest_start, reverse)` for sessions; `to self`
///   calls the store's own.
///
/// `Trait` is `StateStore`, `KeyValueStore`, `WindowStore` or `SessionStore`; naming a
/// method the trait does not have fails to compile. See the module's documentation.
macro_rules! delegate {
    ($tr:ident to self as scans : $($m:ident),+ $(,)?) => {
        $( $crate::delegate::delegate!(@$tr () [scans] $m); )+
    };
    ($tr:ident to $f:ident $($rest:tt)+) => {
        $crate::delegate::delegate!($tr to ($f) $($rest)+);
    };
    ($tr:ident to $p:tt : $($m:ident),+ $(,)?) => {
        $( $crate::delegate::delegate!(@$tr $p [] $m); )+
    };
    ($tr:ident to $p:tt as scans : $($m:ident),+ $(,)?) => {
        $( $crate::delegate::delegate!(@$tr $p [scans] $m); )+
    };
    ($tr:ident to $p:tt via $wrap:ident $stat:tt : $($m:ident),+ $(,)?) => {
        $( $crate::delegate::delegate!(@$tr $p [$wrap $stat] $m); )+
    };

    // One method: its signature, and a body that passes the call on. `self` and the
    // parameters come from here, so that the call's arguments resolve to them.
    (@fn $f:tt $w:tt $m:ident(&self $(, $a:ident: $t:ty)*) -> $r:ty) => {
        fn $m(&self $(, $a: $t)*) -> $r {
            $crate::delegate::delegate!(@call self $f $w $m($($a),*))
        }
    };
    (@fn $f:tt $w:tt $m:ident(&mut self $(, $a:ident: $t:ty)*) -> $r:ty) => {
        fn $m(&mut self $(, $a: $t)*) -> $r {
            $crate::delegate::delegate!(@call self $f $w $m($($a),*))
        }
    };

    // The call itself: a scan becomes the call of the one scan with range and direction,
    // then a plain or a wrapped call.
    (@call $s:tt $p:tt [scans] $m:ident($($a:expr),*)) => {
        $crate::delegate::delegate!(@scan $s $p $m($($a),*))
    };
    (@call $s:tt () [] $m:ident($($a:expr),*)) => {
        $s.$m($($a),*)
    };
    (@call $s:tt ($($p:tt)+) [] $m:ident($($a:expr),*)) => {
        $s.$($p)+.$m($($a),*)
    };
    (@call $s:tt ($($p:tt)+) [$wrap:ident ($($stat:ident).+)] $m:ident($($a:expr),*)) => {
        $wrap(&$s.$($stat).+, || $s.$($p)+.$m($($a),*))
    };

    // Window and session scans, each as the one scan with the key range and direction.
    (@scan $s:tt $p:tt fetch_range($k:expr, $from:expr, $to:expr)) => {
        $crate::delegate::delegate!(@call $s $p [] scan_range($k, $from, $to, false))
    };
    (@scan $s:tt $p:tt backward_fetch_range($k:expr, $from:expr, $to:expr)) => {
        $crate::delegate::delegate!(@call $s $p [] scan_range($k, $from, $to, true))
    };
    (@scan $s:tt $p:tt fetch_key_range($($a:expr),*)) => {
        $crate::delegate::delegate!(@call $s $p [] scan_key_range($($a,)* false))
    };
    (@scan $s:tt $p:tt backward_fetch_key_range($($a:expr),*)) => {
        $crate::delegate::delegate!(@call $s $p [] scan_key_range($($a,)* true))
    };
    (@scan $s:tt $p:tt fetch_all($from:expr, $to:expr)) => {
        $crate::delegate::delegate!(@call $s $p [] scan_key_range(None, None, $from, $to, false))
    };
    (@scan $s:tt $p:tt backward_fetch_all($from:expr, $to:expr)) => {
        $crate::delegate::delegate!(@call $s $p [] scan_key_range(None, None, $from, $to, true))
    };
    (@scan $s:tt $p:tt all()) => {
        $crate::delegate::delegate!(
            @call $s $p [] scan_key_range(None, None, i64::MIN, i64::MAX, false)
        )
    };
    (@scan $s:tt $p:tt find_sessions($k:expr, $end:expr, $start:expr)) => {
        $crate::delegate::delegate!(@call $s $p [] find(Some($k), Some($k), $end, $start, false))
    };
    (@scan $s:tt $p:tt backward_find_sessions($k:expr, $end:expr, $start:expr)) => {
        $crate::delegate::delegate!(@call $s $p [] find(Some($k), Some($k), $end, $start, true))
    };
    (@scan $s:tt $p:tt find_sessions_in_range($($a:expr),*)) => {
        $crate::delegate::delegate!(@call $s $p [] find($($a,)* false))
    };
    (@scan $s:tt $p:tt backward_find_sessions_in_range($($a:expr),*)) => {
        $crate::delegate::delegate!(@call $s $p [] find($($a,)* true))
    };

    // The signatures, by trait. The default arm of a trait goes on to the methods it shares
    // with others.
    (@StateStore $f:tt $w:tt name) => { $crate::delegate::delegate!(@fn $f $w
        name(&self) -> &str); };
    (@StateStore $f:tt $w:tt persistent) => { $crate::delegate::delegate!(@fn $f $w
        persistent(&self) -> bool); };
    (@StateStore $f:tt $w:tt flush) => { $crate::delegate::delegate!(@fn $f $w
        flush(&mut self) -> Result<(), StateError>); };
    (@StateStore $f:tt $w:tt close) => { $crate::delegate::delegate!(@fn $f $w
        close(&mut self) -> Result<(), StateError>); };
    (@StateStore $f:tt $w:tt is_open) => { $crate::delegate::delegate!(@fn $f $w
        is_open(&self) -> bool); };

    (@KeyValueStore $f:tt $w:tt get) => { $crate::delegate::delegate!(@fn $f $w
        get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>); };
    (@KeyValueStore $f:tt $w:tt put) => { $crate::delegate::delegate!(@fn $f $w
        put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StateError>); };
    (@KeyValueStore $f:tt $w:tt put_if_absent) => { $crate::delegate::delegate!(@fn $f $w
        put_if_absent(&mut self, key: &[u8], value: &[u8])
            -> Result<Option<Vec<u8>>, StateError>); };
    (@KeyValueStore $f:tt $w:tt put_all) => { $crate::delegate::delegate!(@fn $f $w
        put_all(&mut self, entries: &[(&[u8], &[u8])]) -> Result<(), StateError>); };
    (@KeyValueStore $f:tt $w:tt delete) => { $crate::delegate::delegate!(@fn $f $w
        delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>); };
    (@KeyValueStore $f:tt $w:tt remove) => { $crate::delegate::delegate!(@fn $f $w
        remove(&mut self, key: &[u8]) -> Result<(), StateError>); };
    (@KeyValueStore $f:tt $w:tt range) => { $crate::delegate::delegate!(@fn $f $w
        range(&self, from: ::std::ops::Bound<&[u8]>, to: ::std::ops::Bound<&[u8]>)
            -> Result<KeyValueIter<'_>, StateError>); };
    (@KeyValueStore $f:tt $w:tt reverse_range) => { $crate::delegate::delegate!(@fn $f $w
        reverse_range(&self, from: ::std::ops::Bound<&[u8]>, to: ::std::ops::Bound<&[u8]>)
            -> Result<KeyValueIter<'_>, StateError>); };
    (@KeyValueStore $f:tt $w:tt all) => { $crate::delegate::delegate!(@fn $f $w
        all(&self) -> Result<KeyValueIter<'_>, StateError>); };
    (@KeyValueStore $f:tt $w:tt prefix_scan) => { $crate::delegate::delegate!(@fn $f $w
        prefix_scan(&self, prefix: &[u8]) -> Result<KeyValueIter<'_>, StateError>); };
    (@KeyValueStore $f:tt $w:tt approximate_num_entries) => { $crate::delegate::delegate!(@fn $f $w
        approximate_num_entries(&self) -> Result<u64, StateError>); };
    (@KeyValueStore $f:tt $w:tt begin_restore) => { $crate::delegate::delegate!(@fn $f $w
        begin_restore(&mut self) -> Result<(), StateError>); };
    (@KeyValueStore $f:tt $w:tt end_restore) => { $crate::delegate::delegate!(@fn $f $w
        end_restore(&mut self) -> Result<(), StateError>); };
    (@KeyValueStore $f:tt $w:tt snapshot_to) => { $crate::delegate::delegate!(@fn $f $w
        snapshot_to(&self, dir: &::std::path::Path) -> Result<bool, StateError>); };
    (@KeyValueStore $f:tt $w:tt $m:ident) => { $crate::delegate::delegate!(@any $f $w $m); };

    (@WindowStore $f:tt $w:tt put) => { $crate::delegate::delegate!(@fn $f $w
        put(&mut self, key: &[u8], value: Option<&[u8]>, window_start: i64)
            -> Result<(), StateError>); };
    (@WindowStore $f:tt $w:tt fetch) => { $crate::delegate::delegate!(@fn $f $w
        fetch(&self, key: &[u8], window_start: i64) -> Result<Option<Vec<u8>>, StateError>); };
    (@WindowStore $f:tt $w:tt fetch_range) => { $crate::delegate::delegate!(@fn $f $w
        fetch_range(&self, key: &[u8], time_from: i64, time_to: i64)
            -> Result<WindowIter<'_>, StateError>); };
    (@WindowStore $f:tt $w:tt backward_fetch_range) => { $crate::delegate::delegate!(@fn $f $w
        backward_fetch_range(&self, key: &[u8], time_from: i64, time_to: i64)
            -> Result<WindowIter<'_>, StateError>); };
    (@WindowStore $f:tt $w:tt fetch_key_range) => { $crate::delegate::delegate!(@fn $f $w
        fetch_key_range(&self, key_from: Option<&[u8]>, key_to: Option<&[u8]>, time_from: i64,
            time_to: i64) -> Result<WindowedKeyValueIter<'_>, StateError>); };
    (@WindowStore $f:tt $w:tt backward_fetch_key_range) => { $crate::delegate::delegate!(@fn $f $w
        backward_fetch_key_range(&self, key_from: Option<&[u8]>, key_to: Option<&[u8]>,
            time_from: i64, time_to: i64) -> Result<WindowedKeyValueIter<'_>, StateError>); };
    (@WindowStore $f:tt $w:tt fetch_all) => { $crate::delegate::delegate!(@fn $f $w
        fetch_all(&self, time_from: i64, time_to: i64)
            -> Result<WindowedKeyValueIter<'_>, StateError>); };
    (@WindowStore $f:tt $w:tt backward_fetch_all) => { $crate::delegate::delegate!(@fn $f $w
        backward_fetch_all(&self, time_from: i64, time_to: i64)
            -> Result<WindowedKeyValueIter<'_>, StateError>); };
    (@WindowStore $f:tt $w:tt all) => { $crate::delegate::delegate!(@fn $f $w
        all(&self) -> Result<WindowedKeyValueIter<'_>, StateError>); };
    (@WindowStore $f:tt $w:tt $m:ident) => { $crate::delegate::delegate!(@retained $f $w $m); };

    (@SessionStore $f:tt $w:tt put) => { $crate::delegate::delegate!(@fn $f $w
        put(&mut self, key: &[u8], start: i64, end: i64, value: &[u8])
            -> Result<(), StateError>); };
    (@SessionStore $f:tt $w:tt remove) => { $crate::delegate::delegate!(@fn $f $w
        remove(&mut self, key: &[u8], start: i64, end: i64) -> Result<(), StateError>); };
    (@SessionStore $f:tt $w:tt fetch_session) => { $crate::delegate::delegate!(@fn $f $w
        fetch_session(&self, key: &[u8], start: i64, end: i64)
            -> Result<Option<Vec<u8>>, StateError>); };
    (@SessionStore $f:tt $w:tt find_sessions) => { $crate::delegate::delegate!(@fn $f $w
        find_sessions(&self, key: &[u8], earliest_session_end: i64, latest_session_start: i64)
            -> Result<SessionIter<'_>, StateError>); };
    (@SessionStore $f:tt $w:tt backward_find_sessions) => { $crate::delegate::delegate!(@fn $f $w
        backward_find_sessions(&self, key: &[u8], earliest_session_end: i64,
            latest_session_start: i64) -> Result<SessionIter<'_>, StateError>); };
    (@SessionStore $f:tt $w:tt find_sessions_in_range) => { $crate::delegate::delegate!(@fn $f $w
        find_sessions_in_range(&self, key_from: Option<&[u8]>, key_to: Option<&[u8]>,
            earliest_session_end: i64, latest_session_start: i64)
            -> Result<SessionIter<'_>, StateError>); };
    (@SessionStore $f:tt $w:tt backward_find_sessions_in_range) => {
        $crate::delegate::delegate!(@fn $f $w backward_find_sessions_in_range(&self,
            key_from: Option<&[u8]>, key_to: Option<&[u8]>, earliest_session_end: i64,
            latest_session_start: i64) -> Result<SessionIter<'_>, StateError>);
    };
    (@SessionStore $f:tt $w:tt fetch) => { $crate::delegate::delegate!(@fn $f $w
        fetch(&self, key: &[u8]) -> Result<SessionIter<'_>, StateError>); };
    (@SessionStore $f:tt $w:tt backward_fetch) => { $crate::delegate::delegate!(@fn $f $w
        backward_fetch(&self, key: &[u8]) -> Result<SessionIter<'_>, StateError>); };
    (@SessionStore $f:tt $w:tt $m:ident) => { $crate::delegate::delegate!(@retained $f $w $m); };

    // What window and session stores have alike.
    (@retained $f:tt $w:tt retention_period) => { $crate::delegate::delegate!(@fn $f $w
        retention_period(&self) -> i64); };
    (@retained $f:tt $w:tt observed_stream_time) => { $crate::delegate::delegate!(@fn $f $w
        observed_stream_time(&self) -> i64); };
    (@retained $f:tt $w:tt $m:ident) => { $crate::delegate::delegate!(@any $f $w $m); };

    // What key-value, window and session stores have alike.
    (@any $f:tt $w:tt restore_batch) => { $crate::delegate::delegate!(@fn $f $w
        restore_batch(&mut self, records: &[ChangelogRecord]) -> Result<(), StateError>); };
    (@any $f:tt $w:tt flush_cache) => { $crate::delegate::delegate!(@fn $f $w
        flush_cache(&mut self) -> Result<(), StateError>); };
    (@any $f:tt $w:tt take_flushed) => { $crate::delegate::delegate!(@fn $f $w
        take_flushed(&mut self) -> Vec<FlushedEntry>); };
    (@any $f:tt $w:tt rocksdb_properties) => { $crate::delegate::delegate!(@fn $f $w
        rocksdb_properties(&self) -> Option<RocksDbProperties>); };
}

pub(crate) use delegate;
