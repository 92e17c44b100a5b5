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
