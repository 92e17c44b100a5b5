//! The embedded producer: buffered appends, transactions, and waiting out a full disk.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use streams_state::{LogEngine, LogError, NewRecord, ProducerId, StateError};

use crate::client::{
    ClientError, ClientResult, GroupMetadata, OutgoingRecord, Producer, TopicPartition,
};

use crate::sync::lock;

use super::*;

/// How many bytes a partition's batch collects before it is appended without waiting for
/// [`Producer::poll`].
pub(super) const BATCH_BYTES: usize = 256 << 10;

/// Whether `topic` is a state store's changelog (named `<application.id>-<store>-changelog`
/// by the runtime).
pub(super) fn is_changelog(topic: &str) -> bool {
    topic.ends_with("-changelog")
}

/// How long an append waits for space on a full disk before the producer gives up (Kafka's
/// `delivery.timeout.ms` default: a producer retries a broker's storage error that long).
pub(super) const DISK_FULL_RETRY_FOR: Duration = Duration::from_secs(120);

/// Runs `write` (an append or an offset commit of `partition`), repeating it while it
/// fails on a full disk (the engine wrote nothing past its last good position, so a repeat
/// is safe), for at most `retry_for`; the wait and the recovery are logged once each, the
/// first with the path and the space left. After `retry_for` the disk-full error is
/// returned.
pub(super) fn wait_for_disk<T>(
    partition: &TopicPartition,
    retry_for: Duration,
    mut write: impl FnMut() -> ClientResult<T>,
) -> ClientResult<T> {
    let mut since: Option<Instant> = None;
    let mut pause = Duration::from_millis(20);
    loop {
        match write() {
            Err(ClientError::Engine(e)) if e.is_retriable() => {
                let start = *since.get_or_insert_with(|| {
                    tracing::warn!(%partition, error = %e, "writing waits for disk space");
                    Instant::now()
                });
                if start.elapsed() >= retry_for {
                    return Err(ClientError::Engine(e));
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(e) => return Err(e),
            Ok(v) => {
                if let Some(start) = since {
                    tracing::info!(
                        %partition,
                        waited_ms = start.elapsed().as_millis() as u64,
                        "disk space is back: writing again"
                    );
                }
                return Ok(v);
            }
        }
    }
}

/// A producer on the embedded engine: one batch per partition, appended when full, on
/// poll and on flush; transactional ones append into their open transaction. An append
/// that finds the disk full is retried (the log wrote nothing past its last good
/// position) until space is freed or `retry_for` passed, as a Kafka producer retries a
/// broker's storage error: the stream thread waits instead of losing or failing.
pub(super) struct EmbeddedProducer {
    pub(super) engine: Arc<LogEngine>,
    pub(super) batches: HashMap<TopicPartition, (Vec<NewRecord>, usize)>,
    pub(super) txn: Option<Transactional>,
    pub(super) retry_for: Duration,
    /// Per partition, the offset after the last record appended since the last
    /// `take_delivered`.
    pub(super) delivered: HashMap<TopicPartition, i64>,
}

/// A transactional producer's state.
pub(super) struct Transactional {
    pub(super) id: String,
    /// Set by `init_transactions`.
    pub(super) producer: Option<ProducerId>,
    /// A transaction is open (begun, not committed or aborted).
    pub(super) open: bool,
    /// The engine's groups, whose generations fence offsets of zombies.
    pub(super) groups: Arc<Groups>,
}

/// An engine error of a transactional operation as a client error: a fenced producer is
/// [`ClientError::ProducerFenced`].
pub(super) fn txn_error(operation: &str, e: StateError) -> ClientError {
    match e {
        StateError::Log(LogError::ProducerFenced { .. }) => ClientError::ProducerFenced {
            operation: operation.into(),
            detail: e.to_string(),
        },
        e => ClientError::Engine(e),
    }
}

impl EmbeddedProducer {
    pub(super) fn new(engine: Arc<LogEngine>, txn: Option<Transactional>) -> Self {
        Self {
            engine,
            batches: HashMap::new(),
            txn,
            retry_for: DISK_FULL_RETRY_FOR,
            delivered: HashMap::new(),
        }
    }

    /// Appends one partition's batch, waiting out a full disk (see the type's docs);
    /// returns the first record's offset.
    pub(super) fn append(&self, tp: &TopicPartition, batch: &[NewRecord]) -> ClientResult<i64> {
        wait_for_disk(tp, self.retry_for, || self.append_once(tp, batch))
    }

    /// Appends one partition's batch: plainly, or into the open transaction. Returns the
    /// first record's offset.
    pub(super) fn append_once(
        &self,
        tp: &TopicPartition,
        batch: &[NewRecord],
    ) -> ClientResult<i64> {
        match &self.txn {
            None => Ok(self.engine.append(&tp.topic, tp.partition, batch)?),
            Some(t) => {
                let producer = t.producer.ok_or_else(|| ClientError::Broker {
                    operation: "sending".into(),
                    detail: "init_transactions was not called".into(),
                })?;
                self.engine
                    .append_transactional(&t.id, producer, &tp.topic, tp.partition, batch)
                    .map_err(|e| txn_error("sending", e))
            }
        }
    }

    /// Appends the pending batches of changelog topics (`changelogs`) or of every other
    /// topic.
    ///
    /// Other topics go first, so that a changelog record never reaches the log before
    /// the output and repartition records sent ahead of it: a process killed between two
    /// appends leaves state behind its outputs (reprocessing repeats them), never ahead
    /// (a restored store that already holds a record whose results died with the process,
    /// for instance a join whose lateness clock the restored changelog moved on, would
    /// not produce them again). Transactions do not need it but do not mind.
    pub(super) fn append_pending(&mut self, changelogs: bool) -> ClientResult<()> {
        let due: Vec<TopicPartition> = self
            .batches
            .keys()
            .filter(|tp| is_changelog(&tp.topic) == changelogs)
            .cloned()
            .collect();
        for tp in due {
            self.append_batch_of(tp)?;
        }
        Ok(())
    }

    /// Appends the pending batch of `tp`; on failure it stays pending (nothing of it reached
    /// the log), so that a retried flush or commit sends it instead of skipping it.
    pub(super) fn append_batch_of(&mut self, tp: TopicPartition) -> ClientResult<()> {
        let Some((batch, bytes)) = self.batches.remove(&tp) else {
            return Ok(());
        };
        if batch.is_empty() {
            return Ok(());
        }
        match self.append(&tp, &batch) {
            Ok(base) => {
                let end = base + batch.len() as i64;
                let known = self.delivered.entry(tp).or_insert(end);
                *known = (*known).max(end);
                Ok(())
            }
            Err(e) => {
                // Records sent meanwhile cannot exist (one thread owns the producer).
                self.batches.insert(tp, (batch, bytes));
                Err(e)
            }
        }
    }

    /// The open transaction's producer: fails when none is open.
    pub(super) fn open_txn(&self, operation: &str) -> ClientResult<(&Transactional, ProducerId)> {
        let t = self
            .txn
            .as_ref()
            .ok_or_else(|| crate::client::not_transactional(operation))?;
        match t.producer {
            Some(p) if t.open => Ok((t, p)),
            _ => Err(ClientError::Broker {
                operation: operation.into(),
                detail: "no transaction is open (begin_transaction first)".into(),
            }),
        }
    }
}

impl Producer for EmbeddedProducer {
    fn send(&mut self, record: OutgoingRecord) -> ClientResult<()> {
        if self.txn.as_ref().is_some_and(|t| !t.open) {
            return Err(ClientError::Broker {
                operation: format!("sending to {}", record.partition),
                detail: "a transactional producer sends only inside a transaction".into(),
            });
        }
        let size = 16
            + record.key.as_ref().map_or(0, Vec::len)
            + record.value.as_ref().map_or(0, Vec::len);
        let full = {
            let (batch, bytes) = self.batches.entry(record.partition.clone()).or_default();
            batch.push(NewRecord {
                timestamp: record.timestamp,
                key: record.key,
                value: record.value,
                headers: record.headers,
            });
            *bytes += size;
            *bytes >= BATCH_BYTES
        };
        if full {
            if is_changelog(&record.partition.topic) {
                // Not before the outputs sent ahead of it (see `append_pending`).
                self.append_pending(false)?;
            }
            self.append_batch_of(record.partition)?;
        }
        Ok(())
    }

    fn poll(&mut self) -> ClientResult<()> {
        self.append_pending(false)?;
        self.append_pending(true)
    }

    fn flush(&mut self, _timeout: Duration) -> ClientResult<()> {
        self.poll()?;
        if self.txn.is_some() {
            // Durability comes with the commit.
            return Ok(());
        }
        Ok(self.engine.flush()?)
    }

    fn take_delivered(&mut self) -> Vec<(TopicPartition, i64)> {
        self.delivered.drain().collect()
    }

    fn is_transactional(&self) -> bool {
        self.txn.is_some()
    }

    fn init_transactions(&mut self, _timeout: Duration) -> ClientResult<()> {
        let t = self
            .txn
            .as_mut()
            .ok_or_else(|| crate::client::not_transactional("init_transactions"))?;
        t.producer = Some(self.engine.init_producer_id(&t.id)?);
        t.open = false;
        self.batches.clear();
        Ok(())
    }

    fn begin_transaction(&mut self) -> ClientResult<()> {
        let t = self
            .txn
            .as_mut()
            .ok_or_else(|| crate::client::not_transactional("begin_transaction"))?;
        if t.producer.is_none() {
            return Err(ClientError::Broker {
                operation: "begin_transaction".into(),
                detail: "init_transactions was not called".into(),
            });
        }
        if t.open {
            return Err(ClientError::Broker {
                operation: "begin_transaction".into(),
                detail: "a transaction is open already".into(),
            });
        }
        t.open = true;
        Ok(())
    }

    fn send_offsets_to_transaction(
        &mut self,
        offsets: &[(TopicPartition, i64)],
        group: &GroupMetadata,
        _timeout: Duration,
    ) -> ClientResult<()> {
        let operation = "send_offsets_to_transaction";
        let (t, producer) = self.open_txn(operation)?;
        // KIP-447: offsets of a member that is no longer in the group, or from an older
        // generation than the one it joined, come from a zombie.
        let g = lock(&t.groups.groups).get(&group.group_id).cloned();
        let zombie = g.is_some_and(|g| {
            let state = lock(&g.state);
            let current = state.members.get(&group.member_id).map(|m| m.joined);
            current.is_none_or(|joined| i64::try_from(joined).ok() != Some(group.generation))
        });
        if zombie {
            // Nothing the zombie wrote may become visible: its transaction is aborted now
            // (a broker would time it out), so that the partitions' LSO moves on.
            let id = t.id.clone();
            self.batches.clear();
            if let Some(t) = self.txn.as_mut() {
                t.open = false;
            }
            if let Err(e) = self.engine.end_transaction(&id, producer, false) {
                tracing::warn!(transactional_id = %id, error = %e, "aborting a fenced transaction failed");
            }
            return Err(ClientError::ProducerFenced {
                operation: operation.into(),
                detail: format!(
                    "member `{}` of group `{}` is not in generation {} any more",
                    group.member_id, group.group_id, group.generation
                ),
            });
        }
        let list: Vec<(&str, u32, i64)> = offsets
            .iter()
            .map(|(tp, o)| (&*tp.topic, tp.partition, *o))
            .collect();
        self.engine
            .add_offsets_to_transaction(&t.id, producer, &group.group_id, &list)
            .map_err(|e| txn_error(operation, e))
    }

    fn commit_transaction(&mut self, _timeout: Duration) -> ClientResult<()> {
        let (t, producer) = self.open_txn("commit_transaction")?;
        let id = t.id.clone();
        if let Err(e) = self.poll() {
            return Err(match e {
                e @ ClientError::ProducerFenced { .. } => e,
                e => ClientError::TransactionAborted {
                    operation: "commit_transaction".into(),
                    detail: e.to_string(),
                },
            });
        }
        let ended = self.engine.end_transaction(&id, producer, true);
        if let Some(t) = self.txn.as_mut() {
            t.open = false;
        }
        ended.map_err(|e| txn_error("commit_transaction", e))
    }

    fn abort_transaction(&mut self, _timeout: Duration) -> ClientResult<()> {
        let (t, producer) = self.open_txn("abort_transaction")?;
        let id = t.id.clone();
        self.batches.clear();
        let ended = self.engine.end_transaction(&id, producer, false);
        if let Some(t) = self.txn.as_mut() {
            t.open = false;
        }
        ended.map_err(|e| txn_error("abort_transaction", e))
    }
}
