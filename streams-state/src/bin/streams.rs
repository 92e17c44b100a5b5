//! `streams`: the command-line tool of the embedded log engine (topics, produce, consume,
//! consumer groups, application reset), in the spirit of Kafka's `kafka-topics`,
//! `kafka-console-producer`/`-consumer`, `kafka-consumer-groups` and
//! `kafka-streams-application-reset`. See docs/CLI.md.
//!
//! The data directory is locked while an engine has it open, so the tool cannot run beside
//! an app using the same directory: it fails with a clear message instead.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use streams_state::{
    CleanupPolicy, Isolation, LogEngine, NewRecord, TopicConfig, partition_for_key,
};

const USAGE: &str = "\
usage: streams [--data-dir DIR] <command> [args]

The data directory is --data-dir or the STREAMS_DATA_DIR environment variable.

commands:
  topics create <name> [--partitions N] [--compact] [--retention-ms MS]
                [--retention-bytes B] [--segment-bytes B] [--segment-ms MS]
                [--delete-retention-ms MS]
  topics list
  topics describe <name>
  topics delete <name>
  produce <topic> [--separator SEP] [--null-value STR] [--partition P] [--timestamp MS]
        reads records from stdin, one per line: key SEP value (SEP defaults to a tab);
        a line without SEP is a value with a null key; keyed records are partitioned
        like a Kafka producer (murmur2 of the key), null keys round-robin
  consume <topic> [--from-beginning] [--group G] [--max-messages N] [--partition P]
          [--isolation read_uncommitted|read_committed]
        prints Partition, Offset, Timestamp, key and value (tab-separated) of the records
        from the group's committed offsets (else the start with --from-beginning, else
        the end) up to the end (read_committed: up to the last stable offset, without
        records of aborted transactions), then commits the group's new positions
  verify
        checks every segment of every partition without opening the engine; lists each
        damaged byte range (exit 1 when there is damage other than a torn tail, which
        opening truncates by itself)
  repair
        copies each damaged segment aside (<file>.damaged) and rewrites it with every intact
        batch; the offsets the damage held stay taken (never reused)
  transactions list
        every transactional id: producer id, epoch, state and the partitions of its open
        transaction (topics describe shows each partition's last stable offset)
  groups list
  groups describe <group>
  app-reset --application-id ID [--input-topics a,b]
        resets the group's offsets of the input topics to their start and deletes the
        app's internal topics (<ID>-...-changelog, <ID>-...-repartition)
  serve [--listen HOST:PORT] [--advertise HOST:PORT]
        serves the data directory over the Kafka wire protocol (default listen address
        127.0.0.1:9092; clients are told to connect to --advertise, else the listen
        address) until interrupted (Ctrl-C, SIGTERM); see docs/SERVE.md
  help";

/// Why the tool stopped: bad usage (exit 2), a failed command (exit 1), or a reader of
/// stdout that went away (`streams consume ... | head`: exit 0).
#[derive(Debug)]
enum CliError {
    Usage(String),
    Failed(String),
    BrokenPipe,
}

impl From<streams_state::StateError> for CliError {
    fn from(e: streams_state::StateError) -> Self {
        CliError::Failed(e.to_string())
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            CliError::BrokenPipe
        } else {
            CliError::Failed(e.to_string())
        }
    }
}

type Result<T> = std::result::Result<T, CliError>;

fn usage(msg: impl Into<String>) -> CliError {
    CliError::Usage(msg.into())
}

fn failed(msg: impl Into<String>) -> CliError {
    CliError::Failed(msg.into())
}

/// The arguments left to parse.
struct Args(Vec<String>);

impl Args {
    /// Removes `--name` if present.
    fn flag(&mut self, name: &str) -> bool {
        let before = self.0.len();
        self.0.retain(|a| a != name);
        self.0.len() != before
    }

    /// Removes `--name VALUE` or `--name=VALUE` and returns the value.
    fn value(&mut self, name: &str) -> Result<Option<String>> {
        let prefix = format!("{name}=");
        if let Some(i) = self.0.iter().position(|a| a.starts_with(&prefix)) {
            let a = self.0.remove(i);
            return Ok(Some(a[prefix.len()..].to_string()));
        }
        let Some(i) = self.0.iter().position(|a| a == name) else {
            return Ok(None);
        };
        if i + 1 >= self.0.len() {
            return Err(usage(format!("{name} needs a value")));
        }
        let v = self.0.remove(i + 1);
        self.0.remove(i);
        Ok(Some(v))
    }

    /// Removes `--name NUMBER` and parses it.
    fn number<T: std::str::FromStr>(&mut self, name: &str, what: &str) -> Result<Option<T>> {
        match self.value(name)? {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| usage(format!("{name} expects {what}, got `{v}`"))),
        }
    }

    /// The next positional argument.
    fn positional(&mut self, what: &str) -> Result<String> {
        match self.0.iter().position(|a| !a.starts_with("--")) {
            Some(i) => Ok(self.0.remove(i)),
            None => Err(usage(format!("missing {what}"))),
        }
    }

    /// Fails on anything not consumed.
    fn finish(self) -> Result<()> {
        match self.0.first() {
            None => Ok(()),
            Some(a) if a.starts_with("--") => Err(usage(format!("unknown option `{a}`"))),
            Some(a) => Err(usage(format!("unexpected argument `{a}`"))),
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = run(Args(args), &mut out).and_then(|()| Ok(out.flush()?));
    match result {
        Ok(()) | Err(CliError::BrokenPipe) => ExitCode::SUCCESS,
        Err(CliError::Usage(msg)) => {
            eprintln!("error: {msg}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Err(CliError::Failed(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}

fn run(mut args: Args, out: &mut dyn Write) -> Result<()> {
    if args.0.is_empty() {
        return Err(usage("missing command"));
    }
    if args.flag("--help") || args.flag("-h") || args.0.first().is_some_and(|a| a == "help") {
        writeln!(out, "{USAGE}")?;
        return Ok(());
    }
    let data_dir = match args.value("--data-dir")? {
        Some(d) => PathBuf::from(d),
        None => match std::env::var_os("STREAMS_DATA_DIR") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => {
                return Err(usage(
                    "no data directory: pass --data-dir DIR or set STREAMS_DATA_DIR",
                ));
            }
        },
    };
    let command = args.positional("command")?;
    let sub = match command.as_str() {
        "topics" | "groups" | "transactions" => {
            Some(args.positional(&format!("{command} subcommand"))?)
        }
        _ => None,
    };
    let creates = matches!(
        (command.as_str(), sub.as_deref()),
        ("topics", Some("create")) | ("serve", None)
    );
    if !creates && !data_dir.is_dir() {
        return Err(failed(format!(
            "data directory {} does not exist (create a topic to start one)",
            data_dir.display()
        )));
    }
    let open = || LogEngine::open(&data_dir).map_err(CliError::from);
    if command == "verify" || command == "repair" {
        args.finish()?;
        let repairing = command == "repair";
        let found = if repairing {
            streams_state::repair::repair_log_dir(&data_dir)?
        } else {
            streams_state::repair::verify_log_dir(&data_dir)?
        };
        for d in &found {
            writeln!(
                out,
                "{}\tbytes {}..{}\tfrom offset {}\t{}{}",
                d.file.display(),
                d.from,
                d.to,
                d.first_offset,
                match d.resumes_at {
                    Some(o) => format!("intact again at offset {o}"),
                    None => "nothing intact after it".to_string(),
                },
                if d.torn_tail { "\t(torn tail)" } else { "" }
            )?;
        }
        let damaged = found.iter().filter(|d| !d.torn_tail).count();
        if repairing {
            eprintln!("repaired {} damaged range(s)", found.len());
        } else if damaged > 0 {
            return Err(failed(format!(
                "{damaged} damaged range(s): run `streams repair` to keep every intact batch"
            )));
        } else {
            eprintln!("no damage found");
        }
        return Ok(());
    }
    match (command.as_str(), sub.as_deref()) {
        ("topics", Some("create")) => topics_create(args, &open()?, out),
        ("topics", Some("list")) => {
            args.finish()?;
            let engine = open()?;
            for (name, _) in engine.topics() {
                writeln!(out, "{name}")?;
            }
            for (name, why) in engine.damaged_topics() {
                eprintln!(
                    "warning: topic {name} not opened: {why} (repair or remove its directory)"
                );
            }
            Ok(())
        }
        ("topics", Some("describe")) => topics_describe(args, &open()?, out),
        ("topics", Some("delete")) => {
            let name = args.positional("topic name")?;
            args.finish()?;
            open()?.delete_topic(&name)?;
            writeln!(out, "Deleted topic {name}")?;
            Ok(())
        }
        ("topics", Some(other)) => Err(usage(format!("unknown topics subcommand `{other}`"))),
        ("produce", None) => produce(args, &open()?, out),
        ("consume", None) => consume(args, &open()?, out),
        ("groups", Some("list")) => {
            args.finish()?;
            for g in open()?.groups() {
                writeln!(out, "{g}")?;
            }
            Ok(())
        }
        ("groups", Some("describe")) => groups_describe(args, &open()?, out),
        ("groups", Some(other)) => Err(usage(format!("unknown groups subcommand `{other}`"))),
        ("app-reset", None) => app_reset(args, &open()?, out),
        ("serve", None) => serve(args, &data_dir, out),
        ("transactions", Some("list")) => {
            args.finish()?;
            let engine = open()?;
            let recovered = engine.transaction_recovery();
            if recovered.completed + recovered.aborted > 0 {
                eprintln!(
                    "opening the data directory completed {} and aborted {} transaction(s) a crash left open",
                    recovered.completed, recovered.aborted
                );
            }
            for t in engine.transactions() {
                let partitions: Vec<String> = t
                    .partitions
                    .iter()
                    .map(|(t, p)| format!("{t}-{p}"))
                    .collect();
                writeln!(
                    out,
                    "{}\tProducerId: {}\tEpoch: {}\tState: {:?}\tPartitions: {}",
                    t.transactional_id,
                    t.producer.id,
                    t.producer.epoch,
                    t.state,
                    partitions.join(",")
                )?;
            }
            Ok(())
        }
        ("transactions", Some(other)) => {
            Err(usage(format!("unknown transactions subcommand `{other}`")))
        }
        (other, _) => Err(usage(format!("unknown command `{other}`"))),
    }
}

/// `streams serve`: the data directory over the Kafka protocol until a signal stops it.
fn serve(mut args: Args, data_dir: &std::path::Path, out: &mut dyn Write) -> Result<()> {
    let listen = args
        .value("--listen")?
        .unwrap_or_else(|| "127.0.0.1:9092".to_string());
    let advertised = match args.value("--advertise")? {
        None => None,
        Some(a) => {
            let parsed = a
                .rsplit_once(':')
                .and_then(|(host, port)| Some((host.to_string(), port.parse::<u16>().ok()?)));
            match parsed {
                Some(hp) if !hp.0.is_empty() => Some(hp),
                _ => return Err(usage(format!("--advertise expects HOST:PORT, got `{a}`"))),
            }
        }
    };
    args.finish()?;
    std::fs::create_dir_all(data_dir)?;
    let engine = std::sync::Arc::new(LogEngine::open(data_dir)?);
    let config = streams_state::serve::ServeConfig {
        advertised,
        ..Default::default()
    };
    let handle = streams_state::serve::Server::start_with(engine.clone(), listen.as_str(), config)
        .map_err(|e| failed(e.to_string()))?;
    writeln!(
        out,
        "serving {} over the Kafka protocol on {} (Ctrl-C stops)",
        data_dir.display(),
        handle.local_addr()
    )?;
    out.flush()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                r = tokio::signal::ctrl_c() => r,
                _ = term.recv() => Ok(()),
            }
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c().await
    })?;
    handle.shutdown();
    engine.flush()?;
    eprintln!("stopped");
    Ok(())
}

fn topics_create(mut args: Args, engine: &LogEngine, out: &mut dyn Write) -> Result<()> {
    let name = args.positional("topic name")?;
    let mut config = TopicConfig::new(1);
    if let Some(n) = args.number::<u32>("--partitions", "a positive number")? {
        if n == 0 {
            return Err(usage("--partitions expects a positive number, got `0`"));
        }
        config.partitions = n;
    }
    if args.flag("--compact") {
        config.cleanup = CleanupPolicy::Compact;
    }
    let ms = "a number of milliseconds";
    config.log.retention_ms = args
        .number("--retention-ms", ms)?
        .or(config.log.retention_ms);
    if let Some(b) = args.number("--retention-bytes", "a number of bytes")? {
        config.log.retention_bytes = Some(b);
    }
    if let Some(b) = args.number("--segment-bytes", "a number of bytes")? {
        config.log.segment_bytes = b;
    }
    if let Some(s) = args.number("--segment-ms", ms)? {
        config.log.segment_ms = Some(s);
    }
    if let Some(d) = args.number("--delete-retention-ms", ms)? {
        config.delete_retention_ms = d;
    }
    args.finish()?;
    engine.create_topic(&name, config)?;
    writeln!(out, "Created topic {name}")?;
    Ok(())
}

fn describe_config(c: &TopicConfig) -> String {
    let cleanup = match c.cleanup {
        CleanupPolicy::Delete => "delete",
        CleanupPolicy::Compact => "compact",
    };
    format!(
        "cleanup.policy={cleanup},retention.ms={},retention.bytes={},segment.bytes={},\
         segment.ms={},delete.retention.ms={}",
        c.log.retention_ms.unwrap_or(-1),
        c.log.retention_bytes.map_or(-1, |b| b as i128),
        c.log.segment_bytes,
        c.log.segment_ms.unwrap_or(-1),
        c.delete_retention_ms
    )
}

fn topic(engine: &LogEngine, name: &str) -> Result<TopicConfig> {
    engine
        .topic_config(name)
        .ok_or_else(|| failed(format!("topic `{name}` does not exist")))
}

fn topics_describe(mut args: Args, engine: &LogEngine, out: &mut dyn Write) -> Result<()> {
    let name = args.positional("topic name")?;
    args.finish()?;
    let config = topic(engine, &name)?;
    writeln!(
        out,
        "Topic: {name}\tPartitions: {}\tConfigs: {}",
        config.partitions,
        describe_config(&config)
    )?;
    for p in 0..config.partitions {
        let (start, end) = engine.offsets(&name, p)?;
        let stable = engine.last_stable_offset(&name, p)?;
        let open: Vec<String> = engine
            .open_transactions(&name, p)?
            .into_iter()
            .map(|(producer, first)| format!("{producer}@{first}"))
            .collect();
        writeln!(
            out,
            "\tTopic: {name}\tPartition: {p}\tStartOffset: {start}\tEndOffset: {end}\tLastStableOffset: {stable}{}",
            if open.is_empty() {
                String::new()
            } else {
                format!("\tOpenTransactions: {}", open.join(","))
            }
        )?;
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn produce(mut args: Args, engine: &LogEngine, out: &mut dyn Write) -> Result<()> {
    let name = args.positional("topic name")?;
    let separator = args.value("--separator")?.unwrap_or_else(|| "\t".into());
    if separator.is_empty() {
        return Err(usage("--separator must not be empty"));
    }
    let null_value = args.value("--null-value")?;
    let explicit: Option<u32> = args.number("--partition", "a partition number")?;
    let timestamp: Option<i64> = args.number("--timestamp", "milliseconds since the epoch")?;
    args.finish()?;
    let config = topic(engine, &name)?;
    if let Some(p) = explicit
        && p >= config.partitions
    {
        return Err(failed(format!(
            "topic `{name}` has {} partitions, there is no partition {p}",
            config.partitions
        )));
    }
    let mut by_partition: Vec<Vec<NewRecord>> = vec![Vec::new(); config.partitions as usize];
    let mut round_robin = 0u32;
    let mut count = 0u64;
    let flush = |by_partition: &mut Vec<Vec<NewRecord>>| -> Result<()> {
        for (p, records) in by_partition.iter_mut().enumerate() {
            if !records.is_empty() {
                engine.append(&name, p as u32, records)?;
                records.clear();
            }
        }
        Ok(())
    };
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let (key, value) = match line.split_once(separator.as_str()) {
            Some((k, v)) => (Some(k.as_bytes().to_vec()), v.to_string()),
            None => (None, line),
        };
        let value = (null_value.as_deref() != Some(value.as_str())).then(|| value.into_bytes());
        let partition = match (explicit, &key) {
            (Some(p), _) => p,
            (None, Some(k)) => partition_for_key(k, config.partitions),
            (None, None) => {
                let p = round_robin % config.partitions;
                round_robin = round_robin.wrapping_add(1);
                p
            }
        };
        by_partition[partition as usize].push(NewRecord {
            timestamp: timestamp.unwrap_or_else(now_ms),
            key,
            value,
            headers: Vec::new(),
        });
        count += 1;
        if count.is_multiple_of(10_000) {
            flush(&mut by_partition)?;
        }
    }
    flush(&mut by_partition)?;
    engine.flush()?;
    writeln!(out, "Produced {count} records to {name}")?;
    Ok(())
}

fn show(bytes: &Option<Vec<u8>>) -> std::borrow::Cow<'_, str> {
    match bytes {
        Some(b) => String::from_utf8_lossy(b),
        None => "null".into(),
    }
}

fn consume(mut args: Args, engine: &LogEngine, out: &mut dyn Write) -> Result<()> {
    let name = args.positional("topic name")?;
    let from_beginning = args.flag("--from-beginning");
    let group = args.value("--group")?;
    let max: Option<u64> = args.number("--max-messages", "a number of records")?;
    let only: Option<u32> = args.number("--partition", "a partition number")?;
    let isolation = match args.value("--isolation")?.as_deref() {
        None | Some("read_uncommitted") => Isolation::ReadUncommitted,
        Some("read_committed") => Isolation::ReadCommitted,
        Some(other) => {
            return Err(usage(format!(
                "--isolation `{other}`: expected read_uncommitted or read_committed"
            )));
        }
    };
    args.finish()?;
    let config = topic(engine, &name)?;
    let partitions: Vec<u32> = match only {
        Some(p) if p >= config.partitions => {
            return Err(failed(format!(
                "topic `{name}` has {} partitions, there is no partition {p}",
                config.partitions
            )));
        }
        Some(p) => vec![p],
        None => (0..config.partitions).collect(),
    };
    let mut printed = 0u64;
    let mut positions = Vec::new();
    for p in partitions {
        let (start, end) = engine.offsets(&name, p)?;
        let end = match isolation {
            Isolation::ReadCommitted => engine.last_stable_offset(&name, p)?,
            Isolation::ReadUncommitted => end,
        };
        let committed = group.as_deref().and_then(|g| engine.committed(g, &name, p));
        let mut next = match committed {
            Some(o) => o.max(start),
            None if from_beginning => start,
            None => end,
        };
        while next < end && max.is_none_or(|m| printed < m) {
            let read = engine.read_with(&name, p, next, 1 << 20, isolation)?;
            let all = max.is_none_or(|m| printed + read.records.len() as u64 <= m);
            let skipped_to = read.next_offset;
            for r in read.records {
                if max.is_some_and(|m| printed >= m) {
                    break;
                }
                writeln!(
                    out,
                    "Partition:{p}\tOffset:{}\tTimestamp:{}\t{}\t{}",
                    r.offset,
                    r.timestamp,
                    show(&r.key),
                    show(&r.value)
                )?;
                printed += 1;
                next = r.offset + 1;
            }
            if all {
                // Past compacted gaps, markers and aborted records.
                next = next.max(skipped_to);
            }
        }
        positions.push((p, next));
    }
    if let Some(g) = &group {
        let offsets: Vec<(&str, u32, i64)> = positions
            .iter()
            .map(|(p, o)| (name.as_str(), *p, *o))
            .collect();
        engine.commit_offsets(g, &offsets)?;
    }
    eprintln!("Processed a total of {printed} messages");
    Ok(())
}

fn groups_describe(mut args: Args, engine: &LogEngine, out: &mut dyn Write) -> Result<()> {
    let group = args.positional("group id")?;
    args.finish()?;
    let offsets = engine
        .group_offsets(&group)
        .ok_or_else(|| failed(format!("group `{group}` does not exist")))?;
    let mut rows = vec![[
        "GROUP".to_string(),
        "TOPIC".into(),
        "PARTITION".into(),
        "CURRENT-OFFSET".into(),
        "LOG-END-OFFSET".into(),
        "LAG".into(),
    ]];
    for (t, p, committed) in offsets {
        let (end, lag) = match engine.offsets(&t, p) {
            Ok((_, end)) => (end.to_string(), (end - committed).max(0).to_string()),
            Err(_) => ("-".to_string(), "-".to_string()),
        };
        rows.push([
            group.clone(),
            t,
            p.to_string(),
            committed.to_string(),
            end,
            lag,
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    Ok(())
}

fn app_reset(mut args: Args, engine: &LogEngine, out: &mut dyn Write) -> Result<()> {
    let app = args
        .value("--application-id")?
        .ok_or_else(|| usage("app-reset needs --application-id"))?;
    let inputs: Vec<String> = args
        .value("--input-topics")?
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    args.finish()?;
    // Check everything before changing anything.
    let mut resets = Vec::new();
    for t in &inputs {
        let config =
            topic(engine, t).map_err(|_| failed(format!("input topic `{t}` does not exist")))?;
        for p in 0..config.partitions {
            resets.push((t.as_str(), p, engine.offsets(t, p)?.0));
        }
    }
    let prefix = format!("{app}-");
    let internal: Vec<String> = engine
        .topics()
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| {
            n.len() > prefix.len()
                && n.starts_with(&prefix)
                && (n.ends_with("-changelog") || n.ends_with("-repartition"))
        })
        .collect();
    if !resets.is_empty() {
        engine.commit_offsets(&app, &resets)?;
        for (t, p, o) in &resets {
            writeln!(out, "Reset offset of group {app} for {t}-{p} to {o}")?;
        }
    }
    for t in &internal {
        engine.delete_topic(t)?;
        writeln!(out, "Deleted internal topic {t}")?;
    }
    writeln!(
        out,
        "Done. Local state stores are not touched: delete <state.dir>/{app} before \
         restarting the app."
    )?;
    Ok(())
}
