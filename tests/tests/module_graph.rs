//! The modules of the framework's crates import each other without cycles, and every
//! top-level module of `streams-core` and `streams-state` stays in the layer that
//! docs/ARCHITECTURE.md gives it (a module uses modules of its own layer or below).
//!
//! The graph is read from the sources: every `crate::…` path (in `use` items and in code)
//! and every `super::…` path names the module it reaches, down to the deepest module that
//! exists (a file, or a directory's `mod.rs`); names a module imports or re-exports
//! (`use`, `pub use`, globs) are followed to the module that defines them, and a sibling
//! named through `use super::*` (`sibling::Item`) counts too. Unit tests (`mod tests { … }`
//! at the end of a file, a `tests.rs` or `*_tests.rs` file) are left out. A module's own
//! ancestors and descendants are not edges (a `mod.rs` declares and re-exports its
//! children; children implement it).
//!
//! A few groups of modules are one node because they refer to each other by design; the
//! list is [`UNITS`] and docs/ARCHITECTURE.md says why.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules checked as one node: `(crate directory, the modules, the node's name)`. A
/// module is in a unit when it is one of the unit's modules or inside one.
const UNITS: [(&str, &[&str], &str); 4] = [
    // The DSL's types return each other, as Kafka Streams' do: a stream groups into a grouped
    // stream, which aggregates into a table, which becomes a stream again; the builder
    // makes the first stream.
    (
        "streams-core",
        &[
            "dsl::builder",
            "dsl::kstream",
            "dsl::ktable",
            "dsl::grouped",
            "dsl::cogroup",
        ],
        "dsl::{builder,kstream,ktable,grouped,cogroup}",
    ),
    // The task context holds the processor nodes (sources included), and every node is
    // called with the context.
    (
        "streams-core",
        &["internals::context", "internals::node", "internals::source"],
        "internals::{context,node,source}",
    ),
    // The server's shared state holds each request handler's state, and every handler is
    // called with it.
    ("streams-state", &["serve"], "serve"),
    // One application: its web pages and their routes refer to each other.
    ("examples", &["activity"], "activity"),
];

/// The node a module belongs to: its unit's name, or its own path.
fn node_of(krate: &str, module: &str) -> String {
    UNITS
        .iter()
        .filter(|(c, _, _)| *c == krate)
        .find(|(_, members, _)| {
            members
                .iter()
                .any(|m| module == *m || module.starts_with(&format!("{m}::")))
        })
        .map_or_else(|| module.to_string(), |(_, _, name)| name.to_string())
}

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

/// The module path of a source file (`log/partition.rs` → `log::partition`, `lib.rs` → ``);
/// `None` for binaries and unit-test files (`tests.rs`, `*_tests.rs`).
fn module_of(rel: &Path) -> Option<String> {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .collect();
    let last = parts.last().unwrap();
    if parts.first().is_some_and(|p| p == "bin") || last == "tests" || last.ends_with("_tests") {
        return None;
    }
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    Some(parts.join("::"))
}

/// The source without comments and without the trailing inline unit-test module.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
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
    if i < chars.len() && chars[i] == '{' {
        // `crate::{a::B, C}`: a group at the root.
        let (inner, end) = group(chars, i);
        return (split_group(&inner), end);
    }
    loop {
        let start = i;
        if i < chars.len() && chars[i] == '*' {
            i += 1; // a glob
        }
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

/// The `use` statements of `code` (any visibility), each as the paths it imports, relative
/// paths made absolute from `module` (`self::`, `super::`, a child module's name).
fn imports(code: &str, module: &str, modules: &BTreeSet<String>) -> Vec<String> {
    let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
    let mut out = Vec::new();
    for stmt in code.split(';') {
        // The statement starts at a line `use …` or `pub… use …` (attributes before it).
        let Some(start) = stmt.lines().position(|l| {
            let l = l.trim_start();
            l.starts_with("use ")
                || l.starts_with("pub ") && l.contains(" use ")
                || l.starts_with("pub(") && l.contains(") use ")
        }) else {
            continue;
        };
        let line = stmt.lines().nth(start).unwrap_or("");
        let from = stmt.find(line).unwrap_or(0) + line.find("use ").unwrap_or(0);
        let body = stmt[from + 4..].trim();
        let chars: Vec<char> = format!("{body} ").chars().collect();
        for p in parse_path(&chars, 0).0 {
            let abs = if let Some(rest) = p.strip_prefix("crate::") {
                rest.to_string()
            } else if let Some(rest) = p.strip_prefix("super::") {
                join(parent, rest)
            } else if let Some(rest) = p.strip_prefix("self::") {
                join(module, rest)
            } else {
                let first = p.split("::").next().unwrap_or("");
                let child = join(module, first);
                if modules.contains(&child) {
                    join(module, &p)
                } else {
                    continue; // another crate
                }
            };
            out.push(abs);
        }
    }
    out
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else if b.is_empty() {
        a.to_string()
    } else {
        format!("{a}::{b}")
    }
}

/// The module graph of the crate sources in `src` (`krate` names its units).
fn graph_of(krate: &str, src: &Path) -> Graph {
    let mut files = Vec::new();
    rs_files(src, &mut files);
    let mut code: BTreeMap<String, String> = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(src).unwrap();
        if let Some(m) = module_of(rel) {
            let text = std::fs::read_to_string(f).unwrap();
            code.insert(m, code_of(&text));
        }
    }
    let modules: BTreeSet<String> = code.keys().cloned().collect();
    // What each module brings into its namespace: names by their target path, and the
    // modules it glob-imports.
    let mut names: BTreeMap<&str, BTreeMap<String, String>> = BTreeMap::new();
    let mut globs: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (m, text) in &code {
        for p in imports(text, m, &modules) {
            match p.strip_suffix("::*") {
                Some(g) => globs.entry(m).or_default().push(g.to_string()),
                None => {
                    let name = p.rsplit("::").next().unwrap_or("").to_string();
                    names.entry(m).or_default().insert(name, p);
                }
            }
        }
    }
    let deepest = |path: &str| -> String {
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len())
            .rev()
            .map(|k| parts[..k].join("::"))
            .find(|c| modules.contains(c))
            .unwrap_or_default()
    };
    let defines = |m: &str, name: &str| {
        code.get(m).is_some_and(|t| {
            [
                "struct",
                "enum",
                "trait",
                "fn",
                "type",
                "const",
                "static",
                "mod",
                "macro_rules!",
            ]
            .iter()
            .any(|kw| {
                let needle = format!("{kw} {name}");
                t.match_indices(&needle)
                    .any(|(i, _)| !t[i + needle.len()..].starts_with(|c: char| is_ident(c)))
            })
        })
    };
    // The module that defines what `path` names, following imports and globs.
    let resolve = |path: &str| -> String {
        let mut path = path.to_string();
        for _ in 0..16 {
            let d = deepest(&path);
            let rest = path
                .strip_prefix(&d)
                .unwrap_or(&path)
                .trim_start_matches("::");
            let Some(first) = rest.split("::").next().filter(|f| !f.is_empty()) else {
                return d;
            };
            let tail = rest.strip_prefix(first).unwrap_or("").to_string();
            if let Some(target) = names.get(d.as_str()).and_then(|n| n.get(first)) {
                path = format!("{target}{tail}");
                continue;
            }
            if defines(&d, first) {
                return d;
            }
            match globs.get(d.as_str()).and_then(|gs| {
                gs.iter().find(|g| {
                    defines(g, first)
                        || names.get(g.as_str()).is_some_and(|n| n.contains_key(first))
                })
            }) {
                Some(g) => path = format!("{g}::{first}{tail}"),
                None => return d,
            }
        }
        deepest(&path)
    };
    let mut g = Graph::new();
    for (m, text) in &code {
        let node = node_of(krate, m);
        g.entry(node.clone()).or_default();
        if m.is_empty() {
            continue;
        }
        // `super` of `a::b` (a file `a/b.rs` or a directory's `a/b/mod.rs`) is `a`.
        let parent = m.rsplit_once("::").map_or("", |(p, _)| p);
        let grandparent = parent.rsplit_once("::").map_or("", |(p, _)| p);
        let prefix = |path: &str| {
            if path.is_empty() {
                "crate::".to_string()
            } else {
                format!("crate::{path}::")
            }
        };
        let text = text
            .replace("super::super::", &prefix(grandparent))
            .replace("super::", &prefix(parent));
        let mut paths = crate_paths(&text);
        // A sibling reached through `use super::*` (`sibling::Item`).
        let chars: Vec<char> = text.chars().collect();
        for sibling in modules.iter().filter(|s| {
            s.rsplit_once("::").map_or("", |(p, _)| p) == parent && *s != m && !s.is_empty()
        }) {
            let name = sibling.rsplit("::").next().unwrap_or(sibling);
            let needle = format!("{name}::");
            let mut i = 0;
            while let Some(pos) = find_from(&chars, i, &needle) {
                i = pos + needle.len();
                if pos > 0 && (is_ident(chars[pos - 1]) || chars[pos - 1] == ':') {
                    continue;
                }
                paths.push(sibling.clone());
            }
        }
        for p in paths {
            let target = resolve(&p);
            let target_node = node_of(krate, &target);
            if target.is_empty() || related(m, &target) || target_node == node {
                continue;
            }
            g.get_mut(&node)
                .unwrap()
                .entry(target_node)
                .or_default()
                .insert(p);
        }
    }
    g
}

/// Whether `a` and `b` are the same module, or one is inside the other.
fn related(a: &str, b: &str) -> bool {
    a == b || a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"))
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
    let code = "use crate::a::{b::{C, d::E}, F as G, self};\nfn x() { crate::h::i(); }\n\
                use crate::{j::K, L};\nuse crate::m::*;";
    let mut paths = crate_paths(code);
    paths.sort();
    assert_eq!(
        paths,
        [
            "L",
            "a",
            "a::F",
            "a::b::C",
            "a::b::d::E",
            "h::i",
            "j::K",
            "m::*"
        ]
    );
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

#[test]
fn a_cycle_through_a_glob_reexport_and_a_sibling_seen_through_super_glob_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("rt/thread")).unwrap();
    let files = [
        ("lib.rs", "mod rt;\n"),
        // rt brings `Instance` into its namespace through a glob of its child `instance`.
        (
            "rt/mod.rs",
            "mod instance;\nmod thread;\nuse instance::*;\n",
        ),
        // instance reaches its sibling `thread` through `use super::*`.
        (
            "rt/instance.rs",
            "use super::*;\npub struct Instance;\nfn f() { thread::Thread::new(); }\n",
        ),
        // thread names `Instance` by the path `rt` re-exports it under.
        (
            "rt/thread/mod.rs",
            "use crate::rt::Instance;\npub struct Thread;\n#[cfg(test)]\nmod tests;\nfn g() {}\n",
        ),
    ];
    for (name, text) in files {
        std::fs::write(src.join(name), text).unwrap();
    }
    let g = graph_of("none", src);
    assert_eq!(
        cycles(&g),
        [vec!["rt::instance".to_string(), "rt::thread".to_string()]],
        "{g:?}"
    );
}
