//! The command line: `generate`, `app` and `drive`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::app::{KafkaTarget, parse_guarantee, run_app};
use super::error::io;
use super::input::{default_start_ms, generate};
use super::{DEFAULT_RECORDS, DriveOptions, SuiteError, drive, generate_events};

const USAGE: &str = "\
fault_suite: the exactly-once fault suite (docs/RELIABILITY.md)

USAGE:
  fault_suite generate --dir D [--records N] [--seed S] [--start-ms MS]
      write the deterministic input (N >= 200000, default 200000) into the engine at D/log
  fault_suite app --dir D --guarantee at_least_once|exactly_once_v2 [--exit-when-done]
                  [--bootstrap-servers HOST:PORT [--instance I]]
      run one app instance on D/log (state in D/state), or on a Kafka-protocol broker
      (state in D/state-I); with --exit-when-done exit 0 once all input is processed and
      committed, after a clean close
  fault_suite drive --dir D --kills K --guarantee G [--seed S] [--records N]
                    [--start-ms MS] [--kill-min-ms A] [--kill-max-ms B]
                    [--final-timeout-secs T] [--instances N [--pause-ms P]]
      generate, SIGKILL the app K times A..B ms (default 300..3000, seeded) after each
      start, run it to the end, check every output; prints one JSON line; exits 1 on a
      lost result, or a duplicated one under exactly_once_v2. With --instances N the
      engine is served over the Kafka protocol (streams serve, in the driver) and N app
      instances run as one group through librdkafka: each kill hits one at random, A..B ms
      after the previous kill, and it is restarted at once; at the end all are killed and
      one runs to the end alone. With --pause-ms P an instance is not killed but stopped
      (SIGSTOP) for P ms, past its session timeout, and resumed: a zombie
";

/// Flags of a subcommand.
struct Flags {
    values: HashMap<String, String>,
    switches: Vec<String>,
}

impl Flags {
    fn parse(args: &[String], switches: &[&str]) -> Result<Self, SuiteError> {
        let mut values = HashMap::new();
        let mut found = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if switches.contains(&a.as_str()) {
                found.push(a.clone());
            } else if a.starts_with("--") {
                let v = it
                    .next()
                    .ok_or_else(|| SuiteError::Usage(format!("{a} needs a value\n\n{USAGE}")))?;
                values.insert(a.clone(), v.clone());
            } else {
                return Err(SuiteError::Usage(format!("unexpected {a:?}\n\n{USAGE}")));
            }
        }
        Ok(Self {
            values,
            switches: found,
        })
    }

    fn take(&mut self, name: &str) -> Option<String> {
        self.values.remove(name)
    }

    fn required(&mut self, name: &str) -> Result<String, SuiteError> {
        self.take(name)
            .ok_or_else(|| SuiteError::Usage(format!("{name} is required\n\n{USAGE}")))
    }

    fn number<T: std::str::FromStr>(&mut self, name: &str) -> Result<Option<T>, SuiteError> {
        self.take(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| SuiteError::Usage(format!("{name} {v}: not a number")))
            })
            .transpose()
    }

    fn has(&self, switch: &str) -> bool {
        self.switches.iter().any(|s| s == switch)
    }

    /// Fails on a flag nobody took.
    fn done(self) -> Result<(), SuiteError> {
        match self.values.keys().next() {
            Some(k) => Err(SuiteError::Usage(format!("unknown flag {k}\n\n{USAGE}"))),
            None => Ok(()),
        }
    }
}

fn records_flag(flags: &mut Flags) -> Result<usize, SuiteError> {
    let n = flags.number("--records")?.unwrap_or(DEFAULT_RECORDS);
    if n < DEFAULT_RECORDS {
        return Err(SuiteError::Usage(format!(
            "--records {n}: at least {DEFAULT_RECORDS}"
        )));
    }
    Ok(n)
}

/// Runs a command line (without the program name); returns the process exit code.
pub(crate) fn run_cli(args: &[String]) -> Result<i32, SuiteError> {
    let Some((command, rest)) = args.split_first() else {
        return Err(SuiteError::Usage(USAGE.to_string()));
    };
    match command.as_str() {
        "generate" => {
            let mut f = Flags::parse(rest, &[])?;
            let dir = PathBuf::from(f.required("--dir")?);
            let records = records_flag(&mut f)?;
            let seed = f.number("--seed")?.unwrap_or(1);
            let start_ms = f.number("--start-ms")?.unwrap_or_else(default_start_ms);
            f.done()?;
            let events = generate_events(records, seed, start_ms);
            generate(&dir, &events)?;
            println!(
                "{} records written to {}",
                events.values().map(Vec::len).sum::<usize>(),
                dir.join("log").display()
            );
            Ok(0)
        }
        "app" => {
            let mut f = Flags::parse(rest, &["--exit-when-done"])?;
            let dir = PathBuf::from(f.required("--dir")?);
            let guarantee = parse_guarantee(&f.required("--guarantee")?)?;
            let exit_when_done = f.has("--exit-when-done");
            let kafka = match f.take("--bootstrap-servers") {
                Some(bootstrap) => Some(KafkaTarget {
                    bootstrap,
                    instance: f.number("--instance")?.unwrap_or(0),
                }),
                None => None,
            };
            f.done()?;
            run_app(&dir, guarantee, exit_when_done, kafka.as_ref())?;
            Ok(0)
        }
        "drive" => {
            let mut f = Flags::parse(rest, &[])?;
            let dir = PathBuf::from(f.required("--dir")?);
            let kills = f
                .number("--kills")?
                .ok_or_else(|| SuiteError::Usage(format!("--kills is required\n\n{USAGE}")))?;
            let guarantee = parse_guarantee(&f.required("--guarantee")?)?;
            let mut opts = DriveOptions::new(dir, kills, guarantee);
            opts.records = records_flag(&mut f)?;
            if let Some(seed) = f.number("--seed")? {
                opts.seed = seed;
            }
            if let Some(start) = f.number("--start-ms")? {
                opts.start_ms = start;
            }
            if let Some(ms) = f.number("--kill-min-ms")? {
                opts.kill_after_min = Duration::from_millis(ms);
            }
            if let Some(ms) = f.number("--kill-max-ms")? {
                opts.kill_after_max = Duration::from_millis(ms);
            }
            if opts.kill_after_max < opts.kill_after_min {
                return Err(SuiteError::Usage(
                    "--kill-max-ms is below --kill-min-ms".to_string(),
                ));
            }
            if let Some(t) = f.number("--final-timeout-secs")? {
                opts.final_timeout = Duration::from_secs(t);
            }
            opts.instances = f.number("--instances")?;
            opts.pause_instead_of_kill = f.number("--pause-ms")?.map(Duration::from_millis);
            if opts.pause_instead_of_kill.is_some() && opts.instances.is_none() {
                return Err(SuiteError::Usage(
                    "--pause-ms needs --instances".to_string(),
                ));
            }
            if opts.instances == Some(0) {
                return Err(SuiteError::Usage("--instances 0: at least 1".to_string()));
            }
            f.done()?;
            let exe = std::env::current_exe().map_err(io("finding this program"))?;
            let summary = drive(&opts, &|args| {
                let mut c = Command::new(&exe);
                c.args(args);
                c
            })?;
            println!("{summary}");
            Ok(if summary.passed() { 0 } else { 1 })
        }
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(0)
        }
        other => Err(SuiteError::Usage(format!(
            "unknown command {other:?}\n\n{USAGE}"
        ))),
    }
}
