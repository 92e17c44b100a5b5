//! The `streams` command-line tool against its documentation: every command line of the
//! ```sh blocks of docs/CLI.md runs (in order, with the documented stdin) on a temporary data
//! directory, and the data directory's environment fallback and the shell completions work.
#![allow(clippy::unwrap_used)]

mod common;

use common::run;
use std::collections::BTreeSet;
use std::path::Path;

use streams_state::{LogEngine, TopicConfig};

/// A documented command line: its words after `streams`, and what the shell feeds its stdin.
#[derive(Debug)]
struct Documented {
    args: Vec<String>,
    stdin: String,
}

/// `printf`'s escapes used in the docs.
fn unescape(format: &str) -> String {
    format.replace("\\t", "\t").replace("\\n", "\n")
}

/// The `streams ...` lines of the ```sh blocks, with the stdin of a `printf '...' |` before
/// them or of a `<<'END'` here-document after them; redirections and comments cut.
fn documented(doc: &str) -> Vec<Documented> {
    let mut found = Vec::new();
    let mut lines = doc.lines();
    let mut in_block = false;
    while let Some(line) = lines.next() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if !in_block || line.trim_start().starts_with('#') {
            continue;
        }
        let line = line.split(" #").next().unwrap();
        let (piped, command) = match line.rsplit_once('|') {
            Some((before, command)) => (Some(before), command),
            None => (None, line),
        };
        let (command, heredoc) = match command.split_once("<<") {
            Some((command, marker)) => (command, Some(marker.trim().trim_matches('\''))),
            None => (command, None),
        };
        let command = command.split(" > ").next().unwrap().trim();
        let Some(args) = command.strip_prefix("streams ") else {
            continue;
        };
        let stdin = match (piped, heredoc) {
            (Some(before), _) => {
                let format = before.trim().strip_prefix("printf '").unwrap();
                unescape(format.strip_suffix('\'').unwrap())
            }
            (None, Some(marker)) => {
                let mut body = String::new();
                for l in lines.by_ref().take_while(|l| *l != marker) {
                    body.push_str(l);
                    body.push('\n');
                }
                body
            }
            (None, None) => String::new(),
        };
        found.push(Documented {
            args: args.split_whitespace().map(str::to_string).collect(),
            stdin,
        });
    }
    found
}

/// Kafka's `Utils.murmur2` (the default partitioner's hash), written here from the Java
/// source independently of the crate's `partition_for_key`.
fn murmur2(key: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ key.len() as u32;
    let chunks = key.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The partition Kafka's default partitioner picks for a key.
fn kafka_partition(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// (partition, key, value) of each line `streams consume` printed.
fn consumed(stdout: &str) -> Vec<(u32, String, String)> {
    stdout
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 5, "{l}");
            let partition = f[0].strip_prefix("Partition:").unwrap().parse().unwrap();
            (partition, f[3].to_string(), f[4].to_string())
        })
        .collect()
}

fn lines(s: &str) -> BTreeSet<&str> {
    s.lines().collect()
}

#[test]
fn murmur2_matches_kafkas_reference_values() {
    // The values of Kafka's UtilsTest.testMurmur2 (Java ints).
    for (key, expected) in [
        ("21", -973_932_308),
        ("foobar", -790_332_482),
        ("a-little-bit-long-string", -985_981_536),
        ("a-little-bit-longer-string", -1_486_304_829),
        (
            "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58_897_971,
        ),
        ("abc", 479_470_107),
    ] {
        assert_eq!(murmur2(key.as_bytes()) as i32, expected, "{key}");
    }
    for key in ["", "a", "alice", "bob", "page-views", "user-123"] {
        for partitions in [1, 3, 4, 7] {
            assert_eq!(
                kafka_partition(key.as_bytes(), partitions),
                streams_state::partition_for_key(key.as_bytes(), partitions),
                "{key} over {partitions}"
            );
        }
    }
}

#[test]
fn every_documented_command_runs_on_a_temporary_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    // What docs/CLI.md assumes an app left behind: its output topic and its group.
    {
        let engine = LogEngine::open(&dir).unwrap();
        engine
            .create_topic("word-counts", TopicConfig::new(1))
            .unwrap();
        engine
            .commit_offsets("wordcount", &[("word-counts", 0, 0)])
            .unwrap();
    }
    let commands = documented(include_str!("../../docs/CLI.md"));
    let mut checked = BTreeSet::new();
    let mut everything: Vec<(u32, String, String)> = Vec::new();
    for Documented { args, stdin } in &commands {
        let line = args.join(" ");
        // `serve` runs until interrupted; the `cargo run` line names another directory.
        if args[0] == "serve" || line.contains("/tmp/log") {
            continue;
        }
        let words: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(&words, stdin, Some(&dir));
        assert_eq!(out.code, 0, "streams {line}: {}", out.stderr);
        let stdout = out.stdout.as_str();
        let known = match line.as_str() {
            "topics create page-views --partitions 4" => {
                assert_eq!(stdout, "Created topic page-views\n");
                true
            }
            "topics list" => {
                assert_eq!(
                    lines(stdout),
                    lines("clicks\npage-views\nusers\nword-counts")
                );
                true
            }
            "topics describe page-views" => {
                assert!(
                    stdout.starts_with("Topic: page-views\tPartitions: 4\tConfigs: "),
                    "{stdout}"
                );
                assert_eq!(stdout.lines().count(), 5, "{stdout}");
                true
            }
            "topics delete clicks" => {
                assert_eq!(stdout, "Deleted topic clicks\n");
                true
            }
            "produce page-views" => {
                assert_eq!(stdin, "alice\tclicked\nbob\tviewed\nno key at all\n");
                assert_eq!(stdout, "Produced 3 records to page-views\n");
                true
            }
            "produce users --separator : --null-value NULL" => {
                assert_eq!(stdin, "alice:{\"plan\":\"pro\"}\nbob:NULL\n");
                assert_eq!(stdout, "Produced 2 records to users\n");
                true
            }
            "consume page-views --from-beginning" => {
                everything = consumed(stdout);
                let pairs: BTreeSet<(&str, &str)> = everything
                    .iter()
                    .map(|(_, k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let expected: BTreeSet<(&str, &str)> = [
                    ("alice", "clicked"),
                    ("bob", "viewed"),
                    ("null", "no key at all"),
                ]
                .into();
                assert_eq!(pairs, expected);
                for (p, k, _) in everything.iter().filter(|r| r.1 != "null") {
                    assert_eq!(*p, kafka_partition(k.as_bytes(), 4), "{k}");
                }
                true
            }
            "consume page-views --group audit --max-messages 10" => {
                // No committed offset and no --from-beginning: starts at the end.
                assert_eq!(stdout, "");
                true
            }
            "consume page-views --from-beginning --partition 2" => {
                let expected: Vec<_> = everything.iter().filter(|r| r.0 == 2).cloned().collect();
                assert_eq!(consumed(stdout), expected);
                true
            }
            "transactions list" => {
                assert_eq!(stdout, "");
                true
            }
            "topics describe word-counts" => {
                assert!(
                    stdout.starts_with("Topic: word-counts\tPartitions: 1\t"),
                    "{stdout}"
                );
                true
            }
            "verify" => {
                assert_eq!((stdout, out.stderr.as_str()), ("", "no damage found\n"));
                true
            }
            "repair" => {
                assert_eq!(out.stderr, "repaired 0 damaged range(s)\n");
                true
            }
            "groups list" => {
                assert_eq!(lines(stdout), lines("audit\nwordcount"));
                true
            }
            "groups describe wordcount" => {
                let rows: Vec<Vec<&str>> = stdout
                    .lines()
                    .map(|l| l.split_whitespace().collect())
                    .collect();
                assert_eq!(rows[1], ["wordcount", "word-counts", "0", "0", "0", "0"]);
                true
            }
            "app-reset --application-id wordcount --input-topics page-views,users" => {
                for tp in ["page-views-0", "page-views-3", "users-0"] {
                    assert!(
                        stdout.contains(&format!("Reset offset of group wordcount for {tp} to 0")),
                        "{stdout}"
                    );
                }
                true
            }
            "--help" | "topics create --help" => {
                assert!(stdout.contains("usage: streams"), "{stdout}");
                true
            }
            _ if args[0] == "completions" => {
                assert!(stdout.contains("app-reset"), "{line}: {stdout}");
                true
            }
            _ => false,
        };
        if known {
            checked.insert(line);
        }
    }
    // Every example above was found in the docs and run (so none of them passed vacuously).
    assert_eq!(checked.len(), 21, "{checked:?}");
}

#[test]
fn the_data_directory_falls_back_to_streams_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let from_env = tmp.path().join("env");
    let from_flag = tmp.path().join("flag");
    let out = run(&["topics", "create", "a"], "", Some(&from_env));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(from_env.is_dir(), "created where STREAMS_DATA_DIR points");
    assert_eq!(run(&["topics", "list"], "", Some(&from_env)).stdout, "a\n");
    // --data-dir wins over the environment, wherever it is on the command line.
    let flag = from_flag.to_str().unwrap();
    let out = run(
        &["topics", "create", "b", "--data-dir", flag],
        "",
        Some(&from_env),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(run(&["topics", "list"], "", Some(&from_env)).stdout, "a\n");
    let out = run(&[&format!("--data-dir={flag}"), "topics", "list"], "", None);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "b\n"),
        "{}",
        out.stderr
    );
    // An empty variable counts as unset.
    let out = run(&["topics", "list"], "", Some(Path::new("")));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .starts_with("error: no data directory: pass --data-dir DIR or set STREAMS_DATA_DIR"),
        "{}",
        out.stderr
    );
}

#[test]
fn completions_are_generated_for_every_shell_without_a_data_directory() {
    for (shell, marker) in [
        ("bash", "complete -F _streams"),
        ("zsh", "#compdef streams"),
        ("fish", "complete -c streams"),
        ("elvish", "edit:completion:arg-completer[streams]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = run(&["completions", shell], "", None);
        assert_eq!(out.code, 0, "{shell}: {}", out.stderr);
        // Fish names long options without their dashes (`-l data-dir`).
        for word in [marker, "app-reset", "data-dir", "from-beginning"] {
            assert!(out.stdout.contains(word), "{shell} lacks {word}");
        }
    }
    let out = run(&["completions", "tcsh"], "", None);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("[possible values: bash, elvish, fish, powershell, zsh]"),
        "{}",
        out.stderr
    );
}

#[test]
fn every_command_has_its_own_help() {
    for (args, about) in [
        (&["topics", "create", "--help"][..], "Creates a topic"),
        (&["produce", "--help"], "Reads records from stdin"),
        (&["consume", "-h"], "Prints the records of a topic"),
        (&["verify", "--help"], "torn tail"),
        (&["repair", "--help"], "<file>.damaged"),
        (&["transactions", "list", "--help"], "transactional id"),
        (&["groups", "describe", "--help"], "lag"),
        (&["app-reset", "--help"], "internal topics"),
        (&["serve", "--help"], "127.0.0.1:9092"),
        (&["help", "completions"], "shell completion script"),
    ] {
        let out = run(args, "", None);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        assert!(out.stdout.contains(about), "{args:?}: {}", out.stdout);
        assert!(out.stdout.contains("usage: streams"), "{args:?}");
    }
}
