//! What the tests of the activity binary share: starting it as a process (or running it
//! to its end), plain HTTP GETs on the loopback, reading topics back through the `streams`
//! CLI (embedded engine) or a Kafka consumer ([`kafka`]), the app's outputs recomputed from
//! its input ([`recount`]) and a whole run's topics checked against that ([`check`]).

// Test helpers may unwrap: a panic fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

pub(crate) mod check;
#[cfg(feature = "kafka")]
pub(crate) mod kafka;
pub(crate) mod recount;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// An activity process, killed when the test ends however it ends.
pub(crate) struct App {
    child: Child,
    /// The port of its API and dashboard.
    pub(crate) port: u16,
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the activity binary with `args` (plus `--port 0`) and returns it once it has
/// printed its dashboard URL. Its log (stderr) is re-printed under `label`, so the test
/// harness shows it when the test fails.
pub(crate) fn start_app(label: &str, args: &[&str]) -> App {
    let mut child = spawn_app(args);
    let label = label.to_string();
    let stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            eprintln!("{label}: {line}");
        }
    });
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("the app prints its dashboard URL before exiting")
            .expect("stdout is readable");
        if let Some(url) = line.split("dashboard: http://").nth(1) {
            let port = url.trim_end_matches('/').rsplit(':').next().unwrap_or("");
            break port.parse().expect("a port in the dashboard URL");
        }
    };
    // Keep draining stdout so that the app never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    App { child, port }
}

/// The activity binary with `args` (plus `--port 0`), stdout and stderr piped.
fn spawn_app(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_activity"))
        .args(["--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the activity binary starts")
}

/// A GET on the loopback; the body of a 200 answer.
pub(crate) fn get(port: u16, path: &str) -> Result<String, String> {
    get_with(port, path, "")
}

/// [`get`] with extra header lines (each ending in `\r\n`).
pub(crate) fn get_with(port: u16, path: &str, headers: &str) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{headers}\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).map_err(|e| e.to_string())?;
    let (head, body) = answer.split_once("\r\n\r\n").ok_or("no header end")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("{path}: {}", head.lines().next().unwrap_or("")));
    }
    Ok(body.to_string())
}

/// Waits up to `secs` for `done`, polling every half second; panics naming `what` and the
/// last answer of `done`.
pub(crate) fn wait_for(secs: u64, what: &str, mut done: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match done() {
            Ok(()) => return,
            Err(e) if Instant::now() >= deadline => panic!("{what} within {secs} s: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// A GET whose 200 answer is JSON; panics otherwise.
pub(crate) fn get_json(port: u16, path: &str) -> Value {
    let body = get(port, path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// How a run of the activity binary to its end went.
pub(crate) struct Finished {
    /// Whether it exited with status 0 (false also when it was killed at the timeout).
    pub(crate) success: bool,
    /// Its exit status, or "killed after the timeout".
    pub(crate) status: String,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) elapsed: Duration,
}

impl Finished {
    /// The last `n` lines of stderr, for a failure message.
    pub(crate) fn stderr_tail(&self, n: usize) -> String {
        let lines: Vec<&str> = self.stderr.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// Runs the activity binary with `args` (plus `--port 0`) until it exits, killing it after
/// `timeout`; stdout and stderr are collected.
pub(crate) fn run_app(args: &[&str], timeout: Duration) -> Finished {
    let started = Instant::now();
    let mut child = spawn_app(args);
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let status = loop {
        if let Some(status) = child.try_wait().expect("the child can be waited for") {
            break Some(status);
        }
        if started.elapsed() >= timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Finished {
        success: status.is_some_and(|s| s.success()),
        status: status.map_or_else(
            || format!("killed after the timeout of {timeout:?}"),
            |s| s.to_string(),
        ),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        elapsed: started.elapsed(),
    }
}

/// The `streams` CLI (the `streams` binary of streams-state): `$STREAMS_CLI` if set, else
/// next to the activity binary in the target directory. Cargo builds it for
/// `cargo test --workspace`; for a single test, `cargo build -p streams-state --bin streams`
/// first (a test cannot run cargo: cargo holds the target directory's lock while tests run).
pub(crate) fn streams_cli() -> PathBuf {
    let path = std::env::var_os("STREAMS_CLI").map_or_else(
        || Path::new(env!("CARGO_BIN_EXE_activity")).with_file_name("streams"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "the `streams` CLI is not at {}: run `cargo build -p streams-state --bin streams` \
         (same CARGO_TARGET_DIR) or set STREAMS_CLI",
        path.display()
    );
    path
}

/// One record of a topic as read back, by `streams consume` (which prints it) or a Kafka
/// consumer ([`kafka::read_records`]); key and value as UTF-8 text, `None` for null.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicRecord {
    pub(crate) partition: u32,
    pub(crate) offset: i64,
    pub(crate) timestamp: i64,
    pub(crate) key: Option<String>,
    pub(crate) value: Option<String>,
}

/// Every record of `topic` in the embedded engine's directory `log_dir`, read with
/// `streams --data-dir <log_dir> consume <topic> --from-beginning` (partition by partition,
/// in offset order): the CLI's output as printed, and its records. An error names the topic
/// and carries the CLI's stderr (an unknown topic, a directory still locked by an app).
pub(crate) fn consume(log_dir: &Path, topic: &str) -> Result<(String, Vec<TopicRecord>), String> {
    let out = Command::new(streams_cli())
        .arg("--data-dir")
        .arg(log_dir)
        .args(["consume", topic, "--from-beginning"])
        .env_remove("STREAMS_DATA_DIR")
        .output()
        .map_err(|e| format!("streams consume {topic}: {e}"))?;
    let text = String::from_utf8(out.stdout).map_err(|e| format!("{topic}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "streams consume {topic}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let records = text
        .lines()
        .map(|line| parse_cli_record(line).ok_or_else(|| format!("{topic}: not a record: {line}")))
        .collect::<Result<_, _>>()?;
    Ok((text, records))
}

/// `Partition:P\tOffset:O\tTimestamp:T\tKEY\tVALUE` (`null` for a null key or value).
fn parse_cli_record(line: &str) -> Option<TopicRecord> {
    let mut fields = line.splitn(5, '\t');
    let mut number =
        |label: &str| -> Option<i64> { fields.next()?.strip_prefix(label)?.parse().ok() };
    let partition = u32::try_from(number("Partition:")?).ok()?;
    let offset = number("Offset:")?;
    let timestamp = number("Timestamp:")?;
    let text = |s: &str| (s != "null").then(|| s.to_string());
    let key = text(fields.next()?);
    let value = text(fields.next()?);
    Some(TopicRecord {
        partition,
        offset,
        timestamp,
        key,
        value,
    })
}

/// The samples of metric `name` in a Prometheus text exposition (`GET /metrics`): each
/// one's labels and value (label values unescaped: `\\`, `\"`, `\n`).
pub(crate) fn prometheus_samples(
    text: &str,
    name: &str,
) -> Vec<(std::collections::BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (labels, value) = if let Some(rest) = line.strip_prefix(&format!("{name}{{")) {
            let mut labels = std::collections::BTreeMap::new();
            let mut chars = rest.chars().peekable();
            loop {
                let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
                let key = key.trim_start_matches([',', ' ']).to_string();
                if key.starts_with('}') || key.is_empty() {
                    break;
                }
                assert_eq!(chars.next(), Some('"'), "{line}");
                let mut value = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some('n') => value.push('\n'),
                            Some(c) => value.push(c),
                            None => {}
                        },
                        c => value.push(c),
                    }
                }
                labels.insert(key, value);
                if chars.peek() == Some(&'}') {
                    chars.next();
                    break;
                }
            }
            (labels, chars.collect::<String>())
        } else if let Some(rest) = line.strip_prefix(&format!("{name} ")) {
            (std::collections::BTreeMap::new(), rest.to_string())
        } else {
            continue;
        };
        let value = value.split_whitespace().next().unwrap_or("");
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or(f64::NAN),
        };
        out.push((labels, value));
    }
    out
}

/// `count` generated events from `from` on (ms), with `users`, `pages` and `rate` events a
/// second, the simulation started ten minutes earlier so that visits are under way (as the
/// binary does); asserts that they span less than `max_span_ms` of event time (the
/// windows' grace).
pub(crate) fn events_from(
    from: i64,
    seed: u64,
    (users, pages): (u64, usize),
    rate: f64,
    count: usize,
    max_span_ms: i64,
) -> Vec<streams_examples::activity::ActivityEvent> {
    use streams_examples::activity::ActivityEvent;
    use streams_examples::activity::generator::{ActivityGenerator, GeneratorConfig};
    let config = GeneratorConfig {
        seed,
        users,
        pages,
        start_ms: from - 10 * 60_000,
        events_per_second: rate,
        ..GeneratorConfig::default()
    };
    let events: Vec<ActivityEvent> = ActivityGenerator::new(config)
        .skip_while(|e| e.ts() < from)
        .take(count)
        .collect();
    let span = events.last().map_or(0, ActivityEvent::ts) - events[0].ts();
    assert!(
        span < max_span_ms,
        "the events span {span} ms, more than the grace allows"
    );
    events
}
