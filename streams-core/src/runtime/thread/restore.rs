//! Opening tasks, restoring their stores from changelogs, keeping standbys current, and
//! closing tasks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use streams_state::{ChangelogPartition, ChangelogRecord};

use crate::client::{Consumer, GroupMember, NoRebalanceListener, TopicPartition};
use crate::error::{Result, StreamsError};
use crate::internals::task::Task;
use crate::record::TaskId;
use crate::runtime::{TaskState, instance_of, wall_clock};

use super::manager::{Active, Standby, TaskManager};
use super::*;

impl TaskManager {
    /// Opens the task `id` as active: from a standby here if there is one (its stores are
    /// warm), else from its directory. `None` while another thread holds the directory.
    pub(super) fn open_active(&mut self, id: TaskId) -> Result<Option<Active>> {
        if let Some(s) = self.standby.remove(&id) {
            let restoring = s.positions.into_iter().map(|(p, next)| (p, (next, next)));
            return Ok(Some(Active::restoring(
                s.task,
                s._lock,
                restoring.collect(),
            )));
        }
        let Some(lock) = self.instance.locks.try_lock(id) else {
            return Ok(None);
        };
        let task = self.new_task(id)?;
        let restoring = task.restore_starts().into_iter();
        let restoring = restoring.map(|(p, start)| (p, (start, start))).collect();
        Ok(Some(Active::restoring(task, lock, restoring)))
    }

    pub(super) fn new_task(&self, id: TaskId) -> Result<Task> {
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
    pub(super) fn start_restoring(&mut self, id: TaskId) -> Result<()> {
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
            // Checkpoints are written only once the task runs, restored up to here.
            a.written.insert(p.clone(), e.max(*next));
        }
        a.restoring.retain(|_, (next, end)| next < end);
        a.restore_total = total;
        self.reassigned = true;
        Ok(())
    }

    /// Moves the consumer back to records read while their task was not open.
    pub(super) fn rewind_unread(&mut self, consumer: &mut dyn Consumer) -> Result<()> {
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

    pub(super) fn retry_pending(&mut self) -> Result<()> {
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
    pub(super) fn restore_step(&mut self) -> Result<()> {
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
    pub(super) fn changelog_subtopology(&self, topic: &str) -> Result<u32> {
        self.changelog_subtopology_of(topic).ok_or_else(|| {
            StreamsError::Internal(format!("`{topic}` is not a changelog of this topology"))
        })
    }

    /// The sub-topology whose stores log to `topic`, if `topic` is a changelog.
    pub(super) fn changelog_subtopology_of(&self, topic: &str) -> Option<u32> {
        let t = &self.instance.topology.inner;
        let app = self.instance.config.application_id();
        t.subtopologies
            .iter()
            .position(|s| {
                s.stores
                    .iter()
                    .any(|&st| t.stores[st].changelog_topic().resolve(app) == topic)
            })
            .and_then(|i| u32::try_from(i).ok())
    }

    /// Pauses each input partition whose queue holds `buffered.records.per.partition`
    /// records (of a task not running yet, too), and resumes it once half of that drained.
    /// Per partition, as in Kafka Streams: a task that waits for one partition to be
    /// fetched (timestamp order) must never have that partition paused by the others.
    pub(super) fn back_pressure(&mut self, consumer: &mut dyn Consumer) -> Result<()> {
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
    pub(super) fn update_standbys(&mut self, members: &[GroupMember], me: &str) -> Result<()> {
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
    /// `StreamThread::recover_task_migrated`). `run_close`: whether the nodes' `close` runs
    /// (not after a panic: only the stores are closed then). Goes on past failures, so that
    /// every store is closed and unregistered (an open one keeps its RocksDB directory
    /// locked in this process); returns the first.
    pub(super) fn close_dirty(&mut self, run_close: bool) -> Result<()> {
        let tasks: Vec<(TaskId, Active)> = std::mem::take(&mut self.active)
            .into_iter()
            .chain(std::mem::take(&mut self.suspended))
            .collect();
        for (id, _) in &tasks {
            self.instance.set_queryable(*id, None);
        }
        let mut first = None;
        for (id, a) in tasks {
            let Active {
                mut task,
                _lock: lock,
                ..
            } = a;
            let closed = if run_close {
                task.close()
            } else {
                task.close_stores()
            };
            if let Err(e) = closed {
                tracing::warn!(task = %id, error = %e, "closing a task dirty failed");
            }
            // The stores are released before their directory goes.
            drop(task);
            if let Err(e) = self.instance.state_dir.wipe_task(&id.to_string()) {
                first.get_or_insert(e.into());
            }
            drop(lock);
        }
        self.pending.clear();
        self.unread.clear();
        self.assigned = false;
        self.restore_assignment.clear();
        self.reassigned = true;
        first.map_or(Ok(()), Err)
    }

    /// Commits and closes every task (the thread is stopping or failed).
    pub(super) fn close_all(&mut self) -> Result<()> {
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
