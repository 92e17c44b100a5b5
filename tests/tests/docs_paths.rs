//! The repository cites nothing outside itself: no absolute path of a developer's machine
//! and no file of the workplace beside the clone, in docs, sources or scripts (a reader of
//! a clone has neither). Commands in docs are given relative to the repository root.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

/// What must not appear: machine paths, and the workplace's shared folder.
const FORBIDDEN: [&str; 5] = [
    "/work/",
    "/root/",
    "/home/",
    "shared/reference",
    "shared/bench",
];

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with('.') && name != ".ci" || name == "target" {
            continue;
        }
        if path.is_dir() {
            files(&path, out);
        } else if ["md", "rs", "sh", "toml", "html", "js", "css"]
            .iter()
            .any(|ext| name.ends_with(&format!(".{ext}")))
            || name == "run"
        {
            out.push(path);
        }
    }
}

#[test]
fn docs_and_sources_cite_nothing_outside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut all = Vec::new();
    files(root, &mut all);
    assert!(
        all.len() > 50,
        "found only {} files under {root:?}",
        all.len()
    );
    let this = Path::new(file!()).file_name().unwrap();
    let mut found = Vec::new();
    for path in all {
        if path.file_name() == Some(this) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            for f in FORBIDDEN {
                if line.contains(f) {
                    found.push(format!(
                        "{}:{}: `{f}` in {}",
                        path.strip_prefix(root).unwrap().display(),
                        i + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}
