//! The embedded log engine's storage: one partition of a topic on local disk.
//!
//! A partition is a directory of segments. Each segment is a `.log` file of record batches
//! named after its first offset (20 digits), with a sparse offset index (`.index`: relative
//! offset → file position) and a sparse time index (`.timeindex`: largest timestamp before a
//! position → position) beside it. Both indexes are rebuilt by the scan that validates a
//! segment on open; the files are written for inspection. A batch is CRC-checked and comes in
//! two formats:
//!
//! ```text
//! magic u8 | crc32 u32 (of the magic, the length and the payload) | payload length u32 |
//!   payload
//! magic 1 (appends) payload: base offset i64 | record count u32 | max timestamp i64 | records
//!   record: timestamp i64 | key length i32 (-1 = null) | key | value length i32 (-1 = null) |
//!           value | header count u32 | (key length u16 | key | value length i32 | value)*
//! magic 2 (written by compaction) payload: base offset i64 | record count u32 |
//!   max timestamp i64 | next offset i64 | records
//!   record: offset i64 | (a magic 1 record) | for a tombstone only: delete horizon i64
//! magic 3 (a producer's batch) payload: base offset i64 | record count u32 |
//!   max timestamp i64 | producer id i64 | producer epoch i16 | attributes u8 |
//!   (magic 1 records)
//!   attributes: 1 = transactional, 2 = control (a commit or abort marker, one record with
//!   neither key nor value), 4 = commit (of a control batch); other bits are damage
//! ```
//!
//! The CRC covers the magic byte, so that a changed magic (which would read the payload in
//! another format, e.g. a plain batch as a marker readers skip) is damage. Files written by
//! earlier versions hold batches whose CRC covers only the length and the payload: such a
//! batch is still accepted, for magic 1 and 2 only (magic 3 never had that CRC).
//!
//! Transactions follow Kafka: a producer's transactional batches stay pending until its
//! control batch (marker) ends the transaction. The partition keeps, rebuilt by the scan on
//! open, the first offset of every open transaction (the last stable offset is the smallest
//! of them, or the end) and the ranges of aborted ones, so that a `read_committed` reader
//! ([`PartitionLog::read_with`]) reads only below the last stable offset and skips aborted
//! records. No reader ever sees a marker. Compaction works below the last stable offset
//! only, drops aborted records and markers, and keeps committed records as plain ones.
//!
//! A magic 1 batch holds the contiguous offsets `base..base + count`; a magic 2 batch covers
//! `base..next` and holds only some of those offsets (compaction leaves gaps, and an empty
//! batch keeps a fully compacted range covered). Batches of a segment cover its offsets
//! without holes, and each segment ends where the next one begins (its file name): opening
//! checks both, and a gap or an overlap between segments is damage like a bad batch.
//!
//! Opening a partition scans its segments and truncates the torn tail of the active segment
//! (a partial batch or one whose CRC does not match, with no intact batch after it),
//! reporting and logging what was cut: nothing acknowledged after an fsync is lost. Damage
//! anywhere else fails the open with [`crate::LogError::DamagedSegment`], naming the file and
//! byte range, and leaves the file alone: `streams verify` lists damage and `streams repair`
//! keeps every intact batch ([`crate::repair`]). Offsets are never reused. It also finishes or discards an interrupted compaction (see
//! [`PartitionLog::compact`]).

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
#[cfg(not(unix))]
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::StateError;
use crate::txn::{Isolation, ProducerId, TxnIndex};

const MAGIC_V1: u8 = 1;
const MAGIC_V2: u8 = 2;
const MAGIC_V3: u8 = 3;
/// Magic 3 attributes.
pub(crate) const ATTR_TRANSACTIONAL: u8 = 1;
pub(crate) const ATTR_CONTROL: u8 = 2;
pub(crate) const ATTR_COMMIT: u8 = 4;
/// Every attribute bit a magic 3 batch may have set.
const ATTR_KNOWN: u8 = ATTR_TRANSACTIONAL | ATTR_CONTROL | ATTR_COMMIT;
/// Bytes before the payload: magic, crc, payload length.
const HEADER: usize = 1 + 4 + 4;
/// Fixed part of a magic 1 payload: base offset, record count, max timestamp.
const PAYLOAD_FIXED: usize = 8 + 4 + 8;
/// Fixed part of a magic 2 payload: the magic 1 part and the next offset.
const PAYLOAD_FIXED_V2: usize = PAYLOAD_FIXED + 8;
/// Fixed part of a magic 3 payload: the magic 1 part, producer id, epoch, attributes.
const PAYLOAD_FIXED_V3: usize = PAYLOAD_FIXED + 8 + 2 + 1;

/// The fixed payload size of a batch of `magic`.
fn fixed_len(magic: u8) -> usize {
    match magic {
        MAGIC_V1 => PAYLOAD_FIXED,
        MAGIC_V2 => PAYLOAD_FIXED_V2,
        _ => PAYLOAD_FIXED_V3,
    }
}
/// An index entry every this many bytes of log.
const INDEX_INTERVAL: u64 = 4096;
/// Bytes read from a segment at a time (more when one batch is larger).
const READ_CHUNK: usize = 1 << 20;

thread_local! {
    /// The buffer segment reads go through, kept per thread between reads.
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}
/// Compaction writes batches of about this many payload bytes.
const COMPACTED_BATCH_BYTES: usize = 64 << 10;
/// The timestamp of "no record" (smaller than any real one).
const NO_TIMESTAMP: i64 = i64::MIN;

/// One record of a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Its offset in the partition.
    pub offset: i64,
    /// Timestamp (ms since the epoch).
    pub timestamp: i64,
    /// Key bytes; `None` is null.
    pub key: Option<Vec<u8>>,
    /// Value bytes; `None` is null (a tombstone).
    pub value: Option<Vec<u8>>,
    /// Headers: key and possibly-null value.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// A record to append (the log assigns its offset).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewRecord {
    /// Timestamp (ms since the epoch).
    pub timestamp: i64,
    /// Key bytes; `None` is null.
    pub key: Option<Vec<u8>>,
    /// Value bytes; `None` is null.
    pub value: Option<Vec<u8>>,
    /// Headers.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// When appends reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every appended batch: nothing acknowledged is ever lost.
    EveryBatch,
    /// Only on [`PartitionLog::flush`] (and segment roll): fast; a machine crash may lose
    /// the unflushed tail, a process crash does not.
    OnFlush,
}

/// How a partition log is laid out and kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// A segment rolls once it reaches this size.
    pub segment_bytes: u64,
    /// A segment also rolls when an appended batch's largest timestamp is this much newer
    /// than the segment's first batch's (Kafka's `segment.ms`, on record time), so that time
    /// retention can drop old data in whole segments. `None`: roll by size only.
    pub segment_ms: Option<i64>,
    /// When appends are synced.
    pub fsync: FsyncPolicy,
    /// Delete the oldest segments while the partition is larger than this (the active
    /// segment is always kept). `None`: no size limit.
    pub retention_bytes: Option<u64>,
    /// Delete the oldest segments whose largest timestamp is older than now minus this
    /// (Kafka's `retention.ms`), applied by [`PartitionLog::enforce_time_retention`]. `None`:
    /// no time limit.
    pub retention_ms: Option<i64>,
}

/// Kafka's default `segment.ms`: 7 days.
pub const DEFAULT_SEGMENT_MS: i64 = 7 * 24 * 60 * 60 * 1000;

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 64 << 20,
            segment_ms: Some(DEFAULT_SEGMENT_MS),
            fsync: FsyncPolicy::OnFlush,
            retention_bytes: None,
            retention_ms: None,
        }
    }
}

/// What [`PartitionLog::read_with`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadResult {
    /// The records read.
    pub records: Vec<LogRecord>,
    /// Where to read from next: past every batch read or skipped (markers, aborted
    /// records, compacted gaps).
    pub next_offset: i64,
}

/// One batch of a partition as [`PartitionLog::read_batches`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBatch {
    /// The first offset the batch covers.
    pub base: i64,
    /// The offset after the range it covers (compaction leaves gaps inside it).
    pub next: i64,
    /// The producer of a transactional batch or of a marker; `None` for a plain append.
    pub producer: Option<ProducerId>,
    /// Whether its records belong to a transaction.
    pub transactional: bool,
    /// `Some(commit)` for a transaction marker (a commit or an abort), which holds no
    /// records.
    pub marker: Option<bool>,
    /// Its records at or after the offset read from (none for a marker).
    pub records: Vec<LogRecord>,
}

/// What opening a partition found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecoveryReport {
    /// Bytes of a torn or corrupt tail cut from the last segment.
    pub truncated_bytes: u64,
    /// Whole batches that were valid.
    pub valid_batches: u64,
}

/// What a compaction pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompactionReport {
    /// Segments replaced by cleaned ones (several may be merged into one).
    pub segments_rewritten: u64,
    /// Records removed: superseded values and expired tombstones.
    pub records_removed: u64,
}

impl CompactionReport {
    fn add(&mut self, (segments, removed): (u64, u64)) {
        self.segments_rewritten += segments;
        self.records_removed += removed;
    }
}

/// The steps of a compaction after which a crash is survivable (tests stop there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CompactStep {
    /// The cleaned file is written and synced, not yet marked complete.
    Cleaned,
    /// The cleaned file is renamed `.swap`: complete, replaces its range on open.
    Swap,
    /// The first of the replaced segments is deleted.
    FirstOldDeleted,
}

struct Segment {
    base: i64,
    log_path: PathBuf,
    index_path: PathBuf,
    time_index_path: PathBuf,
    /// The open file: kept for the active segment only, so that a partition of many
    /// segments holds one descriptor (closed segments open their file for each read).
    file: Option<File>,
    size: u64,
    /// Sparse (relative offset, position), ascending.
    index: Vec<(u32, u64)>,
    /// Sparse (largest timestamp of the batches before the position, position), at the same
    /// positions as `index`; the timestamps never decrease.
    time_index: Vec<(i64, u64)>,
    last_indexed: u64,
    /// The next offset after this segment's last record.
    next_offset: i64,
    /// The largest timestamp in the segment ([`NO_TIMESTAMP`] if empty).
    max_timestamp: i64,
    /// The first batch's largest timestamp: `segment_ms` rolls count from it.
    first_timestamp: Option<i64>,
}

/// One partition of a topic.
pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    segments: BTreeMap<i64, Segment>,
    /// The first offset still readable (raised by [`PartitionLog::delete_records`] and
    /// retention).
    start_offset: i64,
    /// After a compaction: the end offset it saw and the earliest time a kept tombstone
    /// expires. Compacting again before either changes would find nothing to do.
    cleaned: Option<(i64, i64)>,
    /// Why appends are refused until the partition is opened again: a failed write could
    /// not be rolled back, or a sync failed (what is on disk is then unknown).
    failed: Option<String>,
    /// Open transactions and aborted ones (see the module docs).
    txns: TxnIndex,
    /// Tests: the number of bytes after which writes fail as on a full disk.
    #[cfg(test)]
    fail_writes_after: Option<usize>,
}

impl std::fmt::Debug for PartitionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLog")
            .field("dir", &self.dir)
            .field("segments", &self.segments.len())
            .field("start_offset", &self.start_offset)
            .field("end_offset", &self.end_offset())
            .finish()
    }
}

/// Writes a whole batch; with `fail_after` (tests), writes only that many bytes and then
/// fails as a full disk does.
fn write_batch(file: &mut File, batch: &[u8], fail_after: Option<usize>) -> std::io::Result<()> {
    match fail_after {
        Some(n) if n < batch.len() => {
            file.write_all(&batch[..n])?;
            Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "no space left on device (injected)",
            ))
        }
        _ => file.write_all(batch),
    }
}

fn io<'a>(dir: &'a Path, action: &'static str) -> impl FnOnce(std::io::Error) -> StateError + 'a {
    move |source| StateError::io(dir, action, source)
}

fn corrupt(dir: &Path, detail: impl Into<String>) -> StateError {
    StateError::Corrupt {
        store: dir.display().to_string(),
        detail: detail.into(),
    }
}

fn segment_file(dir: &Path, base: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

/// Syncs a directory so that renames and deletions in it are durable (best effort: not
/// every platform can open a directory).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &Option<Vec<u8>>) {
    match b {
        Some(b) => {
            out.extend_from_slice(&(b.len() as i32).to_be_bytes());
            out.extend_from_slice(b);
        }
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
    }
}

/// The magic 1 record body shared by both formats.
fn put_record(
    out: &mut Vec<u8>,
    timestamp: i64,
    key: &Option<Vec<u8>>,
    value: &Option<Vec<u8>>,
    headers: &[(String, Option<Vec<u8>>)],
) {
    out.extend_from_slice(&timestamp.to_be_bytes());
    put_bytes(out, key);
    put_bytes(out, value);
    out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (k, v) in headers {
        let k = k.as_bytes();
        let n = k.len().min(u16::MAX as usize);
        out.extend_from_slice(&(n as u16).to_be_bytes());
        out.extend_from_slice(&k[..n]);
        put_bytes(out, v);
    }
}

/// Frames a payload: magic, CRC (of the magic, the length and the payload), length.
fn frame(magic: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.push(magic);
    let len = (payload.len() as u32).to_be_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[magic]);
    crc.update(&len);
    crc.update(payload);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
    out.extend_from_slice(&len);
    out.extend_from_slice(payload);
    out
}

/// Encodes records as one batch starting at `base`: magic 1, or magic 3 with a producer
/// and attributes.
fn encode_batch(base: i64, records: &[NewRecord], producer: Option<(ProducerId, u8)>) -> Vec<u8> {
    let size: usize = records
        .iter()
        .map(|r| {
            24 + r.key.as_ref().map_or(0, Vec::len)
                + r.value.as_ref().map_or(0, Vec::len)
                + r.headers.len() * 16
        })
        .sum();
    let mut payload = Vec::with_capacity(PAYLOAD_FIXED_V3 + size);
    let max_ts = records.iter().map(|r| r.timestamp).max().unwrap_or(-1);
    payload.extend_from_slice(&base.to_be_bytes());
    payload.extend_from_slice(&(records.len() as u32).to_be_bytes());
    payload.extend_from_slice(&max_ts.to_be_bytes());
    if let Some((p, attributes)) = producer {
        payload.extend_from_slice(&p.id.to_be_bytes());
        payload.extend_from_slice(&p.epoch.to_be_bytes());
        payload.push(attributes);
    }
    for r in records {
        put_record(&mut payload, r.timestamp, &r.key, &r.value, &r.headers);
    }
    frame(
        if producer.is_some() {
            MAGIC_V3
        } else {
            MAGIC_V1
        },
        &payload,
    )
}

/// A record kept by compaction, with its tombstone delete horizon (-1: not a tombstone).
pub(crate) type Kept = (LogRecord, i64);

/// Encodes compacted records as one magic 2 batch covering `base..next`.
pub(crate) fn encode_compacted_batch(base: i64, next: i64, records: &[Kept]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(PAYLOAD_FIXED_V2 + records.len() * 64);
    let max_ts = records.iter().map(|(r, _)| r.timestamp).max().unwrap_or(-1);
    payload.extend_from_slice(&base.to_be_bytes());
    payload.extend_from_slice(&(records.len() as u32).to_be_bytes());
    payload.extend_from_slice(&max_ts.to_be_bytes());
    payload.extend_from_slice(&next.to_be_bytes());
    for (r, horizon) in records {
        payload.extend_from_slice(&r.offset.to_be_bytes());
        put_record(&mut payload, r.timestamp, &r.key, &r.value, &r.headers);
        if r.value.is_none() {
            payload.extend_from_slice(&horizon.to_be_bytes());
        }
    }
    frame(MAGIC_V2, &payload)
}

/// A cursor over a batch's payload.
struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<Option<Vec<u8>>> {
        let n = self.i32()?;
        if n < 0 {
            return Some(None);
        }
        Some(Some(self.take(n as usize)?.to_vec()))
    }
}

/// A batch's fixed fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchHeader {
    pub(crate) base: i64,
    pub(crate) count: u32,
    pub(crate) max_timestamp: i64,
    /// The offset after the range the batch covers.
    pub(crate) next: i64,
    /// Magic 3: the producer and the attributes.
    pub(crate) producer: Option<(ProducerId, u8)>,
}

impl BatchHeader {
    /// A marker: never returned to readers.
    pub(crate) fn is_control(&self) -> bool {
        self.producer.is_some_and(|(_, a)| a & ATTR_CONTROL != 0)
    }
}

pub(crate) fn batch_header(magic: u8, payload: &[u8]) -> Option<BatchHeader> {
    let mut c = Cursor { b: payload, pos: 0 };
    let (base, count, max_timestamp) = (c.i64()?, c.u32()?, c.i64()?);
    let mut producer = None;
    let next = match magic {
        MAGIC_V1 => base.checked_add(i64::from(count))?,
        MAGIC_V3 => {
            let id = c.i64()?;
            let epoch = i16::from_be_bytes(c.take(2)?.try_into().ok()?);
            let attributes = c.take(1)?[0];
            if attributes & !ATTR_KNOWN != 0 {
                return None;
            }
            producer = Some((ProducerId { id, epoch }, attributes));
            base.checked_add(i64::from(count))?
        }
        _ => c.i64()?,
    };
    (next >= base).then_some(BatchHeader {
        base,
        count,
        max_timestamp,
        next,
        producer,
    })
}

/// Decodes a batch payload, calling `f` with each record and its delete horizon (-1 for
/// none: not a tombstone, or not compacted yet).
fn decode_batch(magic: u8, payload: &[u8], mut f: impl FnMut(LogRecord, i64)) -> Option<()> {
    let header = batch_header(magic, payload)?;
    let mut c = Cursor {
        b: payload,
        pos: fixed_len(magic),
    };
    for i in 0..header.count {
        let offset = if magic == MAGIC_V2 {
            c.i64()?
        } else {
            header.base + i64::from(i)
        };
        let timestamp = c.i64()?;
        let key = c.bytes()?;
        let value = c.bytes()?;
        let nh = c.u32()?;
        let mut headers = Vec::with_capacity(nh.min(1024) as usize);
        for _ in 0..nh {
            let kl = c.u16()? as usize;
            let k = String::from_utf8_lossy(c.take(kl)?).into_owned();
            headers.push((k, c.bytes()?));
        }
        let horizon = if magic == MAGIC_V2 && value.is_none() {
            c.i64()?
        } else {
            -1
        };
        f(
            LogRecord {
                offset,
                timestamp,
                key,
                value,
                headers,
            },
            horizon,
        );
    }
    Some(())
}

/// Reads the batch at `pos` of `data`: (total length, magic, payload) if whole and
/// CRC-valid. The CRC covers the magic, the length and the payload; a magic 1 or 2 batch
/// whose CRC covers only the length and the payload (written by earlier versions) is
/// valid too.
pub(crate) fn batch_at(data: &[u8], pos: usize) -> Option<(usize, u8, &[u8])> {
    let h = data.get(pos..pos.checked_add(HEADER)?)?;
    let magic = h[0];
    if !matches!(magic, MAGIC_V1 | MAGIC_V2 | MAGIC_V3) {
        return None;
    }
    let crc = u32::from_be_bytes(h[1..5].try_into().ok()?);
    let len = u32::from_be_bytes(h[5..9].try_into().ok()?) as usize;
    if len < fixed_len(magic) {
        return None;
    }
    let end = pos.checked_add(HEADER)?.checked_add(len)?;
    let payload = data.get(pos + HEADER..end)?;
    let covered = &data[pos + 5..end];
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[magic]);
    hasher.update(covered);
    let valid = hasher.finalize() == crc
        || (matches!(magic, MAGIC_V1 | MAGIC_V2) && crc32fast::hash(covered) == crc);
    valid.then_some((HEADER + len, magic, payload))
}

/// Where intact batches resume after a damage at `pos` (a position and a base offset): of
/// the CRC-valid batches at later bytes whose base is at or after `expected` (and below
/// `limit`, the next segment's base: a batch from there on is a stray copy of one of its
/// batches), the one with the smallest base (the earliest of those on a tie). A stray copy
/// of a later batch after the damage thus does not hide the intact batches between: the
/// bytes before the batch found belong to the damaged range.
pub(crate) fn next_intact_batch(
    data: &[u8],
    pos: usize,
    expected: i64,
    limit: Option<i64>,
) -> Option<(usize, i64)> {
    let mut best: Option<(usize, i64)> = None;
    for p in pos + 1..data.len() {
        let Some((_, magic, payload)) = batch_at(data, p) else {
            continue;
        };
        let Some(h) = batch_header(magic, payload) else {
            continue;
        };
        if h.base >= expected
            && limit.is_none_or(|l| h.base < l)
            && best.is_none_or(|(_, b)| h.base < b)
        {
            best = Some((p, h.base));
            if h.base == expected {
                break; // nothing can come before it
            }
        }
    }
    best
}

/// The position of the first batch of a segment's `data` (read as a chain of intact
/// batches from its start) that covers an offset at or after `offset`.
pub(crate) fn batch_reaching(data: &[u8], offset: i64) -> Option<usize> {
    let mut pos = 0;
    while let Some((len, magic, payload)) = batch_at(data, pos) {
        if batch_header(magic, payload)?.next > offset {
            return Some(pos);
        }
        pos += len;
    }
    None
}

/// An abort marker of `producer` at `offset`: what repair writes where a damage may have
/// destroyed the marker that ended the producer's transaction.
pub(crate) fn encode_abort_marker(offset: i64, producer: ProducerId, timestamp: i64) -> Vec<u8> {
    let marker = NewRecord {
        timestamp,
        ..NewRecord::default()
    };
    encode_batch(
        offset,
        std::slice::from_ref(&marker),
        Some((producer, ATTR_TRANSACTIONAL | ATTR_CONTROL)),
    )
}

/// The total length a batch header at `pos` announces, if the header is there.
fn announced_len(data: &[u8], pos: usize) -> Option<usize> {
    let h = data.get(pos..pos + HEADER)?;
    Some(HEADER + u32::from_be_bytes(h[5..9].try_into().ok()?) as usize)
}

impl Segment {
    fn create(dir: &Path, base: i64) -> Result<Self, StateError> {
        let log_path = segment_file(dir, base, "log");
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&log_path)
            .map_err(io(dir, "creating a segment"))?;
        Ok(Self {
            base,
            log_path,
            index_path: segment_file(dir, base, "index"),
            time_index_path: segment_file(dir, base, "timeindex"),
            file: Some(file),
            size: 0,
            index: Vec::new(),
            time_index: Vec::new(),
            last_indexed: 0,
            next_offset: base,
            max_timestamp: NO_TIMESTAMP,
            first_timestamp: None,
        })
    }

    /// Opens a segment, validating every batch. Producer batches are told to `txns`. Only
    /// the torn tail of the `active` segment (a partial or corrupt last write, with no
    /// intact batch after it) is cut, with a warning; damage anywhere else is an error
    /// naming the file and byte range, and the file is left as it is (see
    /// [`crate::repair`]). `next_base`: the base of the segment after it, if any.
    fn open(
        dir: &Path,
        base: i64,
        active: bool,
        next_base: Option<i64>,
        report: &mut RecoveryReport,
        txns: &mut TxnIndex,
    ) -> Result<Self, StateError> {
        let mut seg = Self::create(dir, base)?;
        let mut data = Vec::new();
        File::open(&seg.log_path)
            .and_then(|mut f| f.read_to_end(&mut data))
            .map_err(io(dir, "reading a segment"))?;
        let mut pos = 0usize;
        while let Some((len, magic, payload)) = batch_at(&data, pos) {
            let Some(h) = batch_header(magic, payload) else {
                break;
            };
            if h.base != seg.next_offset {
                break; // out of sequence: treat as corrupt from here
            }
            seg.note_batch(pos as u64, len as u64, h);
            txns.observe(&h);
            report.valid_batches += 1;
            pos += len;
        }
        if pos < data.len() {
            let intact = next_intact_batch(&data, pos, seg.next_offset, next_base);
            if !active || intact.is_some() {
                return Err(StateError::Log(crate::LogError::DamagedSegment {
                    file: seg.log_path.display().to_string(),
                    from: pos as u64,
                    to: intact.map_or(data.len(), |(p, _)| p) as u64,
                    offset: seg.next_offset,
                }));
            }
            tracing::warn!(
                file = %seg.log_path.display(),
                bytes = data.len() - pos,
                offset = seg.next_offset,
                "torn tail of the active segment truncated (a write the crash interrupted; never acknowledged)"
            );
            report.truncated_bytes += (data.len() - pos) as u64;
            let file = seg.writable().map_err(io(dir, "opening a segment"))?;
            file.set_len(pos as u64)
                .map_err(io(dir, "truncating a torn segment tail"))?;
            file.sync_all().map_err(io(dir, "syncing a segment"))?;
        }
        seg.write_index()?;
        if !active {
            seg.file = None;
        }
        Ok(seg)
    }

    /// The file to append to, opened again if it was let go.
    fn writable(&mut self) -> std::io::Result<&mut File> {
        if self.file.is_none() {
            self.file = Some(
                OpenOptions::new()
                    .read(true)
                    .append(true)
                    .open(&self.log_path)?,
            );
        }
        match self.file.as_mut() {
            Some(f) => Ok(f),
            None => Err(std::io::Error::other("segment file not open")),
        }
    }

    /// Accounts for a batch of `len` bytes written at `pos`.
    fn note_batch(&mut self, pos: u64, len: u64, h: BatchHeader) {
        if self.index.is_empty() || pos >= self.last_indexed + INDEX_INTERVAL {
            self.index.push(((h.base - self.base) as u32, pos));
            self.time_index.push((self.max_timestamp, pos));
            self.last_indexed = pos;
        }
        self.size = pos + len;
        self.next_offset = h.next;
        if h.count > 0 {
            self.max_timestamp = self.max_timestamp.max(h.max_timestamp);
            self.first_timestamp.get_or_insert(h.max_timestamp);
        }
    }

    fn write_index(&self) -> Result<(), StateError> {
        let mut out = Vec::with_capacity(self.index.len() * 12);
        for (rel, pos) in &self.index {
            out.extend_from_slice(&rel.to_be_bytes());
            out.extend_from_slice(&pos.to_be_bytes());
        }
        fs::write(&self.index_path, out).map_err(|source| {
            StateError::io(&self.index_path, "writing a segment index", source)
        })?;
        let mut out = Vec::with_capacity(self.time_index.len() * 16);
        for (ts, pos) in &self.time_index {
            out.extend_from_slice(&ts.to_be_bytes());
            out.extend_from_slice(&pos.to_be_bytes());
        }
        fs::write(&self.time_index_path, out).map_err(|source| {
            StateError::io(
                &self.time_index_path,
                "writing a segment time index",
                source,
            )
        })
    }

    /// The file position to start scanning for `offset`.
    fn position_for(&self, offset: i64) -> u64 {
        let rel = (offset - self.base).clamp(0, i64::from(u32::MAX)) as u32;
        match self.index.partition_point(|(r, _)| *r <= rel) {
            0 => 0,
            i => self.index[i - 1].1,
        }
    }

    /// The file position to start scanning for the first record at or after `timestamp`:
    /// every batch before it is older.
    fn position_for_time(&self, timestamp: i64) -> u64 {
        match self.time_index.partition_point(|(t, _)| *t < timestamp) {
            0 => 0,
            i => self.time_index[i - 1].1,
        }
    }

    /// Calls `f` with each batch from file position `from` on, reading in chunks, until it
    /// returns `false` or the segment ends.
    fn scan(
        &self,
        dir: &Path,
        from: u64,
        chunk: usize,
        mut f: impl FnMut(u64, u8, &[u8]) -> Result<bool, StateError>,
    ) -> Result<(), StateError> {
        if from >= self.size {
            return Ok(());
        }
        // Reads go through the segment's open handle at explicit positions (no open or
        // seek per read) into a buffer each thread keeps, so that a fetch allocates and
        // zero-fills nothing once the buffer has grown.
        READ_BUFFER.with(|buffer| {
            let mut data = buffer.take();
            let result = self.scan_with(dir, from, chunk, &mut data, &mut f);
            buffer.replace(data);
            result
        })
    }

    fn scan_with(
        &self,
        dir: &Path,
        from: u64,
        chunk: usize,
        data: &mut Vec<u8>,
        f: &mut impl FnMut(u64, u8, &[u8]) -> Result<bool, StateError>,
    ) -> Result<(), StateError> {
        let mut pos = from;
        let mut want = chunk.max(HEADER);
        while pos < self.size {
            let n = (want as u64).min(self.size - pos) as usize;
            data.resize(n, 0);
            self.read_at(pos, data)
                .map_err(io(dir, "reading a segment"))?;
            let mut p = 0usize;
            while let Some((len, magic, payload)) = batch_at(data, p) {
                if !f(pos + p as u64, magic, payload)? {
                    return Ok(());
                }
                p += len;
            }
            if p == 0 {
                // The batch is larger than the chunk, or damaged.
                match announced_len(data, 0) {
                    Some(len) if len > data.len() && pos + len as u64 <= self.size => {
                        want = len;
                        continue;
                    }
                    _ => {
                        return Err(corrupt(
                            dir,
                            format!("a damaged batch at position {pos} of {:?}", self.log_path),
                        ));
                    }
                }
            }
            pos += p as u64;
            want = chunk.max(HEADER);
        }
        Ok(())
    }

    /// Fills `buf` from position `pos` of the segment file.
    #[cfg(unix)]
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        match &self.file {
            Some(f) => f.read_exact_at(buf, pos),
            None => File::open(&self.log_path)?.read_exact_at(buf, pos),
        }
    }

    /// Fills `buf` from position `pos` of the segment file.
    #[cfg(not(unix))]
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let mut file = File::open(&self.log_path)?;
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(buf)
    }
}

impl PartitionLog {
    /// Opens (creating if needed) the partition in `dir`, recovering its segments and
    /// finishing or discarding an interrupted compaction.
    pub fn open(dir: &Path, config: LogConfig) -> Result<(Self, RecoveryReport), StateError> {
        fs::create_dir_all(dir).map_err(io(dir, "creating the partition directory"))?;
        recover_compaction(dir)?;
        let mut bases: Vec<i64> = list_files(dir, ".log")?;
        bases.sort_unstable();
        let mut report = RecoveryReport::default();
        let mut segments = BTreeMap::new();
        let mut txns = TxnIndex::default();
        for (i, &base) in bases.iter().enumerate() {
            // Every segment is validated; only the last can have a torn tail.
            let next_base = bases.get(i + 1).copied();
            let seg = Segment::open(
                dir,
                base,
                next_base.is_none(),
                next_base,
                &mut report,
                &mut txns,
            )?;
            // Each segment ends where the next begins: a gap lost offsets, an overlap holds
            // some twice. The segment that ends wrong is named.
            if let Some(next_base) = next_base
                && seg.next_offset != next_base
            {
                let from = if seg.next_offset > next_base {
                    let data = fs::read(&seg.log_path).map_err(io(dir, "reading a segment"))?;
                    batch_reaching(&data, next_base).unwrap_or(data.len())
                } else {
                    seg.size as usize
                };
                return Err(StateError::Log(crate::LogError::DamagedSegment {
                    file: seg.log_path.display().to_string(),
                    from: from as u64,
                    to: seg.size,
                    offset: seg.next_offset.min(next_base),
                }));
            }
            segments.insert(base, seg);
        }
        if segments.is_empty() {
            segments.insert(0, Segment::create(dir, 0)?);
        }
        let start_offset = read_start_offset(dir).unwrap_or(0);
        let mut log = Self {
            dir: dir.to_path_buf(),
            config,
            segments,
            start_offset,
            cleaned: None,
            failed: None,
            txns,
            #[cfg(test)]
            fail_writes_after: None,
        };
        let first = log.segments.keys().next().copied().unwrap_or(0);
        log.start_offset = log.start_offset.max(first).min(log.end_offset());
        Ok((log, report))
    }

    /// The partition's settings.
    pub fn config(&self) -> LogConfig {
        self.config
    }

    /// The offset the next appended record gets (Kafka's log end offset).
    pub fn end_offset(&self) -> i64 {
        self.segments
            .values()
            .next_back()
            .map_or(0, |s| s.next_offset)
    }

    /// The first readable offset (Kafka's log start offset).
    pub fn start_offset(&self) -> i64 {
        self.start_offset
    }

    /// Bytes of its segment files (Kafka's log `Size`; indexes not counted).
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size).sum()
    }

    /// Appends `records` as one batch; returns the offset of the first one.
    ///
    /// A write that fails part-way (a full disk) is rolled back to the end of the last
    /// whole batch, so that no later append lands after a partial one (which the next open
    /// would cut, with everything after it); if the rollback or a sync fails, the partition
    /// refuses appends until it is opened again.
    pub fn append(&mut self, records: &[NewRecord]) -> Result<i64, StateError> {
        self.append_batch(records, None)
    }

    /// Appends `records` as one transactional batch of `producer`: pending (invisible to
    /// `read_committed` readers) until the producer's marker ends its transaction. Returns
    /// the offset of the first one.
    pub fn append_transactional(
        &mut self,
        records: &[NewRecord],
        producer: ProducerId,
    ) -> Result<i64, StateError> {
        self.append_batch(records, Some((producer, ATTR_TRANSACTIONAL)))
    }

    /// Ends `producer`'s open transaction in this partition with a commit or abort marker;
    /// nothing if it has none here. Returns whether a marker was written.
    pub fn append_marker(
        &mut self,
        producer: ProducerId,
        commit: bool,
    ) -> Result<bool, StateError> {
        if !self.txns.is_open(producer.id) {
            return Ok(false);
        }
        // The marker takes the newest timestamp so far: it moves neither time retention
        // nor segment rolls.
        let timestamp = self
            .segments
            .values()
            .next_back()
            .map_or(0, |s| s.max_timestamp.max(0));
        let marker = NewRecord {
            timestamp,
            ..NewRecord::default()
        };
        let attributes = ATTR_TRANSACTIONAL | ATTR_CONTROL | if commit { ATTR_COMMIT } else { 0 };
        self.append_batch(std::slice::from_ref(&marker), Some((producer, attributes)))?;
        Ok(true)
    }

    /// The last stable offset: the first offset of the oldest open transaction, or the end
    /// offset when none is open. `read_committed` readers read only below it.
    pub fn last_stable_offset(&self) -> i64 {
        self.txns.first_open().unwrap_or_else(|| self.end_offset())
    }

    /// The producers with an open transaction here, with the transaction's first offset.
    pub fn open_transactions(&self) -> Vec<(i64, i64)> {
        self.txns.open()
    }

    fn append_batch(
        &mut self,
        records: &[NewRecord],
        producer: Option<(ProducerId, u8)>,
    ) -> Result<i64, StateError> {
        if let Some(why) = &self.failed {
            return Err(StateError::Io {
                store: self.dir.display().to_string(),
                action: "appending a batch",
                source: std::io::Error::other(format!(
                    "the partition refuses appends until it is opened again: {why}"
                )),
            });
        }
        let base = self.end_offset();
        if records.is_empty() {
            return Ok(base);
        }
        let max_ts = records.iter().map(|r| r.timestamp).max().unwrap_or(-1);
        let config = self.config;
        let needs_roll = self.segments.values().next_back().is_some_and(|s| {
            s.size > 0
                && (s.size >= config.segment_bytes
                    || config
                        .segment_ms
                        .zip(s.first_timestamp)
                        .is_some_and(|(ms, first)| max_ts.saturating_sub(first) >= ms))
        });
        if needs_roll {
            self.roll()?;
        }
        let batch = encode_batch(base, records, producer);
        let dir = self.dir.clone();
        #[cfg(test)]
        let fail_after = self.fail_writes_after;
        #[cfg(not(test))]
        let fail_after: Option<usize> = None;
        let Some(seg) = self.segments.values_mut().next_back() else {
            return Err(corrupt(&dir, "partition without an active segment"));
        };
        let size = seg.size;
        let file = seg.writable().map_err(io(&dir, "opening a segment"))?;
        if let Err(e) = write_batch(file, &batch, fail_after) {
            // Cut what part of the batch reached the file (append mode: the next write
            // goes to the new end).
            if let Err(t) = file.set_len(size) {
                self.failed = Some(format!(
                    "a failed append ({e}) could not be rolled back: {t}"
                ));
            }
            return Err(io(&dir, "appending a batch")(e));
        }
        if config.fsync == FsyncPolicy::EveryBatch
            && let Err(e) = file.sync_data()
        {
            self.failed = Some(format!("a sync failed: {e}"));
            return Err(io(&dir, "syncing a batch")(e));
        }
        let header = BatchHeader {
            base,
            count: records.len() as u32,
            max_timestamp: max_ts,
            next: base + records.len() as i64,
            producer,
        };
        let pos = seg.size;
        seg.note_batch(pos, batch.len() as u64, header);
        self.txns.observe(&header);
        self.enforce_retention()?;
        Ok(base)
    }

    /// Closes the active segment and starts a new one at the end offset.
    fn roll(&mut self) -> Result<(), StateError> {
        if let Some(seg) = self.segments.values_mut().next_back() {
            if let Some(file) = seg.file.take() {
                file.sync_all()
                    .map_err(io(&self.dir, "syncing a segment"))?;
            }
            seg.write_index()?;
        }
        let base = self.end_offset();
        self.segments
            .insert(base, Segment::create(&self.dir, base)?);
        sync_dir(&self.dir);
        Ok(())
    }

    /// Makes every append durable.
    pub fn flush(&mut self) -> Result<(), StateError> {
        if let Some(seg) = self.segments.values_mut().next_back()
            && let Some(file) = &seg.file
        {
            file.sync_data()
                .map_err(io(&self.dir, "syncing a segment"))?;
        }
        Ok(())
    }

    /// Records from `offset` on (at least one batch, then up to about `max_bytes`), every
    /// one up to the end ([`Isolation::ReadUncommitted`]); see [`PartitionLog::read_with`].
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Vec<LogRecord>, StateError> {
        Ok(self
            .read_with(offset, max_bytes, Isolation::ReadUncommitted)?
            .records)
    }

    /// Records from `offset` on (at least one batch, then up to about `max_bytes`), and the
    /// offset to read from next.
    ///
    /// An offset below the start offset reads from the start offset. Offsets of a
    /// compacted partition have gaps, and markers take offsets no reader sees: a reader
    /// continues from the returned next offset, never assumes the next record has the next
    /// offset, and may get nothing back (but a further next offset) for an offset below the
    /// end. [`Isolation::ReadCommitted`] reads only below the last stable offset and skips
    /// the records of aborted transactions.
    pub fn read_with(
        &self,
        offset: i64,
        max_bytes: usize,
        isolation: Isolation,
    ) -> Result<ReadResult, StateError> {
        let (batches, next_offset) = self.read_batches(offset, max_bytes, isolation)?;
        Ok(ReadResult {
            records: batches
                .into_iter()
                .filter(|b| b.marker.is_none())
                .flat_map(|b| b.records)
                .collect(),
            next_offset,
        })
    }

    /// The batches [`PartitionLog::read_with`] reads its records from, markers included,
    /// and the offset to read from next: what a Kafka fetch hands to clients, which need a
    /// transactional batch's producer and the markers to skip aborted records and move
    /// past the offsets markers take. A batch holds only its records at or after `offset`;
    /// [`Isolation::ReadCommitted`] leaves out the batches of aborted transactions (and
    /// stops at the last stable offset), [`Isolation::ReadUncommitted`] returns them.
    pub fn read_batches(
        &self,
        offset: i64,
        max_bytes: usize,
        isolation: Isolation,
    ) -> Result<(Vec<StoredBatch>, i64), StateError> {
        let offset = offset.max(self.start_offset);
        let upper = match isolation {
            Isolation::ReadCommitted => self.last_stable_offset(),
            Isolation::ReadUncommitted => self.end_offset(),
        };
        let mut out: Vec<StoredBatch> = Vec::new();
        let mut records = 0usize;
        let mut next = offset;
        if offset >= upper {
            return Ok((out, next));
        }
        let mut budget = i64::try_from(max_bytes).unwrap_or(i64::MAX);
        let from = self
            .segments
            .range(..=offset)
            .next_back()
            .map_or(i64::MIN, |(b, _)| *b);
        let chunk = max_bytes.clamp(64 << 10, READ_CHUNK);
        let mut done = false;
        for seg in self.segments.range(from..).map(|(_, s)| s) {
            if seg.next_offset <= offset || seg.size == 0 {
                continue;
            }
            let mut bad = false;
            seg.scan(
                &self.dir,
                seg.position_for(offset),
                chunk,
                |_, magic, payload| {
                    let Some(h) = batch_header(magic, payload) else {
                        bad = true;
                        return Ok(false);
                    };
                    if h.next <= offset {
                        return Ok(true);
                    }
                    if h.base >= upper {
                        done = true;
                        return Ok(false);
                    }
                    next = h.next;
                    if isolation == Isolation::ReadCommitted && self.txns.is_aborted(&h) {
                        return Ok(true);
                    }
                    let (producer, attributes) =
                        h.producer.map_or((None, 0), |(p, a)| (Some(p), a));
                    let mut batch = StoredBatch {
                        base: h.base,
                        next: h.next,
                        producer,
                        transactional: attributes & ATTR_TRANSACTIONAL != 0,
                        marker: h.is_control().then_some(attributes & ATTR_COMMIT != 0),
                        records: Vec::new(),
                    };
                    if batch.marker.is_some() {
                        out.push(batch);
                        return Ok(true);
                    }
                    let decoded = decode_batch(magic, payload, |r, _| {
                        if r.offset >= offset {
                            budget -= 16
                                + r.key.as_ref().map_or(0, Vec::len) as i64
                                + r.value.as_ref().map_or(0, Vec::len) as i64;
                            batch.records.push(r);
                        }
                    });
                    bad = decoded.is_none();
                    if !batch.records.is_empty() {
                        records += batch.records.len();
                        out.push(batch);
                    }
                    Ok(!bad && (budget > 0 || records == 0))
                },
            )?;
            if bad {
                return Err(corrupt(
                    &self.dir,
                    "a batch with a valid CRC does not decode",
                ));
            }
            if done || (budget <= 0 && records > 0) {
                break;
            }
        }
        Ok((out, next.min(upper).max(offset)))
    }

    /// The first offset (at or after the start offset) whose record's timestamp is at or
    /// after `timestamp`, like Kafka's ListOffsets by time: the first batch whose largest
    /// timestamp reaches `timestamp` is searched for the first such record. `None` if no
    /// record is that new.
    pub fn offset_for_time(&self, timestamp: i64) -> Result<Option<i64>, StateError> {
        for seg in self.segments.values() {
            if seg.max_timestamp < timestamp || seg.next_offset <= self.start_offset {
                continue;
            }
            let mut found = None;
            let mut bad = false;
            seg.scan(
                &self.dir,
                seg.position_for_time(timestamp),
                64 << 10,
                |_, magic, payload| {
                    let Some(h) = batch_header(magic, payload) else {
                        bad = true;
                        return Ok(false);
                    };
                    if h.count == 0 || h.max_timestamp < timestamp || h.next <= self.start_offset {
                        return Ok(true);
                    }
                    let decoded = decode_batch(magic, payload, |r, _| {
                        if found.is_none()
                            && r.timestamp >= timestamp
                            && r.offset >= self.start_offset
                        {
                            found = Some(r.offset);
                        }
                    });
                    bad = decoded.is_none();
                    Ok(!bad && found.is_none())
                },
            )?;
            if bad {
                return Err(corrupt(
                    &self.dir,
                    "a batch with a valid CRC does not decode",
                ));
            }
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Makes every offset below `offset` unreadable and deletes the segments that hold only
    /// such records (Kafka's DeleteRecords, used to purge repartition topics).
    pub fn delete_records(&mut self, offset: i64) -> Result<(), StateError> {
        let offset = offset.min(self.end_offset());
        if offset <= self.start_offset {
            return Ok(());
        }
        self.start_offset = offset;
        write_start_offset(&self.dir, offset)?;
        let removable: Vec<i64> = self
            .segments
            .iter()
            .filter(|(_, s)| s.next_offset <= offset)
            .map(|(b, _)| *b)
            .collect();
        let last = self.segments.keys().next_back().copied();
        for b in removable {
            if Some(b) == last {
                continue; // the active segment stays
            }
            self.remove_segment(b)?;
        }
        Ok(())
    }

    fn remove_segment(&mut self, base: i64) -> Result<(), StateError> {
        if let Some(seg) = self.segments.remove(&base) {
            fs::remove_file(&seg.log_path).map_err(io(&self.dir, "deleting a segment"))?;
            let _ = fs::remove_file(&seg.index_path);
            let _ = fs::remove_file(&seg.time_index_path);
        }
        Ok(())
    }

    /// Removes the oldest segment, raising the start offset past it.
    fn drop_oldest(&mut self) -> Result<(), StateError> {
        let Some((&base, seg)) = self.segments.iter().next() else {
            return Ok(());
        };
        let next = seg.next_offset;
        self.remove_segment(base)?;
        self.start_offset = self.start_offset.max(next);
        write_start_offset(&self.dir, self.start_offset)
    }

    fn enforce_retention(&mut self) -> Result<(), StateError> {
        let Some(limit) = self.config.retention_bytes else {
            return Ok(());
        };
        while self.segments.len() > 1 {
            let total: u64 = self.segments.values().map(|s| s.size).sum();
            if total <= limit {
                break;
            }
            self.drop_oldest()?;
        }
        Ok(())
    }

    /// Deletes the oldest segments whose every record is older than `now_ms` minus
    /// `retention_ms` (Kafka's time retention; nothing if `retention_ms` is not set). An
    /// expired active segment is rolled first, so a partition whose data all expired keeps
    /// its end offset with nothing left to read. Returns the number of segments deleted.
    pub fn enforce_time_retention(&mut self, now_ms: i64) -> Result<u64, StateError> {
        let Some(retention) = self.config.retention_ms else {
            return Ok(0);
        };
        let cutoff = now_ms.saturating_sub(retention);
        let mut deleted = 0;
        while let Some(seg) = self.segments.values().next() {
            if seg.max_timestamp >= cutoff {
                break;
            }
            if self.segments.len() == 1 {
                if seg.size == 0 {
                    break;
                }
                self.roll()?;
            }
            self.drop_oldest()?;
            deleted += 1;
        }
        Ok(deleted)
    }

    /// Compacts the closed segments (Kafka's log cleaner for `cleanup.policy=compact`):
    /// only the latest record of each key is kept (the active segment counts for "latest"
    /// but is never rewritten). A tombstone (null value) gets a delete horizon of `now_ms +
    /// delete_retention_ms` the first time it is compacted and is removed by the first
    /// compaction at or after it. Records without a key are kept. Offsets do not change:
    /// compacted segments have gaps. Consecutive segments are merged while the result stays
    /// within `segment_bytes`.
    ///
    /// Crash safety: a group of segments is rewritten into `<base>.cleaned`, synced, and
    /// renamed `<base>.swap` (the commit point); then the old segments are deleted and the
    /// swap file renamed `<base>.log`. Opening a partition deletes a `.cleaned` file (the
    /// old segments are intact) and completes a `.swap` file (deleting the segments its
    /// range replaces), so a crash at any point neither loses nor duplicates records.
    pub fn compact(
        &mut self,
        now_ms: i64,
        delete_retention_ms: i64,
    ) -> Result<CompactionReport, StateError> {
        self.compact_with(now_ms, delete_retention_ms, &mut |_| true)
    }

    /// [`PartitionLog::compact`], asking `proceed` after each crash-safe step (tests stop
    /// there to simulate a crash).
    fn compact_with(
        &mut self,
        now_ms: i64,
        delete_retention_ms: i64,
        proceed: &mut dyn FnMut(CompactStep) -> bool,
    ) -> Result<CompactionReport, StateError> {
        let mut report = CompactionReport::default();
        let end = self.end_offset();
        if self.segments.len() < 2
            || self
                .cleaned
                .is_some_and(|(seen, expiry)| seen == end && now_ms < expiry)
        {
            return Ok(report);
        }
        // Open transactions may still abort: nothing from the last stable offset on counts.
        let stable = self.last_stable_offset();
        // The latest offset of every key, over the whole partition (committed records).
        let mut latest: HashMap<Vec<u8>, i64> = HashMap::new();
        for seg in self.segments.values() {
            let mut bad = false;
            seg.scan(&self.dir, 0, READ_CHUNK, |_, magic, payload| {
                match batch_header(magic, payload) {
                    Some(h) if h.base >= stable => return Ok(false),
                    Some(h) if h.is_control() || self.txns.is_aborted(&h) => return Ok(true),
                    _ => {}
                }
                bad = decode_batch(magic, payload, |r, _| {
                    if let Some(k) = r.key {
                        latest.insert(k, r.offset);
                    }
                })
                .is_none();
                Ok(!bad)
            })?;
            if bad {
                return Err(corrupt(
                    &self.dir,
                    "a batch with a valid CRC does not decode",
                ));
            }
        }
        let closed: Vec<i64> = self
            .segments
            .iter()
            .take(self.segments.len() - 1)
            .take_while(|(_, s)| s.next_offset <= stable)
            .map(|(b, _)| *b)
            .collect();
        let mut expiry = i64::MAX;
        let mut group = Group::default();
        for base in closed {
            let Some(seg) = self.segments.get(&base) else {
                continue;
            };
            let mut kept: Vec<Kept> = Vec::new();
            let mut removed = 0u64;
            let mut changed = false;
            let mut bad = false;
            seg.scan(&self.dir, 0, READ_CHUNK, |_, magic, payload| {
                if let Some(h) = batch_header(magic, payload)
                    && (h.is_control() || self.txns.is_aborted(&h))
                {
                    // Markers and aborted records go; committed ones stay as plain records.
                    removed += u64::from(h.count);
                    return Ok(true);
                }
                changed |= magic == MAGIC_V3;
                bad = decode_batch(magic, payload, |r, horizon| {
                    let is_latest = match &r.key {
                        None => true,
                        Some(k) => latest.get(k) == Some(&r.offset),
                    };
                    if !is_latest {
                        removed += 1;
                        return;
                    }
                    if r.value.is_some() || r.key.is_none() {
                        kept.push((r, -1));
                        return;
                    }
                    let horizon = if horizon >= 0 {
                        horizon
                    } else {
                        changed = true; // the tombstone's horizon is recorded
                        now_ms.saturating_add(delete_retention_ms.max(0))
                    };
                    if now_ms >= horizon {
                        removed += 1;
                    } else {
                        expiry = expiry.min(horizon);
                        kept.push((r, horizon));
                    }
                })
                .is_none();
                Ok(!bad)
            })?;
            if bad {
                return Err(corrupt(
                    &self.dir,
                    "a batch with a valid CRC does not decode",
                ));
            }
            let size: u64 = kept.iter().map(|(r, _)| kept_size(r)).sum();
            let next = seg.next_offset;
            if !group.bases.is_empty() && group.size + size > self.config.segment_bytes {
                let Some(done) = self.rewrite(std::mem::take(&mut group), proceed)? else {
                    return Ok(report);
                };
                report.add(done);
            }
            group.bases.push(base);
            group.kept.extend(kept);
            group.size += size;
            group.removed += removed;
            group.changed |= changed || removed > 0;
            group.next = next;
        }
        if !group.bases.is_empty() {
            let Some(done) = self.rewrite(group, proceed)? else {
                return Ok(report);
            };
            report.add(done);
        }
        self.cleaned = Some((end, expiry));
        Ok(report)
    }

    /// Replaces a group of consecutive closed segments by one cleaned segment. Returns the
    /// segments rewritten and records removed, or `None` if `proceed` stopped it.
    fn rewrite(
        &mut self,
        group: Group,
        proceed: &mut dyn FnMut(CompactStep) -> bool,
    ) -> Result<Option<(u64, u64)>, StateError> {
        let Some(&first) = group.bases.first() else {
            return Ok(Some((0, 0)));
        };
        if group.bases.len() == 1 && !group.changed {
            return Ok(Some((0, 0)));
        }
        let dir = self.dir.clone();
        let cleaned = segment_file(&dir, first, "cleaned");
        {
            let mut f = File::create(&cleaned).map_err(io(&dir, "writing a cleaned segment"))?;
            let mut base = first;
            let mut start = 0;
            let mut bytes = 0usize;
            for (i, (r, _)) in group.kept.iter().enumerate() {
                bytes += kept_size(r) as usize;
                let last = i + 1 == group.kept.len();
                if bytes >= COMPACTED_BATCH_BYTES && !last {
                    let next = r.offset + 1;
                    f.write_all(&encode_compacted_batch(base, next, &group.kept[start..=i]))
                        .map_err(io(&dir, "writing a cleaned segment"))?;
                    base = next;
                    start = i + 1;
                    bytes = 0;
                }
            }
            f.write_all(&encode_compacted_batch(
                base,
                group.next,
                &group.kept[start..],
            ))
            .map_err(io(&dir, "writing a cleaned segment"))?;
            f.sync_all()
                .map_err(io(&dir, "syncing a cleaned segment"))?;
        }
        if !proceed(CompactStep::Cleaned) {
            return Ok(None);
        }
        let swap = segment_file(&dir, first, "swap");
        fs::rename(&cleaned, &swap).map_err(io(&dir, "renaming a cleaned segment"))?;
        sync_dir(&dir);
        if !proceed(CompactStep::Swap) {
            return Ok(None);
        }
        for (i, base) in group.bases.iter().enumerate() {
            self.remove_segment(*base)?;
            if i == 0 && !proceed(CompactStep::FirstOldDeleted) {
                return Ok(None);
            }
        }
        fs::rename(&swap, segment_file(&dir, first, "log"))
            .map_err(io(&dir, "installing a cleaned segment"))?;
        sync_dir(&dir);
        let mut report = RecoveryReport::default();
        self.segments.insert(
            first,
            Segment::open(
                &dir,
                first,
                false,
                None,
                &mut report,
                &mut TxnIndex::default(),
            )?,
        );
        Ok(Some((group.bases.len() as u64, group.removed)))
    }

    /// The number of segments.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

/// Consecutive closed segments being compacted into one.
#[derive(Default)]
struct Group {
    bases: Vec<i64>,
    kept: Vec<Kept>,
    size: u64,
    removed: u64,
    changed: bool,
    /// The offset after the group's last segment.
    next: i64,
}

/// About the bytes a kept record takes in a compacted batch.
fn kept_size(r: &LogRecord) -> u64 {
    (40 + r.key.as_ref().map_or(0, Vec::len)
        + r.value.as_ref().map_or(0, Vec::len)
        + r.headers
            .iter()
            .map(|(k, v)| 6 + k.len() + v.as_ref().map_or(0, Vec::len))
            .sum::<usize>()) as u64
}

/// The bases of the files in `dir` named `<base><suffix>`.
fn list_files(dir: &Path, suffix: &str) -> Result<Vec<i64>, StateError> {
    Ok(fs::read_dir(dir)
        .map_err(io(dir, "listing segments"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(suffix)?.parse::<i64>().ok()
        })
        .collect())
}

/// Finishes what a crash interrupted: an unfinished `.cleaned` file is deleted (the
/// segments it would replace are intact); a `.swap` file is complete, so the segments in its
/// range are deleted and it becomes a segment.
fn recover_compaction(dir: &Path) -> Result<(), StateError> {
    for base in list_files(dir, ".cleaned")? {
        let file = segment_file(dir, base, "cleaned");
        tracing::warn!(file = %file.display(), "an interrupted compaction left an unfinished cleaned segment: deleted (the segments it would replace are intact)");
        fs::remove_file(&file).map_err(io(dir, "deleting an unfinished cleaned segment"))?;
    }
    let mut swaps = list_files(dir, ".swap")?;
    swaps.sort_unstable();
    if swaps.is_empty() {
        return Ok(());
    }
    let logs = list_files(dir, ".log")?;
    for base in swaps {
        let swap = segment_file(dir, base, "swap");
        let data = fs::read(&swap).map_err(io(dir, "reading a swap segment"))?;
        let mut pos = 0;
        let mut next = base;
        while let Some((len, magic, payload)) = batch_at(&data, pos) {
            let h = batch_header(magic, payload)
                .ok_or_else(|| corrupt(dir, "a swap segment with a bad batch"))?;
            next = h.next;
            pos += len;
        }
        if pos != data.len() {
            return Err(corrupt(dir, format!("swap segment {swap:?} is damaged")));
        }
        for old in logs.iter().filter(|b| **b >= base && **b < next) {
            fs::remove_file(segment_file(dir, *old, "log"))
                .map_err(io(dir, "deleting a compacted segment"))?;
            let _ = fs::remove_file(segment_file(dir, *old, "index"));
            let _ = fs::remove_file(segment_file(dir, *old, "timeindex"));
        }
        fs::rename(&swap, segment_file(dir, base, "log"))
            .map_err(io(dir, "installing a cleaned segment"))?;
        tracing::warn!(file = %swap.display(), "an interrupted compaction was completed: the cleaned segment replaced the old ones");
    }
    sync_dir(dir);
    Ok(())
}

fn read_start_offset(dir: &Path) -> Option<i64> {
    fs::read_to_string(dir.join("log-start-offset"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn write_start_offset(dir: &Path, offset: i64) -> Result<(), StateError> {
    let tmp = dir.join("log-start-offset.tmp");
    fs::write(&tmp, offset.to_string()).map_err(io(dir, "writing the log start offset"))?;
    fs::rename(&tmp, dir.join("log-start-offset")).map_err(io(dir, "writing the log start offset"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: i64) -> NewRecord {
        NewRecord {
            timestamp: 1_000 + i,
            key: (i % 3 != 0).then(|| format!("k{i}").into_bytes()),
            value: (i % 5 != 0).then(|| vec![b'v'; (i % 40) as usize]),
            headers: if i % 7 == 0 {
                vec![("h".into(), Some(b"x".to_vec())), ("n".into(), None)]
            } else {
                Vec::new()
            },
        }
    }

    fn config(segment_bytes: u64) -> LogConfig {
        LogConfig {
            segment_bytes,
            ..LogConfig::default()
        }
    }

    #[test]
    fn appends_read_back_across_segments_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), config(2_000)).unwrap();
        let mut expected = Vec::new();
        for chunk in 0..30 {
            let batch: Vec<NewRecord> = (0..7).map(|j| rec(chunk * 7 + j)).collect();
            let base = log.append(&batch).unwrap();
            assert_eq!(base, chunk * 7);
            expected.extend(batch);
        }
        assert!(log.segment_count() > 2, "segments rolled");
        let check = |log: &PartitionLog| {
            let all = log.read(0, usize::MAX).unwrap();
            assert_eq!(all.len(), expected.len());
            for (i, (got, want)) in all.iter().zip(&expected).enumerate() {
                assert_eq!(got.offset, i as i64);
                assert_eq!(
                    (&got.key, &got.value, &got.headers, got.timestamp),
                    (&want.key, &want.value, &want.headers, want.timestamp)
                );
            }
            let from = log.read(123, 1).unwrap();
            assert_eq!(from[0].offset, 123, "reads start at the asked offset");
        };
        check(&log);
        log.flush().unwrap();
        drop(log);
        let (log, report) = PartitionLog::open(dir.path(), config(2_000)).unwrap();
        assert_eq!(report.truncated_bytes, 0);
        assert_eq!(log.end_offset(), 210);
        check(&log);
    }

    #[test]
    fn a_torn_tail_is_truncated_on_open_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
        log.append(&[rec(1), rec(2)]).unwrap();
        log.append(&[rec(3)]).unwrap();
        log.flush().unwrap();
        drop(log);
        let seg = dir.path().join(format!("{:020}.log", 0));
        let len = fs::metadata(&seg).unwrap().len();
        // A partial third batch, as if the process died mid-write.
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&encode_batch(3, &[rec(4)], None)[..10])
            .unwrap();
        drop(f);
        let (mut log, report) = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
        assert_eq!(report.truncated_bytes, 10);
        assert_eq!(fs::metadata(&seg).unwrap().len(), len);
        assert_eq!(log.end_offset(), 3);
        assert_eq!(log.append(&[rec(4)]).unwrap(), 3);
        assert_eq!(log.read(0, usize::MAX).unwrap().len(), 4);
    }

    #[test]
    fn a_write_that_fails_part_way_is_rolled_back_and_no_acknowledged_record_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
        log.append(&[rec(0), rec(1)]).unwrap();
        // The disk fills up in the middle of the next batch.
        log.fail_writes_after = Some(7);
        assert!(log.append(&[rec(2), rec(3)]).is_err());
        // Space is freed: the next appends continue where the last whole batch ended.
        log.fail_writes_after = None;
        assert_eq!(log.append(&[rec(2)]).unwrap(), 2);
        assert_eq!(log.append(&[rec(3), rec(4)]).unwrap(), 3);
        log.flush().unwrap();
        drop(log);
        // Every acknowledged record survives a reopen, nothing is cut.
        let (log, report) = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
        assert_eq!(report.truncated_bytes, 0);
        let offsets: Vec<i64> = log
            .read(0, usize::MAX)
            .unwrap()
            .iter()
            .map(|r| r.offset)
            .collect();
        assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn damage_before_intact_batches_fails_the_open_and_repair_keeps_every_intact_batch() {
        for closed in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let segment_bytes = if closed { 200 } else { 1 << 20 };
            let (mut log, _) = PartitionLog::open(dir.path(), config(segment_bytes)).unwrap();
            for i in 0..12 {
                log.append(&[rec(i)]).unwrap();
            }
            assert_eq!(log.segment_count() > 1, closed);
            drop(log);
            let seg = dir.path().join(format!("{:020}.log", 0));
            let mut data = fs::read(&seg).unwrap();
            let second = batch_at(&data, 0).unwrap().0;
            data[second + 20] ^= 0xff; // flip a bit inside the second batch (offset 1)
            fs::write(&seg, &data).unwrap();
            let err = PartitionLog::open(dir.path(), config(segment_bytes)).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains(&format!("{}", seg.display()))
                    && msg.contains(&format!("bytes {second}.."))
                    && msg.contains("streams repair"),
                "{msg}"
            );
            assert_eq!(fs::read(&seg).unwrap(), data, "nothing was cut");
            let found = crate::repair::verify_partition(dir.path()).unwrap();
            assert_eq!(found.len(), 1, "{found:?}");
            assert_eq!((found[0].first_offset, found[0].resumes_at), (1, Some(2)));
            assert!(!found[0].torn_tail);
            crate::repair::repair_partition(dir.path()).unwrap();
            assert!(
                seg.with_file_name(format!("{:020}.log.damaged", 0))
                    .exists()
            );
            assert!(
                crate::repair::verify_partition(dir.path())
                    .unwrap()
                    .is_empty()
            );
            let (mut log, _) = PartitionLog::open(dir.path(), config(segment_bytes)).unwrap();
            let offsets: Vec<i64> = log
                .read(0, usize::MAX)
                .unwrap()
                .iter()
                .map(|r| r.offset)
                .collect();
            let want: Vec<i64> = (0..12).filter(|o| *o != 1).collect();
            assert_eq!(offsets, want, "every intact batch is kept");
            assert_eq!(log.append(&[rec(99)]).unwrap(), 12, "no offset is reused");
        }
    }

    /// The offsets and records a partition reads from 0 on (every record).
    fn offsets_and_values(log: &PartitionLog) -> Vec<(i64, Option<Vec<u8>>)> {
        log.read(0, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|r| (r.offset, r.value))
            .collect()
    }

    /// The fields of the damaged-segment error `err` (panics on any other error).
    fn damaged(err: StateError) -> (String, u64, u64, i64) {
        match err {
            StateError::Log(crate::LogError::DamagedSegment {
                file,
                from,
                to,
                offset,
            }) => (file, from, to, offset),
            other => panic!("expected a damaged segment, got {other}"),
        }
    }

    /// `batch` with the CRC of earlier versions (of the length and payload only).
    fn legacy(mut batch: Vec<u8>) -> Vec<u8> {
        let crc = crc32fast::hash(&batch[5..]);
        batch[1..5].copy_from_slice(&crc.to_be_bytes());
        batch
    }

    #[test]
    fn a_gap_between_segments_fails_the_open_and_repair_covers_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), config(1)).unwrap();
        for i in 0..3 {
            log.append(&[rec(i)]).unwrap();
        }
        assert_eq!(log.segment_count(), 3);
        drop(log);
        let seg1 = segment_file(dir.path(), 1, "log");
        fs::write(&seg1, b"").unwrap();
        let err = PartitionLog::open(dir.path(), config(1)).unwrap_err();
        assert_eq!(damaged(err), (seg1.display().to_string(), 0, 0, 1));
        assert_eq!(fs::metadata(&seg1).unwrap().len(), 0, "nothing was changed");
        let found = crate::repair::verify_partition(dir.path()).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (
                &found[0].file,
                found[0].kind,
                found[0].first_offset,
                found[0].resumes_at,
                found[0].torn_tail
            ),
            (&seg1, crate::repair::DamageKind::Gap, 1, Some(2), false)
        );
        assert_eq!(crate::repair::repair_partition(dir.path()).unwrap(), found);
        assert!(dir.path().join(format!("{:020}.log.damaged", 1)).exists());
        assert!(
            crate::repair::verify_partition(dir.path())
                .unwrap()
                .is_empty()
        );
        let (mut log, report) = PartitionLog::open(dir.path(), config(1)).unwrap();
        assert_eq!(report.truncated_bytes, 0);
        assert_eq!(
            offsets_and_values(&log),
            vec![(0, rec(0).value), (2, rec(2).value)]
        );
        assert_eq!(log.append(&[rec(3)]).unwrap(), 3, "no offset is reused");
    }

    #[test]
    fn an_overlap_between_segments_fails_the_open_and_repair_keeps_the_earlier_records() {
        // The next segment's first batch copied to the end of the segment before it.
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), config(1)).unwrap();
        for i in 0..3 {
            log.append(&[rec(i)]).unwrap();
        }
        drop(log);
        let (seg0, seg1) = (
            segment_file(dir.path(), 0, "log"),
            segment_file(dir.path(), 1, "log"),
        );
        let original = fs::read(&seg0).unwrap();
        let mut data = original.clone();
        data.extend_from_slice(&fs::read(&seg1).unwrap());
        fs::write(&seg0, &data).unwrap();
        let err = PartitionLog::open(dir.path(), config(1)).unwrap_err();
        let (len, total) = (original.len() as u64, data.len() as u64);
        assert_eq!(damaged(err), (seg0.display().to_string(), len, total, 1));
        let found = crate::repair::verify_partition(dir.path()).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (
                &found[0].file,
                found[0].kind,
                found[0].from,
                found[0].first_offset
            ),
            (&seg0, crate::repair::DamageKind::Overlap, len, 1)
        );
        crate::repair::repair_partition(dir.path()).unwrap();
        assert_eq!(fs::read(seg0.with_extension("log.damaged")).unwrap(), data);
        assert!(seg1.with_extension("log.damaged").exists());
        assert!(!seg1.exists(), "segment 1 held nothing segment 0 does not");
        let (mut log, _) = PartitionLog::open(dir.path(), config(1)).unwrap();
        let want: Vec<_> = (0..3).map(|i| (i, rec(i).value)).collect();
        assert_eq!(offsets_and_values(&log), want);
        assert_eq!(log.append(&[rec(3)]).unwrap(), 3);

        // A batch reaching into the next segment's second batch: the next segment keeps
        // what comes after the earlier one's end and is renamed after it.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let mut seg0 = encode_batch(0, &[rec(0)], None);
        seg0.extend(encode_batch(1, &[rec(1), rec(2)], None));
        let mut seg1 = encode_batch(1, &[rec(11)], None);
        seg1.extend(encode_batch(2, &[rec(12)], None));
        seg1.extend(encode_batch(3, &[rec(13)], None));
        fs::write(segment_file(p, 0, "log"), &seg0).unwrap();
        fs::write(segment_file(p, 1, "log"), &seg1).unwrap();
        let err = PartitionLog::open(p, config(1 << 20)).unwrap_err();
        let first = encode_batch(0, &[rec(0)], None).len() as u64;
        assert_eq!(
            damaged(err),
            (
                segment_file(p, 0, "log").display().to_string(),
                first,
                seg0.len() as u64,
                1
            )
        );
        crate::repair::repair_partition(p).unwrap();
        assert!(!segment_file(p, 1, "log").exists());
        assert!(segment_file(p, 3, "log").exists());
        let (log, _) = PartitionLog::open(p, config(1 << 20)).unwrap();
        assert_eq!(
            offsets_and_values(&log),
            vec![
                (0, rec(0).value),
                (1, rec(1).value),
                (2, rec(2).value),
                (3, rec(13).value)
            ]
        );
    }

    #[test]
    fn a_changed_magic_byte_is_damage() {
        // A key of 0x300 bytes: read as magic 3, its length's bytes are an epoch of 0 and
        // the attributes transactional + control (an abort marker readers skip).
        let long_key = NewRecord {
            timestamp: 5,
            key: Some(vec![b'k'; 0x300]),
            value: Some(b"v".to_vec()),
            headers: Vec::new(),
        };
        let producer = ProducerId { id: 7, epoch: 0 };
        for (flip_to, transactional) in [(MAGIC_V3, false), (MAGIC_V1, true), (MAGIC_V2, false)] {
            let dir = tempfile::tempdir().unwrap();
            let (mut log, _) = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
            log.append(&[rec(0)]).unwrap();
            if transactional {
                log.append_transactional(std::slice::from_ref(&long_key), producer)
                    .unwrap();
            } else {
                log.append(std::slice::from_ref(&long_key)).unwrap();
            }
            log.append(&[rec(2)]).unwrap();
            drop(log);
            let seg = segment_file(dir.path(), 0, "log");
            let mut data = fs::read(&seg).unwrap();
            let second = batch_at(&data, 0).unwrap().0;
            data[second] = flip_to;
            fs::write(&seg, &data).unwrap();
            let err = PartitionLog::open(dir.path(), config(1 << 20)).unwrap_err();
            let (_, from, _, offset) = damaged(err);
            assert_eq!((from, offset), (second as u64, 1), "magic -> {flip_to}");
        }
    }

    #[test]
    fn batches_of_earlier_versions_are_read_but_not_a_legacy_magic_3_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = legacy(encode_batch(0, &[rec(0)], None));
        let kept = LogRecord {
            offset: 2,
            timestamp: 9,
            key: Some(b"k".to_vec()),
            value: Some(b"v".to_vec()),
            headers: Vec::new(),
        };
        data.extend(legacy(encode_compacted_batch(1, 3, &[(kept.clone(), -1)])));
        data.extend(encode_batch(3, &[rec(3)], None));
        fs::write(segment_file(dir.path(), 0, "log"), &data).unwrap();
        let (log, report) = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
        assert_eq!(report.truncated_bytes, 0);
        assert_eq!(
            offsets_and_values(&log),
            vec![(0, rec(0).value), (2, kept.value), (3, rec(3).value)]
        );

        let dir = tempfile::tempdir().unwrap();
        let producer = ProducerId { id: 1, epoch: 0 };
        let mut data = encode_batch(0, &[rec(0)], None);
        let first = data.len() as u64;
        data.extend(legacy(encode_batch(
            1,
            &[rec(1)],
            Some((producer, ATTR_TRANSACTIONAL)),
        )));
        data.extend(encode_batch(2, &[rec(2)], None));
        fs::write(segment_file(dir.path(), 0, "log"), &data).unwrap();
        let err = PartitionLog::open(dir.path(), config(1 << 20)).unwrap_err();
        assert_eq!(damaged(err).1, first);
    }

    #[test]
    fn unknown_attribute_bits_of_a_producer_batch_are_damage() {
        let dir = tempfile::tempdir().unwrap();
        let producer = ProducerId { id: 1, epoch: 0 };
        let mut data = encode_batch(0, &[rec(0)], None);
        let first = data.len() as u64;
        data.extend(encode_batch(
            1,
            &[rec(1)],
            Some((producer, ATTR_TRANSACTIONAL | 0x08)),
        ));
        data.extend(encode_batch(2, &[rec(2)], None));
        fs::write(segment_file(dir.path(), 0, "log"), &data).unwrap();
        let err = PartitionLog::open(dir.path(), config(1 << 20)).unwrap_err();
        assert_eq!(damaged(err).1, first);
    }

    #[test]
    fn repair_resumes_at_the_smallest_intact_base_after_damage_not_a_stray_copy() {
        // b0 (damaged), a copy of b3, b1, b2, b3.
        let dir = tempfile::tempdir().unwrap();
        let b: Vec<Vec<u8>> = (0..4).map(|i| encode_batch(i, &[rec(i)], None)).collect();
        let mut data = b[0].clone();
        data[20] ^= 0xff;
        data.extend(&b[3]);
        let resume = data.len();
        for batch in &b[1..] {
            data.extend(batch);
        }
        let seg = segment_file(dir.path(), 0, "log");
        fs::write(&seg, &data).unwrap();
        let err = PartitionLog::open(dir.path(), config(1 << 20)).unwrap_err();
        assert_eq!(
            damaged(err),
            (seg.display().to_string(), 0, resume as u64, 0)
        );
        let found = crate::repair::verify_partition(dir.path()).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].from, found[0].to, found[0].resumes_at),
            (0, resume as u64, Some(1))
        );
        crate::repair::repair_partition(dir.path()).unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
        let want: Vec<_> = (1..4).map(|i| (i, rec(i).value)).collect();
        assert_eq!(offsets_and_values(&log), want);
        assert_eq!(log.append(&[rec(4)]).unwrap(), 4);
    }

    #[test]
    fn a_partition_of_more_segments_than_open_files_allowed_opens_and_reads() {
        // More segments than the usual limit of 1024 open files per process: only the
        // active segment keeps its file open.
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), config(1)).unwrap();
        for i in 0..1_500 {
            log.append(&[rec(i)]).unwrap();
        }
        assert_eq!(log.segment_count(), 1_500);
        drop(log);
        let open_files = || std::fs::read_dir("/proc/self/fd").map(|d| d.count()).ok();
        let before = open_files();
        let (log, _) = PartitionLog::open(dir.path(), config(1)).unwrap();
        if let (Some(before), Some(after)) = (before, open_files()) {
            // Other tests run beside this one: a margin, far below 1,500.
            assert!(after < before + 200, "{before} -> {after} open files");
        }
        let all = log.read(0, usize::MAX).unwrap();
        assert_eq!(all.len(), 1_500);
        assert!(all.iter().enumerate().all(|(i, r)| r.offset == i as i64));
    }

    #[test]
    fn delete_records_and_retention_drop_whole_segments_only() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), config(500)).unwrap();
        for i in 0..100 {
            log.append(&[rec(i)]).unwrap();
        }
        let segments = log.segment_count();
        log.delete_records(50).unwrap();
        assert_eq!(log.start_offset(), 50);
        assert!(log.segment_count() < segments);
        assert_eq!(log.read(0, usize::MAX).unwrap()[0].offset, 50);
        drop(log);
        let (log, _) = PartitionLog::open(dir.path(), config(500)).unwrap();
        assert_eq!(log.start_offset(), 50, "the start offset is durable");
        let mut cfg = config(500);
        cfg.retention_bytes = Some(1_000);
        drop(log);
        let (mut log, _) = PartitionLog::open(dir.path(), cfg).unwrap();
        log.append(&[rec(100)]).unwrap();
        let total: u64 = log.segments.values().map(|s| s.size).sum();
        assert!(
            total <= 1_000 + 500,
            "retention keeps the partition near its bound"
        );
        assert!(log.start_offset() > 50);
        assert_eq!(log.end_offset(), 101);
    }

    fn keyed(key: &str, value: Option<&str>, timestamp: i64) -> NewRecord {
        NewRecord {
            timestamp,
            key: Some(key.as_bytes().to_vec()),
            value: value.map(|v| v.as_bytes().to_vec()),
            headers: Vec::new(),
        }
    }

    /// Kafka's ListOffsets by time over what was appended: the first batch whose largest
    /// timestamp reaches `t`, and in it the first record that does.
    fn oracle_offset_for_time(batches: &[(i64, Vec<i64>)], t: i64, start: i64) -> Option<i64> {
        for (base, stamps) in batches {
            let in_range: Vec<(i64, i64)> = stamps
                .iter()
                .enumerate()
                .map(|(i, ts)| (base + i as i64, *ts))
                .filter(|(o, _)| *o >= start)
                .collect();
            if stamps.iter().max().is_some_and(|m| *m >= t)
                && let Some((o, _)) = in_range.iter().find(|(_, ts)| *ts >= t)
            {
                return Some(*o);
            }
        }
        None
    }

    #[test]
    fn offset_for_time_finds_the_first_record_at_or_after_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(20_000);
        let (mut log, _) = PartitionLog::open(dir.path(), cfg).unwrap();
        // Mostly increasing timestamps with some out of order, in batches of 1-4 records
        // of ~100 bytes: several segments, several time index entries per segment.
        let mut batches = Vec::new();
        let mut x: u64 = 7;
        for b in 0..600i64 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let n = (x >> 33) % 4 + 1;
            let stamps: Vec<i64> = (0..n as i64)
                .map(|j| b * 10 + j - if (x >> 40).is_multiple_of(5) { 35 } else { 0 })
                .collect();
            let records: Vec<NewRecord> = stamps
                .iter()
                .map(|ts| NewRecord {
                    timestamp: *ts,
                    value: Some(vec![b'x'; 100]),
                    ..NewRecord::default()
                })
                .collect();
            let base = log.append(&records).unwrap();
            batches.push((base, stamps));
        }
        assert!(log.segment_count() >= 3, "{} segments", log.segment_count());
        assert!(log.segments.values().any(|s| s.time_index.len() > 2));
        let check = |log: &PartitionLog, start: i64| {
            for t in (-50..6_100).step_by(7) {
                assert_eq!(
                    log.offset_for_time(t).unwrap(),
                    oracle_offset_for_time(&batches, t, start),
                    "timestamp {t}"
                );
            }
            assert_eq!(log.offset_for_time(1_000_000).unwrap(), None);
        };
        check(&log, 0);
        // The record found really has a timestamp at or after the one asked for.
        let found = log.offset_for_time(3_000).unwrap().unwrap();
        assert!(log.read(found, 1).unwrap()[0].timestamp >= 3_000);
        log.delete_records(700).unwrap();
        check(&log, 700);
        drop(log);
        let (log, _) = PartitionLog::open(dir.path(), cfg).unwrap();
        check(&log, 700);
        assert!(log.segments.values().all(|s| s.time_index_path.exists()));
    }

    #[test]
    fn time_retention_deletes_whole_expired_segments_rolled_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            segment_ms: Some(1_000),
            retention_ms: Some(5_000),
            ..config(1 << 20)
        };
        let (mut log, _) = PartitionLog::open(dir.path(), cfg).unwrap();
        for i in 0..100 {
            log.append(&[NewRecord {
                timestamp: i * 100,
                value: Some(vec![1]),
                ..NewRecord::default()
            }])
            .unwrap();
        }
        // Rolled once a batch was 1s newer than the segment's first: 10 segments of 1s.
        assert_eq!(log.segment_count(), 10);
        assert_eq!(
            log.enforce_time_retention(4_900).unwrap(),
            0,
            "nothing is 5s old"
        );
        // Now 12s: records before 7s are expired; segments [0s,1s) .. [6s,7s) go.
        assert_eq!(log.enforce_time_retention(12_000).unwrap(), 7);
        assert_eq!(log.start_offset(), 70);
        let left = log.read(0, usize::MAX).unwrap();
        assert_eq!(left.len(), 30);
        assert_eq!(left[0].timestamp, 7_000);
        drop(log);
        let (mut log, _) = PartitionLog::open(dir.path(), cfg).unwrap();
        assert_eq!((log.start_offset(), log.end_offset()), (70, 100));
        // Everything expired, the active segment too: it is rolled and deleted, the end
        // offset stays and appends continue from it.
        assert_eq!(log.enforce_time_retention(100_000).unwrap(), 3);
        assert_eq!((log.start_offset(), log.end_offset()), (100, 100));
        assert!(log.read(0, usize::MAX).unwrap().is_empty());
        assert_eq!(log.enforce_time_retention(100_000).unwrap(), 0);
        assert_eq!(log.append(&[rec(5)]).unwrap(), 100);
        assert_eq!(log.read(0, usize::MAX).unwrap()[0].offset, 100);
        // Without retention.ms nothing goes.
        drop(log);
        let (mut log, _) = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
        assert_eq!(log.enforce_time_retention(i64::MAX).unwrap(), 0);
        assert_eq!(log.read(0, usize::MAX).unwrap().len(), 1);
    }

    /// 400 records over 5 hot and ~100 cold keys in ~1KB segments; every 7th record is a
    /// tombstone.
    fn compactable(dir: &Path) -> (PartitionLog, Vec<NewRecord>) {
        let (mut log, _) = PartitionLog::open(dir, config(1_000)).unwrap();
        let mut appended = Vec::new();
        for i in 0..400i64 {
            let key = if i % 3 == 0 {
                format!("hot-{}", i % 5)
            } else {
                format!("cold-{}", i % 150)
            };
            let value = format!("value-{i}");
            let r = keyed(&key, (i % 7 != 3).then_some(value.as_str()), i);
            log.append(std::slice::from_ref(&r)).unwrap();
            appended.push(r);
        }
        (log, appended)
    }

    /// What a compacted log must still tell: the latest value of every key, at its original
    /// offset, with no record anywhere that differs from what was appended there.
    fn assert_consistent(log: &PartitionLog, appended: &[NewRecord]) {
        let all = log.read(0, usize::MAX).unwrap();
        assert_eq!(log.end_offset(), appended.len() as i64);
        let mut last = -1;
        for r in &all {
            assert!(r.offset > last, "offsets increase, no duplicates");
            last = r.offset;
            let a = &appended[r.offset as usize];
            assert_eq!(
                (&r.key, &r.value, r.timestamp),
                (&a.key, &a.value, a.timestamp)
            );
        }
        let mut want: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        for a in appended {
            want.insert(a.key.clone().unwrap(), a.value.clone());
        }
        let mut got: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        for r in &all {
            got.insert(r.key.clone().unwrap(), r.value.clone());
        }
        // Keys whose latest record is a tombstone may be gone entirely.
        want.retain(|k, v| v.is_some() || got.contains_key(k));
        assert_eq!(got, want);
    }

    #[test]
    fn compaction_keeps_the_latest_record_per_key_at_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, appended) = compactable(dir.path());
        let before = log.segment_count();
        assert!(before > 10);
        let active_base = *log.segments.keys().next_back().unwrap();
        let mut latest = HashMap::new();
        for (i, a) in appended.iter().enumerate() {
            latest.insert(a.key.clone(), i as i64);
        }
        let superseded = (0..active_base)
            .filter(|o| latest[&appended[*o as usize].key] != *o)
            .count() as u64;
        let report = log.compact(10_000, 1_000_000).unwrap();
        assert_eq!(report.records_removed, superseded, "{report:?}");
        assert!(
            log.segment_count() < before / 2,
            "cleaned segments are merged"
        );
        assert_consistent(&log, &appended);
        let all = log.read(0, usize::MAX).unwrap();
        let mut seen = std::collections::HashSet::new();
        for r in all.iter().filter(|r| r.offset < active_base) {
            assert!(
                seen.insert(r.key.clone()),
                "one record per key in closed segments"
            );
        }
        // Reads from inside a gap continue at the next kept record.
        let gap = (1..all.len())
            .find(|i| all[*i].offset > all[*i - 1].offset + 1)
            .unwrap();
        let from = all[gap - 1].offset + 1;
        assert_eq!(log.read(from, 1).unwrap()[0].offset, all[gap].offset);
        // A second pass with nothing new does nothing.
        assert_eq!(
            log.compact(10_000, 1_000_000).unwrap(),
            CompactionReport::default()
        );
        drop(log);
        let (mut log, report) = PartitionLog::open(dir.path(), config(1_000)).unwrap();
        assert_eq!(report.truncated_bytes, 0);
        assert_eq!(log.read(0, usize::MAX).unwrap(), all);
        assert_eq!(
            log.append(&[keyed("hot-1", Some("new"), 500)]).unwrap(),
            400
        );
    }

    #[test]
    fn tombstones_stay_for_delete_retention_after_their_first_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), config(200)).unwrap();
        log.append(&[keyed("gone", Some("v1"), 1)]).unwrap();
        log.append(&[keyed("kept", Some("v"), 1)]).unwrap();
        log.append(&[keyed("gone", None, 1)]).unwrap();
        for _ in 0..10 {
            log.append(&[keyed("other", Some("x"), 1)]).unwrap();
        }
        let keys = |log: &PartitionLog| -> Vec<(i64, String, bool)> {
            log.read(0, usize::MAX)
                .unwrap()
                .into_iter()
                .filter(|r| r.key.as_deref() != Some(b"other".as_slice()))
                .map(|r| {
                    (
                        r.offset,
                        String::from_utf8(r.key.unwrap()).unwrap(),
                        r.value.is_some(),
                    )
                })
                .collect()
        };
        log.compact(1_000, 500).unwrap();
        let with_tombstone = vec![
            (1, "kept".to_string(), true),
            (2, "gone".to_string(), false),
        ];
        assert_eq!(
            keys(&log),
            with_tombstone,
            "the old value goes, the tombstone stays"
        );
        log.compact(1_499, 500).unwrap();
        assert_eq!(keys(&log), with_tombstone);
        drop(log);
        // The horizon (1_000 + 500) is stored: reopening does not restart the clock.
        let (mut log, _) = PartitionLog::open(dir.path(), config(200)).unwrap();
        log.compact(1_499, 500).unwrap();
        assert_eq!(keys(&log), with_tombstone);
        let report = log.compact(1_500, 500).unwrap();
        assert!(report.records_removed >= 1);
        assert_eq!(keys(&log), vec![(1, "kept".to_string(), true)]);
        assert_eq!(log.end_offset(), 13);
    }

    #[test]
    fn a_crash_during_compaction_loses_and_duplicates_nothing() {
        let reference = tempfile::tempdir().unwrap();
        let (mut log, _) = compactable(reference.path());
        log.compact(10_000, 1_000_000).unwrap();
        let compacted = log.read(0, usize::MAX).unwrap();
        drop(log);
        for step in [
            CompactStep::Cleaned,
            CompactStep::Swap,
            CompactStep::FirstOldDeleted,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let (mut log, appended) = compactable(dir.path());
            let original = log.read(0, usize::MAX).unwrap();
            log.compact_with(10_000, 1_000_000, &mut |s| s != step)
                .unwrap();
            drop(log); // the crash
            let leftovers = |ext: &str| {
                fs::read_dir(dir.path())
                    .unwrap()
                    .filter(|e| {
                        e.as_ref()
                            .unwrap()
                            .file_name()
                            .to_string_lossy()
                            .ends_with(ext)
                    })
                    .count()
            };
            assert_eq!(
                leftovers(if step == CompactStep::Cleaned {
                    ".cleaned"
                } else {
                    ".swap"
                }),
                1,
                "{step:?}"
            );
            let (mut log, _) = PartitionLog::open(dir.path(), config(1_000)).unwrap();
            assert_eq!(leftovers(".cleaned") + leftovers(".swap"), 0, "{step:?}");
            assert_consistent(&log, &appended);
            let now = log.read(0, usize::MAX).unwrap();
            if step == CompactStep::Cleaned {
                assert_eq!(now, original, "an unfinished rewrite is discarded");
            } else {
                assert!(
                    now.len() < original.len(),
                    "a complete rewrite is installed"
                );
            }
            log.compact(10_000, 1_000_000).unwrap();
            assert_eq!(log.read(0, usize::MAX).unwrap(), compacted, "{step:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
        /// Whatever the batch sizes, segment size and reopen points, reading from any offset
        /// returns exactly the appended records from there on.
        #[test]
        fn reads_match_what_was_appended(
            batches in proptest::collection::vec((1usize..6, proptest::prelude::any::<bool>()), 1..25),
            segment_bytes in 100u64..3_000,
            from in 0i64..80,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let (mut log, _) = PartitionLog::open(dir.path(), config(segment_bytes)).unwrap();
            let mut all = Vec::new();
            for (n, reopen) in batches {
                let batch: Vec<NewRecord> = (0..n).map(|j| rec(all.len() as i64 + j as i64)).collect();
                proptest::prop_assert_eq!(log.append(&batch).unwrap(), all.len() as i64);
                all.extend(batch);
                if reopen {
                    drop(log);
                    log = PartitionLog::open(dir.path(), config(segment_bytes)).unwrap().0;
                }
            }
            let got = log.read(from, usize::MAX).unwrap();
            let want: Vec<_> = all.iter().enumerate().skip(from as usize).collect();
            proptest::prop_assert_eq!(got.len(), want.len());
            for (g, (i, w)) in got.iter().zip(want) {
                proptest::prop_assert_eq!(g.offset, i as i64);
                proptest::prop_assert_eq!(&g.value, &w.value);
            }
        }
    }
}
