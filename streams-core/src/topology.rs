//! Topologies: the graph of sources, processors, sinks and stores that a
//! [`StreamsBuilder`](crate::dsl::StreamsBuilder) builds, cut into sub-topologies at
//! repartition topics. One task runs per (sub-topology, partition).
//!
//! [`Topology::describe`] prints the graph the way Kafka Streams does, and renders it as DOT
//! or Mermaid for docs and dashboards.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use crate::error::TopologyError;
use crate::internals::node::NodeFactory;
pub(crate) use crate::internals::spec::{
    GlobalStoreSpec, NodeKind, NodeSpec, StoreSpec, SubtopologySpec, TopicName, TopologyInner,
};
use crate::state::{ChangelogKind, StoreSpecParts};

/// Collects nodes and stores while a topology is being built.
pub(crate) struct InternalBuilder {
    nodes: Vec<NodeSpec>,
    stores: Vec<StoreSpec>,
    names: HashSet<String>,
    source_topics: HashSet<TopicName>,
    counter: u32,
    errors: Vec<TopologyError>,
    repartition_topics: Vec<(TopicName, Option<u32>)>,
    /// Joining operators and the nodes feeding them (see
    /// [`TopologyInner::copartition_groups`]).
    copartition: Vec<(String, Vec<usize>)>,
    global_stores: Vec<GlobalStoreSpec>,
}

impl InternalBuilder {
    pub(crate) fn new() -> Self {
        Self {
            nodes: Vec::new(),
            stores: Vec::new(),
            names: HashSet::new(),
            source_topics: HashSet::new(),
            counter: 0,
            errors: Vec::new(),
            repartition_topics: Vec::new(),
            copartition: Vec::new(),
            global_stores: Vec::new(),
        }
    }

    /// Adds a global store fed by `spec.topic` (read by no task).
    pub(crate) fn add_global_store(&mut self, spec: GlobalStoreSpec) {
        let topic = TopicName::External(spec.topic.clone());
        if !self.source_topics.insert(topic.clone()) {
            self.errors
                .push(TopologyError::TopicReadTwice(topic.display()));
        }
        if self.stores.iter().any(|s| s.name == spec.name)
            || self.global_stores.iter().any(|g| g.name == spec.name)
            || self.names.contains(&spec.name)
        {
            self.errors.push(TopologyError::DuplicateName(spec.name));
            return;
        }
        self.global_stores.push(spec);
    }

    /// The name of the node at `idx`.
    pub(crate) fn node_name(&self, idx: usize) -> String {
        self.nodes
            .get(idx)
            .map_or_else(String::new, |n| n.name.to_string())
    }

    /// Records that the inputs `nodes` of `operator` are joined by key, so the topics they
    /// read must be co-partitioned.
    pub(crate) fn copartition(&mut self, operator: &str, nodes: &[usize]) {
        self.copartition
            .push((operator.to_string(), nodes.to_vec()));
    }

    /// The source topics upstream of `node`.
    fn upstream_topics(&self, node: usize) -> Vec<TopicName> {
        let mut seen = HashSet::new();
        let mut stack = vec![node];
        let mut out = Vec::new();
        while let Some(n) = stack.pop() {
            if !seen.insert(n) {
                continue;
            }
            match &self.nodes[n].kind {
                NodeKind::Source { topics } => {
                    for t in topics {
                        if !out.contains(t) {
                            out.push(t.clone());
                        }
                    }
                }
                _ => stack.extend(self.nodes[n].parents.iter().copied()),
            }
        }
        out
    }

    /// A new generated name, Kafka style: `KSTREAM-FILTER-0000000001`.
    pub(crate) fn generate(&mut self, prefix: &str) -> String {
        let n = self.counter;
        self.counter += 1;
        format!("{prefix}{n:010}")
    }

    /// The given name, or a generated one.
    pub(crate) fn name_or(&mut self, given: Option<&str>, prefix: &str) -> String {
        match given {
            Some(n) => n.to_string(),
            None => self.generate(prefix),
        }
    }

    pub(crate) fn error(&mut self, e: TopologyError) {
        self.errors.push(e);
    }

    /// Adds a node below `parents`; returns its index.
    pub(crate) fn add_node(
        &mut self,
        name: String,
        kind: NodeKind,
        parents: &[usize],
        factory: NodeFactory,
    ) -> usize {
        if !self.names.insert(name.clone()) {
            self.errors.push(TopologyError::DuplicateName(name.clone()));
        }
        if let NodeKind::Source { topics } = &kind {
            for t in topics {
                if !self.source_topics.insert(t.clone()) {
                    self.errors.push(TopologyError::TopicReadTwice(t.display()));
                }
            }
        }
        let idx = self.nodes.len();
        for &p in parents {
            self.nodes[p].children.push(idx);
        }
        self.nodes.push(NodeSpec {
            name: Arc::from(name.as_str()),
            kind,
            parents: parents.to_vec(),
            children: Vec::new(),
            stores: Vec::new(),
            factory,
        });
        idx
    }

    /// Makes `parent` a parent of `node` too (a node fed by two upstream nodes).
    pub(crate) fn add_parent(&mut self, node: usize, parent: usize) {
        self.nodes[node].parents.push(parent);
        self.nodes[parent].children.push(node);
    }

    pub(crate) fn add_store(&mut self, parts: StoreSpecParts) {
        let StoreSpecParts {
            name,
            logged,
            changelog,
            factory,
        } = parts;
        if self.stores.iter().any(|s| s.name == name)
            || self.global_stores.iter().any(|g| g.name == name)
            || self.names.contains(&name)
        {
            self.errors.push(TopologyError::DuplicateName(name));
            return;
        }
        self.stores.push(StoreSpec {
            name,
            logged,
            changelog_kind: changelog,
            factory,
        });
    }

    pub(crate) fn connect_store(&mut self, node: usize, store: &str) {
        self.nodes[node].stores.push(store.to_string());
    }

    pub(crate) fn add_repartition_topic(&mut self, topic: TopicName, partitions: Option<u32>) {
        self.repartition_topics.push((topic, partitions));
    }

    pub(crate) fn build(self) -> Result<Topology, TopologyError> {
        if let Some(e) = self.errors.first() {
            return Err(e.clone());
        }
        if !self.nodes.iter().any(NodeSpec::is_source) {
            return Err(TopologyError::NoSource);
        }
        let store_idx: HashMap<&str, usize> = self
            .stores
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect();
        // Union-find: parent/child edges and shared stores join nodes into sub-topologies.
        let n = self.nodes.len();
        let mut uf: Vec<usize> = (0..n).collect();
        fn find(uf: &mut [usize], mut x: usize) -> usize {
            while uf[x] != x {
                uf[x] = uf[uf[x]];
                x = uf[x];
            }
            x
        }
        let mut store_owner: HashMap<usize, usize> = HashMap::new();
        for (i, node) in self.nodes.iter().enumerate() {
            for &c in &node.children {
                let (a, b) = (find(&mut uf, i), find(&mut uf, c));
                uf[a] = b;
            }
            for s in &node.stores {
                if self.global_stores.iter().any(|g| &g.name == s) {
                    continue; // shared by every task: no edge between sub-topologies
                }
                let Some(&si) = store_idx.get(s.as_str()) else {
                    return Err(TopologyError::UnknownName {
                        node: node.name.to_string(),
                        what: "store",
                        name: s.clone(),
                    });
                };
                if let Some(&other) = store_owner.get(&si) {
                    let (a, b) = (find(&mut uf, i), find(&mut uf, other));
                    uf[a] = b;
                } else {
                    store_owner.insert(si, i);
                }
            }
        }
        let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
        let mut root_to_group: HashMap<usize, usize> = HashMap::new();
        for i in 0..n {
            let r = find(&mut uf, i);
            let g = *root_to_group.entry(r).or_insert_with(|| {
                groups.push((i, Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push(i);
        }
        let subtopologies = groups
            .into_iter()
            .map(|(_, nodes)| {
                let stores: BTreeSet<usize> = nodes
                    .iter()
                    .flat_map(|&i| self.nodes[i].stores.iter())
                    .filter_map(|s| store_idx.get(s.as_str()).copied())
                    .collect();
                let sources = nodes
                    .iter()
                    .flat_map(|&i| match &self.nodes[i].kind {
                        NodeKind::Source { topics } => topics.clone(),
                        _ => Vec::new(),
                    })
                    .collect();
                SubtopologySpec {
                    nodes,
                    stores: stores.into_iter().collect(),
                    sources,
                }
            })
            .collect();
        let copartition_groups = self
            .copartition
            .iter()
            .map(|(op, nodes)| {
                let mut topics: Vec<TopicName> = Vec::new();
                for &n in nodes {
                    for t in self.upstream_topics(n) {
                        if !topics.contains(&t) {
                            topics.push(t);
                        }
                    }
                }
                (op.clone(), topics)
            })
            .collect();
        let inner = TopologyInner {
            nodes: self.nodes,
            stores: self.stores,
            subtopologies,
            repartition_topics: self.repartition_topics,
            copartition_groups,
            global_stores: self.global_stores,
        };
        Ok(Topology {
            inner: Arc::new(inner),
        })
    }
}

/// A built topology, ready for the test driver or the runtime. Cheap to clone.
#[derive(Clone)]
pub struct Topology {
    pub(crate) inner: Arc<TopologyInner>,
}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.describe())
    }
}

impl Topology {
    /// Describes the topology: its sub-topologies and their nodes and stores.
    pub fn describe(&self) -> TopologyDescription {
        let t = &self.inner;
        let subtopologies = t
            .subtopologies
            .iter()
            .enumerate()
            .map(|(id, s)| SubtopologyDescription {
                id: id as u32,
                nodes: s
                    .nodes
                    .iter()
                    .map(|&i| {
                        let node = &t.nodes[i];
                        NodeDescription {
                            name: node.name.to_string(),
                            kind: match &node.kind {
                                NodeKind::Source { topics } => NodeType::Source {
                                    topics: topics.iter().map(TopicName::display).collect(),
                                },
                                NodeKind::Processor => NodeType::Processor {
                                    stores: node.stores.clone(),
                                },
                                NodeKind::Sink { topic } => NodeType::Sink {
                                    topic: topic.as_ref().map(TopicName::display),
                                },
                            },
                            successors: node
                                .children
                                .iter()
                                .map(|&c| t.nodes[c].name.to_string())
                                .collect(),
                            predecessors: node
                                .parents
                                .iter()
                                .map(|&p| t.nodes[p].name.to_string())
                                .collect(),
                        }
                    })
                    .collect(),
            })
            .collect();
        let global_stores = t
            .global_stores
            .iter()
            .map(|g| GlobalStoreDescription {
                store: g.name.clone(),
                topic: g.topic.clone(),
            })
            .collect();
        TopologyDescription {
            subtopologies,
            global_stores,
        }
    }

    /// The names of all state stores.
    pub fn store_names(&self) -> Vec<&str> {
        self.inner.stores.iter().map(|s| s.name.as_str()).collect()
    }

    /// The changelog topics of the logged stores, with the application id applied
    /// (`<application.id>-<store>-changelog`), and how each is cleaned up.
    pub fn changelog_topics(&self, application_id: &str) -> Vec<(String, ChangelogKind)> {
        self.inner
            .stores
            .iter()
            .filter(|s| s.logged)
            .map(|s| {
                (
                    s.changelog_topic().resolve(application_id),
                    s.changelog_kind,
                )
            })
            .collect()
    }

    /// The repartition topics, with the application id applied.
    pub fn repartition_topics(&self, application_id: &str) -> Vec<String> {
        self.inner
            .repartition_topics
            .iter()
            .map(|(t, _)| t.resolve(application_id))
            .collect()
    }
}

/// What kind of node a [`NodeDescription`] describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeType {
    /// Reads topics.
    Source {
        /// The topics (internal ones as `<application.id>-name`).
        topics: Vec<String>,
    },
    /// Processes records.
    Processor {
        /// Connected stores.
        stores: Vec<String>,
    },
    /// Writes a topic.
    Sink {
        /// The topic; `None` when chosen per record.
        topic: Option<String>,
    },
}

/// One node of a [`TopologyDescription`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDescription {
    /// The node's name.
    pub name: String,
    /// Its kind.
    pub kind: NodeType,
    /// Children.
    pub successors: Vec<String>,
    /// Parents.
    pub predecessors: Vec<String>,
}

/// One sub-topology of a [`TopologyDescription`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtopologyDescription {
    /// Its id (the first half of its task ids).
    pub id: u32,
    /// Its nodes, in creation order.
    pub nodes: Vec<NodeDescription>,
}

/// A description of a topology. `Display` prints Kafka Streams' format.
///
/// ```
/// use streams_core::prelude::*;
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, String>("in").filter(|_, v| !v.is_empty()).to("out");
/// let text = builder.build().unwrap().describe().to_string();
/// assert!(text.contains("Source: KSTREAM-SOURCE-0000000000 (topics: [in])"));
/// assert!(text.contains("Sink: KSTREAM-SINK-0000000002 (topic: out)"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyDescription {
    /// The sub-topologies, by id.
    pub subtopologies: Vec<SubtopologyDescription>,
    /// The global stores (of global tables): no tasks; every instance holds them in full.
    pub global_stores: Vec<GlobalStoreDescription>,
}

/// A global store in a [`TopologyDescription`]: its name and the topic that feeds it (and
/// is its changelog).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalStoreDescription {
    /// The store's name.
    pub store: String,
    /// Its source topic.
    pub topic: String,
}

fn join_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

impl fmt::Display for TopologyDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Topologies:")?;
        for s in &self.subtopologies {
            writeln!(f, "   Sub-topology: {}", s.id)?;
            for n in &s.nodes {
                match &n.kind {
                    NodeType::Source { topics } => {
                        writeln!(
                            f,
                            "    Source: {} (topics: [{}])",
                            n.name,
                            topics.join(", ")
                        )?;
                        writeln!(f, "      --> {}", join_or_none(&n.successors))?;
                    }
                    NodeType::Processor { stores } => {
                        writeln!(
                            f,
                            "    Processor: {} (stores: [{}])",
                            n.name,
                            stores.join(", ")
                        )?;
                        writeln!(f, "      --> {}", join_or_none(&n.successors))?;
                        writeln!(f, "      <-- {}", join_or_none(&n.predecessors))?;
                    }
                    NodeType::Sink { topic } => {
                        match topic {
                            Some(t) => writeln!(f, "    Sink: {} (topic: {})", n.name, t)?,
                            None => writeln!(f, "    Sink: {} (extractor)", n.name)?,
                        }
                        writeln!(f, "      <-- {}", join_or_none(&n.predecessors))?;
                    }
                }
            }
            writeln!(f)?;
        }
        for g in &self.global_stores {
            writeln!(
                f,
                "   Global store: {} (topic: {}; not in any task, every instance holds it all)",
                g.store, g.topic
            )?;
        }
        Ok(())
    }
}

impl TopologyDescription {
    /// The graph in Graphviz DOT: one cluster per sub-topology, topics as ellipses, stores
    /// as cylinders.
    pub fn to_dot(&self) -> String {
        let mut out = String::from("digraph topology {\n  rankdir=LR;\n  node [shape=box];\n");
        let mut topics = BTreeSet::new();
        for s in &self.subtopologies {
            out.push_str(&format!(
                "  subgraph cluster_{0} {{\n    label=\"Sub-topology {0}\";\n",
                s.id
            ));
            for n in &s.nodes {
                out.push_str(&format!("    \"{}\";\n", n.name));
            }
            out.push_str("  }\n");
            for n in &s.nodes {
                for c in &n.successors {
                    out.push_str(&format!("  \"{}\" -> \"{}\";\n", n.name, c));
                }
                match &n.kind {
                    NodeType::Source { topics: ts } => {
                        for t in ts {
                            topics.insert(t.clone());
                            out.push_str(&format!("  \"topic:{t}\" -> \"{}\";\n", n.name));
                        }
                    }
                    NodeType::Sink { topic: Some(t) } => {
                        topics.insert(t.clone());
                        out.push_str(&format!("  \"{}\" -> \"topic:{t}\";\n", n.name));
                    }
                    NodeType::Processor { stores } => {
                        for st in stores {
                            out.push_str(&format!(
                                "  \"store:{st}\" [shape=cylinder, label=\"{st}\"];\n  \"{}\" -> \"store:{st}\" [dir=both, style=dashed];\n",
                                n.name
                            ));
                        }
                    }
                    NodeType::Sink { topic: None } => {}
                }
            }
        }
        for g in &self.global_stores {
            topics.insert(g.topic.clone());
            out.push_str(&format!(
                "  \"store:{0}\" [shape=cylinder, label=\"{0} (global)\"];\n  \"topic:{1}\" -> \"store:{0}\";\n",
                g.store, g.topic
            ));
        }
        for t in topics {
            out.push_str(&format!(
                "  \"topic:{t}\" [shape=ellipse, label=\"{t}\"];\n"
            ));
        }
        out.push_str("}\n");
        out
    }

    /// The graph as a Mermaid flowchart.
    pub fn to_mermaid(&self) -> String {
        let id = |s: &str| -> String {
            s.chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect()
        };
        let mut out = String::from("flowchart LR\n");
        let mut topics = BTreeSet::new();
        for s in &self.subtopologies {
            out.push_str(&format!("  subgraph sub{0}[\"Sub-topology {0}\"]\n", s.id));
            for n in &s.nodes {
                out.push_str(&format!("    {}[\"{}\"]\n", id(&n.name), n.name));
            }
            out.push_str("  end\n");
        }
        for s in &self.subtopologies {
            for n in &s.nodes {
                for c in &n.successors {
                    out.push_str(&format!("  {} --> {}\n", id(&n.name), id(c)));
                }
                match &n.kind {
                    NodeType::Source { topics: ts } => {
                        for t in ts {
                            topics.insert(t.clone());
                            out.push_str(&format!("  t_{} --> {}\n", id(t), id(&n.name)));
                        }
                    }
                    NodeType::Sink { topic: Some(t) } => {
                        topics.insert(t.clone());
                        out.push_str(&format!("  {} --> t_{}\n", id(&n.name), id(t)));
                    }
                    NodeType::Processor { stores } => {
                        for st in stores {
                            out.push_str(&format!(
                                "  s_{0}[(\"{1}\")] -.- {2}\n",
                                id(st),
                                st,
                                id(&n.name)
                            ));
                        }
                    }
                    NodeType::Sink { topic: None } => {}
                }
            }
        }
        for g in &self.global_stores {
            topics.insert(g.topic.clone());
            out.push_str(&format!(
                "  s_{0}[(\"{1} (global)\")]\n  t_{2} --> s_{0}\n",
                id(&g.store),
                g.store,
                id(&g.topic)
            ));
        }
        for t in topics {
            out.push_str(&format!("  t_{}([\"{}\"])\n", id(&t), t));
        }
        out
    }
}
