//! Finding and repairing damaged segments of the embedded log engine, without opening it
//! (opening refuses damage other than a torn tail: see [`crate::log`]).
//!
//! [`verify_log_dir`] lists every damaged byte range of every segment. [`repair_log_dir`]
//! copies each damaged segment aside (`<file>.damaged`, or `.damaged-N`) and rewrites it with
//! every intact batch; the offsets the damage held are covered by an empty batch, so no
//! offset is ever reused and readers continue past the gap.

use std::fs;
use std::path::{Path, PathBuf};

use crate::StateError;
use crate::log::{batch_at, batch_header, encode_compacted_batch, next_intact_batch};

/// A damaged byte range of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentDamage {
    /// The segment file.
    pub file: PathBuf,
    /// The first damaged byte.
    pub from: u64,
    /// The byte where the next intact batch starts, or the file's length.
    pub to: u64,
    /// The first offset the damage held.
    pub first_offset: i64,
    /// The base offset of the next intact batch in the segment, if there is one.
    pub resumes_at: Option<i64>,
    /// The damage is the tail of the partition's last segment with nothing intact after it:
    /// a write a crash interrupted, which opening the engine truncates by itself.
    pub torn_tail: bool,
}

fn io<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(std::io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        store: path.display().to_string(),
        action,
        source,
    }
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

/// The damaged ranges of one segment's bytes, and the intact batches as byte ranges with
/// the offsets they cover.
struct Scan {
    damage: Vec<SegmentDamage>,
    /// Intact batches: (from byte, to byte), in order, and the offset after each.
    kept: Vec<(usize, usize, i64)>,
}

fn scan(file: &Path, data: &[u8], base: i64, last: bool) -> Scan {
    let mut out = Scan {
        damage: Vec::new(),
        kept: Vec::new(),
    };
    let mut pos = 0usize;
    let mut expected = base;
    loop {
        while let Some((len, magic, payload)) = batch_at(data, pos) {
            match batch_header(magic, payload) {
                Some(h) if h.base == expected => {
                    out.kept.push((pos, pos + len, h.next));
                    expected = h.next;
                    pos += len;
                }
                _ => break,
            }
        }
        if pos >= data.len() {
            return out;
        }
        let intact = next_intact_batch(data, pos, expected);
        out.damage.push(SegmentDamage {
            file: file.to_path_buf(),
            from: pos as u64,
            to: intact.map_or(data.len(), |(p, _)| p) as u64,
            first_offset: expected,
            resumes_at: intact.map(|(_, b)| b),
            torn_tail: last && intact.is_none(),
        });
        match intact {
            Some((p, b)) => {
                // The lost offsets are accounted for by the caller (an empty batch).
                out.kept.push((p, p, b));
                pos = p;
                expected = b;
            }
            None => return out,
        }
    }
}

/// Every damaged range of the partition in `dir`.
pub fn verify_partition(dir: &Path) -> Result<Vec<SegmentDamage>, StateError> {
    let segs = segments(dir)?;
    let mut damage = Vec::new();
    for (i, (base, path)) in segs.iter().enumerate() {
        let data = fs::read(path).map_err(io(path, "reading a segment"))?;
        damage.extend(scan(path, &data, *base, i + 1 == segs.len()).damage);
    }
    Ok(damage)
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

/// Repairs the partition in `dir`: each damaged segment is copied aside and rewritten with
/// its intact batches, an empty batch covering the offsets each damage held (up to the next
/// intact batch, or to the next segment's base). A torn tail of the last segment is cut.
/// Returns the damage repaired.
pub fn repair_partition(dir: &Path) -> Result<Vec<SegmentDamage>, StateError> {
    let segs = segments(dir)?;
    let mut repaired = Vec::new();
    for (i, (base, path)) in segs.iter().enumerate() {
        let data = fs::read(path).map_err(io(path, "reading a segment"))?;
        let last = i + 1 == segs.len();
        let s = scan(path, &data, *base, last);
        if s.damage.is_empty() {
            continue;
        }
        fs::copy(path, aside(path)).map_err(io(path, "copying a damaged segment aside"))?;
        let mut out = Vec::with_capacity(data.len());
        let mut expected = *base;
        for &(from, to, next) in &s.kept {
            if from == to {
                // Where intact batches resume after damage: the lost offsets stay taken.
                out.extend_from_slice(&encode_compacted_batch(expected, next, &[]));
            } else {
                out.extend_from_slice(&data[from..to]);
            }
            expected = next;
        }
        if let Some((next_base, _)) = segs.get(i + 1)
            && expected < *next_base
        {
            out.extend_from_slice(&encode_compacted_batch(expected, *next_base, &[]));
        }
        let tmp = path.with_extension("repair");
        fs::write(&tmp, &out).map_err(io(&tmp, "writing a repaired segment"))?;
        fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io(&tmp, "syncing a repaired segment"))?;
        fs::rename(&tmp, path).map_err(io(path, "installing a repaired segment"))?;
        for ext in ["index", "timeindex"] {
            let _ = fs::remove_file(path.with_extension(ext));
        }
        tracing::warn!(file = %path.display(), ranges = s.damage.len(), "segment repaired; the damaged file was copied aside");
        repaired.extend(s.damage);
    }
    Ok(repaired)
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
