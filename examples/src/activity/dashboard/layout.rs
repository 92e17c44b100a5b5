//! Where the elements of a [`TopologyGraph`] go: a small layered layout. Every element of
//! a group is put in a row by the longest path from the group's roots, rows are ordered to
//! keep links short (barycenters), and the groups themselves are placed in rows by the
//! longest path through the topics that link them, so that records flow down the picture.

use std::collections::HashMap;

use super::graph::{LinkKind, TopologyGraph};

/// A box's width.
const BOX_W: f64 = 180.0;
/// A box's height: two lines of name and one of caption.
const BOX_H: f64 = 46.0;
/// The space between two boxes of a row.
const H_GAP: f64 = 16.0;
/// The space between two rows (room for the arrows).
const V_GAP: f64 = 30.0;
/// The padding inside a frame.
pub(super) const PAD: f64 = 12.0;
/// The frame's title line.
const TITLE_H: f64 = 24.0;
/// The space between two frames of a row.
const GROUP_H_GAP: f64 = 28.0;
/// The space between two rows of frames.
const GROUP_V_GAP: f64 = 44.0;
/// The margin around the picture.
pub(super) const MARGIN: f64 = 12.0;
/// Frames go on the next row past this width (unless a frame alone is wider).
pub(super) const MAX_ROW_W: f64 = 1700.0;

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

    pub(super) fn cx(&self) -> f64 {
        self.x + self.w / 2.0
    }

    pub(super) fn cy(&self) -> f64 {
        self.y + self.h / 2.0
    }

    pub(super) fn bottom(&self) -> f64 {
        self.y + self.h
    }

    pub(super) fn right(&self) -> f64 {
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
