//! A stream thread: one consumer group member and the tasks of the partitions assigned to
//! it, plus standby tasks, run in Kafka Streams' loop.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use streams_state::{ChangelogPartition, ChangelogRecord, ThreadCache};

use super::{
    Instance, TaskLock, TaskSnapshot, TaskState, ThreadSnapshot, ThreadStatus, instance_of, lock,
    wall_clock,
};
use crate::client::{
    Admin, ClientError, ConsumedRecord, Consumer, GroupMember, GroupMetadata, NoRebalanceListener,
    OutgoingRecord, Producer, RebalanceListener, TopicPartition,
};
use crate::error::{Result, StreamsError};
use crate::internals::task::{ProducedRecord, Readiness, Task, TaskEnv};
use crate::record::{Header, TaskId};

/// How many records a task processes at most before the thread looks for the oldest
/// task again.
const PROCESS_BATCH: usize = 1024;
/// How far (event time, ms) a task of a thread may run ahead of the thread's other ready
/// tasks before the thread switches to the oldest one (see `TaskManager::process`).
const TASK_SKEW_MS: i64 = 1000;
/// How long a producer flush may take before the commit fails.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a transaction's commit that timed out is tried again before the thread fails.
const COMMIT_RETRIES: u32 = 3;
/// A commit taking longer than this is logged at WARN (see docs/TRACING.md).
const SLOW_COMMIT: Duration = Duration::from_secs(1);

/// `d` in whole milliseconds, for log fields.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What a thread has to do next, apart from reading new records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    /// Something to do now: poll without waiting.
    Now,
    /// A task waits for an empty input partition until this wall-clock time.
    At(i64),
    /// Nothing until records arrive.
    None,
}

/// An active task and where it is in its life.
struct Active {
    task: Task,
    state: TaskState,
    _lock: TaskLock,
    /// Changelog partitions still restoring: next offset, end offset.
    restoring: BTreeMap<ChangelogPartition, (i64, i64)>,
    restored: u64,
    restore_total: u64,
    /// Input partitions paused because their queue is full.
    paused: BTreeSet<TopicPartition>,
    e2e_latency_ms: Option<i64>,
    /// End-to-end latencies since the last metrics publish (`metrics_export`).
    e2e: crate::metrics_export::LatencyWindow,
    /// When the task opened (its restoration started), for the "task restored" line.
    restore_started: Instant,
}

/// A standby task: stores following changelogs, never processing.
struct Standby {
    task: Task,
    _lock: TaskLock,
    /// Next offset to apply per changelog partition.
    positions: BTreeMap<ChangelogPartition, i64>,
    applied: u64,
}

/// The tasks of a thread and everything needed to run, commit and move them. It is the
/// thread's consumer's rebalance listener.
struct TaskManager {
    instance: Arc<Instance>,
    env: TaskEnv,
    producer: Box<dyn Producer>,
    restore: Box<dyn Consumer>,
    admin: Arc<dyn Admin>,
    partitions: HashMap<String, u32>,
    round_robin: u32,
    active: BTreeMap<TaskId, Active>,
    suspended: BTreeMap<TaskId, Active>,
    /// Assigned tasks waiting for their directory (another thread still holds it).
    pending: BTreeSet<TaskId>,
    standby: BTreeMap<TaskId, Standby>,
    /// The assignment changed: restoration and standbys need a new look.
    reassigned: bool,
    /// The changelog partitions the restore consumer is assigned.
    restore_assignment: Vec<(TopicPartition, i64)>,
    /// Whether the group gave this thread an assignment yet.
    assigned: bool,
    /// Partitions whose records were read while their task could not open yet: the first
    /// such offset, to read again from once it opens.
    unread: BTreeMap<TopicPartition, i64>,
    /// Undeliverable output records the production handler skipped.
    production_errors_skipped: u64,
    /// A new assignment to announce (see `membership`), when the instance announces.
    announce: Option<Vec<TopicPartition>>,
    /// Deleting repartition records failed once: no more attempts.
    purge_failed: bool,
    /// `exactly_once_v2`: the producer is transactional, each commit is a transaction.
    eos: bool,
    /// A transaction is open (something was sent since the last commit).
    txn_open: bool,
    /// The consumer's group metadata as of the last poll, for the transaction's offsets
    /// (the rebalance listener has no access to the consumer).
    group_metadata: Option<GroupMetadata>,
    /// The stream thread's span (`stream_thread`): the parent of the task spans.
    thread_span: tracing::Span,
    /// The `task` spans of this loop iteration (enabled ones only): one span per task per
    /// iteration, entered around each piece of the task's work (see `task_span`).
    task_spans: Vec<(TaskId, tracing::Span)>,
    /// The rebalance under way, for its log line.
    rebalance: RebalanceLog,
}

/// What a rebalance did, gathered by the rebalance listener and logged once by the thread
/// after the poll that completed it (the generation is the consumer's).
#[derive(Debug, Default)]
struct RebalanceLog {
    /// When it started: the revocation, or the subscription (joining the group).
    started: Option<Instant>,
    /// Partitions and active tasks revoked since it started.
    revoked_partitions: usize,
    revoked_tasks: usize,
    /// The finished rebalance, to log.
    done: Option<Rebalanced>,
}

/// A finished rebalance (see [`RebalanceLog`]).
#[derive(Debug)]
struct Rebalanced {
    duration: Duration,
    revoked_partitions: usize,
    revoked_tasks: usize,
    assigned_partitions: usize,
    /// Active tasks after it.
    active_tasks: usize,
    /// Tasks kept from before the rebalance (suspended, then resumed).
    resumed: usize,
    /// Tasks opened (restoring first).
    opened: usize,
    /// Suspended tasks that did not come back, closed.
    closed: usize,
    /// Assigned tasks waiting for their directory.
    pending: usize,
}

/// One stream thread (see the [module docs](self)).
pub(crate) struct StreamThread {
    instance: Arc<Instance>,
    slot: usize,
    name: String,
    consumer: Box<dyn Consumer>,
    tm: TaskManager,
    started: Instant,
    polls: u64,
    poll_time: Duration,
    processed: u64,
    process_time: Duration,
    commits: u64,
    commit_time: Duration,
    reports: u64,
    /// Records were processed (or punctuators ran) since the last commit.
    dirty: bool,
    /// The version of the announced group view the standbys were last placed by.
    standby_view: u64,
    /// Metrics export (`metrics_export`): the loop's accumulators and the publisher.
    metrics: crate::metrics_export::ThreadRecorder,
}

impl StreamThread {
    pub(crate) fn new(instance: Arc<Instance>, slot: usize, name: String) -> Result<Self> {
        let clients = instance.clients.clone();
        let group = instance.config.application_id().to_string();
        let consumer = clients.consumer(&group, &format!("{name}-consumer"))?;
        let threads = instance.config.num_stream_threads().max(1);
        let env = TaskEnv {
            config: instance.config.clone(),
            resources: instance.resources.clone(),
            cache: ThreadCache::new(instance.config.cache_max_bytes() / threads),
            globals: instance.global_entries.clone(),
        };
        let eos = instance.config.processing_guarantee()
            == crate::config::ProcessingGuarantee::ExactlyOnceV2;
        let producer = if eos {
            // KIP-447: one transactional producer per thread; the id is unique to this
            // process and thread (zombies are fenced by the group generation).
            let mut p = clients.transactional_producer(&format!("{name}-producer"), &name)?;
            p.init_transactions(FLUSH_TIMEOUT)?;
            p
        } else {
            clients.producer(&format!("{name}-producer"))?
        };
        let tm = TaskManager {
            env,
            producer,
            eos,
            txn_open: false,
            group_metadata: None,
            restore: clients.restore_consumer(&format!("{name}-restore-consumer"))?,
            admin: clients.admin()?,
            partitions: instance.partitions.clone(),
            round_robin: 0,
            active: BTreeMap::new(),
            suspended: BTreeMap::new(),
            pending: BTreeSet::new(),
            standby: BTreeMap::new(),
            reassigned: false,
            restore_assignment: Vec::new(),
            assigned: false,
            unread: BTreeMap::new(),
            production_errors_skipped: 0,
            announce: None,
            purge_failed: false,
            instance: instance.clone(),
            // `spawn_thread` entered the thread's span before creating the thread.
            thread_span: tracing::Span::current(),
            task_spans: Vec::new(),
            rebalance: RebalanceLog::default(),
        };
        Ok(Self {
            instance,
            slot,
            name,
            consumer,
            tm,
            started: Instant::now(),
            polls: 0,
            poll_time: Duration::ZERO,
            processed: 0,
            process_time: Duration::ZERO,
            commits: 0,
            commit_time: Duration::ZERO,
            reports: 0,
            dirty: false,
            standby_view: 0,
            metrics: Default::default(),
        })
    }

    pub(crate) fn run(&mut self) -> Result<()> {
        let topics: Vec<String> = self.instance.source_of.keys().cloned().collect();
        self.consumer.subscribe(&topics)?;
        self.tm.rebalance.started = Some(Instant::now());
        self.report();
        let interval = Duration::from_millis(self.instance.config.commit_interval_ms());
        let poll_ms = Duration::from_millis(self.instance.config.poll_ms());
        let mut last_commit = Instant::now();
        let shared = self.instance.shared.clone();
        let result = (|| -> Result<()> {
            while !shared.stop.load(Ordering::SeqCst) {
                let round = self.run_once(&mut last_commit, interval, poll_ms);
                // The iteration's task spans close.
                self.tm.task_spans.clear();
                match round {
                    Err(StreamsError::Client(e)) if self.tm.eos && e.is_task_migrated() => {
                        self.recover_task_migrated(&topics, e)?;
                    }
                    r => r?,
                }
                self.report();
            }
            self.commit()?;
            // Leaving: the other instances stop sending queries here at once (if this
            // does not get through, the new owners' announcements supersede it).
            let announced = self
                .tm
                .announce_assignment(&self.name, None)
                .and_then(|()| self.tm.commit_transaction(&[]));
            if let Err(e) = announced {
                tracing::warn!(thread = %self.name, error = %e, "could not announce leaving");
            }
            // A clean close: the stores match what was committed.
            self.tm.checkpoint_clean()?;
            Ok(())
        })();
        // Whether it failed or not, the tasks are closed and the group left.
        let closed = self.tm.close_all();
        let left = self.consumer.close();
        result?;
        closed?;
        left?;
        Ok(())
    }

    /// One round of the loop: poll, restore, process, punctuate, commit when due.
    fn run_once(
        &mut self,
        last_commit: &mut Instant,
        interval: Duration,
        poll_ms: Duration,
    ) -> Result<()> {
        let shared = self.instance.shared.clone();
        let timeout = match self.tm.next_work(wall_clock()) {
            Work::Now => Duration::ZERO,
            // A task waits for an empty partition (`max.task.idle.ms`) until then.
            Work::At(deadline) => poll_ms.min(Duration::from_millis(
                u64::try_from(deadline.saturating_sub(wall_clock())).unwrap_or(0),
            )),
            Work::None => poll_ms,
        };
        let t0 = Instant::now();
        let records = self.consumer.poll(timeout, &mut self.tm)?;
        if self.tm.eos {
            self.tm.group_metadata = self.consumer.group_metadata();
        }
        if let Some(done) = self.tm.rebalance.done.take() {
            self.log_rebalance(&done);
        }
        self.polls += 1;
        let poll_took = t0.elapsed();
        self.poll_time += poll_took;
        self.metrics.on_poll(records.len(), poll_took);
        self.tm.add_records(records)?;
        self.tm.update_lags(self.consumer.as_ref());
        if let Some(partitions) = self.tm.announce.take() {
            let value = super::membership::encode(&partitions);
            self.tm.announce_assignment(&self.name, Some(value))?;
            if self.tm.eos {
                // Visible to the others only once committed.
                self.commit()?;
            }
        }
        if std::mem::take(&mut self.tm.reassigned) {
            self.follow_group()?;
        } else if self.instance.announcements.is_some()
            && self.instance.config.num_standby_replicas() > 0
            && lock(&shared.inner).announced_version != self.standby_view
        {
            // Another member announced a new assignment: standbys follow it.
            self.follow_group()?;
        }
        self.tm.retry_pending()?;
        self.tm.rewind_unread(self.consumer.as_mut())?;
        self.tm.restore_step()?;
        self.tm.back_pressure(self.consumer.as_mut())?;
        let t1 = Instant::now();
        let n = self.tm.process()?;
        if n > 0 {
            self.processed += n as u64;
            self.process_time += t1.elapsed();
            self.dirty = true;
        }
        let t2 = Instant::now();
        let fired = self.tm.punctuate(wall_clock())?;
        self.metrics.on_punctuate(fired, t2.elapsed());
        self.dirty |= fired;
        let polled = self.tm.producer.poll();
        self.tm.delivered(polled)?;
        let requested = self.tm.active.values().any(|a| a.task.ctx.commit_requested);
        // Someone waits for this instance to catch up: commit as soon as the input
        // is drained (the logs, not only the fetched records), so that results are
        // visible.
        let waited = self.dirty
            && shared.waiters.load(Ordering::SeqCst) > 0
            && self.tm.next_work(wall_clock()) != Work::Now
            && self.tm.caught_up();
        if requested || waited || last_commit.elapsed() >= interval {
            self.commit()?;
            *last_commit = Instant::now();
        }
        Ok(())
    }

    /// Under `exactly_once_v2`, after a fenced producer or a transaction that must abort:
    /// aborts what is open, closes every task dirty (wiping its stores, which may hold
    /// uncommitted changes), makes a new producer when fenced, and rejoins the group, so
    /// that the tasks (here or elsewhere) revive from their changelogs.
    fn recover_task_migrated(&mut self, topics: &[String], e: ClientError) -> Result<()> {
        tracing::warn!(thread = %self.name, error = %e, "task migrated: closing tasks dirty and reviving them from their changelogs");
        if self.tm.txn_open {
            if let Err(abort) = self.tm.producer.abort_transaction(FLUSH_TIMEOUT) {
                tracing::warn!(thread = %self.name, error = %abort, "could not abort the transaction");
            }
            self.tm.txn_open = false;
        }
        if matches!(e, ClientError::ProducerFenced { .. }) {
            let clients = self.instance.clients.clone();
            let mut p =
                clients.transactional_producer(&format!("{}-producer", self.name), &self.name)?;
            p.init_transactions(FLUSH_TIMEOUT)?;
            self.tm.producer = p;
        }
        self.tm.close_dirty()?;
        self.consumer.subscribe(topics)?;
        self.tm.rebalance.started = Some(Instant::now());
        self.dirty = false;
        Ok(())
    }

    /// Logs a finished rebalance once, at INFO: how long it took and what moved.
    fn log_rebalance(&self, r: &Rebalanced) {
        let generation = self.consumer.group_metadata().map_or(-1, |g| g.generation);
        tracing::info!(
            thread = %self.name,
            generation,
            revoked_partitions = r.revoked_partitions,
            revoked_tasks = r.revoked_tasks,
            assigned_partitions = r.assigned_partitions,
            active_tasks = r.active_tasks,
            resumed = r.resumed,
            opened = r.opened,
            closed = r.closed,
            pending = r.pending,
            duration_ms = millis(r.duration),
            "partitions assigned"
        );
    }

    /// Places this thread's standbys by the group view: the announced one where the
    /// instance announces (the clients' view may be partial, so the consumer is not asked),
    /// else the consumer's description of the group, which interactive queries then use
    /// too.
    fn follow_group(&mut self) -> Result<()> {
        if self.instance.announcements.is_some() {
            let (view, version) = {
                let inner = lock(&self.instance.shared.inner);
                (inner.announced.clone(), inner.announced_version)
            };
            self.standby_view = version;
            self.tm.update_standbys(&view, &self.name)
        } else {
            let members = self.consumer.group_members()?;
            self.instance.set_group(members.clone());
            self.tm
                .update_standbys(&members, &self.consumer.member_id())
        }
    }

    /// Commits every running task and the standbys' checkpoints: under
    /// `exactly_once_v2` as one transaction holding every output and changelog record and
    /// the input offsets.
    fn commit(&mut self) -> Result<()> {
        let t0 = Instant::now();
        let ids: Vec<TaskId> = self.tm.active.keys().copied().collect();
        if self.tm.eos && !self.dirty && !self.tm.txn_open {
            // Nothing processed, nothing sent: the offsets are those committed.
            return Ok(());
        }
        let _span = tracing::debug_span!("commit", tasks = ids.len()).entered();
        let offsets = self.tm.prepare_commit(&ids)?;
        if self.tm.eos {
            self.tm.group_metadata = self.consumer.group_metadata();
            self.tm.commit_transaction(&offsets)?;
        } else {
            self.consumer.commit(&offsets)?;
        }
        self.tm.purge_repartition(&offsets)?;
        self.tm.checkpoint_standbys()?;
        self.commits += 1;
        let commit_took = t0.elapsed();
        if commit_took >= SLOW_COMMIT {
            tracing::warn!(
                thread = %self.name,
                tasks = ids.len(),
                duration_ms = millis(commit_took),
                "commit took longer than 1 s"
            );
        }
        self.commit_time += commit_took;
        self.metrics.on_commit(commit_took);
        self.dirty = false;
        Ok(())
    }

    fn report(&mut self) {
        let mut tasks = Vec::new();
        let mut lag_total = 0;
        let mut all_running = self.tm.pending.is_empty() && self.tm.assigned;
        // Exact ends only while someone waits for "caught up": on Kafka an end query waits
        // behind the fetch in flight, so the loop otherwise uses what fetches reported.
        // Even then only where it can change the answer: the end a fetch reported is never
        // past the true one, so once some lag is known nothing is caught up, and the rest
        // is reported from the fetches (a query per partition per report would stall the
        // thread behind the broker's fetch waits).
        // Nor while a task restores (or the thread waits for tasks): not caught up anyway.
        let exact = self.instance.shared.waiters.load(Ordering::SeqCst) > 0
            && all_running
            && self.tm.suspended.is_empty()
            && self
                .tm
                .active
                .values()
                .all(|a| a.state == TaskState::Running);
        for (id, a) in &mut self.tm.active {
            let mut lag = a.task.queued_len() as i64;
            for topic in a.task.input_partitions() {
                let tp = TopicPartition::new(topic, id.partition);
                let pos = self.consumer.position(&tp);
                let hint = self.consumer.high_watermark_hint(&tp);
                let hint_at_end = matches!((pos, hint), (Some(p), Some(h)) if h <= p);
                let end = if exact && lag_total + lag == 0 && (hint.is_none() || hint_at_end) {
                    self.consumer.watermarks(&tp).ok().map(|(_, end)| end)
                } else {
                    hint
                };
                if let (Some(pos), Some(end)) = (pos, end) {
                    lag += (end - pos).max(0);
                }
            }
            lag_total += lag;
            all_running &= a.state == TaskState::Running;
            tasks.push(TaskSnapshot {
                id: *id,
                state: a.state,
                metrics: a.task.ctx.metrics,
                lag,
                restored: a.restored,
                restore_total: a.restore_total,
                e2e_latency_ms: a.e2e_latency_ms,
            });
        }
        for (id, s) in &self.tm.standby {
            tasks.push(TaskSnapshot {
                id: *id,
                state: TaskState::Standby,
                metrics: s.task.ctx.metrics,
                lag: 0,
                restored: s.applied,
                restore_total: 0,
                e2e_latency_ms: None,
            });
        }
        // A member with a rebalance under way has revoked everything: not running.
        all_running &= self.tm.suspended.is_empty();
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let avg = |total: Duration, n: u64| {
            if n == 0 {
                Duration::ZERO
            } else {
                total / u32::try_from(n).unwrap_or(u32::MAX)
            }
        };
        let snapshot = ThreadSnapshot {
            name: self.name.clone(),
            polls: self.polls,
            poll_latency_avg: avg(self.poll_time, self.polls),
            processed: self.processed,
            process_rate: self.processed as f64 / secs,
            process_latency_avg: avg(self.process_time, self.processed),
            commits: self.commits,
            commit_latency_avg: avg(self.commit_time, self.commits),
            production_errors_skipped: self.tm.production_errors_skipped,
            consumer_statistics: self.consumer.statistics(),
            tasks,
        };
        // Metrics export (issue #21): to the `metrics` facade, when due.
        if self.metrics.due() {
            self.publish_metrics(&snapshot);
        }
        self.reports += 1;
        self.instance.shared.report(
            self.slot,
            ThreadStatus {
                running: all_running,
                caught_up: all_running && lag_total == 0 && !self.dirty,
                reports: self.reports,
                snapshot,
            },
        );
    }
}

impl TaskManager {
    /// The `task` span of `id` for this loop iteration (fields `task_id`, `partition`),
    /// child of the thread's span: created on first use in the iteration, then the same
    /// span again, so a task has at most one span per iteration however often it is
    /// entered. A DEBUG span: when the subscriber filters it out, this is a level check
    /// (the callsite's cached interest) and nothing is allocated or kept.
    fn task_span(&mut self, id: TaskId) -> tracing::Span {
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

    /// Applies the production handler to what a producer poll or flush reported: failed
    /// deliveries fail the thread, or (`continue`) are logged, counted and skipped.
    fn delivered(&mut self, result: crate::client::ClientResult<()>) -> Result<()> {
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
    fn announce_assignment(&mut self, client_id: &str, value: Option<Vec<u8>>) -> Result<()> {
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
    fn next_work(&mut self, now: i64) -> Work {
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
    fn caught_up(&mut self) -> bool {
        self.active
            .values_mut()
            .all(|a| a.state != TaskState::Running || a.task.caught_up())
    }

    /// Gives each running task the lag of its input partitions as the consumer saw it in
    /// its last fetches (the log end it knows minus its position; unknown before the
    /// first fetch response of a partition), for `max.task.idle.ms`.
    fn update_lags(&mut self, consumer: &dyn Consumer) {
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
    fn task_of(&self, tp: &TopicPartition) -> Option<TaskId> {
        self.instance.source_of.get(&*tp.topic).map(|&sub| TaskId {
            subtopology: sub as u32,
            partition: tp.partition,
        })
    }

    fn add_records(&mut self, records: Vec<ConsumedRecord>) -> Result<()> {
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
    /// its whole backlog before the next one made them late there). Returns how many
    /// records were processed.
    fn process(&mut self) -> Result<usize> {
        let now = wall_clock();
        let ids: Vec<TaskId> = self.active.keys().copied().collect();
        let limit = PROCESS_BATCH * 4 * ids.len().max(1);
        let mut total = 0;
        while total < limit {
            // The ready task with the oldest next record, and the oldest next record of
            // the other ready tasks.
            let mut oldest: Option<(i64, TaskId)> = None;
            let mut runner_up = i64::MAX;
            for id in &ids {
                let Some(a) = self.active.get_mut(id) else {
                    continue;
                };
                if a.state != TaskState::Running {
                    continue;
                }
                a.task.ctx.wall_clock = now;
                if matches!(a.task.readiness(now), Readiness::Waiting { .. }) {
                    continue;
                }
                let Some(ts) = a.task.head_timestamp() else {
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
            let Some((_, id)) = oldest else {
                break;
            };
            // One span around the batch (up to `PROCESS_BATCH` records), never per record.
            let span = self.task_span(id);
            let _entered = span.enter();
            let Some(a) = self.active.get_mut(&id) else {
                break;
            };
            let bound = runner_up.saturating_add(TASK_SKEW_MS);
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
    fn punctuate(&mut self, now: i64) -> Result<bool> {
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
    fn begin_if_needed(&mut self) -> Result<()> {
        if self.eos && !self.txn_open {
            self.producer.begin_transaction()?;
            self.txn_open = true;
        }
        Ok(())
    }

    /// Under `exactly_once_v2`: commits the open transaction with `offsets` (the input
    /// offsets of every task, sent with the group metadata); a transaction is opened first
    /// when there are offsets but nothing was sent. Nothing under `at_least_once`.
    fn commit_transaction(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
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
    fn checkpoint_clean(&mut self) -> Result<()> {
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

    /// Writes the checkpoint of an active or suspended task at its changelogs' ends.
    fn checkpoint_task(&mut self, id: TaskId) -> Result<()> {
        let parts = match self.active.get(&id).or_else(|| self.suspended.get(&id)) {
            Some(a) => a.task.changelog_partitions().to_vec(),
            None => return Ok(()),
        };
        let ends = self.changelog_ends(&parts)?;
        if let Some(a) = self.active.get(&id).or_else(|| self.suspended.get(&id)) {
            a.task.write_checkpoint(&ends)?;
        }
        Ok(())
    }

    /// Sends produced records, choosing partitions with Kafka's murmur2 partitioner.
    fn route(&mut self, out: Vec<ProducedRecord>) -> Result<()> {
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
    fn output_topic(&mut self, topic: &str) -> Result<u32> {
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
    fn prepare_commit(&mut self, ids: &[TaskId]) -> Result<Vec<(TopicPartition, i64)>> {
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
            let parts = match self.active.get(&id) {
                Some(a) => a.task.changelog_partitions().to_vec(),
                None => continue,
            };
            let ends = self.changelog_ends(&parts)?;
            let Some(a) = self.active.get_mut(&id) else {
                continue;
            };
            a.task.write_checkpoint(&ends)?;
            for (topic, offset) in a.task.committable_offsets() {
                offsets.push((TopicPartition::new(topic, id.partition), offset));
            }
        }
        Ok(offsets)
    }

    fn changelog_ends(
        &self,
        partitions: &[ChangelogPartition],
    ) -> Result<HashMap<ChangelogPartition, i64>> {
        let mut ends = HashMap::new();
        for p in partitions {
            let tp = TopicPartition::new(p.topic.as_str(), p.partition);
            ends.insert(p.clone(), self.restore.watermarks(&tp)?.1);
        }
        Ok(ends)
    }

    /// Deletes committed records of repartition topics: nobody needs them any more. A
    /// broker that refuses (or breaks on) DeleteRecords costs disk, not correctness: the
    /// first failure is logged once and this thread stops purging.
    fn purge_repartition(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
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

    fn checkpoint_standbys(&mut self) -> Result<()> {
        for s in self.standby.values_mut() {
            s.task.flush()?;
            let ends: HashMap<ChangelogPartition, i64> =
                s.positions.iter().map(|(p, o)| (p.clone(), *o)).collect();
            s.task.write_checkpoint(&ends)?;
        }
        Ok(())
    }

    /// Opens the task `id` as active: from a standby here if there is one (its stores are
    /// warm), else from its directory. `None` while another thread holds the directory.
    fn open_active(&mut self, id: TaskId) -> Result<Option<Active>> {
        if let Some(s) = self.standby.remove(&id) {
            let restoring = s
                .positions
                .into_iter()
                .map(|(p, next)| (p, (next, next)))
                .collect();
            return Ok(Some(Active {
                task: s.task,
                state: TaskState::Restoring,
                _lock: s._lock,
                restoring,
                restored: 0,
                restore_total: 0,
                paused: BTreeSet::new(),
                e2e_latency_ms: None,
                e2e: Default::default(),
                restore_started: Instant::now(),
            }));
        }
        let Some(lock) = self.instance.locks.try_lock(id) else {
            return Ok(None);
        };
        let task = self.new_task(id)?;
        let restoring = task
            .restore_starts()
            .into_iter()
            .map(|(p, start)| (p, (start, start)))
            .collect();
        Ok(Some(Active {
            task,
            state: TaskState::Restoring,
            _lock: lock,
            restoring,
            restored: 0,
            restore_total: 0,
            paused: BTreeSet::new(),
            e2e_latency_ms: None,
            e2e: Default::default(),
            restore_started: Instant::now(),
        }))
    }

    fn new_task(&self, id: TaskId) -> Result<Task> {
        let mut dir = self.instance.state_dir.task_dir(&id.to_string())?;
        if self.eos
            && !matches!(
                streams_state::Checkpoint::read(&dir.join(streams_state::Checkpoint::FILE_NAME)),
                streams_state::CheckpointRead::Valid(_)
            )
        {
            // Without a checkpoint the stores may hold changes of a transaction that never
            // committed (a crash): they are rebuilt from the changelogs.
            self.instance.state_dir.wipe_task(&id.to_string())?;
            dir = self.instance.state_dir.task_dir(&id.to_string())?;
        }
        Task::new(
            &self.instance.topology.inner,
            id.subtopology,
            id.partition,
            &self.env,
            Some(dir),
            wall_clock(),
        )
    }

    /// Reads the end of every restoring changelog partition (restoration runs up to it).
    /// A checkpoint past a changelog's end (the changelog was deleted and created again, or
    /// lost records) does not describe the stores: the task's state is wiped and restored
    /// from the start, with a warning.
    fn start_restoring(&mut self, id: TaskId) -> Result<()> {
        let span = self.task_span(id);
        let _entered = span.enter();
        let Some(a) = self.active.get_mut(&id) else {
            return Ok(());
        };
        let mut beyond = Vec::new();
        for (p, (next, _)) in &a.restoring {
            let tp = TopicPartition::new(p.topic.as_str(), p.partition);
            let (_, e) = self.restore.watermarks(&tp)?;
            if *next > e {
                beyond.push(format!(
                    "{}-{} checkpoint {next}, end {e}",
                    p.topic, p.partition
                ));
            }
        }
        if !beyond.is_empty() {
            tracing::warn!(task = %id, changelogs = %beyond.join(", "), "checkpoint past the end of a changelog: wiping the task's state and restoring it from the start");
            if let Some(mut old) = self.active.remove(&id) {
                old.task.close()?;
                self.instance.state_dir.wipe_task(&id.to_string())?;
                let task = self.new_task(id)?;
                old.restoring = task
                    .restore_starts()
                    .into_iter()
                    .map(|(p, start)| (p, (start, start)))
                    .collect();
                old.task = task;
                self.active.insert(id, old);
            }
        }
        let Some(a) = self.active.get_mut(&id) else {
            return Ok(());
        };
        let mut total = 0u64;
        for (p, (next, end)) in a.restoring.iter_mut() {
            let tp = TopicPartition::new(p.topic.as_str(), p.partition);
            let (start, e) = self.restore.watermarks(&tp)?;
            *next = (*next).max(start);
            *end = e;
            total += (e - *next).max(0) as u64;
        }
        a.restoring.retain(|_, (next, end)| next < end);
        a.restore_total = total;
        self.reassigned = true;
        Ok(())
    }

    /// Moves the consumer back to records read while their task was not open.
    fn rewind_unread(&mut self, consumer: &mut dyn Consumer) -> Result<()> {
        let ready: Vec<TopicPartition> = self
            .unread
            .keys()
            .filter(|tp| {
                self.task_of(tp)
                    .is_some_and(|id| self.active.contains_key(&id))
            })
            .cloned()
            .collect();
        for tp in ready {
            if let Some(offset) = self.unread.remove(&tp) {
                consumer.seek(&tp, offset)?;
            }
        }
        Ok(())
    }

    fn retry_pending(&mut self) -> Result<()> {
        let pending: Vec<TaskId> = self.pending.iter().copied().collect();
        for id in pending {
            let span = self.task_span(id);
            let _entered = span.enter();
            if let Some(a) = self.open_active(id)? {
                self.pending.remove(&id);
                self.active.insert(id, a);
                self.start_restoring(id)?;
            }
        }
        Ok(())
    }

    /// One round of restoration: applies what the restore consumer returns to restoring
    /// tasks and standbys; a task whose changelogs reached their ends starts running.
    fn restore_step(&mut self) -> Result<()> {
        // A restoring task with nothing (left) to restore runs.
        let ids: Vec<TaskId> = self.active.keys().copied().collect();
        for id in &ids {
            if !self
                .active
                .get(id)
                .is_some_and(|a| a.state == TaskState::Restoring && a.restoring.is_empty())
            {
                continue;
            }
            let span = self.task_span(*id);
            let _entered = span.enter();
            if let Some(a) = self.active.get_mut(id) {
                a.task.init()?;
                if self.eos {
                    a.task.remove_checkpoint()?;
                }
                a.state = TaskState::Running;
                self.instance
                    .set_queryable(*id, Some(a.task.ctx.stores.clone()));
                self.reassigned = true;
                // Once per restoration: the task leaves `Restoring` here.
                tracing::info!(
                    task = %id,
                    partition = id.partition,
                    restored = a.restored,
                    restore_total = a.restore_total,
                    duration_ms = millis(a.restore_started.elapsed()),
                    "task restored, running"
                );
            }
        }
        if std::mem::take(&mut self.reassigned) {
            let mut wanted = Vec::new();
            for a in self.active.values() {
                for (p, (next, _)) in &a.restoring {
                    wanted.push((TopicPartition::new(p.topic.as_str(), p.partition), *next));
                }
            }
            for s in self.standby.values() {
                for (p, next) in &s.positions {
                    wanted.push((TopicPartition::new(p.topic.as_str(), p.partition), *next));
                }
            }
            if wanted != self.restore_assignment {
                self.restore.assign(&wanted)?;
                self.restore_assignment = wanted;
            }
        }
        if self.restore_assignment.is_empty() {
            return Ok(());
        }
        let records = self
            .restore
            .poll(Duration::ZERO, &mut NoRebalanceListener)?;
        let mut by_partition: BTreeMap<TopicPartition, Vec<ChangelogRecord>> = BTreeMap::new();
        for r in records {
            if let Some(key) = r.record.key {
                by_partition
                    .entry(r.partition)
                    .or_default()
                    .push(ChangelogRecord {
                        offset: r.record.offset,
                        key,
                        value: r.record.value,
                    });
            }
        }
        for (tp, batch) in by_partition {
            let Some(last) = batch.last().map(|r| r.offset) else {
                continue;
            };
            let cp = ChangelogPartition {
                topic: tp.topic.to_string(),
                partition: tp.partition,
            };
            let id = TaskId {
                subtopology: self.changelog_subtopology(&tp.topic)?,
                partition: tp.partition,
            };
            let span = self.task_span(id);
            let _entered = span.enter();
            if let Some(a) = self.active.get_mut(&id)
                && let Some((next, end)) = a.restoring.get_mut(&cp)
            {
                // Only up to the end read at the start; later records are the task's own.
                let upto: Vec<ChangelogRecord> =
                    batch.into_iter().filter(|r| r.offset < *end).collect();
                a.task.restore(&cp, &upto)?;
                a.restored += upto.len() as u64;
                *next = last + 1;
                if *next >= *end {
                    a.restoring.remove(&cp);
                    self.reassigned = true;
                }
            } else if let Some(s) = self.standby.get_mut(&id)
                && let Some(next) = s.positions.get_mut(&cp)
            {
                s.task.restore(&cp, &batch)?;
                s.applied += batch.len() as u64;
                *next = last + 1;
            }
        }
        // The restore consumer's position also moves past what holds no record (commit
        // markers, compacted gaps): a changelog whose last records are followed by a marker
        // is restored once the position reaches its end.
        let mut done = false;
        for a in self.active.values_mut() {
            let before = a.restoring.len();
            a.restoring.retain(|p, (next, end)| {
                let tp = TopicPartition::new(p.topic.as_str(), p.partition);
                if let Some(pos) = self.restore.position(&tp) {
                    *next = (*next).max(pos);
                }
                next < end
            });
            done |= a.restoring.len() != before;
        }
        for s in self.standby.values_mut() {
            for (p, next) in s.positions.iter_mut() {
                let tp = TopicPartition::new(p.topic.as_str(), p.partition);
                if let Some(pos) = self.restore.position(&tp) {
                    *next = (*next).max(pos);
                }
            }
        }
        self.reassigned |= done;
        Ok(())
    }

    /// The sub-topology whose stores log to `topic`.
    fn changelog_subtopology(&self, topic: &str) -> Result<u32> {
        let t = &self.instance.topology.inner;
        let app = self.instance.config.application_id();
        for (i, s) in t.subtopologies.iter().enumerate() {
            for &st in &s.stores {
                if t.stores[st].changelog_topic().resolve(app) == topic {
                    return Ok(i as u32);
                }
            }
        }
        Err(StreamsError::Internal(format!(
            "`{topic}` is not a changelog of this topology"
        )))
    }

    /// Pauses each input partition whose queue holds `buffered.records.per.partition`
    /// records (of a task not running yet, too), and resumes it once half of that drained.
    /// Per partition, as in Kafka Streams: a task that waits for one partition to be
    /// fetched (timestamp order) must never have that partition paused by the others.
    fn back_pressure(&mut self, consumer: &mut dyn Consumer) -> Result<()> {
        let limit = self.instance.config.buffered_records_per_partition().max(1);
        for (id, a) in &mut self.active {
            for (topic, queued) in a.task.queued_per_input() {
                let tp = TopicPartition::new(topic, id.partition);
                let paused = a.paused.contains(&tp);
                if queued >= limit && !paused {
                    consumer.pause(std::slice::from_ref(&tp))?;
                    a.paused.insert(tp);
                } else if paused && queued <= limit / 2 {
                    consumer.resume(std::slice::from_ref(&tp))?;
                    a.paused.remove(&tp);
                }
            }
        }
        Ok(())
    }

    /// Works out this thread's standby tasks from the group's assignment (see
    /// docs/ARCHITECTURE.md): for a task active on instance `i` (instances ordered by
    /// name), the next `num.standby.replicas` instances after `i` keep standbys, each on
    /// one of its threads chosen by the task id. Opens and closes standbys to match the
    /// rule over `members`, in which this thread is the member `me`.
    fn update_standbys(&mut self, members: &[GroupMember], me: &str) -> Result<()> {
        let replicas = self.instance.config.num_standby_replicas();
        let mut wanted: BTreeSet<TaskId> = BTreeSet::new();
        if replicas > 0 {
            let mut threads: BTreeMap<String, Vec<String>> = BTreeMap::new();
            let mut owner: BTreeMap<TaskId, String> = BTreeMap::new();
            let mut my_instance = None;
            for m in members {
                let inst = instance_of(&m.client_id);
                threads
                    .entry(inst.clone())
                    .or_default()
                    .push(m.member_id.clone());
                if m.member_id == me {
                    my_instance = Some(inst.clone());
                }
                for tp in &m.assignment {
                    if let Some(id) = self.task_of(tp) {
                        owner.insert(id, inst.clone());
                    }
                }
            }
            let instances: Vec<&String> = threads.keys().collect();
            if let Some(mine) = my_instance {
                for (id, o) in &owner {
                    if !self.instance.logged[id.subtopology as usize] {
                        continue;
                    }
                    let Some(oi) = instances.iter().position(|i| *i == o) else {
                        continue;
                    };
                    for k in 1..=replicas.min(instances.len().saturating_sub(1)) {
                        let host = instances[(oi + k) % instances.len()];
                        if *host != mine {
                            continue;
                        }
                        let mut ts = threads[host].clone();
                        ts.sort();
                        let pick =
                            (id.subtopology as usize * 31 + id.partition as usize) % ts.len();
                        if ts[pick] == me {
                            wanted.insert(*id);
                        }
                    }
                }
            }
        }
        // Close standbys no longer wanted (writing their checkpoint first).
        let gone: Vec<TaskId> = self
            .standby
            .keys()
            .filter(|id| !wanted.contains(id))
            .copied()
            .collect();
        for id in gone {
            if let Some(mut s) = self.standby.remove(&id) {
                s.task.flush()?;
                let ends: HashMap<ChangelogPartition, i64> =
                    s.positions.iter().map(|(p, o)| (p.clone(), *o)).collect();
                s.task.write_checkpoint(&ends)?;
                s.task.close()?;
            }
        }
        for id in wanted {
            if self.standby.contains_key(&id)
                || self.active.contains_key(&id)
                || self.pending.contains(&id)
            {
                continue;
            }
            let Some(lock) = self.instance.locks.try_lock(id) else {
                continue;
            };
            let task = self.new_task(id)?;
            let positions = task.restore_starts().into_iter().collect();
            self.standby.insert(
                id,
                Standby {
                    task,
                    _lock: lock,
                    positions,
                    applied: 0,
                },
            );
        }
        self.reassigned = true;
        Ok(())
    }

    /// Closes every active and suspended task without committing, wiping its state (see
    /// `StreamThread::recover_task_migrated`).
    fn close_dirty(&mut self) -> Result<()> {
        let tasks: Vec<(TaskId, Active)> = std::mem::take(&mut self.active)
            .into_iter()
            .chain(std::mem::take(&mut self.suspended))
            .collect();
        for (id, mut a) in tasks {
            self.instance.set_queryable(id, None);
            if let Err(e) = a.task.close() {
                tracing::warn!(task = %id, error = %e, "closing a task dirty failed");
            }
            self.instance.state_dir.wipe_task(&id.to_string())?;
        }
        self.pending.clear();
        self.unread.clear();
        self.assigned = false;
        self.restore_assignment.clear();
        self.reassigned = true;
        Ok(())
    }

    /// Commits and closes every task (the thread is stopping or failed).
    fn close_all(&mut self) -> Result<()> {
        for id in self.active.keys() {
            self.instance.set_queryable(*id, None);
        }
        let mut first_error = None;
        let tasks = std::mem::take(&mut self.active)
            .into_values()
            .chain(std::mem::take(&mut self.suspended).into_values())
            .map(|a| a.task)
            .chain(
                std::mem::take(&mut self.standby)
                    .into_values()
                    .map(|s| s.task),
            );
        for mut t in tasks {
            if let Err(e) = t.close() {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl RebalanceListener for TaskManager {
    fn on_partitions_revoked(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, i64)>> {
        let _span =
            tracing::info_span!("rebalance", phase = "revoke", partitions = partitions.len())
                .entered();
        self.rebalance.started.get_or_insert_with(Instant::now);
        self.rebalance.revoked_partitions += partitions.len();
        let ids: BTreeSet<TaskId> = partitions
            .iter()
            .filter_map(|tp| self.task_of(tp))
            .collect();
        let ids: Vec<TaskId> = ids
            .into_iter()
            .filter(|id| self.active.contains_key(id))
            .collect();
        self.rebalance.revoked_tasks += ids.len();
        // Commit what was processed; records queued but not processed are read again by
        // whoever gets the partitions. Under exactly_once_v2 the thread's one transaction
        // holds every task's output: all of them commit, and the consumer commits nothing.
        let offsets = if self.eos {
            let all: Vec<TaskId> = self.active.keys().copied().collect();
            let offsets = self.prepare_commit(&all)?;
            self.commit_transaction(&offsets)?;
            for id in &ids {
                // A task still restoring is closed without one: its next open wipes it.
                if self
                    .active
                    .get(id)
                    .is_some_and(|a| a.state == TaskState::Running)
                {
                    self.checkpoint_task(*id)?;
                }
            }
            self.purge_repartition(&offsets)?;
            Vec::new()
        } else {
            let offsets = self.prepare_commit(&ids)?;
            self.purge_repartition(&offsets)?;
            offsets
        };
        for id in ids {
            let span = self.task_span(id);
            let _entered = span.enter();
            self.instance.set_queryable(id, None);
            if let Some(mut a) = self.active.remove(&id) {
                a.task.clear_queues();
                a.paused.clear();
                if a.state == TaskState::Running {
                    a.state = TaskState::Suspended;
                    self.suspended.insert(id, a);
                } else {
                    // Restoring: closed; a later restoration continues from its checkpoint.
                    a.task.close()?;
                }
            }
        }
        self.pending.clear();
        self.unread.clear();
        self.assigned = false;
        // Restoring tasks were closed: when one comes back, its changelogs must be
        // assigned again from its checkpoint, even if the list of partitions is the same
        // (the restore consumer's positions moved on while it restored).
        self.restore_assignment.clear();
        self.reassigned = true;
        Ok(offsets)
    }

    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        let _span =
            tracing::info_span!("rebalance", phase = "assign", partitions = partitions.len())
                .entered();
        let assign_started = Instant::now();
        let (mut resumed, mut opened, mut closed) = (0, 0, 0);
        let wanted: BTreeSet<TaskId> = partitions
            .iter()
            .filter_map(|tp| self.task_of(tp))
            .collect();
        // Suspended tasks that did not come back are closed (their directories free up
        // for whoever got them).
        let gone: Vec<TaskId> = self
            .suspended
            .keys()
            .filter(|id| !wanted.contains(id))
            .copied()
            .collect();
        for id in gone {
            let span = self.task_span(id);
            let _entered = span.enter();
            if let Some(mut a) = self.suspended.remove(&id) {
                a.task.close()?;
                closed += 1;
            }
        }
        for id in wanted {
            let span = self.task_span(id);
            let _entered = span.enter();
            if let Some(mut a) = self.suspended.remove(&id) {
                if self.eos {
                    a.task.remove_checkpoint()?;
                }
                a.state = TaskState::Running;
                self.instance
                    .set_queryable(id, Some(a.task.ctx.stores.clone()));
                self.active.insert(id, a);
                resumed += 1;
                continue;
            }
            match self.open_active(id)? {
                Some(a) => {
                    self.active.insert(id, a);
                    self.start_restoring(id)?;
                    opened += 1;
                }
                None => {
                    self.pending.insert(id);
                }
            }
        }
        self.reassigned = true;
        self.assigned = true;
        if self.instance.announcements.is_some() {
            self.announce = Some(partitions.to_vec());
        }
        // Logged by the thread after the poll, with the consumer's generation.
        let started = self.rebalance.started.take().unwrap_or(assign_started);
        self.rebalance.done = Some(Rebalanced {
            duration: started.elapsed(),
            revoked_partitions: std::mem::take(&mut self.rebalance.revoked_partitions),
            revoked_tasks: std::mem::take(&mut self.rebalance.revoked_tasks),
            assigned_partitions: partitions.len(),
            active_tasks: self.active.len(),
            resumed,
            opened,
            closed,
            pending: self.pending.len(),
        });
        Ok(())
    }
}

/// Metrics export (issue #21, see `metrics_export`): what the snapshot lacks, gathered
/// only when a publish is due.
impl StreamThread {
    fn publish_metrics(&mut self, snapshot: &ThreadSnapshot) {
        use crate::metrics_export::{PublishInput, TaskExtra};
        let mut input = PublishInput {
            poll_time: self.poll_time,
            process_time: self.process_time,
            commit_time: self.commit_time,
            cache_used: self.tm.env.cache.used(),
            cache_max: self.tm.env.cache.max(),
            log: self.instance.clients.log_stats().unwrap_or_default(),
            ..PublishInput::default()
        };
        for (id, a) in &mut self.tm.active {
            let mut extra = TaskExtra::new(*id, a.task.queued_len(), a.e2e.take());
            a.task.take_metrics(&mut extra);
            input.tasks.push(extra);
            // The next offset to process per input (before the records queued).
            let next: HashMap<Arc<str>, i64> = a.task.committable_offsets().into_iter().collect();
            for topic in a.task.input_partitions() {
                let tp = TopicPartition::new(topic.clone(), id.partition);
                let pos = self.consumer.position(&tp);
                let Some(end) = self.consumer.high_watermark_hint(&tp) else {
                    continue;
                };
                if let Some(pos) = pos {
                    let lag = (end - pos).max(0);
                    input
                        .partition_lags
                        .push((tp.topic.to_string(), tp.partition, lag));
                }
                if let Some(next) = next.get(&topic).copied().or(pos) {
                    let lag = (end - next).max(0);
                    input
                        .input_lags
                        .push((*id, tp.topic.to_string(), tp.partition, lag));
                }
            }
        }
        for (id, s) in &self.tm.standby {
            for (p, next) in &s.positions {
                let tp = TopicPartition::new(p.topic.as_str(), p.partition);
                if let Some(end) = self.tm.restore.high_watermark_hint(&tp) {
                    let lag = (end - next).max(0);
                    input
                        .standby_lags
                        .push((*id, p.topic.clone(), p.partition, lag));
                }
            }
        }
        self.metrics.publish(snapshot, &input);
    }
}
