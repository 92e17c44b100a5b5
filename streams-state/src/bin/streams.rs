//! `streams`: the command-line tool of the embedded log engine (topics, produce, consume,
//! consumer groups, application reset), in the spirit of Kafka's `kafka-topics`,
//! `kafka-console-producer`/`-consumer`, `kafka-consumer-groups` and
//! `kafka-streams-application-reset`. See docs/CLI.md.
//!
//! The command line is parsed by `clap` (derive); its usage errors keep this tool's wording
//! (`unknown option `--bogus``, `--partitions expects a positive number, got `x``) on the
//! first line, followed by clap's tips and usage.
//!
//! The data directory is locked while an engine has it open, so the tool cannot run beside
//! an app using the same directory: it fails with a clear message instead.

use std::ffi::OsString;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::builder::TypedValueParser;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use streams_state::{
    CleanupPolicy, Isolation, LogEngine, NewRecord, TopicConfig, partition_for_key,
};

/// mimalloc: glibc's malloc cost about a third of a stream thread's time (docs/PERFORMANCE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The help layout of every (sub)command: clap's default with a lower-case `usage:`.
const HELP_TEMPLATE: &str = "\
{before-help}{about-with-newline}
usage: {usage}

{all-args}{after-help}";

/// Inspects and edits the data directory of the embedded log engine.
///
/// In the spirit of Kafka's `kafka-topics`, `kafka-console-producer`/`-consumer`,
/// `kafka-consumer-groups` and `kafka-streams-application-reset`. The data directory is
/// --data-dir or the STREAMS_DATA_DIR environment variable; it is locked while an engine
/// (a running app) has it open. See docs/CLI.md.
#[derive(Debug, Parser)]
#[command(name = "streams", version)]
struct Cli {
    /// The data directory of the log engine (anywhere on the command line)
    // Parsed as an OsString: an empty STREAMS_DATA_DIR counts as unset (see `data_dir`).
    #[arg(
        long,
        global = true,
        env = "STREAMS_DATA_DIR",
        value_name = "DIR",
        value_parser = clap::builder::OsStringValueParser::new().map(PathBuf::from)
    )]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// The commands of the tool.
#[derive(Debug, Subcommand)]
enum Command {
    /// Creates, lists, describes and deletes topics
    #[command(subcommand)]
    Topics(TopicsCommand),
    /// Reads records from stdin, one per line: key SEP value
    ///
    /// SEP defaults to a tab; a line without SEP is a value with a null key; keyed records
    /// are partitioned like a Kafka producer (murmur2 of the key), null keys round-robin.
    Produce(ProduceArgs),
    /// Prints the records of a topic up to its current end
    ///
    /// Prints Partition, Offset, Timestamp, key and value (tab-separated) of the records
    /// from the group's committed offsets (else the start with --from-beginning, else the
    /// end) up to the end (read_committed: up to the last stable offset, without records of
    /// aborted transactions), then commits the group's new positions.
    Consume(ConsumeArgs),
    /// Checks every segment of every partition without opening the engine
    ///
    /// Lists each damaged byte range (exit 1 when there is damage other than a torn tail,
    /// which opening truncates by itself).
    Verify,
    /// Rewrites damaged segments with every intact batch
    ///
    /// Copies each damaged segment aside (<file>.damaged) and rewrites it with every intact
    /// batch; the offsets the damage held stay taken (never reused).
    Repair,
    /// Lists transactional ids
    #[command(subcommand)]
    Transactions(TransactionsCommand),
    /// Lists and describes consumer groups
    #[command(subcommand)]
    Groups(GroupsCommand),
    /// Resets an application's input offsets and deletes its internal topics
    ///
    /// Resets the group's offsets of the input topics to their start and deletes the app's
    /// internal topics (<ID>-...-changelog, <ID>-...-repartition).
    AppReset(AppResetArgs),
    /// Serves the data directory over the Kafka wire protocol until interrupted
    ///
    /// Default listen address 127.0.0.1:9092; clients are told to connect to --advertise,
    /// else the listen address. Runs until interrupted (Ctrl-C, SIGTERM); see docs/SERVE.md.
    Serve(ServeArgs),
    /// Prints a shell completion script for `streams`
    ///
    /// For example `streams completions bash > ~/.local/share/bash-completion/completions/streams`.
    /// Needs no data directory.
    Completions {
        /// The shell to complete in
        shell: clap_complete::Shell,
    },
}

/// `streams topics ...`.
#[derive(Debug, Subcommand)]
enum TopicsCommand {
    /// Creates a topic (and the data directory if missing)
    Create(CreateArgs),
    /// Lists the topics
    List,
    /// Shows a topic's configuration and each partition's offsets
    ///
    /// Start, end and last stable offset of each partition, and the open transactions.
    Describe {
        /// The topic
        #[arg(value_name = "TOPIC")]
        name: String,
    },
    /// Deletes a topic and every group's committed offsets for it
    Delete {
        /// The topic
        #[arg(value_name = "TOPIC")]
        name: String,
    },
}

/// `streams transactions ...`.
#[derive(Debug, Subcommand)]
enum TransactionsCommand {
    /// Every transactional id: producer id, epoch, state and open partitions
    ///
    /// Every transactional id: producer id, epoch, state and the partitions of its open
    /// transaction (topics describe shows each partition's last stable offset).
    List,
}

/// `streams groups ...`.
#[derive(Debug, Subcommand)]
enum GroupsCommand {
    /// Lists the consumer groups
    List,
    /// Shows a group's committed offsets and lag per partition
    Describe {
        /// The group id (a streams app's group is its application.id)
        #[arg(value_name = "GROUP")]
        group: String,
    },
}

/// `streams topics create`.
#[derive(Debug, Args)]
struct CreateArgs {
    /// The topic
    #[arg(value_name = "TOPIC")]
    name: String,
    /// Number of partitions [default: 1]
    #[arg(long, value_name = "N", value_parser = positive_u32)]
    partitions: Option<u32>,
    /// Compacted topic (cleanup.policy=compact) instead of delete
    #[arg(long)]
    compact: bool,
    /// Deletes segments older than this (retention.ms)
    #[arg(long, value_name = "MS", value_parser = milliseconds, allow_negative_numbers = true)]
    retention_ms: Option<i64>,
    /// Deletes the oldest segments beyond this size per partition (retention.bytes)
    #[arg(long, value_name = "B", value_parser = bytes)]
    retention_bytes: Option<u64>,
    /// Rolls a segment at this size (segment.bytes)
    #[arg(long, value_name = "B", value_parser = bytes)]
    segment_bytes: Option<u64>,
    /// Rolls a segment at this age (segment.ms)
    #[arg(long, value_name = "MS", value_parser = milliseconds, allow_negative_numbers = true)]
    segment_ms: Option<i64>,
    /// Keeps tombstones of a compacted topic this long (delete.retention.ms)
    #[arg(long, value_name = "MS", value_parser = milliseconds, allow_negative_numbers = true)]
    delete_retention_ms: Option<i64>,
}

/// `streams produce`.
#[derive(Debug, Args)]
struct ProduceArgs {
    /// The topic
    #[arg(value_name = "TOPIC")]
    topic: String,
    /// Separates key and value on a line [default: a tab]
    #[arg(long, value_name = "SEP", value_parser = not_empty, allow_hyphen_values = true)]
    separator: Option<String>,
    /// A value equal to STR is a null value (a tombstone on a compacted topic)
    #[arg(long, value_name = "STR", allow_hyphen_values = true)]
    null_value: Option<String>,
    /// Writes every record to partition P
    #[arg(long, value_name = "P", value_parser = partition_number)]
    partition: Option<u32>,
    /// The records' timestamp in milliseconds since the epoch [default: now]
    #[arg(long, value_name = "MS", value_parser = timestamp, allow_negative_numbers = true)]
    timestamp: Option<i64>,
}

/// `streams consume`.
#[derive(Debug, Args)]
struct ConsumeArgs {
    /// The topic
    #[arg(value_name = "TOPIC")]
    topic: String,
    /// Starts at the start of each partition when the group has no committed offset
    #[arg(long)]
    from_beginning: bool,
    /// Starts at the group's committed offsets and commits the positions reached
    #[arg(long, value_name = "G")]
    group: Option<String>,
    /// Stops after N records
    #[arg(long, value_name = "N", value_parser = record_count)]
    max_messages: Option<u64>,
    /// Reads partition P only
    #[arg(long, value_name = "P", value_parser = partition_number)]
    partition: Option<u32>,
    /// read_committed reads up to the last stable offset, skipping aborted transactions
    #[arg(long, value_enum, default_value = "read_uncommitted")]
    isolation: IsolationArg,
}

/// `--isolation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum IsolationArg {
    /// Every record, as Kafka's console consumer reads
    #[value(name = "read_uncommitted")]
    ReadUncommitted,
    /// Only committed records, up to the last stable offset
    #[value(name = "read_committed")]
    ReadCommitted,
}

/// `streams app-reset`.
#[derive(Debug, Args)]
struct AppResetArgs {
    /// The application.id (the app's group and internal topic prefix)
    #[arg(long, value_name = "ID")]
    application_id: String,
    /// Comma-separated input topics whose offsets go back to the start
    #[arg(long, value_name = "a,b")]
    input_topics: Option<String>,
}

/// `streams serve`.
#[derive(Debug, Args)]
struct ServeArgs {
    /// The address to listen on
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9092")]
    listen: String,
    /// The address clients are told to connect to [default: the listen address]
    #[arg(long, value_name = "HOST:PORT", value_parser = host_port)]
    advertise: Option<(String, u16)>,
}

fn positive_u32(v: &str) -> std::result::Result<u32, String> {
    match v.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("expects a positive number, got `{v}`")),
    }
}

fn number<T: std::str::FromStr>(v: &str, what: &str) -> std::result::Result<T, String> {
    v.parse().map_err(|_| format!("expects {what}, got `{v}`"))
}

fn milliseconds(v: &str) -> std::result::Result<i64, String> {
    number(v, "a number of milliseconds")
}

fn bytes(v: &str) -> std::result::Result<u64, String> {
    number(v, "a number of bytes")
}

fn partition_number(v: &str) -> std::result::Result<u32, String> {
    number(v, "a partition number")
}

fn record_count(v: &str) -> std::result::Result<u64, String> {
    number(v, "a number of records")
}

fn timestamp(v: &str) -> std::result::Result<i64, String> {
    number(v, "milliseconds since the epoch")
}

fn not_empty(v: &str) -> std::result::Result<String, String> {
    if v.is_empty() {
        Err("must not be empty".to_string())
    } else {
        Ok(v.to_string())
    }
}

fn host_port(v: &str) -> std::result::Result<(String, u16), String> {
    v.rsplit_once(':')
        .and_then(|(host, port)| Some((host.to_string(), port.parse::<u16>().ok()?)))
        .filter(|(host, _)| !host.is_empty())
        .ok_or_else(|| format!("expects HOST:PORT, got `{v}`"))
}

/// The clap command of the tool, with [`HELP_TEMPLATE`] on every (sub)command.
fn command() -> clap::Command {
    fn with_template(cmd: clap::Command) -> clap::Command {
        let names: Vec<String> = cmd
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .collect();
        names
            .into_iter()
            .fold(cmd.help_template(HELP_TEMPLATE), |cmd, name| {
                cmd.mut_subcommand(name, with_template)
            })
    }
    with_template(Cli::command())
}

/// Parses a command line (`args[0]` is the program name).
fn parse<I, T>(args: I) -> std::result::Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut cmd = command();
    let matches = cmd.try_get_matches_from_mut(args)?;
    Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))
}

/// The first line of a usage error in this tool's words, or `None` to keep clap's.
fn usage_message(err: &clap::Error, args: &[OsString]) -> Option<String> {
    let string = |kind| match err.get(kind) {
        Some(ContextValue::String(s)) => Some(s.as_str()),
        _ => None,
    };
    // `--partitions <N>` -> `--partitions`.
    let flag = |arg: &str| arg.split([' ', '=']).next().unwrap_or(arg).to_string();
    match err.kind() {
        ErrorKind::UnknownArgument => {
            let arg = string(ContextKind::InvalidArg)?;
            Some(if arg.starts_with('-') {
                format!("unknown option `{arg}`")
            } else {
                format!("unexpected argument `{arg}`")
            })
        }
        ErrorKind::InvalidSubcommand => {
            let name = string(ContextKind::InvalidSubcommand)?;
            Some(match parent_of(name, args) {
                Some(parent) => format!("unknown {parent} subcommand `{name}`"),
                None => format!("unknown command `{name}`"),
            })
        }
        ErrorKind::MissingSubcommand => {
            let parent = string(ContextKind::InvalidSubcommand)?;
            Some(if parent == "streams" {
                "missing command".to_string()
            } else {
                format!("missing {parent} subcommand")
            })
        }
        ErrorKind::MissingRequiredArgument => {
            let Some(ContextValue::Strings(missing)) = err.get(ContextKind::InvalidArg) else {
                return None;
            };
            let named: Vec<&str> = missing
                .iter()
                .map(|m| match m.as_str() {
                    "<TOPIC>" => "topic name",
                    "<GROUP>" => "group id",
                    other => other,
                })
                .collect();
            Some(format!("missing {}", named.join(", ")))
        }
        ErrorKind::InvalidValue if string(ContextKind::InvalidValue) == Some("") => Some(format!(
            "{} needs a value",
            flag(string(ContextKind::InvalidArg)?)
        )),
        ErrorKind::ValueValidation => {
            let why = std::error::Error::source(err)?;
            Some(format!("{} {why}", flag(string(ContextKind::InvalidArg)?)))
        }
        _ => None,
    }
}

/// The command whose subcommand `name` is on the command line, when it is not the top
/// level (`topics` in `streams topics rename`).
fn parent_of(name: &str, args: &[OsString]) -> Option<String> {
    let root = command();
    let mut current = &root;
    let mut words = args.iter().skip(1).filter_map(|a| a.to_str());
    while let Some(word) = words.next() {
        if word == "--data-dir" {
            words.next();
        } else if word == name {
            break;
        } else if let Some(sub) = current.find_subcommand(word) {
            current = sub;
        }
    }
    (current.get_name() != root.get_name()).then(|| current.get_name().to_string())
}

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

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let cli = match parse(&args) {
        Ok(cli) => cli,
        Err(e) => return parse_failed(&e, &args),
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = run(cli, &mut out).and_then(|()| Ok(out.flush()?));
    match result {
        Ok(()) | Err(CliError::BrokenPipe) => ExitCode::SUCCESS,
        Err(CliError::Usage(msg)) => {
            eprintln!(
                "error: {msg}\n\n{}\n\nFor more information, try '--help'.",
                command().render_usage()
            );
            ExitCode::from(2)
        }
        Err(CliError::Failed(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}

/// Help and version go to stdout (exit 0); usage errors to stderr (exit 2).
fn parse_failed(err: &clap::Error, args: &[OsString]) -> ExitCode {
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            // A closed stdout (`streams --help | head`) is not an error.
            let _ = err.print();
            ExitCode::SUCCESS
        }
        _ => {
            let rendered = err.render().to_string();
            match usage_message(err, args) {
                Some(first) => {
                    let mut rest = rendered.split_once('\n').map_or("\n", |(_, rest)| rest);
                    if err.kind() == ErrorKind::MissingRequiredArgument {
                        // clap's indented list of what is missing: the first line names it.
                        rest = rest.find("\n\n").map_or(rest, |i| &rest[i + 1..]);
                    }
                    eprint!("error: {first}\n{rest}");
                }
                None => eprint!("{rendered}"),
            }
            ExitCode::from(2)
        }
    }
}

/// The data directory of the command line or environment; unless `creates`, it must exist.
fn data_dir(dir: Option<&Path>, creates: bool) -> Result<&Path> {
    let dir = dir
        .filter(|d| !d.as_os_str().is_empty())
        .ok_or_else(|| usage("no data directory: pass --data-dir DIR or set STREAMS_DATA_DIR"))?;
    if !creates && !dir.is_dir() {
        return Err(failed(format!(
            "data directory {} does not exist (create a topic to start one)",
            dir.display()
        )));
    }
    Ok(dir)
}

/// Opens the engine on an existing data directory.
fn open(dir: Option<&Path>) -> Result<LogEngine> {
    Ok(LogEngine::open(data_dir(dir, false)?)?)
}

fn run(cli: Cli, out: &mut dyn Write) -> Result<()> {
    let dir = cli.data_dir.as_deref();
    match cli.command {
        Command::Completions { shell } => {
            // Generated into memory first: the generators panic on a failed write.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command(), "streams", &mut script);
            out.write_all(&script)?;
            Ok(())
        }
        Command::Verify => verify_or_repair(data_dir(dir, false)?, false, out),
        Command::Repair => verify_or_repair(data_dir(dir, false)?, true, out),
        Command::Topics(TopicsCommand::Create(args)) => {
            topics_create(args, &LogEngine::open(data_dir(dir, true)?)?, out)
        }
        Command::Topics(TopicsCommand::List) => {
            let engine = open(dir)?;
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
        Command::Topics(TopicsCommand::Describe { name }) => {
            topics_describe(&name, &open(dir)?, out)
        }
        Command::Topics(TopicsCommand::Delete { name }) => {
            open(dir)?.delete_topic(&name)?;
            writeln!(out, "Deleted topic {name}")?;
            Ok(())
        }
        Command::Produce(args) => produce(args, &open(dir)?, out),
        Command::Consume(args) => consume(args, &open(dir)?, out),
        Command::Groups(GroupsCommand::List) => {
            for g in open(dir)?.groups() {
                writeln!(out, "{g}")?;
            }
            Ok(())
        }
        Command::Groups(GroupsCommand::Describe { group }) => {
            groups_describe(&group, &open(dir)?, out)
        }
        Command::AppReset(args) => app_reset(args, &open(dir)?, out),
        Command::Serve(args) => serve(args, data_dir(dir, true)?, out),
        Command::Transactions(TransactionsCommand::List) => transactions_list(&open(dir)?, out),
    }
}

/// `streams verify` and `streams repair`: the damaged byte ranges of every segment.
fn verify_or_repair(data_dir: &Path, repairing: bool, out: &mut dyn Write) -> Result<()> {
    let found = if repairing {
        streams_state::log::repair::repair_log_dir(data_dir)?
    } else {
        streams_state::log::repair::verify_log_dir(data_dir)?
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
    Ok(())
}

/// `streams transactions list`.
fn transactions_list(engine: &LogEngine, out: &mut dyn Write) -> Result<()> {
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

/// `streams serve`: the data directory over the Kafka protocol until a signal stops it.
fn serve(args: ServeArgs, data_dir: &Path, out: &mut dyn Write) -> Result<()> {
    let ServeArgs {
        listen,
        advertise: advertised,
    } = args;
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

/// `streams topics create`.
fn topics_create(args: CreateArgs, engine: &LogEngine, out: &mut dyn Write) -> Result<()> {
    let name = args.name;
    let mut config = TopicConfig::new(args.partitions.unwrap_or(1));
    if args.compact {
        config.cleanup = CleanupPolicy::Compact;
    }
    config.log.retention_ms = args.retention_ms.or(config.log.retention_ms);
    if let Some(b) = args.retention_bytes {
        config.log.retention_bytes = Some(b);
    }
    if let Some(b) = args.segment_bytes {
        config.log.segment_bytes = b;
    }
    if let Some(s) = args.segment_ms {
        config.log.segment_ms = Some(s);
    }
    if let Some(d) = args.delete_retention_ms {
        config.delete_retention_ms = d;
    }
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

/// `streams topics describe`.
fn topics_describe(name: &str, engine: &LogEngine, out: &mut dyn Write) -> Result<()> {
    let config = topic(engine, name)?;
    writeln!(
        out,
        "Topic: {name}\tPartitions: {}\tConfigs: {}",
        config.partitions,
        describe_config(&config)
    )?;
    for p in 0..config.partitions {
        let (start, end) = engine.offsets(name, p)?;
        let stable = engine.last_stable_offset(name, p)?;
        let open: Vec<String> = engine
            .open_transactions(name, p)?
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

/// `streams produce`: the records of stdin.
fn produce(args: ProduceArgs, engine: &LogEngine, out: &mut dyn Write) -> Result<()> {
    let ProduceArgs {
        topic: name,
        separator,
        null_value,
        partition: explicit,
        timestamp,
    } = args;
    // Never empty: the parser refuses `--separator ""`.
    let separator = separator.unwrap_or_else(|| "\t".into());
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

/// `streams consume`: prints the records up to the end, commits the group's positions.
fn consume(args: ConsumeArgs, engine: &LogEngine, out: &mut dyn Write) -> Result<()> {
    let ConsumeArgs {
        topic: name,
        from_beginning,
        group,
        max_messages: max,
        partition: only,
        isolation,
    } = args;
    let isolation = match isolation {
        IsolationArg::ReadUncommitted => Isolation::ReadUncommitted,
        IsolationArg::ReadCommitted => Isolation::ReadCommitted,
    };
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

/// `streams groups describe`: committed offsets and lag, as a table.
fn groups_describe(group: &str, engine: &LogEngine, out: &mut dyn Write) -> Result<()> {
    let offsets = engine
        .group_offsets(group)
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
            group.to_string(),
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

/// `streams app-reset`: like `kafka-streams-application-reset`.
fn app_reset(args: AppResetArgs, engine: &LogEngine, out: &mut dyn Write) -> Result<()> {
    let app = args.application_id;
    let inputs: Vec<String> = args
        .input_topics
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The `streams ...` command lines of the ```sh blocks of a document, split into words
    /// (the documented lines need no shell quoting): pipes into, here-documents of,
    /// redirections of the output, `cargo run ... --bin streams --` before the command and
    /// trailing comments are cut.
    fn documented_command_lines(doc: &str) -> Vec<Vec<String>> {
        let mut in_block = false;
        let mut found = Vec::new();
        for line in doc.lines() {
            if line.starts_with("```") {
                in_block = !in_block;
                continue;
            }
            if !in_block || line.trim_start().starts_with('#') {
                continue;
            }
            let line = line.split(" #").next().unwrap_or(line);
            let line = line.rsplit('|').next().unwrap_or(line);
            let line = line.split("<<").next().unwrap_or(line);
            let line = line.split(" > ").next().unwrap_or(line);
            let line = line.trim().trim_end_matches('&').trim();
            let command = match line.split_once("--bin streams -- ") {
                Some((_, rest)) => format!("streams {rest}"),
                None => line.to_string(),
            };
            if command.starts_with("streams ") {
                found.push(command.split_whitespace().map(str::to_string).collect());
            }
        }
        found
    }

    #[test]
    fn the_clap_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn every_command_line_in_the_docs_parses() {
        let cli_doc = documented_command_lines(include_str!("../../../docs/CLI.md"));
        // The other documents that show `streams` command lines.
        let other_docs: Vec<Vec<String>> = [
            include_str!("../../../docs/SERVE.md"),
            include_str!("../../../docs/ACTIVITY.md"),
            include_str!("../../../docs/DEPLOYMENT.md"),
        ]
        .into_iter()
        .flat_map(documented_command_lines)
        .collect();
        // 25 counted by hand in docs/CLI.md: a failed extraction must not pass vacuously.
        assert!(cli_doc.len() >= 25, "{} lines: {cli_doc:?}", cli_doc.len());
        assert!(other_docs.len() >= 5, "{other_docs:?}");
        for words in cli_doc.iter().chain(&other_docs) {
            match parse(words) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::DisplayHelp => {}
                Err(e) => panic!("{}: {}", words.join(" "), e.render()),
            }
        }
        // Every command (but `help`) has an example in docs/CLI.md.
        for sub in command().get_subcommands() {
            let name = sub.get_name();
            assert!(
                name == "help"
                    || cli_doc
                        .iter()
                        .any(|w| w.get(1).map(String::as_str) == Some(name)),
                "docs/CLI.md shows no `streams {name}`"
            );
        }
    }

    #[test]
    fn documented_flags_parse_to_their_values() {
        let cli = parse([
            "streams",
            "topics",
            "create",
            "users",
            "--compact",
            "--delete-retention-ms",
            "3600000",
            "--data-dir=/tmp/x",
            "--retention-ms=-1",
        ])
        .unwrap();
        assert_eq!(cli.data_dir.as_deref(), Some(Path::new("/tmp/x")));
        let Command::Topics(TopicsCommand::Create(args)) = cli.command else {
            panic!("{:?}", cli.command);
        };
        assert_eq!(args.name, "users");
        assert!(args.compact);
        assert_eq!(args.delete_retention_ms, Some(3_600_000));
        assert_eq!(args.retention_ms, Some(-1));
        assert_eq!(args.partitions, None);

        let cli = parse([
            "streams",
            "produce",
            "users",
            "--separator",
            "->",
            "--null-value",
            "-",
            "--timestamp",
            "1234",
        ])
        .unwrap();
        let Command::Produce(args) = cli.command else {
            panic!("{:?}", cli.command);
        };
        assert_eq!(args.separator.as_deref(), Some("->"));
        assert_eq!(args.null_value.as_deref(), Some("-"));
        assert_eq!(args.timestamp, Some(1234));

        let cli = parse([
            "streams",
            "--data-dir",
            "d",
            "consume",
            "t",
            "--group",
            "audit",
            "--max-messages",
            "10",
            "--isolation",
            "read_committed",
        ])
        .unwrap();
        let Command::Consume(args) = cli.command else {
            panic!("{:?}", cli.command);
        };
        assert_eq!(args.group.as_deref(), Some("audit"));
        assert_eq!(args.max_messages, Some(10));
        assert_eq!(args.isolation, IsolationArg::ReadCommitted);
        assert!(!args.from_beginning);

        let cli = parse(["streams", "serve", "--advertise", "broker:19092"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("{:?}", cli.command);
        };
        assert_eq!(args.listen, "127.0.0.1:9092");
        assert_eq!(args.advertise, Some(("broker".to_string(), 19092)));
    }

    #[test]
    fn usage_errors_name_the_flag_in_the_tools_words() {
        for (args, expected) in [
            (
                &["topics", "create", "t", "--partitions", "0"][..],
                "--partitions expects a positive number, got `0`",
            ),
            (
                &["topics", "create", "t", "--segment-ms", "soon"],
                "--segment-ms expects a number of milliseconds, got `soon`",
            ),
            (
                &["topics", "create", "t", "--bogus"],
                "unknown option `--bogus`",
            ),
            (&["topics", "list", "extra"], "unexpected argument `extra`"),
            (&["frobnicate"], "unknown command `frobnicate`"),
            (&["topics", "rename"], "unknown topics subcommand `rename`"),
            (
                &["--data-dir", "topics", "groups", "drop"],
                "unknown groups subcommand `drop`",
            ),
            (&["consume"], "missing topic name"),
            (&["groups", "describe"], "missing group id"),
            (&["app-reset"], "missing --application-id <ID>"),
            (
                &["consume", "t", "--max-messages"],
                "--max-messages needs a value",
            ),
            (
                &["produce", "t", "--separator", ""],
                "--separator must not be empty",
            ),
            (
                &["serve", "--advertise", ":9092"],
                "--advertise expects HOST:PORT, got `:9092`",
            ),
        ] {
            let argv: Vec<OsString> = std::iter::once("streams")
                .chain(args.iter().copied())
                .map(OsString::from)
                .collect();
            let err = parse(&argv).unwrap_err();
            assert_eq!(
                usage_message(&err, &argv).as_deref(),
                Some(expected),
                "{args:?}: {}",
                err.render()
            );
        }
        // Other errors keep clap's message, which lists the valid values.
        let argv: Vec<OsString> = ["streams", "consume", "t", "--isolation", "dirty"]
            .map(OsString::from)
            .to_vec();
        let err = parse(&argv).unwrap_err();
        assert_eq!(usage_message(&err, &argv), None);
        assert!(err.render().to_string().contains("read_committed"));
    }

    #[test]
    fn help_and_completions_need_no_data_directory() {
        let err = parse(["streams", "topics", "create", "--help"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DisplayHelp);
        let help = err.render().to_string();
        assert!(help.contains("usage: streams topics create"), "{help}");
        assert!(help.contains("--delete-retention-ms <MS>"), "{help}");
        let cli = parse(["streams", "completions", "zsh"]).unwrap();
        let mut out = Vec::new();
        run(cli, &mut out).unwrap();
        let script = String::from_utf8(out).unwrap();
        assert!(script.starts_with("#compdef streams"), "{script}");
        assert!(script.contains("app-reset"), "{script}");
    }
}
