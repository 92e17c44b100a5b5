//! The task manager of a stream thread: its active and standby tasks, processing in
//! timestamp order across tasks, punctuation, routing output, committing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use streams_state::ChangelogPartition;

use crate::client::{
    Admin, ConsumedRecord, Consumer, GroupMetadata, OutgoingRecord, Producer, TopicPartition,
};
use crate::error::{Result, StreamsError};
use crate::internals::task::{ProducedRecord, Readiness, Task, TaskEnv};
use crate::record::{Header, TaskId};
use crate::runtime::{Instance, TaskLock, TaskState, wall_clock};

use super::*;

/// An active task and where it is in its life.
pub(super) struct Active {
    pub(super) task: Task,
    pub(super) state: TaskState,
    pub(super) _lock: TaskLock,
    /// Changelog partitions still restoring: next offset, end offset.
    pub(super) restoring: BTreeMap<ChangelogPartition, (i64, i64)>,
    /// How far the stores are known to hold each changelog partition: the end its
    /// restoration read up to, then past every record this thread's producer delivered
    /// to it. Checkpoints name these offsets, never the log's end, which another member
    /// may have moved (one that took the task over while this one stalled): a store
    /// checkpointed past records it never applied would skip them at its next restore.
    pub(super) written: HashMap<ChangelogPartition, i64>,
    /// At-least-once: revoked, its offsets handed to the consumer to commit; checkpointed
    /// when the assignment that follows shows the group took the commit (a refused one
    /// makes the revocation a loss instead, which wipes it).
    pub(super) checkpoint_due: bool,
    pub(super) restored: u64,
    pub(super) restore_total: u64,
    /// Input partitions paused because their queue is full.
    pub(super) paused: BTreeSet<TopicPartition>,
    pub(super) e2e_latency_ms: Option<i64>,
    /// End-to-end latencies since the last metrics publish (`metrics_export`).
    pub(super) e2e: crate::metrics_export::LatencyWindow,
    /// When the task opened (its restoration started), for the "task restored" line.
    pub(super) restore_started: Instant,
}

impl Active {
    /// A task opened now, its stores to restore from `restoring` (changelog partition:
    /// next offset, end offset).
    pub(super) fn restoring(
        task: Task,
        lock: TaskLock,
        restoring: BTreeMap<ChangelogPartition, (i64, i64)>,
    ) -> Self {
        Self {
            task,
            state: TaskState::Restoring,
            _lock: lock,
            restoring,
            written: HashMap::new(),
            checkpoint_due: false,
            restored: 0,
            restore_total: 0,
            paused: BTreeSet::new(),
            e2e_latency_ms: None,
            e2e: Default::default(),
            restore_started: Instant::now(),
        }
    }
}

/// A standby task: stores following changelogs, never processing.
pub(super) struct Standby {
    pub(super) task: Task,
    pub(super) _lock: TaskLock,
    /// Next offset to apply per changelog partition.
    pub(super) positions: BTreeMap<ChangelogPartition, i64>,
    pub(super) applied: u64,
}

/// The tasks of a thread and everything needed to run, commit and move them. It is the
/// thread's consumer's rebalance listener.
pub(super) struct TaskManager {
    pub(super) instance: Arc<Instance>,
    pub(super) env: TaskEnv,
    pub(super) producer: Box<dyn Producer>,
    pub(super) restore: Box<dyn Consumer>,
    pub(super) admin: Arc<dyn Admin>,
    pub(super) partitions: HashMap<String, u32>,
    pub(super) round_robin: u32,
    pub(super) active: BTreeMap<TaskId, Active>,
    pub(super) suspended: BTreeMap<TaskId, Active>,
    /// Assigned tasks waiting for their directory (another thread still holds it).
    pub(super) pending: BTreeSet<TaskId>,
    pub(super) standby: BTreeMap<TaskId, Standby>,
    /// The assignment changed: restoration and standbys need a new look.
    pub(super) reassigned: bool,
    /// The changelog partitions the restore consumer is assigned.
    pub(super) restore_assignment: Vec<(TopicPartition, i64)>,
    /// Whether the group gave this thread an assignment yet.
    pub(super) assigned: bool,
    /// Partitions whose records were read while their task could not open yet: the first
    /// such offset, to read again from once it opens.
    pub(super) unread: BTreeMap<TopicPartition, i64>,
    /// Undeliverable output records the production handler skipped.
    pub(super) production_errors_skipped: u64,
    /// A new assignment to announce (see `membership`), when the instance announces.
    pub(super) announce: Option<Vec<TopicPartition>>,
    /// Deleting repartition records failed once: no more attempts.
    pub(super) purge_failed: bool,
    /// `exactly_once_v2`: the producer is transactional, each commit is a transaction.
    pub(super) eos: bool,
    /// A transaction is open (something was sent since the last commit).
    pub(super) txn_open: bool,
    /// The consumer's group metadata as of the last poll, for the transaction's offsets
    /// (the rebalance listener has no access to the consumer).
    pub(super) group_metadata: Option<GroupMetadata>,
    /// The stream thread's span (`stream_thread`): the parent of the task spans.
    pub(super) thread_span: tracing::Span,
    /// The `task` spans of this loop iteration (enabled ones only): one span per task per
    /// iteration, entered around each piece of the task's work (see `task_span`).
    pub(super) task_spans: Vec<(TaskId, tracing::Span)>,
    /// The rebalance under way, for its log line.
    pub(super) rebalance: RebalanceLog,
    /// This thread's event-time floor, published for the other threads (and theirs).
    pub(super) clock: crate::runtime::alignment::ThreadClock,
    /// The last `process` stopped because another thread (or a task of this one waiting
    /// for its next fetch) is more than [`TASK_SKEW_MS`] behind in event time.
    pub(super) held_back: bool,
    /// The oldest timestamp of the input records processed since the producer last
    /// appended its batches (`i64::MAX`: none): their output may still reach a repartition
    /// topic, so the published floor is never above it.
    pub(super) unflushed: i64,
}

impl TaskManager {
    /// The `task` span of `id` for this loop iteration (fields `task_id`, `partition`),
    /// child of the thread's span: created on first use in the iteration, then the same
    /// span again, so a task has at most one span per iteration however often it is
    /// entered. A DEBUG span: when the subscriber filters it out, this is a level check
    /// (the callsite's cached interest) and nothing is allocated or kept.
    pub(super) fn task_span(&mut self, id: TaskId) -> tracing::Span {
        if let Some((_, span)) = self.task_spans.iter().find(|(t, _)| *t == id) {
            return span.clone();
        }
        let span = tracing::debug_span!(
            parent: &self.thread_span,
            "task",
            task_id = %id,
            partition = id.partition
        );
        if !span.is_disabled() {
            self.task_spans.push((id, span.clone()));
        }
        span
    }

    /// Lets the producer append its batches (and report failed deliveries).
    pub(super) fn poll_producer(&mut self) -> Result<()> {
        let polled = self.producer.poll();
        self.unflushed = i64::MAX;
        self.delivered(polled)
    }

    /// Applies the production handler to what a producer poll or flush reported: failed
    /// deliveries fail the thread, or (`continue`) are logged, counted and skipped.
    pub(super) fn delivered(&mut self, result: crate::client::ClientResult<()>) -> Result<()> {
        match result {
            Err(crate::client::ClientError::Delivery { failed, detail })
                if self.instance.config.production_handler()
                    == crate::config::ProductionHandler::Continue =>
            {
                tracing::warn!(
                    failed,
                    %detail,
                    "output records could not be delivered; skipped (production.exception.handler=continue)"
                );
                self.production_errors_skipped += failed;
                Ok(())
            }
            other => Ok(other?),
        }
    }

    /// Announces this thread's assignment (`None`: it is leaving) on the instance's
    /// announcement topic, durably before the thread goes on; nothing when the instance
    /// does not announce.
    pub(super) fn announce_assignment(
        &mut self,
        client_id: &str,
        value: Option<Vec<u8>>,
    ) -> Result<()> {
        let Some(topic) = self.instance.announcements.clone() else {
            return Ok(());
        };
        self.begin_if_needed()?;
        self.producer.send(OutgoingRecord {
            partition: TopicPartition::new(topic, 0),
            timestamp: wall_clock(),
            key: Some(client_id.as_bytes().to_vec()),
            value,
            headers: Vec::new(),
        })?;
        let flushed = self.producer.flush(FLUSH_TIMEOUT);
        self.delivered(flushed)
    }

    /// When this thread next has something to do without new records: now (restoration,
    /// tasks waiting for their directory, a task ready to process), at a wall-clock time
    /// (a task waits for an empty partition until then), or not at all.
    pub(super) fn next_work(&mut self, now: i64) -> Work {
        if !self.restore_assignment.is_empty() || !self.pending.is_empty() {
            return Work::Now;
        }
        let mut next = Work::None;
        for a in self.active.values_mut() {
            if a.state != TaskState::Running {
                continue;
            }
            match a.task.readiness(now) {
                Readiness::Ready | Readiness::Enforced => return Work::Now,
                Readiness::Waiting {
                    deadline: Some(d), ..
                } => {
                    next = match next {
                        Work::At(e) => Work::At(e.min(d)),
                        _ => Work::At(d),
                    };
                }
                Readiness::Waiting { deadline: None } => {}
            }
        }
        next
    }

    /// Whether every running task has processed all of its partitions' logs (as the
    /// consumer last saw them).
    pub(super) fn caught_up(&mut self) -> bool {
        self.active
            .values_mut()
            .all(|a| a.state != TaskState::Running || a.task.caught_up())
    }

    /// Gives each running task the lag of its input partitions as the consumer saw it in
    /// its last fetches (the log end it knows minus its position; unknown before the
    /// first fetch response of a partition), for `max.task.idle.ms`.
    pub(super) fn update_lags(&mut self, consumer: &dyn Consumer) {
        for (id, a) in &mut self.active {
            if a.state != TaskState::Running {
                continue;
            }
            let partition = id.partition;
            a.task.update_lags(|topic| {
                let tp = TopicPartition::new(topic, partition);
                match (consumer.position(&tp), consumer.high_watermark_hint(&tp)) {
                    (Some(pos), Some(end)) => Some((end - pos).max(0)),
                    _ => None,
                }
            });
        }
    }

    /// The task reading `tp`.
    pub(super) fn task_of(&self, tp: &TopicPartition) -> Option<TaskId> {
        self.instance.source_of.get(&*tp.topic).map(|&sub| TaskId {
            subtopology: sub as u32,
            partition: tp.partition,
        })
    }

    pub(super) fn add_records(&mut self, records: Vec<ConsumedRecord>) -> Result<()> {
        let mut by_partition: BTreeMap<TopicPartition, Vec<crate::record::RawRecord>> =
            BTreeMap::new();
        for r in records {
            by_partition.entry(r.partition).or_default().push(r.record);
        }
        for (tp, raws) in by_partition {
            let Some(id) = self.task_of(&tp) else {
                continue;
            };
            match self.active.get_mut(&id) {
                Some(a) => a.task.add_records(&tp.topic, raws)?,
                None => {
                    // The task is not open yet (waiting for its directory): these records
                    // are read again once it is.
                    if let Some(first) = raws.first() {
                        self.unread.entry(tp).or_insert(first.offset);
                    }
                }
            }
        }
        Ok(())
    }

    /// Processes queued records of the running tasks that are ready, oldest first: the
    /// task whose next record has the smallest timestamp runs until its next record is more
    /// than [`TASK_SKEW_MS`] younger than the next record of any other ready task (or
    /// [`PROCESS_BATCH`] records), then the oldest task again, until nothing is ready or
    /// the round's limit is reached. The tasks of a thread so move through event time
    /// together even when they catch up a backlog, and a task after a repartition topic
    /// receives its upstream tasks' records nearly in timestamp order (a task processing
    /// its whole backlog before the next one made them late there).
    ///
    /// The same bound holds against what is pending but cannot run now: a task whose queue
    /// ran empty (at its stream time, see `Task::pending_time`) or that waits for an empty
    /// partition (`max.task.idle.ms`), and the other threads' floors (`runtime::alignment`),
    /// which count this thread's output not appended yet (`unflushed`). When
    /// the oldest ready record is beyond it, the thread is held back (`held_back`) and
    /// polls again shortly. Returns how many records were processed.
    pub(super) fn process(&mut self) -> Result<usize> {
        let now = wall_clock();
        let ids: Vec<TaskId> = self.active.keys().copied().collect();
        let limit = PROCESS_BATCH * 4 * ids.len().max(1);
        let mut total = 0;
        self.held_back = false;
        let aligned = self.instance.config.thread_alignment();
        loop {
            // The ready task with the oldest next record, the oldest next record of the
            // other ready tasks, and the oldest pending time of the tasks that cannot run.
            let mut oldest: Option<(i64, TaskId)> = None;
            let mut runner_up = i64::MAX;
            let mut blocked = i64::MAX;
            for id in &ids {
                let Some(a) = self.active.get_mut(id) else {
                    continue;
                };
                if aligned
                    && a.state == TaskState::Restoring
                    && a.restore_started.elapsed() < RESTORE_HOLD
                {
                    // Where its input starts is not known before it runs: as old as anything.
                    blocked = i64::MIN;
                }
                if a.state != TaskState::Running {
                    continue;
                }
                a.task.ctx.wall_clock = now;
                if matches!(a.task.readiness(now), Readiness::Waiting { .. }) {
                    if aligned && let Some(ts) = a.task.pending_time(now) {
                        blocked = blocked.min(ts);
                    }
                    continue;
                }
                let Some(ts) = a.task.head_timestamp() else {
                    if aligned && let Some(ts) = a.task.pending_time(now) {
                        blocked = blocked.min(ts);
                    }
                    continue;
                };
                match oldest {
                    Some((o, _)) if o <= ts => runner_up = runner_up.min(ts),
                    _ => {
                        if let Some((o, _)) = oldest {
                            runner_up = runner_up.min(o);
                        }
                        oldest = Some((ts, *id));
                    }
                }
            }
            let others = if aligned {
                let others = self.clock.others();
                let floor = oldest.map_or(i64::MAX, |(o, _)| o).min(blocked);
                if others != i64::MAX && floor > self.unflushed.saturating_add(TASK_SKEW_MS) {
                    // The output of older records still waits in the producer while
                    // another thread waits for this one: append it.
                    self.poll_producer()?;
                }
                let published = floor.min(self.unflushed);
                self.clock
                    .publish((published != i64::MAX).then_some(published));
                others
            } else {
                i64::MAX
            };
            let Some((ts, id)) = oldest else {
                break;
            };
            if total >= limit {
                break;
            }
            let held = blocked.min(others);
            if ts > held.saturating_add(TASK_SKEW_MS) {
                self.held_back = true;
                break;
            }
            // One span around the batch (up to `PROCESS_BATCH` records), never per record.
            let span = self.task_span(id);
            let _entered = span.enter();
            let Some(a) = self.active.get_mut(&id) else {
                break;
            };
            let bound = runner_up.min(held).saturating_add(TASK_SKEW_MS);
            self.unflushed = self.unflushed.min(ts);
            let mut n = 0;
            while n < PROCESS_BATCH
                && (n == 0 || a.task.head_timestamp().is_some_and(|t| t <= bound))
                && a.task.process_ready(now)?
            {
                n += 1;
            }
            if n > 0 {
                let e2e = wall_clock() - a.task.ctx.current_timestamp;
                a.e2e_latency_ms = Some(e2e);
                a.e2e.record(e2e);
            }
            let out = a.task.take_output();
            self.route(out)?;
            if n == 0 {
                break;
            }
            total += n;
        }
        Ok(total)
    }

    /// Fires wall-clock punctuators (and idle advance) of running tasks; whether any
    /// fired.
    pub(super) fn punctuate(&mut self, now: i64) -> Result<bool> {
        let mut fired = false;
        let ids: Vec<TaskId> = self.active.keys().copied().collect();
        for id in ids {
            if !self
                .active
                .get(&id)
                .is_some_and(|a| a.state == TaskState::Running)
            {
                continue;
            }
            let span = self.task_span(id);
            let _entered = span.enter();
            let Some(a) = self.active.get_mut(&id) else {
                continue;
            };
            fired |= a.task.punctuate_wall_clock(now)?;
            let out = a.task.take_output();
            self.route(out)?;
        }
        Ok(fired)
    }

    /// Under `exactly_once_v2`, opens a transaction before the first send after a commit.
    pub(super) fn begin_if_needed(&mut self) -> Result<()> {
        if self.eos && !self.txn_open {
            self.producer.begin_transaction()?;
            self.txn_open = true;
        }
        Ok(())
    }

    /// Under `exactly_once_v2`: commits the open transaction with `offsets` (the input
    /// offsets of every task, sent with the group metadata); a transaction is opened first
    /// when there are offsets but nothing was sent. Nothing under `at_least_once`.
    pub(super) fn commit_transaction(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        if !self.eos || (!self.txn_open && offsets.is_empty()) {
            return Ok(());
        }
        self.begin_if_needed()?;
        if !offsets.is_empty() {
            let Some(group) = self.group_metadata.clone() else {
                return Err(StreamsError::Internal(
                    "committing offsets in a transaction without group metadata".into(),
                ));
            };
            self.producer
                .send_offsets_to_transaction(offsets, &group, FLUSH_TIMEOUT)?;
        }
        // A commit that timed out is still open and resumes when called again (librdkafka):
        // a few more attempts before the thread gives up.
        let mut attempts = 0;
        loop {
            match self.producer.commit_transaction(FLUSH_TIMEOUT) {
                Err(e) if e.is_retriable() && attempts < COMMIT_RETRIES => {
                    attempts += 1;
                    tracing::warn!(error = %e, attempts, "committing the transaction timed out; trying again");
                }
                other => {
                    other?;
                    break;
                }
            }
        }
        self.txn_open = false;
        Ok(())
    }

    /// After a clean commit (closing, or tasks revoked) under `exactly_once_v2`: writes the
    /// checkpoint of every running task, which processing had removed.
    pub(super) fn checkpoint_clean(&mut self) -> Result<()> {
        if !self.eos {
            return Ok(());
        }
        let ids: Vec<TaskId> = self
            .active
            .iter()
            .chain(self.suspended.iter())
            .filter(|(_, a)| a.state != TaskState::Restoring)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.checkpoint_task(id)?;
        }
        Ok(())
    }

    /// Writes the checkpoint of an active or suspended task at the changelog offsets its
    /// stores are known to hold (see [`Active::written`]).
    pub(super) fn checkpoint_task(&mut self, id: TaskId) -> Result<()> {
        self.note_delivered();
        if let Some(a) = self.active.get(&id).or_else(|| self.suspended.get(&id)) {
            a.task.write_checkpoint(&a.written)?;
        }
        Ok(())
    }

    /// Writes the checkpoints of the running tasks among `ids` (at-least-once, after a
    /// commit the group took).
    pub(super) fn checkpoint_running(&mut self, ids: &[TaskId]) -> Result<()> {
        for id in ids {
            if self
                .active
                .get(id)
                .is_some_and(|a| a.state == TaskState::Running)
            {
                self.checkpoint_task(*id)?;
            }
        }
        Ok(())
    }

    /// Moves each task's known changelog offsets past what the producer delivered to them.
    pub(super) fn note_delivered(&mut self) {
        for (tp, end) in self.producer.take_delivered() {
            let Some(subtopology) = self.changelog_subtopology_of(&tp.topic) else {
                continue;
            };
            let id = TaskId {
                subtopology,
                partition: tp.partition,
            };
            let Some(a) = self
                .active
                .get_mut(&id)
                .or_else(|| self.suspended.get_mut(&id))
            else {
                continue;
            };
            let p = ChangelogPartition {
                topic: tp.topic.to_string(),
                partition: tp.partition,
            };
            let known = a.written.entry(p).or_insert(end);
            *known = (*known).max(end);
        }
    }

    /// Sends produced records, choosing partitions with Kafka's murmur2 partitioner.
    pub(super) fn route(&mut self, out: Vec<ProducedRecord>) -> Result<()> {
        if !out.is_empty() {
            self.begin_if_needed()?;
        }
        for r in out {
            let n = match self.partitions.get(&*r.topic) {
                Some(&n) => n,
                None => self.output_topic(&r.topic)?,
            };
            let partition = crate::partitioner::choose_partition(
                r.partition,
                r.key.as_deref(),
                n,
                &mut self.round_robin,
            );
            let headers = r
                .headers
                .iter()
                .map(|Header { key, value }| (key.clone(), value.clone()))
                .collect();
            self.producer.send(OutgoingRecord {
                partition: TopicPartition::new(r.topic, partition),
                timestamp: r.timestamp,
                key: r.key,
                value: r.value,
                headers,
            })?;
        }
        Ok(())
    }

    /// The partition count of an output topic the app did not know at start: looked up,
    /// or (on the embedded engine, as auto-creation) created sized like the app's inputs.
    pub(super) fn output_topic(&mut self, topic: &str) -> Result<u32> {
        if let Some(&n) = self.admin.topics()?.get(topic) {
            self.partitions.insert(topic.to_string(), n);
            return Ok(n);
        }
        let n = self.partitions.values().copied().max().unwrap_or(1);
        match self
            .admin
            .create_topic(&crate::client::NewTopic::new(topic, n))
        {
            Ok(()) | Err(crate::client::ClientError::TopicExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let n = self.admin.topics()?.get(topic).copied().unwrap_or(n);
        self.partitions.insert(topic.to_string(), n);
        Ok(n)
    }

    /// The first half of a commit for `ids`: flush caches and stores, flush the producer,
    /// write checkpoints. Returns the input offsets to commit.
    pub(super) fn prepare_commit(&mut self, ids: &[TaskId]) -> Result<Vec<(TopicPartition, i64)>> {
        let mut offsets = Vec::new();
        let mut flushed = Vec::new();
        for id in ids {
            if !self
                .active
                .get(id)
                .is_some_and(|a| a.state == TaskState::Running)
            {
                continue;
            }
            let span = self.task_span(*id);
            let _entered = span.enter();
            let Some(a) = self.active.get_mut(id) else {
                continue;
            };
            a.task.flush()?;
            let out = a.task.take_output();
            self.route(out)?;
            flushed.push(*id);
        }
        let flushed_all = self.producer.flush(FLUSH_TIMEOUT);
        self.delivered(flushed_all)?;
        self.note_delivered();
        for id in flushed {
            let span = self.task_span(id);
            let _entered = span.enter();
            if self.eos {
                // No checkpoint while processing: a crash restores from the changelogs.
                if let Some(a) = self.active.get_mut(&id) {
                    for (topic, offset) in a.task.committable_offsets() {
                        offsets.push((TopicPartition::new(topic, id.partition), offset));
                    }
                }
                continue;
            }
            let Some(a) = self.active.get_mut(&id) else {
                continue;
            };
            for (topic, offset) in a.task.committable_offsets() {
                offsets.push((TopicPartition::new(topic, id.partition), offset));
            }
        }
        Ok(offsets)
    }

    /// Deletes committed records of repartition topics: nobody needs them any more. A
    /// broker that refuses (or breaks on) DeleteRecords costs disk, not correctness: the
    /// first failure is logged once and this thread stops purging.
    pub(super) fn purge_repartition(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        if !self.instance.config.repartition_purge() || self.purge_failed {
            return Ok(());
        }
        for (tp, offset) in offsets {
            if self.instance.repartition.contains(&*tp.topic)
                && let Err(e) = self.admin.delete_records(tp, *offset)
            {
                tracing::warn!(
                    partition = %tp,
                    error = %e,
                    "deleting committed records of a repartition topic failed; this thread goes on without purging (set streams.repartition.purge=false to skip it)"
                );
                self.purge_failed = true;
                return Ok(());
            }
        }
        Ok(())
    }

    pub(super) fn checkpoint_standbys(&mut self) -> Result<()> {
        for s in self.standby.values_mut() {
            s.task.flush()?;
            let ends: HashMap<ChangelogPartition, i64> =
                s.positions.iter().map(|(p, o)| (p.clone(), *o)).collect();
            s.task.write_checkpoint(&ends)?;
        }
        Ok(())
    }
}
