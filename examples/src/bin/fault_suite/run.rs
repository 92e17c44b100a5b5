//! The app as a child process: spawned with the driver's arguments, its progress lines
//! collected, killed, paused or resumed.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streams_core::config::ProcessingGuarantee;

use super::app::KafkaTarget;
use super::error::io;
use super::summary::KillPoint;
use super::{MARK, SuiteError};

/// The lines a child printed, with when (since its spawn).
type Lines = Arc<Mutex<Vec<(Duration, String)>>>;

/// One run of the app as a child process.
pub(crate) struct Run {
    /// The child.
    pub(crate) child: std::process::Child,
    /// When it was spawned.
    pub(crate) spawned: Instant,
    lines: Lines,
    reader: Option<std::thread::JoinHandle<()>>,
    log: PathBuf,
}

impl Run {
    /// Spawns `command` with stdout piped to a line collector and stderr to `log`.
    pub(crate) fn spawn(mut command: Command, log: PathBuf) -> Result<Self, SuiteError> {
        let err = File::create(&log).map_err(io(format!("creating {}", log.display())))?;
        let spawned = Instant::now();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(io("starting the app"))?;
        let lines: Lines = Arc::default();
        let reader = child.stdout.take().map(|out| {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    // Anywhere in the line: a test harness may print before it.
                    if let Some((_, rest)) = line.split_once(MARK) {
                        let mut l = lines.lock().unwrap_or_else(|e| e.into_inner());
                        l.push((spawned.elapsed(), rest.trim().to_string()));
                    }
                }
            })
        });
        Ok(Self {
            child,
            spawned,
            lines,
            reader,
            log,
        })
    }

    /// Waits for the child to exit, up to `until`; `None` if it still runs then.
    pub(crate) fn wait_until(&mut self, until: Instant) -> Result<Option<ExitStatus>, SuiteError> {
        loop {
            if let Some(status) = self.child.try_wait().map_err(io("waiting for the app"))? {
                return Ok(Some(status));
            }
            let now = Instant::now();
            if now >= until {
                return Ok(None);
            }
            std::thread::sleep((until - now).min(Duration::from_millis(10)));
        }
    }

    /// Waits until the child reported progress (see [`recovery`]) or exited, or `until`
    /// passed; its exit status if it exited.
    pub(crate) fn wait_for_progress(
        &mut self,
        until: Instant,
    ) -> Result<Option<ExitStatus>, SuiteError> {
        loop {
            if let Some(status) = self.child.try_wait().map_err(io("waiting for the app"))? {
                return Ok(Some(status));
            }
            let progressed =
                recovery(&self.lines.lock().unwrap_or_else(|e| e.into_inner())).is_some();
            if progressed || Instant::now() >= until {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILLs the child and reaps it, then collects its lines.
    pub(crate) fn kill(mut self) -> Result<Vec<(Duration, String)>, SuiteError> {
        self.child.kill().map_err(io("killing the app"))?;
        self.child.wait().map_err(io("reaping the app"))?;
        Ok(self.finish())
    }

    /// Joins the line reader (the child has exited) and returns the lines.
    pub(crate) fn finish(mut self) -> Vec<(Duration, String)> {
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        std::mem::take(&mut *self.lines.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The last lines of the child's stderr, for an error message.
    pub(crate) fn log_tail(&self) -> String {
        tail(&self.log)
    }
}

impl Drop for Run {
    /// A child still running when the driver gives up (on an error) is killed.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The last lines of a file.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(15);
    format!(
        "{} (last lines of {}):\n{}",
        if lines.is_empty() { "no log" } else { "log" },
        path.display(),
        lines[from..].join("\n")
    )
}

/// Time to the first progress in a run's lines: its first record processed, or running
/// with nothing to process.
pub(crate) fn recovery(lines: &[(Duration, String)]) -> Option<Duration> {
    lines
        .iter()
        .find(|(_, l)| l == "processing" || l == "idle" || l == "caught-up")
        .map(|(t, _)| *t)
}

/// Where a kill came, from the lines the run printed.
pub(crate) fn kill_point(lines: &[(Duration, String)]) -> KillPoint {
    if recovery(lines).is_none() {
        return KillPoint::Startup;
    }
    let lag = lines.iter().rev().find_map(|(_, l)| {
        l.split_once(" lag=")
            .and_then(|(_, v)| v.parse::<i64>().ok())
    });
    match lag {
        Some(0) => KillPoint::Idle,
        _ => KillPoint::Processing,
    }
}

/// The app's arguments for a run.
pub(crate) fn app_args(
    dir: &Path,
    guarantee: ProcessingGuarantee,
    exit_when_done: bool,
    kafka: Option<&KafkaTarget>,
) -> Vec<String> {
    let mut args = vec![
        "app".to_string(),
        "--dir".to_string(),
        dir.display().to_string(),
        "--guarantee".to_string(),
        guarantee.as_str().to_string(),
    ];
    if let Some(k) = kafka {
        args.extend([
            "--bootstrap-servers".to_string(),
            k.bootstrap.clone(),
            "--instance".to_string(),
            k.instance.to_string(),
        ]);
    }
    if exit_when_done {
        args.push("--exit-when-done".to_string());
    }
    args
}

/// Sends `SIGSTOP` or `SIGCONT` (`signal`) to process `pid` (with `kill(1)`).
pub(crate) fn signal(pid: u32, signal: &str) -> Result<(), SuiteError> {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .map_err(io(format!("sending SIG{signal} to {pid}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(SuiteError::Child(format!(
            "kill -{signal} {pid} failed ({status})"
        )))
    }
}
