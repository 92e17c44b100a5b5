//! The in-process group coordinator: members, generations, eager rebalances with a
//! barrier, and librdkafka's `range` assignment.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use streams_state::LogEngine;

use crate::client::{GroupMember, TopicPartition};

use crate::sync::lock;

/// One consumer group's membership and assignment.
#[derive(Default)]
pub(super) struct Group {
    pub(super) state: Mutex<GroupState>,
    pub(super) changed: Condvar,
}

#[derive(Default)]
pub(super) struct GroupState {
    pub(super) generation: u64,
    pub(super) next_member: u64,
    pub(super) members: BTreeMap<String, Member>,
    /// The assignment of `generation`, once every member joined it.
    pub(super) assignment: Option<BTreeMap<String, Vec<TopicPartition>>>,
}

pub(super) struct Member {
    pub(super) client_id: String,
    pub(super) topics: Vec<String>,
    /// The generation this member last joined (gave up its partitions for).
    pub(super) joined: u64,
}

impl Group {
    pub(super) fn add(&self, client_id: &str, topics: &[String]) -> String {
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

    pub(super) fn remove(&self, member: &str) {
        let mut s = lock(&self.state);
        if s.members.remove(member).is_some() {
            Self::bump(&mut s);
        }
        drop(s);
        self.changed.notify_all();
    }

    pub(super) fn bump(s: &mut GroupState) {
        s.generation += 1;
        s.assignment = None;
    }

    pub(super) fn generation(&self) -> u64 {
        lock(&self.state).generation
    }

    /// Joins the current generation and waits (until `deadline`) for every member to
    /// join it. Returns the generation and this member's assignment once complete.
    pub(super) fn join(
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

    pub(super) fn members(&self) -> Vec<GroupMember> {
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
pub(super) fn range_assignment(
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
