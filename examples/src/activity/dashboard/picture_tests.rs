//! Tests of the topology picture: the graph of a description, its layout (no overlaps,
//! links going down) and its SVG (a box per element, a path per link from box to box).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use streams_core::topology::{
    GlobalStoreDescription, NodeDescription, NodeType, SubtopologyDescription, TopologyDescription,
};

use super::graph::{ElementKind, TopologyGraph};
use super::layout::{Layout, MARGIN, MAX_ROW_W, Rect, layers};
use super::svg::{LINE_CHARS, name_lines, render_svg, topology_picture, xml};
use crate::activity::{APPLICATION_ID, ActivityConfig};

fn activity() -> TopologyDescription {
    crate::activity::topology(&ActivityConfig::default())
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
                        links.push((format!("topic:{}", resolve(t)), format!("node:{}", n.name)));
                    }
                }
                NodeType::Sink { topic } => {
                    if let Some(t) = topic {
                        ids.push(format!("topic:{}", resolve(t)));
                        links.push((format!("node:{}", n.name), format!("topic:{}", resolve(t))));
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
    assert!(l.width <= MAX_ROW_W + 2.0 * MARGIN + 1.0 || l.frames.iter().any(|f| f.w > MAX_ROW_W));
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
