//! What a built topology holds for the tasks that run it: its nodes (with the factories
//! that create each task's instances), stores, sub-topologies, repartition topics and global
//! stores. [`crate::topology`] builds it and describes it; the tasks instantiate it.

use std::sync::Arc;

use crate::error::TopologyError;
use crate::internals::node::NodeFactory;
use crate::state::{ChangelogKind, StoreFactory};

/// A topic as the topology knows it: external (named by the user) or internal (prefixed
/// with the application id when the app runs).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum TopicName {
    External(String),
    /// The name without the application-id prefix, e.g. `count-repartition`.
    Internal(String),
}

impl TopicName {
    pub(crate) fn resolve(&self, application_id: &str) -> String {
        match self {
            TopicName::External(t) => t.clone(),
            TopicName::Internal(t) => format!("{application_id}-{t}"),
        }
    }
    pub(crate) fn display(&self) -> String {
        match self {
            TopicName::External(t) => t.clone(),
            TopicName::Internal(t) => format!("<application.id>-{t}"),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum NodeKind {
    Source {
        topics: Vec<TopicName>,
    },
    Processor,
    /// `None`: the topic is chosen per record.
    Sink {
        topic: Option<TopicName>,
    },
}

pub(crate) struct NodeSpec {
    pub(crate) name: Arc<str>,
    pub(crate) kind: NodeKind,
    pub(crate) parents: Vec<usize>,
    pub(crate) children: Vec<usize>,
    pub(crate) stores: Vec<String>,
    pub(crate) factory: NodeFactory,
}

impl NodeSpec {
    pub(crate) fn topics(&self) -> Vec<TopicName> {
        match &self.kind {
            NodeKind::Source { topics } => topics.clone(),
            NodeKind::Sink { topic: Some(t) } => vec![t.clone()],
            _ => Vec::new(),
        }
    }
    pub(crate) fn is_source(&self) -> bool {
        matches!(self.kind, NodeKind::Source { .. })
    }
}

pub(crate) struct StoreSpec {
    pub(crate) name: String,
    /// Whether the store logs to `<application.id>-<name>-changelog`.
    pub(crate) logged: bool,
    /// How its changelog topic is cleaned up.
    pub(crate) changelog_kind: ChangelogKind,
    pub(crate) factory: StoreFactory,
}

impl StoreSpec {
    /// The store's changelog topic.
    pub(crate) fn changelog_topic(&self) -> TopicName {
        TopicName::Internal(format!("{}-changelog", self.name))
    }
}

/// Checks that a global topic's raw record decodes (key, then value unless a tombstone).
pub(crate) type GlobalCheck =
    Arc<dyn Fn(&[u8], Option<&[u8]>) -> Result<(), crate::serde::SerdeError> + Send + Sync>;

/// A global store: every instance holds all partitions of its source topic, which is also its
/// changelog; it belongs to no task.
pub(crate) struct GlobalStoreSpec {
    pub(crate) name: String,
    pub(crate) topic: String,
    pub(crate) factory: StoreFactory,
    pub(crate) check: GlobalCheck,
}

pub(crate) struct SubtopologySpec {
    pub(crate) nodes: Vec<usize>,
    pub(crate) stores: Vec<usize>,
    pub(crate) sources: Vec<TopicName>,
}

/// A built topology: immutable, shared by every task.
pub(crate) struct TopologyInner {
    pub(crate) nodes: Vec<NodeSpec>,
    pub(crate) stores: Vec<StoreSpec>,
    pub(crate) subtopologies: Vec<SubtopologySpec>,
    /// Repartition topics with a fixed partition count, if the user gave one.
    pub(crate) repartition_topics: Vec<(TopicName, Option<u32>)>,
    /// Topics whose records are joined, so they must be co-partitioned: (the joining
    /// operator, the source topics upstream of its inputs).
    pub(crate) copartition_groups: Vec<(String, Vec<TopicName>)>,
    /// Global stores and their source topics.
    pub(crate) global_stores: Vec<GlobalStoreSpec>,
}

impl TopologyInner {
    /// Adds the partition counts of the repartition topics to `partitions`, which must hold
    /// those of the external source topics: a fixed count, or the largest partition count
    /// among the source topics of the sub-topologies that write the topic.
    pub(crate) fn size_repartition_topics(
        &self,
        app: &str,
        partitions: &mut std::collections::HashMap<String, u32>,
    ) -> Result<(), crate::error::StreamsError> {
        let mut pending: Vec<&(TopicName, Option<u32>)> = Vec::new();
        for rt in &self.repartition_topics {
            match rt.1 {
                Some(n) => {
                    partitions.insert(rt.0.resolve(app), n);
                }
                None => pending.push(rt),
            }
        }
        // First with every source of the writers known; then, for cycles (a foreign-key
        // join's two topics are each written by the other's reader), with the known ones.
        for relaxed in [false, true] {
            for _ in 0..=self.repartition_topics.len() {
                pending.retain(|(topic, _)| {
                    let mut max = 0u32;
                    let mut known = false;
                    for w in self.writers_of(topic) {
                        for src in &self.subtopologies[w].sources {
                            match partitions.get(&src.resolve(app)) {
                                Some(&n) => {
                                    max = max.max(n);
                                    known = true;
                                }
                                None if relaxed => {}
                                None => return true,
                            }
                        }
                    }
                    if relaxed && !known {
                        return true;
                    }
                    partitions.insert(topic.resolve(app), max.max(1));
                    false
                });
            }
        }
        if let Some((topic, _)) = pending.first() {
            return Err(crate::error::StreamsError::Internal(format!(
                "cannot size repartition topic {}",
                topic.resolve(app)
            )));
        }
        self.copartition(app, partitions)
    }

    /// Enforces co-partitioning of joined topics (Kafka's `CopartitionedTopicsEnforcer`):
    /// the source topics of a join must have one partition count; repartition topics in the
    /// group (unless their count was fixed) take the count of the source topics, or the
    /// largest count among them when the group has only repartition topics.
    fn copartition(
        &self,
        app: &str,
        partitions: &mut std::collections::HashMap<String, u32>,
    ) -> Result<(), crate::error::StreamsError> {
        let fixed = |t: &TopicName| {
            self.repartition_topics
                .iter()
                .any(|(r, n)| r == t && n.is_some())
        };
        for (operator, topics) in &self.copartition_groups {
            let count = |t: &TopicName| partitions.get(&t.resolve(app)).copied().unwrap_or(1);
            let external: Vec<(String, u32)> = topics
                .iter()
                .filter(|t| matches!(t, TopicName::External(_)) || fixed(t))
                .map(|t| (t.resolve(app), count(t)))
                .collect();
            if external.windows(2).any(|w| w[0].1 != w[1].1) {
                let list = external
                    .iter()
                    .map(|(t, n)| format!("{t} ({n} partitions)"))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(TopologyError::NotCopartitioned {
                    operator: operator.clone(),
                    topics: list,
                }
                .into());
            }
            let n = match external.first() {
                Some((_, n)) => *n,
                None => topics.iter().map(count).max().unwrap_or(1),
            };
            for t in topics {
                if matches!(t, TopicName::Internal(_)) && !fixed(t) {
                    partitions.insert(t.resolve(app), n);
                }
            }
        }
        Ok(())
    }

    /// The number of tasks of each sub-topology: the largest partition count of its
    /// source topics.
    pub(crate) fn task_counts(
        &self,
        app: &str,
        partitions: &std::collections::HashMap<String, u32>,
    ) -> Vec<u32> {
        self.subtopologies
            .iter()
            .map(|s| {
                s.sources
                    .iter()
                    .map(|t| partitions.get(&t.resolve(app)).copied().unwrap_or(1))
                    .max()
                    .unwrap_or(1)
            })
            .collect()
    }

    /// The sub-topology that writes to `topic`, if any (for repartition topics).
    pub(crate) fn writers_of(&self, topic: &TopicName) -> Vec<usize> {
        self.subtopologies
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.nodes.iter().any(|&n| {
                    matches!(&self.nodes[n].kind, NodeKind::Sink { topic: Some(t) } if t == topic)
                })
            })
            .map(|(i, _)| i)
            .collect()
    }
}
