//! The dashboard's runtime view (issue #21): the topology as a picture, and the figures
//! the picture is annotated with that only Rust can read.
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/topology.svg` | the app's topology as an SVG picture: one box per source, processor and sink, per store and per topic, framed by sub-topology, with an arrow per link |
//! | `GET /api/topology/stores` | `{"stores": {"<store>": entries, ...}, "age_ms": ...}`: the entries each store holds in this instance's tasks |
//!
//! The picture is drawn from [`Topology::describe`](streams_core::topology::Topology::describe)
//! (its structure, not its text) with a small layered layout written here: every element
//! of a sub-topology (and the topics it reads) is put in a row by the longest path from
//! the sub-topology's roots, rows are ordered to keep links short (barycenters), and the
//! sub-topologies themselves are placed in rows by the longest path through the topics
//! that link them, so that records flow down the picture. Nothing is fetched at run
//! time: the SVG is text generated here, its style inline.
//!
//! The dashboard's script puts the live figures on it: per sub-topology the tasks and
//! records processed per second, per processor the records per second when the runtime
//! records `kafka_streams_stream_processor_node_process_rate` (both from `/metrics`), and
//! per store the entries from [`/api/topology/stores`](store_sizes). The elements carry
//! `data-id` (`node:<name>`, `store:<name>`, `topic:<name>`, internal topics with the
//! application id applied), the links `data-from` and `data-to`, for the script and the
//! browser test.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use streams_core::runtime::KafkaStreams;
use streams_core::state::ReadOnlyWindowStore;
use streams_core::topology::{NodeType, TopologyDescription};

use super::web::{OPEN_END, WebState};
use super::{
    APPLICATION_ID, ActivityConfig, Alert, CATEGORY_CTR_STORE, CLICK_ATTRIBUTION_STORE,
    COUNTRY_VIEW_COUNTS_STORE, ClickThrough, PAGE_CATALOGUE_STORE, PAGE_CTR_STORE,
    PAGE_VIEW_COUNTS_STORE, PageInfo, RECENT_ALERTS_STORE, USER_CLICK_COUNTS_STORE,
    USER_PROFILES_STORE, UserPage, UserProfile,
};

/// The routes of the runtime view, merged into [`super::web::router`].
pub(crate) fn routes() -> Router<Arc<WebState>> {
    let sizes = Arc::new(SizeCache::default());
    Router::new()
        .route("/api/topology.svg", get(topology_svg))
        .route(
            "/api/topology/stores",
            get(move |State(s): State<Arc<WebState>>| store_sizes(s, sizes.clone())),
        )
}

/// The SVG of the app's topology, drawn once.
async fn topology_svg() -> Response {
    static SVG: OnceLock<Result<String, String>> = OnceLock::new();
    let svg = SVG.get_or_init(|| {
        super::topology(&ActivityConfig::default())
            .map(|t| topology_picture(&t.describe(), APPLICATION_ID))
            .map_err(|e| e.to_string())
    });
    match svg {
        Ok(svg) => (
            [
                (header::CONTENT_TYPE, "image/svg+xml"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            svg.clone(),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(serde_json::json!({ "error": e })),
        )
            .into_response(),
    }
}

// ---------------------------------------------------------------------------------------
// Store sizes.

/// The answer of `/api/topology/stores`.
#[derive(Debug, Clone, Default, Serialize)]
struct StoreSizes {
    /// Entries per store, over this instance's tasks: the key-value stores' approximate
    /// counts, the window stores' windows. Stores that cannot be counted (session stores,
    /// the joins' and suppressions' internal stores) are left out.
    stores: BTreeMap<String, u64>,
    /// How old the counts are, in ms.
    age_ms: u64,
}

/// Counts taken at `at`, which took `took` (counting window stores reads them all).
#[derive(Debug)]
struct Counted {
    at: Instant,
    took: Duration,
    stores: BTreeMap<String, u64>,
}

/// The last counts.
#[derive(Debug, Default)]
struct SizeCache {
    last: Mutex<Option<Counted>>,
}

/// Counts are reused for at least this long...
const SIZES_FRESH: Duration = Duration::from_secs(5);
/// ...and for at least this many times as long as counting took, so that counting large
/// window stores costs at most 1/20 of a core.
const SIZES_COST_FACTOR: u32 = 20;

async fn store_sizes(s: Arc<WebState>, cache: Arc<SizeCache>) -> axum::Json<StoreSizes> {
    let answer = tokio::task::spawn_blocking(move || {
        // One caller counts at a time; the others wait for its counts.
        let mut last = cache.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = last.as_ref()
            && c.at.elapsed() < SIZES_FRESH.max(c.took * SIZES_COST_FACTOR)
        {
            return StoreSizes {
                stores: c.stores.clone(),
                age_ms: u64::try_from(c.at.elapsed().as_millis()).unwrap_or(u64::MAX),
            };
        }
        let at = Instant::now();
        let stores = count_stores(&s.streams);
        *last = Some(Counted {
            at,
            took: at.elapsed(),
            stores: stores.clone(),
        });
        StoreSizes { stores, age_ms: 0 }
    })
    .await;
    axum::Json(answer.unwrap_or_default())
}

/// The entries of the activity stores this instance can count (see [`StoreSizes`]).
fn count_stores(streams: &KafkaStreams) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut put = |name: &str, n: streams_core::error::Result<u64>| {
        if let Ok(n) = n {
            out.insert(name.to_string(), n);
        }
    };
    put(
        USER_PROFILES_STORE,
        streams
            .key_value_store::<String, UserProfile>(USER_PROFILES_STORE)
            .and_then(|v| v.approximate_num_entries()),
    );
    put(
        PAGE_CATALOGUE_STORE,
        streams
            .key_value_store::<String, PageInfo>(PAGE_CATALOGUE_STORE)
            .and_then(|v| v.approximate_num_entries()),
    );
    put(
        RECENT_ALERTS_STORE,
        streams
            .key_value_store::<String, Alert>(RECENT_ALERTS_STORE)
            .and_then(|v| v.approximate_num_entries()),
    );
    fn windows<K: 'static, V: 'static>(
        streams: &KafkaStreams,
        name: &str,
    ) -> streams_core::error::Result<u64> {
        let view = streams.window_store::<K, V>(name)?;
        Ok(view.fetch_all(i64::MIN / 2, OPEN_END)?.len() as u64)
    }
    for name in [
        PAGE_VIEW_COUNTS_STORE,
        COUNTRY_VIEW_COUNTS_STORE,
        USER_CLICK_COUNTS_STORE,
    ] {
        put(name, windows::<String, i64>(streams, name));
    }
    for name in [PAGE_CTR_STORE, CATEGORY_CTR_STORE] {
        put(name, windows::<String, ClickThrough>(streams, name));
    }
    put(
        CLICK_ATTRIBUTION_STORE,
        windows::<UserPage, i64>(streams, CLICK_ATTRIBUTION_STORE),
    );
    out
}

// ---------------------------------------------------------------------------------------
// The graph.

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
    fn class_and_caption(&self, name: &str) -> (&'static str, &'static str) {
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

// ---------------------------------------------------------------------------------------
// The layout.

/// A box's width.
const BOX_W: f64 = 180.0;
/// A box's height: two lines of name and one of caption.
const BOX_H: f64 = 46.0;
/// The space between two boxes of a row.
const H_GAP: f64 = 16.0;
/// The space between two rows (room for the arrows).
const V_GAP: f64 = 30.0;
/// The padding inside a frame.
const PAD: f64 = 12.0;
/// The frame's title line.
const TITLE_H: f64 = 24.0;
/// The space between two frames of a row.
const GROUP_H_GAP: f64 = 28.0;
/// The space between two rows of frames.
const GROUP_V_GAP: f64 = 44.0;
/// The margin around the picture.
const MARGIN: f64 = 12.0;
/// Frames go on the next row past this width (unless a frame alone is wider).
const MAX_ROW_W: f64 = 1700.0;
/// The characters of a name that fit on one line of a box.
const LINE_CHARS: usize = 26;

/// An axis-aligned rectangle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rect {
    /// Left.
    pub(crate) x: f64,
    /// Top.
    pub(crate) y: f64,
    /// Width.
    pub(crate) w: f64,
    /// Height.
    pub(crate) h: f64,
}

impl Rect {
    /// Whether the two rectangles share any area.
    #[cfg(test)]
    pub(crate) fn overlaps(&self, o: &Rect) -> bool {
        self.x < o.x + o.w && o.x < self.x + self.w && self.y < o.y + o.h && o.y < self.y + self.h
    }

    /// Whether `o` lies inside this rectangle.
    #[cfg(test)]
    pub(crate) fn contains(&self, o: &Rect) -> bool {
        o.x >= self.x
            && o.y >= self.y
            && o.x + o.w <= self.x + self.w
            && o.y + o.h <= self.y + self.h
    }

    fn cx(&self) -> f64 {
        self.x + self.w / 2.0
    }

    fn cy(&self) -> f64 {
        self.y + self.h / 2.0
    }

    fn bottom(&self) -> f64 {
        self.y + self.h
    }

    fn right(&self) -> f64 {
        self.x + self.w
    }
}

/// Where everything of a [`TopologyGraph`] is drawn.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Layout {
    /// A box per element (same indexes).
    pub(crate) boxes: Vec<Rect>,
    /// A frame per group (same indexes).
    pub(crate) frames: Vec<Rect>,
    /// The picture's width.
    pub(crate) width: f64,
    /// The picture's height.
    pub(crate) height: f64,
}

/// The layer of each of `n` vertices: the longest path to it from a vertex without
/// predecessors, over `edges`. Cycles are broken at the edges a depth-first search finds
/// going back.
pub(crate) fn layers(n: usize, edges: &[(usize, usize)]) -> Vec<usize> {
    let mut adj = vec![Vec::new(); n];
    for &(a, b) in edges {
        if a != b && a < n && b < n {
            adj[a].push(b);
        }
    }
    // 0: not seen, 1: on the path, 2: done.
    let mut state = vec![0u8; n];
    let mut post = Vec::with_capacity(n);
    let mut kept: Vec<Vec<usize>> = vec![Vec::new(); n];
    for root in 0..n {
        if state[root] != 0 {
            continue;
        }
        state[root] = 1;
        let mut stack = vec![(root, 0usize)];
        while let Some(top) = stack.last_mut() {
            let (v, i) = *top;
            if let Some(&w) = adj[v].get(i) {
                top.1 += 1;
                match state[w] {
                    0 => {
                        kept[v].push(w);
                        state[w] = 1;
                        stack.push((w, 0));
                    }
                    1 => {} // back edge: closes a cycle
                    _ => kept[v].push(w),
                }
            } else {
                state[v] = 2;
                post.push(v);
                stack.pop();
            }
        }
    }
    let mut layer = vec![0; n];
    for &v in post.iter().rev() {
        for &w in &kept[v] {
            layer[w] = layer[w].max(layer[v] + 1);
        }
    }
    layer
}

/// Orders the vertices of each row by the mean position of their neighbours in the other
/// rows, sweeping down and up a few times (the barycenter heuristic).
fn order_rows(
    rows: &mut [Vec<usize>],
    preds: &HashMap<usize, Vec<usize>>,
    succs: &HashMap<usize, Vec<usize>>,
) {
    let position = |rows: &[Vec<usize>]| -> HashMap<usize, f64> {
        let mut pos = HashMap::new();
        for row in rows {
            let mid = (row.len() as f64 - 1.0) / 2.0;
            for (i, &v) in row.iter().enumerate() {
                pos.insert(v, i as f64 - mid);
            }
        }
        pos
    };
    let sort =
        |row: &mut Vec<usize>, pos: &HashMap<usize, f64>, by: &HashMap<usize, Vec<usize>>| {
            let mid = (row.len() as f64 - 1.0) / 2.0;
            let mut keyed: Vec<(f64, usize, usize)> = row
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let near: Vec<f64> = by
                        .get(&v)
                        .into_iter()
                        .flatten()
                        .filter_map(|u| pos.get(u).copied())
                        .collect();
                    let key = if near.is_empty() {
                        i as f64 - mid
                    } else {
                        near.iter().sum::<f64>() / near.len() as f64
                    };
                    (key, i, v)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            *row = keyed.into_iter().map(|(_, _, v)| v).collect();
        };
    for _ in 0..4 {
        for r in 1..rows.len() {
            let pos = position(rows);
            sort(&mut rows[r], &pos, preds);
        }
        for r in (0..rows.len().saturating_sub(1)).rev() {
            let pos = position(rows);
            sort(&mut rows[r], &pos, succs);
        }
    }
}

impl Layout {
    /// Lays `g` out: each group's elements in rows (see [`layers`]), centred in its
    /// frame; the frames in rows by the flow between groups, wrapped past
    /// [`MAX_ROW_W`].
    pub(crate) fn of(g: &TopologyGraph) -> Layout {
        let n = g.elements.len();
        let mut boxes = vec![
            Rect {
                x: 0.0,
                y: 0.0,
                w: BOX_W,
                h: BOX_H,
            };
            n
        ];
        // Each group laid out alone, at (0, 0).
        let mut sizes = Vec::with_capacity(g.groups.len());
        for group in 0..g.groups.len() {
            let members: Vec<usize> = (0..n).filter(|&i| g.elements[i].group == group).collect();
            let local: HashMap<usize, usize> =
                members.iter().enumerate().map(|(l, &i)| (i, l)).collect();
            let edges: Vec<(usize, usize)> = g
                .links
                .iter()
                .filter_map(|l| Some((*local.get(&l.from)?, *local.get(&l.to)?)))
                .collect();
            let layer = layers(members.len(), &edges);
            let depth = layer.iter().max().map_or(0, |d| d + 1);
            let mut rows: Vec<Vec<usize>> = vec![Vec::new(); depth];
            for (l, &i) in members.iter().enumerate() {
                rows[layer[l]].push(i);
            }
            let mut preds: HashMap<usize, Vec<usize>> = HashMap::new();
            let mut succs: HashMap<usize, Vec<usize>> = HashMap::new();
            for &(a, b) in &edges {
                let (a, b) = (members[a], members[b]);
                preds.entry(b).or_default().push(a);
                succs.entry(a).or_default().push(b);
            }
            order_rows(&mut rows, &preds, &succs);
            let row_w = |len: usize| len as f64 * BOX_W + len.saturating_sub(1) as f64 * H_GAP;
            let inner = rows.iter().map(|r| row_w(r.len())).fold(BOX_W, f64::max);
            for (r, row) in rows.iter().enumerate() {
                let left = PAD + (inner - row_w(row.len())) / 2.0;
                for (k, &i) in row.iter().enumerate() {
                    boxes[i].x = left + k as f64 * (BOX_W + H_GAP);
                    boxes[i].y = TITLE_H + PAD + r as f64 * (BOX_H + V_GAP);
                }
            }
            let height = TITLE_H + 2.0 * PAD + depth as f64 * (BOX_H + V_GAP) - V_GAP;
            sizes.push((inner + 2.0 * PAD, height.max(TITLE_H + 2.0 * PAD)));
        }
        // The groups in rows by the flow between them.
        let group_edges: Vec<(usize, usize)> = g
            .links
            .iter()
            .filter(|l| l.kind == LinkKind::Flow)
            .map(|l| (g.elements[l.from].group, g.elements[l.to].group))
            .filter(|(a, b)| a != b)
            .collect();
        let rank = layers(g.groups.len(), &group_edges);
        let mut order: Vec<usize> = (0..g.groups.len()).collect();
        order.sort_by_key(|&i| (rank[i], i));
        let mut rows: Vec<Vec<usize>> = Vec::new();
        let mut last_rank = None;
        let mut row_width = 0.0;
        for i in order {
            let w = sizes[i].0;
            let wraps = row_width + GROUP_H_GAP + w > MAX_ROW_W;
            match rows.last_mut() {
                Some(row) if last_rank == Some(rank[i]) && !wraps => {
                    row.push(i);
                    row_width += GROUP_H_GAP + w;
                }
                _ => {
                    rows.push(vec![i]);
                    row_width = w;
                }
            }
            last_rank = Some(rank[i]);
        }
        let widths: Vec<f64> = rows
            .iter()
            .map(|r| {
                r.iter().map(|&i| sizes[i].0).sum::<f64>()
                    + r.len().saturating_sub(1) as f64 * GROUP_H_GAP
            })
            .collect();
        let width = widths.iter().copied().fold(0.0, f64::max);
        let mut frames = vec![
            Rect {
                x: 0.0,
                y: 0.0,
                w: 0.0,
                h: 0.0
            };
            g.groups.len()
        ];
        let mut y = MARGIN;
        for (row, row_w) in rows.iter().zip(&widths) {
            let mut x = MARGIN + (width - row_w) / 2.0;
            let mut tallest: f64 = 0.0;
            for &i in row {
                frames[i] = Rect {
                    x,
                    y,
                    w: sizes[i].0,
                    h: sizes[i].1,
                };
                x += sizes[i].0 + GROUP_H_GAP;
                tallest = tallest.max(sizes[i].1);
            }
            y += tallest + GROUP_V_GAP;
        }
        for (b, e) in boxes.iter_mut().zip(&g.elements) {
            b.x += frames[e.group].x;
            b.y += frames[e.group].y;
        }
        Layout {
            boxes,
            frames,
            width: width + 2.0 * MARGIN,
            height: (y - GROUP_V_GAP + MARGIN).max(2.0 * MARGIN),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The SVG.

/// `s` escaped for XML text and attribute values.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A name on at most two lines of [`LINE_CHARS`], broken after `-` where possible; the
/// rest of a longer name is cut in the middle of the second line (`…`).
fn name_lines(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    if chars.len() <= LINE_CHARS {
        return vec![name.to_string()];
    }
    // The first line ends after the last '-' that fits (or is cut at the width).
    let cut = chars[..LINE_CHARS]
        .iter()
        .rposition(|&c| c == '-' || c == '_' || c == '.')
        .map_or(LINE_CHARS, |p| p + 1)
        .max(LINE_CHARS / 2);
    let first: String = chars[..cut].iter().collect();
    let rest = &chars[cut..];
    let second: String = if rest.len() <= LINE_CHARS {
        rest.iter().collect()
    } else {
        let keep = LINE_CHARS - 1;
        let head = keep / 2;
        let tail = keep - head;
        rest[..head]
            .iter()
            .chain(std::iter::once(&'…'))
            .chain(&rest[rest.len() - tail..])
            .collect()
    };
    vec![first, second]
}

const STYLE: &str = "\
.topology text{font-family:-apple-system,'Segoe UI',Roboto,Arial,sans-serif;fill:#e6e9f0}\
.topology .frame{fill:#131a29;stroke:#2b3652;stroke-width:1}\
.topology .frame.global{stroke-dasharray:6 4}\
.topology .group-title{font-size:12px;font-weight:600;fill:#8b93a7}\
.topology .group-stat{font-size:11px;fill:#3ddc97}\
.topology .el rect,.topology .el path.shape{stroke-width:1.2}\
.topology .source rect{fill:#18324a;stroke:#4fb3ff}\
.topology .processor rect{fill:#1d2538;stroke:#5d6b8a}\
.topology .sink rect{fill:#2d2440;stroke:#c792ea}\
.topology .store path.shape{fill:#2e2a1a;stroke:#f7d154}\
.topology .topic rect{fill:#123330;stroke:#3ddc97}\
.topology .topic.internal rect{fill:#332718;stroke:#ffb86b;stroke-dasharray:4 3}\
.topology .label{font-size:10.5px}\
.topology .caption{font-size:9.5px;fill:#8b93a7}\
.topology .stat{font-size:9.5px;fill:#3ddc97}\
.topology .edge{fill:none;stroke:#6b7899;stroke-width:1.2}\
.topology .edge.store{stroke:#f7d154;stroke-dasharray:3 3;opacity:.7}\
.topology .arrow{fill:#6b7899}";

/// The path of a link from box `a` to box `b`: down from `a`'s bottom to `b`'s top when
/// `b` is below, else sideways between their facing sides.
fn link_path(a: &Rect, b: &Rect) -> String {
    if b.y >= a.bottom() {
        let (x1, y1, x2, y2) = (a.cx(), a.bottom(), b.cx(), b.y);
        let dy = ((y2 - y1) / 2.0).max(12.0);
        format!(
            "M{x1:.1},{y1:.1} C{x1:.1},{:.1} {x2:.1},{:.1} {x2:.1},{y2:.1}",
            y1 + dy,
            y2 - dy
        )
    } else if a.bottom() <= b.y + b.h && b.x >= a.right() {
        side_path(a.right(), a.cy(), b.x, b.cy())
    } else if b.right() <= a.x {
        side_path(a.x, a.cy(), b.right(), b.cy())
    } else {
        // Above (a cycle, or a group placed higher): from the top to the bottom.
        let (x1, y1, x2, y2) = (a.cx(), a.y, b.cx(), b.bottom());
        format!(
            "M{x1:.1},{y1:.1} C{x1:.1},{:.1} {x2:.1},{:.1} {x2:.1},{y2:.1}",
            y1 - 30.0,
            y2 + 30.0
        )
    }
}

fn side_path(x1: f64, y1: f64, x2: f64, y2: f64) -> String {
    let dx = ((x2 - x1) / 2.0).abs().max(12.0) * if x2 >= x1 { 1.0 } else { -1.0 };
    format!(
        "M{x1:.1},{y1:.1} C{:.1},{y1:.1} {:.1},{y2:.1} {x2:.1},{y2:.1}",
        x1 + dx,
        x2 - dx
    )
}

/// The SVG of `g` laid out as `l`.
pub(crate) fn render_svg(g: &TopologyGraph, l: &Layout) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="topology" viewBox="0 0 {w:.0} {h:.0}" width="{w:.0}" height="{h:.0}" role="img" aria-label="The topology: {n} elements in {groups} groups">"#,
        w = l.width,
        h = l.height,
        n = g.elements.len(),
        groups = g.groups.len()
    );
    let _ = write!(
        out,
        r#"<defs><style>{STYLE}</style><marker id="topology-arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path class="arrow" d="M0,0 L8,4 L0,8 z"/></marker></defs>"#
    );
    for (group, frame) in g.groups.iter().zip(&l.frames) {
        let (attr, class) = match group.subtopology {
            Some(id) => (format!(r#" data-subtopology="{id}""#), "frame"),
            None => (String::new(), "frame global"),
        };
        let _ = write!(
            out,
            r#"<g class="group"{attr}><rect class="{class}" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="10"/><text class="group-title" x="{:.1}" y="{:.1}">{}</text><text class="group-stat stat" x="{:.1}" y="{:.1}" text-anchor="end"></text></g>"#,
            frame.x,
            frame.y,
            frame.w,
            frame.h,
            frame.x + PAD,
            frame.y + 17.0,
            xml(&group.title),
            frame.right() - PAD,
            frame.y + 17.0,
        );
    }
    out.push_str(r#"<g class="edges">"#);
    for link in &g.links {
        let (a, b) = (&l.boxes[link.from], &l.boxes[link.to]);
        let (class, marker) = match link.kind {
            LinkKind::Flow => ("edge flow", r#" marker-end="url(#topology-arrow)""#),
            LinkKind::Store => ("edge store", ""),
        };
        let _ = write!(
            out,
            r#"<path class="{class}" data-from="{}" data-to="{}" d="{}"{marker}/>"#,
            xml(&g.elements[link.from].id),
            xml(&g.elements[link.to].id),
            link_path(a, b)
        );
    }
    out.push_str("</g>");
    for (e, b) in g.elements.iter().zip(&l.boxes) {
        let (class, caption) = e.kind.class_and_caption(&e.name);
        let sub = g.groups[e.group]
            .subtopology
            .map(|id| format!(r#" data-subtopology="{id}""#))
            .unwrap_or_default();
        let _ = write!(
            out,
            r#"<g class="el {class}" data-id="{}" data-name="{}"{sub}><title>{} ({caption})</title>"#,
            xml(&e.id),
            xml(&e.name),
            xml(&e.name),
        );
        match e.kind {
            ElementKind::Store { .. } => {
                // A cylinder.
                let (x, y, w, h, ry) = (b.x, b.y, b.w, b.h, 4.0);
                let _ = write!(
                    out,
                    "<path class=\"shape\" d=\"M{x:.1},{:.1} A{:.1},{ry} 0 0 1 {:.1},{:.1} V{:.1} A{:.1},{ry} 0 0 1 {x:.1},{:.1} Z M{x:.1},{:.1} A{:.1},{ry} 0 0 0 {:.1},{:.1}\"/>",
                    y + ry,
                    w / 2.0,
                    x + w,
                    y + ry,
                    y + h - ry,
                    w / 2.0,
                    y + h - ry,
                    y + ry,
                    w / 2.0,
                    x + w,
                    y + ry,
                );
            }
            _ => {
                let rx = if matches!(e.kind, ElementKind::Topic { .. }) {
                    b.h / 2.0
                } else {
                    5.0
                };
                let _ = write!(
                    out,
                    r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="{rx:.1}"/>"#,
                    b.x, b.y, b.w, b.h
                );
            }
        }
        let lines = name_lines(&e.name);
        // Below a store's lid.
        let lid = if matches!(e.kind, ElementKind::Store { .. }) {
            3.0
        } else {
            0.0
        };
        let top = lid + if lines.len() == 1 { 19.0 } else { 15.0 };
        for (i, line) in lines.iter().enumerate() {
            let _ = write!(
                out,
                r#"<text class="label" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                b.cx(),
                b.y + top + i as f64 * 12.5,
                xml(line)
            );
        }
        let _ = write!(
            out,
            r#"<text class="caption" x="{:.1}" y="{:.1}">{caption}</text><text class="stat" x="{:.1}" y="{:.1}" text-anchor="end"></text></g>"#,
            b.x + 12.0,
            b.bottom() - 7.0,
            b.right() - 12.0,
            b.bottom() - 7.0,
        );
    }
    out.push_str("</svg>");
    out
}

/// The picture of `desc` (internal topics named with `application_id`).
pub(crate) fn topology_picture(desc: &TopologyDescription, application_id: &str) -> String {
    let g = TopologyGraph::from_description(desc, application_id);
    let l = Layout::of(&g);
    render_svg(&g, &l)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use streams_core::topology::{GlobalStoreDescription, NodeDescription, SubtopologyDescription};

    fn activity() -> TopologyDescription {
        super::super::topology(&ActivityConfig::default())
            .unwrap()
            .describe()
    }

    fn node(name: &str, kind: NodeType, successors: &[&str]) -> NodeDescription {
        NodeDescription {
            name: name.into(),
            kind,
            successors: successors.iter().map(|s| s.to_string()).collect(),
            predecessors: Vec::new(),
        }
    }

    /// A small topology: two sub-topologies linked by a repartition topic, a store each,
    /// a global store, a diamond.
    fn small() -> TopologyDescription {
        let src = |t: &str| NodeType::Source {
            topics: vec![t.to_string()],
        };
        let proc_ = |stores: &[&str]| NodeType::Processor {
            stores: stores.iter().map(|s| s.to_string()).collect(),
        };
        let sink = |t: &str| NodeType::Sink {
            topic: Some(t.to_string()),
        };
        TopologyDescription {
            subtopologies: vec![
                SubtopologyDescription {
                    id: 0,
                    nodes: vec![
                        node("in-source", src("in"), &["a", "b"]),
                        node("a", proc_(&["s1"]), &["c"]),
                        node("b", proc_(&["cat"]), &["c"]),
                        node("c", proc_(&[]), &["rp-sink"]),
                        node("rp-sink", sink("<application.id>-rp-repartition"), &[]),
                    ],
                },
                SubtopologyDescription {
                    id: 1,
                    nodes: vec![
                        node(
                            "rp-source",
                            src("<application.id>-rp-repartition"),
                            &["agg"],
                        ),
                        node("agg", proc_(&["s2"]), &["out-sink"]),
                        node("out-sink", sink("out"), &[]),
                    ],
                },
            ],
            global_stores: vec![GlobalStoreDescription {
                store: "cat".into(),
                topic: "catalogue".into(),
            }],
        }
    }

    /// The elements and links `desc` should give, computed plainly: (ids, links as id
    /// pairs).
    fn expected(desc: &TopologyDescription, app: &str) -> (Vec<String>, Vec<(String, String)>) {
        let resolve = |t: &str| t.replace("<application.id>", app);
        let mut ids = Vec::new();
        let mut links = Vec::new();
        for s in &desc.subtopologies {
            for n in &s.nodes {
                ids.push(format!("node:{}", n.name));
                for c in &n.successors {
                    links.push((format!("node:{}", n.name), format!("node:{c}")));
                }
                match &n.kind {
                    NodeType::Source { topics } => {
                        for t in topics {
                            ids.push(format!("topic:{}", resolve(t)));
                            links.push((
                                format!("topic:{}", resolve(t)),
                                format!("node:{}", n.name),
                            ));
                        }
                    }
                    NodeType::Sink { topic } => {
                        if let Some(t) = topic {
                            ids.push(format!("topic:{}", resolve(t)));
                            links.push((
                                format!("node:{}", n.name),
                                format!("topic:{}", resolve(t)),
                            ));
                        }
                    }
                    NodeType::Processor { stores } => {
                        for st in stores {
                            ids.push(format!("store:{st}"));
                            links.push((format!("node:{}", n.name), format!("store:{st}")));
                        }
                    }
                }
            }
        }
        for g in &desc.global_stores {
            ids.push(format!("store:{}", g.store));
            ids.push(format!("topic:{}", g.topic));
            links.push((format!("topic:{}", g.topic), format!("store:{}", g.store)));
        }
        ids.sort();
        ids.dedup();
        links.sort();
        (ids, links)
    }

    fn check(desc: &TopologyDescription) {
        let g = TopologyGraph::from_description(desc, "app");
        let l = Layout::of(&g);
        let (ids, links) = expected(desc, "app");
        let mut got: Vec<String> = g.elements.iter().map(|e| e.id.clone()).collect();
        got.sort();
        assert_eq!(got, ids, "one element per node, store and topic");
        let mut got_links: Vec<(String, String)> = g
            .links
            .iter()
            .map(|k| (g.elements[k.from].id.clone(), g.elements[k.to].id.clone()))
            .collect();
        got_links.sort();
        assert_eq!(got_links, links);

        // Every element placed, inside the picture and inside its group's frame.
        assert_eq!(l.boxes.len(), g.elements.len());
        let picture = Rect {
            x: 0.0,
            y: 0.0,
            w: l.width,
            h: l.height,
        };
        for (e, b) in g.elements.iter().zip(&l.boxes) {
            assert!(b.w > 0.0 && b.h > 0.0 && b.x.is_finite() && b.y.is_finite());
            assert!(picture.contains(b), "{} at {b:?} outside {picture:?}", e.id);
            assert!(l.frames[e.group].contains(b), "{} outside its frame", e.id);
        }
        // No two boxes overlap, nor two frames.
        for i in 0..l.boxes.len() {
            for j in i + 1..l.boxes.len() {
                assert!(
                    !l.boxes[i].overlaps(&l.boxes[j]),
                    "{} {:?} overlaps {} {:?}",
                    g.elements[i].id,
                    l.boxes[i],
                    g.elements[j].id,
                    l.boxes[j]
                );
            }
        }
        for i in 0..l.frames.len() {
            assert!(picture.contains(&l.frames[i]));
            for j in i + 1..l.frames.len() {
                assert!(!l.frames[i].overlaps(&l.frames[j]), "frames {i} and {j}");
            }
        }
        // Inside a group, links go down a row at least (the layers are longest paths).
        for k in &g.links {
            let (a, b) = (&l.boxes[k.from], &l.boxes[k.to]);
            if g.elements[k.from].group == g.elements[k.to].group {
                assert!(
                    b.y >= a.bottom(),
                    "{:?} -> {:?}",
                    g.elements[k.from],
                    g.elements[k.to]
                );
            }
        }

        // The SVG: a box per element, a path per link, each path from its start box to
        // its end box.
        let svg = render_svg(&g, &l);
        assert_eq!(svg.matches("<g class=\"el ").count(), g.elements.len());
        assert_eq!(svg.matches("<path class=\"edge ").count(), g.links.len());
        let by_id: HashMap<&str, &Rect> = g
            .elements
            .iter()
            .zip(&l.boxes)
            .map(|(e, b)| (e.id.as_str(), b))
            .collect();
        let mut paths = 0;
        for part in svg.split("<path class=\"edge ").skip(1) {
            let attr = |name: &str| -> String {
                let at = part.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                let len = part[at..].find('"').unwrap();
                part[at..at + len]
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&amp;", "&")
            };
            let (from, to, d) = (attr("data-from"), attr("data-to"), attr("d"));
            let numbers: Vec<f64> = d
                .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect();
            let (start, end) = (
                (numbers[0], numbers[1]),
                (numbers[numbers.len() - 2], numbers[numbers.len() - 1]),
            );
            let on = |r: &Rect, (x, y): (f64, f64)| {
                let near = |v: f64, lo: f64, hi: f64| v >= lo - 0.06 && v <= hi + 0.06;
                near(x, r.x, r.right())
                    && near(y, r.y, r.bottom())
                    && ((x - r.x).abs() < 0.06
                        || (x - r.right()).abs() < 0.06
                        || (y - r.y).abs() < 0.06
                        || (y - r.bottom()).abs() < 0.06)
            };
            assert!(
                on(by_id[from.as_str()], start),
                "{from} -> {to}: starts at {start:?}"
            );
            assert!(
                on(by_id[to.as_str()], end),
                "{from} -> {to}: ends at {end:?}"
            );
            paths += 1;
        }
        assert_eq!(paths, links.len());
    }

    #[test]
    fn a_small_topology_is_laid_out_without_overlaps() {
        let desc = small();
        check(&desc);
        let g = TopologyGraph::from_description(&desc, "app");
        let at = |id: &str| g.elements.iter().position(|e| e.id == id).unwrap();
        // The repartition topic is drawn with its reader, the global store with its topic.
        assert_eq!(g.elements[at("topic:app-rp-repartition")].group, 1);
        assert_eq!(g.elements[at("store:cat")].group, 2);
        assert_eq!(
            g.elements[at("store:cat")].kind,
            ElementKind::Store { global: true }
        );
        assert_eq!(
            g.elements[at("topic:app-rp-repartition")].kind,
            ElementKind::Topic { internal: true }
        );
        // Sub-topology 1 is read from sub-topology 0's output: its frame is below.
        let l = Layout::of(&g);
        assert!(l.frames[1].y >= l.frames[0].bottom());
        // Rows by longest path: in, in-source, (a, b), c, rp-sink.
        let row = |id: &str| l.boxes[at(id)].y;
        assert!(row("topic:in") < row("node:in-source"));
        assert_eq!(row("node:a"), row("node:b"));
        assert!(row("node:c") > row("node:a") && row("node:rp-sink") > row("node:c"));
        assert!(row("store:s1") > row("node:a"));
    }

    #[test]
    fn the_activity_topology_is_laid_out_without_overlaps() {
        let desc = activity();
        check(&desc);
        let g = TopologyGraph::from_description(&desc, APPLICATION_ID);
        assert_eq!(g.groups.len(), desc.subtopologies.len() + 1);
        let l = Layout::of(&g);
        assert!(
            l.width <= MAX_ROW_W + 2.0 * MARGIN + 1.0 || l.frames.iter().any(|f| f.w > MAX_ROW_W)
        );
    }

    #[test]
    fn cycles_are_broken_and_every_vertex_gets_a_layer() {
        // 0 -> 1 -> 2 -> 0, 2 -> 3; 4 alone; a self loop on 3.
        let layer = layers(5, &[(0, 1), (1, 2), (2, 0), (2, 3), (3, 3)]);
        assert_eq!(layer, vec![0, 1, 2, 3, 0]);
        // Longest path, not shortest: 0 -> 2 directly and through 1.
        assert_eq!(layers(3, &[(0, 2), (0, 1), (1, 2)]), vec![0, 1, 2]);
        assert!(layers(0, &[]).is_empty());
    }

    #[test]
    fn a_topology_in_a_cycle_through_topics_is_still_drawn() {
        // Sub-topology 0 writes what sub-topology 1 reads and the other way round.
        let desc = TopologyDescription {
            subtopologies: vec![
                SubtopologyDescription {
                    id: 0,
                    nodes: vec![
                        node(
                            "s0",
                            NodeType::Source {
                                topics: vec!["t0".into()],
                            },
                            &["k0"],
                        ),
                        node(
                            "k0",
                            NodeType::Sink {
                                topic: Some("t1".into()),
                            },
                            &[],
                        ),
                    ],
                },
                SubtopologyDescription {
                    id: 1,
                    nodes: vec![
                        node(
                            "s1",
                            NodeType::Source {
                                topics: vec!["t1".into()],
                            },
                            &["k1"],
                        ),
                        node(
                            "k1",
                            NodeType::Sink {
                                topic: Some("t0".into()),
                            },
                            &[],
                        ),
                    ],
                },
            ],
            global_stores: Vec::new(),
        };
        let g = TopologyGraph::from_description(&desc, "app");
        let l = Layout::of(&g);
        let svg = render_svg(&g, &l);
        assert_eq!(svg.matches("<g class=\"el ").count(), 6);
        for b in &l.boxes {
            for c in &l.boxes {
                assert!(std::ptr::eq(b, c) || !b.overlaps(c));
            }
        }
    }

    #[test]
    fn names_are_escaped_and_fit_two_lines() {
        assert_eq!(xml("<a & 'b'>\""), "&lt;a &amp; &#39;b&#39;&gt;&quot;");
        assert_eq!(name_lines("short"), vec!["short"]);
        let lines = name_lines("attributions-by-category-repartition-filter");
        assert_eq!(
            lines,
            vec!["attributions-by-category-", "repartition-filter"]
        );
        let long = name_lines(&"x".repeat(100));
        assert_eq!(long.len(), 2);
        assert!(
            long.iter().all(|l| l.chars().count() <= LINE_CHARS),
            "{long:?}"
        );
        assert!(long[1].contains('…'));
        // No raw `<` of a name reaches the SVG.
        let svg = topology_picture(&small(), "<app>");
        assert!(!svg.contains("<app>") && svg.contains("&lt;app&gt;-rp-repartition"));
    }
}
