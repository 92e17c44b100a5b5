//! What the tests of the activity binary share: starting it as a process, and plain HTTP
//! GETs on the loopback.

// Test helpers may unwrap: a panic fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
    let mut child = Command::new(env!("CARGO_BIN_EXE_activity"))
        .args(["--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the activity binary starts");
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

/// A GET whose 200 answer is JSON; panics otherwise.
pub(crate) fn get_json(port: u16, path: &str) -> Value {
    let body = get(port, path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}
