//! The embedded log engine's storage: one partition of a topic on local disk.
//!
//! A partition is a directory of segments. Each segment is a `.log` file of record batches
//! named after its first offset (20 digits) with a sparse `.index` (relative offset → file
//! position) beside it. A batch is CRC-checked:
//!
//! ```text
//! magic u8 = 1 | crc32 u32 (of everything after it) | payload length u32 |
//! base offset i64 | record count u32 | max timestamp i64 | records...
//! record: timestamp i64 | key length i32 (-1 = null) | key | value length i32 (-1 = null) |
//!         value | header count u32 | (key length u16 | key | value length i32 | value)*
//! ```
//!
//! Opening a partition scans its last segment and truncates a torn tail (a partial batch or
//! one whose CRC does not match), reporting what was cut: nothing acknowledged after an
//! fsync is lost. Appends write whole batches, so "append these batches" is one write per
//! batch, ready to be combined with an offset commit for exactly-once later.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::StateError;

const MAGIC: u8 = 1;
/// Bytes before the payload: magic, crc, payload length.
const HEADER: usize = 1 + 4 + 4;
/// Fixed part of the payload: base offset, record count, max timestamp.
const PAYLOAD_FIXED: usize = 8 + 4 + 8;
/// An index entry every this many bytes of log.
const INDEX_INTERVAL: u64 = 4096;

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
    /// When appends are synced.
    pub fsync: FsyncPolicy,
    /// Delete the oldest segments while the partition is larger than this (the active
    /// segment is always kept). `None`: no size limit.
    pub retention_bytes: Option<u64>,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 64 << 20,
            fsync: FsyncPolicy::OnFlush,
            retention_bytes: None,
        }
    }
}

/// What opening a partition found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecoveryReport {
    /// Bytes of a torn or corrupt tail cut from the last segment.
    pub truncated_bytes: u64,
    /// Whole batches that were valid.
    pub valid_batches: u64,
}

struct Segment {
    base: i64,
    log_path: PathBuf,
    index_path: PathBuf,
    file: File,
    size: u64,
    /// Sparse (relative offset, position), ascending.
    index: Vec<(u32, u64)>,
    last_indexed: u64,
    /// The next offset after this segment's last record.
    next_offset: i64,
    max_timestamp: i64,
}

/// One partition of a topic.
pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    segments: BTreeMap<i64, Segment>,
    /// The first offset still readable (raised by [`PartitionLog::delete_records`] and
    /// retention).
    start_offset: i64,
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

fn io<'a>(dir: &'a Path, action: &'static str) -> impl FnOnce(std::io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        store: dir.display().to_string(),
        action,
        source,
    }
}

fn segment_paths(dir: &Path, base: i64) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{base:020}.log")),
        dir.join(format!("{base:020}.index")),
    )
}

/// Encodes records as one batch starting at `base`.
fn encode_batch(base: i64, records: &[NewRecord]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(PAYLOAD_FIXED + records.len() * 64);
    let max_ts = records.iter().map(|r| r.timestamp).max().unwrap_or(-1);
    payload.extend_from_slice(&base.to_be_bytes());
    payload.extend_from_slice(&(records.len() as u32).to_be_bytes());
    payload.extend_from_slice(&max_ts.to_be_bytes());
    let put_bytes = |out: &mut Vec<u8>, b: &Option<Vec<u8>>| match b {
        Some(b) => {
            out.extend_from_slice(&(b.len() as i32).to_be_bytes());
            out.extend_from_slice(b);
        }
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
    };
    for r in records {
        payload.extend_from_slice(&r.timestamp.to_be_bytes());
        put_bytes(&mut payload, &r.key);
        put_bytes(&mut payload, &r.value);
        payload.extend_from_slice(&(r.headers.len() as u32).to_be_bytes());
        for (k, v) in &r.headers {
            let k = k.as_bytes();
            payload.extend_from_slice(&(k.len().min(u16::MAX as usize) as u16).to_be_bytes());
            payload.extend_from_slice(&k[..k.len().min(u16::MAX as usize)]);
            put_bytes(&mut payload, v);
        }
    }
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.push(MAGIC);
    let mut crc_input = (payload.len() as u32).to_be_bytes().to_vec();
    crc_input.extend_from_slice(&payload);
    out.extend_from_slice(&crc32fast::hash(&crc_input).to_be_bytes());
    out.extend_from_slice(&crc_input);
    out
}

/// A cursor over a batch's payload.
struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.pos..self.pos + n)?;
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

/// Decodes a batch payload (after magic, crc and length).
fn decode_payload(payload: &[u8]) -> Option<Vec<LogRecord>> {
    let mut c = Cursor { b: payload, pos: 0 };
    let base = c.i64()?;
    let count = c.u32()?;
    let _max_ts = c.i64()?;
    let mut out = Vec::with_capacity(count as usize);
    for i in 0..count {
        let timestamp = c.i64()?;
        let key = c.bytes()?;
        let value = c.bytes()?;
        let nh = c.u32()?;
        let mut headers = Vec::with_capacity(nh as usize);
        for _ in 0..nh {
            let kl = c.u16()? as usize;
            let k = String::from_utf8_lossy(c.take(kl)?).into_owned();
            headers.push((k, c.bytes()?));
        }
        out.push(LogRecord {
            offset: base + i64::from(i),
            timestamp,
            key,
            value,
            headers,
        });
    }
    Some(out)
}

/// Reads the batch at `pos` of `data`: (total length, payload) if whole and CRC-valid.
fn batch_at(data: &[u8], pos: usize) -> Option<(usize, &[u8])> {
    let h = data.get(pos..pos + HEADER)?;
    if h[0] != MAGIC {
        return None;
    }
    let crc = u32::from_be_bytes(h[1..5].try_into().ok()?);
    let len = u32::from_be_bytes(h[5..9].try_into().ok()?) as usize;
    let payload = data.get(pos + HEADER..pos + HEADER + len)?;
    if len < PAYLOAD_FIXED || crc32fast::hash(&data[pos + 5..pos + HEADER + len]) != crc {
        return None;
    }
    Some((HEADER + len, payload))
}

impl Segment {
    fn create(dir: &Path, base: i64) -> Result<Self, StateError> {
        let (log_path, index_path) = segment_paths(dir, base);
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&log_path)
            .map_err(io(dir, "creating a segment"))?;
        Ok(Self {
            base,
            log_path,
            index_path,
            file,
            size: 0,
            index: Vec::new(),
            last_indexed: 0,
            next_offset: base,
            max_timestamp: -1,
        })
    }

    /// Opens a segment, validating every batch: a torn or corrupt tail is cut.
    fn open(dir: &Path, base: i64, report: &mut RecoveryReport) -> Result<Self, StateError> {
        let mut seg = Self::create(dir, base)?;
        let mut data = Vec::new();
        File::open(&seg.log_path)
            .and_then(|mut f| f.read_to_end(&mut data))
            .map_err(io(dir, "reading a segment"))?;
        let mut pos = 0usize;
        while let Some((len, payload)) = batch_at(&data, pos) {
            let mut c = Cursor { b: payload, pos: 0 };
            let (Some(b), Some(n), Some(max_ts)) = (c.i64(), c.u32(), c.i64()) else {
                break;
            };
            if b != seg.next_offset {
                break; // out of sequence: treat as corrupt from here
            }
            if pos as u64 >= seg.last_indexed + INDEX_INTERVAL || seg.index.is_empty() {
                seg.index.push(((b - base) as u32, pos as u64));
                seg.last_indexed = pos as u64;
            }
            seg.next_offset = b + i64::from(n);
            seg.max_timestamp = seg.max_timestamp.max(max_ts);
            report.valid_batches += 1;
            pos += len;
        }
        if pos < data.len() {
            report.truncated_bytes += (data.len() - pos) as u64;
            seg.file
                .set_len(pos as u64)
                .map_err(io(dir, "truncating a torn segment tail"))?;
            seg.file.sync_all().map_err(io(dir, "syncing a segment"))?;
        }
        seg.size = pos as u64;
        seg.write_index()?;
        Ok(seg)
    }

    fn write_index(&self) -> Result<(), StateError> {
        let mut out = Vec::with_capacity(self.index.len() * 12);
        for (rel, pos) in &self.index {
            out.extend_from_slice(&rel.to_be_bytes());
            out.extend_from_slice(&pos.to_be_bytes());
        }
        fs::write(&self.index_path, out).map_err(|source| StateError::Io {
            store: self.index_path.display().to_string(),
            action: "writing a segment index",
            source,
        })
    }

    /// The file position to start scanning for `offset`.
    fn position_for(&self, offset: i64) -> u64 {
        let rel = (offset - self.base).max(0) as u32;
        match self.index.partition_point(|(r, _)| *r <= rel) {
            0 => 0,
            i => self.index[i - 1].1,
        }
    }
}

impl PartitionLog {
    /// Opens (creating if needed) the partition in `dir`, recovering its last segment.
    pub fn open(dir: &Path, config: LogConfig) -> Result<(Self, RecoveryReport), StateError> {
        fs::create_dir_all(dir).map_err(io(dir, "creating the partition directory"))?;
        let mut bases: Vec<i64> = fs::read_dir(dir)
            .map_err(io(dir, "listing segments"))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".log")?.parse::<i64>().ok()
            })
            .collect();
        bases.sort_unstable();
        let mut report = RecoveryReport::default();
        let mut segments = BTreeMap::new();
        for base in bases {
            // Every segment is validated; only the last can have a torn tail, but a closed
            // segment damaged on disk is cut at its first bad batch too.
            segments.insert(base, Segment::open(dir, base, &mut report)?);
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
        };
        let first = log.segments.keys().next().copied().unwrap_or(0);
        log.start_offset = log.start_offset.max(first);
        Ok((log, report))
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

    /// Appends `records` as one batch; returns the offset of the first one.
    pub fn append(&mut self, records: &[NewRecord]) -> Result<i64, StateError> {
        let base = self.end_offset();
        if records.is_empty() {
            return Ok(base);
        }
        let needs_roll = self
            .segments
            .values()
            .next_back()
            .is_some_and(|s| s.size >= self.config.segment_bytes && s.size > 0);
        if needs_roll {
            self.roll()?;
        }
        let batch = encode_batch(base, records);
        let dir = self.dir.clone();
        let fsync = self.config.fsync;
        let Some(seg) = self.segments.values_mut().next_back() else {
            return Err(StateError::Corrupt {
                store: dir.display().to_string(),
                detail: "partition without an active segment".into(),
            });
        };
        seg.file
            .write_all(&batch)
            .map_err(io(&dir, "appending a batch"))?;
        if fsync == FsyncPolicy::EveryBatch {
            seg.file.sync_data().map_err(io(&dir, "syncing a batch"))?;
        }
        if seg.index.is_empty() || seg.size >= seg.last_indexed + INDEX_INTERVAL {
            seg.index.push(((base - seg.base) as u32, seg.size));
            seg.last_indexed = seg.size;
        }
        seg.size += batch.len() as u64;
        seg.next_offset = base + records.len() as i64;
        seg.max_timestamp = seg
            .max_timestamp
            .max(records.iter().map(|r| r.timestamp).max().unwrap_or(-1));
        self.enforce_retention()?;
        Ok(base)
    }

    fn roll(&mut self) -> Result<(), StateError> {
        if let Some(seg) = self.segments.values_mut().next_back() {
            seg.file
                .sync_all()
                .map_err(io(&self.dir, "syncing a segment"))?;
            seg.write_index()?;
        }
        let base = self.end_offset();
        self.segments
            .insert(base, Segment::create(&self.dir, base)?);
        Ok(())
    }

    /// Makes every append durable.
    pub fn flush(&mut self) -> Result<(), StateError> {
        if let Some(seg) = self.segments.values_mut().next_back() {
            seg.file
                .sync_data()
                .map_err(io(&self.dir, "syncing a segment"))?;
        }
        Ok(())
    }

    /// Records from `offset` on (at least one batch, then up to about `max_bytes`).
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Vec<LogRecord>, StateError> {
        let offset = offset.max(self.start_offset);
        let mut out = Vec::new();
        let mut budget = i64::try_from(max_bytes).unwrap_or(i64::MAX);
        let segs = self.segments.range(..=offset).next_back().map(|(b, _)| *b);
        let from = segs.unwrap_or(0);
        for seg in self.segments.range(from..).map(|(_, s)| s) {
            if seg.next_offset <= offset || seg.size == 0 {
                continue;
            }
            let mut f = File::open(&seg.log_path).map_err(io(&self.dir, "opening a segment"))?;
            let pos = seg.position_for(offset);
            f.seek(SeekFrom::Start(pos))
                .map_err(io(&self.dir, "seeking a segment"))?;
            let mut data = Vec::new();
            f.take(seg.size - pos)
                .read_to_end(&mut data)
                .map_err(io(&self.dir, "reading a segment"))?;
            let mut p = 0usize;
            while let Some((len, payload)) = batch_at(&data, p) {
                p += len;
                let records = decode_payload(payload).ok_or_else(|| StateError::Corrupt {
                    store: self.dir.display().to_string(),
                    detail: "a batch with a valid CRC does not decode".into(),
                })?;
                for r in records {
                    if r.offset >= offset {
                        budget -= 16
                            + r.key.as_ref().map_or(0, Vec::len) as i64
                            + r.value.as_ref().map_or(0, Vec::len) as i64;
                        out.push(r);
                    }
                }
                if budget <= 0 && !out.is_empty() {
                    return Ok(out);
                }
            }
        }
        Ok(out)
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
        }
        Ok(())
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
            let Some((&base, seg)) = self.segments.iter().next() else {
                break;
            };
            let next = seg.next_offset;
            self.remove_segment(base)?;
            self.start_offset = self.start_offset.max(next);
            write_start_offset(&self.dir, self.start_offset)?;
        }
        Ok(())
    }

    /// The number of segments.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
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
            fsync: FsyncPolicy::OnFlush,
            retention_bytes: None,
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
        f.write_all(&encode_batch(3, &[rec(4)])[..10]).unwrap();
        drop(f);
        let (mut log, report) = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
        assert_eq!(report.truncated_bytes, 10);
        assert_eq!(fs::metadata(&seg).unwrap().len(), len);
        assert_eq!(log.end_offset(), 3);
        assert_eq!(log.append(&[rec(4)]).unwrap(), 3);
        assert_eq!(log.read(0, usize::MAX).unwrap().len(), 4);
    }

    #[test]
    fn a_corrupt_batch_is_cut_with_everything_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
        for i in 0..5 {
            log.append(&[rec(i)]).unwrap();
        }
        drop(log);
        let seg = dir.path().join(format!("{:020}.log", 0));
        let mut data = fs::read(&seg).unwrap();
        let second = batch_at(&data, 0).unwrap().0;
        data[second + 20] ^= 0xff; // flip a bit inside the second batch
        fs::write(&seg, &data).unwrap();
        let (log, report) = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
        assert_eq!(report.valid_batches, 1);
        assert!(report.truncated_bytes > 0);
        assert_eq!(log.end_offset(), 1);
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
