//! The group consumer on librdkafka, with the rebalance bridge (see the module docs).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::{FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as RdConsumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers as _, Message as _};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;

use super::{
    ClientError, ClientResult, ClientStatistics, ConsumedRecord, Consumer, GroupMember,
    GroupMetadata, RebalanceListener, TopicPartition,
};
use crate::config::ClientPrefix;
use crate::record::{Headers, RawRecord};

use crate::sync::lock;

use super::errors::*;
use super::partitions::*;
use super::settings::*;
use super::summarize;

/// A rebalance librdkafka announced, waiting for the next [`Consumer::poll`].
#[derive(Debug)]
pub(super) enum RebalanceEvent {
    Assign(Vec<TopicPartition>),
    Revoke {
        partitions: Vec<TopicPartition>,
        lost: bool,
    },
    Error(String),
}

/// The consumer's librdkafka context: records rebalances for the bridge (see the
/// [module docs](self)) and keeps diagnostics.
#[derive(Default)]
pub(super) struct ConsumerCtx {
    pub(super) diagnostics: Diagnostics,
    pub(super) pending: Mutex<Vec<RebalanceEvent>>,
    /// No listener will come (closing): revocations are applied at once.
    pub(super) closing: AtomicBool,
    /// The latest statistics librdkafka reported.
    pub(super) statistics: Mutex<Option<ClientStatistics>>,
}

impl ClientContext for ConsumerCtx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.diagnostics.log(level, fac, log_message);
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        *lock(&self.statistics) = Some(summarize(&statistics));
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.diagnostics.error(&error, reason);
    }
}

impl ConsumerContext for ConsumerCtx {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let partitions = partitions_of(tpl);
        let closing = self.closing.load(Ordering::SeqCst);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS if !closing => {
                lock(&self.pending).push(RebalanceEvent::Assign(partitions));
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS if !closing => {
                lock(&self.pending).push(RebalanceEvent::Revoke {
                    partitions,
                    lost: consumer.assignment_lost(),
                });
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS
            | RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                // Closing: nobody is left to listen; let librdkafka complete at once.
                if let Err(e) = consumer.unassign() {
                    tracing::warn!(error = %e, "unassign while closing failed");
                }
            }
            other => {
                let code: RDKafkaErrorCode = other.into();
                if closing {
                    let _ = consumer.unassign();
                } else {
                    lock(&self.pending).push(RebalanceEvent::Error(code.to_string()));
                }
            }
        }
    }
}

/// A consumer on librdkafka: a group member (the main consumer) or a client with manual
/// assignment (the restore consumer).
pub(super) struct KafkaConsumer {
    pub(super) consumer: BaseConsumer<ConsumerCtx>,
    pub(super) settings: Arc<Settings>,
    /// A group member (subscribes and commits), not the restore consumer.
    pub(super) member: bool,
    pub(super) group_id: String,
    pub(super) client_id: String,
    pub(super) max_records: usize,
    /// The next offset to read of every assigned partition.
    pub(super) positions: BTreeMap<TopicPartition, i64>,
    pub(super) paused: BTreeSet<TopicPartition>,
    /// Records librdkafka had already fetched for a partition when it was paused: handed
    /// out after it resumes, ahead of anything fetched later (re-seeking instead would
    /// purge librdkafka's prefetched data and cost a fetch round trip per pause).
    pub(super) held: BTreeMap<TopicPartition, Vec<RawRecord>>,
    /// The member id, as the last group description showed it.
    pub(super) member_id: Mutex<String>,
    /// Watermark answers of the group consumer: (low, high, when asked).
    pub(super) watermark_cache: Mutex<HashMap<TopicPartition, (i64, i64, Instant)>>,
    /// Offsets of revoked partitions whose commit the group refused, for the next
    /// assignment.
    pub(super) uncommitted: BTreeMap<TopicPartition, i64>,
    /// A commit was refused as from a fenced member: the next revocation is a lost one.
    pub(super) fenced: bool,
    /// The generation and member id of the assignment last revoked (not lost): the next
    /// assignment continues it only as the next generation of the same member.
    pub(super) revoked_at: Option<(i64, String)>,
    /// Told once that the broker cannot describe groups.
    pub(super) describe_unsupported: AtomicBool,
    pub(super) closed: bool,
}

impl KafkaConsumer {
    pub(super) fn new(
        settings: Arc<Settings>,
        specific: ClientPrefix,
        group_id: &str,
        client_id: &str,
        member: bool,
    ) -> ClientResult<Self> {
        let config = settings.consumer_config(specific, group_id, client_id);
        let consumer = BaseConsumer::from_config_and_context(&config, ConsumerCtx::default())
            .map_err(|e| config_error("consumer", &e))?;
        Ok(Self {
            consumer,
            max_records: settings.max_poll_records(specific)?,
            settings,
            member,
            group_id: group_id.to_string(),
            client_id: client_id.to_string(),
            positions: BTreeMap::new(),
            paused: BTreeSet::new(),
            held: BTreeMap::new(),
            member_id: Mutex::new(String::new()),
            watermark_cache: Mutex::new(HashMap::new()),
            uncommitted: BTreeMap::new(),
            fenced: false,
            revoked_at: None,
            describe_unsupported: AtomicBool::new(false),
            closed: false,
        })
    }

    fn timeout(&self) -> Duration {
        self.settings.timeout
    }

    fn error(&self, operation: &str, e: &KafkaError) -> ClientError {
        client_error(
            operation,
            e,
            self.timeout(),
            &self.settings.bootstrap,
            &self.consumer.context().diagnostics,
        )
    }

    fn no_group(&self, operation: &str) -> ClientError {
        ClientError::Broker {
            operation: operation.into(),
            detail: "this consumer has no group".into(),
        }
    }

    fn check_open(&self) -> ClientResult<()> {
        if self.closed {
            Err(ClientError::Closed)
        } else {
            Ok(())
        }
    }

    /// Runs `f` until it succeeds, fails for good, or the API timeout passed.
    fn retrying<T>(
        &self,
        operation: &str,
        f: impl FnMut(Duration) -> Result<T, KafkaError>,
    ) -> ClientResult<T> {
        retry(self.timeout(), operation, f).map_err(|e| self.error(operation, &e))
    }

    /// Commits `offsets`; the outer error is ours (no group, bad partition), the inner one
    /// the cluster's.
    fn try_commit(
        &self,
        offsets: &[(TopicPartition, i64)],
    ) -> ClientResult<Result<(), KafkaError>> {
        if offsets.is_empty() {
            return Ok(Ok(()));
        }
        if !self.member {
            return Err(self.no_group("commit"));
        }
        let tpl = tpl_with_offsets(offsets)?;
        Ok(retry(self.timeout(), "committing offsets", |_| {
            self.consumer.commit(&tpl, CommitMode::Sync)
        }))
    }

    fn fetch_watermarks(&self, tp: &TopicPartition) -> ClientResult<(i64, i64)> {
        let p = partition_i32(tp)?;
        let operation = format!("reading the watermarks of {tp}");
        let (low, high) = self.retrying(&operation, |left| {
            self.consumer.fetch_watermarks(&tp.topic, p, left)
        })?;
        if self.member {
            lock(&self.watermark_cache).insert(tp.clone(), (low, high, Instant::now()));
        }
        Ok((low, high))
    }

    /// Handles the rebalances librdkafka announced (see the [module docs](self)). Returns
    /// whether there was any.
    fn run_rebalances(
        &mut self,
        listener: &mut dyn RebalanceListener,
        out: &mut Vec<ConsumedRecord>,
    ) -> crate::error::Result<bool> {
        let events = std::mem::take(&mut *lock(&self.consumer.context().pending));
        let any = !events.is_empty();
        for event in events {
            tracing::debug!(client = %self.client_id, ?event, "rebalance");
            match event {
                RebalanceEvent::Revoke { partitions, lost } => {
                    self.revoke(&partitions, lost, listener, out)?;
                }
                RebalanceEvent::Assign(partitions) => self.take_assignment(partitions, listener)?,
                RebalanceEvent::Error(detail) => {
                    tracing::warn!(client = %self.client_id, %detail, "rebalance error; giving up the assignment");
                    self.revoke(&self.assignment(), true, listener, out)?;
                }
            }
        }
        Ok(any)
    }

    /// The listener's part of a revocation: it commits what was processed (unless the
    /// assignment is lost) and closes what it must.
    fn tell_revoked(
        &mut self,
        partitions: &[TopicPartition],
        lost: bool,
        listener: &mut dyn RebalanceListener,
        out: &mut Vec<ConsumedRecord>,
    ) -> crate::error::Result<()> {
        out.retain(|r| !partitions.contains(&r.partition));
        let mine: Vec<TopicPartition> = partitions
            .iter()
            .filter(|tp| self.positions.contains_key(tp))
            .cloned()
            .collect();
        let lost = lost || std::mem::take(&mut self.fenced);
        if !mine.is_empty() {
            self.revoked_at = if lost {
                None
            } else {
                group_metadata_fields(&self.consumer).map(|(_, g, m)| (g, m))
            };
            let mut lost = lost;
            if !lost {
                let offsets = listener.on_partitions_revoked(&mine)?;
                match self.try_commit(&offsets)? {
                    Ok(()) => {}
                    Err(e) if code_of(&e) == Some(RDKafkaErrorCode::RebalanceInProgress) => {
                        // The group takes no commits while members rejoin (librdkafka's
                        // mock; real brokers take them from members of the current
                        // generation). Kept for the next assignment: partitions that come
                        // back start there and are committed then; no one else can have
                        // owned them in between (eager protocol), unless this member was
                        // expelled meanwhile, which `take_assignment` checks.
                        tracing::warn!(
                            client = %self.client_id,
                            error = %e,
                            "offsets of revoked partitions not committed; kept for the next assignment"
                        );
                        self.uncommitted.extend(offsets);
                    }
                    // Refused as a fenced member's: the revocation turns out a loss.
                    Err(e) if membership_error(code_of(&e)) => lost = true,
                    Err(e) => return Err(self.error("committing offsets", &e).into()),
                }
            }
            if lost {
                listener.on_partitions_lost(&mine)?;
                tracing::warn!(
                    client = %self.client_id,
                    partitions = mine.len(),
                    "the assignment was lost (fenced by the group): offsets are not committed, \
                     the records since the last commit will be processed again"
                );
                // The partitions may have been processed elsewhere since: an empty
                // assignment makes the listener close what it kept for them.
                listener.on_partitions_assigned(&[])?;
            }
        }
        Ok(())
    }

    /// Gives up `partitions`: the listener's part, then the unassignment, which happens
    /// even when the listener failed (librdkafka waits for it before the member can join
    /// again, as a fenced member must).
    fn revoke(
        &mut self,
        partitions: &[TopicPartition],
        lost: bool,
        listener: &mut dyn RebalanceListener,
        out: &mut Vec<ConsumedRecord>,
    ) -> crate::error::Result<()> {
        let told = self.tell_revoked(partitions, lost, listener, out);
        let unassigned = self
            .consumer
            .unassign()
            .map_err(|e| self.error("unassign", &e));
        self.positions.clear();
        self.paused.clear();
        self.held.clear();
        lock(&self.watermark_cache).clear();
        told?;
        unassigned?;
        Ok(())
    }

    fn take_assignment(
        &mut self,
        partitions: Vec<TopicPartition>,
        listener: &mut dyn RebalanceListener,
    ) -> crate::error::Result<()> {
        let mut kept = std::mem::take(&mut self.uncommitted);
        if let Some((generation, member)) = self.revoked_at.take()
            && let Some((_, now_generation, now_member)) = group_metadata_fields(&self.consumer)
            && (now_member != member || now_generation != generation + 1)
        {
            // Expelled in between (a stall past the session timeout, for example): the
            // group had a generation without this member, in which another one may have
            // processed and committed these partitions. What the listener kept since the
            // revocation (suspended tasks) is stale, and so are offsets kept uncommitted.
            tracing::warn!(
                client = %self.client_id,
                revoked_generation = generation,
                generation = now_generation,
                member_changed = now_member != member,
                "the group had a generation without this member since the last revocation: \
                 state kept since is given up"
            );
            kept.clear();
            listener.on_partitions_assigned(&[])?;
        }
        let committed = self.committed(&partitions)?;
        let mut positions = Vec::with_capacity(partitions.len());
        let mut late = Vec::new();
        for (tp, c) in partitions.iter().zip(committed) {
            let (low, _) = self.fetch_watermarks(tp)?;
            let mut start = c.unwrap_or(low).max(low);
            if let Some(&k) = kept.get(tp)
                && k > start
            {
                start = k;
                late.push((tp.clone(), k));
            }
            positions.push((tp.clone(), start));
        }
        let tpl = tpl_with_offsets(&positions)?;
        self.consumer
            .assign(&tpl)
            .map_err(|e| self.error("assign", &e))?;
        match self.try_commit(&late)? {
            Ok(()) => {}
            // The group is rebalancing again already: keep them for the next assignment
            // (positions start there either way), as when a revocation's commit is refused.
            Err(e) if membership_error(code_of(&e)) => {
                tracing::debug!(client = %self.client_id, error = %e, "kept offsets not committed yet");
                self.uncommitted.extend(late.iter().cloned());
            }
            Err(e) => return Err(self.error("committing offsets", &e).into()),
        }
        self.positions = positions.into_iter().collect();
        self.paused.clear();
        self.held.clear();
        listener.on_partitions_assigned(&partitions)?;
        Ok(())
    }

    /// Takes a record librdkafka returned: dropped when its partition is no longer
    /// assigned, or paused (then read again from its position on resume).
    fn take_record(&mut self, tp: TopicPartition, record: RawRecord) -> Option<ConsumedRecord> {
        if !self.positions.contains_key(&tp) {
            return None;
        }
        if self.paused.contains(&tp) {
            self.held.entry(tp).or_default().push(record);
            return None;
        }
        let next = record.offset + 1;
        self.positions.insert(tp.clone(), next);
        if self.member
            && let Some(entry) = lock(&self.watermark_cache).get_mut(&tp)
        {
            entry.1 = entry.1.max(next);
        }
        Some(ConsumedRecord {
            partition: tp,
            record,
        })
    }

    /// Moves positions past what librdkafka consumed without handing out a record:
    /// transaction markers. Its application position (`rd_kafka_position`) moves past
    /// them, and is reset by assign and seek, so it is never behind a seek; partitions
    /// paused here keep theirs (their records may be held). Called after a poll that
    /// returned nothing, so that a partition whose last offset is a marker is at its end
    /// (restoration completes, lag reaches 0) without a query per poll.
    fn move_past_markers(&mut self) {
        if self.positions.is_empty() {
            return;
        }
        let Ok(list) = self.consumer.position() else {
            return;
        };
        for e in list.elements() {
            let (Offset::Offset(at), Ok(partition)) = (e.offset(), u32::try_from(e.partition()))
            else {
                continue;
            };
            let tp = TopicPartition::new(e.topic(), partition);
            if self.paused.contains(&tp) || self.held.contains_key(&tp) {
                continue;
            }
            if let Some(pos) = self.positions.get_mut(&tp)
                && at > *pos
            {
                *pos = at;
            }
        }
    }

    /// Gives up the assignment and leaves the group, within the API timeout.
    fn shut_down(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.consumer
            .context()
            .closing
            .store(true, Ordering::SeqCst);
        if !self.positions.is_empty() || !lock(&self.consumer.context().pending).is_empty() {
            let _ = self.consumer.unassign();
        }
        self.positions.clear();
        if !self.member {
            return;
        }
        if let Err(e) = self.consumer.close_queue() {
            tracing::warn!(client = %self.client_id, error = %e, "closing the consumer failed");
            return;
        }
        let deadline = Instant::now() + self.timeout();
        while !self.consumer.closed() && Instant::now() < deadline {
            let _ = self.consumer.poll(Duration::from_millis(50));
        }
    }
}

/// The high watermark librdkafka last saw for `tp` in a fetch response (its
/// `rd_kafka_get_watermark_offsets`: a local lookup, no request). `None` before the first
/// fetch response of the partition.
pub(super) fn cached_high_watermark(
    consumer: &BaseConsumer<ConsumerCtx>,
    tp: &TopicPartition,
) -> Option<i64> {
    let partition = i32::try_from(tp.partition).ok()?;
    let topic = std::ffi::CString::new(tp.topic.as_bytes()).ok()?;
    let (mut low, mut high) = (-1_i64, -1_i64);
    // SAFETY: the client handle is alive for as long as `consumer` is borrowed; `topic` is a
    // NUL-terminated string that outlives the call; `low` and `high` are valid for writes.
    // The function only reads librdkafka's cached partition state under its own lock (the
    // rdkafka crate wraps the querying variant, `fetch_watermarks`, but not this one).
    #[allow(unsafe_code)]
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high)
}

/// The group id, generation and member id of librdkafka's consumer group metadata
/// (`rd_kafka_consumer_group_metadata_*`; the rdkafka crate keeps them opaque). `None`
/// when the consumer has none (no `group.id`).
pub(super) fn group_metadata_fields(
    consumer: &BaseConsumer<ConsumerCtx>,
) -> Option<(String, i64, String)> {
    use rdkafka::bindings as rd;
    /// A string librdkafka lent (`NULL`: empty).
    ///
    /// # Safety
    /// `p` is `NULL` or a NUL-terminated string alive for the call.
    #[allow(unsafe_code)]
    unsafe fn text(p: *const std::ffi::c_char) -> String {
        if p.is_null() {
            String::new()
        } else {
            // SAFETY: non-null, and NUL-terminated and alive by the caller's promise.
            unsafe { std::ffi::CStr::from_ptr(p) }
                .to_string_lossy()
                .into_owned()
        }
    }
    // SAFETY: the client handle is alive while `consumer` is borrowed. The function returns
    // a new object owned by the caller (or NULL), which is only read below (its getters
    // return strings it owns) and destroyed exactly once, after the last read.
    #[allow(unsafe_code)]
    unsafe {
        let metadata = rd::rd_kafka_consumer_group_metadata(consumer.client().native_ptr());
        if metadata.is_null() {
            return None;
        }
        let group_id = text(rd::rd_kafka_consumer_group_metadata_group_id(metadata));
        let member_id = text(rd::rd_kafka_consumer_group_metadata_member_id(metadata));
        let generation = rd::rd_kafka_consumer_group_metadata_generation_id(metadata);
        rd::rd_kafka_consumer_group_metadata_destroy(metadata);
        Some((group_id, i64::from(generation), member_id))
    }
}

/// A record librdkafka returned, copied out of its buffer.
pub(super) fn owned_record(
    m: &rdkafka::message::BorrowedMessage<'_>,
) -> Option<(TopicPartition, RawRecord)> {
    let tp = TopicPartition::new(m.topic(), u32::try_from(m.partition()).ok()?);
    let mut headers = Headers::new();
    if let Some(h) = m.headers() {
        for Header { key, value } in h.iter() {
            headers.add(key, value.map(<[u8]>::to_vec));
        }
    }
    Some((
        tp,
        RawRecord {
            offset: m.offset(),
            timestamp: m.timestamp().to_millis().unwrap_or(-1),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers,
        },
    ))
}

impl Drop for KafkaConsumer {
    fn drop(&mut self) {
        self.shut_down();
    }
}

impl Consumer for KafkaConsumer {
    fn statistics(&self) -> Option<ClientStatistics> {
        *lock(&self.consumer.context().statistics)
    }

    fn subscribe(&mut self, topics: &[String]) -> ClientResult<()> {
        self.check_open()?;
        if !self.member {
            return Err(ClientError::Broker {
                operation: "subscribe".into(),
                detail: "a consumer without group id cannot subscribe".into(),
            });
        }
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        self.consumer
            .subscribe(&names)
            .map_err(|e| self.error("subscribe", &e))
    }

    fn assign(&mut self, partitions: &[(TopicPartition, i64)]) -> ClientResult<()> {
        self.check_open()?;
        let tpl = tpl_with_offsets(partitions)?;
        self.consumer
            .assign(&tpl)
            .map_err(|e| self.error("assign", &e))?;
        self.positions = partitions.iter().cloned().collect();
        self.paused.retain(|tp| self.positions.contains_key(tp));
        self.held.clear();
        if !self.paused.is_empty() {
            let paused: Vec<TopicPartition> = self.paused.iter().cloned().collect();
            self.consumer
                .pause(&tpl_of(&paused)?)
                .map_err(|e| self.error("pause", &e))?;
        }
        Ok(())
    }

    fn poll(
        &mut self,
        timeout: Duration,
        listener: &mut dyn RebalanceListener,
    ) -> crate::error::Result<Vec<ConsumedRecord>> {
        self.check_open()?;
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        if self.run_rebalances(listener, &mut out)? {
            return Ok(out);
        }
        // Records held while their partition was paused come first, in order.
        let resumed: Vec<TopicPartition> = self
            .held
            .keys()
            .filter(|tp| !self.paused.contains(*tp))
            .cloned()
            .collect();
        for tp in resumed {
            for record in self.held.remove(&tp).unwrap_or_default() {
                if let Some(r) = self.take_record(tp.clone(), record) {
                    out.push(r);
                }
            }
        }
        loop {
            let wait = if out.is_empty() {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            let got = match self.consumer.poll(wait) {
                Some(Ok(m)) => {
                    let owned = owned_record(&m);
                    drop(m);
                    if let Some((tp, record)) = owned
                        && let Some(r) = self.take_record(tp, record)
                    {
                        out.push(r);
                    }
                    true
                }
                Some(Err(KafkaError::PartitionEOF(_))) => true,
                Some(Err(e @ KafkaError::MessageConsumptionFatal(_))) => {
                    return Err(self.error("consuming", &e).into());
                }
                Some(Err(e)) => {
                    // Transient (a broker went away, a topic is not there yet):
                    // librdkafka retries by itself.
                    tracing::debug!(client = %self.client_id, error = %e, "consumer error");
                    true
                }
                None => false,
            };
            if self.run_rebalances(listener, &mut out)? {
                return Ok(out);
            }
            if out.len() >= self.max_records {
                return Ok(out);
            }
            // Records keep coming without waiting: taken up to `max.poll.records` even
            // past the deadline (a zero timeout would otherwise take one record per poll).
            let past = Instant::now() >= deadline;
            if (!got && (past || !out.is_empty())) || (past && out.is_empty()) {
                if out.is_empty() {
                    self.move_past_markers();
                }
                return Ok(out);
            }
        }
    }

    fn pause(&mut self, partitions: &[TopicPartition]) -> ClientResult<()> {
        self.check_open()?;
        for tp in partitions {
            if !self.positions.contains_key(tp) {
                return Err(ClientError::NotAssigned(tp.clone()));
            }
        }
        self.consumer
            .pause(&tpl_of(partitions)?)
            .map_err(|e| self.error("pause", &e))?;
        self.paused.extend(partitions.iter().cloned());
        Ok(())
    }

    fn resume(&mut self, partitions: &[TopicPartition]) -> ClientResult<()> {
        self.check_open()?;
        let assigned: Vec<TopicPartition> = partitions
            .iter()
            .filter(|tp| self.positions.contains_key(tp))
            .cloned()
            .collect();
        for tp in partitions {
            self.paused.remove(tp);
        }
        if assigned.is_empty() {
            return Ok(());
        }
        self.consumer
            .resume(&tpl_of(&assigned)?)
            .map_err(|e| self.error("resume", &e))?;
        Ok(())
    }

    fn seek(&mut self, partition: &TopicPartition, offset: i64) -> ClientResult<()> {
        self.check_open()?;
        if !self.positions.contains_key(partition) {
            return Err(ClientError::NotAssigned(partition.clone()));
        }
        let p = partition_i32(partition)?;
        let operation = format!("seeking {partition} to {offset}");
        self.retrying(&operation, |left| {
            self.consumer
                .seek(&partition.topic, p, Offset::Offset(offset), left)
        })?;
        self.positions.insert(partition.clone(), offset);
        self.held.remove(partition);
        Ok(())
    }

    fn position(&self, partition: &TopicPartition) -> Option<i64> {
        self.positions.get(partition).copied()
    }

    fn commit(&mut self, offsets: &[(TopicPartition, i64)]) -> ClientResult<()> {
        self.check_open()?;
        match self.try_commit(offsets)? {
            Ok(()) => Ok(()),
            Err(e) if code_of(&e) == Some(RDKafkaErrorCode::RebalanceInProgress) => {
                // A rebalance started (the revocation comes in a next poll): kept for the
                // next assignment, as when a revocation's commit is refused the same way.
                tracing::debug!(client = %self.client_id, "commit refused during a rebalance; kept");
                self.uncommitted.extend(offsets.iter().cloned());
                Ok(())
            }
            Err(e) if membership_error(code_of(&e)) => {
                // Fenced (the session expired, e.g. during an outage) or the group is
                // rebalancing: the partitions are revoked as lost in a next poll and the
                // records since the last commit processed again (Kafka Streams' "task
                // migrated": not a failure of the app).
                tracing::warn!(
                    client = %self.client_id,
                    error = %e,
                    "the group refused the commit; the assignment will be given up as lost"
                );
                self.fenced = true;
                Ok(())
            }
            Err(e) => Err(self.error("committing offsets", &e)),
        }
    }

    fn commit_refused(&self) -> bool {
        self.fenced
    }

    fn committed(&self, partitions: &[TopicPartition]) -> ClientResult<Vec<Option<i64>>> {
        self.check_open()?;
        if !self.member {
            return Err(self.no_group("committed"));
        }
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let tpl = tpl_of(partitions)?;
        let got = self.retrying("reading committed offsets", |left| {
            self.consumer.committed_offsets(tpl.clone(), left)
        })?;
        let mut by_tp: HashMap<(String, i32), Option<i64>> = HashMap::new();
        for e in got.elements() {
            let offset = match e.offset() {
                Offset::Offset(o) if o >= 0 => Some(o),
                _ => None,
            };
            by_tp.insert((e.topic().to_string(), e.partition()), offset);
        }
        Ok(partitions
            .iter()
            .map(|tp| {
                by_tp
                    .get(&(tp.topic.to_string(), tp.partition as i32))
                    .copied()
                    .flatten()
            })
            .collect())
    }

    fn watermarks(&self, partition: &TopicPartition) -> ClientResult<(i64, i64)> {
        self.check_open()?;
        if self.member
            && let Some(&(low, high, at)) = lock(&self.watermark_cache).get(partition)
        {
            let age = at.elapsed();
            let behind = self.positions.get(partition).is_some_and(|p| *p < high);
            if age < WATERMARK_TTL_AT_END || (behind && age < WATERMARK_TTL) {
                return Ok((low, high));
            }
        }
        self.fetch_watermarks(partition)
    }

    fn high_watermark_hint(&self, partition: &TopicPartition) -> Option<i64> {
        let from_fetches = cached_high_watermark(&self.consumer, partition);
        // The records handed out prove the end is at least past them.
        let position = self.positions.get(partition).copied();
        match (from_fetches, position) {
            (Some(h), Some(p)) => Some(h.max(p)),
            (h, _) => h,
        }
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.positions.keys().cloned().collect()
    }

    fn member_id(&self) -> String {
        lock(&self.member_id).clone()
    }

    fn group_metadata(&self) -> Option<GroupMetadata> {
        if !self.member || self.closed {
            return None;
        }
        // librdkafka's copy is what the producer sends; the fields are read from a second
        // copy taken around it, again when a rebalance changed them in between.
        for _ in 0..3 {
            let before = group_metadata_fields(&self.consumer);
            let kafka = self.consumer.group_metadata()?;
            let after = group_metadata_fields(&self.consumer);
            if before == after {
                let (group_id, generation, member_id) =
                    after.unwrap_or_else(|| (self.group_id.clone(), -1, String::new()));
                return Some(GroupMetadata {
                    group_id,
                    generation,
                    member_id,
                    kafka: Some(Arc::new(kafka)),
                });
            }
        }
        // Rebalancing right now: the next poll completes it, and the offsets of a member
        // whose generation is over are refused (fenced) anyway.
        let kafka = self.consumer.group_metadata()?;
        Some(GroupMetadata {
            group_id: self.group_id.clone(),
            generation: -1,
            member_id: String::new(),
            kafka: Some(Arc::new(kafka)),
        })
    }

    fn group_members(&self) -> ClientResult<Vec<GroupMember>> {
        self.check_open()?;
        if !self.member {
            return Ok(Vec::new());
        }
        let me = || {
            let id = self.client_id.clone();
            *lock(&self.member_id) = id.clone();
            vec![GroupMember {
                member_id: id,
                client_id: self.client_id.clone(),
                assignment: self.assignment(),
            }]
        };
        if self.describe_unsupported.load(Ordering::Relaxed) {
            return Ok(me());
        }
        let operation = "describing the consumer group";
        // The group just assigned this member, so the broker is reachable: a broker that
        // drops the connection on the request (tansu 0.6) cannot describe groups either.
        let first = self
            .consumer
            .fetch_group_list(Some(&self.group_id), self.timeout().min(DESCRIBE_FIRST_TRY));
        let described = match first {
            Err(e) if code_of(&e) == Some(RDKafkaErrorCode::BrokerTransportFailure) => Err(e),
            Err(_) => retry(self.timeout(), operation, |left| {
                self.consumer.fetch_group_list(Some(&self.group_id), left)
            }),
            ok => ok,
        };
        let list = match described {
            Ok(list) => list,
            Err(e)
                if unsupported(code_of(&e))
                    || code_of(&e) == Some(RDKafkaErrorCode::BrokerTransportFailure) =>
            {
                tracing::warn!(
                    group = %self.group_id,
                    error = %e,
                    "the broker cannot describe consumer groups: each member sees only \
                     itself (standby placement and interactive-query metadata use the \
                     assignment announcements instead)"
                );
                self.describe_unsupported.store(true, Ordering::Relaxed);
                return Ok(me());
            }
            Err(e) => return Err(self.error(operation, &e)),
        };
        let mut members = Vec::new();
        for g in list.groups().iter().filter(|g| g.name() == self.group_id) {
            for m in g.members() {
                let assignment = match m.assignment() {
                    Some(bytes) if !bytes.is_empty() => decode_assignment(bytes)?,
                    _ => Vec::new(),
                };
                if m.client_id() == self.client_id {
                    *lock(&self.member_id) = m.id().to_string();
                }
                members.push(GroupMember {
                    member_id: m.id().to_string(),
                    client_id: m.client_id().to_string(),
                    assignment,
                });
            }
        }
        members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        Ok(members)
    }

    fn close(&mut self) -> ClientResult<()> {
        self.shut_down();
        Ok(())
    }
}

/// Decodes a member's assignment as the consumer protocol (`ConsumerProtocolAssignment`,
/// every version) writes it: version (i16), then an array (i32 count) of topics, each a
/// string (i16 length, UTF-8) and an array of i32 partitions, then user data (i32 length,
/// -1 for null) and nothing else we need. Integers are big-endian.
///
/// ```
/// use streams_core::client::TopicPartition;
/// use streams_core::client::kafka::decode_assignment;
///
/// let mut bytes = vec![0, 1, 0, 0, 0, 1, 0, 1, b'a', 0, 0, 0, 2];
/// bytes.extend([0, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff]);
/// assert_eq!(
///     decode_assignment(&bytes).unwrap(),
///     vec![TopicPartition::new("a", 0), TopicPartition::new("a", 3)]
/// );
/// ```
pub fn decode_assignment(bytes: &[u8]) -> ClientResult<Vec<TopicPartition>> {
    struct Reader<'a>(&'a [u8]);
    impl Reader<'_> {
        fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
            let (head, rest) = self.0.split_first_chunk::<N>()?;
            self.0 = rest;
            Some(*head)
        }
        fn i16(&mut self) -> Option<i16> {
            self.take::<2>().map(i16::from_be_bytes)
        }
        fn i32(&mut self) -> Option<i32> {
            self.take::<4>().map(i32::from_be_bytes)
        }
        fn string(&mut self) -> Option<String> {
            let len = usize::try_from(self.i16()?).ok()?;
            let (s, rest) = self.0.split_at_checked(len)?;
            self.0 = rest;
            String::from_utf8(s.to_vec()).ok()
        }
    }
    let bad = || ClientError::Broker {
        operation: "decoding a group member's assignment".into(),
        detail: format!(
            "malformed consumer protocol assignment ({} bytes)",
            bytes.len()
        ),
    };
    let mut r = Reader(bytes);
    let _version = r.i16().ok_or_else(bad)?;
    let topics = r.i32().ok_or_else(bad)?;
    let mut out = Vec::new();
    for _ in 0..topics.max(0) {
        let topic: Arc<str> = Arc::from(r.string().ok_or_else(bad)?);
        let n = r.i32().ok_or_else(bad)?;
        for _ in 0..n.max(0) {
            let p = r.i32().ok_or_else(bad)?;
            let p = u32::try_from(p).map_err(|_| bad())?;
            out.push(TopicPartition::new(topic.clone(), p));
        }
    }
    // User data follows (ignored).
    Ok(out)
}
