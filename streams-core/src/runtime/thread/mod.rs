//! A stream thread: one consumer group member and the tasks of the partitions assigned to
//! it, plus standby tasks, run in Kafka Streams' loop.

mod manager;
mod rebalance;
mod restore;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use streams_state::ThreadCache;

use crate::client::{ClientError, Consumer, TopicPartition};
use crate::error::{Result, StreamsError};
use crate::internals::task::TaskEnv;
use crate::record::TaskId;
use crate::runtime::{
    Instance, StreamsState, TaskSnapshot, TaskState, ThreadFailureResponse, ThreadSnapshot,
    ThreadStatus, lock, wall_clock,
};

use manager::TaskManager;
use rebalance::{RebalanceLog, Rebalanced};

/// How many records a task processes at most before the thread looks for the oldest
/// task again.
const PROCESS_BATCH: usize = 1024;
/// How far (event time, ms) a task of a thread may run ahead of the thread's other ready
/// tasks before the thread switches to the oldest one (see `TaskManager::process`).
const TASK_SKEW_MS: i64 = 1000;
/// How long after a task starts restoring the instance's other tasks wait for it (see
/// `TaskManager::process`): a task that just moved here (a rebalance, a start) usually
/// restores within it, and the others then go on from where it starts.
const RESTORE_HOLD: Duration = Duration::from_secs(2);
/// How long a thread held back in event time (see `TaskManager::process`) waits in its
/// next poll.
const HELD_BACK_POLL: Duration = Duration::from_millis(2);
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
            clock: instance.clocks.join(slot),
            held_back: false,
            unflushed: i64::MAX,
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
            // A clean close: the stores match what was committed (unless the group refused
            // the last commit: the tasks may be someone else's already).
            if !self.consumer.commit_refused() {
                self.tm.checkpoint_clean()?;
            }
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

    /// [`run`](Self::run), with a panic of code it calls (a processor, a closure given to
    /// the DSL, a serde) turned into [`StreamsError::Panicked`] for the uncaught-error
    /// handler, instead of a thread that stops without a word while the instance says it
    /// runs. What the panic left is not trusted: the open transaction is aborted, every
    /// task is closed dirty (its stores released and wiped, so a replacement thread or
    /// another member restores them from the changelogs) and the group is left.
    fn run_catching_panics(&mut self) -> Result<()> {
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run()));
        let payload = match run {
            Ok(result) => return result,
            Err(payload) => payload,
        };
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        tracing::error!(thread = %self.name, %message, "stream thread panicked: closing its tasks dirty");
        // Only framework code runs here (no node's `close`), but a second panic must not
        // skip the report either.
        let cleaned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.tm.task_spans.clear();
            if std::mem::take(&mut self.tm.txn_open)
                && let Err(e) = self.tm.producer.abort_transaction(FLUSH_TIMEOUT)
            {
                tracing::warn!(thread = %self.name, error = %e, "could not abort the transaction");
            }
            if let Err(e) = self.tm.close_dirty(false) {
                tracing::warn!(thread = %self.name, error = %e, "closing the tasks after a panic failed");
            }
            for (_, s) in std::mem::take(&mut self.tm.standby) {
                let mut task = s.task;
                if let Err(e) = task.close_stores() {
                    tracing::warn!(thread = %self.name, error = %e, "closing a standby after a panic failed");
                }
            }
            if let Err(e) = self.consumer.close() {
                tracing::warn!(thread = %self.name, error = %e, "leaving the group after a panic failed");
            }
        }));
        if cleaned.is_err() {
            tracing::error!(thread = %self.name, "cleaning up after the panic panicked too");
        }
        Err(StreamsError::Panicked {
            thread: self.name.clone(),
            message,
        })
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
            // Held back in event time: wait a little for the others (or the fetch).
            Work::Now if self.tm.held_back => HELD_BACK_POLL.min(poll_ms),
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
        // Read once the round's tasks run (restored, re-opened, rewound), so that a task
        // that started running in it does not take its lags as unknown until the next poll.
        self.tm.update_lags(self.consumer.as_ref());
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
        self.tm.poll_producer()?;
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
        self.tm.close_dirty(true)?;
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
            if !self.consumer.commit_refused() {
                // The group took the commit: nobody else owns these tasks' changelogs.
                self.tm.checkpoint_running(&ids)?;
            }
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

/// Starts a stream thread of `instance`.
pub(super) fn spawn_thread(instance: &Arc<Instance>) -> Result<()> {
    let n = instance.next_thread.fetch_add(1, Ordering::Relaxed);
    let slot = n as usize;
    let name = format!("{}-StreamThread-{n}", instance.client_prefix);
    let inst = instance.clone();
    let thread_name = name.clone();
    let handle = std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            // The thread's span, entered for its whole life (see docs/TRACING.md): its task
            // spans are children of it.
            let _span = tracing::info_span!("stream_thread", thread = %thread_name).entered();
            let shared = inst.shared.clone();
            let result = StreamThread::new(inst.clone(), slot, thread_name.clone())
                .and_then(|mut t| t.run_catching_panics());
            lock(&shared.inner).threads.remove(&slot);
            let Err(e) = result else { return };
            tracing::error!(thread = %thread_name, error = %e, "stream thread failed");
            let handler = lock(&shared.handler).clone();
            let response = handler.map_or(ThreadFailureResponse::ShutdownClient, |h| h(&e));
            let stopping = shared.stop.load(Ordering::SeqCst);
            if response == ThreadFailureResponse::ReplaceThread && !stopping {
                if let Err(e2) = spawn_thread(&inst) {
                    shared.fail(format!("{e}; replacing the thread failed: {e2}"));
                    shared.stop.store(true, Ordering::SeqCst);
                    shared.transition(StreamsState::Error);
                }
            } else if !stopping {
                shared.fail(e.to_string());
                shared.stop.store(true, Ordering::SeqCst);
                shared.transition(StreamsState::Error);
            } else {
                shared.fail(e.to_string());
            }
        })
        .map_err(|source| StreamsError::System {
            what: "cannot start a stream thread",
            source,
        })?;
    lock(&instance.shared.inner).handles.push(handle);
    Ok(())
}
