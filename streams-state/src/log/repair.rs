//! Finding and repairing damaged segments of the embedded log engine, without opening it
//! (opening refuses damage other than a torn tail: see [`super::partition`]).
//!
//! [`verify_log_dir`] lists every damaged byte range of every segment, and every gap or
//! overlap between consecutive segments (a segment must end where the next one begins).
//! [`repair_log_dir`] copies each damaged segment aside (`<file>.damaged`, or `.damaged-N`)
//! and rewrites it with every intact batch:
//!
//! - The offsets a damage held, and those of a gap between segments, stay taken: they are
//!   covered (a gap at the end of the earlier segment), so no offset is ever reused and
//!   readers continue past them. Where intact batches resume after a damage, the batch with
//!   the smallest base offset wins, so that a stray copy of a later batch does not hide the
//!   intact batches between.
//! - An overlap (a segment's batches reach past the next segment's base) keeps the earlier
//!   segment's records: the later segment's batches below the earlier one's end are
//!   dropped and it is renamed after its new first offset (both files are copied aside;
//!   should a segment of that name already exist, that one holds those offsets and the
//!   later segment is dropped entirely).
//! - A torn tail of the partition's last segment (nothing intact after it) is cut.
//!
//! Transactions: lost offsets may have held the marker that ended a transaction, and a
//! later marker of the same producer would then end the transaction it opened before the
//! damage, committing records that were aborted. So every producer whose transaction is
//! open where offsets were lost (from the intact batches before them, scanned from the
//! partition's first segment) gets an abort marker there, as the first of the lost
//! offsets (oldest transaction first), before the empty batch that covers the rest. A
//! transaction whose commit marker was destroyed thus ends aborted: conservative, never a
//! phantom commit. When the lost range has fewer offsets than open transactions, the
//! producers whose next intact marker after the range is a commit get theirs first (that
//! marker is the one that could commit records the range may have aborted; a producer
//! whose next marker aborts, or that has none, is resolved by it or by the engine's
//! transaction recovery), among them first the producer the damaged bytes still name as
//! a marker's (a hint only: nothing else is read from damaged bytes), then the oldest
//! transactions. The transactions without a marker stay open and are reported
//! ([`SegmentDamage::left_open`], and a warning); the next marker of each, if it is a
//! commit (which would commit the records from before the range along with those after
//! it), is rewritten as an abort marker ([`SegmentDamage::commits_aborted`]; its segment is
//! copied aside first like a damaged one). Either way no record the range may have aborted
//! is ever committed; what is lost is at most the commit of records that were committed.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::batch::{
    ATTR_COMMIT, ATTR_CONTROL, ATTR_TRANSACTIONAL, BatchHeader, batch_at, batch_header,
    encode_abort_marker, encode_compacted_batch, next_intact_batch,
};
use super::files::io;
use super::txn::ProducerId;
use super::txn_index::TxnIndex;
use crate::error::StateError;

/// What kind of damage a [`SegmentDamage`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DamageKind {
    /// Bytes that are not intact batches in sequence (a CRC mismatch, a partial batch, a
    /// batch out of order).
    Batches,
    /// The segment ends before the next segment begins: the offsets between are lost
    /// (`from` and `to` are the segment's length).
    Gap,
    /// The segment's batches from `from` on reach past the next segment's base
    /// (`first_offset`): those offsets are held twice.
    Overlap,
}

/// A damaged byte range of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentDamage {
    /// The segment file.
    pub file: PathBuf,
    /// The first damaged byte.
    pub from: u64,
    /// The byte where the next intact batch starts, or the file's length.
    pub to: u64,
    /// The first offset the damage concerns (held, lost, or held twice).
    pub first_offset: i64,
    /// The base offset of the next intact batch in the segment, if there is one (after a
    /// gap or an overlap: the offset the partition continues at).
    pub resumes_at: Option<i64>,
    /// The damage is the tail of the partition's last segment with nothing intact after it:
    /// a write a crash interrupted, which opening the engine truncates by itself.
    pub torn_tail: bool,
    /// What the damage is.
    pub kind: DamageKind,
    /// The producers whose transaction was open where the damage lost offsets: repair ends
    /// each with an abort marker there (see the module docs).
    pub aborted: Vec<ProducerId>,
    /// The producers whose transaction was open there too, for which the lost offsets had
    /// no room left for a marker: their transactions stay open until their next marker,
    /// which ends them with the records from before the damage included (and a commit is
    /// turned into an abort: [`SegmentDamage::commits_aborted`]).
    pub left_open: Vec<ProducerId>,
    /// The offsets of the commit markers repair turns into abort markers: for each
    /// producer in `left_open`, its next marker after the damage if that is a commit, which
    /// would otherwise commit the records from before the damage that the lost offsets may
    /// have aborted.
    pub commits_aborted: Vec<i64>,
}

/// The segment files of a partition directory, by base offset.
fn segments(dir: &Path) -> Result<Vec<(i64, PathBuf)>, StateError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io(dir, "listing segments"))? {
        let path = entry.map_err(io(dir, "listing segments"))?.path();
        let base = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<i64>().ok());
        if let Some(base) = base {
            out.push((base, path));
        }
    }
    out.sort();
    Ok(out)
}

/// A stretch of a segment as repair keeps it, in offset order.
#[derive(Debug, Clone, Copy)]
enum Entry {
    /// An intact batch: its bytes in the file and its header.
    Batch {
        from: usize,
        to: usize,
        header: BatchHeader,
    },
    /// Offsets `base..next` whose batches are lost (damage number `damage` of the
    /// segment): covered by abort markers and an empty batch.
    Lost { base: i64, next: i64, damage: usize },
}

impl Entry {
    fn base(&self) -> i64 {
        match *self {
            Entry::Batch { header, .. } => header.base,
            Entry::Lost { base, .. } => base,
        }
    }

    fn next(&self) -> i64 {
        match *self {
            Entry::Batch { header, .. } => header.next,
            Entry::Lost { next, .. } => next,
        }
    }
}

/// One segment as repair finds it and would rewrite it.
struct Plan {
    base: i64,
    path: PathBuf,
    data: Vec<u8>,
    entries: Vec<Entry>,
    damage: Vec<SegmentDamage>,
    /// For each damage: the producer of the marker its first bytes look like (see
    /// [`marker_hint`]).
    hints: Vec<Option<i64>>,
    /// The offset after the last entry.
    end: i64,
    /// The scan ended in damage with nothing intact after it: that damage's index.
    trailing: Option<usize>,
    /// After an overlap: the index of its damage (reported on the earlier segment) among
    /// the partition's, to which the offsets it loses here are accounted.
    overlap: Option<usize>,
    /// The base of the repaired segment (higher after an overlap dropped its first
    /// batches).
    new_base: i64,
    /// Its batches change: it is rewritten.
    rewrite: bool,
}

fn damage(
    file: &Path,
    from: usize,
    to: usize,
    first_offset: i64,
    resumes_at: Option<i64>,
    kind: DamageKind,
) -> SegmentDamage {
    SegmentDamage {
        file: file.to_path_buf(),
        from: from as u64,
        to: to as u64,
        first_offset,
        resumes_at,
        torn_tail: false,
        kind,
        aborted: Vec::new(),
        left_open: Vec::new(),
        commits_aborted: Vec::new(),
    }
}

/// Reads one segment's batches: intact ones in sequence from its base, damaged ranges, and
/// where intact batches resume after each.
/// `next_base`: the base of the segment after it, if any.
fn scan(path: &Path, data: Vec<u8>, base: i64, next_base: Option<i64>) -> Plan {
    let mut plan = Plan {
        base,
        path: path.to_path_buf(),
        data: Vec::new(),
        entries: Vec::new(),
        damage: Vec::new(),
        hints: Vec::new(),
        end: base,
        trailing: None,
        overlap: None,
        new_base: base,
        rewrite: false,
    };
    let mut pos = 0usize;
    let mut expected = base;
    loop {
        while let Some((len, magic, payload)) = batch_at(&data, pos) {
            match batch_header(magic, payload) {
                Some(header) if header.base == expected => {
                    plan.entries.push(Entry::Batch {
                        from: pos,
                        to: pos + len,
                        header,
                    });
                    expected = header.next;
                    pos += len;
                }
                _ => break,
            }
        }
        if pos >= data.len() {
            break;
        }
        plan.rewrite = true;
        let intact = next_intact_batch(&data, pos, expected, next_base);
        let mut d = damage(
            path,
            pos,
            intact.map_or(data.len(), |(p, _)| p),
            expected,
            intact.map(|(_, b)| b),
            DamageKind::Batches,
        );
        d.torn_tail = next_base.is_none() && intact.is_none();
        plan.damage.push(d);
        plan.hints.push(marker_hint(&data, pos, expected));
        match intact {
            Some((p, b)) => {
                if b > expected {
                    plan.entries.push(Entry::Lost {
                        base: expected,
                        next: b,
                        damage: plan.damage.len() - 1,
                    });
                }
                pos = p;
                expected = b;
            }
            None => {
                plan.trailing = Some(plan.damage.len() - 1);
                break;
            }
        }
    }
    plan.end = expected;
    plan.data = data;
    plan
}

/// The producer of the marker that the damaged bytes at `pos` may have been, read as they
/// are (nothing to check them by): if they look like a marker at `expected`. Only a hint
/// for which open transaction gets the one abort marker lost offsets have room for.
fn marker_hint(data: &[u8], pos: usize, expected: i64) -> Option<i64> {
    // After magic, CRC and length: base offset, count, max timestamp, producer id, epoch,
    // attributes.
    let p = data.get(pos.checked_add(9)?..pos.checked_add(9 + 31)?)?;
    let base = i64::from_be_bytes(p[0..8].try_into().ok()?);
    let id = i64::from_be_bytes(p[20..28].try_into().ok()?);
    (base == expected && p[30] & ATTR_CONTROL != 0).then_some(id)
}

/// Transactions and timestamps as the partition's kept batches go by, for the markers.
struct Walk<'a> {
    /// The partition's segment files.
    segs: &'a [(i64, PathBuf)],
    txns: TxnIndex,
    /// The largest timestamp so far: a marker takes it (it moves neither time retention
    /// nor segment rolls).
    timestamp: i64,
    /// Every producer's intact markers in the partition (base offset, commit), by base;
    /// read when a lost range first has too little room.
    markers: Option<HashMap<i64, Vec<(i64, bool)>>>,
    /// Producers left open at a lost range whose next marker, a commit, becomes an abort:
    /// by producer id, the index of that damage in the partition's.
    demote: HashMap<i64, usize>,
    /// The commit markers turned into aborts: (damage index, offset).
    demoted: Vec<(usize, i64)>,
}

impl Walk<'_> {
    /// The producers with a transaction open, in the order they get the abort markers the
    /// lost offsets `base..next` have room for. When the room is short, those whose next
    /// marker after the range commits come first (that marker would otherwise commit
    /// their records from before the range, which the range may have aborted), the one
    /// the damaged bytes name (`hint`) first among them; then the oldest transaction first.
    fn open_in_marker_order(
        &mut self,
        base: i64,
        next: i64,
        hint: Option<i64>,
    ) -> Result<Vec<ProducerId>, StateError> {
        let mut open = self.txns.open_producers();
        if open.len() as u64 <= next.saturating_sub(base) as u64 {
            return Ok(open);
        }
        let markers = match self.markers.take() {
            Some(m) => m,
            None => markers(self.segs)?,
        };
        open.sort_by_key(|p| {
            let next_marker = markers
                .get(&p.id)
                .and_then(|m| m.get(m.partition_point(|(b, _)| *b < next)));
            (
                !next_marker.is_some_and(|(_, commit)| *commit),
                Some(p.id) != hint,
            )
        });
        self.markers = Some(markers);
        Ok(open)
    }

    /// Whether `producer`'s next intact marker at or after `from` is a commit (as far as
    /// the markers read so far tell).
    fn commits_next(&self, producer: i64, from: i64) -> bool {
        self.markers
            .as_ref()
            .and_then(|m| m.get(&producer))
            .and_then(|m| m.get(m.partition_point(|(b, _)| *b < from)))
            .is_some_and(|(_, commit)| *commit)
    }
}

/// Every producer's intact markers in the partition (base offset, commit), by base.
fn markers(segs: &[(i64, PathBuf)]) -> Result<HashMap<i64, Vec<(i64, bool)>>, StateError> {
    let mut out: HashMap<i64, Vec<(i64, bool)>> = HashMap::new();
    for (i, (base, path)) in segs.iter().enumerate() {
        let data = fs::read(path).map_err(io(path, "reading a segment"))?;
        for entry in scan(path, data, *base, segs.get(i + 1).map(|(b, _)| *b)).entries {
            if let Entry::Batch { header, .. } = entry
                && header.is_control()
                && let Some((p, attributes)) = header.producer
            {
                out.entry(p.id)
                    .or_default()
                    .push((header.base, attributes & ATTR_COMMIT != 0));
            }
        }
    }
    for m in out.values_mut() {
        m.sort_unstable();
    }
    Ok(out)
}

/// Repairs (or with `write` false, only verifies) the partition in `dir`.
fn run(dir: &Path, write: bool) -> Result<Vec<SegmentDamage>, StateError> {
    let segs = segments(dir)?;
    let mut out = Vec::new();
    let mut walk = Walk {
        segs: &segs,
        txns: TxnIndex::default(),
        timestamp: 0,
        markers: None,
        demote: HashMap::new(),
        demoted: Vec::new(),
    };
    let mut pending: Option<Plan> = None;
    for (i, (base, path)) in segs.iter().enumerate() {
        let data = fs::read(path).map_err(io(path, "reading a segment"))?;
        let mut plan = scan(path, data, *base, segs.get(i + 1).map(|(b, _)| *b));
        let mut overlap = None;
        if let Some(prev) = pending.as_mut()
            && prev.end > plan.base
        {
            // An overlap: the earlier segment keeps its records.
            let from = prev
                .entries
                .iter()
                .find_map(|e| match *e {
                    Entry::Batch { from, header, .. } if header.next > plan.base => Some(from),
                    _ => None,
                })
                .unwrap_or(prev.data.len());
            prev.damage.push(damage(
                &prev.path,
                from,
                prev.data.len(),
                plan.base,
                Some(prev.end),
                DamageKind::Overlap,
            ));
            prev.hints.push(None);
            overlap = Some(prev.damage.len() - 1);
            let keep_from = prev.end;
            plan.rewrite = true;
            plan.new_base = keep_from;
            plan.entries = if segs.iter().any(|(b, _)| *b == keep_from) {
                Vec::new() // the segment named after its new base holds those offsets
            } else {
                drop_below(&plan.entries, keep_from)
            };
            if plan.entries.is_empty() {
                // Nothing of it is kept: the earlier segment holds all its offsets.
                finish_removed(plan, write, &mut out)?;
                continue;
            }
        }
        if let Some(prev) = pending.take() {
            let start = out.len();
            finish(prev, Some(plan.new_base), &mut walk, write, &mut out)?;
            plan.overlap = overlap.map(|i| start + i);
        }
        pending = Some(plan);
    }
    if let Some(prev) = pending.take() {
        finish(prev, None, &mut walk, write, &mut out)?;
    }
    for (index, offset) in std::mem::take(&mut walk.demoted) {
        if let Some(d) = out.get_mut(index) {
            d.commits_aborted.push(offset);
        }
    }
    if write && !out.is_empty() {
        sync_dir(dir);
    }
    Ok(out)
}

/// The entries of a segment from offset `from` on: batches below it are dropped, one
/// reaching past it is lost from `from` on (it cannot be cut).
fn drop_below(entries: &[Entry], from: i64) -> Vec<Entry> {
    let mut out = Vec::new();
    for e in entries {
        if e.next() <= from {
            continue;
        }
        if e.base() >= from {
            out.push(*e);
            continue;
        }
        out.push(Entry::Lost {
            base: from,
            next: e.next(),
            damage: match *e {
                Entry::Lost { damage, .. } => damage,
                // Accounted to the overlap, reported on the earlier segment.
                Entry::Batch { .. } => usize::MAX,
            },
        });
    }
    out
}

/// A segment an overlap covers entirely: copied aside and deleted.
fn finish_removed(plan: Plan, write: bool, out: &mut Vec<SegmentDamage>) -> Result<(), StateError> {
    if write {
        fs::copy(&plan.path, aside(&plan.path))
            .map_err(io(&plan.path, "copying a damaged segment aside"))?;
        fs::remove_file(&plan.path).map_err(io(&plan.path, "deleting an overlapped segment"))?;
        for ext in ["index", "timeindex"] {
            let _ = fs::remove_file(plan.path.with_extension(ext));
        }
        tracing::warn!(file = %plan.path.display(), "segment deleted: the previous segment holds all its offsets; the file was copied aside");
    }
    out.extend(plan.damage);
    Ok(())
}

/// Completes a segment's plan once the base of the segment after it (if any) is known: a
/// gap up to it is covered, the lost offsets get their markers, and (`write`) the segment is
/// copied aside and rewritten. Adds its damage to `out`.
fn finish(
    mut plan: Plan,
    next_base: Option<i64>,
    walk: &mut Walk<'_>,
    write: bool,
    out: &mut Vec<SegmentDamage>,
) -> Result<(), StateError> {
    if let Some(next_base) = next_base
        && plan.end < next_base
    {
        let index = match plan.trailing {
            Some(i) => i, // the damage that ends the segment already reports these offsets
            None => {
                let len = plan.data.len();
                plan.damage.push(damage(
                    &plan.path,
                    len,
                    len,
                    plan.end,
                    Some(next_base),
                    DamageKind::Gap,
                ));
                plan.hints.push(None);
                plan.damage.len() - 1
            }
        };
        plan.entries.push(Entry::Lost {
            base: plan.end,
            next: next_base,
            damage: index,
        });
        plan.end = next_base;
        plan.rewrite = true;
    }
    // Built whenever writing: a commit marker may turn into an abort in any segment.
    let build = write;
    let mut bytes = Vec::new();
    for entry in &plan.entries {
        match *entry {
            Entry::Batch { from, to, header } => {
                if header.is_control()
                    && let Some((p, attributes)) = header.producer
                    && let Some(index) = walk.demote.remove(&p.id)
                    && attributes & ATTR_COMMIT != 0
                {
                    // The commit that would end a transaction the lost offsets may have
                    // aborted: an abort instead.
                    walk.demoted.push((index, header.base));
                    let abort = BatchHeader {
                        producer: Some((p, attributes & !ATTR_COMMIT)),
                        ..header
                    };
                    walk.txns.observe(&abort);
                    if build {
                        bytes.extend_from_slice(&encode_abort_marker(
                            header.base,
                            p,
                            header.max_timestamp,
                        ));
                    }
                    plan.rewrite = true;
                    continue;
                }
                walk.txns.observe(&header);
                if header.count > 0 {
                    walk.timestamp = walk.timestamp.max(header.max_timestamp);
                }
                if build {
                    bytes.extend_from_slice(&plan.data[from..to]);
                }
            }
            Entry::Lost { base, next, damage } => {
                let hint = plan.hints.get(damage).copied().flatten();
                let open = walk.open_in_marker_order(base, next, hint)?;
                let room = usize::try_from(next - base).unwrap_or(usize::MAX);
                let (aborted, left) = open.split_at(open.len().min(room));
                let mut offset = base;
                for p in aborted {
                    // This marker ends what a commit of the producer's still to be turned
                    // into an abort would have committed: that commit stays.
                    walk.demote.remove(&p.id);
                    if build {
                        bytes.extend_from_slice(&encode_abort_marker(offset, *p, walk.timestamp));
                    }
                    walk.txns.observe(&BatchHeader {
                        base: offset,
                        count: 1,
                        max_timestamp: walk.timestamp,
                        next: offset + 1,
                        producer: Some((*p, ATTR_TRANSACTIONAL | ATTR_CONTROL)),
                    });
                    offset += 1;
                }
                if build && offset < next {
                    bytes.extend_from_slice(&encode_compacted_batch(offset, next, &[]));
                }
                if write && !left.is_empty() {
                    tracing::warn!(file = %plan.path.display(), offset = base, producers = ?left, "lost offsets have no room for an abort marker of every transaction open there: those stay open until their next marker, and a commit there is turned into an abort");
                }
                // Offsets an overlap loses are reported with it, on the earlier segment.
                let index = if damage < plan.damage.len() {
                    Some(out.len() + damage)
                } else {
                    plan.overlap
                };
                for p in left {
                    if let Some(index) = index
                        && walk.commits_next(p.id, next)
                    {
                        walk.demote.insert(p.id, index);
                    }
                }
                let d = match plan.damage.get_mut(damage) {
                    Some(d) => Some(d),
                    None => plan.overlap.and_then(|i| out.get_mut(i)),
                };
                if let Some(d) = d {
                    d.aborted.extend_from_slice(aborted);
                    d.left_open.extend_from_slice(left);
                }
            }
        }
    }
    if write && (!plan.damage.is_empty() || plan.rewrite) {
        fs::copy(&plan.path, aside(&plan.path))
            .map_err(io(&plan.path, "copying a damaged segment aside"))?;
    }
    if build && plan.rewrite {
        let target = plan
            .path
            .with_file_name(format!("{:020}.log", plan.new_base));
        let tmp = plan.path.with_extension("repair");
        fs::write(&tmp, &bytes).map_err(io(&tmp, "writing a repaired segment"))?;
        fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io(&tmp, "syncing a repaired segment"))?;
        fs::rename(&tmp, &target).map_err(io(&target, "installing a repaired segment"))?;
        if target != plan.path {
            fs::remove_file(&plan.path).map_err(io(&plan.path, "deleting a renamed segment"))?;
        }
        for path in [&plan.path, &target] {
            for ext in ["index", "timeindex"] {
                let _ = fs::remove_file(path.with_extension(ext));
            }
        }
        tracing::warn!(file = %plan.path.display(), repaired = %target.display(), ranges = plan.damage.len(), "segment repaired; the damaged file was copied aside");
    }
    out.extend(plan.damage);
    Ok(())
}

/// Syncs a directory so that renames and deletions in it are durable (best effort).
fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Every damaged range of the partition in `dir`, with what [`repair_partition`] would do
/// about transactions ([`SegmentDamage::aborted`], [`SegmentDamage::left_open`]).
pub fn verify_partition(dir: &Path) -> Result<Vec<SegmentDamage>, StateError> {
    run(dir, false)
}

/// The partition directories of an engine's data directory (`topics/<topic>/<partition>`).
fn partitions(data_dir: &Path) -> Result<Vec<PathBuf>, StateError> {
    let topics = data_dir.join("topics");
    let mut out = Vec::new();
    if !topics.is_dir() {
        return Ok(out);
    }
    for t in fs::read_dir(&topics).map_err(io(&topics, "listing topics"))? {
        let t = t.map_err(io(&topics, "listing topics"))?.path();
        if !t.is_dir() {
            continue;
        }
        for p in fs::read_dir(&t).map_err(io(&t, "listing partitions"))? {
            let p = p.map_err(io(&t, "listing partitions"))?.path();
            if p.is_dir() {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Every damaged range of every partition of the engine in `data_dir` (which must not be
/// open: the files are read as they are).
pub fn verify_log_dir(data_dir: &Path) -> Result<Vec<SegmentDamage>, StateError> {
    let mut out = Vec::new();
    for p in partitions(data_dir)? {
        out.extend(verify_partition(&p)?);
    }
    Ok(out)
}

/// A free name for the copy of a damaged file.
fn aside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut candidate = path.with_file_name(format!("{name}.damaged"));
    let mut n = 1;
    while candidate.exists() {
        candidate = path.with_file_name(format!("{name}.damaged-{n}"));
        n += 1;
    }
    candidate
}

/// Repairs the partition in `dir` (see the module docs): each damaged segment is copied
/// aside and rewritten with its intact batches, the offsets each damage held (up to the
/// next intact batch, or to the next segment's base) covered by abort markers for the
/// transactions open there and an empty batch; overlapping batches of a later segment are
/// dropped; a torn tail of the last segment is cut. Returns the damage repaired.
pub fn repair_partition(dir: &Path) -> Result<Vec<SegmentDamage>, StateError> {
    run(dir, true)
}

/// Repairs every partition of the engine in `data_dir` (see [`repair_partition`]). Fails
/// while an engine has the directory open.
pub fn repair_log_dir(data_dir: &Path) -> Result<Vec<SegmentDamage>, StateError> {
    let lock_path = data_dir.join(".lock");
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io(&lock_path, "opening the lock file"))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            return Err(StateError::StateDir {
                path: data_dir.to_path_buf(),
                detail: "the log directory is in use by another process".into(),
            });
        }
        Err(fs::TryLockError::Error(e)) => {
            return Err(io(&lock_path, "locking the log directory")(e));
        }
    }
    let mut out = Vec::new();
    for p in partitions(data_dir)? {
        out.extend(repair_partition(&p)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::NewRecord;
    use crate::log::partition::{LogConfig, PartitionLog};
    use crate::log::txn::Isolation;

    fn rec(i: i64) -> NewRecord {
        NewRecord {
            timestamp: 100 + i,
            key: Some(format!("k{i}").into_bytes()),
            value: Some(format!("v{i}").into_bytes()),
            headers: Vec::new(),
        }
    }

    /// Flips the last byte of the batches that hold `offsets` of the single segment in
    /// `dir`.
    fn damage_batches(dir: &Path, offsets: &[i64]) {
        damage_batches_at(dir, offsets, |len| len - 1, 0xff);
    }

    /// Flips the bits `mask` of byte `at(batch length)` of the batches that hold `offsets`
    /// of the single segment in `dir`.
    fn damage_batches_at(dir: &Path, offsets: &[i64], at: impl Fn(usize) -> usize, mask: u8) {
        let path = dir.join(format!("{:020}.log", 0));
        let mut data = fs::read(&path).unwrap();
        let mut last_bytes = Vec::new();
        let mut pos = 0;
        while let Some((len, magic, payload)) = batch_at(&data, pos) {
            let h = batch_header(magic, payload).unwrap();
            if offsets.iter().any(|o| h.base <= *o && *o < h.next) {
                last_bytes.push(pos + at(len));
            }
            pos += len;
        }
        assert_eq!(pos, data.len());
        assert_eq!(last_bytes.len(), offsets.len());
        for p in last_bytes {
            data[p] ^= mask;
        }
        fs::write(&path, &data).unwrap();
    }

    fn open(dir: &Path) -> PartitionLog {
        PartitionLog::open(dir, LogConfig::default()).unwrap().0
    }

    fn pid(id: i64, epoch: i16) -> ProducerId {
        ProducerId { id, epoch }
    }

    /// The markers of `log` from offset `from`: (base, next, producer, commit).
    fn markers(log: &PartitionLog, from: i64) -> Vec<(i64, i64, Option<ProducerId>, Option<bool>)> {
        let (batches, _) = log
            .read_batches(from, usize::MAX, Isolation::ReadUncommitted)
            .unwrap();
        batches
            .iter()
            .filter(|b| b.marker.is_some())
            .map(|b| (b.base, b.next, b.producer, b.marker))
            .collect()
    }

    /// (first offset, aborted, left open, commits aborted) of each damage found.
    type Summary = (i64, Vec<ProducerId>, Vec<ProducerId>, Vec<i64>);

    fn summary(found: &[SegmentDamage]) -> Vec<Summary> {
        found
            .iter()
            .map(|d| {
                (
                    d.first_offset,
                    d.aborted.clone(),
                    d.left_open.clone(),
                    d.commits_aborted.clone(),
                )
            })
            .collect()
    }

    fn offsets(log: &PartitionLog, isolation: Isolation) -> Vec<i64> {
        let mut out = Vec::new();
        let mut next = 0;
        loop {
            let r = log.read_with(next, usize::MAX, isolation).unwrap();
            out.extend(r.records.iter().map(|r| r.offset));
            if r.next_offset <= next {
                return out;
            }
            next = r.next_offset;
        }
    }

    #[test]
    fn a_lost_abort_marker_is_written_again_so_no_aborted_record_turns_committed() {
        // P: data at 0, abort at 1, data at 2, commit at 3; a plain record at 4.
        let dir = tempfile::tempdir().unwrap();
        let p = pid(3, 2);
        let mut log = open(dir.path());
        assert_eq!(log.append_transactional(&[rec(0)], p).unwrap(), 0);
        assert!(log.append_marker(p, false).unwrap());
        assert_eq!(log.append_transactional(&[rec(2)], p).unwrap(), 2);
        assert!(log.append_marker(p, true).unwrap());
        assert_eq!(log.append(&[rec(4)]).unwrap(), 4);
        assert_eq!(offsets(&log, Isolation::ReadCommitted), vec![2, 4]);
        drop(log);
        damage_batches(dir.path(), &[1]);
        let found = verify_partition(dir.path()).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (
                found[0].first_offset,
                &found[0].aborted,
                &found[0].left_open
            ),
            (1, &vec![p], &Vec::new())
        );
        assert_eq!(repair_partition(dir.path()).unwrap(), found);
        let log = open(dir.path());
        assert_eq!(offsets(&log, Isolation::ReadUncommitted), vec![0, 2, 4]);
        assert_eq!(offsets(&log, Isolation::ReadCommitted), vec![2, 4]);
        // Offset 1 is an abort marker of P, at its epoch.
        assert_eq!(markers(&log, 1)[0], (1, 2, Some(p), Some(false)));
        assert!(log.open_transactions().is_empty());
    }

    #[test]
    fn lost_offsets_abort_what_they_have_room_for_and_report_the_rest() {
        // P: data at 0, never ended. Q: data at 1, abort at 2 (lost: room for one marker
        // while P and Q are open), data at 3, commit at 4. R: data at 5, a plain batch of 3
        // records at 6..9 (lost: room for the markers of P and R), commit at 9. Plain at 10.
        let dir = tempfile::tempdir().unwrap();
        let (p, q, r) = (pid(1, 0), pid(2, 5), pid(3, 1));
        let mut log = open(dir.path());
        log.append_transactional(&[rec(0)], p).unwrap();
        log.append_transactional(&[rec(1)], q).unwrap();
        log.append_marker(q, false).unwrap();
        log.append_transactional(&[rec(3)], q).unwrap();
        log.append_marker(q, true).unwrap();
        assert_eq!(log.append_transactional(&[rec(5)], r).unwrap(), 5);
        assert_eq!(log.append(&[rec(6), rec(7), rec(8)]).unwrap(), 6);
        log.append_marker(r, true).unwrap();
        assert_eq!(log.append(&[rec(10)]).unwrap(), 10);
        drop(log);
        damage_batches(dir.path(), &[2, 6]);
        let found = repair_partition(dir.path()).unwrap();
        let summary: Vec<_> = found
            .iter()
            .map(|d| {
                (
                    d.first_offset,
                    d.resumes_at,
                    d.aborted.clone(),
                    d.left_open.clone(),
                )
            })
            .collect();
        // At 2, Q's marker comes first although P's transaction is older: Q's commit at 4
        // would otherwise commit its record 1 (which the lost marker aborted). P has no
        // later marker: it stays open (the engine's transaction recovery decides it).
        assert_eq!(
            summary,
            vec![
                (2, Some(3), vec![q], vec![p]),
                (6, Some(9), vec![p, r], Vec::new())
            ]
        );
        let log = open(dir.path());
        assert!(log.open_transactions().is_empty());
        // Q's record 1 aborted and 3 committed (a new transaction); P aborted at 6, R at 7
        // (its commit at 9 then ends nothing).
        assert_eq!(offsets(&log, Isolation::ReadCommitted), vec![3, 10]);
        assert_eq!(
            offsets(&log, Isolation::ReadUncommitted),
            vec![0, 1, 3, 5, 10]
        );
        assert_eq!(
            markers(&log, 2),
            vec![
                (2, 3, Some(q), Some(false)),
                (4, 5, Some(q), Some(true)),
                (6, 7, Some(p), Some(false)),
                (7, 8, Some(r), Some(false)),
                (9, 10, Some(r), Some(true)),
            ]
        );
        assert_eq!(log.end_offset(), 11);
    }

    #[test]
    fn the_damaged_bytes_pick_which_transaction_the_one_lost_offset_aborts() {
        // P: data at 0, commit at 8. Q: data at 2, abort at 3 (its magic changed: lost, room
        // for one marker while P and Q are open, both with a commit after), data at 4,
        // commit at 6. The lost bytes still name Q: Q gets the marker, so its record 4 stays
        // committed; P's commit becomes an abort (its record 0 is lost to read_committed).
        let dir = tempfile::tempdir().unwrap();
        let (p, q) = (pid(1, 0), pid(2, 0));
        let mut log = open(dir.path());
        log.append_transactional(&[rec(0)], p).unwrap();
        log.append(&[rec(1)]).unwrap();
        log.append_transactional(&[rec(2)], q).unwrap();
        log.append_marker(q, false).unwrap();
        log.append_transactional(&[rec(4)], q).unwrap();
        log.append(&[rec(5)]).unwrap();
        log.append_marker(q, true).unwrap();
        log.append(&[rec(7)]).unwrap();
        log.append_marker(p, true).unwrap();
        assert_eq!(offsets(&log, Isolation::ReadCommitted), vec![0, 1, 4, 5, 7]);
        drop(log);
        damage_batches_at(dir.path(), &[3], |_| 0, 1);
        let found = repair_partition(dir.path()).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (
                &found[0].aborted,
                &found[0].left_open,
                &found[0].commits_aborted
            ),
            (&vec![q], &vec![p], &vec![8])
        );
        let log = open(dir.path());
        assert_eq!(offsets(&log, Isolation::ReadCommitted), vec![1, 4, 5, 7]);
    }

    #[test]
    fn a_commit_after_lost_offsets_without_room_for_its_abort_marker_becomes_an_abort() {
        // P: data at 0, commit at 5. Q: data at 1, abort at 2 (lost, its bytes name nobody:
        // the one marker goes to P, the oldest), data at 3, commit at 4. Q's commit at 4
        // would commit record 1, which its lost marker aborted: it becomes an abort.
        let dir = tempfile::tempdir().unwrap();
        let (p, q) = (pid(1, 0), pid(2, 4));
        let mut log = open(dir.path());
        log.append_transactional(&[rec(0)], p).unwrap();
        log.append_transactional(&[rec(1)], q).unwrap();
        log.append_marker(q, false).unwrap();
        log.append_transactional(&[rec(3)], q).unwrap();
        log.append_marker(q, true).unwrap();
        log.append_marker(p, true).unwrap();
        assert_eq!(log.append(&[rec(6)]).unwrap(), 6);
        assert_eq!(offsets(&log, Isolation::ReadCommitted), vec![0, 3, 6]);
        drop(log);
        let seg = dir.path().join(format!("{:020}.log", 0));
        damage_batches_at(dir.path(), &[2], |_| 16, 0xff); // its base offset
        let damaged = fs::read(&seg).unwrap();
        let found = verify_partition(dir.path()).unwrap();
        assert_eq!(summary(&found), vec![(2, vec![p], vec![q], vec![4])]);
        assert_eq!(repair_partition(dir.path()).unwrap(), found);
        assert_eq!(
            fs::read(seg.with_extension("log.damaged")).unwrap(),
            damaged
        );
        let log = open(dir.path());
        assert!(log.open_transactions().is_empty());
        // Nothing of P or Q is committed any more: P aborted at 2, Q at 4.
        assert_eq!(offsets(&log, Isolation::ReadCommitted), vec![6]);
        assert_eq!(offsets(&log, Isolation::ReadUncommitted), vec![0, 1, 3, 6]);
        assert_eq!(
            markers(&log, 0),
            vec![
                (2, 3, Some(p), Some(false)),
                (4, 5, Some(q), Some(false)),
                (5, 6, Some(p), Some(true)),
            ]
        );
    }

    #[test]
    fn a_commit_stays_when_a_later_lost_range_aborts_the_transaction_first() {
        // As above (P gets the one marker at 2, Q's is missing), but Q's transaction then
        // gets its abort marker in a later lost range (4..6): Q's commit at 7 commits only
        // its record 6, written after that, and stays a commit.
        let dir = tempfile::tempdir().unwrap();
        let (p, q) = (pid(1, 0), pid(2, 0));
        let mut log = open(dir.path());
        log.append_transactional(&[rec(0)], p).unwrap();
        log.append_transactional(&[rec(1)], q).unwrap();
        log.append_marker(q, false).unwrap();
        log.append_transactional(&[rec(3)], q).unwrap();
        assert_eq!(log.append(&[rec(4), rec(5)]).unwrap(), 4);
        log.append_transactional(&[rec(6)], q).unwrap();
        log.append_marker(q, true).unwrap();
        log.append_marker(p, true).unwrap();
        assert_eq!(log.append(&[rec(9)]).unwrap(), 9);
        drop(log);
        damage_batches_at(dir.path(), &[2, 4], |_| 16, 0xff);
        let found = repair_partition(dir.path()).unwrap();
        assert_eq!(
            summary(&found),
            vec![
                (2, vec![p], vec![q], Vec::new()),
                (4, vec![q], Vec::new(), Vec::new())
            ]
        );
        let log = open(dir.path());
        assert_eq!(offsets(&log, Isolation::ReadCommitted), vec![6, 9]);
    }
}
