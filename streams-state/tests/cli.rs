//! The `streams` command-line tool, run as a process on a temporary data directory.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Out, run as raw};
use std::path::Path;

use streams_state::{LogEngine, partition_for_key};

/// Runs `streams --data-dir <dir> <args>` with `stdin`.
fn streams(dir: &Path, args: &[&str], stdin: &str) -> Out {
    let mut all = vec!["--data-dir", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    raw(&all, stdin, None)
}

/// Runs a command that must succeed; returns its stdout.
fn ok(dir: &Path, args: &[&str], stdin: &str) -> String {
    let out = streams(dir, args, stdin);
    assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
    out.stdout
}

/// Runs a command that must fail with `code`; returns its stderr.
fn fails(dir: &Path, args: &[&str], code: i32) -> String {
    let out = streams(dir, args, "");
    assert_eq!(out.code, code, "{args:?}: {} {}", out.stdout, out.stderr);
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    out.stderr
}

/// A consumed record: (partition, offset, key, value).
type Consumed = (u32, i64, String, String);

fn parse_consumed(stdout: &str) -> Vec<Consumed> {
    stdout
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 5, "{l}");
            assert!(
                f[2].strip_prefix("Timestamp:")
                    .unwrap()
                    .parse::<i64>()
                    .is_ok()
            );
            (
                f[0].strip_prefix("Partition:").unwrap().parse().unwrap(),
                f[1].strip_prefix("Offset:").unwrap().parse().unwrap(),
                f[3].to_string(),
                f[4].to_string(),
            )
        })
        .collect()
}

#[test]
fn topics_create_list_describe_and_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    assert!(
        ok(
            &dir,
            &["topics", "create", "orders", "--partitions", "3"],
            ""
        )
        .contains("orders")
    );
    ok(
        &dir,
        &[
            "topics",
            "create",
            "users",
            "--compact",
            "--retention-ms=60000",
            "--delete-retention-ms",
            "10",
        ],
        "",
    );
    assert_eq!(ok(&dir, &["topics", "list"], ""), "orders\nusers\n");
    let d = ok(&dir, &["topics", "describe", "users"], "");
    assert!(d.starts_with("Topic: users\tPartitions: 1\t"), "{d}");
    assert!(d.contains("cleanup.policy=compact"), "{d}");
    assert!(d.contains("retention.ms=60000"), "{d}");
    assert!(d.contains("delete.retention.ms=10"), "{d}");
    let d = ok(&dir, &["topics", "describe", "orders"], "");
    assert!(d.contains("cleanup.policy=delete,retention.ms=-1"), "{d}");
    let partitions: Vec<&str> = d.lines().skip(1).collect();
    assert_eq!(partitions.len(), 3, "{d}");
    assert!(partitions[2].contains("Partition: 2\tStartOffset: 0\tEndOffset: 0"));
    assert!(fails(&dir, &["topics", "create", "orders"], 1).contains("already exists"));
    ok(&dir, &["topics", "delete", "orders"], "");
    assert_eq!(ok(&dir, &["topics", "list"], ""), "users\n");
    assert!(fails(&dir, &["topics", "describe", "orders"], 1).contains("`orders` does not exist"));
    assert!(fails(&dir, &["topics", "delete", "orders"], 1).contains("does not exist"));
}

#[test]
fn produce_partitions_like_kafka_and_consume_prints_every_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(
        dir,
        &["topics", "create", "events", "--partitions", "4"],
        "",
    );
    let keys: Vec<String> = (0..40).map(|i| format!("user-{i}")).collect();
    let mut input: String = keys
        .iter()
        .map(|k| format!("{k}\tvalue of {k}\n"))
        .collect();
    input.push_str("no key here\n");
    assert!(ok(dir, &["produce", "events"], &input).contains("Produced 41 records"));
    // Without --from-beginning (and no group) a consumer starts at the end.
    assert_eq!(ok(dir, &["consume", "events"], ""), "");
    let all = parse_consumed(&ok(dir, &["consume", "events", "--from-beginning"], ""));
    assert_eq!(all.len(), 41);
    for k in &keys {
        let (p, _, _, v) = all.iter().find(|r| &r.2 == k).unwrap();
        assert_eq!(*p, partition_for_key(k.as_bytes(), 4), "{k}");
        assert_eq!(v, &format!("value of {k}"));
    }
    assert!(all.iter().any(|r| r.2 == "null" && r.3 == "no key here"));
    // Per partition, offsets run from 0 without gaps.
    for p in 0..4 {
        let offsets: Vec<i64> = all.iter().filter(|r| r.0 == p).map(|r| r.1).collect();
        assert_eq!(offsets, (0..offsets.len() as i64).collect::<Vec<_>>());
    }
    let one = parse_consumed(&ok(
        dir,
        &["consume", "events", "--from-beginning", "--partition", "2"],
        "",
    ));
    assert!(!one.is_empty() && one.iter().all(|r| r.0 == 2));
    assert_eq!(one.len(), all.iter().filter(|r| r.0 == 2).count());
    let limited = ok(
        dir,
        &[
            "consume",
            "events",
            "--from-beginning",
            "--max-messages",
            "5",
        ],
        "",
    );
    assert_eq!(limited.lines().count(), 5);
    // Another separator, an explicit partition and timestamp.
    ok(
        dir,
        &[
            "produce",
            "events",
            "--separator",
            "::",
            "--partition",
            "3",
            "--timestamp",
            "1234",
        ],
        "k::a::b\n",
    );
    let last = ok(
        dir,
        &["consume", "events", "--from-beginning", "--partition", "3"],
        "",
    );
    let last = last.lines().last().unwrap();
    assert!(last.ends_with("Timestamp:1234\tk\ta::b"), "{last}");
}

#[test]
fn groups_commit_what_was_consumed_and_describe_the_lag() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(dir, &["topics", "create", "in", "--partitions", "2"], "");
    let input: String = (0..10).map(|i| format!("k{i}\tv{i}\n")).collect();
    ok(dir, &["produce", "in"], &input);
    let first = parse_consumed(&ok(
        dir,
        &[
            "consume",
            "in",
            "--group",
            "g",
            "--from-beginning",
            "--max-messages",
            "4",
        ],
        "",
    ));
    assert_eq!(first.len(), 4);
    assert_eq!(ok(dir, &["groups", "list"], ""), "g\n");
    let described = ok(dir, &["groups", "describe", "g"], "");
    let mut lines = described.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG"
        ]
    );
    let mut total_lag = 0;
    for (p, line) in lines.enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(&f[..3], ["g", "in", &p.to_string()]);
        let (current, end, lag): (i64, i64, i64) = (
            f[3].parse().unwrap(),
            f[4].parse().unwrap(),
            f[5].parse().unwrap(),
        );
        let consumed = first.iter().filter(|r| r.0 == p as u32).count() as i64;
        assert_eq!(current, consumed, "{described}");
        assert_eq!(lag, end - current);
        total_lag += lag;
    }
    assert_eq!(total_lag, 6, "{described}");
    // The group goes on where it stopped: together the two runs read everything once.
    let rest = parse_consumed(&ok(dir, &["consume", "in", "--group", "g"], ""));
    assert_eq!(rest.len(), 6);
    let mut keys: Vec<String> = first.iter().chain(&rest).map(|r| r.2.clone()).collect();
    keys.sort();
    assert_eq!(keys, (0..10).map(|i| format!("k{i}")).collect::<Vec<_>>());
    assert!(
        ok(dir, &["groups", "describe", "g"], "")
            .lines()
            .skip(1)
            .all(|l| l.ends_with(" 0"))
    );
    assert!(fails(dir, &["groups", "describe", "nobody"], 1).contains("`nobody` does not exist"));
}

#[test]
fn app_reset_rewinds_input_offsets_and_deletes_internal_topics() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for t in [
        "input",
        "wordcount-counts-changelog",
        "wordcount-KSTREAM-AGGREGATE-0000000003-repartition",
        "wordcount-output",
        "other-counts-changelog",
        "wordcount-changelog-archive",
    ] {
        ok(dir, &["topics", "create", t], "");
    }
    ok(dir, &["produce", "input"], "a\t1\nb\t2\nc\t3\n");
    ok(dir, &["produce", "wordcount-counts-changelog"], "a\t1\n");
    ok(
        dir,
        &[
            "consume",
            "input",
            "--group",
            "wordcount",
            "--from-beginning",
        ],
        "",
    );
    ok(
        dir,
        &[
            "consume",
            "wordcount-counts-changelog",
            "--group",
            "wordcount",
            "--from-beginning",
        ],
        "",
    );
    assert!(
        fails(
            dir,
            &[
                "app-reset",
                "--application-id",
                "wordcount",
                "--input-topics",
                "input,missing"
            ],
            1
        )
        .contains("`missing` does not exist")
    );
    assert_eq!(
        ok(dir, &["topics", "list"], "").lines().count(),
        6,
        "nothing changed"
    );
    let out = ok(
        dir,
        &[
            "app-reset",
            "--application-id",
            "wordcount",
            "--input-topics",
            "input",
        ],
        "",
    );
    assert!(
        out.contains("Deleted internal topic wordcount-counts-changelog"),
        "{out}"
    );
    assert_eq!(
        ok(dir, &["topics", "list"], ""),
        "input\nother-counts-changelog\nwordcount-changelog-archive\nwordcount-output\n"
    );
    // Only the input topic's offsets are left, back at the start.
    let described = ok(dir, &["groups", "describe", "wordcount"], "");
    let rows: Vec<Vec<&str>> = described
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows, [["wordcount", "input", "0", "0", "3", "3"]]);
    assert!(fails(dir, &["app-reset"], 2).contains("--application-id"));
}

#[test]
fn compacted_topics_take_tombstones_but_no_null_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(dir, &["topics", "create", "table", "--compact"], "");
    let err = streams(dir, &["produce", "table"], "k\tv\nno separator\n");
    assert_eq!(err.code, 1);
    assert!(err.stderr.contains("without a key"), "{}", err.stderr);
    ok(
        dir,
        &["produce", "table", "--null-value", "NULL"],
        "k\tv\nk\tNULL\n",
    );
    let all = parse_consumed(&ok(dir, &["consume", "table", "--from-beginning"], ""));
    assert_eq!(
        all,
        [
            (0, 0, "k".to_string(), "v".to_string()),
            (0, 1, "k".to_string(), "null".to_string())
        ]
    );
}

#[test]
fn bad_arguments_and_unusable_data_directories_fail_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(dir, &["topics", "create", "t"], "");
    assert!(
        fails(dir, &["topics", "create", "u", "--partitions", "x"], 2)
            .contains("--partitions expects a positive number, got `x`")
    );
    assert!(fails(dir, &["topics", "create", "u", "--partitions", "0"], 2).contains("`0`"));
    assert!(
        fails(dir, &["topics", "create", "u", "--bogus"], 2).contains("unknown option `--bogus`")
    );
    assert!(fails(dir, &["topics", "create", "bad name"], 1).contains("invalid topic name"));
    assert!(fails(dir, &["frobnicate"], 2).contains("unknown command `frobnicate`"));
    assert!(fails(dir, &["topics", "rename"], 2).contains("unknown topics subcommand"));
    assert!(fails(dir, &["consume"], 2).contains("missing topic name"));
    assert!(fails(dir, &["consume", "t", "--max-messages"], 2).contains("needs a value"));
    assert!(fails(dir, &["consume", "t", "--partition", "1"], 1).contains("no partition 1"));
    assert!(fails(dir, &["produce", "nope"], 1).contains("`nope` does not exist"));
    assert!(fails(dir, &["consume", "nope"], 1).contains("`nope` does not exist"));
    assert_eq!(
        fails(dir, &["topics", "list", "extra"], 2)
            .lines()
            .next()
            .unwrap(),
        "error: unexpected argument `extra`"
    );
    // No data directory given, or one that does not exist.
    let out = raw(&["topics", "list"], "", None);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("STREAMS_DATA_DIR"), "{}", out.stderr);
    let out = raw(&["topics", "list"], "", Some(dir));
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "t\n"),
        "the environment variable works"
    );
    assert!(fails(&dir.join("typo"), &["topics", "list"], 1).contains("does not exist"));
    assert!(
        !dir.join("typo").exists(),
        "a typo does not create a directory"
    );
    // A directory an engine has open (a running app) is refused.
    let engine = LogEngine::open(dir).unwrap();
    assert!(fails(dir, &["topics", "list"], 1).contains("in use by another process"));
    drop(engine);
    assert_eq!(ok(dir, &["topics", "list"], ""), "t\n");
    assert!(ok(dir, &["--help"], "").contains("usage: streams"));
}

#[test]
fn consume_read_committed_skips_aborted_and_open_transactions_and_transactions_list_shows_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let rec = |v: &str| streams_state::NewRecord {
        timestamp: 5,
        key: Some(b"k".to_vec()),
        value: Some(v.as_bytes().to_vec()),
        headers: Vec::new(),
    };
    {
        let e = LogEngine::open(dir).unwrap();
        e.create_topic("t", streams_state::TopicConfig::new(1))
            .unwrap();
        let p = e.init_producer_id("app-thread-1").unwrap();
        e.append("t", 0, &[rec("plain")]).unwrap();
        e.append_transactional("app-thread-1", p, "t", 0, &[rec("committed")])
            .unwrap();
        e.end_transaction("app-thread-1", p, true).unwrap();
        e.append_transactional("app-thread-1", p, "t", 0, &[rec("aborted")])
            .unwrap();
        e.end_transaction("app-thread-1", p, false).unwrap();
        // Left open by a "crash": opening the directory aborts it.
        e.append_transactional("app-thread-1", p, "t", 0, &[rec("open")])
            .unwrap();
    }
    let values = |isolation: &str| -> Vec<String> {
        parse_consumed(&ok(
            dir,
            &["consume", "t", "--from-beginning", "--isolation", isolation],
            "",
        ))
        .into_iter()
        .map(|c| c.3)
        .collect()
    };
    assert_eq!(values("read_committed"), ["plain", "committed"]);
    assert_eq!(
        values("read_uncommitted"),
        ["plain", "committed", "aborted", "open"]
    );
    let out = streams(dir, &["transactions", "list"], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .starts_with("app-thread-1\tProducerId: 0\tEpoch: 0\tState: Empty"),
        "{}",
        out.stdout
    );
    let described = ok(dir, &["topics", "describe", "t"], "");
    // 4 records and 3 markers; nothing open any more.
    assert!(
        described.contains("EndOffset: 7\tLastStableOffset: 7"),
        "{described}"
    );
    let err = fails(dir, &["consume", "t", "--isolation", "dirty"], 2);
    assert!(err.contains("read_committed"), "{err}");
}

#[test]
fn verify_reports_damage_that_open_refuses_and_repair_keeps_every_intact_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let input: String = (0..20).map(|i| format!("k{i}\tv{i}\n")).collect();
    ok(dir, &["topics", "create", "t", "--partitions", "1"], "");
    for line in input.lines() {
        ok(dir, &["produce", "t"], &format!("{line}\n"));
    }
    assert!(streams(dir, &["verify"], "").stderr.contains("no damage"));
    let seg = dir.join("topics/t/0/00000000000000000000.log");
    let mut data = std::fs::read(&seg).unwrap();
    let middle = data.len() / 2;
    data[middle] ^= 0x55;
    std::fs::write(&seg, &data).unwrap();
    // Opening refuses, naming the file; nothing is cut.
    let err = fails(dir, &["topics", "describe", "t"], 1);
    assert!(
        err.contains("00000000000000000000.log") && err.contains("streams repair"),
        "{err}"
    );
    assert_eq!(std::fs::read(&seg).unwrap(), data);
    let out = streams(dir, &["verify"], "");
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stdout.contains("intact again at offset"),
        "{}",
        out.stdout
    );
    ok(dir, &["repair"], "");
    let consumed = parse_consumed(&ok(dir, &["consume", "t", "--from-beginning"], ""));
    // One record (the damaged batch) is gone; every other one is there at its offset.
    assert_eq!(consumed.len(), 19, "{consumed:?}");
    for (_, offset, key, value) in &consumed {
        assert_eq!(key, &format!("k{offset}"));
        assert_eq!(value, &format!("v{offset}"));
    }
    ok(dir, &["produce", "t"], "next\tvalue\n");
    let last = parse_consumed(&ok(dir, &["consume", "t", "--from-beginning"], ""));
    assert_eq!(last.last().unwrap().1, 20, "no offset is reused");
}
