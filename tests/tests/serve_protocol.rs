//! `streams_state::serve` driven by plain librdkafka (the `rdkafka` crate): the embedded log
//! engine served over the Kafka wire protocol on the loopback, in this process. Admin
//! requests, a keyed producer and a consumer group of two, offsets across a server restart,
//! ListOffsets by time, DeleteRecords, transactions with `read_committed` consumers, zombie
//! fencing, and a member whose session expires (a child process killed without leaving).
//!
//! Each result is checked against what the test sent, or against the engine read directly.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use streams_state::serve::{Server, ServerHandle};
use streams_state::{Isolation, LogEngine};
use streams_tests::engine_records;

/// An engine in a temporary directory served on a free loopback port.
struct Served {
    dir: tempfile::TempDir,
    engine: Arc<LogEngine>,
    server: ServerHandle,
}

impl Served {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (engine, server) = serve(dir.path());
        Self {
            dir,
            engine,
            server,
        }
    }

    fn bootstrap(&self) -> String {
        self.server.bootstrap_servers()
    }

    /// Stops the server, closes the engine and serves the same directory again.
    fn restart(self) -> Self {
        let Served {
            dir,
            engine,
            server,
        } = self;
        server.shutdown();
        drop(engine);
        let (engine, server) = serve(dir.path());
        Self {
            dir,
            engine,
            server,
        }
    }
}

fn serve(dir: &Path) -> (Arc<LogEngine>, ServerHandle) {
    let engine = Arc::new(LogEngine::open(dir).unwrap());
    let server = Server::start(engine.clone(), "127.0.0.1:0").unwrap();
    (engine, server)
}

fn config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("socket.timeout.ms", "10000");
    c
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    config(bootstrap).create().unwrap()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn create_topics(bootstrap: &str, topics: &[(&str, i32)]) {
    let admin = admin(bootstrap);
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = block_on(admin.create_topics(&new, &AdminOptions::new())).unwrap();
    for r in results {
        r.unwrap();
    }
}

fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> BaseProducer {
    let mut c = config(bootstrap);
    c.set("linger.ms", "1");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().unwrap()
}

fn consumer(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut c = config(bootstrap);
    c.set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "200")
        .set("fetch.wait.max.ms", "50")
        .set("partition.assignment.strategy", "range");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().unwrap()
}

/// A consumed record.
#[derive(Debug, Clone)]
struct Polled {
    consumer: usize,
    key: String,
    value: String,
    partition: i32,
    offset: i64,
    /// The value of its first header.
    header: Option<Vec<u8>>,
}

fn polled(consumer: usize, m: &rdkafka::message::BorrowedMessage<'_>) -> Polled {
    Polled {
        consumer,
        key: String::from_utf8(m.key().unwrap_or_default().to_vec()).unwrap(),
        value: String::from_utf8(m.payload().unwrap_or_default().to_vec()).unwrap(),
        partition: m.partition(),
        offset: m.offset(),
        header: m
            .headers()
            .and_then(|h| h.iter().next().and_then(|h| h.value.map(<[u8]>::to_vec))),
    }
}

/// Polls `consumers` in turn until `done` holds for what they consumed (panics after
/// `limit`); returns what they consumed.
fn poll_until(
    consumers: &[&BaseConsumer],
    limit: Duration,
    what: &str,
    done: impl Fn(&[Polled]) -> bool,
) -> Vec<Polled> {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    while !done(&out) {
        assert!(
            Instant::now() < deadline,
            "{what} within {limit:?}: got {out:?}"
        );
        for (i, c) in consumers.iter().enumerate() {
            if let Some(m) = c.poll(Duration::from_millis(20)) {
                let m = m.unwrap_or_else(|e| panic!("consumer {i}: {e}"));
                out.push(polled(i, &m));
            }
        }
    }
    out
}

/// Polls a while longer: what arrives (nothing, when all was consumed).
fn poll_more(consumers: &[&BaseConsumer], rounds: usize) -> Vec<Polled> {
    let mut out = Vec::new();
    for _ in 0..rounds {
        for (i, c) in consumers.iter().enumerate() {
            if let Some(m) = c.poll(Duration::from_millis(30)) {
                out.push(polled(i, &m.unwrap()));
            }
        }
    }
    out
}

fn produce_all(p: &BaseProducer, topic: &str, records: &[(String, String)]) {
    for (k, v) in records {
        loop {
            match p.send(BaseRecord::to(topic).key(k).payload(v)) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    p.poll(Duration::from_millis(10));
                }
                Err((e, _)) => panic!("send: {e}"),
            }
        }
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

#[test]
fn admin_producer_and_a_group_of_two_consumers_read_every_record_exactly_once() {
    let s = Served::start();
    let bootstrap = s.bootstrap();
    create_topics(&bootstrap, &[("words", 4), ("other", 1)]);
    assert_eq!(s.engine.topic_config("words").unwrap().partitions, 4);

    // Creating it again, an invalid replication factor, deleting one.
    let admin = admin(&bootstrap);
    let create = |name: &str, partitions: i32, replication: i32| {
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(replication));
        block_on(admin.create_topics(&[topic], &AdminOptions::new())).unwrap()
    };
    assert!(matches!(
        create("words", 4, 1)[0],
        Err((_, RDKafkaErrorCode::TopicAlreadyExists))
    ));
    assert!(matches!(
        create("replicated", 1, 3)[0],
        Err((_, RDKafkaErrorCode::InvalidReplicationFactor))
    ));
    let deleted = block_on(admin.delete_topics(&["other"], &AdminOptions::new())).unwrap();
    assert!(deleted[0].is_ok());
    assert!(s.engine.topic_config("other").is_none());
    let metadata = {
        let c = consumer(&bootstrap, "meta", &[]);
        c.fetch_metadata(None, Duration::from_secs(10)).unwrap()
    };
    let topics: Vec<(String, usize)> = metadata
        .topics()
        .iter()
        .map(|t| (t.name().to_string(), t.partitions().len()))
        .collect();
    assert_eq!(topics, [("words".to_string(), 4)]);
    assert_eq!(metadata.brokers().len(), 1);

    // Both members are in the group before anything is produced: no rebalance happens
    // while they read, so each record is read once.
    let a = consumer(&bootstrap, "readers", &[]);
    let b = consumer(&bootstrap, "readers", &[]);
    a.subscribe(&["words"]).unwrap();
    b.subscribe(&["words"]).unwrap();
    let early = poll_until(
        &[&a, &b],
        Duration::from_secs(30),
        "both members get partitions",
        |_| {
            let (x, y) = (a.assignment().unwrap(), b.assignment().unwrap());
            x.count() == 2 && y.count() == 2
        },
    );
    assert!(early.is_empty(), "nothing was produced yet");

    let sent: Vec<(String, String)> = (0..400)
        .map(|i| (format!("key-{}", i % 37), format!("value-{i}")))
        .collect();
    let p = producer(
        &bootstrap,
        &[("enable.idempotence", "true"), ("acks", "all")],
    );
    produce_all(&p, "words", &sent);

    let consumed = poll_until(
        &[&a, &b],
        Duration::from_secs(30),
        "every record is consumed",
        |got| got.len() >= sent.len(),
    );
    // A little longer: nothing more arrives.
    let extra = poll_more(&[&a, &b], 10);
    assert!(extra.is_empty(), "extra records: {extra:?}");
    let got: Vec<Vec<(String, String, i32)>> = (0..2)
        .map(|i| {
            consumed
                .iter()
                .filter(|p| p.consumer == i)
                .map(|p| (p.key.clone(), p.value.clone(), p.partition))
                .collect()
        })
        .collect();
    assert!(
        !got[0].is_empty() && !got[1].is_empty(),
        "both members read"
    );
    let mut all: Vec<(String, String)> = got
        .iter()
        .flatten()
        .map(|(k, v, _)| (k.clone(), v.clone()))
        .collect();
    all.sort();
    let mut want = sent.clone();
    want.sort();
    assert_eq!(all, want, "each record exactly once");
    // The members' partitions do not overlap, and each key stayed in one partition, in
    // the order it was sent.
    let parts = |i: usize| -> BTreeSet<i32> { got[i].iter().map(|(_, _, p)| *p).collect() };
    assert!(parts(0).is_disjoint(&parts(1)));
    let mut by_key: HashMap<&str, (i32, Vec<&str>)> = HashMap::new();
    for (k, v, p) in got.iter().flatten() {
        let e = by_key.entry(k).or_insert((*p, Vec::new()));
        assert_eq!(e.0, *p, "key {k} in one partition");
        e.1.push(v);
    }
    for (k, (_, values)) in &by_key {
        let expected: Vec<&str> = sent
            .iter()
            .filter(|(sk, _)| sk == k)
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(values, &expected, "order of key {k}");
    }
    // What the engine holds is what was sent (the idempotent producer wrote no duplicate).
    let stored: usize = engine_records(&s.engine, "words", Isolation::ReadUncommitted)
        .values()
        .map(Vec::len)
        .sum();
    assert_eq!(stored, sent.len());

    // Commits go to the engine; DescribeGroups shows both members with their assignment.
    a.commit_consumer_state(CommitMode::Sync).unwrap();
    b.commit_consumer_state(CommitMode::Sync).unwrap();
    for p in 0..4 {
        let end = s.engine.offsets("words", p).unwrap().1;
        assert_eq!(s.engine.committed("readers", "words", p), Some(end));
    }
    let groups = a
        .fetch_group_list(Some("readers"), Duration::from_secs(10))
        .unwrap();
    let group = &groups.groups()[0];
    assert_eq!(group.state(), "Stable");
    assert_eq!(group.protocol(), "range");
    assert_eq!(group.members().len(), 2);
    for m in group.members() {
        assert!(
            m.assignment().is_some_and(|a| !a.is_empty()),
            "member {} has an assignment",
            m.id()
        );
    }
}

#[test]
fn committed_offsets_survive_a_server_restart() {
    let s = Served::start();
    let bootstrap = s.bootstrap();
    create_topics(&bootstrap, &[("events", 2)]);
    let sent: Vec<(String, String)> = (0..60)
        .map(|i| (format!("k{}", i % 5), format!("v{i}")))
        .collect();
    produce_all(&producer(&bootstrap, &[]), "events", &sent);

    let c = consumer(&bootstrap, "restart", &[]);
    c.subscribe(&["events"]).unwrap();
    let first: Vec<(String, String)> = poll_until(
        &[&c],
        Duration::from_secs(30),
        "the first 25 records",
        |got| got.len() >= 25,
    )
    .into_iter()
    .map(|p| (p.key, p.value))
    .collect();
    // Commit exactly what was consumed so far.
    c.commit_consumer_state(CommitMode::Sync).unwrap();
    let committed = c.committed(Duration::from_secs(10)).unwrap();
    let committed_total: i64 = committed
        .elements()
        .iter()
        .map(|e| e.offset().to_raw().unwrap_or(0).max(0))
        .sum();
    assert_eq!(committed_total, first.len() as i64);
    // librdkafka's close waits until no partition list of the consumer is alive.
    drop(committed);
    drop(c);

    let s = s.restart();
    let bootstrap = s.bootstrap();
    let c = consumer(&bootstrap, "restart", &[]);
    c.subscribe(&["events"]).unwrap();
    let rest: Vec<(String, String)> = poll_until(
        &[&c],
        Duration::from_secs(30),
        "the rest after the restart",
        |got| first.len() + got.len() >= sent.len(),
    )
    .into_iter()
    .map(|p| (p.key, p.value))
    .collect();
    assert!(poll_more(&[&c], 10).is_empty(), "nothing more");
    let mut all: Vec<_> = first.into_iter().chain(rest).collect();
    all.sort();
    let mut want = sent;
    want.sort();
    assert_eq!(all, want, "resumed at the committed offsets, nothing twice");
}

#[test]
fn list_offsets_by_time_and_delete_records() {
    let s = Served::start();
    let bootstrap = s.bootstrap();
    create_topics(&bootstrap, &[("timed", 1)]);
    let p = producer(&bootstrap, &[]);
    // Timestamps 1000, 1100, ... (record i at 1000 + 100 i).
    let stamps: Vec<i64> = (0..20).map(|i| 1000 + 100 * i).collect();
    for (i, ts) in stamps.iter().enumerate() {
        let v = format!("v{i}");
        p.send(
            BaseRecord::<str, str>::to("timed")
                .payload(&v)
                .partition(0)
                .timestamp(*ts),
        )
        .unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
    let c = consumer(&bootstrap, "times", &[]);
    for query in [0, 1000, 1050, 1100, 2850, 2900, 5000] {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("timed", 0, Offset::Offset(query))
            .unwrap();
        let found = c.offsets_for_times(tpl, Duration::from_secs(10)).unwrap();
        let got = found.elements()[0].offset();
        // Independently: the first record whose timestamp is at or after the query.
        let want = stamps.iter().position(|ts| *ts >= query);
        match want {
            Some(i) => assert_eq!(got, Offset::Offset(i as i64), "query {query}"),
            None => assert_eq!(got, Offset::End, "query {query}"),
        }
    }
    assert_eq!(
        c.fetch_watermarks("timed", 0, Duration::from_secs(10))
            .unwrap(),
        (0, 20)
    );

    // DeleteRecords below offset 7: the low watermark moves and reading starts there.
    let admin = admin(&bootstrap);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("timed", 0, Offset::Offset(7))
        .unwrap();
    let deleted = block_on(admin.delete_records(&tpl, &AdminOptions::new())).unwrap();
    assert_eq!(deleted.elements()[0].offset(), Offset::Offset(7));
    assert_eq!(s.engine.offsets("timed", 0).unwrap().0, 7);
    assert_eq!(
        c.fetch_watermarks("timed", 0, Duration::from_secs(10))
            .unwrap(),
        (7, 20)
    );
    c.subscribe(&["timed"]).unwrap();
    let offsets: Vec<i64> = poll_until(&[&c], Duration::from_secs(30), "the records left", |got| {
        got.len() >= 13
    })
    .iter()
    .map(|p| p.offset)
    .collect();
    assert_eq!(offsets, (7..20).collect::<Vec<i64>>());
}

#[test]
fn read_committed_consumers_see_only_committed_transactions() {
    let s = Served::start();
    let bootstrap = s.bootstrap();
    create_topics(&bootstrap, &[("txn-in", 1), ("txn-out", 2)]);
    let tp = producer(
        &bootstrap,
        &[
            ("transactional.id", "tx-1"),
            ("transaction.timeout.ms", "30000"),
        ],
    );
    tp.init_transactions(Duration::from_secs(10)).unwrap();
    let send = |p: &BaseProducer, values: &[&str]| {
        for (i, v) in values.iter().enumerate() {
            let key = format!("k{i}");
            let headers = OwnedHeaders::new().insert(Header {
                key: "h",
                value: Some(v.as_bytes()),
            });
            p.send(
                BaseRecord::to("txn-out")
                    .key(&key)
                    .payload(*v)
                    .headers(headers),
            )
            .unwrap();
        }
        p.flush(Duration::from_secs(10)).unwrap();
    };
    tp.begin_transaction().unwrap();
    send(&tp, &["c1", "c2", "c3"]);
    tp.commit_transaction(Duration::from_secs(10)).unwrap();
    tp.begin_transaction().unwrap();
    send(&tp, &["a1", "a2"]);
    tp.abort_transaction(Duration::from_secs(10)).unwrap();
    // An open transaction holds read_committed readers back at its first offset.
    tp.begin_transaction().unwrap();
    send(&tp, &["c4"]);

    let committed = consumer(&bootstrap, "rc", &[("isolation.level", "read_committed")]);
    let uncommitted = consumer(&bootstrap, "ru", &[("isolation.level", "read_uncommitted")]);
    committed.subscribe(&["txn-out"]).unwrap();
    uncommitted.subscribe(&["txn-out"]).unwrap();
    let count = |got: &[Polled], i: usize| got.iter().filter(|p| p.consumer == i).count();
    let mut got = poll_until(
        &[&committed, &uncommitted],
        Duration::from_secs(30),
        "the records before the open transaction",
        |got| count(got, 0) >= 3 && count(got, 1) >= 6,
    );
    // Give read_committed time to (wrongly) see more.
    got.extend(poll_more(&[&committed], 10));
    assert!(
        got.iter()
            .all(|p| p.header.as_deref() == Some(p.value.as_bytes())),
        "headers came through: {got:?}"
    );
    let values = |got: &[Polled], i: usize| -> Vec<String> {
        got.iter()
            .filter(|p| p.consumer == i)
            .map(|p| p.value.clone())
            .collect()
    };
    let mut seen_rc = values(&got, 0);
    let seen_ru = values(&got, 1);
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    assert_eq!(sorted(&seen_rc), ["c1", "c2", "c3"], "not the open one yet");
    assert_eq!(
        sorted(&seen_ru),
        ["a1", "a2", "c1", "c2", "c3", "c4"],
        "read_uncommitted sees everything"
    );
    tp.commit_transaction(Duration::from_secs(10)).unwrap();
    seen_rc.extend(
        poll_until(
            &[&committed],
            Duration::from_secs(30),
            "the committed record",
            |got| !got.is_empty(),
        )
        .into_iter()
        .map(|p| p.value),
    );
    assert_eq!(sorted(&seen_rc), ["c1", "c2", "c3", "c4"]);
    // The engine agrees: the aborted records are there, but not read_committed.
    let rc: Vec<String> = engine_records(&s.engine, "txn-out", Isolation::ReadCommitted)
        .into_values()
        .flatten()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(sorted(&rc), ["c1", "c2", "c3", "c4"]);
    // The read_committed consumer's position moves past the markers (control batches),
    // to the end, once it polled them.
    assert!(poll_more(&[&committed], 10).is_empty());
    committed.commit_consumer_state(CommitMode::Sync).unwrap();
    for p in 0..2 {
        let end = s.engine.offsets("txn-out", p).unwrap().1;
        let pos = s.engine.committed("rc", "txn-out", p);
        assert!(
            pos == Some(end) || (pos.is_none() && end == 0),
            "partition {p}: committed {pos:?}, end {end}"
        );
    }

    // Offsets sent with a transaction are committed with it, and only then.
    let c = consumer(&bootstrap, "eos-group", &[]);
    c.subscribe(&["txn-in"]).unwrap();
    poll_until(&[&c], Duration::from_secs(30), "an assignment", |_| {
        c.assignment().unwrap().count() == 1
    });
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("txn-in", 0, Offset::Offset(42))
        .unwrap();
    tp.begin_transaction().unwrap();
    send(&tp, &["with-offsets"]);
    tp.send_offsets_to_transaction(
        &offsets,
        &c.group_metadata().unwrap(),
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(s.engine.committed("eos-group", "txn-in", 0), None);
    tp.commit_transaction(Duration::from_secs(10)).unwrap();
    assert_eq!(s.engine.committed("eos-group", "txn-in", 0), Some(42));

    // A second producer with the same transactional id fences the first.
    let zombie = tp;
    zombie.begin_transaction().unwrap();
    send(&zombie, &["zombie"]);
    let fresh = producer(&bootstrap, &[("transactional.id", "tx-1")]);
    fresh.init_transactions(Duration::from_secs(10)).unwrap();
    let fenced = zombie.commit_transaction(Duration::from_secs(10));
    let err = fenced.expect_err("the zombie's commit fails");
    assert!(
        matches!(
            err.rdkafka_error_code(),
            Some(RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::InvalidProducerEpoch)
        ) || format!("{err}").to_lowercase().contains("fenced"),
        "{err}"
    );
    let rc: Vec<String> = engine_records(&s.engine, "txn-out", Isolation::ReadCommitted)
        .into_values()
        .flatten()
        .map(|(_, v)| v)
        .collect();
    assert!(
        !rc.contains(&"zombie".to_string()),
        "the zombie's transaction was aborted"
    );
}

/// The child process of the session test: a member that reports its assignment and never
/// leaves (it is killed).
#[test]
#[ignore = "run by a_member_whose_session_expires_loses_its_partitions as a child process"]
fn session_test_child_member() {
    let Ok(bootstrap) = std::env::var("SERVE_TEST_CHILD_BOOTSTRAP") else {
        return;
    };
    let c = consumer(
        &bootstrap,
        "sessions",
        &[
            ("session.timeout.ms", "2000"),
            ("heartbeat.interval.ms", "100"),
        ],
    );
    c.subscribe(&["sessions"]).unwrap();
    let mut reported = 0;
    loop {
        let _ = c.poll(Duration::from_millis(50));
        let n = c.assignment().unwrap().count();
        if n != reported {
            reported = n;
            println!("assigned {n}");
        }
    }
}

#[test]
fn a_member_whose_session_expires_loses_its_partitions_to_the_other() {
    use std::io::BufRead;
    let s = Served::start();
    let bootstrap = s.bootstrap();
    create_topics(&bootstrap, &[("sessions", 4)]);
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "session_test_child_member",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SERVE_TEST_CHILD_BOOTSTRAP", &bootstrap)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            // The harness prints "test ... " on the same line before the child's output.
            if let Some((_, n)) = line.split_once("assigned ") {
                let _ = tx.send(n.parse::<usize>().unwrap_or(0));
            }
        }
    });
    // The child joins first and gets all four partitions.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        if n == 4 {
            break;
        }
        assert!(Instant::now() < deadline);
    }
    let c = consumer(&bootstrap, "sessions", &[]);
    c.subscribe(&["sessions"]).unwrap();
    poll_until(
        &[&c],
        Duration::from_secs(30),
        "the partitions are split",
        |_| c.assignment().unwrap().count() == 2,
    );
    // Killed: no LeaveGroup. The group notices when the child's 2 s session runs out.
    let killed = Instant::now();
    child.kill().unwrap();
    child.wait().unwrap();
    poll_until(
        &[&c],
        Duration::from_secs(30),
        "the survivor gets every partition",
        |_| c.assignment().unwrap().count() == 4,
    );
    let took = killed.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "the partitions moved after the session timeout, not at once ({took:?})"
    );
    let groups = c
        .fetch_group_list(Some("sessions"), Duration::from_secs(10))
        .unwrap();
    assert_eq!(groups.groups()[0].members().len(), 1);
    drop(s);
}

const THROUGHPUT_RECORDS: usize = 2_000_000;
const THROUGHPUT_PARTITIONS: u32 = 4;

/// Prints a throughput line: records/s and MB/s of `THROUGHPUT_RECORDS` 100-byte records.
fn print_rate(what: &str, d: Duration) {
    let n = THROUGHPUT_RECORDS as f64;
    println!(
        "{what:<38} {:>9.0} records/s {:>7.1} MB/s ({:.2} s)",
        n / d.as_secs_f64(),
        n * 100.0 / 1e6 / d.as_secs_f64(),
        d.as_secs_f64()
    );
}

/// The in-process engine's append (batches of `bare::BATCH` records, the batches the bare
/// client produces) and read of the throughput records: the baseline the server is compared with.
fn in_process_throughput(value: &[u8]) -> (Duration, Duration) {
    let (n, partitions) = (THROUGHPUT_RECORDS, THROUGHPUT_PARTITIONS);
    let dir = tempfile::tempdir().unwrap();
    let engine = LogEngine::open(dir.path()).unwrap();
    engine
        .create_topic("direct", streams_state::TopicConfig::new(partitions))
        .unwrap();
    let batch: Vec<streams_state::NewRecord> = (0..bare::BATCH)
        .map(|_| streams_state::NewRecord {
            timestamp: 1,
            key: None,
            value: Some(value.to_vec()),
            headers: Vec::new(),
        })
        .collect();
    let t0 = Instant::now();
    for i in 0..n / bare::BATCH {
        engine
            .append("direct", i as u32 % partitions, &batch)
            .unwrap();
    }
    let append = t0.elapsed();
    let t0 = Instant::now();
    let mut read = 0;
    for p in 0..partitions {
        let mut offset = 0;
        loop {
            let r = engine
                .read_with("direct", p, offset, 1 << 20, Isolation::ReadUncommitted)
                .unwrap();
            read += r.records.len();
            if r.next_offset == offset {
                break;
            }
            offset = r.next_offset;
        }
    }
    let direct_read = t0.elapsed();
    assert_eq!(read, n);
    (append, direct_read)
}

/// Throughput of 100-byte records on 4 partitions through the server with a bare
/// Kafka-protocol client, against the in-process engine in the same run: run with
/// `cargo test --profile bench -p streams-tests --test serve_protocol throughput --
/// --ignored --nocapture` (docs/SERVE.md records the numbers).
#[test]
#[ignore = "a measurement, not a check: run by hand in release mode"]
fn throughput_through_the_server_and_in_process() {
    let value = vec![b'x'; 100];
    let (append, read) = in_process_throughput(&value);
    let s = Served::start();
    let (produce, fetch) =
        bare::produce_and_fetch(&s, THROUGHPUT_RECORDS, THROUGHPUT_PARTITIONS, &value);
    println!("{THROUGHPUT_RECORDS} records of 100 bytes, {THROUGHPUT_PARTITIONS} partitions");
    print_rate("in-process append:", append);
    print_rate("in-process read:", read);
    print_rate("server, bare client produce (acks=1):", produce);
    print_rate("server, bare client fetch:", fetch);
}

/// The same records through the server with librdkafka's producer and consumer: the
/// figures a librdkafka application sees (its per-message work, not the server, bounds
/// them).
#[test]
#[ignore = "a measurement, not a check: run by hand in release mode"]
fn throughput_with_librdkafka() {
    let (n, partitions) = (THROUGHPUT_RECORDS, THROUGHPUT_PARTITIONS);
    let value = vec![b'x'; 100];
    let (append, read) = in_process_throughput(&value);
    let s = Served::start();
    let bootstrap = s.bootstrap();
    create_topics(&bootstrap, &[("bench", partitions as i32)]);
    let p = producer(
        &bootstrap,
        &[
            ("linger.ms", "5"),
            ("batch.num.messages", "10000"),
            ("queue.buffering.max.messages", "1000000"),
            ("acks", "1"),
        ],
    );
    let t0 = Instant::now();
    for i in 0..n {
        let mut record = BaseRecord::<(), [u8]>::to("bench")
            .payload(&value)
            .partition((i as u32 % partitions) as i32);
        loop {
            match p.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    p.poll(Duration::from_millis(1));
                }
                Err((e, _)) => panic!("{e}"),
            }
        }
    }
    p.flush(Duration::from_secs(120)).unwrap();
    let produce = t0.elapsed();
    let c = consumer(&bootstrap, "bench", &[("fetch.wait.max.ms", "10")]);
    let mut tpl = TopicPartitionList::new();
    for part in 0..partitions as i32 {
        tpl.add_partition_offset("bench", part, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let t0 = Instant::now();
    let mut consumed = 0;
    while consumed < n {
        if let Some(m) = c.poll(Duration::from_secs(5)) {
            m.unwrap();
            consumed += 1;
        }
        assert!(t0.elapsed() < Duration::from_secs(300));
    }
    let consume = t0.elapsed();
    println!("{n} records of 100 bytes, {partitions} partitions");
    print_rate("in-process append:", append);
    print_rate("in-process read:", read);
    print_rate("server, librdkafka produce (acks=1):", produce);
    print_rate("server, librdkafka consume:", consume);
}

/// A bare Kafka-protocol client (kafka-protocol's encoders, one blocking socket): the
/// server's own cost of produce and fetch, without librdkafka's per-message work (its
/// consumer's per-message poll, not the server, bounds the librdkafka figures).
mod bare {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{
        ApiKey, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, RequestHeader,
        ResponseHeader, TopicName,
    };
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    use super::Served;

    const PRODUCE_VERSION: i16 = 9;
    const FETCH_VERSION: i16 = 12;
    /// Records per batch (one batch per partition per produce request).
    pub(super) const BATCH: usize = 1_000;

    /// Sends one request (correlation id 1: responses come in order on a connection).
    fn send<Req: Encodable>(c: &mut TcpStream, api: ApiKey, version: i16, req: &Req) {
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(1)
            .with_client_id(Some(StrBytes::from_static_str("bare")));
        let header_version = api.request_header_version(version);
        let size =
            4 + header.compute_size(header_version).unwrap() + req.compute_size(version).unwrap();
        let mut buf = BytesMut::with_capacity(size);
        buf.extend_from_slice(&[0; 4]);
        header.encode(&mut buf, header_version).unwrap();
        req.encode(&mut buf, version).unwrap();
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        c.write_all(&buf).unwrap();
    }

    /// Reads the next response.
    fn receive<Resp: Decodable>(c: &mut TcpStream, api: ApiKey, version: i16) -> Resp {
        let mut len = [0u8; 4];
        c.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        c.read_exact(&mut body).unwrap();
        let mut body = Bytes::from(body);
        ResponseHeader::decode(&mut body, api.response_header_version(version)).unwrap();
        Resp::decode(&mut body, version).unwrap()
    }

    fn call<Req: Encodable, Resp: Decodable>(
        c: &mut TcpStream,
        api: ApiKey,
        version: i16,
        req: &Req,
    ) -> Resp {
        send(c, api, version, req);
        receive(c, api, version)
    }

    /// Records in the record batches of `records` and the offset after the last one.
    fn count_batches(mut records: &[u8]) -> (usize, Option<i64>) {
        let (mut n, mut next) = (0, None);
        // A v2 batch: base offset (8), length (4), ..., last offset delta at 23, record
        // count at 57.
        while records.len() >= 61 {
            let int = |at: usize| i32::from_be_bytes(records[at..at + 4].try_into().unwrap());
            let size = 12 + int(8) as usize;
            if size > records.len() {
                break;
            }
            let base = i64::from_be_bytes(records[..8].try_into().unwrap());
            n += int(57) as usize;
            next = Some(base + i64::from(int(23)) + 1);
            records = &records[size..];
        }
        (n, next)
    }

    /// Produces `n` records of `value` over `partitions` partitions of a new topic, then
    /// fetches them all back; the time each took.
    pub(super) fn produce_and_fetch(
        served: &Served,
        n: usize,
        partitions: u32,
        value: &[u8],
    ) -> (Duration, Duration) {
        super::create_topics(&served.bootstrap(), &[("bare", partitions as i32)]);
        let mut c = TcpStream::connect(served.bootstrap()).unwrap();
        c.set_nodelay(true).unwrap();
        let records: Vec<Record> = (0..BATCH)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // kafka-protocol's encoder starts a new batch wherever `offset - sequence`
                // changes, and writes the first record's sequence as the base sequence:
                // one batch of BATCH records with base sequence -1 (not idempotent).
                sequence: i as i32 - 1,
                timestamp: 1,
                key: None,
                value: Some(Bytes::copy_from_slice(value)),
                headers: Default::default(),
            })
            .collect();
        let mut batch = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut batch,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        let batch = batch.freeze();
        let topic = TopicName(StrBytes::from_static_str("bare"));
        let produce = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic.clone())
                    .with_partition_data(
                        (0..partitions as i32)
                            .map(|p| {
                                PartitionProduceData::default()
                                    .with_index(p)
                                    .with_records(Some(batch.clone()))
                            })
                            .collect(),
                    ),
            ]);
        let per_request = BATCH * partitions as usize;
        // Two requests in flight, as a producer pipelines them (librdkafka allows five): the
        // server has the next request while this client encodes the one after.
        let requests = n / per_request;
        let t0 = Instant::now();
        for i in 0..=requests {
            if i < requests {
                send(&mut c, ApiKey::Produce, PRODUCE_VERSION, &produce);
            }
            if i > 0 {
                let r: ProduceResponse = receive(&mut c, ApiKey::Produce, PRODUCE_VERSION);
                for t in &r.responses {
                    for p in &t.partition_responses {
                        assert_eq!(p.error_code, 0, "produce to partition {}", p.index);
                    }
                }
            }
        }
        let produced = t0.elapsed();

        let mut next = vec![0i64; partitions as usize];
        let mut fetched = 0;
        let t0 = Instant::now();
        while fetched < n / per_request * per_request {
            let fetch = FetchRequest::default()
                .with_replica_id(kafka_protocol::messages::BrokerId(-1))
                .with_max_wait_ms(100)
                .with_min_bytes(1)
                .with_max_bytes(16 << 20)
                .with_topics(vec![
                    FetchTopic::default()
                        .with_topic(topic.clone())
                        .with_partitions(
                            (0..partitions as usize)
                                .map(|p| {
                                    FetchPartition::default()
                                        .with_partition(p as i32)
                                        .with_fetch_offset(next[p])
                                        .with_partition_max_bytes(4 << 20)
                                })
                                .collect(),
                        ),
                ]);
            let r: FetchResponse = call(&mut c, ApiKey::Fetch, FETCH_VERSION, &fetch);
            for t in &r.responses {
                for p in &t.partitions {
                    assert_eq!(p.error_code, 0, "fetch of partition {}", p.partition_index);
                    let (count, after) = count_batches(p.records.as_deref().unwrap_or(&[]));
                    fetched += count;
                    if let Some(after) = after {
                        next[p.partition_index as usize] = after;
                    }
                }
            }
        }
        (produced, t0.elapsed())
    }
}
