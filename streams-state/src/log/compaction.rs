//! Compaction of a partition (`cleanup.policy=compact`): the latest value per key is kept,
//! expired tombstones, aborted records and markers are dropped, crash-safely.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;

use super::batch::*;
use super::files::{corrupt, io};
use super::partition::*;
use super::segment::*;
use super::txn_index::TxnIndex;
use crate::error::StateError;

/// Compaction writes batches of about this many payload bytes.
pub(super) const COMPACTED_BATCH_BYTES: usize = 64 << 10;
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
pub(super) enum CompactStep {
    /// The cleaned file is written and synced, not yet marked complete.
    Cleaned,
    /// The cleaned file is renamed `.swap`: complete, replaces its range on open.
    Swap,
    /// The first of the replaced segments is deleted.
    FirstOldDeleted,
}

impl PartitionLog {
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
    pub(super) fn compact_with(
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
}

/// Consecutive closed segments being compacted into one.
#[derive(Default)]
pub(super) struct Group {
    pub(super) bases: Vec<i64>,
    pub(super) kept: Vec<Kept>,
    pub(super) size: u64,
    pub(super) removed: u64,
    pub(super) changed: bool,
    /// The offset after the group's last segment.
    pub(super) next: i64,
}

/// About the bytes a kept record takes in a compacted batch.
pub(super) fn kept_size(r: &LogRecord) -> u64 {
    (40 + r.key.as_ref().map_or(0, Vec::len)
        + r.value.as_ref().map_or(0, Vec::len)
        + r.headers
            .iter()
            .map(|(k, v)| 6 + k.len() + v.as_ref().map_or(0, Vec::len))
            .sum::<usize>()) as u64
}
