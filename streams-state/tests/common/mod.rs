//! Running the `streams` binary from the CLI tests.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// What a run of the tool gave.
pub(crate) struct Out {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `streams <args>` with `stdin`, `STREAMS_DATA_DIR` set to `env_dir` (else unset).
pub(crate) fn run(args: &[&str], stdin: &str, env_dir: Option<&Path>) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_streams"));
    cmd.args(args)
        .env_remove("STREAMS_DATA_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(d) = env_dir {
        cmd.env("STREAMS_DATA_DIR", d);
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Out {
        code: out.status.code().unwrap(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}
