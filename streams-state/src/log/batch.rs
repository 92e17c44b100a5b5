//! The record batch codec of the embedded log: how batches are laid out in a segment file,
//! framed, CRC-checked, encoded and decoded.
//!
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

use super::txn::ProducerId;

pub(super) const MAGIC_V1: u8 = 1;
pub(super) const MAGIC_V2: u8 = 2;
pub(super) const MAGIC_V3: u8 = 3;
/// Magic 3 attributes.
pub(super) const ATTR_TRANSACTIONAL: u8 = 1;
pub(super) const ATTR_CONTROL: u8 = 2;
pub(super) const ATTR_COMMIT: u8 = 4;
/// Every attribute bit a magic 3 batch may have set.
pub(super) const ATTR_KNOWN: u8 = ATTR_TRANSACTIONAL | ATTR_CONTROL | ATTR_COMMIT;
/// Bytes before the payload: magic, crc, payload length.
pub(super) const HEADER: usize = 1 + 4 + 4;
/// Fixed part of a magic 1 payload: base offset, record count, max timestamp.
pub(super) const PAYLOAD_FIXED: usize = 8 + 4 + 8;
/// Fixed part of a magic 2 payload: the magic 1 part and the next offset.
pub(super) const PAYLOAD_FIXED_V2: usize = PAYLOAD_FIXED + 8;
/// Fixed part of a magic 3 payload: the magic 1 part, producer id, epoch, attributes.
pub(super) const PAYLOAD_FIXED_V3: usize = PAYLOAD_FIXED + 8 + 2 + 1;

/// The fixed payload size of a batch of `magic`.
pub(super) fn fixed_len(magic: u8) -> usize {
    match magic {
        MAGIC_V1 => PAYLOAD_FIXED,
        MAGIC_V2 => PAYLOAD_FIXED_V2,
        _ => PAYLOAD_FIXED_V3,
    }
}
/// The timestamp of "no record" (smaller than any real one).
pub(super) const NO_TIMESTAMP: i64 = i64::MIN;

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

/// A record the log can append: [`NewRecord`], or another type's record read in place,
/// so that a batch decoded elsewhere (the Kafka-protocol server's produce requests) is
/// encoded without copying each key and value into a [`NewRecord`] first.
pub trait AppendRecord {
    /// Timestamp (ms since the epoch).
    fn timestamp(&self) -> i64;
    /// Key bytes; `None` is null.
    fn key(&self) -> Option<&[u8]>;
    /// Value bytes; `None` is null (a tombstone).
    fn value(&self) -> Option<&[u8]>;
    /// Headers: key and possibly-null value, in order.
    fn headers(&self) -> impl ExactSizeIterator<Item = (&str, Option<&[u8]>)>;
}

/// Implements [`AppendRecord`] for a record type with `timestamp`, `key`, `value` and
/// `headers` fields (optional byte buffers, and key and optional value pairs).
macro_rules! append_record_from_fields {
    ($t:ty) => {
        impl $crate::log::batch::AppendRecord for $t {
            fn timestamp(&self) -> i64 {
                self.timestamp
            }
            fn key(&self) -> Option<&[u8]> {
                self.key.as_deref()
            }
            fn value(&self) -> Option<&[u8]> {
                self.value.as_deref()
            }
            fn headers(&self) -> impl ExactSizeIterator<Item = (&str, Option<&[u8]>)> {
                self.headers.iter().map(|(k, v)| (k.as_str(), v.as_deref()))
            }
        }
    };
}
#[cfg_attr(not(feature = "serve"), allow(unused_imports))]
pub(crate) use append_record_from_fields;

append_record_from_fields!(NewRecord);
append_record_from_fields!(LogRecord);

pub(super) fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            out.extend_from_slice(&(b.len() as i32).to_be_bytes());
            out.extend_from_slice(b);
        }
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
    }
}

/// The magic 1 record body shared by both formats.
pub(super) fn put_record(out: &mut Vec<u8>, r: &impl AppendRecord) {
    out.extend_from_slice(&r.timestamp().to_be_bytes());
    put_bytes(out, r.key());
    put_bytes(out, r.value());
    let headers = r.headers();
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
pub(super) fn frame(magic: u8, payload: &[u8]) -> Vec<u8> {
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
pub(super) fn encode_batch<R: AppendRecord>(
    base: i64,
    records: &[R],
    producer: Option<(ProducerId, u8)>,
) -> Vec<u8> {
    let size: usize = records
        .iter()
        .map(|r| {
            24 + r.key().map_or(0, <[u8]>::len)
                + r.value().map_or(0, <[u8]>::len)
                + r.headers().len() * 16
        })
        .sum();
    let mut payload = Vec::with_capacity(PAYLOAD_FIXED_V3 + size);
    let max_ts = max_timestamp(records);
    payload.extend_from_slice(&base.to_be_bytes());
    payload.extend_from_slice(&(records.len() as u32).to_be_bytes());
    payload.extend_from_slice(&max_ts.to_be_bytes());
    if let Some((p, attributes)) = producer {
        payload.extend_from_slice(&p.id.to_be_bytes());
        payload.extend_from_slice(&p.epoch.to_be_bytes());
        payload.push(attributes);
    }
    for r in records {
        put_record(&mut payload, r);
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

/// The largest timestamp of `records` (-1 for none).
pub(super) fn max_timestamp<R: AppendRecord>(records: &[R]) -> i64 {
    records.iter().map(R::timestamp).max().unwrap_or(-1)
}

/// A record kept by compaction, with its tombstone delete horizon (-1: not a tombstone).
pub(super) type Kept = (LogRecord, i64);

/// Encodes compacted records as one magic 2 batch covering `base..next`.
pub(super) fn encode_compacted_batch(base: i64, next: i64, records: &[Kept]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(PAYLOAD_FIXED_V2 + records.len() * 64);
    let max_ts = records.iter().map(|(r, _)| r.timestamp).max().unwrap_or(-1);
    payload.extend_from_slice(&base.to_be_bytes());
    payload.extend_from_slice(&(records.len() as u32).to_be_bytes());
    payload.extend_from_slice(&max_ts.to_be_bytes());
    payload.extend_from_slice(&next.to_be_bytes());
    for (r, horizon) in records {
        payload.extend_from_slice(&r.offset.to_be_bytes());
        put_record(&mut payload, r);
        if r.value.is_none() {
            payload.extend_from_slice(&horizon.to_be_bytes());
        }
    }
    frame(MAGIC_V2, &payload)
}

/// A cursor over a batch's payload.
pub(super) struct Cursor<'a> {
    pub(super) b: &'a [u8],
    pub(super) pos: usize,
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
}

/// A batch's fixed fields.
#[derive(Debug, Clone, Copy)]
pub(super) struct BatchHeader {
    pub(super) base: i64,
    pub(super) count: u32,
    pub(super) max_timestamp: i64,
    /// The offset after the range the batch covers.
    pub(super) next: i64,
    /// Magic 3: the producer and the attributes.
    pub(super) producer: Option<(ProducerId, u8)>,
}

impl BatchHeader {
    /// A marker: never returned to readers.
    pub(super) fn is_control(&self) -> bool {
        self.producer.is_some_and(|(_, a)| a & ATTR_CONTROL != 0)
    }
}

pub(super) fn batch_header(magic: u8, payload: &[u8]) -> Option<BatchHeader> {
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

/// A record of a batch payload, read in place: its key, value and headers are slices of
/// the payload.
#[cfg_attr(not(feature = "serve"), allow(dead_code))]
#[derive(Debug)]
pub(crate) struct RecordView<'a> {
    pub(crate) offset: i64,
    pub(crate) timestamp: i64,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
    /// Header keys (UTF-8 as written; see [`LogRecord`]) and values.
    pub(crate) headers: Vec<(&'a [u8], Option<&'a [u8]>)>,
}

impl<'a> Cursor<'a> {
    fn slice(&mut self) -> Option<Option<&'a [u8]>> {
        let n = self.i32()?;
        if n < 0 {
            return Some(None);
        }
        Some(Some(self.take(n as usize)?))
    }
}

/// Walks a batch payload's records: `header` collects each header of a record into its
/// `H`, then `f` gets the record's offset, timestamp, key, value, headers and delete horizon
/// (-1 for none: not a tombstone, or not compacted yet). Generic so that the owned and the
/// in-place decoders each compile to a loop of their own (a shared in-place pass followed
/// by a conversion cost the engine's reads about a fifth).
#[inline]
fn decode_records<'a, H: Default>(
    magic: u8,
    payload: &'a [u8],
    mut header: impl FnMut(&mut H, &'a [u8], Option<&'a [u8]>),
    mut f: impl FnMut(i64, i64, Option<&'a [u8]>, Option<&'a [u8]>, H, i64),
) -> Option<()> {
    let batch = batch_header(magic, payload)?;
    let mut c = Cursor {
        b: payload,
        pos: fixed_len(magic),
    };
    for i in 0..batch.count {
        let offset = if magic == MAGIC_V2 {
            c.i64()?
        } else {
            batch.base + i64::from(i)
        };
        let timestamp = c.i64()?;
        let key = c.slice()?;
        let value = c.slice()?;
        let mut headers = H::default();
        for _ in 0..c.u32()? {
            let kl = c.u16()? as usize;
            let k = c.take(kl)?;
            header(&mut headers, k, c.slice()?);
        }
        let horizon = if magic == MAGIC_V2 && value.is_none() {
            c.i64()?
        } else {
            -1
        };
        f(offset, timestamp, key, value, headers, horizon);
    }
    Some(())
}

/// Decodes a batch payload, calling `f` with each record and its delete horizon (-1 for
/// none: not a tombstone, or not compacted yet).
pub(super) fn decode_batch(
    magic: u8,
    payload: &[u8],
    mut f: impl FnMut(LogRecord, i64),
) -> Option<()> {
    decode_records(
        magic,
        payload,
        |h: &mut Vec<(String, Option<Vec<u8>>)>, k, v| {
            h.push((
                String::from_utf8_lossy(k).into_owned(),
                v.map(<[u8]>::to_vec),
            ));
        },
        |offset, timestamp, key, value, headers, horizon| {
            f(
                LogRecord {
                    offset,
                    timestamp,
                    key: key.map(<[u8]>::to_vec),
                    value: value.map(<[u8]>::to_vec),
                    headers,
                },
                horizon,
            );
        },
    )
}

/// Decodes a batch payload in place, calling `f` with each record and its delete horizon.
#[cfg_attr(not(feature = "serve"), allow(dead_code))]
pub(crate) fn decode_batch_views<'a>(
    magic: u8,
    payload: &'a [u8],
    mut f: impl FnMut(RecordView<'a>, i64),
) -> Option<()> {
    decode_records(
        magic,
        payload,
        |h: &mut Vec<(&'a [u8], Option<&'a [u8]>)>, k, v| h.push((k, v)),
        |offset, timestamp, key, value, headers, horizon| {
            f(
                RecordView {
                    offset,
                    timestamp,
                    key,
                    value,
                    headers,
                },
                horizon,
            );
        },
    )
}

/// Reads the batch at `pos` of `data`: (total length, magic, payload) if whole and
/// CRC-valid. The CRC covers the magic, the length and the payload; a magic 1 or 2 batch
/// whose CRC covers only the length and the payload (written by earlier versions) is
/// valid too.
pub(super) fn batch_at(data: &[u8], pos: usize) -> Option<(usize, u8, &[u8])> {
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
pub(super) fn next_intact_batch(
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
pub(super) fn batch_reaching(data: &[u8], offset: i64) -> Option<usize> {
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
pub(super) fn encode_abort_marker(offset: i64, producer: ProducerId, timestamp: i64) -> Vec<u8> {
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
pub(super) fn announced_len(data: &[u8], pos: usize) -> Option<usize> {
    let h = data.get(pos..pos + HEADER)?;
    Some(HEADER + u32::from_be_bytes(h[5..9].try_into().ok()?) as usize)
}
