//! The classic consumer group coordinator (JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! ListGroups, DescribeGroups) and committed offsets (OffsetCommit, OffsetFetch).
//!
//! A group goes Empty → PreparingRebalance → CompletingRebalance → Stable, as Kafka's: a
//! member joining, leaving, changing its subscription, or missing its session timeout starts
//! a rebalance; the rebalance completes when every member has rejoined (or its rebalance
//! timeout drops those that have not), with a new generation, a protocol every member
//! supports (by vote) and a leader, which alone gets the members' metadata and computes the
//! assignment on the client; SyncGroup hands each member its part. Members and generations
//! live in memory (a restarted server starts every group afresh: members rejoin); committed
//! offsets are the engine's ([`LogEngine::commit_offsets`](crate::LogEngine::commit_offsets)),
//! durable. Static membership (`group.instance.id`) is not implemented: such members are
//! treated as dynamic ones.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;

use super::codes;
use super::dispatch::{Client, str_bytes};
use super::server::State;
use crate::TransactionState;
use crate::sync::lock;

/// The session timeouts a member may ask for (Kafka's defaults are 6 s to 30 min; shorter
/// ones are allowed here for tests).
const SESSION_TIMEOUT_MS: std::ops::RangeInclusive<i32> = 100..=1_800_000;

/// A group's state, named as Kafka names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Empty => "Empty",
            Phase::PreparingRebalance => "PreparingRebalance",
            Phase::CompletingRebalance => "CompletingRebalance",
            Phase::Stable => "Stable",
        }
    }
}

#[derive(Debug)]
struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocol_type: String,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    /// The last heartbeat (or join, or sync).
    seen: Instant,
    /// A JoinGroup waiting for the rebalance to complete, and its version.
    join: Option<(oneshot::Sender<JoinGroupResponse>, i16)>,
    /// A SyncGroup waiting for the leader's assignment, and its version.
    sync: Option<(oneshot::Sender<SyncGroupResponse>, i16)>,
}

impl Member {
    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

#[derive(Debug)]
struct Group {
    phase: Phase,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    /// In join order.
    members: Vec<Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED and not used yet, with their expiry.
    pending: HashMap<String, Instant>,
    /// When the running rebalance drops the members that have not rejoined.
    rebalance_deadline: Instant,
    /// The earliest a running rebalance may complete (the initial delay of an empty group).
    earliest: Instant,
}

fn join_error(e: ResponseError, member_id: &str) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(e.code())
        .with_generation_id(-1)
        .with_member_id(str_bytes(member_id))
}

fn sync_error(e: ResponseError) -> SyncGroupResponse {
    SyncGroupResponse::default().with_error_code(e.code())
}

impl Group {
    fn new(now: Instant) -> Self {
        Self {
            phase: Phase::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: Vec::new(),
            pending: HashMap::new(),
            rebalance_deadline: now,
            earliest: now,
        }
    }

    fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }

    /// The JoinGroup answer of the current generation for `member`.
    fn join_response(&self, member: &str, version: i16) -> JoinGroupResponse {
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let members = if leader == member {
            self.members
                .iter()
                .map(|m| {
                    let r = JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(&m.id))
                        .with_metadata(m.metadata(&protocol));
                    if version >= 5 {
                        r.with_group_instance_id(m.instance_id.as_deref().map(str_bytes))
                    } else {
                        r
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        let r = JoinGroupResponse::default()
            .with_generation_id(self.generation)
            .with_protocol_name(Some(str_bytes(&protocol)))
            .with_leader(str_bytes(&leader))
            .with_member_id(str_bytes(member))
            .with_members(members);
        if version >= 7 {
            r.with_protocol_type(self.protocol_type.as_deref().map(str_bytes))
        } else {
            r
        }
    }

    fn sync_response(&self, assignment: Bytes, version: i16) -> SyncGroupResponse {
        let r = SyncGroupResponse::default().with_assignment(assignment);
        if version >= 5 {
            r.with_protocol_type(self.protocol_type.as_deref().map(str_bytes))
                .with_protocol_name(self.protocol.as_deref().map(str_bytes))
        } else {
            r
        }
    }

    /// Starts a rebalance: members must rejoin; SyncGroups waiting are told so.
    fn prepare_rebalance(&mut self, now: Instant, initial_delay: Duration) {
        let first = self.phase == Phase::Empty;
        self.phase = Phase::PreparingRebalance;
        let timeout = self
            .members
            .iter()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        self.rebalance_deadline = now + timeout;
        self.earliest = if first { now + initial_delay } else { now };
        for m in &mut self.members {
            if let Some((tx, _)) = m.sync.take() {
                let _ = tx.send(sync_error(ResponseError::RebalanceInProgress));
            }
        }
    }

    /// Completes the running rebalance if every member has rejoined.
    fn try_complete(&mut self, now: Instant) {
        if self.phase == Phase::PreparingRebalance
            && now >= self.earliest
            && self.members.iter().all(|m| m.join.is_some())
        {
            self.complete(now);
        }
    }

    /// The protocol every member supports that most members prefer.
    fn choose_protocol(&self) -> Option<String> {
        let first = self.members.first()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| {
                self.members
                    .iter()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == n))
            })
            .collect();
        let mut votes: Vec<(usize, &str)> = candidates.iter().map(|c| (0, *c)).collect();
        for m in &self.members {
            if let Some((p, _)) = m
                .protocols
                .iter()
                .find(|(p, _)| candidates.contains(&p.as_str()))
                && let Some(v) = votes.iter_mut().find(|(_, c)| c == p)
            {
                v.0 += 1;
            }
        }
        let best = votes.iter().map(|(n, _)| *n).max()?;
        votes
            .iter()
            .find(|(n, _)| *n == best)
            .map(|(_, c)| (*c).to_string())
    }

    /// Completes the rebalance with the members that rejoined: a new generation.
    fn complete(&mut self, now: Instant) {
        self.members.retain(|m| m.join.is_some());
        self.generation = self.generation.wrapping_add(1).max(1);
        if self.members.is_empty() {
            self.phase = Phase::Empty;
            self.leader = None;
            self.protocol = None;
            self.protocol_type = None;
            return;
        }
        self.protocol = self.choose_protocol();
        self.protocol_type = self.members.first().map(|m| m.protocol_type.clone());
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.iter().any(|m| &m.id == l))
        {
            self.leader = self.members.first().map(|m| m.id.clone());
        }
        self.phase = Phase::CompletingRebalance;
        let waiting: Vec<(String, oneshot::Sender<JoinGroupResponse>, i16)> = self
            .members
            .iter_mut()
            .filter_map(|m| {
                m.seen = now;
                m.assignment = Bytes::new();
                m.join.take().map(|(tx, v)| (m.id.clone(), tx, v))
            })
            .collect();
        for (id, tx, version) in waiting {
            let _ = tx.send(self.join_response(&id, version));
        }
    }

    /// Removes a member (its waiting requests fail); returns whether it was one.
    fn remove(&mut self, id: &str) -> bool {
        let before = self.members.len();
        self.members.retain(|m| m.id != id);
        self.members.len() != before
    }

    /// After members left or expired: a rebalance, or an empty group.
    fn after_removal(&mut self, now: Instant, initial_delay: Duration) {
        match self.phase {
            Phase::Stable | Phase::CompletingRebalance => {
                if self.members.is_empty() {
                    self.generation = self.generation.wrapping_add(1).max(1);
                    self.phase = Phase::Empty;
                    self.leader = None;
                    self.protocol = None;
                    self.protocol_type = None;
                } else {
                    self.prepare_rebalance(now, initial_delay);
                }
            }
            Phase::PreparingRebalance => {
                if self.members.is_empty() {
                    self.complete(now);
                } else {
                    self.try_complete(now);
                }
            }
            Phase::Empty => {}
        }
    }

    /// Whether `member` of `generation` may commit offsets (Kafka's rules).
    fn check_commit(&self, member: &str, generation: i32) -> Result<(), ResponseError> {
        if generation < 0 && self.members.is_empty() {
            return Ok(()); // offsets only: no membership
        }
        if self.phase == Phase::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        if self.member(member).is_none() {
            return Err(ResponseError::UnknownMemberId);
        }
        if generation != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        Ok(())
    }
}

/// What a JoinGroup or SyncGroup gets: an answer now, or one when the group moves on.
enum Outcome<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

/// The groups (see the module docs).
#[derive(Debug)]
pub(crate) struct Coordinator {
    groups: Mutex<HashMap<String, Group>>,
    initial_delay: Duration,
    next_member: AtomicU64,
}

impl Coordinator {
    /// A coordinator whose first rebalance of an empty group waits `initial_delay`.
    pub(crate) fn new(initial_delay: Duration) -> Self {
        Self {
            groups: Mutex::new(HashMap::new()),
            initial_delay,
            next_member: AtomicU64::new(1),
        }
    }

    fn new_member_id(&self, client_id: &str) -> String {
        let n = self.next_member.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let prefix = if client_id.is_empty() {
            "member"
        } else {
            client_id
        };
        format!("{prefix}-{nanos:08x}-{n}")
    }

    fn join(
        &self,
        req: JoinGroupRequest,
        version: i16,
        client: &Client,
    ) -> Outcome<JoinGroupResponse> {
        let group_id = req.group_id.0.as_str();
        let member_id = req.member_id.as_str().to_string();
        let fail = |e| Outcome::Now(join_error(e, &member_id));
        if group_id.is_empty() {
            return fail(ResponseError::InvalidGroupId);
        }
        if !SESSION_TIMEOUT_MS.contains(&req.session_timeout_ms) {
            return fail(ResponseError::InvalidSessionTimeout);
        }
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return fail(ResponseError::InconsistentGroupProtocol);
        }
        let session = Duration::from_millis(req.session_timeout_ms as u64);
        let rebalance = if version >= 1 && req.rebalance_timeout_ms > 0 {
            Duration::from_millis(req.rebalance_timeout_ms as u64)
        } else {
            session
        };
        let protocols: Vec<(String, Bytes)> = req
            .protocols
            .iter()
            // Copied: a slice would keep the connection's whole frame buffer alive as long
            // as the member.
            .map(|p| {
                (
                    p.name.as_str().to_string(),
                    Bytes::copy_from_slice(&p.metadata),
                )
            })
            .collect();
        let now = Instant::now();
        let mut groups = lock(&self.groups);
        let g = groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(now));
        let others: Vec<&Member> = g.members.iter().filter(|m| m.id != member_id).collect();
        if !others.is_empty() {
            let same_type = others
                .iter()
                .all(|m| m.protocol_type == req.protocol_type.as_str());
            let common = protocols.iter().any(|(p, _)| {
                others
                    .iter()
                    .all(|m| m.protocols.iter().any(|(q, _)| q == p))
            });
            if !same_type || !common {
                return fail(ResponseError::InconsistentGroupProtocol);
            }
        }
        let mut member_id = member_id;
        if member_id.is_empty() {
            member_id = self.new_member_id(&client.id);
            if version >= 4 {
                g.pending.insert(member_id.clone(), now + session);
                return Outcome::Now(join_error(ResponseError::MemberIdRequired, &member_id));
            }
        } else if g.member(&member_id).is_none() && g.pending.remove(&member_id).is_none() {
            return Outcome::Now(join_error(ResponseError::UnknownMemberId, &member_id));
        }
        let (tx, rx) = oneshot::channel();
        let is_leader = g.leader.as_deref() == Some(member_id.as_str());
        let phase = g.phase;
        match g.member_mut(&member_id) {
            Some(m) => {
                let changed = m.protocols != protocols;
                m.session_timeout = session;
                m.rebalance_timeout = rebalance;
                m.protocols = protocols;
                m.protocol_type = req.protocol_type.as_str().to_string();
                m.seen = now;
                match phase {
                    Phase::Stable if !changed && !is_leader => {
                        return Outcome::Now(g.join_response(&member_id, version));
                    }
                    Phase::CompletingRebalance if !changed => {
                        return Outcome::Now(g.join_response(&member_id, version));
                    }
                    _ => m.join = Some((tx, version)),
                }
            }
            None => g.members.push(Member {
                id: member_id.clone(),
                instance_id: req
                    .group_instance_id
                    .as_ref()
                    .map(|i| i.as_str().to_string()),
                client_id: client.id.clone(),
                host: client.host.clone(),
                session_timeout: session,
                rebalance_timeout: rebalance,
                protocol_type: req.protocol_type.as_str().to_string(),
                protocols,
                assignment: Bytes::new(),
                seen: now,
                join: Some((tx, version)),
                sync: None,
            }),
        }
        if g.phase != Phase::PreparingRebalance {
            g.prepare_rebalance(now, self.initial_delay);
        } else {
            // A longer rebalance timeout of a new member extends the running rebalance.
            g.rebalance_deadline = g.rebalance_deadline.max(now + rebalance);
        }
        g.try_complete(now);
        Outcome::Later(rx)
    }

    fn sync(&self, req: SyncGroupRequest, version: i16) -> Outcome<SyncGroupResponse> {
        let now = Instant::now();
        let mut groups = lock(&self.groups);
        let member_id = req.member_id.as_str();
        let Some(g) = groups.get_mut(req.group_id.0.as_str()) else {
            return Outcome::Now(sync_error(ResponseError::UnknownMemberId));
        };
        if g.member(member_id).is_none() {
            return Outcome::Now(sync_error(ResponseError::UnknownMemberId));
        }
        if req.generation_id != g.generation {
            return Outcome::Now(sync_error(ResponseError::IllegalGeneration));
        }
        let mismatch = |asked: &Option<StrBytes>, known: &Option<String>| {
            asked
                .as_ref()
                .is_some_and(|a| known.as_deref() != Some(a.as_str()))
        };
        if mismatch(&req.protocol_type, &g.protocol_type)
            || mismatch(&req.protocol_name, &g.protocol)
        {
            return Outcome::Now(sync_error(ResponseError::InconsistentGroupProtocol));
        }
        match g.phase {
            Phase::Empty => Outcome::Now(sync_error(ResponseError::UnknownMemberId)),
            Phase::PreparingRebalance => {
                Outcome::Now(sync_error(ResponseError::RebalanceInProgress))
            }
            Phase::Stable => {
                let assignment = g
                    .member(member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                if let Some(m) = g.member_mut(member_id) {
                    m.seen = now;
                }
                Outcome::Now(g.sync_response(assignment, version))
            }
            Phase::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = g.member_mut(member_id) {
                    m.seen = now;
                    m.sync = Some((tx, version));
                }
                if g.leader.as_deref() == Some(member_id) {
                    let assigned: HashMap<&str, &Bytes> = req
                        .assignments
                        .iter()
                        .map(|a| (a.member_id.as_str(), &a.assignment))
                        .collect();
                    for m in &mut g.members {
                        m.assignment = assigned
                            .get(m.id.as_str())
                            .map(|b| Bytes::copy_from_slice(b))
                            .unwrap_or_default();
                    }
                    g.phase = Phase::Stable;
                    let waiting: Vec<(Bytes, oneshot::Sender<SyncGroupResponse>, i16)> = g
                        .members
                        .iter_mut()
                        .filter_map(|m| m.sync.take().map(|(tx, v)| (m.assignment.clone(), tx, v)))
                        .collect();
                    for (assignment, tx, v) in waiting {
                        let _ = tx.send(g.sync_response(assignment, v));
                    }
                }
                Outcome::Later(rx)
            }
        }
    }

    fn heartbeat(&self, req: &HeartbeatRequest) -> Option<ResponseError> {
        let mut groups = lock(&self.groups);
        let Some(g) = groups.get_mut(req.group_id.0.as_str()) else {
            return Some(ResponseError::UnknownMemberId);
        };
        let phase = g.phase;
        let generation = g.generation;
        let Some(m) = g.member_mut(req.member_id.as_str()) else {
            return Some(ResponseError::UnknownMemberId);
        };
        m.seen = Instant::now();
        if req.generation_id != generation {
            return Some(ResponseError::IllegalGeneration);
        }
        match phase {
            Phase::Empty => Some(ResponseError::UnknownMemberId),
            Phase::PreparingRebalance => Some(ResponseError::RebalanceInProgress),
            Phase::CompletingRebalance | Phase::Stable => None,
        }
    }

    /// Removes members; each one's result.
    fn leave(&self, group: &str, members: &[String]) -> Vec<Option<ResponseError>> {
        let now = Instant::now();
        let mut groups = lock(&self.groups);
        let Some(g) = groups.get_mut(group) else {
            return members
                .iter()
                .map(|_| Some(ResponseError::UnknownMemberId))
                .collect();
        };
        let results: Vec<Option<ResponseError>> = members
            .iter()
            .map(|id| {
                if g.remove(id) || g.pending.remove(id).is_some() {
                    None
                } else {
                    Some(ResponseError::UnknownMemberId)
                }
            })
            .collect();
        if results.iter().any(Option::is_none) {
            g.after_removal(now, self.initial_delay);
        }
        results
    }

    /// Whether a commit by `member` of `generation` is allowed now.
    pub(crate) fn check_commit(
        &self,
        group: &str,
        member: &str,
        generation: i32,
    ) -> Result<(), ResponseError> {
        let groups = lock(&self.groups);
        match groups.get(group) {
            Some(g) => g.check_commit(member, generation),
            None if generation < 0 => Ok(()),
            None => Err(ResponseError::UnknownMemberId),
        }
    }

    /// Expires members whose session ran out, rebalances whose time ran out, and member ids
    /// never used.
    pub(crate) fn tick(&self) {
        let now = Instant::now();
        let mut groups = lock(&self.groups);
        for (name, g) in groups.iter_mut() {
            g.pending.retain(|_, expiry| *expiry > now);
            let expired: Vec<String> = g
                .members
                .iter()
                .filter(|m| {
                    m.join.is_none()
                        && m.sync.is_none()
                        && now.duration_since(m.seen) > m.session_timeout
                })
                .map(|m| m.id.clone())
                .collect();
            for id in &expired {
                tracing::info!(group = %name, member = %id, "session timed out: the member leaves the group");
                g.remove(id);
            }
            if !expired.is_empty() {
                g.after_removal(now, self.initial_delay);
            }
            if g.phase == Phase::PreparingRebalance {
                if now >= g.rebalance_deadline {
                    g.complete(now);
                } else {
                    g.try_complete(now);
                }
            }
        }
        groups.retain(|_, g| {
            !(g.phase == Phase::Empty && g.members.is_empty() && g.pending.is_empty())
        });
    }

    /// (group, protocol type, state) of every group with members.
    fn list(&self) -> Vec<(String, String, &'static str)> {
        lock(&self.groups)
            .iter()
            .map(|(name, g)| {
                (
                    name.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.phase.name(),
                )
            })
            .collect()
    }

    fn describe(&self, group: &str) -> Option<DescribedGroup> {
        let groups = lock(&self.groups);
        let g = groups.get(group)?;
        let protocol = g.protocol.clone().unwrap_or_default();
        let members = if g.phase == Phase::Stable || g.phase == Phase::CompletingRebalance {
            g.members
                .iter()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(str_bytes(&m.id))
                        .with_client_id(str_bytes(&m.client_id))
                        .with_client_host(str_bytes(&m.host))
                        .with_member_metadata(m.metadata(&protocol))
                        .with_member_assignment(m.assignment.clone())
                })
                .collect()
        } else {
            Vec::new()
        };
        Some(
            DescribedGroup::default()
                .with_group_id(GroupId(str_bytes(group)))
                .with_group_state(str_bytes(g.phase.name()))
                .with_protocol_type(str_bytes(g.protocol_type.as_deref().unwrap_or_default()))
                .with_protocol_data(str_bytes(&protocol))
                .with_members(members),
        )
    }
}

fn code_of(e: Option<ResponseError>) -> i16 {
    e.map_or(codes::NONE, |e| e.code())
}

/// JoinGroup: answered when the rebalance completes.
pub(crate) async fn join(
    state: &State,
    req: JoinGroupRequest,
    version: i16,
    client: &Client,
) -> JoinGroupResponse {
    let member = req.member_id.as_str().to_string();
    match state.groups.join(req, version, client) {
        Outcome::Now(r) => r,
        Outcome::Later(rx) => rx
            .await
            .unwrap_or_else(|_| join_error(ResponseError::UnknownMemberId, &member)),
    }
}

/// SyncGroup: a follower's is answered when the leader's assignment arrives.
pub(crate) async fn sync(state: &State, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
    match state.groups.sync(req, version) {
        Outcome::Now(r) => r,
        Outcome::Later(rx) => rx
            .await
            .unwrap_or_else(|_| sync_error(ResponseError::RebalanceInProgress)),
    }
}

/// Heartbeat: keeps the member's session; tells it to rejoin during a rebalance.
pub(crate) fn heartbeat(state: &State, req: HeartbeatRequest) -> HeartbeatResponse {
    HeartbeatResponse::default().with_error_code(code_of(state.groups.heartbeat(&req)))
}

/// LeaveGroup: one member (versions 0 to 2) or several (3 and later).
pub(crate) fn leave(state: &State, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let group = req.group_id.0.as_str();
    if version < 3 {
        let result = state
            .groups
            .leave(group, &[req.member_id.as_str().to_string()]);
        let code = result.first().map_or(codes::NONE, |e| code_of(*e));
        return LeaveGroupResponse::default().with_error_code(code);
    }
    let ids: Vec<String> = req
        .members
        .iter()
        .map(|m| m.member_id.as_str().to_string())
        .collect();
    let results = state.groups.leave(group, &ids);
    LeaveGroupResponse::default().with_members(
        req.members
            .iter()
            .zip(results)
            .map(|(m, e)| {
                MemberResponse::default()
                    .with_member_id(m.member_id.clone())
                    .with_group_instance_id(m.group_instance_id.clone())
                    .with_error_code(code_of(e))
            })
            .collect(),
    )
}

/// OffsetCommit: the member's generation is checked, then the offsets are committed
/// durably in one write.
pub(crate) fn offset_commit(state: &State, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let group = req.group_id.0.as_str();
    let allowed = state.groups.check_commit(
        group,
        req.member_id.as_str(),
        req.generation_id_or_member_epoch,
    );
    let mut codes_by_partition: Vec<Vec<i16>> = Vec::new();
    let mut valid: Vec<(&str, u32, i64)> = Vec::new();
    for t in &req.topics {
        let topic = t.name.0.as_str();
        let partitions = state.engine.topic_config(topic).map_or(0, |c| c.partitions);
        codes_by_partition.push(
            t.partitions
                .iter()
                .map(|p| match (&allowed, u32::try_from(p.partition_index)) {
                    (Err(e), _) => e.code(),
                    (Ok(()), Ok(i)) if i < partitions => {
                        valid.push((topic, i, p.committed_offset));
                        codes::NONE
                    }
                    _ => ResponseError::UnknownTopicOrPartition.code(),
                })
                .collect(),
        );
    }
    let failed = if valid.is_empty() {
        None
    } else {
        state
            .engine
            .commit_offsets(group, &valid)
            .err()
            .map(|e| codes::of(&e, ResponseError::UnknownServerError))
    };
    let topics = req
        .topics
        .iter()
        .zip(codes_by_partition)
        .map(|(t, codes)| {
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .zip(codes)
                        .map(|(p, code)| {
                            let code = match failed {
                                Some(f) if code == codes::NONE => f,
                                _ => code,
                            };
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// OffsetFetch: the group's committed offsets (-1 where none); every one when no topics are
/// named. With `require_stable`, partitions of a group whose offsets an open transaction
/// will commit answer UNSTABLE_OFFSET_COMMIT (the client asks again).
pub(crate) fn offset_fetch(
    state: &State,
    req: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    let group = req.group_id.0.as_str();
    let unstable = req.require_stable
        && state
            .engine
            .transactions()
            .iter()
            .any(|t| t.state != TransactionState::Empty && t.groups.iter().any(|g| g == group));
    let asked: Vec<(String, Vec<i32>)> = match &req.topics {
        Some(topics) => topics
            .iter()
            .map(|t| (t.name.0.as_str().to_string(), t.partition_indexes.clone()))
            .collect(),
        None => {
            let mut by_topic: Vec<(String, Vec<i32>)> = Vec::new();
            for (t, p, _) in state.engine.group_offsets(group).unwrap_or_default() {
                let p = p as i32;
                match by_topic.last_mut() {
                    Some((last, ps)) if *last == t => ps.push(p),
                    _ => by_topic.push((t, vec![p])),
                }
            }
            by_topic
        }
    };
    let topics = asked
        .into_iter()
        .map(|(topic, partitions)| {
            let ps = partitions
                .into_iter()
                .map(|p| {
                    let committed = u32::try_from(p)
                        .ok()
                        .and_then(|i| state.engine.committed(group, &topic, i))
                        .unwrap_or(-1);
                    let r = OffsetFetchResponsePartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(committed)
                        .with_committed_leader_epoch(-1)
                        .with_metadata(Some(StrBytes::default()));
                    if unstable {
                        r.with_error_code(ResponseError::UnstableOffsetCommit.code())
                    } else {
                        r
                    }
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(str_bytes(&topic)))
                .with_partitions(ps)
        })
        .collect();
    let _ = version;
    OffsetFetchResponse::default().with_topics(topics)
}

/// ListGroups: the groups with members, and those with committed offsets only (Empty).
pub(crate) fn list_groups(
    state: &State,
    req: ListGroupsRequest,
    version: i16,
) -> ListGroupsResponse {
    let mut groups = state.groups.list();
    for g in state.engine.groups() {
        if !groups.iter().any(|(n, _, _)| *n == g) {
            groups.push((g, String::new(), Phase::Empty.name()));
        }
    }
    groups.sort();
    let filter: Vec<String> = req
        .states_filter
        .iter()
        .map(|s| s.as_str().to_ascii_lowercase())
        .collect();
    let listed = groups
        .into_iter()
        .filter(|(_, _, s)| filter.is_empty() || filter.contains(&s.to_ascii_lowercase()))
        .map(|(name, protocol_type, s)| {
            let g = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(&name)))
                .with_protocol_type(str_bytes(&protocol_type));
            if version >= 4 {
                g.with_group_state(str_bytes(s))
            } else {
                g
            }
        })
        .collect();
    ListGroupsResponse::default().with_groups(listed)
}

/// DescribeGroups: state, protocol and members with their assignments; a group without
/// members is Empty if it has committed offsets, Dead otherwise.
pub(crate) fn describe_groups(state: &State, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let groups = req
        .groups
        .iter()
        .map(|g| {
            let name = g.0.as_str();
            state.groups.describe(name).unwrap_or_else(|| {
                let phase = if state.engine.group_offsets(name).is_some() {
                    Phase::Empty.name()
                } else {
                    "Dead"
                };
                DescribedGroup::default()
                    .with_group_id(g.clone())
                    .with_group_state(str_bytes(phase))
            })
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, protocols: &[&str]) -> Member {
        Member {
            id: id.into(),
            instance_id: None,
            client_id: "c".into(),
            host: "/127.0.0.1".into(),
            session_timeout: Duration::from_millis(500),
            rebalance_timeout: Duration::from_millis(500),
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|p| ((*p).to_string(), Bytes::from(format!("meta-{id}-{p}"))))
                .collect(),
            assignment: Bytes::new(),
            seen: Instant::now(),
            join: None,
            sync: None,
        }
    }

    #[test]
    fn the_protocol_is_chosen_by_vote_among_those_every_member_supports() {
        let now = Instant::now();
        let mut g = Group::new(now);
        g.members.push(member("a", &["range", "roundrobin"]));
        g.members.push(member("b", &["roundrobin", "range"]));
        g.members.push(member("c", &["roundrobin", "sticky"]));
        // "sticky" is not supported by all; roundrobin has two first choices.
        assert_eq!(g.choose_protocol().as_deref(), Some("roundrobin"));
    }

    #[test]
    fn a_rebalance_completes_when_every_member_rejoined_and_the_leader_gets_the_metadata() {
        let now = Instant::now();
        let mut g = Group::new(now);
        let (ta, mut ra) = oneshot::channel();
        let (tb, mut rb) = oneshot::channel();
        let mut a = member("a", &["range"]);
        a.join = Some((ta, 7));
        let b = member("b", &["range"]);
        g.members.push(a);
        g.members.push(b);
        g.prepare_rebalance(now, Duration::ZERO);
        g.try_complete(now);
        assert_eq!(g.phase, Phase::PreparingRebalance, "b has not rejoined");
        if let Some(m) = g.member_mut("b") {
            m.join = Some((tb, 7));
        }
        g.try_complete(now);
        assert_eq!(g.phase, Phase::CompletingRebalance);
        let (ja, jb) = (ra.try_recv().unwrap(), rb.try_recv().unwrap());
        assert_eq!((ja.generation_id, jb.generation_id), (1, 1));
        assert_eq!(ja.leader.as_str(), "a");
        assert_eq!(ja.members.len(), 2, "the leader gets every member");
        assert_eq!(ja.members[1].metadata, Bytes::from("meta-b-range"));
        assert!(jb.members.is_empty());
        // A member that misses the rebalance deadline is dropped.
        g.prepare_rebalance(now, Duration::ZERO);
        let (tb, mut rb) = oneshot::channel();
        if let Some(m) = g.member_mut("b") {
            m.join = Some((tb, 7));
        }
        g.complete(now + Duration::from_secs(1));
        assert_eq!(g.members.len(), 1);
        assert_eq!(g.leader.as_deref(), Some("b"), "the leader left: a new one");
        assert_eq!(rb.try_recv().unwrap().generation_id, 2);
        assert_eq!(
            g.check_commit("b", 2),
            Err(ResponseError::RebalanceInProgress)
        );
        g.phase = Phase::Stable;
        assert_eq!(g.check_commit("b", 2), Ok(()));
        assert_eq!(
            g.check_commit("b", 1),
            Err(ResponseError::IllegalGeneration)
        );
        assert_eq!(g.check_commit("a", 2), Err(ResponseError::UnknownMemberId));
    }
}
