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
    use streams_core::runtime::{Isolation, LogEngine, NewRecord};

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
