//! The Kafka client suite ([`kafka_suite`]) against a real Kafka-protocol broker: tansu 0.6 (a broker in Rust) with its sqlite storage engine,
//! started on 127.0.0.1 by this test crate and stopped when it exits.
//!
//! The broker binary is `$STREAMS_TANSU`, else `tansu` under
//! `${XDG_CACHE_HOME:-~/.cache}/rust-streams/tansu/bin` (where `.ci/run` installs it), else
//! `tansu` on the `PATH`. Without it the tests print a notice and pass, except under
//! `CI=true`, where a missing broker fails them.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod kafka_suite;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kafka_suite::Broker;

/// The tansu binary, if installed.
fn tansu_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("STREAMS_TANSU") {
        return Some(PathBuf::from(p));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let cached = cache.join("rust-streams/tansu/bin/tansu");
    if cached.is_file() {
        return Some(cached);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("tansu"))
        .find(|p| p.is_file())
}

/// The broker process. It runs under a shell that kills it when this test process's end
/// of the shell's stdin closes, so no broker outlives the tests.
struct Tansu {
    bootstrap: String,
    _guard: ChildStdin,
    _dir: tempfile::TempDir,
}

fn start_tansu(binary: &Path, storage: &str) -> Result<Tansu, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    // tansu resolves the sqlite path against its working directory.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#""$0" broker --listener-url "$1" --advertised-listener-url "$1" --storage-engine "$2" >tansu.log 2>&1 & b=$!; cat >/dev/null; kill $b; wait $b"#)
        .arg(binary)
        .arg(&url)
        .arg(storage)
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start sh for tansu: {e}"))?;
    let guard = child.stdin.take().ok_or("no stdin for tansu")?;
    // The shell is reaped by nobody on purpose: it exits when the guard closes.
    std::mem::forget(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(format!(
                "tansu did not listen on {port} within 30 s: {}",
                std::fs::read_to_string(dir.path().join("tansu.log")).unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Tansu {
        bootstrap: format!("127.0.0.1:{port}"),
        _guard: guard,
        _dir: dir,
    })
}

/// One tansu for all the tests of this crate (each test uses its own topics and group).
fn broker() -> Option<Broker> {
    static TANSU: OnceLock<Option<Result<Tansu, String>>> = OnceLock::new();
    let tansu = TANSU.get_or_init(|| {
        let Some(binary) = tansu_binary() else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "tansu is missing: .ci/run installs it (cargo install tansu --locked --features dynostore,libsql)"
            );
            eprintln!(
                "NOTICE: skipping the tansu broker tests: no tansu (set STREAMS_TANSU or run .ci/run)"
            );
            return None;
        };
        Some(start_tansu(&binary, "sqlite://tansu.db?maintenance_interval=2s"))
    });
    match tansu.as_ref()? {
        Ok(t) => Some(Broker::Tansu(t.bootstrap.clone())),
        Err(e) => panic!("{e}"),
    }
}

/// A second tansu, with its memory engine, for static membership: the sqlite engine's
/// stored state of a static member breaks the group (docs/KAFKA.md), the memory engine keeps
/// static members as Kafka does. `STREAMS_TEST_KAFKA` names a real cluster instead.
fn static_membership_broker() -> Option<String> {
    if let Ok(b) = std::env::var("STREAMS_TEST_KAFKA")
        && !b.is_empty()
    {
        return Some(b);
    }
    static TANSU: OnceLock<Option<Result<Tansu, String>>> = OnceLock::new();
    let tansu = TANSU.get_or_init(|| {
        broker()?;
        let binary = tansu_binary()?;
        Some(start_tansu(&binary, "memory://tansu/"))
    });
    match tansu.as_ref()? {
        Ok(t) => Some(t.bootstrap.clone()),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_static_member_restarted_within_its_session_gets_its_tasks_back_without_a_rebalance() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use streams_core::client::kafka::KafkaClients;
    use streams_core::client::{ClientSupplier, NewTopic};
    use streams_core::config::{ClientPrefix, StreamsConfig};
    use streams_core::prelude::*;
    use streams_core::runtime::{KafkaStreams, StreamsState};

    let Some(bootstrap) = static_membership_broker() else {
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let app = format!("static-{}-{nanos:x}", std::process::id());
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    let dir = tempfile::tempdir().unwrap();
    let config = |instance: &str| {
        StreamsConfig::new(&app)
            .with_bootstrap_servers([bootstrap.as_str()])
            .with_state_dir(dir.path().join(instance))
            .with_default_api_timeout(Duration::from_secs(20))
            .with_client_property(ClientPrefix::Consumer, "group.instance.id", instance)
            .with_client_property(ClientPrefix::Consumer, "session.timeout.ms", "45000")
            .with_client_property(ClientPrefix::Consumer, "heartbeat.interval.ms", "500")
    };
    let admin = KafkaClients::new(&config("setup"))
        .unwrap()
        .admin()
        .unwrap();
    admin.create_topic(&NewTopic::new(&input, 4)).unwrap();
    admin.create_topic(&NewTopic::new(&output, 4)).unwrap();
    let topology = || {
        let builder = StreamsBuilder::new();
        builder.stream::<String, String>(&input).to(&output);
        builder.build().unwrap()
    };
    // How often each instance went into Rebalancing.
    let start = |instance: &str, rebalances: Arc<AtomicU32>| {
        let config = config(instance);
        let clients = Arc::new(KafkaClients::new(&config).unwrap());
        let mut app = KafkaStreams::with_clients(topology(), config, clients).unwrap();
        app.set_state_listener(move |new, _| {
            if new == StreamsState::Rebalancing {
                rebalances.fetch_add(1, Ordering::SeqCst);
            }
        });
        app.start().unwrap();
        app
    };
    let tasks = |s: &KafkaStreams| {
        let mut t: Vec<_> = s.metrics().tasks().map(|t| t.id).collect();
        t.sort();
        t
    };
    let running = |apps: &[&KafkaStreams], what: &str| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !apps.iter().all(|a| a.state() == StreamsState::Running) {
            assert!(Instant::now() < deadline, "{what} within 120 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    let b_rebalances = Arc::new(AtomicU32::new(0));
    let a = start("a", Arc::new(AtomicU32::new(0)));
    let b = start("b", b_rebalances.clone());
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(tasks(&a).len() == 2 && tasks(&b).len() == 2) {
        assert!(
            Instant::now() < deadline,
            "the two members split the 4 tasks"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    running(&[&a, &b], "both instances run");
    let a_tasks = tasks(&a);
    let b_tasks = tasks(&b);
    let settled = b_rebalances.load(Ordering::SeqCst);

    // A static member leaves no group on close; back within the session, it gets the same
    // partitions and the other member never rebalances.
    a.close().unwrap();
    let a = start("a", Arc::new(AtomicU32::new(0)));
    running(&[&a], "the restarted instance runs");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        tasks(&a),
        a_tasks,
        "the static member's tasks came back to it"
    );
    assert_eq!(tasks(&b), b_tasks);
    assert_eq!(
        b_rebalances.load(Ordering::SeqCst),
        settled,
        "the other member rebalanced when the static member restarted"
    );
    assert_eq!(b.state(), StreamsState::Running);
    a.close().unwrap();
    b.close().unwrap();
}
