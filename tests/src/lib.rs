//! Helpers shared by the integration tests in `tests/` (and the README, whose code blocks
//! run as doctests: `cargo test -p streams-tests --doc`).

/// The project's README; its Rust example is compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct Readme;

/// The runtime tests' word count: `sentences` (4 partitions, keyed by line) → words →
/// `word-counts` (each word's running count, an `i64` in big-endian bytes), with the
/// expected counts worked out by plain code as the input is written.
pub mod wordcount {
    use std::collections::HashMap;

    use streams_core::partitioner::partition_for_key;
    use streams_core::prelude::*;
    use streams_core::runtime::{Isolation, LogEngine, NewRecord, TopicConfig};

    /// The input topic.
    pub const SENTENCES: &str = "sentences";
    /// The output topic.
    pub const COUNTS: &str = "word-counts";
    /// Partitions of the input (and so of the output).
    pub const PARTITIONS: u32 = 4;
    const WORDS: [&str; 7] = [
        "kafka", "streams", "rust", "log", "state", "window", "table",
    ];

    /// The topology, its store `counts` cached or (`caching: false`) writing through.
    ///
    /// # Panics
    /// Never: the topology is valid.
    pub fn topology(caching: bool) -> Topology {
        let builder = StreamsBuilder::new();
        let mut store = Materialized::as_("counts");
        if !caching {
            store = store.with_caching_disabled();
        }
        builder
            .stream::<String, String>(SENTENCES)
            .flat_map_values(|s: String| s.split(' ').map(str::to_string).collect::<Vec<_>>())
            .group_by(|_, w| w.clone())
            .count_with(store)
            .to_stream()
            .to(COUNTS);
        #[allow(clippy::unwrap_used)]
        builder.build().unwrap()
    }

    /// An engine in `dir/log` holding the input topic (empty, [`PARTITIONS`] partitions).
    ///
    /// # Panics
    /// If the engine cannot be opened or the topic created (the test fails).
    #[allow(clippy::unwrap_used)]
    pub fn engine(dir: &std::path::Path) -> std::sync::Arc<LogEngine> {
        let engine = std::sync::Arc::new(LogEngine::open(&dir.join("log")).unwrap());
        engine
            .create_topic(SENTENCES, TopicConfig::new(PARTITIONS))
            .unwrap();
        engine
    }

    /// Appends sentences `from..from + n` (three words each, keyed `line-<i>`, partitioned
    /// as a Kafka producer would) and adds their words to `expected`.
    ///
    /// # Panics
    /// If the engine refuses the append (the test fails).
    pub fn produce(engine: &LogEngine, from: usize, n: usize, expected: &mut HashMap<String, i64>) {
        for i in from..from + n {
            let sentence: Vec<&str> = (0..3)
                .map(|j| WORDS[(i * 3 + j * j + i / 7) % WORDS.len()])
                .collect();
            for w in &sentence {
                *expected.entry(w.to_string()).or_default() += 1;
            }
            let key = format!("line-{i}");
            let p = partition_for_key(key.as_bytes(), PARTITIONS);
            let record = NewRecord {
                timestamp: i as i64,
                key: Some(key.into_bytes()),
                value: Some(sentence.join(" ").into_bytes()),
                headers: Vec::new(),
            };
            #[allow(clippy::unwrap_used)]
            engine.append(SENTENCES, p, &[record]).unwrap();
        }
    }

    /// Every count of each word in the output, in order, as a reader with `isolation`
    /// sees them (each word lives in one partition).
    ///
    /// # Panics
    /// If the output cannot be read or holds something else than word counts.
    #[allow(clippy::unwrap_used)]
    pub fn counts(engine: &LogEngine, isolation: Isolation) -> HashMap<String, Vec<i64>> {
        let mut out: HashMap<String, Vec<i64>> = HashMap::new();
        for p in 0..PARTITIONS {
            let mut offset = 0;
            loop {
                let r = engine
                    .read_with(COUNTS, p, offset, 1 << 20, isolation)
                    .unwrap();
                for rec in r.records {
                    let w = String::from_utf8(rec.key.unwrap()).unwrap();
                    let n = i64::from_be_bytes(rec.value.unwrap().try_into().unwrap());
                    out.entry(w).or_default().push(n);
                }
                if r.next_offset == offset {
                    break;
                }
                offset = r.next_offset;
            }
        }
        out
    }

    /// The latest count of each word in the output.
    ///
    /// # Panics
    /// As [`counts`].
    pub fn final_counts(engine: &LogEngine) -> HashMap<String, i64> {
        counts(engine, Isolation::ReadUncommitted)
            .into_iter()
            .filter_map(|(w, c)| Some((w, *c.last()?)))
            .collect()
    }
}

/// The three kinds of join the join tests compare with their reference computation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    /// A result only where both sides have a value.
    Inner,
    /// A result for every left value, with or without a right one.
    Left,
    /// A result for a value on either side.
    Outer,
}

/// Helpers for tests on the [`TopologyTestDriver`](streams_core::prelude::TopologyTestDriver).
pub mod driver {
    use streams_core::prelude::*;

    /// The lines of `describe()` text that Kafka's topology tests compare, trimmed: every
    /// line but blank ones and the `<--` (predecessor) lines, which repeat the `-->` ones.
    pub fn describe_lines(text: &str) -> Vec<&str> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("<--"))
            .collect()
    }

    /// Every record of `out` not read yet, as (key, value, timestamp).
    ///
    /// # Panics
    /// If the output cannot be read (the test fails).
    #[allow(clippy::unwrap_used)]
    pub fn records<K: 'static, V: 'static>(out: &TestOutputTopic<K, V>) -> Vec<(K, V, i64)> {
        out.read_records_to_list()
            .unwrap()
            .into_iter()
            .map(|r| (r.key, r.value, r.timestamp))
            .collect()
    }

    /// Every (key, value) of the output topic `topic` not read yet.
    ///
    /// # Panics
    /// If the output cannot be read (the test fails).
    #[allow(clippy::unwrap_used)]
    pub fn key_values<K: DefaultSerde + 'static, V: DefaultSerde + 'static>(
        driver: &TopologyTestDriver,
        topic: &str,
    ) -> Vec<(K, V)> {
        driver
            .output_topic::<K, V>(topic)
            .read_key_values_to_list()
            .unwrap()
    }

    /// Starts a driver on `topology` with `config`, pipes the value "x" into "in" for each
    /// (key, timestamp) of `records`, in order, and returns the (key, count) written to
    /// "out" with the driver.
    ///
    /// # Panics
    /// If the driver cannot be built, or a record cannot be piped or read (the test fails).
    #[allow(clippy::unwrap_used)]
    pub fn count_keys_at(
        topology: Topology,
        config: StreamsConfig,
        records: &[(&str, i64)],
    ) -> (Vec<(String, i64)>, TopologyTestDriver) {
        let driver = TopologyTestDriver::new(topology, config).unwrap();
        let input = driver.input_topic::<String, String>("in");
        for (k, ts) in records {
            input
                .pipe_input_at(k.to_string(), "x".to_string(), *ts)
                .unwrap();
        }
        let out = key_values::<String, i64>(&driver, "out");
        (out, driver)
    }

    /// Adds an in-memory key-value store `name` with the default serdes of `K` and `V`.
    pub fn add_in_memory_store<
        K: DefaultSerde + Send + 'static,
        V: DefaultSerde + Send + 'static,
    >(
        builder: &StreamsBuilder,
        name: &str,
    ) {
        builder.add_state_store(Stores::key_value_store_builder(
            Stores::in_memory_key_value_store(name),
            default_serde::<K>(),
            default_serde::<V>(),
        ));
    }

    /// Builds `builder`'s topology, checks that it has `subtopologies` sub-topologies, and
    /// starts a driver on it with `config`, each (topic, n) of `partitions` given n
    /// partitions.
    ///
    /// # Panics
    /// If the topology or the driver cannot be built, or the count differs (the test fails).
    #[allow(clippy::unwrap_used)]
    pub fn partitioned(
        builder: StreamsBuilder,
        config: StreamsConfig,
        subtopologies: usize,
        partitions: &[(&str, u32)],
    ) -> TopologyTestDriver {
        let topology = builder.build().unwrap();
        assert_eq!(topology.describe().subtopologies.len(), subtopologies);
        with_partitions(topology, config, partitions)
    }

    /// Starts a driver on `topology` with `config`, each (topic, n) of `partitions` given n
    /// partitions (the other topics one).
    ///
    /// # Panics
    /// If the driver cannot be built (the test fails).
    #[allow(clippy::unwrap_used)]
    pub fn with_partitions(
        topology: Topology,
        config: StreamsConfig,
        partitions: &[(&str, u32)],
    ) -> TopologyTestDriver {
        let mut driver = TopologyTestDriver::builder(topology, config);
        for (topic, n) in partitions {
            driver = driver.partitions(topic, *n);
        }
        driver.build().unwrap()
    }
}

/// Tests that run part of themselves in a child process: the same test binary, running one
/// test alone, told where to work by an environment variable.
pub mod child {
    use std::io::{BufRead, BufReader};
    use std::path::Path;
    use std::process::{Child, ChildStdout, Command, Stdio};

    /// Starts this test binary running only the test `test`, with `env` set to `dir`; returns
    /// the child and its standard output (its standard error is discarded).
    ///
    /// # Panics
    /// If the child cannot be started (the test fails).
    #[allow(clippy::unwrap_used)]
    pub fn spawn(test: &str, env: &str, dir: &Path) -> (Child, BufReader<ChildStdout>) {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(env, dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        (child, out)
    }

    /// Reads the child's output until a line containing `what`; returns the lines read,
    /// trimmed.
    ///
    /// # Panics
    /// If the output ends first (the child exited), naming `what` and the lines read.
    #[allow(clippy::unwrap_used)]
    pub fn wait_for(out: &mut BufReader<ChildStdout>, what: &str) -> Vec<String> {
        let mut lines = Vec::new();
        let mut line = String::new();
        while !line.contains(what) {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "child exited before `{what}`: {lines:?}"
            );
            lines.push(line.trim().to_string());
        }
        lines
    }
}

/// Every record of `topic` read from the engine itself, as UTF-8 (key, value) pairs per
/// partition (a null key or value reads as empty).
pub fn engine_records(
    engine: &streams_core::runtime::LogEngine,
    topic: &str,
    isolation: streams_core::runtime::Isolation,
) -> std::collections::BTreeMap<u32, Vec<(String, String)>> {
    let text = |b: Option<Vec<u8>>| String::from_utf8(b.unwrap_or_default()).unwrap_or_default();
    let partitions = engine.topic_config(topic).map_or(0, |c| c.partitions);
    (0..partitions)
        .map(|p| {
            let mut out = Vec::new();
            let mut offset = 0;
            while let Ok(r) = engine.read_with(topic, p, offset, 1 << 20, isolation) {
                out.extend(r.records.into_iter().map(|r| (text(r.key), text(r.value))));
                if r.next_offset == offset {
                    break;
                }
                offset = r.next_offset;
            }
            (p, out)
        })
        .collect()
}

/// A small tmpfs mounted for a test: a real file system that fills up. Unmounted on drop.
#[derive(Debug)]
pub struct Tmpfs {
    dir: std::path::PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` on a new directory under the system's temporary directory,
    /// or `None` when this machine does not allow it (mounting needs root, and containers
    /// often refuse it even to root).
    pub fn mount(bytes: u64) -> Option<Self> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("streams-tmpfs-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(Self { dir })
    }

    /// The mount point.
    pub fn path(&self) -> &std::path::Path {
        &self.dir
    }

    /// Writes a new file of zeros until the file system is full; returns its path (remove it
    /// to free the space).
    ///
    /// # Panics
    /// If the file cannot be created, or the write fails other than on a full disk.
    #[allow(clippy::unwrap_used, clippy::panic)]
    pub fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let n = (0..)
            .find(|n| !self.dir.join(format!("filler-{n}")).exists())
            .unwrap();
        let path = self.dir.join(format!("filler-{n}"));
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 4096];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.dir)
            .stderr(std::process::Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The samples of the metric `name` in Prometheus text: labels and value (an unlabelled
/// sample has no labels). Metrics whose names only start with `name` are left out.
///
/// # Panics
/// On a sample line that is not `name{k="v",...} value` or `name value`.
#[allow(clippy::unwrap_used)]
pub fn prometheus_samples(
    text: &str,
    name: &str,
) -> Vec<(std::collections::BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (labels, value) = if let Some(rest) = rest.strip_prefix('{') {
            let (labels, value) = rest.split_once("} ").unwrap();
            let labels = labels
                .split("\",")
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once("=\"").unwrap();
                    (k.to_string(), v.trim_end_matches('"').to_string())
                })
                .collect();
            (labels, value)
        } else if let Some(value) = rest.strip_prefix(' ') {
            (std::collections::BTreeMap::new(), value)
        } else {
            continue; // another metric whose name starts with `name`
        };
        out.push((labels, value.trim().parse().unwrap()));
    }
    out
}
