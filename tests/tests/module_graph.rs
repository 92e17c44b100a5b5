//! The modules of the framework's crates import each other without cycles, and every
//! top-level module of `streams-core` and `streams-state` stays in the layer that
//! docs/ARCHITECTURE.md gives it (a module uses modules of its own layer or below).
//!
//! The graph is read from the sources: every `crate::…` path (in `use` items and in code)
//! and every `super::…` path names the module it reaches, down to the deepest module that
//! exists (a file, or a directory's `mod.rs`); names re-exported at the crate root are
//! followed to the module that defines them. Unit tests (`mod tests` at the end of a file,
//! or a `*_tests.rs` file) are left out. A module's own ancestors and descendants are not
//! edges (a `mod.rs` declares and re-exports its children; children implement it).
//!
//! A few directories are one node because their parts refer to each other by design; the
//! list is [`UNITS`] and docs/ARCHITECTURE.md says why.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Directories checked as one node: `(crate directory, module)`.
const UNITS: [(&str, &str); 3] = [
    // The task context holds the processor nodes, and every node is called with it.
    ("streams-core", "internals"),
    // The server's shared state holds each request handler's state, and every handler is
    // called with it.
    ("streams-state", "serve"),
    // One application: its web pages and their routes refer to each other.
    ("examples", "activity"),
];

/// The crates whose sources are checked.
const CRATES: [&str; 4] = [
    "streams-core",
    "streams-state",
    "streams-macros",
    "examples",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rs_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a source file (`log/partition.rs` → `log::partition`, `lib.rs` → ``),
/// with the crate's units collapsed; `None` for binaries and unit-test files.
fn module_of(krate: &str, rel: &Path) -> Option<String> {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .collect();
    if parts.first().is_some_and(|p| p == "bin") || parts.last().unwrap().ends_with("_tests") {
        return None;
    }
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    if let Some(first) = parts.first()
        && UNITS.iter().any(|(c, m)| *c == krate && m == first)
    {
        parts.truncate(1);
    }
    Some(parts.join("::"))
}

/// The source without comments and without the trailing unit-test module.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path `crate::a::b::…` in `code`, with `use` groups (`crate::a::{b, c::d}`)
/// expanded.
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while let Some(pos) = find_from(&bytes, i, "crate::") {
        let before_ok = pos == 0 || !is_ident(bytes[pos - 1]) && bytes[pos - 1] != ':';
        i = pos + "crate::".len();
        if !before_ok {
            continue;
        }
        let (paths, end) = parse_path(&bytes, i);
        out.extend(paths);
        i = end;
    }
    out
}

fn find_from(chars: &[char], from: usize, needle: &str) -> Option<usize> {
    let n: Vec<char> = needle.chars().collect();
    (from..chars.len().saturating_sub(n.len() - 1)).find(|&i| chars[i..i + n.len()] == n[..])
}

/// Parses a path after `crate::` at `i`: segments, then maybe a `{…}` group; returns the
/// full paths and where parsing stopped.
fn parse_path(chars: &[char], mut i: usize) -> (Vec<String>, usize) {
    let mut prefix = String::new();
    loop {
        let start = i;
        while i < chars.len() && is_ident(chars[i]) {
            i += 1;
        }
        let seg: String = chars[start..i].iter().collect();
        if i + 1 < chars.len() && chars[i] == ':' && chars[i + 1] == ':' {
            prefix.push_str(&seg);
            prefix.push_str("::");
            i += 2;
            if i < chars.len() && chars[i] == '{' {
                let (inner, end) = group(chars, i);
                let paths = split_group(&inner)
                    .into_iter()
                    .map(|p| {
                        let full = format!("{prefix}{p}");
                        full.trim_end_matches("::self").to_string()
                    })
                    .collect();
                return (paths, end);
            }
        } else {
            let full = format!("{prefix}{seg}");
            return (vec![full.trim_end_matches("::").to_string()], i);
        }
    }
}

/// The text inside the braces opening at `i`, and the index after the closing one.
fn group(chars: &[char], i: usize) -> (String, usize) {
    let mut depth = 0;
    for (j, c) in chars.iter().enumerate().skip(i) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return (chars[i + 1..j].iter().collect(), j + 1);
                }
            }
            _ => {}
        }
    }
    (chars[i + 1..].iter().collect(), chars.len())
}

/// The paths of a `use` group's items (nested groups expanded; `self` is the prefix).
fn split_group(inner: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in inner.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    items.push(cur);
    let mut out = Vec::new();
    for item in items {
        let item: String = item.split_whitespace().collect::<Vec<_>>().join(" ");
        let item = item.split(" as ").next().unwrap_or("").trim().to_string();
        if item.is_empty() {
            continue;
        }
        if let Some(b) = item.find('{') {
            let prefix = &item[..b];
            let (inner, _) = group(&item.chars().collect::<Vec<_>>(), b);
            out.extend(split_group(&inner).into_iter().map(|p| {
                format!("{prefix}{p}")
                    .trim_end_matches("::self")
                    .to_string()
            }));
        } else {
            out.push(item);
        }
    }
    out
}

/// One crate's module graph: module → (module it uses → the paths that use it).
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn graph(krate: &str) -> Graph {
    graph_of(krate, &root().join(krate).join("src"))
}

/// The module graph of the crate sources in `src` (`krate` names its units).
fn graph_of(krate: &str, src: &Path) -> Graph {
    let mut files = Vec::new();
    rs_files(src, &mut files);
    let mut code: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(src).unwrap();
        if let Some(m) = module_of(krate, rel) {
            let text = std::fs::read_to_string(f).unwrap();
            code.entry(m).or_default().push(code_of(&text));
        }
    }
    // Names the crate root re-exports (`pub use a::b::{C, D}`), by name.
    let lib = code.get("").map(|v| v[0].clone()).unwrap_or_default();
    let mut reexports: BTreeMap<String, String> = BTreeMap::new();
    for stmt in lib.split(';') {
        let stmt = stmt.trim();
        if let Some(rest) = stmt.strip_prefix("pub use ") {
            for p in crate_paths(&format!("crate::{}", rest.trim_start_matches("crate::"))) {
                if let Some(name) = p.rsplit("::").next() {
                    reexports.insert(name.to_string(), p.clone());
                }
            }
        }
    }
    let modules: BTreeSet<String> = code.keys().cloned().collect();
    let deepest = |path: &str| -> Option<String> {
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len())
            .rev()
            .map(|k| parts[..k].join("::"))
            .find(|c| modules.contains(c))
    };
    let related = |a: &str, b: &str| {
        a == b
            || b.is_empty()
            || a.starts_with(&format!("{b}::"))
            || b.starts_with(&format!("{a}::"))
    };
    let mut g = Graph::new();
    for (m, texts) in &code {
        let node = g.entry(m.clone()).or_default();
        if m.is_empty() {
            continue;
        }
        for text in texts {
            // `super` of `a::b` (a file `a/b.rs` or a directory's `a/b/mod.rs`) is `a`.
            let parent = match m.rsplit_once("::") {
                Some((p, _)) => format!("crate::{p}::"),
                None => "crate::".to_string(),
            };
            let text = text
                .replace("super::", &parent)
                .replace("crate::crate::", "crate::");
            for p in crate_paths(&text) {
                let mut target = deepest(&p);
                if target.is_none() {
                    let first = p.split("::").next().unwrap_or("");
                    target = reexports.get(first).and_then(|full| deepest(full));
                }
                let Some(target) = target else { continue };
                if related(m, &target) {
                    continue;
                }
                node.entry(target).or_default().insert(p);
            }
        }
    }
    g
}

/// The strongly connected components of more than one module (Tarjan).
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    struct State<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on.insert(v);
        for w in s.g[v].keys() {
            let w = w.as_str();
            if !s.g.contains_key(w) {
                continue;
            }
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn describe_cycle(g: &Graph, comp: &[String]) -> String {
    let mut out = format!("cycle among {comp:?}:\n");
    for a in comp {
        for (b, why) in &g[a] {
            if comp.contains(b) {
                out.push_str(&format!("  {a} -> {b} via {why:?}\n"));
            }
        }
    }
    out
}

#[test]
fn no_module_of_any_crate_is_part_of_an_import_cycle() {
    let mut found = String::new();
    for krate in CRATES {
        let g = graph(krate);
        for comp in cycles(&g) {
            found.push_str(&format!("{krate}: {}", describe_cycle(&g, &comp)));
        }
    }
    assert!(found.is_empty(), "module cycles:\n{found}");
}

/// The layer table of `krate` in docs/ARCHITECTURE.md: the fenced block after the line
/// `<!-- layers: <krate> -->`, one line per layer from the top, `N  module module …`.
fn layers(krate: &str) -> BTreeMap<String, u32> {
    let doc = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).unwrap();
    let marker = format!("<!-- layers: {krate} -->");
    let at = doc
        .find(&marker)
        .unwrap_or_else(|| panic!("docs/ARCHITECTURE.md has no `{marker}` table"));
    let block = doc[at..].split("```").nth(1).unwrap();
    let mut out = BTreeMap::new();
    for line in block.lines().skip(1) {
        let mut words = line.split_whitespace();
        let Some(level) = words.next().and_then(|w| w.parse::<u32>().ok()) else {
            continue;
        };
        for m in words {
            out.insert(m.to_string(), level);
        }
    }
    out
}

/// The entry of `layer` that `module` falls under: the longest one that is the module
/// or one of its ancestors.
fn layer_key<'a>(layer: &'a BTreeMap<String, u32>, module: &str) -> Option<&'a str> {
    layer
        .keys()
        .filter(|k| module == k.as_str() || module.starts_with(&format!("{k}::")))
        .max_by_key(|k| k.len())
        .map(String::as_str)
}

#[test]
fn every_module_uses_only_its_own_layer_or_those_below_as_architecture_md_says() {
    let mut wrong = Vec::new();
    for krate in ["streams-core", "streams-state"] {
        let layer = layers(krate);
        let g = graph(krate);
        for (a, uses) in &g {
            if a.is_empty() {
                continue;
            }
            let Some(ka) = layer_key(&layer, a) else {
                wrong.push(format!(
                    "{krate}: module `{a}` is in no layer of docs/ARCHITECTURE.md"
                ));
                continue;
            };
            let la = layer[ka];
            for (b, why) in uses {
                match layer_key(&layer, b) {
                    Some(kb) if kb == ka || layer[kb] <= la => {}
                    Some(kb) => wrong.push(format!(
                        "{krate}: `{a}` (layer {la}) uses `{b}` (layer {}) via {why:?}",
                        layer[kb]
                    )),
                    None => wrong.push(format!(
                        "{krate}: module `{b}` is in no layer of docs/ARCHITECTURE.md"
                    )),
                }
            }
        }
        for m in layer.keys() {
            if !g.contains_key(m) {
                wrong.push(format!(
                    "{krate}: docs/ARCHITECTURE.md lists `{m}`, which does not exist"
                ));
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_graph_reader_finds_grouped_nested_and_renamed_imports() {
    let code = "use crate::a::{b::{C, d::E}, F as G, self};\nfn x() { crate::h::i(); }";
    let mut paths = crate_paths(code);
    paths.sort();
    assert_eq!(paths, ["a", "a::F", "a::b::C", "a::b::d::E", "h::i"]);
    assert_eq!(
        code_of("a // crate::x\n#[cfg(test)]\nmod tests { crate::y }"),
        "a "
    );
}

#[test]
fn a_cycle_through_a_root_reexport_a_group_and_super_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("store")).unwrap();
    let files = [
        ("lib.rs", "mod store;\nmod cache;\npub use cache::Entry;\n"),
        (
            "cache.rs",
            "use crate::store::{kv::{Kv}};\npub struct Entry;\n",
        ),
        ("store/mod.rs", "pub mod kv;\npub mod leaf;\n"),
        // kv reaches cache through the root re-export; leaf through `super`.
        (
            "store/kv.rs",
            "pub trait Kv { fn f(&self) -> crate::Entry; }\nuse super::leaf::X;\n",
        ),
        (
            "store/leaf.rs",
            "pub struct X;\n#[cfg(test)]\nmod tests { use crate::cache::Entry; }\n",
        ),
    ];
    for (name, text) in files {
        std::fs::write(src.join(name), text).unwrap();
    }
    let g = graph_of("none", src);
    assert_eq!(
        cycles(&g),
        [vec!["cache".to_string(), "store::kv".to_string()]]
    );
    assert!(g["store::kv"].contains_key("store::leaf"));
    // A unit test's imports are not edges.
    assert!(g["store::leaf"].is_empty(), "{g:?}");
}
