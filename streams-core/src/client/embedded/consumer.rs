//! The embedded consumer: group membership through the coordinator, fetches from the
//! log engine, commits, pause/resume, watermarks.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use streams_state::{Isolation, LogEngine};

use crate::client::{
    ClientError, ClientResult, ConsumedRecord, Consumer, GroupMember, GroupMetadata,
    IsolationLevel, RebalanceListener, TopicPartition,
};
use crate::record::{Headers, RawRecord};

use super::producer::{DISK_FULL_RETRY_FOR, wait_for_disk};
use super::*;

/// How much one poll reads from a partition.
pub(super) const FETCH_MAX_BYTES_PER_PARTITION: usize = 1 << 20;
/// How much one poll reads in all (Kafka's `fetch.max.bytes` is larger, but polls here are
/// local reads).
pub(super) const FETCH_MAX_BYTES: usize = 4 << 20;

/// A consumer on the embedded engine.
pub(super) struct EmbeddedConsumer {
    pub(super) engine: Arc<LogEngine>,
    pub(super) group: Option<(String, Arc<Group>)>,
    pub(super) client_id: String,
    pub(super) member: Option<String>,
    /// The generation whose assignment this member holds (0: none yet).
    pub(super) generation: u64,
    pub(super) positions: BTreeMap<TopicPartition, i64>,
    pub(super) paused: BTreeSet<TopicPartition>,
    pub(super) limits: ConsumerSettings,
    /// Where the next fetch starts in `positions`, so that a record limit does not always
    /// favour the first partitions.
    pub(super) next_start: usize,
}

impl EmbeddedConsumer {
    pub(super) fn new(
        engine: Arc<LogEngine>,
        group: Option<(String, Arc<Group>)>,
        client_id: &str,
        limits: ConsumerSettings,
    ) -> Self {
        Self {
            limits,
            next_start: 0,
            engine,
            group,
            client_id: client_id.to_string(),
            member: None,
            generation: 0,
            positions: BTreeMap::new(),
            paused: BTreeSet::new(),
        }
    }

    pub(super) fn group_id(&self) -> ClientResult<&str> {
        self.group
            .as_ref()
            .map(|(id, _)| id.as_str())
            .ok_or_else(|| ClientError::Broker {
                operation: "commit".into(),
                detail: "this consumer has no group".into(),
            })
    }

    /// Runs a pending rebalance: revokes (committing what the listener returns), joins
    /// and, once the group agreed, takes the new assignment. Returns false while the group
    /// is still waiting for other members.
    pub(super) fn rebalance(
        &mut self,
        deadline: Instant,
        listener: &mut dyn RebalanceListener,
    ) -> crate::error::Result<bool> {
        let (Some((_, group)), Some(member)) = (self.group.clone(), self.member.clone()) else {
            return Ok(true);
        };
        if group.generation() == self.generation {
            return Ok(true);
        }
        if !self.positions.is_empty() {
            let revoked: Vec<TopicPartition> = self.positions.keys().cloned().collect();
            let offsets = listener.on_partitions_revoked(&revoked)?;
            self.commit(&offsets)?;
            self.positions.clear();
            self.paused.clear();
        }
        let Some((generation, assignment)) = group.join(&member, &self.engine, deadline) else {
            return Ok(false);
        };
        let committed = self.committed(&assignment)?;
        for (tp, c) in assignment.iter().zip(committed) {
            let start = self.engine.offsets(&tp.topic, tp.partition)?.0;
            self.positions
                .insert(tp.clone(), c.unwrap_or(start).max(start));
        }
        self.generation = generation;
        listener.on_partitions_assigned(&assignment)?;
        Ok(true)
    }

    pub(super) fn fetch(&mut self) -> ClientResult<Vec<ConsumedRecord>> {
        let mut out = Vec::new();
        let mut budget = self.limits.fetch_max_bytes;
        let mut records_left = self.limits.max_poll_records;
        let n = self.positions.len();
        let first = if n == 0 { 0 } else { self.next_start % n };
        self.next_start = self.next_start.wrapping_add(1);
        // Round robin over the partitions, starting one further each poll.
        let order: Vec<TopicPartition> = self
            .positions
            .keys()
            .cycle()
            .skip(first)
            .take(n)
            .cloned()
            .collect();
        for tp in order {
            if self.paused.contains(&tp) || budget == 0 || records_left == 0 {
                continue;
            }
            let Some(pos) = self.positions.get_mut(&tp) else {
                continue;
            };
            let (start, end) = self.engine.offsets(&tp.topic, tp.partition)?;
            let isolation = match self.limits.isolation {
                IsolationLevel::ReadCommitted => Isolation::ReadCommitted,
                IsolationLevel::ReadUncommitted => Isolation::ReadUncommitted,
            };
            if *pos < start {
                // Deleted records (retention, delete-records): continue at the log start.
                *pos = start;
            }
            if *pos > end {
                // Past the end: the log lost records (damage cut it back) or was created
                // again. Reading on from here would skip every record written until the
                // end passes the old position.
                let to = match self.limits.auto_offset_reset {
                    OffsetReset::Earliest => start,
                    OffsetReset::Latest => end,
                    OffsetReset::None => {
                        return Err(ClientError::Broker {
                            operation: "fetching".into(),
                            detail: format!(
                                "position {} of {tp} is past the log end {end} (auto.offset.reset=none)",
                                *pos
                            ),
                        });
                    }
                };
                tracing::warn!(partition = %tp, position = *pos, end, reset_to = to, "position past the end of the log: reset per auto.offset.reset");
                *pos = to;
            }
            if *pos >= end {
                continue;
            }
            let read = self.engine.read_with(
                &tp.topic,
                tp.partition,
                *pos,
                self.limits.max_partition_fetch_bytes.min(budget),
                isolation,
            )?;
            let all = read.records.len() <= records_left;
            // Past what was read and skipped (compacted gaps, markers, aborted records), so
            // that the partition's lag is exact (`max.task.idle.ms`).
            let next = read.next_offset;
            for r in read.records.into_iter().take(records_left) {
                let size =
                    16 + r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len);
                budget = budget.saturating_sub(size);
                records_left -= 1;
                *pos = r.offset + 1;
                let mut headers = Headers::new();
                for (k, v) in r.headers {
                    headers.add(k, v);
                }
                out.push(ConsumedRecord {
                    partition: tp.clone(),
                    record: RawRecord {
                        offset: r.offset,
                        timestamp: r.timestamp,
                        key: r.key,
                        value: r.value,
                        headers,
                    },
                });
            }
            if all {
                *pos = (*pos).max(next);
            }
        }
        Ok(out)
    }

    pub(super) fn leave(&mut self) {
        if let (Some((_, group)), Some(member)) = (&self.group, self.member.take()) {
            group.remove(&member);
        }
        self.positions.clear();
        self.generation = 0;
    }
}

impl Drop for EmbeddedConsumer {
    fn drop(&mut self) {
        self.leave();
    }
}

impl Consumer for EmbeddedConsumer {
    fn subscribe(&mut self, topics: &[String]) -> ClientResult<()> {
        let Some((_, group)) = self.group.clone() else {
            return Err(ClientError::Broker {
                operation: "subscribe".into(),
                detail: "a consumer without group id cannot subscribe".into(),
            });
        };
        self.leave();
        self.member = Some(group.add(&self.client_id, topics));
        Ok(())
    }

    fn assign(&mut self, partitions: &[(TopicPartition, i64)]) -> ClientResult<()> {
        self.positions.clear();
        for (tp, offset) in partitions {
            self.engine.offsets(&tp.topic, tp.partition)?;
            self.positions.insert(tp.clone(), *offset);
        }
        Ok(())
    }

    fn poll(
        &mut self,
        timeout: Duration,
        listener: &mut dyn RebalanceListener,
    ) -> crate::error::Result<Vec<ConsumedRecord>> {
        let deadline = Instant::now() + timeout;
        if !self.rebalance(deadline, listener)? {
            return Ok(Vec::new());
        }
        loop {
            let records = self.fetch()?;
            if !records.is_empty() {
                return Ok(records);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(records);
            }
            // A group change ends the wait: the next poll rebalances.
            if let Some((_, group)) = &self.group
                && self.member.is_some()
                && group.generation() != self.generation
            {
                return Ok(records);
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(2)));
        }
    }

    fn pause(&mut self, partitions: &[TopicPartition]) -> ClientResult<()> {
        for tp in partitions {
            if !self.positions.contains_key(tp) {
                return Err(ClientError::NotAssigned(tp.clone()));
            }
            self.paused.insert(tp.clone());
        }
        Ok(())
    }

    fn resume(&mut self, partitions: &[TopicPartition]) -> ClientResult<()> {
        for tp in partitions {
            self.paused.remove(tp);
        }
        Ok(())
    }

    fn seek(&mut self, partition: &TopicPartition, offset: i64) -> ClientResult<()> {
        match self.positions.get_mut(partition) {
            Some(p) => {
                *p = offset;
                Ok(())
            }
            None => Err(ClientError::NotAssigned(partition.clone())),
        }
    }

    fn position(&self, partition: &TopicPartition) -> Option<i64> {
        self.positions.get(partition).copied()
    }

    fn commit(&mut self, offsets: &[(TopicPartition, i64)]) -> ClientResult<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let group = self.group_id()?.to_string();
        let list: Vec<(&str, u32, i64)> = offsets
            .iter()
            .map(|(tp, o)| (&*tp.topic, tp.partition, *o))
            .collect();
        wait_for_disk(&offsets[0].0, DISK_FULL_RETRY_FOR, || {
            Ok(self.engine.commit_offsets(&group, &list)?)
        })
    }

    fn committed(&self, partitions: &[TopicPartition]) -> ClientResult<Vec<Option<i64>>> {
        let group = self.group_id()?;
        Ok(partitions
            .iter()
            .map(|tp| self.engine.committed(group, &tp.topic, tp.partition))
            .collect())
    }

    /// The low watermark and the end: the log end, or for a `read_committed` consumer the
    /// last stable offset (as Kafka's consumer reports it).
    fn watermarks(&self, partition: &TopicPartition) -> ClientResult<(i64, i64)> {
        let (start, end) = self.engine.offsets(&partition.topic, partition.partition)?;
        if self.limits.isolation == IsolationLevel::ReadCommitted {
            let stable = self
                .engine
                .last_stable_offset(&partition.topic, partition.partition)?;
            return Ok((start, stable));
        }
        Ok((start, end))
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.positions.keys().cloned().collect()
    }

    fn member_id(&self) -> String {
        self.member.clone().unwrap_or_default()
    }

    fn group_metadata(&self) -> Option<GroupMetadata> {
        let (group, _) = self.group.as_ref()?;
        Some(GroupMetadata::new(
            group.clone(),
            i64::try_from(self.generation).unwrap_or(i64::MAX),
            self.member.clone().unwrap_or_default(),
        ))
    }

    fn group_members(&self) -> ClientResult<Vec<GroupMember>> {
        Ok(self
            .group
            .as_ref()
            .map(|(_, g)| g.members())
            .unwrap_or_default())
    }

    fn close(&mut self) -> ClientResult<()> {
        self.leave();
        Ok(())
    }
}
