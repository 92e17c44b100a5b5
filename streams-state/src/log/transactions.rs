//! The log engine's transaction API (Kafka's InitProducerId, AddPartitionsToTxn,
//! AddOffsetsToTxn, EndTxn) over the [coordinator](super::coordinator).

use std::collections::BTreeSet;

use super::batch::AppendRecord;
use super::coordinator::{Durable, TransactionRecovery, TransactionStatus, TxnOffsets};
use super::engine::*;
use super::error::LogError;
use super::topics::*;
use super::txn::ProducerId;
use crate::error::StateError;
use crate::sync::lock;

impl LogEngine {
    /// Every transactional id with its producer and open transaction.
    pub fn transactions(&self) -> Vec<TransactionStatus> {
        self.coordinator.statuses()
    }

    /// Registers `transactional_id` (Kafka's InitProducerId): aborts the transaction its
    /// previous producer left open and returns a producer with a higher epoch, which fences
    /// the previous one (its appends, offsets and commits fail with
    /// [`LogError::ProducerFenced`]).
    pub fn init_producer_id(&self, transactional_id: &str) -> Result<ProducerId, StateError> {
        let entry = self.coordinator.entry_or_new(transactional_id);
        let mut e = lock(&entry);
        if !e.partitions.is_empty() {
            let partitions: BTreeSet<(String, u32)> =
                std::mem::take(&mut e.partitions).into_keys().collect();
            self.write_markers(e.producer, &partitions, false)?;
        }
        e.offsets.clear();
        e.preparing = false;
        // The last commit's decision is replaced: its markers reach the disk first.
        for (t, p) in std::mem::take(&mut e.unsynced) {
            if self.topic_config(&t).is_some_and(|c| p < c.partitions) {
                self.with_partition(&t, p, |log| log.flush())?;
            }
        }
        let producer = self.coordinator.next_producer(e.producer)?;
        self.coordinator.persist(
            transactional_id,
            Durable {
                producer,
                commit: None,
            },
            true,
        )?;
        e.producer = producer;
        Ok(producer)
    }

    /// Appends `records` to a partition in `producer`'s open transaction (beginning one if
    /// none is open); returns the first one's offset. They stay invisible to
    /// `read_committed` readers until the transaction commits.
    pub fn append_transactional<R: AppendRecord>(
        &self,
        transactional_id: &str,
        producer: ProducerId,
        topic: &str,
        partition: u32,
        records: &[R],
    ) -> Result<i64, StateError> {
        let entry = self.coordinator.entry(transactional_id)?;
        let mut e = lock(&entry);
        e.check(transactional_id, producer)?;
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        let t = get_topic(&topics, topic)?;
        check_keys(t, topic, records)?;
        let log = get_partition(t, topic, partition)?;
        let base = lock(log).append_transactional(records, producer)?;
        e.partitions
            .entry((topic.to_string(), partition))
            .or_insert(base);
        Ok(base)
    }

    /// Adds `group`'s offsets (the next offset to read per partition) to `producer`'s open
    /// transaction: they are committed with it, or not at all.
    pub fn add_offsets_to_transaction(
        &self,
        transactional_id: &str,
        producer: ProducerId,
        group: &str,
        offsets: &[(&str, u32, i64)],
    ) -> Result<(), StateError> {
        if !valid_topic(group) {
            return Err(err(LogError::InvalidGroupId(group.to_string())));
        }
        let entry = self.coordinator.entry(transactional_id)?;
        let mut e = lock(&entry);
        e.check(transactional_id, producer)?;
        {
            let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
            for (t, p, _) in offsets {
                get_partition(get_topic(&topics, t)?, t, *p)?;
            }
        }
        let g = e.offsets.entry(group.to_string()).or_default();
        for (t, p, o) in offsets {
            g.insert(((*t).to_string(), *p), *o);
        }
        Ok(())
    }

    /// Commits (`commit`) or aborts `producer`'s open transaction; nothing if none is open.
    ///
    /// A commit syncs what the transaction wrote (unless [`EngineConfig::commit_fsync`] is
    /// off), then stores the decision durably — from then on it is committed, a crash
    /// included — then writes a commit marker to every partition it wrote to and commits
    /// its group offsets. The decision stays stored until the transactional id's next
    /// commit, whose sync covers this one's markers; opening the engine applies it again
    /// (markers only where still missing, offsets never backwards). An abort writes abort
    /// markers and drops the offsets.
    pub fn end_transaction(
        &self,
        transactional_id: &str,
        producer: ProducerId,
        commit: bool,
    ) -> Result<(), StateError> {
        let entry = self.coordinator.entry(transactional_id)?;
        let mut e = lock(&entry);
        e.check(transactional_id, producer)?;
        let firsts = std::mem::take(&mut e.partitions);
        let partitions: BTreeSet<(String, u32)> = firsts.keys().cloned().collect();
        let offsets = std::mem::take(&mut e.offsets);
        if !commit {
            return self.write_markers(producer, &partitions, false);
        }
        if partitions.is_empty() && offsets.is_empty() {
            return Ok(());
        }
        if self.config.commit_fsync {
            // This transaction's records, and the previous commit's markers (its decision
            // is about to be replaced), reach the disk first.
            let previous = std::mem::take(&mut e.unsynced);
            for (t, p) in partitions.union(&previous) {
                if self.topic_config(t).is_some_and(|c| *p < c.partitions) {
                    self.with_partition(t, *p, |log| log.flush())?;
                }
            }
        }
        let decided = Durable {
            producer,
            commit: Some((
                firsts
                    .into_iter()
                    .map(|((t, p), first)| (t, p, first))
                    .collect(),
                offsets.clone(),
            )),
        };
        e.preparing = true;
        let completed = self
            .coordinator
            .persist(transactional_id, decided, self.config.commit_fsync)
            .and_then(|()| self.complete_commit(producer, &partitions, &offsets, false));
        e.preparing = false;
        e.unsynced = partitions;
        completed
    }

    /// Writes commit markers and commits the offsets of a decided transaction.
    fn complete_commit(
        &self,
        producer: ProducerId,
        partitions: &BTreeSet<(String, u32)>,
        offsets: &TxnOffsets,
        recovering: bool,
    ) -> Result<(), StateError> {
        self.write_markers(producer, partitions, true)?;
        for (group, o) in offsets {
            self.commit_txn_offsets(group, o, recovering)?;
        }
        Ok(())
    }

    /// Ends `producer`'s transaction in each of `partitions` with a marker (where it has one
    /// open). Not synced here: see [`LogEngine::end_transaction`].
    fn write_markers(
        &self,
        producer: ProducerId,
        partitions: &BTreeSet<(String, u32)>,
        commit: bool,
    ) -> Result<(), StateError> {
        for (t, p) in partitions {
            self.with_partition(t, *p, |log| log.append_marker(producer, commit).map(drop))?;
        }
        Ok(())
    }

    /// At open: completes the commits decided before a crash, then aborts every transaction
    /// still open in any partition.
    pub(super) fn recover_transactions(&self) -> Result<TransactionRecovery, StateError> {
        let mut report = TransactionRecovery::default();
        for (id, d) in self.coordinator.decided() {
            if let Some((partitions, offsets)) = &d.commit {
                // Only where the decided transaction is still open: the same producer may
                // have begun another one since, which is not decided.
                let mut pending = BTreeSet::new();
                for (t, p, first) in partitions {
                    if self.topic_config(t).is_some_and(|c| *p < c.partitions)
                        && self
                            .open_transactions(t, *p)?
                            .contains(&(d.producer.id, *first))
                    {
                        pending.insert((t.clone(), *p));
                    }
                }
                self.complete_commit(d.producer, &pending, offsets, true)?;
                for (t, p) in &pending {
                    self.with_partition(t, *p, |log| log.flush())?;
                }
                if !pending.is_empty() {
                    report.completed += 1;
                }
            }
            self.coordinator.persist(
                &id,
                Durable {
                    producer: d.producer,
                    commit: None,
                },
                true,
            )?;
        }
        let mut aborted = std::collections::BTreeSet::new();
        for (topic, config) in self.topics() {
            for p in 0..config.partitions {
                for (producer, _) in self.open_transactions(&topic, p)? {
                    let id = ProducerId {
                        id: producer,
                        epoch: self.coordinator.epoch_of(producer),
                    };
                    self.with_partition(&topic, p, |log| {
                        log.append_marker(id, false)?;
                        log.flush()
                    })?;
                    aborted.insert(producer);
                }
            }
        }
        report.aborted = aborted.len() as u64;
        if report != TransactionRecovery::default() {
            tracing::warn!(
                completed = report.completed,
                aborted = report.aborted,
                "transactions a crash left open were completed or aborted"
            );
        }
        Ok(report)
    }
}
