//! The producer on librdkafka: idempotent sends to explicit partitions and transactions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::{FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message as _, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};

use super::{ClientError, ClientResult, GroupMetadata, OutgoingRecord, Producer, TopicPartition};

use crate::sync::lock;

use super::errors::*;
use super::partitions::*;
use super::settings::*;

/// The producer's librdkafka context: collects delivery failures.
#[derive(Default)]
pub(super) struct ProducerCtx {
    pub(super) diagnostics: Diagnostics,
    pub(super) failures: Mutex<Vec<String>>,
    /// Failed deliveries since the last report.
    pub(super) failed: std::sync::atomic::AtomicU64,
    /// Whether a failure since the last report was not a timeout or another retriable
    /// error (a record too large, an unknown partition, ...).
    pub(super) failed_for_good: std::sync::atomic::AtomicBool,
    /// Per topic and partition, the offset after the last record delivered since the last
    /// `take_delivered`.
    pub(super) delivered: Mutex<HashMap<String, HashMap<i32, i64>>>,
}

impl ClientContext for ProducerCtx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.diagnostics.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.diagnostics.error(&error, reason);
    }
}

impl ProducerContext for ProducerCtx {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _opaque: ()) {
        if let Ok(m) = result {
            let end = m.offset() + 1;
            let mut delivered = lock(&self.delivered);
            let partitions = match delivered.get_mut(m.topic()) {
                Some(p) => p,
                None => delivered.entry(m.topic().to_string()).or_default(),
            };
            let known = partitions.entry(m.partition()).or_insert(end);
            *known = (*known).max(end);
        }
        if let Err((e, m)) = result {
            // Records withdrawn on purpose (an aborted transaction's queued records, or a
            // producer dropped with records queued) were not refused by anyone.
            if matches!(
                code_of(e),
                Some(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight)
            ) {
                return;
            }
            self.failed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let code = code_of(e);
            if !(timed_out(code) || retriable(code)) {
                self.failed_for_good
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
            let mut failures = lock(&self.failures);
            // One is enough to fail the commit; keep a few for the message.
            if failures.len() < 3 {
                failures.push(format!("{}-{}: {e}", m.topic(), m.partition()));
            } else if failures.len() == 3 {
                failures.push("...".into());
            }
        }
    }
}

/// A transactional producer's own state.
#[derive(Debug)]
pub(super) struct TxnState {
    /// Its `transactional.id`.
    pub(super) id: String,
    /// A transaction was begun and not committed or aborted yet.
    pub(super) open: bool,
}

/// A producer on librdkafka: idempotent, and transactional when made by
/// [`ClientSupplier::transactional_producer`] (see the [module docs](self#transactions)).
pub(super) struct KafkaProducer {
    pub(super) producer: BaseProducer<ProducerCtx>,
    pub(super) settings: Arc<Settings>,
    /// Set for a transactional producer.
    pub(super) txn: Option<TxnState>,
}

impl KafkaProducer {
    pub(super) fn new(
        settings: Arc<Settings>,
        client_id: &str,
        transactional_id: Option<&str>,
    ) -> ClientResult<Self> {
        let config = match transactional_id {
            None => settings.producer_config(client_id),
            Some("") => {
                return Err(ClientError::Broker {
                    operation: "creating the Kafka transactional producer".into(),
                    detail: "the transactional id is empty".into(),
                });
            }
            Some(id) => settings.transactional_producer_config(client_id, id),
        };
        let producer = BaseProducer::from_config_and_context(&config, ProducerCtx::default())
            .map_err(|e| config_error("producer", &e))?;
        Ok(Self {
            producer,
            settings,
            txn: transactional_id.map(|id| TxnState {
                id: id.to_string(),
                open: false,
            }),
        })
    }

    fn error(&self, operation: &str, e: &KafkaError, after: Duration) -> ClientError {
        client_error(
            operation,
            e,
            after,
            &self.settings.bootstrap,
            &self.producer.context().diagnostics,
        )
    }

    /// The error of a transactional call (see [`TxnReaction`]). A refusal because of an
    /// earlier fatal error is classified by that error.
    fn txn_error(&self, operation: &str, e: &KafkaError, after: Duration) -> ClientError {
        let mut failure = TxnFailure::of(e);
        if failure.code == Some(RDKafkaErrorCode::Fatal)
            && let Some((code, _)) = self.producer.client().fatal_error()
        {
            failure.code = Some(code);
            failure.fatal = true;
        }
        let detail = match &self.txn {
            Some(t) => format!("{e} (transactional.id `{}`)", t.id),
            None => e.to_string(),
        };
        transaction_error(operation, detail, failure, after, &self.settings.bootstrap)
    }

    /// The producer's fatal error, if librdkafka raised one: fenced (a transactional
    /// producer whose id or epoch another producer took over) or fatal.
    fn fatal(&self, operation: &str) -> Option<ClientError> {
        let (code, reason) = self.producer.client().fatal_error()?;
        let operation = operation.to_string();
        let detail = format!("fatal producer error {code}: {reason}");
        Some(if self.txn.is_some() && fencing(Some(code)) {
            ClientError::ProducerFenced { operation, detail }
        } else {
            ClientError::Fatal { operation, detail }
        })
    }

    /// The delivery failures since the last call: how many, and the first few.
    fn take_failures(&self) -> Option<(u64, String)> {
        self.take_failures_and_kind()
            .map(|(failed, detail, _)| (failed, detail))
    }

    /// [`take_failures`](Self::take_failures), and whether any failed for good (not a
    /// timeout or another retriable error).
    fn take_failures_and_kind(&self) -> Option<(u64, String, bool)> {
        let ctx = self.producer.context();
        let failures = std::mem::take(&mut *lock(&ctx.failures));
        let failed = ctx.failed.swap(0, std::sync::atomic::Ordering::Relaxed);
        let for_good = ctx
            .failed_for_good
            .swap(false, std::sync::atomic::Ordering::Relaxed);
        (!failures.is_empty()).then(|| (failed.max(1), failures.join("; "), for_good))
    }

    fn failures(&self) -> ClientResult<()> {
        if self.txn.is_some()
            && let Some(e) = self.fatal("producing")
        {
            // Fenced: the failed deliveries are a consequence.
            self.take_failures();
            return Err(e);
        }
        if let Some((failed, detail, for_good)) = self.take_failures_and_kind() {
            let in_txn = self.txn.as_ref().is_some_and(|t| t.open);
            return Err(delivery_failure(in_txn, for_good, failed, detail));
        }
        self.fatal("producing").map_or(Ok(()), Err)
    }

    /// This producer's transactional state, or the error of `operation` on a producer
    /// that is not transactional.
    fn require_txn(&mut self, operation: &str) -> ClientResult<&mut TxnState> {
        self.txn
            .as_mut()
            .ok_or_else(|| crate::client::not_transactional(operation))
    }

    fn set_open(&mut self, open: bool) {
        if let Some(t) = self.txn.as_mut() {
            t.open = open;
        }
    }

    /// The error of a refused send.
    fn send_error(&self, tp: &TopicPartition, e: &KafkaError, timeout: Duration) -> ClientError {
        let operation = format!("sending to {tp}");
        match code_of(e) {
            Some(RDKafkaErrorCode::UnknownPartition) => ClientError::Broker {
                operation,
                detail: "the partition does not exist".into(),
            },
            Some(RDKafkaErrorCode::UnknownTopic) => ClientError::UnknownTopic(tp.topic.to_string()),
            Some(RDKafkaErrorCode::QueueFull) => ClientError::Timeout {
                operation,
                after: timeout,
                detail: format!(
                    "the producer's queue stayed full: the Kafka cluster at \
                     bootstrap.servers={} does not take the records",
                    self.settings.bootstrap
                ),
            },
            Some(RDKafkaErrorCode::Fatal) => self
                .fatal(&operation)
                .unwrap_or_else(|| self.error(&operation, e, timeout)),
            // librdkafka takes records of a transactional producer only inside a healthy
            // transaction.
            Some(RDKafkaErrorCode::State) if self.txn.as_ref().is_some_and(|t| t.open) => {
                ClientError::TransactionAborted {
                    operation,
                    detail: "librdkafka takes no more records into this transaction: a \
                             delivery or request of it failed, and it must be aborted"
                        .into(),
                }
            }
            Some(RDKafkaErrorCode::State) if self.txn.is_some() => ClientError::Broker {
                operation,
                detail: "a transactional producer sends only inside a transaction \
                         (begin_transaction first)"
                    .into(),
            },
            _ => self.error(&operation, e, timeout),
        }
    }
}

impl Producer for KafkaProducer {
    fn send(&mut self, record: OutgoingRecord) -> ClientResult<()> {
        let partition = partition_i32(&record.partition)?;
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (k, v) in &record.headers {
            headers = headers.insert(Header {
                key: k,
                value: v.as_deref(),
            });
        }
        let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&record.partition.topic)
            .partition(partition)
            .timestamp(record.timestamp)
            .headers(headers);
        if let Some(k) = &record.key {
            rec = rec.key(k.as_slice());
        }
        if let Some(v) = &record.value {
            rec = rec.payload(v.as_slice());
        }
        let timeout = self.settings.timeout;
        let deadline = Instant::now() + timeout;
        loop {
            match self.producer.send(rec) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if Instant::now() < deadline =>
                {
                    // The local queue is full: let deliveries complete, then try again.
                    rec = back;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(self.send_error(&record.partition, &e, timeout)),
            }
        }
    }

    fn poll(&mut self) -> ClientResult<()> {
        self.producer.poll(Duration::ZERO);
        self.failures()
    }

    fn take_delivered(&mut self) -> Vec<(TopicPartition, i64)> {
        let delivered = std::mem::take(&mut *lock(&self.producer.context().delivered));
        delivered
            .into_iter()
            .flat_map(|(topic, partitions)| {
                let topic: Arc<str> = topic.into();
                partitions.into_iter().filter_map(move |(p, end)| {
                    Some((
                        TopicPartition::new(topic.clone(), u32::try_from(p).ok()?),
                        end,
                    ))
                })
            })
            .collect()
    }

    fn flush(&mut self, timeout: Duration) -> ClientResult<()> {
        let flushed = self.producer.flush(timeout);
        let failures = self.failures();
        // Failed deliveries say what went wrong, unless the flush itself did not finish
        // (then records are still in flight and the app must not go on) and the producer
        // is still usable.
        if flushed.is_ok()
            || matches!(
                failures,
                Err(ClientError::Fatal { .. } | ClientError::ProducerFenced { .. })
            )
        {
            failures?;
        }
        flushed.map_err(|e| {
            let mut err = self.error("flushing the producer", &e, timeout);
            if let ClientError::Broker { .. } = err
                && timed_out(code_of(&e))
            {
                err = ClientError::Timeout {
                    operation: "flushing the producer".into(),
                    after: timeout,
                    detail: e.to_string(),
                };
            }
            err
        })
    }

    fn is_transactional(&self) -> bool {
        self.txn.is_some()
    }

    fn init_transactions(&mut self, timeout: Duration) -> ClientResult<()> {
        let operation = "init_transactions";
        self.require_txn(operation)?;
        self.producer
            .init_transactions(timeout)
            .map_err(|e| self.txn_error(operation, &e, timeout))?;
        self.set_open(false);
        Ok(())
    }

    fn begin_transaction(&mut self) -> ClientResult<()> {
        let operation = "begin_transaction";
        self.require_txn(operation)?;
        self.producer
            .begin_transaction()
            .map_err(|e| self.txn_error(operation, &e, Duration::ZERO))?;
        self.set_open(true);
        Ok(())
    }

    fn send_offsets_to_transaction(
        &mut self,
        offsets: &[(TopicPartition, i64)],
        group: &GroupMetadata,
        timeout: Duration,
    ) -> ClientResult<()> {
        let operation = "send_offsets_to_transaction";
        self.require_txn(operation)?;
        let Some(metadata) = group.kafka.as_deref() else {
            return Err(ClientError::Broker {
                operation: operation.into(),
                detail: format!(
                    "the metadata of group `{}` was not taken from a consumer of these \
                     clients (Consumer::group_metadata)",
                    group.group_id
                ),
            });
        };
        if offsets.is_empty() {
            return Ok(());
        }
        let tpl = tpl_with_offsets(offsets)?;
        self.producer
            .send_offsets_to_transaction(&tpl, metadata, timeout)
            .map_err(|e| self.txn_error(operation, &e, timeout))
    }

    fn commit_transaction(&mut self, timeout: Duration) -> ClientResult<()> {
        let operation = "commit_transaction";
        self.require_txn(operation)?;
        let deadline = Instant::now() + timeout;
        // Every record of the transaction is delivered (or failed) first: a failed delivery
        // fails the commit with its cause, and the transaction must be aborted (librdkafka
        // would refuse the commit too, naming only the first failed request).
        let flushed = self.producer.flush(timeout);
        if let Some(e) = self.fatal(operation) {
            self.take_failures();
            return Err(e);
        }
        if let Some((failed, detail)) = self.take_failures() {
            return Err(ClientError::TransactionAborted {
                operation: operation.into(),
                detail: format!(
                    "{failed} record(s) of the transaction could not be delivered: {detail}"
                ),
            });
        }
        if let Err(e) = flushed {
            return Err(self.txn_error(operation, &e, timeout));
        }
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        self.producer
            .commit_transaction(left)
            .map_err(|e| self.txn_error(operation, &e, timeout))?;
        self.set_open(false);
        Ok(())
    }

    fn abort_transaction(&mut self, timeout: Duration) -> ClientResult<()> {
        let operation = "abort_transaction";
        self.require_txn(operation)?;
        let deadline = Instant::now() + timeout;
        // librdkafka's abort purges the queued records and then waits until their delivery
        // reports are taken; the rdkafka crate's producer receives them as events that only
        // its poll takes. So abort in short attempts (an unfinished abort resumes where it
        // stopped) and take the reports in between.
        let result = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let attempt = self
                .producer
                .abort_transaction(left.min(ABORT_SLICE).max(Duration::from_millis(1)));
            match attempt {
                Err(KafkaError::Transaction(e))
                    if e.is_retriable() && Instant::now() < deadline =>
                {
                    self.producer.poll(Duration::from_millis(10));
                }
                other => break other,
            }
        };
        // Whatever failed belonged to the aborted transaction.
        self.producer.poll(Duration::from_millis(1));
        self.take_failures();
        result.map_err(|e| self.txn_error(operation, &e, timeout))?;
        self.set_open(false);
        Ok(())
    }
}

/// The error of failed deliveries. Inside a transaction, deliveries that timed out (or
/// failed in another retriable way) abort it, and the runtime revives the tasks from their
/// last commit, as Kafka Streams turns a retriable send error into a corrupted task; a
/// delivery that failed for good goes to the production handler.
pub(super) fn delivery_failure(
    in_txn: bool,
    for_good: bool,
    failed: u64,
    detail: String,
) -> ClientError {
    if in_txn && !for_good {
        ClientError::TransactionAborted {
            operation: "producing".into(),
            detail: format!(
                "{failed} record(s) of the transaction could not be delivered in time: {detail}"
            ),
        }
    } else {
        ClientError::Delivery { failed, detail }
    }
}

#[cfg(test)]
mod delivery_tests {
    use super::*;

    #[test]
    fn timed_out_deliveries_abort_the_transaction_and_others_go_to_the_handler() {
        let e = delivery_failure(true, false, 22, "t-2: Message timed out".into());
        assert!(e.is_task_migrated(), "{e:?}");
        assert!(e.to_string().contains("22 record(s)"), "{e}");
        // Failed for good (e.g. a record too large): the production handler decides.
        let e = delivery_failure(true, true, 1, "t-0: too large".into());
        assert!(
            matches!(e, ClientError::Delivery { failed: 1, .. }),
            "{e:?}"
        );
        // Outside a transaction (at-least-once), always the handler.
        let e = delivery_failure(false, false, 3, "t-1: timed out".into());
        assert!(
            matches!(e, ClientError::Delivery { failed: 3, .. }),
            "{e:?}"
        );
    }
}
