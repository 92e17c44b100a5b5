//! The Kafka client suite ([`kafka_suite`]) and a multi-process group test against a real
//! Kafka-protocol broker: tansu 0.6 (a broker in Rust) with its sqlite storage engine,
//! started on 127.0.0.1 by this test crate and stopped when it exits.
//!
//! The broker binary is `$STREAMS_TANSU`, else `tansu` under
//! `${XDG_CACHE_HOME:-~/.cache}/rust-streams/tansu/bin` (where `.ci/run` installs it), else
//! `tansu` on the `PATH`. Without it the tests print a notice and pass, except under
//! `CI=true`, where a missing broker fails them.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod kafka_suite;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use kafka_suite::{Broker, Cluster, WordCount};
use streams_core::client::kafka::KafkaClients;
use streams_core::runtime::{KafkaStreams, StreamsState, TaskState};

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

fn start_tansu(binary: &Path) -> Tansu {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    let storage = format!(
        "sqlite://{}/tansu.db?maintenance_interval=2s",
        dir.path().display()
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#""$0" broker --listener-url "$1" --advertised-listener-url "$1" --storage-engine "$2" >"$3" 2>&1 & b=$!; cat >/dev/null; kill $b; wait $b"#)
        .arg(binary)
        .arg(&url)
        .arg(&storage)
        .arg(dir.path().join("tansu.log"))
        .stdin(Stdio::piped())
        .spawn()
        .expect("sh starts tansu");
    let guard = child.stdin.take().unwrap();
    // The shell is reaped by nobody on purpose: it exits when the guard closes.
    std::mem::forget(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "tansu did not listen on {port} within 30 s: {}",
            std::fs::read_to_string(dir.path().join("tansu.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Tansu {
        bootstrap: format!("127.0.0.1:{port}"),
        _guard: guard,
        _dir: dir,
    }
}

/// One tansu for all the tests of this crate (each test uses its own topics and group).
fn broker() -> Option<Broker> {
    static TANSU: OnceLock<Option<Tansu>> = OnceLock::new();
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
        Some(start_tansu(&binary))
    });
    tansu.as_ref().map(|t| Broker::At(t.bootstrap.clone()))
}

// ----------------------------------------------------------------------------------------
// Three app instances as OS processes: kill -9, takeover with restored state, rejoin
// ----------------------------------------------------------------------------------------

const CHILD_ENV: &str = "STREAMS_TANSU_CHILD";

/// An app instance in a child process (this test binary, run as `instance_process`).
struct Instance {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Active task counts the instance reports.
    tasks: Receiver<usize>,
    latest: usize,
}

impl Instance {
    fn spawn(cluster: &Cluster, wc: &WordCount, state: &Path) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "instance_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(
                CHILD_ENV,
                format!(
                    "{}\n{}\n{}\n{}\n{}",
                    cluster.bootstrap,
                    cluster.suffix,
                    wc.app,
                    wc.input,
                    state.display()
                ),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, tasks) = channel();
        std::thread::spawn(move || {
            for line in out.lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("TASKS ")
                    && tx.send(n.trim().parse().unwrap_or(0)).is_err()
                {
                    break;
                }
            }
        });
        Self {
            child,
            stdin,
            tasks,
            latest: 0,
        }
    }

    /// The latest active task count reported.
    fn tasks(&mut self) -> usize {
        while let Ok(n) = self.tasks.try_recv() {
            self.latest = n;
        }
        self.latest
    }

    fn kill_9(&mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    /// Asks for a clean close (stdin closes) and waits for the process to exit.
    fn close(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "instance did not close in 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child side: runs word count until stdin closes, printing its active task count
/// whenever it changes.
#[test]
fn instance_process() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return; // Not a child: nothing to do.
    };
    let lines: Vec<&str> = spec.lines().collect();
    let cluster = Cluster {
        mock: None,
        bootstrap: lines[0].to_string(),
        suffix: lines[1].to_string(),
    };
    let wc = WordCount {
        app: lines[2].to_string(),
        input: lines[3].to_string(),
        output: format!("{}-word-counts", lines[2]),
    };
    let state = PathBuf::from(lines[4]);
    let config = wc.config(&cluster, &state);
    let clients = KafkaClients::new(&config).unwrap();
    let mut app = KafkaStreams::with_clients(wc.topology(), config, Arc::new(clients)).unwrap();
    app.start().unwrap();
    let app = Arc::new(app);
    let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let closed = closed.clone();
        std::thread::spawn(move || {
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).unwrap_or(0) > 0 {}
            closed.store(true, std::sync::atomic::Ordering::SeqCst);
        });
    }
    let mut last = usize::MAX;
    while !closed.load(std::sync::atomic::Ordering::SeqCst) {
        let n = app
            .metrics()
            .tasks()
            .filter(|t| t.state == TaskState::Running)
            .count();
        if n != last {
            println!("TASKS {n}");
            std::io::stdout().flush().unwrap();
            last = n;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Arc::try_unwrap(app)
        .ok()
        .unwrap()
        .close_with_timeout(Duration::from_secs(30))
        .unwrap();
}

/// Polls until `done` holds, failing after `secs` with `what`.
fn wait_until(secs: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "not within {secs} s: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn three_processes_share_the_work_survive_kill_9_and_rebalance_when_it_returns() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let Some(cluster) = Cluster::new() else {
        return;
    };
    let wc = WordCount::new(&cluster, "group");
    let clients = cluster.clients(&wc.app);
    let dir = tempfile::tempdir().unwrap();
    let mut expected = HashMap::new();
    wc.produce(&clients, 0, 2_000, &mut expected);

    // Word count has two sub-topologies over 4 partitions: 8 tasks.
    const TASKS: usize = 8;
    let state = |i: usize| dir.path().join(format!("instance-{i}"));
    let mut instances: Vec<Instance> = (0..3)
        .map(|i| Instance::spawn(&cluster, &wc, &state(i)))
        .collect();
    wait_until(120, "three instances split the 8 tasks", || {
        let counts: Vec<usize> = instances.iter_mut().map(Instance::tasks).collect();
        counts.iter().sum::<usize>() == TASKS && counts.iter().all(|n| *n > 0)
    });

    // More input while one instance is killed with SIGKILL mid-stream.
    let producer = {
        let clients = clients.clone();
        let wc = WordCount {
            app: wc.app.clone(),
            input: wc.input.clone(),
            output: wc.output.clone(),
        };
        std::thread::spawn(move || {
            let mut more = HashMap::new();
            for batch in 0..10 {
                wc.produce(&clients, 2_000 + batch * 200, 200, &mut more);
                std::thread::sleep(Duration::from_millis(300));
            }
            more
        })
    };
    std::thread::sleep(Duration::from_millis(800));
    instances[1].kill_9();
    // Its tasks move to the survivors, which restore its stores from the changelogs.
    wait_until(120, "the survivors take over all 8 tasks", || {
        instances[0].tasks() + instances[2].tasks() == TASKS
    });

    // The killed instance comes back (same state directory) and gets work again.
    instances[1] = Instance::spawn(&cluster, &wc, &state(1));
    wait_until(120, "the returning instance gets tasks again", || {
        let counts: Vec<usize> = instances.iter_mut().map(Instance::tasks).collect();
        counts.iter().sum::<usize>() == TASKS && counts[1] > 0
    });
    for (w, n) in producer.join().unwrap() {
        *expected.entry(w).or_default() += n;
    }

    // Every input counted: the latest count of each word reaches what was sent (at least
    // once: records since the killed instance's last commit were processed again).
    let sent: i64 = expected.values().sum();
    let mut counts = HashMap::new();
    wait_until(120, "every word's count reaches what was sent", || {
        counts = wc.final_counts(&clients);
        expected
            .iter()
            .all(|(w, n)| counts.get(w).is_some_and(|c| c >= n))
    });
    for instance in instances {
        instance.close();
    }
    let counts = wc.final_counts(&clients);
    assert_eq!(counts.len(), expected.len());
    for (w, n) in &expected {
        assert!(counts[w] >= *n, "{w}: {} < {n}", counts[w]);
    }
    let counted: i64 = counts.values().sum();
    eprintln!(
        "three instances, one killed with SIGKILL: {sent} words sent, {counted} counted, {} duplicates ({:.2} %)",
        counted - sent,
        (counted - sent) as f64 * 100.0 / sent as f64
    );
}

// ----------------------------------------------------------------------------------------
// Static membership: a quick restart does not rebalance the group
// ----------------------------------------------------------------------------------------

/// An instance of the word count with `consumer.group.instance.id` set, recording its
/// state transitions.
fn static_member(
    cluster: &Cluster,
    wc: &WordCount,
    state: &Path,
    id: &str,
) -> (KafkaStreams, Arc<std::sync::Mutex<Vec<StreamsState>>>) {
    use streams_core::config::ClientPrefix;
    let config = wc.config(cluster, state).with_client_property(
        ClientPrefix::Consumer,
        "group.instance.id",
        id,
    );
    let clients = KafkaClients::new(&config).unwrap();
    let mut app = KafkaStreams::with_clients(wc.topology(), config, Arc::new(clients)).unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    app.set_state_listener(move |new, _old| log.lock().unwrap().push(new));
    app.start().unwrap();
    (app, seen)
}

fn running_tasks(app: &KafkaStreams) -> usize {
    app.metrics()
        .tasks()
        .filter(|t| t.state == TaskState::Running)
        .count()
}

#[test]
fn a_static_member_restarting_quickly_gets_its_tasks_back_without_a_rebalance() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let Some(cluster) = Cluster::new() else {
        return;
    };
    let wc = WordCount::new(&cluster, "static");
    let clients = cluster.clients(&wc.app);
    let dir = tempfile::tempdir().unwrap();
    let mut expected = HashMap::new();
    wc.produce(&clients, 0, 300, &mut expected);
    let (a, a_states) = static_member(&cluster, &wc, &dir.path().join("a"), "member-a");
    let (b, _) = static_member(&cluster, &wc, &dir.path().join("b"), "member-b");
    wait_until(120, "two static members split the 8 tasks", || {
        running_tasks(&a) == 4 && running_tasks(&b) == 4
    });
    let b_tasks: Vec<_> = b.metrics().tasks().map(|t| t.id).collect();
    a.wait_until_caught_up(Duration::from_secs(60)).unwrap();
    let before = a_states.lock().unwrap().len();

    // B stops and comes back well within the session timeout (6 s): as a static member it
    // left no gap in the group, so nobody rebalances and it gets the same tasks.
    b.close().unwrap();
    let (b, b_states) = static_member(&cluster, &wc, &dir.path().join("b"), "member-b");
    wc.produce(&clients, 300, 300, &mut expected);
    wait_until(60, "the restarted member runs its tasks again", || {
        running_tasks(&b) == 4
    });
    let mut again: Vec<_> = b.metrics().tasks().map(|t| t.id).collect();
    let mut b_tasks = b_tasks;
    again.sort();
    b_tasks.sort();
    assert_eq!(again, b_tasks, "the same tasks come back");
    a.wait_until_caught_up(Duration::from_secs(60)).unwrap();
    b.wait_until_caught_up(Duration::from_secs(60)).unwrap();
    assert_eq!(
        a_states.lock().unwrap()[before..].to_vec(),
        Vec::<StreamsState>::new(),
        "the other member saw no rebalance"
    );
    assert!(
        !b_states.lock().unwrap().is_empty(),
        "the restarted member went through its own start"
    );
    a.close().unwrap();
    b.close().unwrap();
    assert_eq!(wc.final_counts(&clients), expected);
}
