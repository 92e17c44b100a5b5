//! Tasks: one per (sub-topology, partition), the unit of work of the test driver and the
//! runtime alike.
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use streams_state::{ChangelogPartition, ChangelogSink, Checkpoint, StateError, StoreContext};

use tracing::warn;

use crate::error::{Result, StreamsError};
use crate::internals::spec::TopologyInner;
use crate::metrics::TaskMetrics;
use crate::punctuation::{Punctuation, PunctuationType};
use crate::record::{RawRecord, TaskId};
use crate::state::StoreBuild;

use super::context::*;
pub(crate) use super::context::{ProducedRecord, TaskContext, TaskEnv};
use super::node::{Children, NodeBuild, Slot};

struct TaskInput {
    topic: Arc<str>,
    node: usize,
    topic_idx: usize,
    /// The offset after the last record added (-1: none yet).
    added_until: i64,
    /// The partition's lag as the consumer last saw it (records in the log not fetched
    /// yet); `None` while unknown (no fetch response yet).
    lag: Option<i64>,
    /// While the partition is empty and caught up: the wall-clock time from which the task
    /// stops waiting for it (`max.task.idle.ms` after it was first seen so).
    idle_deadline: Option<i64>,
}

/// The timestamp of the record queued first for `inp`, if any.
fn queue_head(nodes: &mut [Slot], inp: &TaskInput) -> Option<i64> {
    nodes[inp.node]
        .node
        .as_mut()
        .and_then(|b| b.as_source())
        .and_then(|s| s.head_timestamp(inp.topic_idx))
}

/// Whether a task may process its next record now (Kafka's `PartitionGroup.readyToProcess`,
/// KIP-695).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// Every input partition has a record queued (or `max.task.idle.ms` is -1).
    Ready,
    /// Some input partitions are empty but caught up and waited for long enough: the task
    /// processes without them ("enforced processing").
    Enforced,
    /// Nothing is queued, or an empty input partition may still receive earlier records:
    /// its lag is unknown or above 0, or its idle deadline (if any) has not passed.
    Waiting {
        /// The wall-clock time at which waiting ends unless records arrive, when known.
        deadline: Option<i64>,
    },
}

/// A task: the nodes of one sub-topology for one partition, with their stores.
pub(crate) struct Task {
    pub(crate) ctx: TaskContext,
    inputs: Vec<TaskInput>,
    task_dir: Option<PathBuf>,
    /// The changelog partition of each logged store.
    changelogs: Vec<ChangelogPartition>,
    /// For each changelog partition, the index of its store.
    changelog_stores: Vec<usize>,
    /// Wall-clock and stream time when the last record was processed: idle advance moves
    /// stream time on from there.
    idle_anchor: Option<(i64, i64)>,
    /// Wall-clock time since which nothing is queued (see
    /// [`pending_time`](Self::pending_time)).
    starved_since: Option<i64>,
}

/// How long (wall clock, ms) a task with nothing queued but records in its partitions' logs
/// still counts as pending at its stream time (see [`Task::pending_time`]): long enough for
/// the next fetch, short enough that a partition that cannot be fetched stops no one.
pub(crate) const STARVED_MS: i64 = 500;

impl Task {
    /// Builds the task for `subtopology` and `partition`, with its stores under `task_dir`
    /// (`None`: in-memory stores only).
    pub(crate) fn new(
        topology: &TopologyInner,
        subtopology: u32,
        partition: u32,
        env: &TaskEnv,
        task_dir: Option<PathBuf>,
        wall_clock: i64,
    ) -> Result<Self> {
        let config = env.config.clone();
        let sub = topology
            .subtopologies
            .get(subtopology as usize)
            .ok_or_else(|| StreamsError::Internal(format!("no sub-topology {subtopology}")))?;
        let local: HashMap<usize, usize> =
            sub.nodes.iter().enumerate().map(|(i, &g)| (g, i)).collect();
        let mut nodes = Vec::with_capacity(sub.nodes.len());
        let mut inputs = Vec::new();
        for (i, &g) in sub.nodes.iter().enumerate() {
            let spec = &topology.nodes[g];
            let mut child_idx = Vec::new();
            let mut child_names = Vec::new();
            for c in &spec.children {
                let li = local.get(c).copied().ok_or_else(|| {
                    StreamsError::Internal(format!(
                        "child of `{}` outside its sub-topology",
                        spec.name
                    ))
                })?;
                child_idx.push(li);
                child_names.push(topology.nodes[*c].name.clone());
            }
            let topics: Vec<Arc<str>> = spec
                .topics()
                .iter()
                .map(|t| Arc::from(t.resolve(config.application_id()).as_str()))
                .collect();
            if spec.is_source() {
                for (ti, t) in topics.iter().enumerate() {
                    inputs.push(TaskInput {
                        topic: t.clone(),
                        node: i,
                        topic_idx: ti,
                        added_until: -1,
                        lag: None,
                        idle_deadline: None,
                    });
                }
            }
            let node = (spec.factory)(NodeBuild {
                name: spec.name.clone(),
                idx: i,
                children: Children::new(child_idx, child_names),
                partition,
                topics,
                stores: spec.stores.clone(),
                config: &config,
            })?;
            nodes.push(Slot::new(
                spec.name.clone(),
                node,
                spec.is_source(),
                spec.children.is_empty() && !spec.is_source(),
            ));
        }
        let mut stores = Vec::new();
        let mut store_index = HashMap::new();
        let mut changelogs = Vec::new();
        let mut changelog_stores = Vec::new();
        let buffer = Arc::new(ChangelogBuffer::default());
        let store_ctx = StoreContext::new(task_dir.clone(), env.resources.clone());
        for &s in &sub.stores {
            let spec = &topology.stores[s];
            let changelog: Option<Box<dyn ChangelogSink>> = if spec.logged {
                let topic = spec.changelog_topic().resolve(config.application_id());
                changelogs.push(ChangelogPartition {
                    topic: topic.clone(),
                    partition,
                });
                changelog_stores.push(stores.len());
                Some(Box::new(TaskChangelogSink {
                    topic: Arc::from(topic.as_str()),
                    partition,
                    buffer: buffer.clone(),
                }))
            } else {
                None
            };
            let entry = (spec.factory)(StoreBuild {
                ctx: &store_ctx,
                cache: &env.cache,
                config: &config,
                changelog,
            })?;
            store_index.insert(spec.name.clone(), stores.len());
            stores.push(entry);
        }
        Ok(Self {
            ctx: TaskContext {
                id: TaskId {
                    subtopology,
                    partition,
                },
                nodes,
                stores,
                store_index,
                globals: env.globals.clone(),
                output: Vec::new(),
                stream_time: -1,
                wall_clock,
                current: None,
                last_record: None,
                current_timestamp: -1,
                schedules: Vec::new(),
                next_schedule: 0,
                commit_requested: false,
                metrics: TaskMetrics::default(),
                debug_metrics: config.metrics_recording_level().records_debug(),
                config,
                changelog: buffer,
                lateness: Default::default(),
                suppression: Vec::new(),
            },
            inputs,
            task_dir,
            changelogs,
            changelog_stores,
            idle_anchor: None,
            starved_since: None,
        })
    }

    /// Initializes every node, sources first.
    pub(crate) fn init(&mut self) -> Result<()> {
        for i in 0..self.ctx.nodes.len() {
            self.with_node(i, |node, ctx| node.init(ctx))?;
        }
        Ok(())
    }

    fn with_node(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut dyn super::node::NodeOps, &mut TaskContext) -> Result<()>,
    ) -> Result<()> {
        let mut node = self.ctx.nodes[i]
            .node
            .take()
            .ok_or_else(|| StreamsError::Internal(format!("node {i} is busy")))?;
        let result = match node.ops() {
            Some(ops) => f(ops, &mut self.ctx),
            None => Err(StreamsError::Internal(format!(
                "node {i} has no operations"
            ))),
        };
        self.ctx.nodes[i].node = Some(node);
        result
    }

    /// The task's id.
    pub(crate) fn id(&self) -> TaskId {
        self.ctx.id
    }

    /// Deserializes raw records of `topic` and queues them for processing.
    pub(crate) fn add_records(
        &mut self,
        topic: &str,
        records: impl IntoIterator<Item = RawRecord>,
    ) -> Result<()> {
        let input = self
            .inputs
            .iter()
            .position(|i| &*i.topic == topic)
            .ok_or_else(|| StreamsError::Topic {
                topic: topic.to_string(),
                detail: format!("not an input of task {}", self.ctx.id),
            })?;
        let TaskInput {
            node, topic_idx, ..
        } = self.inputs[input];
        let mut slot = self.ctx.nodes[node]
            .node
            .take()
            .ok_or_else(|| StreamsError::Internal("source busy".into()))?;
        let mut added_until = self.inputs[input].added_until;
        let result = match slot.as_source() {
            Some(src) => records.into_iter().try_for_each(|r| {
                added_until = added_until.max(r.offset + 1);
                src.enqueue(topic_idx, r, &mut self.ctx)
            }),
            None => Err(StreamsError::Internal("input node is not a source".into())),
        };
        self.inputs[input].added_until = added_until;
        self.ctx.nodes[node].node = Some(slot);
        result
    }

    /// Per input topic, the offset to commit: the first record not processed yet (the
    /// queue's head, or past the last record added when the queue is empty). Inputs that
    /// never got a record are left out.
    pub(crate) fn committable_offsets(&mut self) -> Vec<(Arc<str>, i64)> {
        let mut out = Vec::new();
        for inp in &self.inputs {
            if inp.added_until < 0 {
                continue;
            }
            let head = self.ctx.nodes[inp.node]
                .node
                .as_mut()
                .and_then(|b| b.as_source())
                .and_then(|s| s.head_offset(inp.topic_idx));
            out.push((inp.topic.clone(), head.unwrap_or(inp.added_until)));
        }
        out
    }

    /// How many input records are queued.
    pub(crate) fn queued_len(&mut self) -> usize {
        let mut n = 0;
        for inp in &self.inputs {
            n += self.ctx.nodes[inp.node]
                .node
                .as_mut()
                .and_then(|b| b.as_source())
                .map_or(0, |s| s.queued(inp.topic_idx));
        }
        n
    }

    /// Drops every queued input record and forgets what was added (the task's partitions
    /// are moving; whoever reads them next starts at the committed offsets).
    pub(crate) fn clear_queues(&mut self) {
        for i in 0..self.inputs.len() {
            self.inputs[i].added_until = -1;
            self.inputs[i].lag = None;
            self.inputs[i].idle_deadline = None;
            let node = self.inputs[i].node;
            if let Some(s) = self.ctx.nodes[node]
                .node
                .as_mut()
                .and_then(|b| b.as_source())
            {
                s.clear();
            }
        }
    }

    /// Whether any input record is queued.
    pub(crate) fn has_queued(&mut self) -> bool {
        self.oldest_input().is_some()
    }

    /// Records the lag of each input partition as the consumer sees it now: `lag_of(topic)`
    /// is the number of records in the log beyond what was fetched (`None`: unknown). The
    /// runtime calls it after every poll; [`readiness`](Self::readiness) decides with it.
    pub(crate) fn update_lags(&mut self, mut lag_of: impl FnMut(&str) -> Option<i64>) {
        for inp in &mut self.inputs {
            inp.lag = lag_of(&inp.topic);
        }
    }

    /// Marks every input partition caught up: everything in the log is queued (the test
    /// driver delivers records to tasks as they are written).
    pub(crate) fn set_caught_up(&mut self) {
        for inp in &mut self.inputs {
            inp.lag = Some(0);
        }
    }

    /// Whether the task may process its next record at wall-clock time `now`, as Kafka
    /// Streams decides it (KIP-695): with every input partition queued, yes; with
    /// `max.task.idle.ms` -1, whenever anything is queued; otherwise an empty partition
    /// must be known caught up (lag 0) and the task must have waited `max.task.idle.ms` for
    /// it (0: not at all), and then processes without it ("enforced processing").
    pub(crate) fn readiness(&mut self, now: i64) -> Readiness {
        let idle_ms = self.ctx.config.max_task_idle_ms();
        let mut queued = false;
        let mut empty_ready = true;
        let mut any_empty = false;
        let mut deadline: Option<i64> = None;
        for inp in &mut self.inputs {
            if queue_head(&mut self.ctx.nodes, inp).is_some() {
                queued = true;
                inp.idle_deadline = None;
                continue;
            }
            any_empty = true;
            if idle_ms < 0 {
                continue;
            }
            match inp.lag {
                Some(0) => {
                    let d = *inp
                        .idle_deadline
                        .get_or_insert_with(|| now.saturating_add(idle_ms));
                    if now < d {
                        empty_ready = false;
                        deadline = Some(deadline.map_or(d, |x: i64| x.min(d)));
                    }
                }
                // Unknown, or records in the log not fetched yet: wait for the next fetch.
                _ => {
                    inp.idle_deadline = None;
                    empty_ready = false;
                }
            }
        }
        if !queued {
            return Readiness::Waiting { deadline: None };
        }
        if !any_empty || idle_ms < 0 {
            return Readiness::Ready;
        }
        if empty_ready {
            Readiness::Enforced
        } else {
            Readiness::Waiting { deadline }
        }
    }

    /// Whether the task has processed everything in its partitions' logs as the consumer
    /// last saw them: nothing queued and every lag 0.
    pub(crate) fn caught_up(&mut self) -> bool {
        let nodes = &mut self.ctx.nodes;
        self.inputs
            .iter()
            .all(|inp| inp.lag == Some(0) && queue_head(nodes, inp).is_none())
    }

    /// The timestamp of the record the task would process next (the smallest head
    /// timestamp across its partitions), if any is queued.
    pub(crate) fn head_timestamp(&mut self) -> Option<i64> {
        self.oldest_input().map(|(ts, _)| ts)
    }

    /// The event time from which this task may still have records to process at
    /// wall-clock time `now`: its next queued record's timestamp; while nothing is queued
    /// but a partition's log holds records not fetched yet (or its lag is not known yet),
    /// its stream time (`i64::MIN` before its first record), for at most [`STARVED_MS`];
    /// `None` when nothing is pending (a task that is caught up holds no one back: its
    /// next records may be hours away). The runtime keeps the tasks of an instance within
    /// a second of event time of each other with it (`runtime::alignment`).
    pub(crate) fn pending_time(&mut self, now: i64) -> Option<i64> {
        if let Some(ts) = self.head_timestamp() {
            self.starved_since = None;
            return Some(ts);
        }
        // Unknown (no fetch response yet) counts as behind.
        if self.inputs.iter().all(|i| i.lag == Some(0)) {
            self.starved_since = None;
            return None;
        }
        let since = *self.starved_since.get_or_insert(now);
        if now.saturating_sub(since) >= STARVED_MS {
            return None;
        }
        Some(if self.ctx.stream_time >= 0 {
            self.ctx.stream_time
        } else {
            i64::MIN
        })
    }

    /// The smallest head timestamp across the task's partitions and the input holding it
    /// (the first on a tie).
    fn oldest_input(&mut self) -> Option<(i64, usize)> {
        let mut best: Option<(i64, usize)> = None;
        for (i, inp) in self.inputs.iter().enumerate() {
            if let Some(ts) = queue_head(&mut self.ctx.nodes, inp)
                && best.is_none_or(|(b, _)| ts < b)
            {
                best = Some((ts, i));
            }
        }
        best
    }

    /// Processes the next record if the task is ready at wall-clock time `now` (see
    /// [`readiness`](Self::readiness)); returns false when it is not, or nothing is queued.
    pub(crate) fn process_ready(&mut self, now: i64) -> Result<bool> {
        if self.inputs.len() > 1 {
            match self.readiness(now) {
                Readiness::Ready => {}
                Readiness::Enforced => self.ctx.metrics.enforced_processing += 1,
                Readiness::Waiting { .. } => return Ok(false),
            }
        }
        self.process_one()
    }

    /// Processes the queued record with the smallest timestamp across the task's partitions,
    /// then fires due stream-time punctuators. Returns false when nothing was queued. Does
    /// not ask whether the task should wait for an empty partition: see
    /// [`process_ready`](Self::process_ready).
    fn process_one(&mut self) -> Result<bool> {
        let Some((ts, i)) = self.oldest_input() else {
            return Ok(false);
        };
        let TaskInput {
            node, topic_idx, ..
        } = self.inputs[i];
        // Metrics of the record leaving the source: end-to-end latency (INFO); lateness
        // against stream time before this record, and the source's count (DEBUG).
        let slot = &mut self.ctx.nodes[node];
        slot.e2e.record(self.ctx.wall_clock.saturating_sub(ts));
        if self.ctx.debug_metrics {
            slot.processed += 1;
            self.ctx
                .lateness
                .record(self.ctx.stream_time.saturating_sub(ts).max(0));
        }
        let mut slot = self.ctx.nodes[node]
            .node
            .take()
            .ok_or_else(|| StreamsError::Internal("source busy".into()))?;
        let result = match slot.as_source() {
            Some(src) => src.process_head(topic_idx, &mut self.ctx),
            None => Err(StreamsError::Internal("input node is not a source".into())),
        };
        self.ctx.nodes[node].node = Some(slot);
        result?;
        self.ctx.current = None;
        self.idle_anchor = Some((self.ctx.wall_clock, self.ctx.stream_time));
        self.punctuate_stream_time()?;
        Ok(true)
    }

    /// Per input partition, how many records are queued (the runtime pauses fetching of
    /// a partition whose queue is full).
    pub(crate) fn queued_per_input(&mut self) -> Vec<(Arc<str>, usize)> {
        let mut out = Vec::with_capacity(self.inputs.len());
        for inp in &self.inputs {
            let n = self.ctx.nodes[inp.node]
                .node
                .as_mut()
                .and_then(|b| b.as_source())
                .map_or(0, |s| s.queued(inp.topic_idx));
            out.push((inp.topic.clone(), n));
        }
        out
    }

    /// Fires every stream-time punctuator that is due. A punctuator that fell behind by
    /// several intervals fires once.
    pub(crate) fn punctuate_stream_time(&mut self) -> Result<bool> {
        let now = self.ctx.stream_time;
        if now < 0 {
            return Ok(false);
        }
        self.punctuate(PunctuationType::StreamTime, now)
    }

    /// Sets the wall clock to `now` and fires every wall-clock punctuator that is due; with
    /// idle advance on, moves stream time on when the task has been idle long enough.
    pub(crate) fn punctuate_wall_clock(&mut self, now: i64) -> Result<bool> {
        self.ctx.wall_clock = now;
        let fired = self.punctuate(PunctuationType::WallClockTime, now)?;
        if let Some(idle) = self.ctx.config.idle_advance_ms()
            && let Some((wall, stream)) = self.idle_anchor
            && stream >= 0
            && now.saturating_sub(wall) >= idle
        {
            // Stream time follows the wall clock from the last record on.
            let target = stream.saturating_add(now.saturating_sub(wall));
            if target > self.ctx.stream_time {
                self.advance_stream_time(target)?;
                return Ok(true);
            }
        }
        Ok(fired)
    }

    /// Moves stream time to `to` without a record: nodes that emit on stream time emit what
    /// became due (in topological order), then stream-time punctuators fire.
    pub(crate) fn advance_stream_time(&mut self, to: i64) -> Result<()> {
        if to <= self.ctx.stream_time {
            return Ok(());
        }
        // Updates waiting in record caches go downstream first: a node that emits on time
        // (suppression) must see a window's last update before the time that closes it.
        self.flush_caches()?;
        self.ctx.stream_time = to;
        self.ctx.current = None;
        self.ctx.set_timestamp(to);
        for i in 0..self.ctx.nodes.len() {
            self.with_node(i, |node, ctx| node.advance_time(ctx))?;
        }
        self.ctx.metrics.idle_advances += 1;
        self.punctuate_stream_time()?;
        Ok(())
    }

    fn punctuate(&mut self, kind: PunctuationType, now: i64) -> Result<bool> {
        let mut fired = false;
        let mut i = 0;
        while i < self.ctx.schedules.len() {
            let s = &mut self.ctx.schedules[i];
            i += 1;
            if s.kind != kind || s.cancelled || s.next > now {
                continue;
            }
            let missed = (now - s.next) / s.interval;
            s.next += (missed + 1) * s.interval;
            let p = Punctuation {
                id: s.id,
                kind,
                timestamp: now,
            };
            let node = s.node;
            self.ctx.current = None;
            self.ctx.set_timestamp(now);
            self.ctx.metrics.punctuations += 1;
            match self.with_node(node, |n, ctx| n.punctuate(p, ctx)) {
                // A punctuator's own failure (KIP-1033 covers punctuations too).
                Err(e @ StreamsError::Processor { .. }) => self.ctx.processing_failed(node, e)?,
                r => r?,
            }
            fired = true;
        }
        self.ctx.schedules.retain(|s| !s.cancelled);
        Ok(fired)
    }

    /// The task's node, store, lateness and suppression metrics for a publish: windows
    /// since the last call (which starts new ones), totals, and RocksDB properties read
    /// now. Fills those fields of `extra`.
    pub(crate) fn take_metrics(&mut self, extra: &mut crate::metrics_export::TaskExtra) {
        use crate::metrics_export::{NodeExtra, StoreExtra};
        let debug = self.ctx.debug_metrics;
        extra.lateness = if debug {
            self.ctx.lateness.take()
        } else {
            None
        };
        extra.nodes = self
            .ctx
            .nodes
            .iter_mut()
            .filter(|s| debug || s.terminal || s.source)
            .map(|s| NodeExtra {
                name: s.name.clone(),
                processed: debug.then_some(s.processed),
                e2e: s.e2e.take(),
            })
            .collect();
        extra.suppression = self
            .ctx
            .suppression
            .iter_mut()
            .filter_map(|(n, w)| w.take().map(|w| (n.clone(), w)))
            .collect();
        extra.stores = self
            .ctx
            .stores
            .iter()
            .map(|s| {
                let meters = s.meters();
                StoreExtra {
                    name: Arc::from(s.name()),
                    ops: meters.ops.as_ref().map(|m| {
                        let ops = m.ops().iter().map(|(n, o)| (*n, o.take())).collect();
                        (m.scope(), ops)
                    }),
                    hit_ratio: meters.hit_ratio.as_ref().and_then(|h| h.take()),
                    rocksdb: s.rocksdb_properties(),
                }
            })
            .collect();
    }

    /// Takes the records produced so far: output first, then changelog records.
    pub(crate) fn take_output(&mut self) -> Vec<ProducedRecord> {
        let mut out = std::mem::take(&mut self.ctx.output);
        let mut log = self
            .ctx
            .changelog
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !log.is_empty() {
            out.append(&mut log);
        }
        out
    }

    /// The topics this task reads (each at the task's partition).
    pub(crate) fn input_partitions(&self) -> Vec<Arc<str>> {
        self.inputs.iter().map(|i| i.topic.clone()).collect()
    }

    /// The next offset to restore from for each changelog partition: the checkpoint's, or 0
    /// when it is missing or damaged.
    pub(crate) fn restore_starts(&self) -> Vec<(ChangelogPartition, i64)> {
        let checkpoint = self
            .task_dir
            .as_ref()
            .map(|d| streams_state::Checkpoint::read(&d.join(Checkpoint::FILE_NAME)));
        if let Some(streams_state::CheckpointRead::Corrupt(reason)) = &checkpoint {
            warn!(task = %self.ctx.id, %reason, "the task's checkpoint is damaged; restoring its stores from the start of their changelogs");
        }
        self.changelogs
            .iter()
            .map(|p| {
                let start = match &checkpoint {
                    Some(streams_state::CheckpointRead::Valid(cp)) => {
                        cp.offsets.get(p).copied().unwrap_or(0)
                    }
                    _ => 0,
                };
                (p.clone(), start)
            })
            .collect()
    }

    /// Applies changelog records to the store logging to `partition`.
    pub(crate) fn restore(
        &self,
        partition: &ChangelogPartition,
        records: &[streams_state::ChangelogRecord],
    ) -> Result<()> {
        let i = self
            .changelogs
            .iter()
            .position(|p| p == partition)
            .ok_or_else(|| StreamsError::Internal(format!("no changelog {partition:?}")))?;
        self.ctx.stores[self.changelog_stores[i]].restore(records)
    }

    /// The changelog partitions of the task's logged stores.
    pub(crate) fn changelog_partitions(&self) -> &[ChangelogPartition] {
        &self.changelogs
    }

    /// Writes every record cache down, forwarding what leaves caches of DSL stores, in
    /// topological order. The first half of a commit; enough for the test driver's cadence.
    pub(crate) fn flush_caches(&mut self) -> Result<()> {
        self.ctx.current = self.ctx.last_record.clone();
        for i in 0..self.ctx.nodes.len() {
            self.with_node(i, |node, ctx| node.flush(ctx))?;
        }
        self.ctx.current = None;
        for s in &self.ctx.stores {
            s.flush_cache()?;
        }
        self.ctx.commit_requested = false;
        Ok(())
    }

    /// Flushes caches and every store's engine: afterwards the stores reflect every change
    /// sent to the changelogs, so a checkpoint may be written.
    pub(crate) fn flush(&mut self) -> Result<()> {
        self.flush_caches()?;
        for s in &self.ctx.stores {
            s.flush()?;
        }
        Ok(())
    }

    /// Writes the task's checkpoint: per changelog partition, the next offset to restore.
    /// Call after [`flush`](Self::flush) once the changelog records are acknowledged.
    pub(crate) fn write_checkpoint(
        &self,
        offsets: &HashMap<ChangelogPartition, i64>,
    ) -> Result<()> {
        let Some(dir) = &self.task_dir else {
            return Ok(());
        };
        if self.changelogs.is_empty() {
            return Ok(());
        }
        // Only stores that keep their data across restarts are checkpointed: an in-memory
        // store is always restored from the start of its changelog (as in Kafka Streams).
        let mut cp = Checkpoint::default();
        for (p, &store) in self.changelogs.iter().zip(&self.changelog_stores) {
            if !self.ctx.stores[store].persistent() {
                continue;
            }
            if let Some(&o) = offsets.get(p) {
                cp.offsets.insert(p.clone(), o);
            }
        }
        cp.write(&dir.join(Checkpoint::FILE_NAME))?;
        Ok(())
    }

    /// Removes the task's checkpoint (under `exactly_once_v2` while it processes: its stores
    /// then hold uncommitted changes, so a crash must restore them from the changelogs).
    pub(crate) fn remove_checkpoint(&self) -> Result<()> {
        let Some(dir) = &self.task_dir else {
            return Ok(());
        };
        let path = dir.join(Checkpoint::FILE_NAME);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError::Io {
                store: path.display().to_string(),
                action: "removing a checkpoint",
                source,
            }
            .into()),
        }
    }

    /// Closes every node, then every store, even when one fails (the first error is
    /// returned): a store left open keeps its RocksDB directory locked in this process.
    pub(crate) fn close(&mut self) -> Result<()> {
        let mut first = None;
        for i in 0..self.ctx.nodes.len() {
            if let Err(e) = self.with_node(i, |node, ctx| node.close(ctx)) {
                first.get_or_insert(e);
            }
        }
        if let Err(e) = self.close_stores() {
            first.get_or_insert(e);
        }
        first.map_or(Ok(()), Err)
    }

    /// Closes every store without running the nodes' `close` (after a panic, whose
    /// nodes' state is not trusted), even when one fails (the first error is returned).
    pub(crate) fn close_stores(&mut self) -> Result<()> {
        let mut first = None;
        for s in &self.ctx.stores {
            if let Err(e) = s.close() {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}
