//! The driver: generates the input, kills the app again and again (or pauses one of its
//! instances), runs it to the end once more and checks every output.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use streams_core::config::ProcessingGuarantee;
use streams_core::runtime::{Isolation, LogEngine};

use super::app::KafkaTarget;
use super::checks::{decode, read_output, read_partition};
use super::error::io;
use super::input::{SplitMix, default_start_ms, generate};
use super::run::{Run, app_args, kill_point, recovery, signal};
use super::summary::KillPoint;
use super::{
    DEFAULT_RECORDS, OUTPUTS, PAGE_COUNTS, PARTITIONS, SuiteError, Summary, WINDOW_COUNTS,
    check_joined, check_page_counts, check_window_counts, generate_events,
};

/// What `drive` does.
#[derive(Debug, Clone)]
pub(crate) struct DriveOptions {
    /// The suite's directory (the engine in `log`, state in `state`, app logs in `logs`).
    pub(crate) dir: PathBuf,
    /// Input records (views, clicks and 8 sentinels).
    pub(crate) records: usize,
    /// Times the app is killed before the final run.
    pub(crate) kills: usize,
    /// The guarantee the app runs with.
    pub(crate) guarantee: ProcessingGuarantee,
    /// Seeds the input and the kill times.
    pub(crate) seed: u64,
    /// Event time of the first view.
    pub(crate) start_ms: i64,
    /// A kill comes this long after the app starts, at least...
    pub(crate) kill_after_min: Duration,
    /// ... and at most.
    pub(crate) kill_after_max: Duration,
    /// How long the final run may take.
    pub(crate) final_timeout: Duration,
    /// `Some(n)`: serve the engine over the Kafka protocol and run `n` instances through
    /// librdkafka; `None`: one app process on the embedded engine.
    pub(crate) instances: Option<usize>,
    /// With `instances`: instead of killing an instance, stop it (`SIGSTOP`) this long,
    /// past its session timeout, then resume it (`SIGCONT`): a zombie whose tasks moved.
    pub(crate) pause_instead_of_kill: Option<Duration>,
}

impl DriveOptions {
    /// The defaults: 200 000 records, seed 1, kills 300 ms to 3 s after each start, 30
    /// minutes for the final run.
    pub(crate) fn new(dir: PathBuf, kills: usize, guarantee: ProcessingGuarantee) -> Self {
        Self {
            dir,
            records: DEFAULT_RECORDS,
            kills,
            guarantee,
            seed: 1,
            start_ms: default_start_ms(),
            kill_after_min: Duration::from_millis(300),
            kill_after_max: Duration::from_millis(3_000),
            final_timeout: Duration::from_secs(1_800),
            instances: None,
            pause_instead_of_kill: None,
        }
    }
}

/// Generates the input, kills the app `kills` times at seeded random moments, runs it to
/// the end once more and checks every output. `app_command` makes the command that runs
/// the app with the given arguments (this binary's `app` subcommand, or a test's child).
///
/// With `opts.instances` set, the engine is served over the Kafka protocol (`streams
/// serve`, in this process) and that many app instances run as one group through
/// librdkafka; each kill hits one of them at random, which is restarted at once.
pub(crate) fn drive(
    opts: &DriveOptions,
    app_command: &dyn Fn(&[String]) -> Command,
) -> Result<Summary, SuiteError> {
    let logs = opts.dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(io(format!("creating {}", logs.display())))?;
    let events = generate_events(opts.records, opts.seed, opts.start_ms);
    generate(&opts.dir, &events)?;
    let mut rng = SplitMix::new(opts.seed ^ 0x6b69_6c6c);
    let mut kills = Kills::default();
    let (engine, final_run, lines) = match opts.instances {
        None => {
            for i in 0..opts.kills {
                let after = kills.after(opts, &mut rng);
                let mut run = Run::spawn(
                    app_command(&app_args(&opts.dir, opts.guarantee, false, None)),
                    logs.join(format!("run-{i:03}.log")),
                )?;
                let mut exited = run.wait_until(run.spawned + after)?;
                if exited.is_none()
                    && i + 1 == opts.kills
                    && !kills.points.contains(&KillPoint::Processing)
                {
                    // Every kill so far came before the app got going (a loaded machine
                    // makes startup outlast the kill delays): the last one waits for it to
                    // process, then comes within half a second, so that every drive kills
                    // an app mid-processing at least once.
                    exited = run.wait_for_progress(run.spawned + opts.final_timeout)?;
                    if exited.is_none() {
                        let extra = Duration::from_millis(rng.below(500));
                        exited = run.wait_until(Instant::now() + extra)?;
                    }
                }
                if let Some(status) = exited {
                    let tail = run.log_tail();
                    return Err(SuiteError::Child(format!(
                        "run {i} exited by itself ({status}) before its kill\n{tail}"
                    )));
                }
                let after = run.spawned.elapsed();
                kills.record(opts, after, None, i > 0, run.kill()?);
            }
            let (final_run, lines) = final_run(
                opts,
                app_command(&app_args(&opts.dir, opts.guarantee, true, None)),
                logs.join("final.log"),
            )?;
            (
                Arc::new(LogEngine::open(&opts.dir.join("log"))?),
                final_run,
                lines,
            )
        }
        Some(instances) => {
            let engine = Arc::new(LogEngine::open(&opts.dir.join("log"))?);
            let server = streams_state::serve::Server::start(engine.clone(), "127.0.0.1:0")?;
            let target = |instance| KafkaTarget {
                bootstrap: server.bootstrap_servers(),
                instance,
            };
            let spawn = |instance: usize, n: usize| {
                Run::spawn(
                    app_command(&app_args(
                        &opts.dir,
                        opts.guarantee,
                        false,
                        Some(&target(instance)),
                    )),
                    logs.join(format!("instance-{instance}-run-{n:03}.log")),
                )
            };
            let mut runs = Vec::with_capacity(instances);
            for instance in 0..instances.max(1) {
                runs.push((spawn(instance, 0)?, 0));
            }
            for _ in 0..opts.kills {
                let after = kills.after(opts, &mut rng);
                let victim = rng.below(runs.len() as u64) as usize;
                std::thread::sleep(after);
                for (instance, (run, _)) in runs.iter_mut().enumerate() {
                    if let Some(status) = run.child.try_wait().map_err(io("waiting for the app"))? {
                        let tail = run.log_tail();
                        return Err(SuiteError::Child(format!(
                            "instance {instance} exited by itself ({status})\n{tail}"
                        )));
                    }
                }
                if let Some(pause) = opts.pause_instead_of_kill {
                    // A zombie: stopped past its session (and transaction) timeout while
                    // the group moves its tasks, then resumed.
                    let pid = runs[victim].0.child.id();
                    signal(pid, "STOP")?;
                    std::thread::sleep(pause);
                    signal(pid, "CONT")?;
                    kills.pauses += 1;
                    eprintln!(
                        "fault_suite: paused instance {victim} for {} ms, {} ms after the previous event",
                        pause.as_millis(),
                        after.as_millis()
                    );
                    continue;
                }
                let n = runs[victim].1 + 1;
                let (old, first) = std::mem::replace(&mut runs[victim], (spawn(victim, n)?, n));
                kills.record(opts, after, Some(victim), first > 0, old.kill()?);
            }
            // The last runs are killed too; one instance then runs to the end alone.
            for (run, n) in runs {
                let lines = run.kill()?;
                if n > 0
                    && let Some(t) = recovery(&lines)
                {
                    kills.recoveries.push(t);
                }
            }
            let (final_run, lines) = final_run(
                opts,
                app_command(&app_args(&opts.dir, opts.guarantee, true, Some(&target(0)))),
                logs.join("final.log"),
            )?;
            server.shutdown();
            (engine, final_run, lines)
        }
    };
    if opts.kills > 0
        && let Some(t) = recovery(&lines)
    {
        kills.recoveries.push(t);
    }
    let final_run_dropped = lines
        .iter()
        .find_map(|(_, l)| {
            l.strip_prefix("done ")
                .and_then(|r| r.split_once("dropped="))
                .and_then(|(_, d)| d.parse::<u64>().ok())
        })
        .unwrap_or(0);
    eprintln!(
        "fault_suite: final run {} ms; checking the outputs",
        final_run.as_millis()
    );

    let mut outputs = BTreeMap::new();
    let mut uncommitted_output_records = 0;
    for topic in OUTPUTS {
        let mut records = Vec::new();
        let mut visible_uncommitted = 0;
        for p in 0..PARTITIONS {
            let part = read_output(&engine, topic, p)?;
            visible_uncommitted += read_partition(&engine, topic, p, Isolation::ReadUncommitted)?
                .len()
                .saturating_sub(part.len());
            records.extend(decode(topic, part)?);
        }
        uncommitted_output_records += visible_uncommitted;
        let check = match topic {
            PAGE_COUNTS => check_page_counts(&events, &records),
            WINDOW_COUNTS => check_window_counts(&events, &records),
            _ => check_joined(&events, &records),
        };
        outputs.insert(topic, check);
    }
    Ok(Summary {
        engine: if opts.instances.is_some() {
            "serve"
        } else {
            "embedded"
        },
        instances: opts.instances.unwrap_or(1),
        guarantee: opts.guarantee,
        kills: kills.done,
        records_in: events.values().map(Vec::len).sum(),
        outputs,
        recoveries: kills.recoveries,
        kill_points: kills.points,
        pauses: kills.pauses,
        uncommitted_output_records,
        final_run_dropped,
        final_run,
    })
}

/// What the kills of a drive found.
#[derive(Default)]
struct Kills {
    done: usize,
    pauses: usize,
    recoveries: Vec<Duration>,
    points: Vec<KillPoint>,
}

impl Kills {
    /// How long until the next kill (seeded).
    fn after(&self, opts: &DriveOptions, rng: &mut SplitMix) -> Duration {
        let (min, max) = (
            opts.kill_after_min.as_millis() as u64,
            opts.kill_after_max.as_millis() as u64,
        );
        Duration::from_millis(min + rng.below(max.saturating_sub(min) + 1))
    }

    /// Records a kill of a run that printed `lines` (`restarted`: the run followed a kill,
    /// so its time to first progress is a recovery).
    fn record(
        &mut self,
        opts: &DriveOptions,
        after: Duration,
        instance: Option<usize>,
        restarted: bool,
        lines: Vec<(Duration, String)>,
    ) {
        self.done += 1;
        if restarted && let Some(t) = recovery(&lines) {
            self.recoveries.push(t);
        }
        let point = kill_point(&lines);
        eprintln!(
            "fault_suite: kill {}/{}{} after {} ms ({point:?}); time to first progress {}",
            self.done,
            opts.kills,
            instance.map_or(String::new(), |i| format!(" of instance {i}")),
            after.as_millis(),
            recovery(&lines).map_or("-".to_string(), |t| format!("{} ms", t.as_millis()))
        );
        self.points.push(point);
    }
}

/// Runs the app to the end (`command` has `--exit-when-done`); its duration and lines.
fn final_run(
    opts: &DriveOptions,
    command: Command,
    log: PathBuf,
) -> Result<(Duration, Vec<(Duration, String)>), SuiteError> {
    let mut run = Run::spawn(command, log)?;
    let status = run.wait_until(run.spawned + opts.final_timeout)?;
    let took = run.spawned.elapsed();
    let tail = run.log_tail();
    match status {
        Some(s) if s.success() => Ok((took, run.finish())),
        Some(s) => Err(SuiteError::Child(format!(
            "the final run failed ({s})\n{tail}"
        ))),
        None => {
            let _ = run.kill();
            Err(SuiteError::Child(format!(
                "the final run did not finish within {:?}\n{tail}",
                opts.final_timeout
            )))
        }
    }
}
