//! One partition of a topic on local disk: appends, reads, retention and recovery on open
//! (segments: `segment`, the codec: `batch`, compaction:
//! `compaction`).
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
//! keeps every intact batch ([`super::repair`]). Offsets are never reused. It also finishes
//! or discards an interrupted compaction (see [`PartitionLog::compact`]).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::batch::*;
use super::files::{corrupt, io};
use super::segment::*;
use super::txn::{Isolation, ProducerId};
use super::txn_index::TxnIndex;
use crate::error::StateError;

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

/// A batch as [`PartitionLog::read_raw_batches`] returns it: its fields (records empty)
/// and, unless it is a marker, its magic and encoded payload.
#[cfg_attr(not(feature = "serve"), allow(dead_code))]
#[derive(Debug)]
pub(crate) struct RawBatch {
    pub(crate) batch: StoredBatch,
    pub(crate) payload: Option<(u8, Vec<u8>)>,
}

/// What a record read counts against a read's byte budget.
fn read_charge(key: Option<&[u8]>, value: Option<&[u8]>) -> usize {
    16 + key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len)
}

/// One partition of a topic.
pub struct PartitionLog {
    pub(super) dir: PathBuf,
    pub(super) config: LogConfig,
    pub(super) segments: BTreeMap<i64, Segment>,
    /// The first offset still readable (raised by [`PartitionLog::delete_records`] and
    /// retention).
    pub(super) start_offset: i64,
    /// After a compaction: the end offset it saw and the earliest time a kept tombstone
    /// expires. Compacting again before either changes would find nothing to do.
    pub(super) cleaned: Option<(i64, i64)>,
    /// Why appends are refused until the partition is opened again: a failed write could
    /// not be rolled back, or a sync failed (what is on disk is then unknown).
    pub(super) failed: Option<String>,
    /// Open transactions and aborted ones (see the module docs).
    pub(super) txns: TxnIndex,
    /// Tests: the number of bytes after which writes fail as on a full disk.
    #[cfg(test)]
    pub(super) fail_writes_after: Option<usize>,
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
    pub fn append<R: AppendRecord>(&mut self, records: &[R]) -> Result<i64, StateError> {
        self.append_batch(records, None)
    }

    /// Appends `records` as one transactional batch of `producer`: pending (invisible to
    /// `read_committed` readers) until the producer's marker ends its transaction. Returns
    /// the offset of the first one.
    pub fn append_transactional<R: AppendRecord>(
        &mut self,
        records: &[R],
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

    fn append_batch<R: AppendRecord>(
        &mut self,
        records: &[R],
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
        let max_ts = max_timestamp(records);
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
        let mut out: Vec<StoredBatch> = Vec::new();
        let next = self.visit_batches(offset, max_bytes, isolation, |mut batch, payload| {
            let Some((magic, payload)) = payload else {
                out.push(batch);
                return Some(0);
            };
            let mut charged = 0;
            decode_batch(magic, payload, |r, _| {
                if r.offset >= offset {
                    charged += read_charge(r.key.as_deref(), r.value.as_deref());
                    batch.records.push(r);
                }
            })?;
            if !batch.records.is_empty() {
                out.push(batch);
            }
            Some(charged)
        })?;
        Ok((out, next))
    }

    /// [`read_batches`](Self::read_batches) without decoding: each batch with its records'
    /// encoded payload (`records` empty), which [`decode_batch_views`] reads in place. A
    /// batch may hold records below `offset` (the reader skips them); a marker has no
    /// payload.
    pub(crate) fn read_raw_batches(
        &self,
        offset: i64,
        max_bytes: usize,
        isolation: Isolation,
    ) -> Result<(Vec<RawBatch>, i64), StateError> {
        let offset = offset.max(self.start_offset);
        let mut out = Vec::new();
        let next = self.visit_batches(offset, max_bytes, isolation, |batch, payload| {
            let Some((magic, payload)) = payload else {
                out.push(RawBatch {
                    batch,
                    payload: None,
                });
                return Some(0);
            };
            // A compacted batch can hold no record at or after `offset` (a trailing gap):
            // it costs nothing, like a batch the reader would skip.
            let charged = if magic == MAGIC_V2 {
                let mut charged = 0;
                decode_batch_views(magic, payload, |r, _| {
                    if r.offset >= offset {
                        charged += read_charge(r.key, r.value);
                    }
                })?;
                charged
            } else {
                payload.len()
            };
            if charged > 0 {
                out.push(RawBatch {
                    batch,
                    payload: Some((magic, payload.to_vec())),
                });
            }
            Some(charged)
        })?;
        Ok((out, next))
    }

    /// The batches a reader at `offset` (at or after the start offset: the callers clamp
    /// it, and filter records with the same value) with `isolation` sees, in order, until
    /// about `max_bytes` are charged: `visit` gets each (a marker without payload, any
    /// other with its magic and payload) and returns the bytes to charge, or `None` if the
    /// payload does not decode. Returns the offset to read from next.
    fn visit_batches(
        &self,
        offset: i64,
        max_bytes: usize,
        isolation: Isolation,
        mut visit: impl FnMut(StoredBatch, Option<(u8, &[u8])>) -> Option<usize>,
    ) -> Result<i64, StateError> {
        let upper = match isolation {
            Isolation::ReadCommitted => self.last_stable_offset(),
            Isolation::ReadUncommitted => self.end_offset(),
        };
        let mut visited = 0usize;
        let mut next = offset;
        if offset >= upper {
            return Ok(next);
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
                    let batch = StoredBatch {
                        base: h.base,
                        next: h.next,
                        producer,
                        transactional: attributes & ATTR_TRANSACTIONAL != 0,
                        marker: h.is_control().then_some(attributes & ATTR_COMMIT != 0),
                        records: Vec::new(),
                    };
                    let payload = batch.marker.is_none().then_some((magic, payload));
                    match visit(batch, payload) {
                        None => {
                            bad = true;
                            Ok(false)
                        }
                        Some(charged) => {
                            if charged > 0 {
                                visited += 1;
                                budget -= i64::try_from(charged).unwrap_or(i64::MAX);
                            }
                            Ok(budget > 0 || visited == 0)
                        }
                    }
                },
            )?;
            if bad {
                return Err(corrupt(
                    &self.dir,
                    "a batch with a valid CRC does not decode",
                ));
            }
            if done || (budget <= 0 && visited > 0) {
                break;
            }
        }
        Ok(next.min(upper).max(offset))
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

    pub(super) fn remove_segment(&mut self, base: i64) -> Result<(), StateError> {
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

    /// The number of segments.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

pub(super) fn read_start_offset(dir: &Path) -> Option<i64> {
    fs::read_to_string(dir.join("log-start-offset"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

pub(super) fn write_start_offset(dir: &Path, offset: i64) -> Result<(), StateError> {
    let tmp = dir.join("log-start-offset.tmp");
    fs::write(&tmp, offset.to_string()).map_err(io(dir, "writing the log start offset"))?;
    fs::rename(&tmp, dir.join("log-start-offset")).map_err(io(dir, "writing the log start offset"))
}
