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
//!   and keeps each client's latest announcement. A partition belongs to the client whose
//!   announcement of it is the newest (highest offset): with eager rebalances a partition
//!   is revoked everywhere before anyone announces it again, and the flush makes each
//!   announcement durable before its thread can join the next generation. An instance
//!   that died without a tombstone keeps its entry, but every partition it had is
//!   announced again by its new owner, so it drops out of the view.

use std::collections::{BTreeMap, HashMap};
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

    /// Every client that owns a partition, with the partitions it owns: each partition
    /// goes to the client whose announcement of it is the newest.
    pub(crate) fn members(&self) -> Vec<GroupMember> {
        let mut owner: HashMap<&TopicPartition, (i64, &str)> = HashMap::new();
        for (client, (offset, partitions)) in &self.latest {
            for tp in partitions {
                let newer = owner.get(tp).is_none_or(|(o, _)| offset > o);
                if newer {
                    owner.insert(tp, (*offset, client.as_str()));
                }
            }
        }
        self.latest
            .iter()
            .filter_map(|(client, (_, partitions))| {
                let assignment: Vec<TopicPartition> = partitions
                    .iter()
                    .filter(|tp| owner.get(tp).is_some_and(|(_, c)| c == client))
                    .cloned()
                    .collect();
                (!assignment.is_empty()).then(|| GroupMember {
                    member_id: client.clone(),
                    client_id: client.clone(),
                    assignment,
                })
            })
            .collect()
    }
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
