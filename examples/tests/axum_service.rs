//! The `axum_service` example as a black box: sentences posted to its `POST /words` are
//! counted, `GET /count/{word}` (an async interactive query) serves exactly the counts this
//! test computes from the same sentences, Ctrl-C (SIGINT) closes it cleanly, and a restart
//! on the same data directory serves the same counts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The service process, killed when the test ends however it ends.
struct Service {
    child: Option<Child>,
    port: u16,
    /// The lines it printed after its address.
    stdout: mpsc::Receiver<String>,
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start(data_dir: &std::path::Path) -> Service {
    let mut child = Command::new(env!("CARGO_BIN_EXE_axum_service"))
        .args(["--port", "0", "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the axum_service binary starts");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            eprintln!("axum_service: {line}");
        }
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("the service prints its address")
            .unwrap();
        println!("axum_service: {line}");
        if let Some(addr) = line.strip_prefix("listening on http://") {
            break addr.rsplit(':').next().unwrap().parse().unwrap();
        }
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            println!("axum_service: {line}");
            let _ = tx.send(line);
        }
    });
    Service {
        child: Some(child),
        port,
        stdout: rx,
    }
}

/// One HTTP/1.1 exchange on the loopback: (status, body).
fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a header end");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Waits up to a minute for `done`; panics with its last answer.
fn wait_for(what: &str, mut done: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match done() {
            Ok(()) => return,
            Err(e) if Instant::now() >= deadline => panic!("{what} within 60 s: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Sentences from a fixed vocabulary (mixed case: the service counts lower-case words).
fn sentences() -> Vec<String> {
    let vocab = [
        "Stream", "table", "join", "window", "KEY", "value", "topic", "store",
    ];
    let mut x: u64 = 11;
    let mut next = move || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1442695040888963407);
        (x >> 33) as usize
    };
    (0..60)
        .map(|_| {
            let n = 1 + next() % 6;
            (0..n)
                .map(|_| vocab[next() % vocab.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// Every word's count is served as `expected`, and a word never sent is not found.
fn assert_counts(port: u16, expected: &HashMap<String, i64>) {
    wait_for("the served counts equal the recount", || {
        for (word, n) in expected {
            let (status, body) = http(port, "GET", &format!("/count/{word}"), "");
            if status != 200 {
                return Err(format!("{word}: {status} {body}"));
            }
            let got = json(&body)["count"].as_i64();
            if got != Some(*n) {
                return Err(format!("{word}: served {got:?}, expected {n}"));
            }
        }
        Ok(())
    });
    let (status, _) = http(port, "GET", "/count/absent", "");
    assert_eq!(status, 404);
}

fn wait_running(port: u16) {
    wait_for("the app runs", || {
        let (_, body) = http(port, "GET", "/state", "");
        match json(&body)["state"].as_str() {
            Some("Running") => Ok(()),
            other => Err(format!("state {other:?}")),
        }
    });
}

/// Sends SIGINT and waits for a clean exit, which prints `stopped` after the async close.
fn interrupt(mut service: Service) {
    let mut child = service.child.take().unwrap();
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "no exit within 60 s of SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit}");
    let printed: Vec<String> =
        std::iter::from_fn(|| service.stdout.recv_timeout(Duration::from_secs(5)).ok()).collect();
    assert!(
        printed
            .iter()
            .any(|l| l == "state: PendingShutdown -> NotRunning"),
        "{printed:?}"
    );
    assert_eq!(printed.last().map(String::as_str), Some("stopped"));
}

#[cfg(unix)]
#[test]
fn served_counts_match_a_recount_and_survive_a_graceful_restart() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path());
    wait_running(service.port);

    let sentences = sentences();
    let mut expected: HashMap<String, i64> = HashMap::new();
    for s in &sentences {
        let (status, body) = http(service.port, "POST", "/words", s);
        assert_eq!(status, 202, "{body}");
        assert_eq!(
            json(&body)["words"].as_u64(),
            Some(s.split_whitespace().count() as u64)
        );
        for w in s.split_whitespace() {
            *expected.entry(w.to_lowercase()).or_default() += 1;
        }
    }
    assert!(expected.len() >= 5, "{expected:?}");
    assert_counts(service.port, &expected);
    // An empty post is refused.
    assert_eq!(http(service.port, "POST", "/words", "  ").0, 400);
    interrupt(service);

    // The close committed: a new process on the same directory serves the same counts.
    let service = start(dir.path());
    wait_running(service.port);
    assert_counts(service.port, &expected);
    interrupt(service);
}
