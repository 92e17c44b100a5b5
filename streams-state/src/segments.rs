//! Time-segmented byte storage shared by the window and session stores.
//!
//! A segmented store splits its data by time into segments of `segment_interval` ms
//! (segment id = `time.div_euclid(interval)`, Kafka's rule) so that retention is enforced by
//! dropping whole segments, never by deleting keys one by one. Engines:
//! - [`MemSegments`]: one ordered map per segment;
//! - [`RocksSegments`]: one RocksDB instance per store, one column family per segment
//!   (`segment-<id>`), created on demand and dropped with `drop_cf` once expired. The default
//!   column family holds only metadata (observed stream time, segment interval).
//!
//! Keys inside a segment use an order-preserving, prefix-free encoding: the user key escaped
//! (`0x00` becomes `0x00 0xFF`) and terminated by `0x00 0x01`, followed by one or more times
//! as 8-byte big-endian integers with the sign bit flipped. Byte order of encoded keys is then
//! (user key bytes, time, ...) order, negative times included.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::path::{Path, PathBuf};

use rocksdb::{DB, FlushOptions, Options, ReadOptions, SliceTransform, WriteBatch, WriteOptions};

use crate::StateError;
use crate::memory::scan_map;
use crate::resources::RocksDbResources;
use crate::rocks::{RangeIter, create_store_dir, engine_err, unlogged_writes};

/// Kafka's minimum segment interval (one minute).
pub(crate) const MIN_SEGMENT_INTERVAL: i64 = 60_000;

/// Kafka's segment interval for a retention period: `max(retention / 2, 60_000)`.
pub(crate) fn segment_interval(retention: i64) -> i64 {
    (retention / 2).max(MIN_SEGMENT_INTERVAL)
}

/// The segment holding `time`.
pub(crate) fn segment_id(time: i64, interval: i64) -> i64 {
    time.div_euclid(interval.max(1))
}

// ---------------------------------------------------------------------------------------------
// Key encoding
// ---------------------------------------------------------------------------------------------

/// Appends the escaped, terminated form of `key` to `out`.
pub(crate) fn escape_key_into(out: &mut Vec<u8>, key: &[u8]) {
    out.reserve(key.len() + 2);
    for &b in key {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0x00, 0x01]);
}

/// The escaped, terminated form of `key`.
pub(crate) fn escape_key(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 2 + 16);
    escape_key_into(&mut out, key);
    out
}

/// The escaped, terminated user key that starts an encoded key (its RocksDB prefix: every
/// entry of one user key shares it), or `None` for a key without the terminator (store
/// metadata). The first `0x00 0x01` is the terminator: a `0x00` of the key itself is always
/// followed by `0xFF`.
pub(crate) fn user_key_prefix(encoded: &[u8]) -> Option<&[u8]> {
    let end = encoded.windows(2).position(|w| w == [0x00, 0x01])?;
    Some(&encoded[..end + 2])
}

fn prefix_or_whole(encoded: &[u8]) -> &[u8] {
    user_key_prefix(encoded).unwrap_or(encoded)
}

fn has_user_key_prefix(encoded: &[u8]) -> bool {
    user_key_prefix(encoded).is_some()
}

/// Appends `time` as 8 big-endian bytes with the sign bit flipped (so that byte order is
/// numeric order, negative times first).
pub(crate) fn push_time(out: &mut Vec<u8>, time: i64) {
    out.extend_from_slice(&time_bytes(time));
}

/// `time` as 8 big-endian bytes with the sign bit flipped.
pub(crate) fn time_bytes(time: i64) -> [u8; 8] {
    ((time as u64) ^ (1 << 63)).to_be_bytes()
}

/// Reads a time written by [`push_time`] from exactly 8 bytes.
fn read_time(bytes: &[u8]) -> Option<i64> {
    let arr: [u8; 8] = bytes.try_into().ok()?;
    Some((u64::from_be_bytes(arr) ^ (1 << 63)) as i64)
}

/// Splits an encoded key into the user key and the `N` times that follow it.
pub(crate) fn decode_key<const N: usize>(encoded: &[u8]) -> Option<(Vec<u8>, [i64; N])> {
    let mut key = Vec::with_capacity(encoded.len());
    let mut i = 0;
    loop {
        let b = *encoded.get(i)?;
        if b == 0 {
            match encoded.get(i + 1)? {
                0xFF => key.push(0),
                0x01 => {
                    i += 2;
                    break;
                }
                _ => return None,
            }
            i += 2;
        } else {
            key.push(b);
            i += 1;
        }
    }
    let rest = encoded.get(i..)?;
    if rest.len() != 8 * N {
        return None;
    }
    let mut times = [0i64; N];
    for (n, t) in times.iter_mut().enumerate() {
        *t = read_time(rest.get(8 * n..8 * n + 8)?)?;
    }
    Some((key, times))
}

/// The smallest encoded key that follows every encoded key of `key` (whatever its times):
/// the escaped key followed by `0xFF` bytes, enough to exceed `n_times` times.
pub(crate) fn key_upper_bound(key: &[u8], n_times: usize) -> Vec<u8> {
    let mut out = escape_key(key);
    out.extend(std::iter::repeat_n(0xFF, 8 * n_times));
    out
}

// ---------------------------------------------------------------------------------------------
// Engines
// ---------------------------------------------------------------------------------------------

/// An encoded key and its value.
pub(crate) type RawEntry = (Vec<u8>, Vec<u8>);

/// Entries of one or more segments, in encoded-key order (or reverse).
pub(crate) type RawIter<'a> = Box<dyn Iterator<Item = Result<RawEntry, StateError>> + 'a>;

/// One write to a segment: `None` deletes.
#[derive(Debug)]
pub(crate) struct SegmentWrite {
    pub(crate) segment: i64,
    pub(crate) key: Vec<u8>,
    pub(crate) value: Option<Vec<u8>>,
}

/// Storage for segments: a set of ordered byte maps identified by segment id.
pub(crate) trait SegmentEngine: Send {
    /// The RocksDB properties of the engine's instance, summed over its column families
    /// (`None` in memory).
    fn rocksdb_properties(&self) -> Option<crate::RocksDbProperties> {
        None
    }
    /// Whether the engine keeps data across restarts.
    fn persistent(&self) -> bool;
    /// Whether the engine is open.
    fn is_open(&self) -> bool;
    /// Existing segments, ascending.
    fn segment_ids(&self) -> Vec<i64>;
    /// The stream time the engine remembers from before a restart.
    fn stored_stream_time(&self) -> Option<i64>;
    /// The value under `key` in `segment`.
    fn get(&self, segment: i64, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;
    /// Applies `writes` in order (creating segments for puts as needed) and remembers
    /// `stream_time`.
    fn write(
        &mut self,
        writes: Vec<SegmentWrite>,
        stream_time: Option<i64>,
    ) -> Result<(), StateError>;
    /// Drops every segment whose id is below `min_live`.
    fn drop_segments_below(&mut self, min_live: i64) -> Result<(), StateError>;
    /// Entries of `segment` whose key lies in `[lo, hi]` (`None`: open), ascending or
    /// descending.
    fn scan<'a>(
        &'a self,
        segment: i64,
        lo: Option<&[u8]>,
        hi: Option<&[u8]>,
        reverse: bool,
    ) -> Result<RawIter<'a>, StateError>;
    /// Makes every write durable.
    fn flush(&mut self) -> Result<(), StateError>;
    /// Releases the engine.
    fn close(&mut self) -> Result<(), StateError>;
}

/// In-memory segments: one ordered map per segment.
#[derive(Debug)]
pub(crate) struct MemSegments {
    name: String,
    segments: BTreeMap<i64, BTreeMap<Vec<u8>, Vec<u8>>>,
    open: bool,
}

impl MemSegments {
    pub(crate) fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            segments: BTreeMap::new(),
            open: true,
        }
    }

    fn check_open(&self) -> Result<(), StateError> {
        if self.open {
            Ok(())
        } else {
            Err(not_open(&self.name))
        }
    }
}

fn not_open(name: &str) -> StateError {
    StateError::NotOpen {
        store: name.to_string(),
    }
}

impl SegmentEngine for MemSegments {
    fn persistent(&self) -> bool {
        false
    }
    fn is_open(&self) -> bool {
        self.open
    }
    fn segment_ids(&self) -> Vec<i64> {
        self.segments.keys().copied().collect()
    }
    fn stored_stream_time(&self) -> Option<i64> {
        None
    }
    fn get(&self, segment: i64, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.check_open()?;
        Ok(self
            .segments
            .get(&segment)
            .and_then(|s| s.get(key))
            .cloned())
    }
    fn write(
        &mut self,
        writes: Vec<SegmentWrite>,
        _stream_time: Option<i64>,
    ) -> Result<(), StateError> {
        self.check_open()?;
        for w in writes {
            match w.value {
                Some(v) => {
                    self.segments.entry(w.segment).or_default().insert(w.key, v);
                }
                None => {
                    if let Some(seg) = self.segments.get_mut(&w.segment) {
                        seg.remove(&w.key);
                    }
                }
            }
        }
        Ok(())
    }
    fn drop_segments_below(&mut self, min_live: i64) -> Result<(), StateError> {
        self.check_open()?;
        let live = self.segments.split_off(&min_live);
        self.segments = live;
        Ok(())
    }
    fn scan<'a>(
        &'a self,
        segment: i64,
        lo: Option<&[u8]>,
        hi: Option<&[u8]>,
        reverse: bool,
    ) -> Result<RawIter<'a>, StateError> {
        self.check_open()?;
        let Some(seg) = self.segments.get(&segment) else {
            return Ok(Box::new(std::iter::empty()));
        };
        let lo = lo.map_or(Bound::Unbounded, Bound::Included);
        let hi = hi.map_or(Bound::Unbounded, Bound::Included);
        Ok(scan_map(seg, lo, hi, reverse))
    }
    fn flush(&mut self) -> Result<(), StateError> {
        self.check_open()
    }
    fn close(&mut self) -> Result<(), StateError> {
        self.open = false;
        self.segments.clear();
        Ok(())
    }
}

const DEFAULT_CF: &str = "default";
const SEGMENT_CF_PREFIX: &str = "segment-";
const META_STREAM_TIME: &[u8] = b"observed-stream-time";
const META_SEGMENT_INTERVAL: &[u8] = b"segment-interval";

fn segment_cf_name(segment: i64) -> String {
    format!("{SEGMENT_CF_PREFIX}{segment}")
}

fn parse_segment_cf_name(name: &str) -> Option<i64> {
    name.strip_prefix(SEGMENT_CF_PREFIX)?.parse().ok()
}

/// RocksDB segments: one instance per store, one column family per segment.
pub(crate) struct RocksSegments {
    name: String,
    path: PathBuf,
    db: Option<DB>,
    options: Options,
    write: WriteOptions,
    segments: BTreeSet<i64>,
    stored_stream_time: Option<i64>,
    /// The stream time of the latest write, stored with the next flush (a write of its own
    /// per record doubled the memtable inserts; without a WAL, writes after the last flush
    /// are not durable anyway, and a stored stream time that lags only keeps segments
    /// longer).
    pending_stream_time: Option<i64>,
    interval: i64,
}

impl std::fmt::Debug for RocksSegments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksSegments")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("open", &self.db.is_some())
            .field("segments", &self.segments)
            .field("interval", &self.interval)
            .finish()
    }
}

fn read_meta_i64(db: &DB, name: &str, key: &[u8]) -> Result<Option<i64>, StateError> {
    let Some(bytes) = db
        .get_pinned(key)
        .map_err(|e| engine_err(name, "reading store metadata", e))?
    else {
        return Ok(None);
    };
    let arr: [u8; 8] = bytes.as_ref().try_into().map_err(|_| StateError::Corrupt {
        store: name.to_string(),
        detail: format!(
            "metadata `{}` is {} bytes, expected 8",
            String::from_utf8_lossy(key),
            bytes.len()
        ),
    })?;
    Ok(Some(i64::from_be_bytes(arr)))
}

impl RocksSegments {
    /// Opens (creating if needed) the segmented RocksDB instance in `dir`. `interval` is the
    /// segment interval for a new store; an existing store keeps the interval it was created
    /// with (its segments were cut with it), which [`interval`](Self::interval) reports.
    pub(crate) fn open(
        name: &str,
        dir: &Path,
        resources: &RocksDbResources,
        interval: i64,
    ) -> Result<Self, StateError> {
        create_store_dir(name, dir)?;
        let mut options = resources.options();
        // Bloom filters on the user key too (in the memtables and the table files): a scan
        // of one key's windows in a segment that does not hold the key skips the segment
        // without a seek (a join's window fetch touches up to three).
        options.set_prefix_extractor(SliceTransform::create(
            "streams.segment-user-key",
            prefix_or_whole,
            Some(has_user_key_prefix),
        ));
        let existing = if dir.join("CURRENT").exists() {
            DB::list_cf(&options, dir).map_err(|e| engine_err(name, "listing segments", e))?
        } else {
            Vec::new()
        };
        let mut cfs: Vec<String> = vec![DEFAULT_CF.to_string()];
        cfs.extend(existing.into_iter().filter(|c| c != DEFAULT_CF));
        let segments: BTreeSet<i64> = cfs
            .iter()
            .filter_map(|c| parse_segment_cf_name(c))
            .collect();
        let db = DB::open_cf(&options, dir, &cfs).map_err(|e| engine_err(name, "open", e))?;
        let write = unlogged_writes();
        let stored_stream_time = read_meta_i64(&db, name, META_STREAM_TIME)?;
        let interval = match read_meta_i64(&db, name, META_SEGMENT_INTERVAL)? {
            Some(stored) if stored > 0 => {
                if stored != interval {
                    tracing::info!(
                        store = name,
                        stored,
                        configured = interval,
                        "segmented store keeps the segment interval it was created with"
                    );
                }
                stored
            }
            Some(stored) => {
                return Err(StateError::Corrupt {
                    store: name.to_string(),
                    detail: format!("stored segment interval {stored} is not positive"),
                });
            }
            None => {
                db.put_opt(META_SEGMENT_INTERVAL, interval.to_be_bytes(), &write)
                    .map_err(|e| engine_err(name, "writing store metadata", e))?;
                interval
            }
        };
        Ok(Self {
            name: name.to_string(),
            path: dir.to_path_buf(),
            db: Some(db),
            options,
            write,
            segments,
            stored_stream_time,
            pending_stream_time: stored_stream_time,
            interval,
        })
    }

    /// The segment interval the store's segments were cut with.
    pub(crate) fn interval(&self) -> i64 {
        self.interval
    }

    /// Where the store lives.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn db(&self) -> Result<&DB, StateError> {
        self.db.as_ref().ok_or_else(|| not_open(&self.name))
    }
}

impl SegmentEngine for RocksSegments {
    fn rocksdb_properties(&self) -> Option<crate::RocksDbProperties> {
        let db = self.db.as_ref()?;
        let names: Vec<String> = std::iter::once(rocksdb::DEFAULT_COLUMN_FAMILY_NAME.to_string())
            .chain(self.segments.iter().map(|s| segment_cf_name(*s)))
            .collect();
        let sum = |property: &str| -> u64 {
            names
                .iter()
                .filter_map(|n| db.cf_handle(n))
                .filter_map(|cf| db.property_int_value_cf(&cf, property).ok().flatten())
                .sum()
        };
        // The block cache is shared by every column family (and store): read it once.
        // (Of a segment's column family, which the store's options give the shared cache;
        // the default one holds only metadata.)
        let first = self
            .segments
            .iter()
            .next()
            .and_then(|s| db.cf_handle(&segment_cf_name(*s)));
        let shared = |property: &str| {
            match &first {
                Some(cf) => db.property_int_value_cf(cf, property),
                None => db.property_int_value(property),
            }
            .ok()
            .flatten()
            .unwrap_or(0)
        };
        Some(crate::RocksDbProperties {
            size_all_mem_tables: sum("rocksdb.cur-size-all-mem-tables"),
            block_cache_usage: shared("rocksdb.block-cache-usage"),
            block_cache_capacity: shared("rocksdb.block-cache-capacity"),
            estimate_pending_compaction_bytes: sum("rocksdb.estimate-pending-compaction-bytes"),
            // Records only: the default column family holds the store's own metadata.
            estimate_num_keys: self
                .segments
                .iter()
                .filter_map(|s| db.cf_handle(&segment_cf_name(*s)))
                .filter_map(|cf| {
                    db.property_int_value_cf(&cf, "rocksdb.estimate-num-keys")
                        .ok()
                        .flatten()
                })
                .sum(),
        })
    }
    fn persistent(&self) -> bool {
        true
    }
    fn is_open(&self) -> bool {
        self.db.is_some()
    }
    fn segment_ids(&self) -> Vec<i64> {
        self.segments.iter().copied().collect()
    }
    fn stored_stream_time(&self) -> Option<i64> {
        self.stored_stream_time
    }
    fn get(&self, segment: i64, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let db = self.db()?;
        let Some(cf) = db.cf_handle(&segment_cf_name(segment)) else {
            return Ok(None);
        };
        Ok(db
            .get_pinned_cf(cf, key)
            .map_err(|e| engine_err(&self.name, "get", e))?
            .map(|v| v.to_vec()))
    }
    fn write(
        &mut self,
        writes: Vec<SegmentWrite>,
        stream_time: Option<i64>,
    ) -> Result<(), StateError> {
        let name = self.name.clone();
        let db = self.db.as_mut().ok_or_else(|| not_open(&name))?;
        for w in &writes {
            if w.value.is_some() && !self.segments.contains(&w.segment) {
                db.create_cf(segment_cf_name(w.segment), &self.options)
                    .map_err(|e| engine_err(&name, "creating a segment", e))?;
                self.segments.insert(w.segment);
            }
        }
        let db = &*db;
        let mut batch = WriteBatch::default();
        for w in &writes {
            let Some(cf) = db.cf_handle(&segment_cf_name(w.segment)) else {
                // A delete in a segment that does not exist: nothing to delete.
                continue;
            };
            match &w.value {
                Some(v) => batch.put_cf(cf, &w.key, v),
                None => batch.delete_cf(cf, &w.key),
            }
        }
        if stream_time.is_some() {
            self.pending_stream_time = stream_time;
        }
        if batch.is_empty() {
            return Ok(());
        }
        db.write_opt(batch, &self.write)
            .map_err(|e| engine_err(&name, "write", e))
    }
    fn drop_segments_below(&mut self, min_live: i64) -> Result<(), StateError> {
        let name = self.name.clone();
        let db = self.db.as_mut().ok_or_else(|| not_open(&name))?;
        let live = self.segments.split_off(&min_live);
        let expired = std::mem::replace(&mut self.segments, live);
        for (i, seg) in expired.iter().enumerate() {
            if let Err(e) = db.drop_cf(&segment_cf_name(*seg)) {
                // Keep track of the segments that are still there.
                self.segments.extend(expired.iter().skip(i));
                return Err(engine_err(&name, "dropping an expired segment", e));
            }
        }
        Ok(())
    }
    fn scan<'a>(
        &'a self,
        segment: i64,
        lo: Option<&[u8]>,
        hi: Option<&[u8]>,
        reverse: bool,
    ) -> Result<RawIter<'a>, StateError> {
        let db = self.db()?;
        let Some(cf) = db.cf_handle(&segment_cf_name(segment)) else {
            return Ok(Box::new(std::iter::empty()));
        };
        if let (Some(l), Some(h)) = (lo, hi)
            && l > h
        {
            return Ok(Box::new(std::iter::empty()));
        }
        // A scan within one user key may use the prefix filters; any other must see every
        // key in order (prefix seeks skip the keys of other prefixes).
        let mut read = ReadOptions::default();
        let one_key = lo
            .and_then(user_key_prefix)
            .zip(hi.and_then(user_key_prefix))
            .is_some_and(|(l, h)| l == h);
        if one_key {
            read.set_prefix_same_as_start(true);
        } else {
            read.set_total_order_seek(true);
        }
        Ok(Box::new(RangeIter::new(
            db.raw_iterator_cf_opt(cf, read),
            &self.name,
            lo.map_or(Bound::Unbounded, Bound::Included),
            hi.map_or(Bound::Unbounded, Bound::Included),
            reverse,
        )))
    }
    fn flush(&mut self) -> Result<(), StateError> {
        if let Some(t) = self.pending_stream_time
            && self.stored_stream_time != Some(t)
        {
            self.db()?
                .put_opt(META_STREAM_TIME, t.to_be_bytes(), &self.write)
                .map_err(|e| engine_err(&self.name, "writing store metadata", e))?;
            self.stored_stream_time = Some(t);
        }
        let db = self.db()?;
        let mut opts = FlushOptions::default();
        opts.set_wait(true);
        let names: Vec<String> = std::iter::once(DEFAULT_CF.to_string())
            .chain(self.segments.iter().map(|s| segment_cf_name(*s)))
            .collect();
        let cfs: Vec<_> = names.iter().filter_map(|n| db.cf_handle(n)).collect();
        db.flush_cfs_opt(&cfs, &opts)
            .map_err(|e| engine_err(&self.name, "flush", e))
    }
    fn close(&mut self) -> Result<(), StateError> {
        if self.db.is_some() {
            self.flush()?;
        }
        self.db = None;
        Ok(())
    }
}

/// Merges per-segment iterators (each sorted by encoded key, keys distinct across
/// segments) into one sorted iterator. Stops after the first error.
struct MergeIter<'a> {
    sources: Vec<RawIter<'a>>,
    heads: Vec<Option<RawEntry>>,
    exhausted: Vec<bool>,
    reverse: bool,
    done: bool,
}

impl<'a> MergeIter<'a> {
    fn merge(mut sources: Vec<RawIter<'a>>, reverse: bool) -> RawIter<'a> {
        match sources.len() {
            0 => Box::new(std::iter::empty()),
            1 => match sources.pop() {
                Some(only) => only,
                None => Box::new(std::iter::empty()),
            },
            n => Box::new(MergeIter {
                sources,
                heads: vec![None; n],
                exhausted: vec![false; n],
                reverse,
                done: false,
            }),
        }
    }
}

impl Iterator for MergeIter<'_> {
    type Item = Result<RawEntry, StateError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        for i in 0..self.sources.len() {
            if self.heads[i].is_none() && !self.exhausted[i] {
                match self.sources[i].next() {
                    Some(Ok(entry)) => self.heads[i] = Some(entry),
                    Some(Err(e)) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                    None => self.exhausted[i] = true,
                }
            }
        }
        let mut best: Option<usize> = None;
        for (i, head) in self.heads.iter().enumerate() {
            let Some((key, _)) = head else { continue };
            let better = match best.and_then(|b| self.heads[b].as_ref()) {
                None => true,
                Some((best_key, _)) => {
                    if self.reverse {
                        key > best_key
                    } else {
                        key < best_key
                    }
                }
            };
            if better {
                best = Some(i);
            }
        }
        match best {
            Some(i) => self.heads[i].take().map(Ok),
            None => {
                self.done = true;
                None
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The segmented store
// ---------------------------------------------------------------------------------------------

/// `stream_time - retention + 1` without overflow (clamped to `i64::MIN`): the first
/// time that is not expired.
fn min_live_time(stream_time: i64, retention: i64) -> i64 {
    let t = i128::from(stream_time) - i128::from(retention) + 1;
    i64::try_from(t).unwrap_or(if t < 0 { i64::MIN } else { i64::MAX })
}

/// A write to a segmented store: the record's time (window start or session end), its
/// encoded key and its value (`None` deletes).
pub(crate) struct TimedWrite {
    pub(crate) time: i64,
    pub(crate) key: Vec<u8>,
    pub(crate) value: Option<Vec<u8>>,
}

/// Retention and stream-time bookkeeping over a [`SegmentEngine`].
///
/// Stream time `T` is the largest record time written so far (`None` before the first
/// write). A record with time `t <= T - retention` is expired: writes of it are ignored and
/// reads never return it, even while its segment still exists. Segments below
/// `segment_id(T - retention)` are dropped.
#[derive(Debug)]
pub(crate) struct Segmented<E> {
    name: String,
    retention: i64,
    interval: i64,
    stream_time: Option<i64>,
    engine: E,
}

impl<E: SegmentEngine> Segmented<E> {
    /// A segmented store over `engine`; drops the segments `engine` holds that its
    /// remembered stream time has expired.
    pub(crate) fn new(
        name: &str,
        retention: i64,
        interval: i64,
        engine: E,
    ) -> Result<Self, StateError> {
        let mut store = Self {
            name: name.to_string(),
            retention,
            interval: interval.max(1),
            stream_time: engine.stored_stream_time(),
            engine,
        };
        if let Some(min) = store.min_live_segment() {
            store.engine.drop_segments_below(min)?;
        }
        Ok(store)
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }
    /// How long (ms of stream time) the store keeps data.
    pub(crate) fn retention_period(&self) -> i64 {
        self.retention
    }
    /// The largest time written so far, or -1 (Kafka's "no timestamp") before any write.
    pub(crate) fn observed_stream_time(&self) -> i64 {
        self.stream_time.unwrap_or(-1)
    }
    pub(crate) fn engine(&self) -> &E {
        &self.engine
    }

    pub(crate) fn segment_of(&self, time: i64) -> i64 {
        segment_id(time, self.interval)
    }

    /// The smallest time that is not expired (times `<= stream time - retention` are).
    pub(crate) fn min_live_time(&self) -> i64 {
        match self.stream_time {
            Some(t) => min_live_time(t, self.retention),
            None => i64::MIN,
        }
    }

    fn min_live_segment(&self) -> Option<i64> {
        self.stream_time
            .map(|t| self.segment_of(t.saturating_sub(self.retention)))
    }

    pub(crate) fn check_open(&self) -> Result<(), StateError> {
        if self.engine.is_open() {
            Ok(())
        } else {
            Err(not_open(&self.name))
        }
    }

    /// Applies `writes` in order: each advances stream time, then is ignored if expired.
    pub(crate) fn write(
        &mut self,
        writes: impl IntoIterator<Item = TimedWrite>,
    ) -> Result<(), StateError> {
        self.check_open()?;
        let mut stream_time = self.stream_time;
        let mut kept = Vec::new();
        for w in writes {
            let t = stream_time.map_or(w.time, |t| t.max(w.time));
            stream_time = Some(t);
            if w.time >= min_live_time(t, self.retention) {
                kept.push(w);
            }
        }
        self.stream_time = stream_time;
        let Some(min_segment) = self.min_live_segment() else {
            return Ok(());
        };
        self.engine.drop_segments_below(min_segment)?;
        let interval = self.interval;
        let writes: Vec<SegmentWrite> = kept
            .into_iter()
            .filter_map(|w| {
                let segment = segment_id(w.time, interval);
                (segment >= min_segment).then_some(SegmentWrite {
                    segment,
                    key: w.key,
                    value: w.value,
                })
            })
            .collect();
        self.engine.write(writes, self.stream_time)
    }

    /// The value of the encoded `key` whose time is `time`, unless expired.
    pub(crate) fn get(&self, time: i64, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.check_open()?;
        if time < self.min_live_time() {
            return Ok(None);
        }
        self.engine.get(self.segment_of(time), key)
    }

    /// Entries with encoded keys in `[lo, hi]` from the live segments covering times
    /// `[time_from, time_to]`, merged in encoded-key order (descending if `reverse`).
    /// Callers still filter out entries whose own times are outside their bounds.
    pub(crate) fn scan<'a>(
        &'a self,
        time_from: i64,
        time_to: i64,
        lo: Option<&[u8]>,
        hi: Option<&[u8]>,
        reverse: bool,
    ) -> Result<RawIter<'a>, StateError> {
        self.check_open()?;
        let from = time_from.max(self.min_live_time());
        if from > time_to {
            return Ok(Box::new(std::iter::empty()));
        }
        let (seg_from, seg_to) = (self.segment_of(from), self.segment_of(time_to));
        let mut sources = Vec::new();
        for seg in self.engine.segment_ids() {
            if seg >= seg_from && seg <= seg_to {
                sources.push(self.engine.scan(seg, lo, hi, reverse)?);
            }
        }
        if reverse {
            sources.reverse();
        }
        Ok(MergeIter::merge(sources, reverse))
    }

    pub(crate) fn flush(&mut self) -> Result<(), StateError> {
        self.engine.flush()
    }

    pub(crate) fn close(&mut self) -> Result<(), StateError> {
        self.engine.close()
    }
}

/// The in-memory and RocksDB stores of one segmented kind (window or session) over its
/// `$core` type: the two structs, their constructors, `path` and `segment_ids`, their
/// [`StateStore`](crate::StateStore) implementation and the one of `$store`, whose body is
/// `$methods`, the same for both. Names are resolved where the macro is used (`Segmented`,
/// `MemSegments`, `RocksSegments`, `segment_interval`, and that file's own
/// `validate_retention`).
macro_rules! segmented_stores {
    (
        $(#[$mem_meta:meta])* $mem:ident,
        $(#[$rocks_meta:meta])* $rocks:ident,
        $core:ident, $what:literal,
        impl $store:ident { $($methods:tt)* }
    ) => {
        $crate::segments::segmented_stores!(@impls $mem $store { $($methods)* });
        $crate::segments::segmented_stores!(@impls $rocks $store { $($methods)* });
        $(#[$mem_meta])*
        #[derive(Debug)]
        pub struct $mem {
            core: $core<MemSegments>,
        }

        impl $mem {
            #[doc = concat!("Creates an empty, open store keeping ", $what, " for `retention_ms` of stream")]
            /// time, segmented with Kafka's interval (`max(retention / 2, 60 000)`).
            pub fn new(name: impl Into<String>, retention_ms: i64) -> Result<Self, StateError> {
                let name = name.into();
                validate_retention(&name, retention_ms)?;
                let seg = Segmented::new(
                    &name,
                    retention_ms,
                    segment_interval(retention_ms),
                    MemSegments::new(&name),
                )?;
                Ok(Self {
                    core: $core { seg },
                })
            }

            /// The ids of the time segments the store currently holds, ascending.
            pub fn segment_ids(&self) -> Vec<i64> {
                self.core.seg.engine().segment_ids()
            }

            /// One task's store, for its supplier (the task's context is not needed).
            pub(crate) fn for_task(
                name: &str,
                _ctx: &$crate::StoreContext,
                retention_ms: i64,
            ) -> Result<Self, StateError> {
                Self::new(name, retention_ms)
            }
        }

        $(#[$rocks_meta])*
        #[derive(Debug)]
        pub struct $rocks {
            core: $core<RocksSegments>,
        }

        impl $rocks {
            /// Opens (creating if needed) the store `name` in `dir` with the shared
            #[doc = concat!("`resources`, keeping ", $what, " for `retention_ms` of stream time. An existing")]
            /// store keeps the segment interval it was created with.
            pub fn open(
                name: &str,
                dir: &Path,
                resources: &RocksDbResources,
                retention_ms: i64,
            ) -> Result<Self, StateError> {
                validate_retention(name, retention_ms)?;
                let engine =
                    RocksSegments::open(name, dir, resources, segment_interval(retention_ms))?;
                let interval = engine.interval();
                let seg = Segmented::new(name, retention_ms, interval, engine)?;
                Ok(Self {
                    core: $core { seg },
                })
            }

            /// One task's store, for its supplier: opened under the task's state directory.
            pub(crate) fn for_task(
                name: &str,
                ctx: &$crate::StoreContext,
                retention_ms: i64,
            ) -> Result<Self, StateError> {
                let dir = ctx.store_dir(name)?;
                Self::open(name, &dir, ctx.resources(), retention_ms)
            }

            /// Where the store lives.
            pub fn path(&self) -> &Path {
                self.core.seg.engine().path()
            }

            /// The ids of the time segments the store currently holds, ascending (one column
            /// family each).
            pub fn segment_ids(&self) -> Vec<i64> {
                self.core.seg.engine().segment_ids()
            }
        }
    };
    (@impls $ty:ident $store:ident { $($methods:tt)* }) => {
        impl $crate::StateStore for $ty {
            $crate::delegate::delegate!(StateStore to (core.seg): name, flush, close);
            $crate::delegate::delegate!(StateStore to (core.seg.engine()): persistent, is_open);
        }

        impl $store for $ty {
            $crate::delegate::delegate!($store to (core.seg):
                retention_period, observed_stream_time);
            $crate::delegate::delegate!($store to (core.seg.engine()): rocksdb_properties);
            $($methods)*
        }
    };
}
pub(crate) use segmented_stores;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn segment_interval_follows_kafka() {
        assert_eq!(segment_interval(1_000), 60_000);
        assert_eq!(segment_interval(120_000), 60_000);
        assert_eq!(segment_interval(86_400_000), 43_200_000);
        assert_eq!(segment_id(-1, 60_000), -1);
        assert_eq!(segment_id(0, 60_000), 0);
        assert_eq!(segment_id(59_999, 60_000), 0);
        assert_eq!(segment_id(60_000, 60_000), 1);
        assert_eq!(segment_id(-60_000, 60_000), -1);
        assert_eq!(segment_id(-60_001, 60_000), -2);
    }

    #[test]
    fn escaping_is_exact() {
        assert_eq!(escape_key(b""), vec![0, 1]);
        assert_eq!(escape_key(b"a"), vec![b'a', 0, 1]);
        assert_eq!(escape_key(b"a\0"), vec![b'a', 0, 0xFF, 0, 1]);
        assert_eq!(escape_key(&[0, 0]), vec![0, 0xFF, 0, 0xFF, 0, 1]);
        assert_eq!(time_bytes(0), [0x80, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            time_bytes(-1),
            [0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(time_bytes(i64::MIN), [0; 8]);
        assert_eq!(time_bytes(i64::MAX), [0xFF; 8]);
    }

    #[test]
    fn decode_rejects_malformed_keys() {
        assert_eq!(decode_key::<1>(b"abc"), None); // no terminator
        assert_eq!(decode_key::<1>(&[b'a', 0, 7, 0, 0, 0, 0, 0, 0, 0, 0]), None); // bad escape
        let mut short = escape_key(b"k");
        short.extend_from_slice(&[1, 2, 3]);
        assert_eq!(decode_key::<1>(&short), None); // truncated time
        let mut ok = escape_key(b"k\0");
        push_time(&mut ok, -5);
        push_time(&mut ok, 7);
        assert_eq!(decode_key::<2>(&ok), Some((b"k\0".to_vec(), [-5, 7])));
        assert_eq!(decode_key::<1>(&ok), None);
    }

    fn encode(key: &[u8], t: i64) -> Vec<u8> {
        let mut e = escape_key(key);
        push_time(&mut e, t);
        e
    }

    #[test]
    fn upper_bound_covers_every_time_of_a_key_only() {
        let hi = key_upper_bound(b"a", 1);
        assert!(encode(b"a", i64::MAX) <= hi);
        assert!(encode(b"a\0", i64::MIN) > hi);
        assert!(encode(b"ab", i64::MIN) > hi);
    }

    #[test]
    fn the_prefix_is_the_escaped_terminated_user_key() {
        assert_eq!(user_key_prefix(&encode(b"a", 5)), Some(&[b'a', 0, 1][..]));
        assert_eq!(user_key_prefix(&encode(b"", 5)), Some(&[0, 1][..]));
        // A 0x00 of the key itself is escaped, so it never ends the prefix.
        assert_eq!(
            user_key_prefix(&encode(&[0, 1], -1)),
            Some(&[0, 0xFF, 1, 0, 1][..])
        );
        // A time whose bytes hold 0x00 0x01 comes after the terminator.
        let t = i64::from_be_bytes([0x80, 0, 1, 0, 1, 0, 0, 1]);
        assert_eq!(user_key_prefix(&encode(b"k", t)), Some(&[b'k', 0, 1][..]));
        assert_eq!(user_key_prefix(b"meta"), None);
    }

    /// Scans of a RocksDB segmented store (prefix filters on the user key) against a
    /// sorted map: one key's scans and cross-key scans, forward and back, with entries in
    /// table files and in the memtable, and keys that are prefixes of each other.
    #[test]
    fn rocks_scans_see_every_key_with_prefix_filters() {
        let dir = tempfile::tempdir().unwrap();
        let resources = RocksDbResources::with_budget(16 << 20);
        let mut engine = RocksSegments::open("t", dir.path(), &resources, 60_000).unwrap();
        let keys: [&[u8]; 7] = [b"", b"a", b"a\0", b"a\0b", b"ab", b"b", &[0, 1]];
        let mut model = BTreeMap::new();
        for (round, flush) in [(0i64, true), (1, false)] {
            let mut writes = Vec::new();
            for (i, k) in keys.iter().enumerate() {
                // Some keys only in the table files, some only in the memtable.
                if (i as i64 + round) % 3 == 0 {
                    continue;
                }
                for t in [round * 10, round * 10 + 5] {
                    let key = encode(k, t);
                    let value = format!("{i}@{t}").into_bytes();
                    model.insert(key.clone(), value.clone());
                    writes.push(SegmentWrite {
                        segment: 0,
                        key,
                        value: Some(value),
                    });
                }
            }
            engine.write(writes, Some(round * 10 + 5)).unwrap();
            if flush {
                engine.flush().unwrap();
            }
        }
        let scan = |lo: Option<Vec<u8>>, hi: Option<Vec<u8>>, reverse: bool| {
            let got: Vec<RawEntry> = engine
                .scan(0, lo.as_deref(), hi.as_deref(), reverse)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let mut want: Vec<RawEntry> = model
                .iter()
                .filter(|(k, _)| lo.as_ref().is_none_or(|l| *k >= l))
                .filter(|(k, _)| hi.as_ref().is_none_or(|h| *k <= h))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if reverse {
                want.reverse();
            }
            assert_eq!(got, want, "scan {lo:?}..={hi:?} reverse {reverse}");
        };
        for reverse in [false, true] {
            scan(None, None, reverse);
            for (i, k) in keys.iter().enumerate() {
                // One key's windows, including a key absent from a part of the data.
                scan(Some(encode(k, 0)), Some(encode(k, 20)), reverse);
                scan(Some(encode(k, 6)), Some(key_upper_bound(k, 1)), reverse);
                // Across keys.
                let other = keys[(i + 1) % keys.len()];
                scan(Some(encode(k, 0)), Some(encode(other, 20)), reverse);
                scan(Some(encode(k, 7)), None, reverse);
                scan(None, Some(encode(k, 7)), reverse);
            }
        }
    }

    proptest! {
        #[test]
        fn encoding_preserves_order(
            a in proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(0xFFu8), any::<u8>()], 0..4),
            b in proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(0xFFu8), any::<u8>()], 0..4),
            ta in any::<i64>(),
            tb in prop_oneof![any::<i64>(), Just(0i64), Just(-1i64)],
        ) {
            let (ea, eb) = (encode(&a, ta), encode(&b, tb));
            prop_assert_eq!(ea.cmp(&eb), (&a, ta).cmp(&(&b, tb)));
            prop_assert_eq!(decode_key::<1>(&ea), Some((a.clone(), [ta])));
            prop_assert!(ea <= key_upper_bound(&a, 1));
        }
    }

    fn mem(retention: i64) -> Segmented<MemSegments> {
        match Segmented::new(
            "t",
            retention,
            segment_interval(retention),
            MemSegments::new("t"),
        ) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    fn put(s: &mut Segmented<MemSegments>, key: &[u8], t: i64, v: &[u8]) {
        s.write([TimedWrite {
            time: t,
            key: encode(key, t),
            value: Some(v.to_vec()),
        }])
        .unwrap();
    }

    #[test]
    fn merge_orders_across_segments() {
        let mut s = mem(1_000_000);
        put(&mut s, b"b", 0, b"1");
        put(&mut s, b"a", 600_000, b"2");
        put(&mut s, b"a", 10, b"3");
        put(&mut s, b"c", 900_000, b"4");
        assert!(s.engine().segment_ids().len() >= 2);
        let keys: Vec<_> = s
            .scan(i64::MIN, i64::MAX, None, None, false)
            .unwrap()
            .map(|r| decode_key::<1>(&r.unwrap().0).unwrap())
            .collect();
        assert_eq!(
            keys,
            vec![
                (b"a".to_vec(), [10]),
                (b"a".to_vec(), [600_000]),
                (b"b".to_vec(), [0]),
                (b"c".to_vec(), [900_000])
            ]
        );
        let back: Vec<_> = s
            .scan(i64::MIN, i64::MAX, None, None, true)
            .unwrap()
            .map(|r| r.unwrap().1)
            .collect();
        assert_eq!(
            back,
            vec![b"4".to_vec(), b"1".to_vec(), b"2".to_vec(), b"3".to_vec()]
        );
    }

    #[test]
    fn retention_drops_segments_and_hides_expired_times() {
        let mut s = mem(120_000); // interval 60 s
        put(&mut s, b"k", 0, b"a");
        put(&mut s, b"k", 60_000, b"b");
        put(&mut s, b"k", 130_000, b"c");
        // T = 130 000: min live time 10 001, min live segment = segment(10 000) = 0.
        assert_eq!(s.engine().segment_ids(), vec![0, 1, 2]);
        assert_eq!(s.get(0, &encode(b"k", 0)).unwrap(), None);
        assert_eq!(
            s.get(60_000, &encode(b"k", 60_000)).unwrap(),
            Some(b"b".to_vec())
        );
        put(&mut s, b"k", 180_000, b"d");
        // T = 180 000: min live segment = segment(60 000) = 1.
        assert_eq!(s.engine().segment_ids(), vec![1, 2, 3]);
        put(&mut s, b"k", 59_999, b"late");
        assert_eq!(s.engine().segment_ids(), vec![1, 2, 3]);
        assert_eq!(s.observed_stream_time(), 180_000);
    }
}
