//! The picture as SVG text, its style inline: a frame per group, a box per element (a
//! cylinder per store), an arrow per link, and empty `stat` texts the dashboard's script
//! fills in.

use std::fmt::Write as _;

use streams_core::topology::TopologyDescription;

use super::graph::{ElementKind, LinkKind, TopologyGraph};
use super::layout::{Layout, PAD, Rect};

/// `s` escaped for XML text and attribute values.
pub(super) fn xml(s: &str) -> String {
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

/// The characters of a name that fit on one line of a box.
pub(super) const LINE_CHARS: usize = 26;

/// A name on at most two lines of [`LINE_CHARS`], broken after `-` where possible; the
/// rest of a longer name is cut in the middle of the second line (`…`).
pub(super) fn name_lines(name: &str) -> Vec<String> {
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
