//! The topology as a graph to draw: an element per node, store and topic, a link per
//! successor, topic read or written and store used, a group per sub-topology.

use std::collections::HashMap;

use streams_core::topology::{NodeType, TopologyDescription};

/// What an element of the picture is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ElementKind {
    /// A source node (reads topics).
    Source,
    /// A processor node.
    Processor,
    /// A sink node (writes a topic).
    Sink,
    /// A state store; `global`: a global table's, held in full by every instance.
    Store {
        /// Whether it is a global store.
        global: bool,
    },
    /// A topic; `internal`: named after the application id (repartition topics are
    /// internal).
    Topic {
        /// Whether the runtime creates it (`<application.id>-...`).
        internal: bool,
    },
}

impl ElementKind {
    /// The CSS class and the caption of the element.
    pub(super) fn class_and_caption(&self, name: &str) -> (&'static str, &'static str) {
        match self {
            ElementKind::Source => ("source", "source"),
            ElementKind::Processor => ("processor", "processor"),
            ElementKind::Sink => ("sink", "sink"),
            ElementKind::Store { global: true } => ("store", "global store"),
            ElementKind::Store { global: false } => ("store", "store"),
            ElementKind::Topic { internal: true } if name.ends_with("-repartition") => {
                ("topic internal", "repartition topic")
            }
            ElementKind::Topic { internal: true } => ("topic internal", "internal topic"),
            ElementKind::Topic { internal: false } => ("topic", "topic"),
        }
    }
}

/// One box of the picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    /// `node:<name>`, `store:<name>` or `topic:<name>`.
    pub(crate) id: String,
    /// The node's, store's or topic's name (internal topics with the application id).
    pub(crate) name: String,
    /// What it is.
    pub(crate) kind: ElementKind,
    /// The group it is drawn in (see [`TopologyGraph::groups`]).
    pub(crate) group: usize,
}

/// How two elements are linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkKind {
    /// Records flow from one to the other (a successor, a topic read or written).
    Flow,
    /// A processor uses a store.
    Store,
}

/// A link between two elements (indexes into [`TopologyGraph::elements`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Link {
    /// Where it starts.
    pub(crate) from: usize,
    /// Where it ends.
    pub(crate) to: usize,
    /// Its kind.
    pub(crate) kind: LinkKind,
}

/// A framed group of elements: a sub-topology (with the topics it reads), or the global
/// stores (with their topics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Group {
    /// The sub-topology's id; `None` for the global stores.
    pub(crate) subtopology: Option<u32>,
    /// Its title.
    pub(crate) title: String,
}

/// A topology description as elements, links and groups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TopologyGraph {
    /// The boxes.
    pub(crate) elements: Vec<Element>,
    /// The arrows (flow) and dashed lines (store use).
    pub(crate) links: Vec<Link>,
    /// The frames.
    pub(crate) groups: Vec<Group>,
}

/// A topic name of a description with the application id applied.
fn topic_name(name: &str, application_id: &str) -> String {
    match name.strip_prefix("<application.id>-") {
        Some(rest) => format!("{application_id}-{rest}"),
        None => name.to_string(),
    }
}

impl TopologyGraph {
    /// The elements and links of `desc`: every node, every store a processor uses or a
    /// global table holds, every topic read or written; a link per successor, per topic
    /// read or written and per store used. A topic is drawn in the group of the first
    /// sub-topology that reads it (else of the global store it feeds, else of the first
    /// that writes it); a store in its first user's group (global stores in their own).
    pub(crate) fn from_description(desc: &TopologyDescription, application_id: &str) -> Self {
        let mut g = TopologyGraph::default();
        let mut groups_of_topics: HashMap<String, usize> = HashMap::new();
        for s in &desc.subtopologies {
            g.groups.push(Group {
                subtopology: Some(s.id),
                title: format!("Sub-topology {}", s.id),
            });
        }
        let global_group = (!desc.global_stores.is_empty()).then(|| {
            g.groups.push(Group {
                subtopology: None,
                title: "Global stores".to_string(),
            });
            g.groups.len() - 1
        });
        // Where each topic is drawn: its first reader, its global store, its first writer.
        for (group, s) in desc.subtopologies.iter().enumerate() {
            for n in &s.nodes {
                if let NodeType::Source { topics } = &n.kind {
                    for t in topics {
                        groups_of_topics
                            .entry(topic_name(t, application_id))
                            .or_insert(group);
                    }
                }
            }
        }
        if let Some(group) = global_group {
            for gs in &desc.global_stores {
                groups_of_topics
                    .entry(topic_name(&gs.topic, application_id))
                    .or_insert(group);
            }
        }
        for (group, s) in desc.subtopologies.iter().enumerate() {
            for n in &s.nodes {
                if let NodeType::Sink { topic: Some(t) } = &n.kind {
                    groups_of_topics
                        .entry(topic_name(t, application_id))
                        .or_insert(group);
                }
            }
        }
        let mut index: HashMap<String, usize> = HashMap::new();
        // The element `id`, added unless it is there already.
        let mut add = |g: &mut TopologyGraph, id: String, name: &str, kind, group| -> usize {
            *index.entry(id.clone()).or_insert_with(|| {
                g.elements.push(Element {
                    id,
                    name: name.to_string(),
                    kind,
                    group,
                });
                g.elements.len() - 1
            })
        };
        // A topic's id, name, kind and group.
        let topic = |t: &str| -> (String, String, ElementKind, usize) {
            let name = topic_name(t, application_id);
            let group = groups_of_topics.get(&name).copied().unwrap_or(0);
            let internal = t.starts_with("<application.id>-");
            (
                format!("topic:{name}"),
                name,
                ElementKind::Topic { internal },
                group,
            )
        };
        let global_stores: Vec<&str> = desc
            .global_stores
            .iter()
            .map(|s| s.store.as_str())
            .collect();
        // Nodes first (in description order), then what they use.
        for (group, s) in desc.subtopologies.iter().enumerate() {
            for n in &s.nodes {
                let kind = match &n.kind {
                    NodeType::Source { .. } => ElementKind::Source,
                    NodeType::Processor { .. } => ElementKind::Processor,
                    NodeType::Sink { .. } => ElementKind::Sink,
                };
                add(&mut g, format!("node:{}", n.name), &n.name, kind, group);
            }
        }
        let mut links = Vec::new();
        let store_kind = |name: &str| ElementKind::Store {
            global: global_stores.contains(&name),
        };
        if let Some(group) = global_group {
            for gs in &desc.global_stores {
                let (id, name, kind, topic_group) = topic(&gs.topic);
                let t = add(&mut g, id, &name, kind, topic_group);
                let st = add(
                    &mut g,
                    format!("store:{}", gs.store),
                    &gs.store,
                    store_kind(&gs.store),
                    group,
                );
                links.push((t, st, LinkKind::Flow));
            }
        }
        for (group, s) in desc.subtopologies.iter().enumerate() {
            for n in &s.nodes {
                let me = add(
                    &mut g,
                    format!("node:{}", n.name),
                    &n.name,
                    ElementKind::Processor,
                    group,
                );
                match &n.kind {
                    NodeType::Source { topics } => {
                        for t in topics {
                            let (id, name, kind, group) = topic(t);
                            let t = add(&mut g, id, &name, kind, group);
                            links.push((t, me, LinkKind::Flow));
                        }
                    }
                    NodeType::Sink { topic: Some(t) } => {
                        let (id, name, kind, group) = topic(t);
                        let t = add(&mut g, id, &name, kind, group);
                        links.push((me, t, LinkKind::Flow));
                    }
                    NodeType::Sink { topic: None } => {}
                    NodeType::Processor { stores } => {
                        for st in stores {
                            let st = add(&mut g, format!("store:{st}"), st, store_kind(st), group);
                            links.push((me, st, LinkKind::Store));
                        }
                    }
                }
                for c in &n.successors {
                    let c = add(
                        &mut g,
                        format!("node:{c}"),
                        c,
                        ElementKind::Processor,
                        group,
                    );
                    links.push((me, c, LinkKind::Flow));
                }
            }
        }
        g.links = links
            .into_iter()
            .map(|(from, to, kind)| Link { from, to, kind })
            .collect();
        g
    }
}
