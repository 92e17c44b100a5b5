//! A segment of a partition: one `.log` file of record batches with its sparse offset and
//! time indexes, and the scans that validate it.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
#[cfg(not(unix))]
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::batch::*;
use super::files::{corrupt, io};
use super::txn_index::TxnIndex;
use crate::error::StateError;

/// An index entry every this many bytes of log.
/// What opening a partition found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecoveryReport {
    /// Bytes of a torn or corrupt tail cut from the last segment.
    pub truncated_bytes: u64,
    /// Whole batches that were valid.
    pub valid_batches: u64,
}

pub(super) const INDEX_INTERVAL: u64 = 4096;
/// Bytes read from a segment at a time (more when one batch is larger).
pub(super) const READ_CHUNK: usize = 1 << 20;

thread_local! {
    /// The buffer segment reads go through, kept per thread between reads.
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}
pub(super) struct Segment {
    pub(super) base: i64,
    pub(super) log_path: PathBuf,
    pub(super) index_path: PathBuf,
    pub(super) time_index_path: PathBuf,
    /// The open file: kept for the active segment only, so that a partition of many
    /// segments holds one descriptor (closed segments open their file for each read).
    pub(super) file: Option<File>,
    pub(super) size: u64,
    /// Sparse (relative offset, position), ascending.
    pub(super) index: Vec<(u32, u64)>,
    /// Sparse (largest timestamp of the batches before the position, position), at the same
    /// positions as `index`; the timestamps never decrease.
    pub(super) time_index: Vec<(i64, u64)>,
    pub(super) last_indexed: u64,
    /// The next offset after this segment's last record.
    pub(super) next_offset: i64,
    /// The largest timestamp in the segment ([`NO_TIMESTAMP`] if empty).
    pub(super) max_timestamp: i64,
    /// The first batch's largest timestamp: `segment_ms` rolls count from it.
    pub(super) first_timestamp: Option<i64>,
}

/// Writes a whole batch; with `fail_after` (tests), writes only that many bytes and then
/// fails as a full disk does.
pub(super) fn write_batch(
    file: &mut File,
    batch: &[u8],
    fail_after: Option<usize>,
) -> std::io::Result<()> {
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

pub(super) fn segment_file(dir: &Path, base: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

/// Syncs a directory so that renames and deletions in it are durable (best effort: not
/// every platform can open a directory).
pub(super) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

impl Segment {
    pub(super) fn create(dir: &Path, base: i64) -> Result<Self, StateError> {
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
    /// [`super::repair`]). `next_base`: the base of the segment after it, if any.
    pub(super) fn open(
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
    pub(super) fn writable(&mut self) -> std::io::Result<&mut File> {
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
    pub(super) fn note_batch(&mut self, pos: u64, len: u64, h: BatchHeader) {
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

    pub(super) fn write_index(&self) -> Result<(), StateError> {
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
    pub(super) fn position_for(&self, offset: i64) -> u64 {
        let rel = (offset - self.base).clamp(0, i64::from(u32::MAX)) as u32;
        match self.index.partition_point(|(r, _)| *r <= rel) {
            0 => 0,
            i => self.index[i - 1].1,
        }
    }

    /// The file position to start scanning for the first record at or after `timestamp`:
    /// every batch before it is older.
    pub(super) fn position_for_time(&self, timestamp: i64) -> u64 {
        match self.time_index.partition_point(|(t, _)| *t < timestamp) {
            0 => 0,
            i => self.time_index[i - 1].1,
        }
    }

    /// Calls `f` with each batch from file position `from` on, reading in chunks, until it
    /// returns `false` or the segment ends.
    pub(super) fn scan(
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

/// The bases of the files in `dir` named `<base><suffix>`.
pub(super) fn list_files(dir: &Path, suffix: &str) -> Result<Vec<i64>, StateError> {
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
pub(super) fn recover_compaction(dir: &Path) -> Result<(), StateError> {
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
