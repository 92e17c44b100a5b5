//! Produce, Fetch, ListOffsets and DeleteRecords: the engine's partitions as Kafka's.
//!
//! Produce decodes each record batch with kafka-protocol's `RecordBatchDecoder` and appends
//! it to the partition as one batch: with [`LogEngine::append`](crate::LogEngine::append),
//! or [`LogEngine::append_transactional`](crate::LogEngine::append_transactional) for a
//! transactional producer's batch. Idempotent producers (a producer id on the batch) are
//! deduplicated in memory by producer id, epoch and sequence per partition, as a Kafka
//! leader does: a retried batch gets the offset of the original, a gap in the sequence is
//! OUT_OF_ORDER_SEQUENCE_NUMBER, an older epoch INVALID_PRODUCER_EPOCH. A producer the
//! server does not know (new, or the server restarted) may start at any sequence.
//!
//! Fetch encodes the engine's batches ([`LogEngine::read_batches`](crate::LogEngine::read_batches))
//! with `RecordBatchEncoder`, one Kafka batch per engine batch: a transactional batch
//! carries its producer id and epoch, a transaction marker is a control batch, so that
//! clients move past the offsets markers take. `read_committed` fetches read up to the
//! last stable offset and never get the batches of aborted transactions (the server leaves
//! them out, so the aborted-transactions list is always empty). A fetch waits up to its
//! `max_wait_ms` until `min_bytes` are there, woken by every append.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{
    BatchDecodeInfo, Compression, Record, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType,
};

use super::codes;
use super::server::State;
use crate::log::batch::decode_batch_views;
use crate::log::partition::RawBatch;
use crate::sync::lock;
use crate::{Isolation, ProducerId};

/// How long the sequence state of a producer that stopped producing is kept.
const PRODUCER_IDLE_EXPIRY: Duration = Duration::from_secs(3600);

/// An idempotent producer's sequence state in one partition.
#[derive(Debug)]
struct Sequences {
    epoch: i16,
    /// The last sequence appended.
    last: i32,
    /// The last batches appended: (first sequence, last sequence, base offset).
    recent: VecDeque<(i32, i32, i64)>,
    used: Instant,
}

/// One producer's sequence state in one partition (`None`: not seen yet).
type SequenceSlot = Arc<Mutex<Option<Sequences>>>;

/// The sequence state of idempotent producers, by (producer id, topic, partition).
#[derive(Debug, Default)]
pub(crate) struct Producers {
    map: Mutex<HashMap<(i64, String, u32), SequenceSlot>>,
    pruned: Mutex<Option<Instant>>,
}

impl Producers {
    fn entry(&self, producer: i64, topic: &str, partition: u32) -> SequenceSlot {
        lock(&self.map)
            .entry((producer, topic.to_string(), partition))
            .or_default()
            .clone()
    }

    /// Forgets the producers of a deleted topic.
    pub(crate) fn forget_topic(&self, topic: &str) {
        lock(&self.map).retain(|(_, t, _), _| t != topic);
    }

    /// Drops the state of producers idle for long (at most once a minute).
    pub(crate) fn prune(&self) {
        let now = Instant::now();
        {
            let mut pruned = lock(&self.pruned);
            if pruned.is_some_and(|p| now.duration_since(p) < Duration::from_secs(60)) {
                return;
            }
            *pruned = Some(now);
        }
        lock(&self.map).retain(|_, s| {
            lock(s)
                .as_ref()
                .is_none_or(|s| now.duration_since(s.used) < PRODUCER_IDLE_EXPIRY)
        });
    }
}

/// What the sequence check says about a batch.
#[derive(Debug, PartialEq, Eq)]
enum SeqCheck {
    Append,
    /// Appended before, at this base offset.
    Duplicate(i64),
    Refuse(ResponseError),
}

fn next_seq(s: i32) -> i32 {
    if s == i32::MAX { 0 } else { s + 1 }
}

fn check_sequence(state: &Option<Sequences>, epoch: i16, first: i32, last: i32) -> SeqCheck {
    let Some(s) = state else {
        return SeqCheck::Append;
    };
    if epoch < s.epoch {
        return SeqCheck::Refuse(ResponseError::InvalidProducerEpoch);
    }
    if epoch > s.epoch {
        return if first == 0 {
            SeqCheck::Append
        } else {
            SeqCheck::Refuse(ResponseError::OutOfOrderSequenceNumber)
        };
    }
    if let Some((_, _, offset)) = s.recent.iter().find(|(f, l, _)| *f == first && *l == last) {
        return SeqCheck::Duplicate(*offset);
    }
    if first == next_seq(s.last) {
        SeqCheck::Append
    } else {
        SeqCheck::Refuse(ResponseError::OutOfOrderSequenceNumber)
    }
}

fn record_sequence(state: &mut Option<Sequences>, epoch: i16, first: i32, last: i32, base: i64) {
    let s = state.get_or_insert_with(|| Sequences {
        epoch,
        last,
        recent: VecDeque::new(),
        used: Instant::now(),
    });
    if s.epoch != epoch {
        s.recent.clear();
        s.epoch = epoch;
    }
    s.last = last;
    s.used = Instant::now();
    s.recent.push_back((first, last, base));
    while s.recent.len() > 5 {
        s.recent.pop_front();
    }
}

/// Most records a compressed batch may announce (an uncompressed one: at most one per byte).
const MAX_COMPRESSED_RECORDS: usize = 1 << 20;

/// The batches of a produce request's partition data, with their headers.
fn decode_batches(records: &Bytes) -> Result<Vec<(BatchDecodeInfo, Vec<Record>)>, ResponseError> {
    let mut probe = records.clone();
    let infos = RecordBatchDecoder::decode_batch_info(&mut probe)
        .map_err(|_| ResponseError::CorruptMessage)?;
    if !probe.is_empty() || infos.is_empty() {
        // An old message format, or trailing garbage.
        return Err(ResponseError::CorruptMessage);
    }
    for info in &infos {
        let count =
            usize::try_from(info.record_count).map_err(|_| ResponseError::CorruptMessage)?;
        let limit = if info.compression == Compression::None {
            records.len()
        } else {
            MAX_COMPRESSED_RECORDS
        };
        if count > limit {
            return Err(ResponseError::CorruptMessage);
        }
        if info.compression == Compression::Zstd {
            return Err(ResponseError::UnsupportedCompressionType);
        }
    }
    let mut buf = records.clone();
    let mut out = Vec::with_capacity(infos.len());
    for info in infos {
        // The decoder adds offsets and timestamps unchecked: a hostile batch must not take
        // the connection's task down with an overflow.
        let set = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            RecordBatchDecoder::decode(&mut buf)
        }))
        .map_err(|_| ResponseError::CorruptMessage)?
        .map_err(|_| ResponseError::CorruptMessage)?;
        if set.records.len() != info.record_count as usize {
            return Err(ResponseError::CorruptMessage);
        }
        out.push((info, set.records));
    }
    Ok(out)
}

// A produced record is appended as it was decoded: its key and value stay slices of the
// request frame until the batch is encoded.
crate::log::batch::append_record_from_fields!(Record);

/// Produce: appends each partition's batches (see the module docs). The caller sends no
/// response for acks=0.
pub(crate) fn produce(state: &State, req: ProduceRequest) -> ProduceResponse {
    let transactional_id = req.transactional_id.as_ref().map(|t| t.0.as_str());
    let mut appended = false;
    let responses = req
        .topic_data
        .iter()
        .map(|t| {
            let topic = t.name.0.as_str();
            TopicProduceResponse::default()
                .with_name(t.name.clone())
                .with_partition_responses(
                    t.partition_data
                        .iter()
                        .map(|p| {
                            let r = PartitionProduceResponse::default()
                                .with_index(p.index)
                                .with_log_append_time_ms(-1);
                            match produce_partition(
                                state,
                                transactional_id,
                                topic,
                                p.index,
                                p.records.as_ref(),
                            ) {
                                Ok((base, start)) => {
                                    appended = true;
                                    r.with_base_offset(base).with_log_start_offset(start)
                                }
                                Err(code) => r
                                    .with_error_code(code)
                                    .with_base_offset(-1)
                                    .with_log_start_offset(-1),
                            }
                        })
                        .collect(),
                )
        })
        .collect();
    if appended {
        state.wake_fetches();
    }
    ProduceResponse::default().with_responses(responses)
}

/// Appends one partition's batches: (base offset of the first, log start offset).
fn produce_partition(
    state: &State,
    transactional_id: Option<&str>,
    topic: &str,
    partition: i32,
    records: Option<&Bytes>,
) -> Result<(i64, i64), i16> {
    let unknown = || codes::code(ResponseError::UnknownTopicOrPartition);
    let partition = u32::try_from(partition).map_err(|_| unknown())?;
    match state.engine.topic_config(topic) {
        Some(c) if partition < c.partitions => {}
        _ => return Err(unknown()),
    }
    let records = records.ok_or(codes::code(ResponseError::CorruptMessage))?;
    let batches = decode_batches(records).map_err(codes::code)?;
    let mut first_base = None;
    for (info, records) in batches {
        if info.control {
            return Err(codes::code(ResponseError::InvalidRecord));
        }
        let producer = ProducerId {
            id: info.producer_id,
            epoch: info.producer_epoch,
        };
        let append = || -> Result<i64, i16> {
            let result = if info.transactional {
                let Some(id) = transactional_id else {
                    return Err(codes::code(ResponseError::InvalidTxnState));
                };
                let r = state
                    .engine
                    .append_transactional(id, producer, topic, partition, &records);
                if r.is_ok() {
                    state.txns.started(id);
                }
                r
            } else {
                state.engine.append(topic, partition, &records)
            };
            result.map_err(|e| codes::of(&e, ResponseError::InvalidProducerEpoch))
        };
        let base = if info.producer_id >= 0 && info.base_sequence >= 0 {
            let first = info.base_sequence;
            let last = first.wrapping_add(info.record_count.saturating_sub(1)) & i32::MAX;
            let entry = state.producers.entry(info.producer_id, topic, partition);
            let mut seq = lock(&entry);
            match check_sequence(&seq, info.producer_epoch, first, last) {
                SeqCheck::Duplicate(base) => base,
                SeqCheck::Refuse(e) => return Err(e.code()),
                SeqCheck::Append => {
                    let base = append()?;
                    record_sequence(&mut seq, info.producer_epoch, first, last, base);
                    base
                }
            }
        } else {
            append()?
        };
        first_base.get_or_insert(base);
    }
    let start = state
        .engine
        .offsets(topic, partition)
        .map_or(-1, |(start, _)| start);
    Ok((first_base.unwrap_or(-1), start))
}

/// The control record key of a transaction marker: version 0, type 0 (abort) or 1 (commit).
fn marker_key(commit: bool) -> Bytes {
    let mut key = BytesMut::with_capacity(4);
    key.put_i16(0);
    key.put_i16(i16::from(commit));
    key.freeze()
}

/// The control record value of a transaction marker: version 0 and an `EndTxnMarker`.
fn marker_value() -> Result<Bytes, String> {
    let mut value = BytesMut::with_capacity(6);
    value.put_i16(0);
    EndTxnMarker::default()
        .encode(&mut value, 0)
        .map_err(|e| e.to_string())?;
    Ok(value.freeze())
}

/// Encodes the engine's batches as Kafka record batches, one each. The records' buffers
/// move into the encoder's records (no copy before the encoding itself).
pub(crate) fn encode_batches(batches: Vec<RawBatch>, from: i64) -> Result<Bytes, String> {
    // About what the batches take on the wire (a batch header, and the records as the
    // engine stores them), so that the buffer is rarely grown (and copied) while encoding.
    let size: usize = batches
        .iter()
        .map(|b| 64 + b.payload.as_ref().map_or(0, |(_, p)| p.len()))
        .sum();
    let mut buf = BytesMut::with_capacity(size);
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    for RawBatch { batch: b, payload } in batches {
        let (producer_id, producer_epoch) = b.producer.map_or((-1, -1), |p| (p.id, p.epoch));
        let (base, transactional, marker) = (b.base, b.transactional, b.marker);
        let no_producer = i32::from(b.producer.is_none());
        let record = |offset: i64| Record {
            transactional,
            control: marker.is_some(),
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset,
            // Sequences that keep the batch's records in one Kafka batch; the base sequence is
            // -1 for a batch without producer, as Kafka writes it.
            sequence: ((offset - base) as i32).wrapping_sub(no_producer),
            timestamp: -1,
            key: None,
            value: None,
            headers: IndexMap::new(),
        };
        let records: Vec<Record> = match (marker, payload) {
            (Some(commit), _) => vec![Record {
                key: Some(marker_key(commit)),
                value: Some(marker_value()?),
                ..record(base)
            }],
            (None, None) => Vec::new(),
            (None, Some((magic, payload))) => {
                // Keys and values become slices of the payload: no copy per record.
                let payload = Bytes::from(payload);
                let mut records = Vec::new();
                let decoded = decode_batch_views(magic, &payload, |r, _| {
                    if r.offset < from {
                        return;
                    }
                    records.push(Record {
                        timestamp: r.timestamp,
                        key: r.key.map(|k| payload.slice_ref(k)),
                        value: r.value.map(|v| payload.slice_ref(v)),
                        headers: r
                            .headers
                            .iter()
                            .map(|(k, v)| {
                                (
                                    StrBytes::from_string(String::from_utf8_lossy(k).into_owned()),
                                    v.map(|v| payload.slice_ref(v)),
                                )
                            })
                            .collect(),
                        ..record(r.offset)
                    });
                });
                decoded.ok_or("a stored batch does not decode")?;
                records
            }
        };
        if records.is_empty() {
            continue;
        }
        RecordBatchEncoder::encode(&mut buf, &records, &options).map_err(|e| e.to_string())?;
    }
    Ok(buf.freeze())
}

/// Fetch: waits up to `max_wait_ms` for `min_bytes` (see the module docs).
pub(crate) async fn fetch(state: &Arc<State>, req: FetchRequest, version: i16) -> FetchResponse {
    let wait = Duration::from_millis(u64::try_from(req.max_wait_ms.clamp(0, 60_000)).unwrap_or(0));
    let deadline = tokio::time::Instant::now() + wait;
    let min_bytes = usize::try_from(req.min_bytes).unwrap_or(0);
    loop {
        let notified = state.appended.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (response, bytes, done) = fetch_once(state, &req, version);
        let now = tokio::time::Instant::now();
        if done || bytes >= min_bytes || now >= deadline {
            return response;
        }
        // Woken by appends through the server; appends made to the engine directly are
        // seen within 100 ms.
        let nap = deadline
            .saturating_duration_since(now)
            .min(Duration::from_millis(100));
        let _ = tokio::time::timeout(nap, notified).await;
    }
}

/// One pass over the fetched partitions: (response, record bytes, whether to answer now
/// because of an error).
fn fetch_once(state: &State, req: &FetchRequest, version: i16) -> (FetchResponse, usize, bool) {
    let isolation = if req.isolation_level == 1 {
        Isolation::ReadCommitted
    } else {
        Isolation::ReadUncommitted
    };
    let mut remaining = if req.max_bytes > 0 {
        req.max_bytes as usize
    } else {
        usize::MAX
    };
    let mut total = 0usize;
    let mut done = false;
    let responses = req
        .topics
        .iter()
        .map(|t| {
            let topic = t.topic.0.as_str();
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let out = PartitionData::default()
                        .with_partition_index(p.partition)
                        .with_high_watermark(-1);
                    let error = |e: ResponseError| out.clone().with_error_code(e.code());
                    let Ok(partition) = u32::try_from(p.partition) else {
                        done = true;
                        return error(ResponseError::UnknownTopicOrPartition);
                    };
                    let (start, end) = match state.engine.offsets(topic, partition) {
                        Ok(o) => o,
                        Err(e) => {
                            done = true;
                            return out.clone().with_error_code(fail(e));
                        }
                    };
                    let lso = state
                        .engine
                        .last_stable_offset(topic, partition)
                        .unwrap_or(end);
                    let out = out
                        .with_high_watermark(end)
                        .with_last_stable_offset(lso)
                        .with_log_start_offset(start)
                        .with_aborted_transactions(
                            (isolation == Isolation::ReadCommitted).then(Vec::new),
                        );
                    if p.fetch_offset < start || p.fetch_offset > end {
                        done = true;
                        return out.with_error_code(ResponseError::OffsetOutOfRange.code());
                    }
                    if remaining == 0 {
                        return out;
                    }
                    let limit = usize::try_from(p.partition_max_bytes)
                        .unwrap_or(0)
                        .min(remaining)
                        .max(1);
                    let read = state
                        .engine
                        .read_raw_batches(topic, partition, p.fetch_offset, limit, isolation)
                        .map_err(fail)
                        .and_then(|(batches, _)| {
                            encode_batches(batches, p.fetch_offset).map_err(|e| {
                                // A stored batch that does not decode: damage on disk.
                                tracing::error!("cannot encode fetched batches: {e}");
                                ResponseError::KafkaStorageError.code()
                            })
                        });
                    match read {
                        Ok(bytes) => {
                            total += bytes.len();
                            remaining = remaining.saturating_sub(bytes.len());
                            out.with_records(Some(bytes))
                        }
                        Err(code) => {
                            done = true;
                            out.with_error_code(code)
                        }
                    }
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    let _ = version;
    (
        FetchResponse::default().with_responses(responses),
        total,
        done,
    )
}

/// ListOffsets: the latest offset (-1: the high watermark, or the last stable offset for
/// `read_committed`), the earliest (-2: the log start offset), or the first offset whose
/// record's timestamp is at or after a time.
pub(crate) fn list_offsets(state: &State, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let topic = t.name.0.as_str();
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let out = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1);
                    match list_offset(
                        state,
                        topic,
                        p.partition_index,
                        p.timestamp,
                        req.isolation_level,
                    ) {
                        Ok((offset, timestamp)) => {
                            out.with_offset(offset).with_timestamp(timestamp)
                        }
                        Err(code) => out.with_error_code(code),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// A request's partition index as the engine's, or UNKNOWN_TOPIC_OR_PARTITION.
fn partition_of(index: i32) -> Result<u32, i16> {
    u32::try_from(index).map_err(|_| ResponseError::UnknownTopicOrPartition.code())
}

/// The code of an engine error where no other applies: UNKNOWN_SERVER_ERROR.
fn fail(e: crate::StateError) -> i16 {
    codes::of(&e, ResponseError::UnknownServerError)
}

/// (offset, timestamp) for one ListOffsets partition.
fn list_offset(
    state: &State,
    topic: &str,
    partition: i32,
    timestamp: i64,
    isolation_level: i8,
) -> Result<(i64, i64), i16> {
    let partition = partition_of(partition)?;
    let engine = &state.engine;
    let (start, end) = engine.offsets(topic, partition).map_err(fail)?;
    match timestamp {
        -1 if isolation_level == 1 => Ok((
            engine.last_stable_offset(topic, partition).map_err(fail)?,
            -1,
        )),
        -1 => Ok((end, -1)),
        -2 => Ok((start, -1)),
        t if t >= 0 => match engine.offset_for_time(topic, partition, t).map_err(fail)? {
            Some(offset) => {
                let found = engine
                    .read(topic, partition, offset, 1)
                    .map_err(fail)?
                    .into_iter()
                    .find(|r| r.offset == offset)
                    .map_or(-1, |r| r.timestamp);
                Ok((offset, found))
            }
            None => Ok((-1, -1)),
        },
        _ => Err(ResponseError::UnsupportedVersion.code()),
    }
}

/// Deletes the records below `offset` (-1: the high watermark) of one DeleteRecords
/// partition: its new low watermark.
fn delete_below(state: &State, topic: &str, partition: i32, offset: i64) -> Result<i64, i16> {
    let partition = partition_of(partition)?;
    let (_, end) = state.engine.offsets(topic, partition).map_err(fail)?;
    let offset = if offset == -1 { end } else { offset };
    if offset < 0 || offset > end {
        return Err(ResponseError::OffsetOutOfRange.code());
    }
    state
        .engine
        .delete_records(topic, partition, offset)
        .map_err(fail)?;
    Ok(state.engine.offsets(topic, partition).map_err(fail)?.0)
}

/// DeleteRecords: makes every offset below the given one unreadable (-1: the high
/// watermark).
pub(crate) fn delete_records(state: &State, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let topic = t.name.0.as_str();
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let out = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    match delete_below(state, topic, p.partition_index, p.offset) {
                        Ok(low) => out.with_low_watermark(low),
                        Err(code) => out.with_error_code(code),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(epoch: i16, last: i32, recent: &[(i32, i32, i64)]) -> Option<Sequences> {
        Some(Sequences {
            epoch,
            last,
            recent: recent.iter().copied().collect(),
            used: Instant::now(),
        })
    }

    #[test]
    fn sequence_checks_follow_a_kafka_leader() {
        // Unknown producer: any sequence.
        assert_eq!(check_sequence(&None, 0, 42, 50), SeqCheck::Append);
        let s = seq(3, 9, &[(0, 4, 100), (5, 9, 105)]);
        assert_eq!(check_sequence(&s, 3, 10, 12), SeqCheck::Append);
        assert_eq!(check_sequence(&s, 3, 5, 9), SeqCheck::Duplicate(105));
        assert_eq!(
            check_sequence(&s, 3, 11, 12),
            SeqCheck::Refuse(ResponseError::OutOfOrderSequenceNumber)
        );
        assert_eq!(
            check_sequence(&s, 2, 10, 12),
            SeqCheck::Refuse(ResponseError::InvalidProducerEpoch)
        );
        assert_eq!(check_sequence(&s, 4, 0, 3), SeqCheck::Append);
        assert_eq!(
            check_sequence(&s, 4, 10, 12),
            SeqCheck::Refuse(ResponseError::OutOfOrderSequenceNumber)
        );
        // Sequences wrap after i32::MAX.
        let s = seq(0, i32::MAX, &[]);
        assert_eq!(check_sequence(&s, 0, 0, 0), SeqCheck::Append);
    }
}
