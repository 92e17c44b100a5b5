//! The runtime on the embedded log engine: a long-lived app with no broker (issue #5, in
//! progress: one instance, one stream thread).
//!
//! [`KafkaStreams`] creates the internal topics, builds one task per (sub-topology,
//! partition), restores logged stores from their changelogs (from each task's checkpoint),
//! and runs a stream thread: read a batch from every input partition, process in timestamp
//! order, write the output through the engine (repartition topics included), fire
//! wall-clock punctuators, and commit every `commit.interval.ms` — flush caches and stores,
//! sync the log, write checkpoints, commit the consumed offsets (at-least-once).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use streams_core::prelude::*;
//! use streams_core::runtime::{KafkaStreams, LogEngine, NewRecord, TopicConfig};
//!
//! let dir = std::env::temp_dir().join(format!("doc-runtime-{}", std::process::id()));
//! let engine = Arc::new(LogEngine::open(&dir.join("log")).unwrap());
//! engine.create_topic("words", TopicConfig::new(2)).unwrap();
//! engine.create_topic("counts", TopicConfig::new(2)).unwrap();
//! for w in ["a", "b", "a"] {
//!     let p = streams_core::partitioner::partition_for_key(w.as_bytes(), 2);
//!     engine.append("words", p, &[NewRecord { timestamp: 1, key: Some(w.into()), value: Some(w.into()), headers: vec![] }]).unwrap();
//! }
//! let builder = StreamsBuilder::new();
//! builder.stream::<String, String>("words").group_by_key().count().to_stream().to("counts");
//! let config = StreamsConfig::new("wc").with_state_dir(dir.join("state"));
//! let mut app = KafkaStreams::new(builder.build().unwrap(), config, engine.clone()).unwrap();
//! app.start().unwrap();
//! app.wait_until_caught_up(Duration::from_secs(10)).unwrap();
//! app.close().unwrap();
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use streams_state::{
    ChangelogPartition, ChangelogRecord, CleanupPolicy, RocksDbResources, StateDirectory,
    ThreadCache,
};

use crate::config::StreamsConfig;
use crate::error::{Result, StreamsError};
use crate::internals::task::{ProducedRecord, Task, TaskEnv};
use crate::metrics::TaskMetrics;
use crate::record::{Header, Headers, RawRecord, TaskId};
use crate::topology::{TopicName, Topology};

pub use streams_state::{LogEngine, LogRecord, NewRecord, RecoveryReport, TopicConfig};

/// The lifecycle of an app, as in Kafka Streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamsState {
    /// Built, not started.
    Created,
    /// Creating tasks and restoring state.
    Rebalancing,
    /// Processing.
    Running,
    /// Closing: a final commit is under way.
    PendingShutdown,
    /// Closed.
    NotRunning,
    /// Stopped by an error.
    Error,
}

struct Shared {
    stop: AtomicBool,
    state: Mutex<StreamsState>,
    error: Mutex<Option<String>>,
    metrics: Mutex<TaskMetrics>,
    /// Records consumed but not yet behind the input's end, over all inputs (0 = caught up).
    lag: Mutex<i64>,
}

impl Shared {
    fn set(&self, s: StreamsState) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }
}

/// A streams app on the embedded log engine (see the [module docs](self)).
pub struct KafkaStreams {
    topology: Topology,
    config: Arc<StreamsConfig>,
    engine: Arc<LogEngine>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for KafkaStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaStreams")
            .field("application_id", &self.config.application_id())
            .field("state", &self.state())
            .finish()
    }
}

impl KafkaStreams {
    /// An app running `topology` on `engine`. Checks the configuration; a state directory
    /// (`state.dir`) is required, and settings this runtime cannot honour yet
    /// (`bootstrap.servers`, `exactly_once_v2`, several threads, `max.task.idle.ms` > 0) are
    /// refused rather than ignored.
    pub fn new(topology: Topology, config: StreamsConfig, engine: Arc<LogEngine>) -> Result<Self> {
        config.validate()?;
        config.check_embedded_runtime()?;
        if config.state_dir().is_none() {
            return Err(crate::config::ConfigError::Invalid {
                setting: "state.dir",
                detail: "the runtime needs a state directory for its stores and checkpoints".into(),
            }
            .into());
        }
        Ok(Self {
            topology,
            config: Arc::new(config),
            engine,
            shared: Arc::new(Shared {
                stop: AtomicBool::new(false),
                state: Mutex::new(StreamsState::Created),
                error: Mutex::new(None),
                metrics: Mutex::new(TaskMetrics::default()),
                lag: Mutex::new(i64::MAX),
            }),
            thread: None,
        })
    }

    /// The app's state.
    pub fn state(&self) -> StreamsState {
        *self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Metrics summed over the app's tasks (as of the last commit or processing round).
    pub fn metrics(&self) -> TaskMetrics {
        *self
            .shared
            .metrics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the stream thread. Source topics must exist; internal topics are created.
    pub fn start(&mut self) -> Result<()> {
        if self.thread.is_some() {
            return Ok(());
        }
        self.shared.set(StreamsState::Rebalancing);
        let mut thread =
            StreamThread::setup(&self.topology, self.config.clone(), self.engine.clone())?;
        let shared = self.shared.clone();
        let handle = std::thread::Builder::new()
            .name(format!("{}-StreamThread-1", self.config.application_id()))
            .spawn(move || {
                let result = thread.run(&shared);
                if let Err(e) = result {
                    *shared.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                    shared.set(StreamsState::Error);
                } else {
                    shared.set(StreamsState::NotRunning);
                }
            })
            .map_err(|e| StreamsError::Internal(format!("cannot start a stream thread: {e}")))?;
        self.thread = Some(handle);
        Ok(())
    }

    /// Blocks until every input partition has been processed up to its end (for tests and
    /// batch-style runs), or fails after `timeout` or when the app stopped on an error.
    pub fn wait_until_caught_up(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self
                .shared
                .error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
            {
                return Err(StreamsError::Internal(format!("the app stopped: {e}")));
            }
            if self.state() == StreamsState::Running
                && *self.shared.lag.lock().unwrap_or_else(|p| p.into_inner()) == 0
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StreamsError::Internal(format!(
                    "not caught up after {timeout:?} (state {:?})",
                    self.state()
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops processing, commits (flushing caches, stores and the log, writing checkpoints
    /// and offsets) and closes every task.
    pub fn close(mut self) -> Result<()> {
        self.shared.set(StreamsState::PendingShutdown);
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join()
                .map_err(|_| StreamsError::Internal("the stream thread panicked".into()))?;
        }
        match self
            .shared
            .error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            Some(e) => Err(StreamsError::Internal(format!("the app stopped: {e}"))),
            None => Ok(()),
        }
    }
}

impl Drop for KafkaStreams {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One stream thread: every task of the instance.
struct StreamThread {
    config: Arc<StreamsConfig>,
    engine: Arc<LogEngine>,
    _state_dir: StateDirectory,
    tasks: Vec<Task>,
    /// Next offset to read per (task index, topic).
    positions: Vec<Vec<(Arc<str>, u32, i64)>>,
    partitions: HashMap<String, u32>,
    round_robin: u32,
}

fn to_raw(r: streams_state::LogRecord) -> RawRecord {
    let mut headers = Headers::new();
    for (k, v) in r.headers {
        headers.add(k, v);
    }
    RawRecord {
        offset: r.offset,
        timestamp: r.timestamp,
        key: r.key,
        value: r.value,
        headers,
    }
}

impl StreamThread {
    fn setup(
        topology: &Topology,
        config: Arc<StreamsConfig>,
        engine: Arc<LogEngine>,
    ) -> Result<Self> {
        let t = &topology.inner;
        let app = config.application_id().to_string();
        let existing: HashMap<String, TopicConfig> = engine.topics().into_iter().collect();
        let mut partitions: HashMap<String, u32> = HashMap::new();
        for s in &t.subtopologies {
            for topic in &s.sources {
                if let TopicName::External(name) = topic {
                    let c = existing.get(name).ok_or_else(|| StreamsError::Topic {
                        topic: name.clone(),
                        detail: "source topic does not exist; create it before starting the app"
                            .into(),
                    })?;
                    partitions.insert(name.clone(), c.partitions);
                }
            }
        }
        t.size_repartition_topics(&app, &mut partitions)?;
        let counts = t.task_counts(&app, &partitions);
        // Internal topics: repartition topics sized above, changelogs one partition per task.
        for (topic, _) in &t.repartition_topics {
            let name = topic.resolve(&app);
            let n = partitions.get(&name).copied().unwrap_or(1);
            ensure_topic(&engine, &existing, &name, TopicConfig::new(n))?;
        }
        for (i, s) in t.subtopologies.iter().enumerate() {
            for &st in &s.stores {
                let spec = &t.stores[st];
                if spec.logged {
                    let name = spec.changelog_topic().resolve(&app);
                    let mut c = TopicConfig::new(counts[i]);
                    c.cleanup = CleanupPolicy::Compact;
                    ensure_topic(&engine, &existing, &name, c)?;
                    partitions.insert(name, counts[i]);
                }
            }
        }
        for (name, c) in engine.topics() {
            partitions.entry(name).or_insert(c.partitions);
        }
        let root = config
            .state_dir()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        let state_dir = StateDirectory::open(&root, &app)?;
        let env = TaskEnv {
            config: config.clone(),
            resources: RocksDbResources::with_budget(config.memory_bytes()),
            cache: ThreadCache::new(config.cache_max_bytes()),
        };
        let now = wall_clock();
        let mut tasks = Vec::new();
        let mut positions = Vec::new();
        for (sub, &n) in counts.iter().enumerate() {
            for p in 0..n {
                let id = TaskId {
                    subtopology: sub as u32,
                    partition: p,
                };
                let dir = state_dir.task_dir(&id.to_string())?;
                let mut task = Task::new(t, sub as u32, p, &env, Some(dir), now)?;
                restore(&task, &engine)?;
                task.init()?;
                let pos = task
                    .input_partitions()
                    .into_iter()
                    .map(|topic| {
                        let from = engine.committed(&app, &topic, p).unwrap_or(0);
                        (topic, p, from)
                    })
                    .collect();
                positions.push(pos);
                tasks.push(task);
            }
        }
        Ok(Self {
            config,
            engine,
            _state_dir: state_dir,
            tasks,
            positions,
            partitions,
            round_robin: 0,
        })
    }

    fn run(&mut self, shared: &Shared) -> Result<()> {
        shared.set(StreamsState::Running);
        let interval = Duration::from_millis(self.config.commit_interval_ms());
        let mut last_commit = Instant::now();
        while !shared.stop.load(Ordering::SeqCst) {
            let (read, lag) = self.poll()?;
            self.process()?;
            let now = wall_clock();
            for task in &mut self.tasks {
                task.punctuate_wall_clock(now)?;
            }
            self.route_all()?;
            let requested = self.tasks.iter().any(|t| t.ctx.commit_requested);
            if requested || last_commit.elapsed() >= interval {
                self.commit()?;
                last_commit = Instant::now();
            }
            let mut m = TaskMetrics::default();
            for t in &self.tasks {
                m += t.ctx.metrics;
            }
            *shared.metrics.lock().unwrap_or_else(|e| e.into_inner()) = m;
            *shared.lag.lock().unwrap_or_else(|e| e.into_inner()) = lag;
            if read == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        self.commit()?;
        for task in &mut self.tasks {
            task.close()?;
        }
        Ok(())
    }

    /// Reads a batch from every input partition into its task. Returns the records read and
    /// the records still unread behind them.
    fn poll(&mut self) -> Result<(usize, i64)> {
        let mut read = 0;
        let mut lag = 0;
        for (task, inputs) in self.tasks.iter_mut().zip(self.positions.iter_mut()) {
            for (topic, partition, next) in inputs.iter_mut() {
                let records = self.engine.read(topic, *partition, *next, 256 << 10)?;
                if let Some(last) = records.last() {
                    *next = last.offset + 1;
                    read += records.len();
                    task.add_records(topic, records.into_iter().map(to_raw))?;
                }
                let (start, end) = self.engine.offsets(topic, *partition)?;
                // Records below the start offset are gone (time or size retention,
                // delete-records): skip past them rather than wait for them forever.
                *next = (*next).max(start);
                lag += (end - *next).max(0);
            }
        }
        Ok((read, lag))
    }

    fn process(&mut self) -> Result<()> {
        loop {
            let mut any = false;
            for i in 0..self.tasks.len() {
                let mut n = 0;
                while n < 1024 && self.tasks[i].process_one()? {
                    n += 1;
                }
                any |= n > 0;
                let out = self.tasks[i].take_output();
                self.route(out)?;
            }
            if !any {
                return Ok(());
            }
        }
    }

    fn route_all(&mut self) -> Result<()> {
        for i in 0..self.tasks.len() {
            let out = self.tasks[i].take_output();
            self.route(out)?;
        }
        Ok(())
    }

    /// Writes produced records through the engine, one batch per partition.
    fn route(&mut self, out: Vec<ProducedRecord>) -> Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        let mut batches: HashMap<(Arc<str>, u32), Vec<NewRecord>> = HashMap::new();
        for r in out {
            let n = match self.partitions.get(&*r.topic) {
                Some(&n) => n,
                None => {
                    // Output topics are created on first use, sized like the app's inputs.
                    let n = self.partitions.values().copied().max().unwrap_or(1);
                    self.engine.create_topic(&r.topic, TopicConfig::new(n))?;
                    self.partitions.insert(r.topic.to_string(), n);
                    n
                }
            };
            let partition = crate::partitioner::choose_partition(
                r.partition,
                r.key.as_deref(),
                n,
                &mut self.round_robin,
            );
            let headers = r
                .headers
                .iter()
                .map(|Header { key, value }| (key.clone(), value.clone()))
                .collect();
            batches
                .entry((r.topic, partition))
                .or_default()
                .push(NewRecord {
                    timestamp: r.timestamp,
                    key: r.key,
                    value: r.value,
                    headers,
                });
        }
        for ((topic, partition), records) in batches {
            self.engine.append(&topic, partition, &records)?;
        }
        Ok(())
    }

    /// At-least-once commit: caches and stores flushed, output and changelogs synced,
    /// checkpoints written, then the consumed offsets committed.
    fn commit(&mut self) -> Result<()> {
        self.process()?;
        for i in 0..self.tasks.len() {
            self.tasks[i].flush()?;
            let out = self.tasks[i].take_output();
            self.route(out)?;
        }
        self.engine.flush()?;
        let mut ends: HashMap<ChangelogPartition, i64> = HashMap::new();
        for task in &self.tasks {
            for p in task.changelog_partitions() {
                ends.insert(p.clone(), self.engine.offsets(&p.topic, p.partition)?.1);
            }
        }
        for task in &self.tasks {
            task.write_checkpoint(&ends)?;
        }
        let app = self.config.application_id().to_string();
        let mut offsets: Vec<(&str, u32, i64)> = Vec::new();
        for inputs in &self.positions {
            for (topic, p, next) in inputs {
                offsets.push((topic, *p, *next));
            }
        }
        self.engine.commit_offsets(&app, &offsets)?;
        Ok(())
    }
}

fn ensure_topic(
    engine: &LogEngine,
    existing: &HashMap<String, TopicConfig>,
    name: &str,
    config: TopicConfig,
) -> Result<()> {
    match existing.get(name) {
        Some(c) if c.partitions == config.partitions => Ok(()),
        Some(c) => Err(StreamsError::Topic {
            topic: name.to_string(),
            detail: format!(
                "internal topic has {} partitions, the topology needs {}; reset the application",
                c.partitions, config.partitions
            ),
        }),
        None => Ok(engine.create_topic(name, config)?),
    }
}

/// Restores every logged store of `task` from its changelog, from the checkpoint on.
fn restore(task: &Task, engine: &LogEngine) -> Result<()> {
    for (partition, start) in task.restore_starts() {
        let (_, end) = engine.offsets(&partition.topic, partition.partition)?;
        let mut next = start;
        while next < end {
            let records = engine.read(&partition.topic, partition.partition, next, 4 << 20)?;
            let Some(last) = records.last() else { break };
            next = last.offset + 1;
            let batch: Vec<ChangelogRecord> = records
                .into_iter()
                .filter_map(|r| {
                    r.key.map(|key| ChangelogRecord {
                        offset: r.offset,
                        key,
                        value: r.value,
                    })
                })
                .collect();
            task.restore(&partition, &batch)?;
        }
    }
    Ok(())
}

fn wall_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
