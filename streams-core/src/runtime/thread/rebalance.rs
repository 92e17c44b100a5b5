//! The task manager as its consumer's rebalance listener: revoked partitions close their
//! tasks (committing first), assigned ones open theirs.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::client::{RebalanceListener, TopicPartition};
use crate::error::Result;
use crate::record::TaskId;
use crate::runtime::TaskState;

use super::FLUSH_TIMEOUT;
use super::manager::TaskManager;

/// What a rebalance did, gathered by the rebalance listener and logged once by the thread
/// after the poll that completed it (the generation is the consumer's).
#[derive(Debug, Default)]
pub(super) struct RebalanceLog {
    /// When it started: the revocation, or the subscription (joining the group).
    pub(super) started: Option<Instant>,
    /// Partitions and active tasks revoked since it started.
    pub(super) revoked_partitions: usize,
    pub(super) revoked_tasks: usize,
    /// The finished rebalance, to log.
    pub(super) done: Option<Rebalanced>,
}

/// A finished rebalance (see [`RebalanceLog`]).
#[derive(Debug)]
pub(super) struct Rebalanced {
    pub(super) duration: Duration,
    pub(super) revoked_partitions: usize,
    pub(super) revoked_tasks: usize,
    pub(super) assigned_partitions: usize,
    /// Active tasks after it.
    pub(super) active_tasks: usize,
    /// Tasks kept from before the rebalance (suspended, then resumed).
    pub(super) resumed: usize,
    /// Tasks opened (restoring first).
    pub(super) opened: usize,
    /// Suspended tasks that did not come back, closed.
    pub(super) closed: usize,
    /// Assigned tasks waiting for their directory.
    pub(super) pending: usize,
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
            // Not purged here: the consumer commits these after this returns, and a commit
            // it cannot make (a lost assignment) must leave the records for the next owner.
            // The next commit of whoever owns the partitions purges them.
            self.prepare_commit(&ids)?
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
                    a.checkpoint_due = !self.eos;
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

    /// The group went on without this member, and another one may own these partitions
    /// and their changelogs already: nothing is committed or checkpointed. Under
    /// `exactly_once_v2` the open transaction (all the thread's tasks) is aborted. Every
    /// task is closed dirty, its stores wiped, so that when assigned again it restores from
    /// the changelogs what the other owner wrote (a store checkpointed past records it
    /// never applied would skip them; under at-least-once its stores may also hold changes
    /// past its last checkpoint). As Kafka Streams' "handle lost all", which closes every
    /// task dirty.
    fn on_partitions_lost(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        let _span = tracing::info_span!("rebalance", phase = "lost", partitions = partitions.len())
            .entered();
        self.rebalance.started.get_or_insert_with(Instant::now);
        self.rebalance.revoked_partitions += partitions.len();
        self.rebalance.revoked_tasks += self.active.len();
        tracing::warn!(
            tasks = self.active.len() + self.suspended.len(),
            open_transaction = self.txn_open,
            "partitions lost: closing every task dirty, without a commit"
        );
        let aborted = if std::mem::take(&mut self.txn_open) {
            // A fenced producer fails here: the thread makes a new one (task migrated).
            self.producer.abort_transaction(FLUSH_TIMEOUT)
        } else {
            Ok(())
        };
        let closed = self.close_dirty(true);
        aborted?;
        closed
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
                if a.checkpoint_due {
                    a.task.write_checkpoint(&a.written)?;
                }
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
                } else if std::mem::take(&mut a.checkpoint_due) {
                    a.task.write_checkpoint(&a.written)?;
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
