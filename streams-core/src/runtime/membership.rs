//! Assignment announcements: how the instances of an app learn which instance runs which
//! partitions when the broker cannot describe the group to them.
//!
//! Kafka Streams spreads `application.server` and the task assignment through its own
//! partition assignor; librdkafka cannot run a custom assignor, and describing the group
//! (DescribeGroups) is missing on librdkafka's mock cluster, broken on tansu 0.6 and needs
//! `DESCRIBE` rights on a secured Apache Kafka. So, on clients whose group view may be
//! partial ([`ClientSupplier::group_view_is_partial`](crate::client::ClientSupplier)),
//! every stream thread of an instance with `application.server` or standbys set announces
//! its assignment itself (interactive-query metadata and standby placement read it):
//!
//! - **Topic** `<application.id>-metadata`: one partition, compacted, created at start
//!   (on a broker without CreateTopics, create it yourself).
//! - **Record** per announcement: key = the thread's client id (which carries the
//!   instance and its `application.server`), value = its partitions ([`encode`]), sent and
//!   flushed right after each assignment, before the thread processes anything of it. A
//!   thread that closes cleanly writes a tombstone.
//! - **Reading**: each instance follows the topic from its start on a consumer of its own
//!   and keeps each client's latest announcement. With eager rebalances a partition is
//!   revoked everywhere before anyone announces it again, and the flush makes each
//!   announcement durable before its thread can join the next generation: so a partition
//!   changes owner only through a rebalance, and an announcement of it newer than another
//!   client's means that a rebalance came after that other client's announcement. That
//!   whole announcement is then from a past generation and is dropped ([`Announcements::members`]):
//!   its client, if it is still in the group, announces its new assignment (after the same
//!   rebalance) and is back in the view once that is read. An instance that died or left
//!   without a tombstone thus disappears with the first announcement of the rebalance
//!   that removed it (its partitions went to others), never later; until each new owner's
//!   announcement is read, the partitions it takes have no known owner (queries for them
//!   are told to retry, rather than sent to the dead instance).
//! - **The instance itself** knows which partitions its own threads hold now, sooner than
//!   its announcements come back: the view is corrected by that ([`with_local`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Instance, lock};
use crate::client::{GroupMember, NoRebalanceListener, TopicPartition};
use crate::error::Result;

/// How long one poll of the announcement reader waits (also how soon it sees a stop).
const READ_POLL: Duration = Duration::from_millis(100);
/// Pause before the reader tries again after a failure.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// The announcement topic of `application_id`.
pub(crate) fn topic_name(application_id: &str) -> String {
    format!("{application_id}-metadata")
}

/// The value of an announcement: `v1`, then one `topic:partition` line per partition
/// (Kafka topic names never contain `:`).
pub(crate) fn encode(partitions: &[TopicPartition]) -> Vec<u8> {
    let mut out = String::from("v1");
    for tp in partitions {
        out.push('\n');
        out.push_str(&tp.topic);
        out.push(':');
        out.push_str(&tp.partition.to_string());
    }
    out.into_bytes()
}

/// Reads an announcement's value; `None` when it is not one (written by something else).
pub(crate) fn decode(bytes: &[u8]) -> Option<Vec<TopicPartition>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.split('\n');
    if lines.next()? != "v1" {
        return None;
    }
    lines
        .map(|line| {
            let (topic, partition) = line.rsplit_once(':')?;
            Some(TopicPartition::new(topic, partition.parse().ok()?))
        })
        .collect()
}

/// The latest announcement of every client, and the group view they add up to.
#[derive(Debug, Default)]
pub(crate) struct Announcements {
    /// Client id → (offset of its latest announcement, its partitions).
    latest: BTreeMap<String, (i64, Vec<TopicPartition>)>,
}

impl Announcements {
    /// Takes the record at `offset`: an announcement of `client` (`None`: a tombstone).
    pub(crate) fn apply(&mut self, offset: i64, client: String, value: Option<&[u8]>) {
        match value {
            None => {
                self.latest.remove(&client);
            }
            Some(bytes) => match decode(bytes) {
                Some(partitions) => {
                    self.latest.insert(client, (offset, partitions));
                }
                None => {
                    tracing::warn!(%client, offset, "not an assignment announcement; ignored");
                }
            },
        }
    }

    /// Every client of the current group view, with its partitions: the clients whose
    /// latest announcement is not superseded, in any of its partitions, by a newer
    /// announcement of another client (such an announcement is from a past generation; see
    /// the [module docs](self)). Clients that own no partition are left out.
    pub(crate) fn members(&self) -> Vec<GroupMember> {
        let mut newest: HashMap<&TopicPartition, i64> = HashMap::new();
        for (offset, partitions) in self.latest.values() {
            for tp in partitions {
                let n = newest.entry(tp).or_insert(*offset);
                *n = (*n).max(*offset);
            }
        }
        self.latest
            .iter()
            .filter(|(_, (offset, partitions))| {
                !partitions.is_empty()
                    && partitions
                        .iter()
                        .all(|tp| newest.get(tp).is_none_or(|n| n <= offset))
            })
            .map(|(client, (_, partitions))| GroupMember {
                member_id: client.clone(),
                client_id: client.clone(),
                assignment: partitions.clone(),
            })
            .collect()
    }
}

/// The announced group view `announced` corrected by what this instance (clients named
/// `<prefix>-...`) knows of itself: its threads' current assignments (`local`) replace
/// its announcements, and the announcement of another client that claims a partition a
/// local thread holds now is from a past generation and is dropped. Members without
/// partitions are left out.
pub(crate) fn with_local(
    announced: &[GroupMember],
    prefix: &str,
    local: Vec<GroupMember>,
) -> Vec<GroupMember> {
    let mine = |client: &str| {
        client
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('-'))
    };
    let held: HashSet<&TopicPartition> = local.iter().flat_map(|m| &m.assignment).collect();
    let mut out: Vec<GroupMember> = announced
        .iter()
        .filter(|m| !mine(&m.client_id) && !m.assignment.iter().any(|tp| held.contains(tp)))
        .cloned()
        .collect();
    out.extend(local.into_iter().filter(|m| !m.assignment.is_empty()));
    out.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    out
}

/// Starts the instance's announcement reader: it follows `topic` and keeps the instance's
/// announced group view current until the instance stops.
pub(crate) fn spawn_reader(instance: &Arc<Instance>, topic: String) -> Result<()> {
    let inst = instance.clone();
    let name = format!("{}-metadata-reader", instance.client_prefix);
    let handle = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            while !inst.shared.stop.load(Ordering::SeqCst) {
                if let Err(e) = follow(&inst, &name, &topic) {
                    tracing::warn!(
                        %topic,
                        error = %e,
                        "reading assignment announcements failed; trying again"
                    );
                    std::thread::sleep(RETRY_PAUSE);
                }
            }
        })
        .map_err(|source| crate::error::StreamsError::System {
            what: "cannot start the announcement reader",
            source,
        })?;
    lock(&instance.shared.inner).handles.push(handle);
    Ok(())
}

/// Reads `topic` from its start until the instance stops or a read fails.
fn follow(instance: &Instance, client_id: &str, topic: &str) -> Result<()> {
    let mut consumer = instance.clients.restore_consumer(client_id)?;
    consumer.assign(&[(TopicPartition::new(topic, 0), 0)])?;
    let mut announcements = Announcements::default();
    while !instance.shared.stop.load(Ordering::SeqCst) {
        let records = consumer.poll(READ_POLL, &mut NoRebalanceListener)?;
        if records.is_empty() {
            continue;
        }
        for r in records {
            let Some(key) = r.record.key else { continue };
            let client = String::from_utf8_lossy(&key).into_owned();
            announcements.apply(r.record.offset, client, r.record.value.as_deref());
        }
        let members = announcements.members();
        let mut inner = lock(&instance.shared.inner);
        if inner.announced != members {
            inner.announced = members;
            inner.announced_version += 1;
        }
    }
    consumer.close()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tps(list: &[(&str, u32)]) -> Vec<TopicPartition> {
        list.iter()
            .map(|(t, p)| TopicPartition::new(*t, *p))
            .collect()
    }

    #[test]
    fn values_round_trip_and_strangers_are_refused() {
        let parts = tps(&[("a", 0), ("my.topic-x", 12)]);
        assert_eq!(decode(&encode(&parts)), Some(parts));
        assert_eq!(decode(&encode(&[])), Some(vec![]));
        assert_eq!(decode(b"hello"), None);
        assert_eq!(decode(b"v1\nno-partition"), None);
    }

    #[test]
    fn the_newest_announcement_of_a_partition_owns_it() {
        let mut a = Announcements::default();
        a.apply(0, "x".into(), Some(&encode(&tps(&[("t", 0), ("t", 1)]))));
        a.apply(1, "y".into(), Some(&encode(&tps(&[("t", 2)]))));
        // x dies without a tombstone; y takes over its partitions in a later generation.
        a.apply(
            2,
            "y".into(),
            Some(&encode(&tps(&[("t", 0), ("t", 1), ("t", 2)]))),
        );
        let members = a.members();
        assert_eq!(members.len(), 1, "x owns nothing any more: {members:?}");
        assert_eq!(members[0].client_id, "y");
        assert_eq!(members[0].assignment, tps(&[("t", 0), ("t", 1), ("t", 2)]));
        // x comes back and gets partition 1; y announces what it kept.
        a.apply(3, "x".into(), Some(&encode(&tps(&[("t", 1)]))));
        a.apply(4, "y".into(), Some(&encode(&tps(&[("t", 0), ("t", 2)]))));
        let by: BTreeMap<String, Vec<TopicPartition>> = a
            .members()
            .into_iter()
            .map(|m| (m.client_id, m.assignment))
            .collect();
        assert_eq!(by["x"], tps(&[("t", 1)]));
        assert_eq!(by["y"], tps(&[("t", 0), ("t", 2)]));
        // A clean close removes the member.
        a.apply(5, "x".into(), None);
        assert_eq!(a.members().len(), 1);
    }

    #[test]
    fn a_dead_member_is_gone_with_the_first_announcement_of_the_rebalance_that_removed_it() {
        let mut a = Announcements::default();
        // Generation 1: x, y and z each hold two partitions.
        a.apply(0, "x".into(), Some(&encode(&tps(&[("t", 0), ("t", 1)]))));
        a.apply(1, "y".into(), Some(&encode(&tps(&[("t", 2), ("t", 3)]))));
        a.apply(2, "z".into(), Some(&encode(&tps(&[("t", 4), ("t", 5)]))));
        assert_eq!(a.members().len(), 3);
        // x is killed; generation 2 gives y 0..=2 and z 3..=5. y announces first: x lost a
        // partition, so its announcement is of a past generation and it is gone at once,
        // though nobody announced partition 1 yet.
        a.apply(
            3,
            "y".into(),
            Some(&encode(&tps(&[("t", 0), ("t", 1), ("t", 2)]))),
        );
        let by = |a: &Announcements| -> BTreeMap<String, Vec<TopicPartition>> {
            a.members()
                .into_iter()
                .map(|m| (m.client_id, m.assignment))
                .collect()
        };
        let view = by(&a);
        assert!(!view.contains_key("x"), "{view:?}");
        // z's announcement of generation 1 still stands (nothing of it moved yet), and
        // partition 3, on its way from y to z, has no owner.
        assert_eq!(view["z"], tps(&[("t", 4), ("t", 5)]));
        assert!(
            view.values()
                .all(|p| !p.contains(&TopicPartition::new("t", 3)))
        );
        a.apply(
            4,
            "z".into(),
            Some(&encode(&tps(&[("t", 3), ("t", 4), ("t", 5)]))),
        );
        let view = by(&a);
        assert_eq!(view.len(), 2, "{view:?}");
        assert_eq!(view["z"], tps(&[("t", 3), ("t", 4), ("t", 5)]));
    }

    #[test]
    fn a_member_losing_one_partition_waits_for_its_next_announcement() {
        let mut a = Announcements::default();
        a.apply(0, "x".into(), Some(&encode(&tps(&[("t", 0), ("t", 1)]))));
        a.apply(1, "y".into(), Some(&encode(&tps(&[("t", 2)]))));
        // A new generation: y takes partition 1; x (alive) keeps 0 but has not announced
        // yet. Its old announcement is not trusted for partition 0 either.
        a.apply(2, "y".into(), Some(&encode(&tps(&[("t", 1), ("t", 2)]))));
        let members = a.members();
        assert_eq!(members.len(), 1, "{members:?}");
        a.apply(3, "x".into(), Some(&encode(&tps(&[("t", 0)]))));
        assert_eq!(a.members().len(), 2);
    }

    #[test]
    fn the_instance_knows_its_own_assignment_first() {
        let member = |client: &str, parts: &[(&str, u32)]| GroupMember {
            member_id: client.into(),
            client_id: client.into(),
            assignment: tps(parts),
        };
        let announced = vec![
            member("app-a-StreamThread-1", &[("t", 0)]),
            member("app-dead-StreamThread-1", &[("t", 1), ("t", 2)]),
            member("app-b-StreamThread-1", &[("t", 3)]),
        ];
        // This instance (`app-a`) took over partition 1 in a rebalance its own
        // announcement has not come back from yet.
        let local = vec![member("app-a-StreamThread-1", &[("t", 0), ("t", 1)])];
        let view = with_local(&announced, "app-a", local);
        let clients: Vec<&str> = view.iter().map(|m| m.client_id.as_str()).collect();
        assert_eq!(clients, ["app-a-StreamThread-1", "app-b-StreamThread-1"]);
        assert_eq!(view[0].assignment, tps(&[("t", 0), ("t", 1)]));
        // An instance whose name extends this one's is another instance.
        let other = vec![member("app-ab-StreamThread-1", &[("t", 5)])];
        assert_eq!(with_local(&other, "app-a", Vec::new()), other);
        // Local threads without partitions are not members.
        let idle = vec![member("app-a-StreamThread-2", &[])];
        assert!(with_local(&[], "app-a", idle).is_empty());
    }

    #[test]
    fn ownership_follows_offsets_not_client_names() {
        let mut a = Announcements::default();
        // `z` sorts after `a` but announced first: `a` owns the partition.
        a.apply(3, "z".into(), Some(&encode(&tps(&[("t", 0)]))));
        a.apply(7, "a".into(), Some(&encode(&tps(&[("t", 0)]))));
        let members = a.members();
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].client_id, "a");
    }
}
