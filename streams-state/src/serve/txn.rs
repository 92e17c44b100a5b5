//! Producer ids and transactions: InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn,
//! TxnOffsetCommit, EndTxn, on the engine's coordinator
//! ([`LogEngine::init_producer_id`](crate::LogEngine::init_producer_id) and the rest).
//!
//! A transactional id's producer id and epoch are the engine's (durable); registering the
//! id again fences the previous producer and aborts its open transaction. Idempotent
//! producers (no transactional id) get ids from a range of their own, above any the engine
//! hands out, starting from the server's start time so that a restarted server does not
//! reuse them. A transaction open for longer than its producer's `transaction.timeout.ms`
//! is aborted by the server, which registers the id again: the producer is fenced, as
//! Kafka's coordinator fences it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;

use super::codes;
use super::server::State;
use crate::sync::lock;
use crate::{LogError, ProducerId, StateError};

/// Kafka's `transaction.max.timeout.ms`: the longest transaction timeout a producer may ask
/// for.
const MAX_TRANSACTION_TIMEOUT_MS: i32 = 15 * 60 * 1000;

/// What the server keeps per transactional id.
#[derive(Debug)]
struct Txn {
    timeout: Duration,
    /// When the open transaction began (its first partition, offsets or record).
    started: Option<Instant>,
    /// The producer a timeout fenced: it may register the id again with its old epoch.
    timed_out: Option<ProducerId>,
}

/// Transaction timers and the idempotent producer ids (see the module docs).
#[derive(Debug)]
pub(crate) struct Transactions {
    txns: Mutex<HashMap<String, Txn>>,
    next_idempotent: AtomicI64,
}

impl Default for Transactions {
    fn default() -> Self {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        // 2^56 + ms * 4096: above the engine's ids (counted from 0), and a server started a
        // millisecond later starts 4096 ids further.
        Self {
            txns: Mutex::new(HashMap::new()),
            next_idempotent: AtomicI64::new((1 << 56) + ((ms & ((1 << 40) - 1)) << 12)),
        }
    }
}

impl Transactions {
    /// Notes that `transactional_id`'s transaction is open (from now, if it was not).
    pub(crate) fn started(&self, transactional_id: &str) {
        let mut txns = lock(&self.txns);
        let t = txns
            .entry(transactional_id.to_string())
            .or_insert_with(|| Txn {
                timeout: Duration::from_secs(60),
                started: None,
                timed_out: None,
            });
        t.started.get_or_insert_with(Instant::now);
    }

    fn ended(&self, transactional_id: &str) {
        if let Some(t) = lock(&self.txns).get_mut(transactional_id) {
            t.started = None;
        }
    }

    fn registered(&self, transactional_id: &str, timeout: Duration) {
        let mut txns = lock(&self.txns);
        txns.insert(
            transactional_id.to_string(),
            Txn {
                timeout,
                started: None,
                timed_out: None,
            },
        );
    }

    fn timed_out_producer(&self, transactional_id: &str) -> Option<ProducerId> {
        lock(&self.txns)
            .get(transactional_id)
            .and_then(|t| t.timed_out)
    }
}

/// Aborts the transactions open for longer than their timeout (called every 100 ms).
pub(crate) fn expire(state: &State) {
    state.producers.prune();
    let now = Instant::now();
    let due: Vec<String> = lock(&state.txns.txns)
        .iter()
        .filter(|(_, t)| t.started.is_some_and(|s| now.duration_since(s) > t.timeout))
        .map(|(id, _)| id.clone())
        .collect();
    for id in due {
        let before = current_producer(state, &id);
        match state.engine.init_producer_id(&id) {
            Ok(now_producer) => {
                tracing::warn!(transactional_id = %id, epoch = now_producer.epoch, "transaction timed out: aborted, and its producer fenced");
                if let Some(t) = lock(&state.txns.txns).get_mut(&id) {
                    t.started = None;
                    t.timed_out = before;
                }
                state.wake_fetches();
            }
            Err(e) => {
                tracing::error!(transactional_id = %id, "aborting a timed-out transaction failed: {e}")
            }
        }
    }
}

/// The registered producer of `transactional_id`.
fn current_producer(state: &State, transactional_id: &str) -> Option<ProducerId> {
    state
        .engine
        .transactions()
        .into_iter()
        .find(|t| t.transactional_id == transactional_id)
        .map(|t| t.producer)
}

/// The error for a fenced producer: PRODUCER_FENCED from the request version that knows it,
/// INVALID_PRODUCER_EPOCH before.
fn fenced(version: i16, since: i16) -> ResponseError {
    if version >= since {
        ResponseError::ProducerFenced
    } else {
        ResponseError::InvalidProducerEpoch
    }
}

/// Whether `producer` is `transactional_id`'s current one.
fn check_producer(
    state: &State,
    transactional_id: &str,
    producer: ProducerId,
    fenced: ResponseError,
) -> Result<(), ResponseError> {
    match current_producer(state, transactional_id) {
        None => Err(ResponseError::InvalidProducerIdMapping),
        Some(p) if p == producer => Ok(()),
        Some(p) if p.id == producer.id && producer.epoch < p.epoch => Err(fenced),
        Some(_) => Err(ResponseError::InvalidProducerIdMapping),
    }
}

fn engine_code(e: &StateError, fenced: ResponseError) -> i16 {
    codes::of(e, fenced)
}

/// InitProducerId: a transactional id's producer (fencing the previous one), or an
/// idempotent producer's id (a new one, or the next epoch of the one it names).
pub(crate) fn init_producer_id(
    state: &State,
    req: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id((-1).into())
        .with_producer_epoch(-1);
    let fail = |e: ResponseError| response.clone().with_error_code(e.code());
    let Some(transactional_id) = req.transactional_id.as_ref().map(|t| t.0.as_str()) else {
        let given = ProducerId {
            id: req.producer_id.0,
            epoch: req.producer_epoch,
        };
        let producer = if given.id >= 0 && given.epoch >= 0 && given.epoch < i16::MAX {
            ProducerId {
                id: given.id,
                epoch: given.epoch + 1,
            }
        } else {
            ProducerId {
                id: state.txns.next_idempotent.fetch_add(1, Ordering::Relaxed),
                epoch: 0,
            }
        };
        return response
            .with_producer_id(producer.id.into())
            .with_producer_epoch(producer.epoch);
    };
    if transactional_id.is_empty() {
        return fail(ResponseError::InvalidRequest);
    }
    if req.transaction_timeout_ms <= 0 || req.transaction_timeout_ms > MAX_TRANSACTION_TIMEOUT_MS {
        return fail(ResponseError::InvalidTransactionTimeout);
    }
    if req.producer_id.0 >= 0 {
        // A producer bumping its epoch (versions 3 and later) must be the current one, or
        // the one a transaction timeout fenced.
        let given = ProducerId {
            id: req.producer_id.0,
            epoch: req.producer_epoch,
        };
        let current = current_producer(state, transactional_id);
        if current != Some(given) && state.txns.timed_out_producer(transactional_id) != Some(given)
        {
            return fail(fenced(version, 4));
        }
    }
    match state.engine.init_producer_id(transactional_id) {
        Ok(producer) => {
            state.txns.registered(
                transactional_id,
                Duration::from_millis(req.transaction_timeout_ms as u64),
            );
            state.wake_fetches();
            response
                .with_producer_id(producer.id.into())
                .with_producer_epoch(producer.epoch)
        }
        Err(e) => response.with_error_code(engine_code(&e, fenced(version, 4))),
    }
}

/// AddPartitionsToTxn (versions 0 to 3: one transaction): checks the producer and the
/// partitions; the transaction's timer starts.
pub(crate) fn add_partitions(
    state: &State,
    req: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    let transactional_id = req.v3_and_below_transactional_id.0.as_str();
    let producer = ProducerId {
        id: req.v3_and_below_producer_id.0,
        epoch: req.v3_and_below_producer_epoch,
    };
    let check = check_producer(state, transactional_id, producer, fenced(version, 2));
    let exists = |topic: &str, p: i32| {
        state
            .engine
            .topic_config(topic)
            .is_some_and(|c| u32::try_from(p).is_ok_and(|p| p < c.partitions))
    };
    let any_unknown = req
        .v3_and_below_topics
        .iter()
        .any(|t| t.partitions.iter().any(|p| !exists(t.name.0.as_str(), *p)));
    if check.is_ok() && !any_unknown {
        state.txns.started(transactional_id);
    }
    let results = req
        .v3_and_below_topics
        .iter()
        .map(|t| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|p| {
                            let code = match &check {
                                Err(e) => e.code(),
                                Ok(()) if !exists(t.name.0.as_str(), *p) => {
                                    ResponseError::UnknownTopicOrPartition.code()
                                }
                                Ok(()) if any_unknown => {
                                    ResponseError::OperationNotAttempted.code()
                                }
                                Ok(()) => codes::NONE,
                            };
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(*p)
                                .with_partition_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}

/// AddOffsetsToTxn: checks the producer and the group id; the offsets come with
/// TxnOffsetCommit.
pub(crate) fn add_offsets(
    state: &State,
    req: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let transactional_id = req.transactional_id.0.as_str();
    let producer = ProducerId {
        id: req.producer_id.0,
        epoch: req.producer_epoch,
    };
    let code = match check_producer(state, transactional_id, producer, fenced(version, 2)) {
        Err(e) => e.code(),
        Ok(()) if req.group_id.0.is_empty() => ResponseError::InvalidGroupId.code(),
        Ok(()) => {
            state.txns.started(transactional_id);
            codes::NONE
        }
    };
    AddOffsetsToTxnResponse::default().with_error_code(code)
}

/// TxnOffsetCommit: the consumer's generation is checked (a zombie member's offsets are
/// refused with UNKNOWN_MEMBER_ID or ILLEGAL_GENERATION), then the offsets join the
/// transaction.
pub(crate) fn offset_commit(
    state: &State,
    req: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    let transactional_id = req.transactional_id.0.as_str();
    let group = req.group_id.0.as_str();
    let producer = ProducerId {
        id: req.producer_id.0,
        epoch: req.producer_epoch,
    };
    let fenced = fenced(version, 3);
    let mut result =
        check_producer(state, transactional_id, producer, fenced).map_err(|e| e.code());
    if result.is_ok() && version >= 3 && (req.generation_id >= 0 || !req.member_id.is_empty()) {
        result = state
            .groups
            .check_commit(group, req.member_id.as_str(), req.generation_id)
            .map_err(|e| e.code());
    }
    if result.is_ok() {
        let offsets: Vec<(&str, u32, i64)> = req
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    (
                        t.name.0.as_str(),
                        u32::try_from(p.partition_index).unwrap_or(u32::MAX),
                        p.committed_offset,
                    )
                })
            })
            .collect();
        result = state
            .engine
            .add_offsets_to_transaction(transactional_id, producer, group, &offsets)
            .map_err(|e| match e {
                StateError::Log(LogError::UnknownTopic(_) | LogError::UnknownPartition { .. }) => {
                    ResponseError::UnknownTopicOrPartition.code()
                }
                e => engine_code(&e, fenced),
            });
    }
    let code = result.err().unwrap_or(codes::NONE);
    let topics = req
        .topics
        .iter()
        .map(|t| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

/// EndTxn: commits or aborts the producer's transaction (markers in every partition it
/// wrote to; its offsets on commit).
pub(crate) fn end(state: &State, req: EndTxnRequest, version: i16) -> EndTxnResponse {
    let transactional_id = req.transactional_id.0.as_str();
    let producer = ProducerId {
        id: req.producer_id.0,
        epoch: req.producer_epoch,
    };
    let code = match state
        .engine
        .end_transaction(transactional_id, producer, req.committed)
    {
        Ok(()) => {
            state.txns.ended(transactional_id);
            state.wake_fetches();
            codes::NONE
        }
        Err(e) => engine_code(&e, fenced(version, 2)),
    };
    EndTxnResponse::default().with_error_code(code)
}
