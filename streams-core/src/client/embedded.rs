//! The clients on the embedded [`LogEngine`]: consumers that form groups in-process,
//! buffered producers, and topic administration.
//!
//! Every consumer of one engine and group id — from any app instance or stream thread in
//! the process — meets at one in-process group coordinator, so several instances sharing an
//! engine split the partitions as a Kafka consumer group would. Rebalances are eager, with
//! a barrier: when a member joins or leaves, every member revokes its partitions (committing
//! their offsets first) in its next poll, and only when all have done so does anyone get
//! the new assignment. A partition is therefore never owned by two members at once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use streams_state::{
    CleanupPolicy, Isolation, LogEngine, LogError, NewRecord, ProducerId, StateError, TopicConfig,
};

use super::{
    Admin, ClientError, ClientResult, ClientSupplier, ConsumedRecord, Consumer, GroupMember,
    GroupMetadata, IsolationLevel, NewTopic, OutgoingRecord, Producer, RebalanceListener,
    TopicPartition,
};
use crate::record::{Headers, RawRecord};

use crate::sync::lock;

/// The clients of an app instance on a [`LogEngine`].
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use streams_core::client::embedded::EmbeddedClients;
/// use streams_core::client::{ClientSupplier, NewTopic, NoRebalanceListener, OutgoingRecord, TopicPartition};
/// use streams_core::runtime::LogEngine;
///
/// let dir = std::env::temp_dir().join(format!("doc-embedded-{}", std::process::id()));
/// let engine = Arc::new(LogEngine::open(&dir).unwrap());
/// let clients = EmbeddedClients::new(engine);
/// clients.admin().unwrap().create_topic(&NewTopic::new("events", 1)).unwrap();
/// let mut producer = clients.producer("p").unwrap();
/// producer.send(OutgoingRecord {
///     partition: TopicPartition::new("events", 0),
///     timestamp: 1,
///     key: Some(b"k".to_vec()),
///     value: Some(b"v".to_vec()),
///     headers: vec![],
/// }).unwrap();
/// producer.flush(Duration::from_secs(1)).unwrap();
/// let mut consumer = clients.consumer("group", "c").unwrap();
/// consumer.subscribe(&["events".to_string()]).unwrap();
/// let records = consumer.poll(Duration::from_secs(5), &mut NoRebalanceListener).unwrap();
/// assert_eq!(records[0].record.value.as_deref(), Some(&b"v"[..]));
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Clone)]
pub struct EmbeddedClients {
    engine: Arc<LogEngine>,
    groups: Arc<Groups>,
    limits: ConsumerSettings,
}

/// Where a consumer starts when its position is outside the log (Kafka's
/// `auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// The log start (Kafka Streams' default for its main consumer).
    #[default]
    Earliest,
    /// The log end.
    Latest,
    /// No reset: the poll fails, naming the partition.
    None,
}

/// What an embedded consumer's poll returns and where it starts: Kafka's consumer settings
/// of the same names, read from `consumer.`-prefixed properties by
/// [`from_properties`](Self::from_properties).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerSettings {
    /// `max.poll.records`: records per poll at most (default: no limit but the bytes).
    pub max_poll_records: usize,
    /// `max.partition.fetch.bytes`: bytes read per partition per poll (default 1 MiB; the
    /// first record is returned even when it is larger).
    pub max_partition_fetch_bytes: usize,
    /// `fetch.max.bytes`: bytes read per poll in all (default 4 MiB).
    pub fetch_max_bytes: usize,
    /// `auto.offset.reset`: where to go when a position (a committed offset) is past the
    /// log end (the log lost records) or before its start (deleted records).
    pub auto_offset_reset: OffsetReset,
    /// `isolation.level`: `read_committed` reads only below the last stable offset and
    /// skips aborted records (the runtime sets it under `exactly_once_v2`, for every
    /// consumer).
    pub isolation: IsolationLevel,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            max_poll_records: usize::MAX,
            max_partition_fetch_bytes: FETCH_MAX_BYTES_PER_PARTITION,
            fetch_max_bytes: FETCH_MAX_BYTES,
            auto_offset_reset: OffsetReset::Earliest,
            isolation: IsolationLevel::ReadUncommitted,
        }
    }
}

impl ConsumerSettings {
    /// The limits set in consumer properties (keys without the `consumer.` prefix);
    /// other consumer properties are logged as ignored (they mean nothing to the embedded
    /// engine). A value that is not a positive integer is refused, naming the setting.
    pub fn from_properties(
        props: &std::collections::BTreeMap<String, String>,
    ) -> Result<Self, crate::config::ConfigError> {
        let mut limits = Self::default();
        for (key, value) in props {
            if key == "isolation.level" {
                limits.isolation = match value.trim() {
                    "read_committed" => IsolationLevel::ReadCommitted,
                    "read_uncommitted" => IsolationLevel::ReadUncommitted,
                    _ => {
                        return Err(crate::config::ConfigError::Invalid {
                            setting: "consumer.isolation.level",
                            detail: format!(
                                "`{value}`: expected read_committed or read_uncommitted"
                            ),
                        });
                    }
                };
                continue;
            }
            if key == "auto.offset.reset" {
                limits.auto_offset_reset = match value.trim() {
                    "earliest" | "smallest" | "beginning" => OffsetReset::Earliest,
                    "latest" | "largest" | "end" => OffsetReset::Latest,
                    "none" | "error" => OffsetReset::None,
                    _ => {
                        return Err(crate::config::ConfigError::Invalid {
                            setting: "consumer.auto.offset.reset",
                            detail: format!("`{value}`: expected earliest, latest or none"),
                        });
                    }
                };
                continue;
            }
            let (slot, setting) = match key.as_str() {
                "max.poll.records" => (&mut limits.max_poll_records, "consumer.max.poll.records"),
                "max.partition.fetch.bytes" => (
                    &mut limits.max_partition_fetch_bytes,
                    "consumer.max.partition.fetch.bytes",
                ),
                "fetch.max.bytes" => (&mut limits.fetch_max_bytes, "consumer.fetch.max.bytes"),
                other => {
                    tracing::warn!(
                        setting = %format!("consumer.{other}"),
                        "ignored: the embedded engine's consumer knows only max.poll.records, max.partition.fetch.bytes, fetch.max.bytes, auto.offset.reset and isolation.level"
                    );
                    continue;
                }
            };
            *slot = value
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| crate::config::ConfigError::Invalid {
                    setting,
                    detail: format!("`{value}` is not a positive integer"),
                })?;
        }
        Ok(limits)
    }
}

impl std::fmt::Debug for EmbeddedClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedClients").finish_non_exhaustive()
    }
}

/// The group coordinators of one engine, by group id.
#[derive(Default)]
struct Groups {
    groups: Mutex<HashMap<String, Arc<Group>>>,
}

/// Coordinators are per engine and process-wide: clients made separately for one engine
/// still meet in the same groups.
type Registry = Mutex<Vec<(Weak<LogEngine>, Arc<Groups>)>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(Vec::new()))
}

impl EmbeddedClients {
    /// Clients on `engine`. Clients made for the same engine share its consumer groups.
    pub fn new(engine: Arc<LogEngine>) -> Self {
        let mut reg = lock(registry());
        reg.retain(|(e, _)| e.strong_count() > 0);
        let groups = match reg
            .iter()
            .find(|(e, _)| e.upgrade().is_some_and(|e| Arc::ptr_eq(&e, &engine)))
        {
            Some((_, g)) => g.clone(),
            None => {
                let g = Arc::new(Groups::default());
                reg.push((Arc::downgrade(&engine), g.clone()));
                start_maintenance(Arc::downgrade(&engine));
                g
            }
        };
        Self {
            engine,
            groups,
            limits: ConsumerSettings::default(),
        }
    }

    /// The same clients, whose consumers read at most `limits` per poll.
    pub fn with_consumer_settings(mut self, limits: ConsumerSettings) -> Self {
        self.limits = limits;
        self
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<LogEngine> {
        &self.engine
    }

    fn group(&self, id: &str) -> Arc<Group> {
        lock(&self.groups.groups)
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(Group::default()))
            .clone()
    }
}

/// How often the embedded engine's retention and compaction run while clients use it.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(30);

/// Runs the engine's maintenance (time retention, compaction) in the background, as a
/// broker's log cleaner would, until the engine is dropped.
fn start_maintenance(engine: Weak<LogEngine>) {
    let spawned = std::thread::Builder::new()
        .name("log-maintenance".into())
        .spawn(move || {
            loop {
                let mut waited = Duration::ZERO;
                while waited < MAINTENANCE_INTERVAL {
                    if engine.strong_count() == 0 {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                    waited += Duration::from_millis(200);
                }
                let Some(e) = engine.upgrade() else { return };
                match e.run_maintenance() {
                    Ok(r) => tracing::debug!(?r, "log maintenance"),
                    Err(err) => tracing::warn!(error = %err, "log maintenance failed"),
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start log maintenance; retention and compaction will not run");
    }
}

impl ClientSupplier for EmbeddedClients {
    fn log_stats(&self) -> Option<Vec<streams_state::PartitionStats>> {
        Some(self.engine.partition_stats())
    }

    fn consumer(&self, group_id: &str, client_id: &str) -> ClientResult<Box<dyn Consumer>> {
        Ok(Box::new(EmbeddedConsumer::new(
            self.engine.clone(),
            Some((group_id.to_string(), self.group(group_id))),
            client_id,
            self.limits,
        )))
    }

    fn restore_consumer(&self, client_id: &str) -> ClientResult<Box<dyn Consumer>> {
        Ok(Box::new(EmbeddedConsumer::new(
            self.engine.clone(),
            None,
            client_id,
            ConsumerSettings {
                isolation: self.limits.isolation,
                ..ConsumerSettings::default()
            },
        )))
    }

    fn producer(&self, _client_id: &str) -> ClientResult<Box<dyn Producer>> {
        Ok(Box::new(EmbeddedProducer::new(self.engine.clone(), None)))
    }

    fn transactional_producer(
        &self,
        _client_id: &str,
        transactional_id: &str,
    ) -> ClientResult<Box<dyn Producer>> {
        Ok(Box::new(EmbeddedProducer::new(
            self.engine.clone(),
            Some(Transactional {
                id: transactional_id.to_string(),
                producer: None,
                open: false,
                groups: self.groups.clone(),
            }),
        )))
    }

    fn admin(&self) -> ClientResult<Arc<dyn Admin>> {
        Ok(Arc::new(EmbeddedAdmin {
            engine: self.engine.clone(),
        }))
    }
}

/// One consumer group's membership and assignment.
#[derive(Default)]
struct Group {
    state: Mutex<GroupState>,
    changed: Condvar,
}

#[derive(Default)]
struct GroupState {
    generation: u64,
    next_member: u64,
    members: BTreeMap<String, Member>,
    /// The assignment of `generation`, once every member joined it.
    assignment: Option<BTreeMap<String, Vec<TopicPartition>>>,
}

struct Member {
    client_id: String,
    topics: Vec<String>,
    /// The generation this member last joined (gave up its partitions for).
    joined: u64,
}

impl Group {
    fn add(&self, client_id: &str, topics: &[String]) -> String {
        let mut s = lock(&self.state);
        s.next_member += 1;
        let id = format!("{client_id}-{:08}", s.next_member);
        s.members.insert(
            id.clone(),
            Member {
                client_id: client_id.to_string(),
                topics: topics.to_vec(),
                joined: 0,
            },
        );
        Self::bump(&mut s);
        drop(s);
        self.changed.notify_all();
        id
    }

    fn remove(&self, member: &str) {
        let mut s = lock(&self.state);
        if s.members.remove(member).is_some() {
            Self::bump(&mut s);
        }
        drop(s);
        self.changed.notify_all();
    }

    fn bump(s: &mut GroupState) {
        s.generation += 1;
        s.assignment = None;
    }

    fn generation(&self) -> u64 {
        lock(&self.state).generation
    }

    /// Joins the current generation and waits (until `deadline`) for every member to
    /// join it. Returns the generation and this member's assignment once complete.
    fn join(
        &self,
        member: &str,
        engine: &LogEngine,
        deadline: Instant,
    ) -> Option<(u64, Vec<TopicPartition>)> {
        let mut s = lock(&self.state);
        let generation = s.generation;
        if let Some(m) = s.members.get_mut(member) {
            m.joined = generation;
        }
        self.changed.notify_all();
        loop {
            if s.generation != generation || !s.members.contains_key(member) {
                return None;
            }
            if s.members.values().all(|m| m.joined == generation) {
                if s.assignment.is_none() {
                    s.assignment = Some(range_assignment(&s.members, engine));
                }
                let mine = s
                    .assignment
                    .as_ref()
                    .and_then(|a| a.get(member).cloned())
                    .unwrap_or_default();
                return Some((generation, mine));
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            s = self
                .changed
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn members(&self) -> Vec<GroupMember> {
        let s = lock(&self.state);
        s.members
            .iter()
            .map(|(id, m)| GroupMember {
                member_id: id.clone(),
                client_id: m.client_id.clone(),
                assignment: s
                    .assignment
                    .as_ref()
                    .and_then(|a| a.get(id).cloned())
                    .unwrap_or_default(),
            })
            .collect()
    }
}

/// librdkafka's `range` assignor: per topic, contiguous ranges of partitions over the
/// members subscribed to it, in member-id order, the first ones taking one more when the
/// division is uneven.
fn range_assignment(
    members: &BTreeMap<String, Member>,
    engine: &LogEngine,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let counts: HashMap<String, u32> = engine
        .topics()
        .into_iter()
        .map(|(name, c)| (name, c.partitions))
        .collect();
    let topics: BTreeSet<&String> = members.values().flat_map(|m| m.topics.iter()).collect();
    let mut out: BTreeMap<String, Vec<TopicPartition>> =
        members.keys().map(|k| (k.clone(), Vec::new())).collect();
    for topic in topics {
        let Some(&n) = counts.get(topic.as_str()) else {
            continue;
        };
        let subscribers: Vec<&String> = members
            .iter()
            .filter(|(_, m)| m.topics.contains(topic))
            .map(|(id, _)| id)
            .collect();
        let m = subscribers.len() as u32;
        if m == 0 {
            continue;
        }
        let (per, extra) = (n / m, n % m);
        let topic: Arc<str> = Arc::from(topic.as_str());
        for (i, id) in subscribers.into_iter().enumerate() {
            let i = i as u32;
            let start = i * per + i.min(extra);
            let len = per + u32::from(i < extra);
            if let Some(list) = out.get_mut(id) {
                list.extend((start..start + len).map(|p| TopicPartition::new(topic.clone(), p)));
            }
        }
    }
    out
}

/// How much one poll reads from a partition.
const FETCH_MAX_BYTES_PER_PARTITION: usize = 1 << 20;
/// How much one poll reads in all (Kafka's `fetch.max.bytes` is larger, but polls here are
/// local reads).
const FETCH_MAX_BYTES: usize = 4 << 20;

/// A consumer on the embedded engine.
struct EmbeddedConsumer {
    engine: Arc<LogEngine>,
    group: Option<(String, Arc<Group>)>,
    client_id: String,
    member: Option<String>,
    /// The generation whose assignment this member holds (0: none yet).
    generation: u64,
    positions: BTreeMap<TopicPartition, i64>,
    paused: BTreeSet<TopicPartition>,
    limits: ConsumerSettings,
    /// Where the next fetch starts in `positions`, so that a record limit does not always
    /// favour the first partitions.
    next_start: usize,
}

impl EmbeddedConsumer {
    fn new(
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

    fn group_id(&self) -> ClientResult<&str> {
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
    fn rebalance(
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

    fn fetch(&mut self) -> ClientResult<Vec<ConsumedRecord>> {
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

    fn leave(&mut self) {
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

/// How many bytes a partition's batch collects before it is appended without waiting for
/// [`Producer::poll`].
const BATCH_BYTES: usize = 256 << 10;

/// Whether `topic` is a state store's changelog (named `<application.id>-<store>-changelog`
/// by the runtime).
fn is_changelog(topic: &str) -> bool {
    topic.ends_with("-changelog")
}

/// How long an append waits for space on a full disk before the producer gives up (Kafka's
/// `delivery.timeout.ms` default: a producer retries a broker's storage error that long).
const DISK_FULL_RETRY_FOR: Duration = Duration::from_secs(120);

/// Runs `write` (an append or an offset commit of `partition`), repeating it while it
/// fails on a full disk (the engine wrote nothing past its last good position, so a repeat
/// is safe), for at most `retry_for`; the wait and the recovery are logged once each, the
/// first with the path and the space left. After `retry_for` the disk-full error is
/// returned.
fn wait_for_disk<T>(
    partition: &TopicPartition,
    retry_for: Duration,
    mut write: impl FnMut() -> ClientResult<T>,
) -> ClientResult<T> {
    let mut since: Option<Instant> = None;
    let mut pause = Duration::from_millis(20);
    loop {
        match write() {
            Err(ClientError::Engine(e)) if e.is_retriable() => {
                let start = *since.get_or_insert_with(|| {
                    tracing::warn!(%partition, error = %e, "writing waits for disk space");
                    Instant::now()
                });
                if start.elapsed() >= retry_for {
                    return Err(ClientError::Engine(e));
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(e) => return Err(e),
            Ok(v) => {
                if let Some(start) = since {
                    tracing::info!(
                        %partition,
                        waited_ms = start.elapsed().as_millis() as u64,
                        "disk space is back: writing again"
                    );
                }
                return Ok(v);
            }
        }
    }
}

/// A producer on the embedded engine: one batch per partition, appended when full, on
/// poll and on flush; transactional ones append into their open transaction. An append
/// that finds the disk full is retried (the log wrote nothing past its last good
/// position) until space is freed or `retry_for` passed, as a Kafka producer retries a
/// broker's storage error: the stream thread waits instead of losing or failing.
struct EmbeddedProducer {
    engine: Arc<LogEngine>,
    batches: HashMap<TopicPartition, (Vec<NewRecord>, usize)>,
    txn: Option<Transactional>,
    retry_for: Duration,
}

/// A transactional producer's state.
struct Transactional {
    id: String,
    /// Set by `init_transactions`.
    producer: Option<ProducerId>,
    /// A transaction is open (begun, not committed or aborted).
    open: bool,
    /// The engine's groups, whose generations fence offsets of zombies.
    groups: Arc<Groups>,
}

/// An engine error of a transactional operation as a client error: a fenced producer is
/// [`ClientError::ProducerFenced`].
fn txn_error(operation: &str, e: StateError) -> ClientError {
    match e {
        StateError::Log(LogError::ProducerFenced { .. }) => ClientError::ProducerFenced {
            operation: operation.into(),
            detail: e.to_string(),
        },
        e => ClientError::Engine(e),
    }
}

impl EmbeddedProducer {
    fn new(engine: Arc<LogEngine>, txn: Option<Transactional>) -> Self {
        Self {
            engine,
            batches: HashMap::new(),
            txn,
            retry_for: DISK_FULL_RETRY_FOR,
        }
    }

    /// Appends one partition's batch, waiting out a full disk (see the type's docs).
    fn append(&self, tp: &TopicPartition, batch: &[NewRecord]) -> ClientResult<()> {
        wait_for_disk(tp, self.retry_for, || self.append_once(tp, batch))
    }

    /// Appends one partition's batch: plainly, or into the open transaction.
    fn append_once(&self, tp: &TopicPartition, batch: &[NewRecord]) -> ClientResult<()> {
        match &self.txn {
            None => {
                self.engine.append(&tp.topic, tp.partition, batch)?;
            }
            Some(t) => {
                let producer = t.producer.ok_or_else(|| ClientError::Broker {
                    operation: "sending".into(),
                    detail: "init_transactions was not called".into(),
                })?;
                self.engine
                    .append_transactional(&t.id, producer, &tp.topic, tp.partition, batch)
                    .map_err(|e| txn_error("sending", e))?;
            }
        }
        Ok(())
    }

    /// Appends the pending batches of changelog topics (`changelogs`) or of every other
    /// topic.
    ///
    /// Other topics go first, so that a changelog record never reaches the log before
    /// the output and repartition records sent ahead of it: a process killed between two
    /// appends leaves state behind its outputs (reprocessing repeats them), never ahead
    /// (a restored store that already holds a record whose results died with the process,
    /// for instance a join whose lateness clock the restored changelog moved on, would
    /// not produce them again). Transactions do not need it but do not mind.
    fn append_pending(&mut self, changelogs: bool) -> ClientResult<()> {
        let due: Vec<TopicPartition> = self
            .batches
            .keys()
            .filter(|tp| is_changelog(&tp.topic) == changelogs)
            .cloned()
            .collect();
        for tp in due {
            self.append_batch_of(tp)?;
        }
        Ok(())
    }

    /// Appends the pending batch of `tp`; on failure it stays pending (nothing of it reached
    /// the log), so that a retried flush or commit sends it instead of skipping it.
    fn append_batch_of(&mut self, tp: TopicPartition) -> ClientResult<()> {
        let Some((batch, bytes)) = self.batches.remove(&tp) else {
            return Ok(());
        };
        if batch.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.append(&tp, &batch) {
            // Records sent meanwhile cannot exist (one thread owns the producer).
            self.batches.insert(tp, (batch, bytes));
            return Err(e);
        }
        Ok(())
    }

    /// The open transaction's producer: fails when none is open.
    fn open_txn(&self, operation: &str) -> ClientResult<(&Transactional, ProducerId)> {
        let t = self
            .txn
            .as_ref()
            .ok_or_else(|| super::not_transactional(operation))?;
        match t.producer {
            Some(p) if t.open => Ok((t, p)),
            _ => Err(ClientError::Broker {
                operation: operation.into(),
                detail: "no transaction is open (begin_transaction first)".into(),
            }),
        }
    }
}

impl Producer for EmbeddedProducer {
    fn send(&mut self, record: OutgoingRecord) -> ClientResult<()> {
        if self.txn.as_ref().is_some_and(|t| !t.open) {
            return Err(ClientError::Broker {
                operation: format!("sending to {}", record.partition),
                detail: "a transactional producer sends only inside a transaction".into(),
            });
        }
        let size = 16
            + record.key.as_ref().map_or(0, Vec::len)
            + record.value.as_ref().map_or(0, Vec::len);
        let full = {
            let (batch, bytes) = self.batches.entry(record.partition.clone()).or_default();
            batch.push(NewRecord {
                timestamp: record.timestamp,
                key: record.key,
                value: record.value,
                headers: record.headers,
            });
            *bytes += size;
            *bytes >= BATCH_BYTES
        };
        if full {
            if is_changelog(&record.partition.topic) {
                // Not before the outputs sent ahead of it (see `append_pending`).
                self.append_pending(false)?;
            }
            self.append_batch_of(record.partition)?;
        }
        Ok(())
    }

    fn poll(&mut self) -> ClientResult<()> {
        self.append_pending(false)?;
        self.append_pending(true)
    }

    fn flush(&mut self, _timeout: Duration) -> ClientResult<()> {
        self.poll()?;
        if self.txn.is_some() {
            // Durability comes with the commit.
            return Ok(());
        }
        Ok(self.engine.flush()?)
    }

    fn is_transactional(&self) -> bool {
        self.txn.is_some()
    }

    fn init_transactions(&mut self, _timeout: Duration) -> ClientResult<()> {
        let t = self
            .txn
            .as_mut()
            .ok_or_else(|| super::not_transactional("init_transactions"))?;
        t.producer = Some(self.engine.init_producer_id(&t.id)?);
        t.open = false;
        self.batches.clear();
        Ok(())
    }

    fn begin_transaction(&mut self) -> ClientResult<()> {
        let t = self
            .txn
            .as_mut()
            .ok_or_else(|| super::not_transactional("begin_transaction"))?;
        if t.producer.is_none() {
            return Err(ClientError::Broker {
                operation: "begin_transaction".into(),
                detail: "init_transactions was not called".into(),
            });
        }
        if t.open {
            return Err(ClientError::Broker {
                operation: "begin_transaction".into(),
                detail: "a transaction is open already".into(),
            });
        }
        t.open = true;
        Ok(())
    }

    fn send_offsets_to_transaction(
        &mut self,
        offsets: &[(TopicPartition, i64)],
        group: &GroupMetadata,
        _timeout: Duration,
    ) -> ClientResult<()> {
        let operation = "send_offsets_to_transaction";
        let (t, producer) = self.open_txn(operation)?;
        // KIP-447: offsets of a member that is no longer in the group, or from an older
        // generation than the one it joined, come from a zombie.
        let g = lock(&t.groups.groups).get(&group.group_id).cloned();
        let zombie = g.is_some_and(|g| {
            let state = lock(&g.state);
            let current = state.members.get(&group.member_id).map(|m| m.joined);
            current.is_none_or(|joined| i64::try_from(joined).ok() != Some(group.generation))
        });
        if zombie {
            // Nothing the zombie wrote may become visible: its transaction is aborted now
            // (a broker would time it out), so that the partitions' LSO moves on.
            let id = t.id.clone();
            self.batches.clear();
            if let Some(t) = self.txn.as_mut() {
                t.open = false;
            }
            if let Err(e) = self.engine.end_transaction(&id, producer, false) {
                tracing::warn!(transactional_id = %id, error = %e, "aborting a fenced transaction failed");
            }
            return Err(ClientError::ProducerFenced {
                operation: operation.into(),
                detail: format!(
                    "member `{}` of group `{}` is not in generation {} any more",
                    group.member_id, group.group_id, group.generation
                ),
            });
        }
        let list: Vec<(&str, u32, i64)> = offsets
            .iter()
            .map(|(tp, o)| (&*tp.topic, tp.partition, *o))
            .collect();
        self.engine
            .add_offsets_to_transaction(&t.id, producer, &group.group_id, &list)
            .map_err(|e| txn_error(operation, e))
    }

    fn commit_transaction(&mut self, _timeout: Duration) -> ClientResult<()> {
        let (t, producer) = self.open_txn("commit_transaction")?;
        let id = t.id.clone();
        if let Err(e) = self.poll() {
            return Err(match e {
                e @ ClientError::ProducerFenced { .. } => e,
                e => ClientError::TransactionAborted {
                    operation: "commit_transaction".into(),
                    detail: e.to_string(),
                },
            });
        }
        let ended = self.engine.end_transaction(&id, producer, true);
        if let Some(t) = self.txn.as_mut() {
            t.open = false;
        }
        ended.map_err(|e| txn_error("commit_transaction", e))
    }

    fn abort_transaction(&mut self, _timeout: Duration) -> ClientResult<()> {
        let (t, producer) = self.open_txn("abort_transaction")?;
        let id = t.id.clone();
        self.batches.clear();
        let ended = self.engine.end_transaction(&id, producer, false);
        if let Some(t) = self.txn.as_mut() {
            t.open = false;
        }
        ended.map_err(|e| txn_error("abort_transaction", e))
    }
}

/// Topic administration on the embedded engine.
struct EmbeddedAdmin {
    engine: Arc<LogEngine>,
}

impl Admin for EmbeddedAdmin {
    fn create_topic(&self, topic: &NewTopic) -> ClientResult<()> {
        let mut config = TopicConfig::new(topic.partitions);
        if topic.compact {
            config.cleanup = CleanupPolicy::Compact;
        }
        match self.engine.create_topic(&topic.name, config) {
            Ok(()) => Ok(()),
            Err(StateError::Log(LogError::TopicExists(name))) => {
                Err(ClientError::TopicExists(name))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn topics(&self) -> ClientResult<BTreeMap<String, u32>> {
        Ok(self
            .engine
            .topics()
            .into_iter()
            .map(|(n, c)| (n, c.partitions))
            .collect())
    }

    fn delete_topic(&self, topic: &str) -> ClientResult<()> {
        Ok(self.engine.delete_topic(topic)?)
    }

    fn delete_records(&self, partition: &TopicPartition, offset: i64) -> ClientResult<()> {
        Ok(self
            .engine
            .delete_records(&partition.topic, partition.partition, offset)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::NoRebalanceListener;

    struct Recorder {
        assigned: Vec<Vec<TopicPartition>>,
        revoked: Vec<Vec<TopicPartition>>,
    }

    impl RebalanceListener for Recorder {
        fn on_partitions_revoked(
            &mut self,
            partitions: &[TopicPartition],
        ) -> crate::error::Result<Vec<(TopicPartition, i64)>> {
            self.revoked.push(partitions.to_vec());
            Ok(partitions.iter().map(|tp| (tp.clone(), 1)).collect())
        }
        fn on_partitions_assigned(
            &mut self,
            partitions: &[TopicPartition],
        ) -> crate::error::Result<()> {
            self.assigned.push(partitions.to_vec());
            Ok(())
        }
    }

    fn record(tp: &TopicPartition, v: &str) -> OutgoingRecord {
        OutgoingRecord {
            partition: tp.clone(),
            timestamp: 1,
            key: Some(b"k".to_vec()),
            value: Some(v.as_bytes().to_vec()),
            headers: Vec::new(),
        }
    }

    fn committed_values(engine: &LogEngine, tp: &TopicPartition) -> Vec<String> {
        engine
            .read_with(
                &tp.topic,
                tp.partition,
                0,
                usize::MAX,
                Isolation::ReadCommitted,
            )
            .unwrap()
            .records
            .into_iter()
            .map(|r| String::from_utf8(r.value.unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn a_zombie_member_is_fenced_and_nothing_it_wrote_becomes_visible() {
        let (_dir, clients) = clients();
        let admin = clients.admin().unwrap();
        admin.create_topic(&NewTopic::new("in", 1)).unwrap();
        admin.create_topic(&NewTopic::new("out", 1)).unwrap();
        let out = TopicPartition::new("out", 0);
        let input = TopicPartition::new("in", 0);
        let mut consumer = clients.consumer("g", "a").unwrap();
        consumer.subscribe(&["in".to_string()]).unwrap();
        consumer
            .poll(Duration::from_millis(300), &mut NoRebalanceListener)
            .unwrap();
        assert_eq!(consumer.assignment(), std::slice::from_ref(&input));
        let metadata = consumer.group_metadata().unwrap();
        let mut producer = clients.transactional_producer("p", "txn-a").unwrap();
        assert!(producer.is_transactional());
        assert!(
            producer.send(record(&out, "early")).is_err(),
            "outside a transaction"
        );
        producer.init_transactions(Duration::from_secs(1)).unwrap();
        producer.begin_transaction().unwrap();
        producer.send(record(&out, "live")).unwrap();
        producer
            .send_offsets_to_transaction(&[(input.clone(), 1)], &metadata, Duration::from_secs(1))
            .unwrap();
        producer.commit_transaction(Duration::from_secs(1)).unwrap();
        assert_eq!(clients.engine().committed("g", "in", 0), Some(1));
        // The member is dropped from the group (its session expired while it was paused);
        // it resumes and goes on as if it still owned the partition.
        producer.begin_transaction().unwrap();
        producer.send(record(&out, "zombie")).unwrap();
        producer.poll().unwrap();
        clients.group("g").remove(&metadata.member_id);
        let fenced = producer
            .send_offsets_to_transaction(&[(input.clone(), 2)], &metadata, Duration::from_secs(1))
            .unwrap_err();
        assert!(fenced.is_task_migrated(), "{fenced}");
        assert!(producer.commit_transaction(Duration::from_secs(1)).is_err());
        assert_eq!(committed_values(clients.engine(), &out), ["live"]);
        assert_eq!(clients.engine().committed("g", "in", 0), Some(1));
        let (_, end) = clients.engine().offsets("out", 0).unwrap();
        assert_eq!(
            clients.engine().last_stable_offset("out", 0).unwrap(),
            end,
            "aborted, not pending"
        );
        // A second producer with the same transactional id fences the first.
        let mut again = clients.transactional_producer("p2", "txn-a").unwrap();
        again.init_transactions(Duration::from_secs(1)).unwrap();
        producer.begin_transaction().unwrap();
        let err = producer
            .send(record(&out, "old epoch"))
            .and_then(|()| producer.poll());
        assert!(
            matches!(err, Err(ClientError::ProducerFenced { .. })),
            "{err:?}"
        );
    }

    fn clients() -> (tempfile::TempDir, EmbeddedClients) {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(LogEngine::open(dir.path()).unwrap());
        for t in ["a", "b"] {
            engine.create_topic(t, TopicConfig::new(4)).unwrap();
        }
        (dir, EmbeddedClients::new(engine))
    }

    #[test]
    fn fetch_limits_bound_each_poll_and_bad_values_name_the_setting() {
        let (_dir, clients) = clients();
        let engine = clients.engine().clone();
        engine
            .create_topic("t", streams_state::TopicConfig::new(2))
            .unwrap();
        for p in 0..2 {
            engine.append("t", p, &values(50, 10)).unwrap();
        }
        let props: std::collections::BTreeMap<String, String> =
            [("max.poll.records".to_string(), "30".to_string())].into();
        let limits = ConsumerSettings::from_properties(&props).unwrap();
        let clients = clients.with_consumer_settings(limits);
        let mut c = clients.restore_consumer("r").unwrap();
        // The restore consumer keeps the defaults: everything at once.
        c.assign(&[
            (TopicPartition::new("t", 0), 0),
            (TopicPartition::new("t", 1), 0),
        ])
        .unwrap();
        assert_eq!(
            c.poll(Duration::ZERO, &mut NoRebalanceListener)
                .unwrap()
                .len(),
            100
        );
        let mut c = clients.consumer("g", "c").unwrap();
        c.subscribe(&["t".to_string()]).unwrap();
        let mut sizes = Vec::new();
        let mut per_partition = [0usize; 2];
        for _ in 0..20 {
            let got = c
                .poll(Duration::from_millis(200), &mut NoRebalanceListener)
                .unwrap();
            if got.is_empty() && sizes.iter().sum::<usize>() == 100 {
                break;
            }
            for r in &got {
                per_partition[r.partition.partition as usize] += 1;
            }
            sizes.push(got.len());
        }
        assert!(sizes.iter().all(|n| *n <= 30), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 100);
        assert_eq!(per_partition, [50, 50]);

        for (key, value) in [
            ("max.poll.records", "0"),
            ("fetch.max.bytes", "lots"),
            ("auto.offset.reset", "sometimes"),
        ] {
            let props: std::collections::BTreeMap<String, String> =
                [(key.to_string(), value.to_string())].into();
            let err = ConsumerSettings::from_properties(&props).unwrap_err();
            assert!(
                err.to_string().contains(&format!("consumer.{key}")),
                "{err}"
            );
        }
    }

    #[test]
    fn a_position_past_the_log_end_resets_per_auto_offset_reset() {
        for (reset, expected) in [
            ("earliest", Some(vec![0, 1, 2, 3, 4])),
            ("latest", Some(vec![3, 4])),
            ("none", None),
        ] {
            let (_dir, clients) = clients();
            let engine = clients.engine().clone();
            engine
                .create_topic("t", streams_state::TopicConfig::new(1))
                .unwrap();
            let append = |n: i64| {
                engine.append("t", 0, &values(n, 1)).unwrap();
            };
            append(3);
            let props: std::collections::BTreeMap<String, String> =
                [("auto.offset.reset".to_string(), reset.to_string())].into();
            let clients =
                clients.with_consumer_settings(ConsumerSettings::from_properties(&props).unwrap());
            // A group committed offset 10, past the end (3): the log lost records.
            let tp = TopicPartition::new("t", 0);
            engine.commit_offsets("g", &[("t", 0, 10)]).unwrap();
            let mut c = clients.consumer("g", "c").unwrap();
            c.subscribe(&["t".to_string()]).unwrap();
            let mut got = Vec::new();
            let mut failed = false;
            for i in 0..5 {
                match c.poll(Duration::from_millis(100), &mut NoRebalanceListener) {
                    Ok(records) => got.extend(records.iter().map(|r| r.record.offset)),
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
                if i == 1 {
                    // Records written after the reset.
                    append(2);
                }
            }
            match expected {
                Some(offsets) => {
                    assert!(!failed, "{reset}");
                    // Latest: from the end (3) on, so only the records written after.
                    assert_eq!(got, offsets, "{reset}");
                    assert!(c.position(&tp).unwrap() >= 3, "{reset}");
                }
                None => assert!(failed, "{reset}: the poll must fail"),
            }
        }
    }

    /// `n` keyless records of `size`-byte values, timestamped 0, 1, ...
    fn values(n: i64, size: usize) -> Vec<streams_state::NewRecord> {
        (0..n)
            .map(|i| streams_state::NewRecord {
                timestamp: i,
                key: None,
                value: Some(vec![1; size]),
                headers: Vec::new(),
            })
            .collect()
    }

    fn subs() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    #[test]
    fn range_assignment_keeps_co_partitioned_topics_together() {
        let (_d, c) = clients();
        let mut c1 = c.consumer("g", "x").unwrap();
        let mut c2 = c.consumer("g", "y").unwrap();
        c1.subscribe(&subs()).unwrap();
        c2.subscribe(&subs()).unwrap();
        let (mut r1, mut r2) = (
            Recorder {
                assigned: vec![],
                revoked: vec![],
            },
            Recorder {
                assigned: vec![],
                revoked: vec![],
            },
        );
        // Each poll waits for the other member; alternate until both have an assignment.
        for _ in 0..100 {
            c1.poll(Duration::from_millis(5), &mut r1).unwrap();
            c2.poll(Duration::from_millis(5), &mut r2).unwrap();
            if !r1.assigned.is_empty() && !r2.assigned.is_empty() {
                break;
            }
        }
        let parts = |v: &[TopicPartition], t: &str| {
            v.iter()
                .filter(|tp| &*tp.topic == t)
                .map(|tp| tp.partition)
                .collect::<Vec<_>>()
        };
        let a1 = r1.assigned.last().unwrap();
        let a2 = r2.assigned.last().unwrap();
        assert_eq!(parts(a1, "a"), vec![0, 1]);
        assert_eq!(parts(a1, "b"), vec![0, 1]);
        assert_eq!(parts(a2, "a"), vec![2, 3]);
        assert_eq!(parts(a2, "b"), vec![2, 3]);
        // The group view shows both members' assignments.
        let members = c1.group_members().unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(members.iter().map(|m| m.assignment.len()).sum::<usize>(), 8);
    }

    #[test]
    fn a_leaving_member_commits_on_revocation_and_its_partitions_move() {
        let (_d, c) = clients();
        // Two records in a-0, so that the committed offset 1 is inside its log.
        c.engine().append("a", 0, &values(2, 1)).unwrap();
        let mut c1 = c.consumer("g", "x").unwrap();
        let mut c2 = c.consumer("g", "y").unwrap();
        c1.subscribe(&subs()).unwrap();
        c2.subscribe(&subs()).unwrap();
        let mut r1 = Recorder {
            assigned: vec![],
            revoked: vec![],
        };
        let mut r2 = Recorder {
            assigned: vec![],
            revoked: vec![],
        };
        for _ in 0..100 {
            c1.poll(Duration::from_millis(5), &mut r1).unwrap();
            c2.poll(Duration::from_millis(5), &mut r2).unwrap();
            if !r1.assigned.is_empty() && !r2.assigned.is_empty() {
                break;
            }
        }
        c2.close().unwrap();
        let after = c1.poll(Duration::from_millis(50), &mut r1).unwrap();
        // c1 revoked its 4 partitions (committing offset 1 for each), then got all 8.
        assert_eq!(r1.revoked.last().unwrap().len(), 4);
        assert_eq!(r1.assigned.last().unwrap().len(), 8);
        let committed = c1
            .committed(&[TopicPartition::new("a", 0), TopicPartition::new("a", 3)])
            .unwrap();
        assert_eq!(committed, vec![Some(1), None]);
        // Positions start at the committed offset: a-0 is read from offset 1 on.
        let a0: Vec<i64> = after
            .iter()
            .filter(|r| r.partition == TopicPartition::new("a", 0))
            .map(|r| r.record.offset)
            .collect();
        assert_eq!(a0, vec![1]);
        assert_eq!(c1.position(&TopicPartition::new("a", 3)), Some(0));
    }

    #[test]
    fn a_full_changelog_batch_is_appended_after_the_outputs_sent_before_it() {
        let (_d, c) = clients();
        let engine = c.engine();
        engine
            .create_topic("app-s-changelog", TopicConfig::new(1))
            .unwrap();
        let mut p = c.producer("p").unwrap();
        let out = TopicPartition::new("a", 2);
        let changelog = TopicPartition::new("app-s-changelog", 0);
        p.send(record(&out, "result")).unwrap();
        let big = "x".repeat(4096);
        let mut sent = 0;
        // Until the changelog's batch is full and appended (no poll, no flush).
        while engine.offsets("app-s-changelog", 0).unwrap().1 == 0 {
            p.send(record(&changelog, &big)).unwrap();
            sent += 1;
            assert!(sent < 1000, "the changelog batch never filled");
        }
        // The output sent before it reached the log no later than the changelog.
        assert_eq!(engine.offsets("a", 2).unwrap().1, 1);
        // A full output batch goes alone: pending changelog records are not pulled ahead.
        p.send(record(&changelog, "pending")).unwrap();
        let before = engine.offsets("app-s-changelog", 0).unwrap().1;
        while engine.offsets("a", 2).unwrap().1 == 1 {
            p.send(record(&out, &big)).unwrap();
        }
        assert_eq!(engine.offsets("app-s-changelog", 0).unwrap().1, before);
        p.poll().unwrap();
        assert_eq!(engine.offsets("app-s-changelog", 0).unwrap().1, before + 1);
    }

    #[test]
    fn paused_partitions_return_nothing_until_resumed() {
        let (_d, c) = clients();
        let mut p = c.producer("p").unwrap();
        for part in 0..4 {
            p.send(OutgoingRecord {
                partition: TopicPartition::new("a", part),
                timestamp: 5,
                key: None,
                value: Some(vec![part as u8]),
                headers: vec![],
            })
            .unwrap();
        }
        p.flush(Duration::from_secs(1)).unwrap();
        let mut r = c.restore_consumer("r").unwrap();
        let tps: Vec<(TopicPartition, i64)> =
            (0..4).map(|p| (TopicPartition::new("a", p), 0)).collect();
        r.assign(&tps).unwrap();
        r.pause(&[TopicPartition::new("a", 1)]).unwrap();
        let got = r
            .poll(Duration::from_millis(10), &mut NoRebalanceListener)
            .unwrap();
        let mut parts: Vec<u32> = got.iter().map(|c| c.partition.partition).collect();
        parts.sort_unstable();
        assert_eq!(parts, vec![0, 2, 3]);
        r.resume(&[TopicPartition::new("a", 1)]).unwrap();
        let got = r
            .poll(Duration::from_millis(10), &mut NoRebalanceListener)
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].record.value, Some(vec![1]));
        r.seek(&TopicPartition::new("a", 1), 0).unwrap();
        let got = r
            .poll(Duration::from_millis(10), &mut NoRebalanceListener)
            .unwrap();
        assert_eq!(got.len(), 1);
        assert!(r.seek(&TopicPartition::new("b", 0), 0).is_err());
    }

    #[test]
    fn admin_creates_lists_and_refuses_duplicates() {
        let (_d, c) = clients();
        let admin = c.admin().unwrap();
        admin
            .create_topic(&NewTopic::new("c", 3).compacted())
            .unwrap();
        assert_eq!(admin.topics().unwrap().get("c"), Some(&3));
        assert!(matches!(
            admin.create_topic(&NewTopic::new("c", 3)),
            Err(ClientError::TopicExists(_))
        ));
        admin.delete_topic("c").unwrap();
        assert!(!admin.topics().unwrap().contains_key("c"));
    }
}
