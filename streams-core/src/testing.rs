//! The topology test driver: run whole topologies with no broker, synchronously and
//! deterministically.
//!
//! Unlike Kafka's `TopologyTestDriver`, topics may have several partitions: records land in
//! the partition Kafka's default partitioner would choose (murmur2 of the key bytes), flow
//! through repartition topics between sub-topologies, and are processed by one task per
//! (sub-topology, partition) — the same task and node code the runtime runs.
//!
//! ## Setup, processing, inspection
//! ```
//! use streams_core::prelude::*;
//!
//! let builder = StreamsBuilder::new();
//! builder.stream::<String, String>("views")
//!     .group_by(|_user, page| page.clone())
//!     .count_with(Materialized::as_("views-per-page"))
//!     .to_stream()
//!     .to("counts");
//! let mut driver = TopologyTestDriver::builder(builder.build().unwrap(), StreamsConfig::new("app"))
//!     .partitions("views", 4)
//!     .build()
//!     .unwrap();
//! assert_eq!(driver.task_ids().len(), 8); // 2 sub-topologies x 4 partitions
//!
//! let views = driver.input_topic::<String, String>("views");
//! views.pipe_input_at("u1".into(), "/a".into(), 1_000).unwrap();
//! views.pipe_input_at("u2".into(), "/a".into(), 2_000).unwrap();
//!
//! let out = driver.output_topic::<String, Option<i64>>("counts");
//! assert_eq!(out.read_key_values_to_list().unwrap(),
//!            vec![("/a".to_string(), Some(1)), ("/a".to_string(), Some(2))]);
//! let store = driver.key_value_store::<String, i64>("views-per-page").unwrap();
//! assert_eq!(store.get(&"/a".to_string()).unwrap(), Some(2));
//! ```
//!
//! ## What differs from production
//! - [`TestInputTopic::pipe_input`] processes the record completely (through every
//!   repartition topic) before it returns, and then commits, so every update is visible.
//!   [`TestInputTopic::pipe_key_values`] and [`TestInputTopic::pipe_records`] enqueue a whole
//!   batch first and then process it, like the runtime does with a fetched batch.
//! - The wall clock is mocked: it moves only with
//!   [`TopologyTestDriver::advance_wall_clock_time`].
//! - Output of every partition of a topic is read in the order it was produced.
//! - Topics that the topology reads (its sources and repartition topics) are consumed by
//!   their tasks and cannot be read back with a [`TestOutputTopic`].

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use streams_state::{ChangelogPartition, RocksDbResources, StateDirectory, ThreadCache};

use crate::config::StreamsConfig;
use crate::error::{Result, StreamsError};
use crate::internals::global::GlobalStores;
use crate::internals::task::{ProducedRecord, Task, TaskEnv};
use crate::metrics::TaskMetrics;
pub use crate::query::{KeyValueStoreView, SessionStoreView, WindowStoreView};
use crate::record::{Headers, RawRecord, Record, TaskId};
use crate::serde::{DefaultSerde, SerdeRef};
use crate::topology::{TopicName, Topology, TopologyInner};

/// A record as stored in a driver topic.
#[derive(Debug, Clone)]
struct Stored {
    partition: u32,
    raw: RawRecord,
}

/// A topic of the driver: its partition count, the sub-topology reading it (if any), and
/// the records written to it when no task reads it.
#[derive(Debug)]
struct TopicState {
    partitions: u32,
    reader: Option<u32>,
    /// Next offset per partition.
    next_offset: Vec<i64>,
    /// Every record, in production order (output topics only).
    records: Vec<Stored>,
}

impl TopicState {
    fn new(partitions: u32, reader: Option<u32>) -> Self {
        Self {
            partitions,
            reader,
            next_offset: vec![0; partitions as usize],
            records: Vec::new(),
        }
    }
}

struct Inner {
    config: Arc<StreamsConfig>,
    /// Held for the driver's lifetime (locks the application's state directory).
    state_dir: StateDirectory,
    /// A temporary state directory to remove when the driver is dropped.
    temp_root: Option<std::path::PathBuf>,
    tasks: BTreeMap<TaskId, Task>,
    /// Resolved topic name -> its state.
    topics: HashMap<String, TopicState>,
    default_partitions: u32,
    wall_clock: i64,
    round_robin: u32,
    /// Global stores: records piped to their topics are written into them at once.
    globals: Option<GlobalStores>,
}

/// Records a task processes before its output is routed (outputs of one task keep their
/// order; records of different tasks interleave by batch, as in the runtime).
const BATCH: usize = 1024;

impl Inner {
    fn partitions_of(&self, topic: &str) -> u32 {
        self.topics
            .get(topic)
            .map_or(self.default_partitions, |t| t.partitions)
    }

    /// Appends a record to `topic` and, if a task reads the topic, queues it there.
    fn append(
        &mut self,
        topic: &str,
        partition: Option<u32>,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        timestamp: i64,
        headers: Headers,
    ) -> Result<()> {
        let default = self.default_partitions;
        let state = match self.topics.get_mut(topic) {
            Some(state) => state,
            None => self
                .topics
                .entry(topic.to_string())
                .or_insert_with(|| TopicState::new(default, None)),
        };
        let n = state.partitions;
        if let Some(p) = partition.filter(|p| *p >= n) {
            return Err(StreamsError::Topic {
                topic: topic.to_string(),
                detail: format!("partition {p} does not exist (the topic has {n})"),
            });
        }
        let partition = crate::partitioner::choose_partition(
            partition,
            key.as_deref(),
            n,
            &mut self.round_robin,
        );
        let offset = state.next_offset[partition as usize];
        state.next_offset[partition as usize] += 1;
        if let Some(globals) = self
            .globals
            .as_ref()
            .filter(|g| g.topics().iter().any(|t| t == topic))
        {
            return globals.apply(topic, [(offset, key, value)]);
        }
        let raw = RawRecord {
            offset,
            timestamp,
            key,
            value,
            headers,
        };
        // Topics read by a task (sources and repartition topics) go to that task; only the
        // others (outputs) are kept for TestOutputTopic.
        match state.reader {
            Some(sub) => {
                let id = TaskId {
                    subtopology: sub,
                    partition,
                };
                let task = self.tasks.get_mut(&id).ok_or_else(|| {
                    StreamsError::Internal(format!("no task {id} for {topic}-{partition}"))
                })?;
                task.add_records(topic, std::iter::once(raw))?;
            }
            None => state.records.push(Stored { partition, raw }),
        }
        Ok(())
    }

    fn route(&mut self, out: Vec<ProducedRecord>) -> Result<()> {
        for r in out {
            self.append(
                &r.topic,
                r.partition,
                r.key,
                r.value,
                r.timestamp,
                r.headers,
            )?;
        }
        Ok(())
    }

    /// Processes until every queue is empty, routing output as it appears; then writes the
    /// record caches down (forwarding what leaves them) and goes on until nothing moves.
    fn run(&mut self) -> Result<()> {
        let now = self.wall_clock;
        loop {
            let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
            let mut progressed = true;
            while progressed {
                progressed = false;
                for id in &ids {
                    loop {
                        let task = self
                            .tasks
                            .get_mut(id)
                            .ok_or_else(|| StreamsError::Internal(format!("task {id} vanished")))?;
                        let mut did = 0;
                        while did < BATCH && task.process_ready(now)? {
                            did += 1;
                        }
                        let out = task.take_output();
                        self.route(out)?;
                        if did == 0 {
                            break;
                        }
                        progressed = true;
                    }
                }
            }
            // Commit: caches are written down in task order, and what they forward may
            // queue more work downstream.
            let mut flushed_any = false;
            for id in &ids {
                let task = self
                    .tasks
                    .get_mut(id)
                    .ok_or_else(|| StreamsError::Internal(format!("task {id} vanished")))?;
                task.flush_caches()?;
                let out = task.take_output();
                flushed_any |= !out.is_empty();
                self.route(out)?;
            }
            let queued = self.tasks.values_mut().any(|t| t.has_queued());
            if !flushed_any || !queued {
                return Ok(());
            }
        }
    }

    /// A full commit: caches, engine flush, and a checkpoint per task with the driver's
    /// changelog end offsets.
    fn commit(&mut self) -> Result<()> {
        self.run()?;
        let mut ends: HashMap<ChangelogPartition, i64> = HashMap::new();
        for task in self.tasks.values_mut() {
            task.flush()?;
        }
        let outs: Vec<Vec<ProducedRecord>> =
            self.tasks.values_mut().map(Task::take_output).collect();
        for out in outs {
            self.route(out)?;
        }
        for task in self.tasks.values() {
            for p in task.changelog_partitions() {
                let end = self
                    .topics
                    .get(&p.topic)
                    .and_then(|t| t.next_offset.get(p.partition as usize).copied())
                    .unwrap_or(0);
                ends.insert(p.clone(), end);
            }
        }
        for task in self.tasks.values() {
            task.write_checkpoint(&ends)?;
        }
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Close RocksDB before removing its files.
        for task in self.tasks.values_mut() {
            let _ = task.close();
        }
        self.tasks.clear();
        if let Some(root) = &self.temp_root {
            let _ = std::fs::remove_dir_all(root);
        }
    }
}

/// A fresh directory under the system's temporary directory.
fn temp_state_root() -> Result<std::path::PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!(
        "rust-streams-driver-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| {
        StreamsError::State(streams_state::StateError::StateDir {
            path: dir.clone(),
            detail: format!("cannot create a temporary state directory: {e}"),
        })
    })?;
    Ok(dir)
}

/// Builds a [`TopologyTestDriver`] with partition counts and a start time.
#[derive(Debug)]
pub struct TopologyTestDriverBuilder {
    topology: Topology,
    config: StreamsConfig,
    partitions: HashMap<String, u32>,
    default_partitions: u32,
    wall_clock_start: i64,
}

impl TopologyTestDriverBuilder {
    /// Gives `topic` (a source or output topic) `n` partitions. Default: 1 (see
    /// [`default_partitions`](Self::default_partitions)).
    pub fn partitions(mut self, topic: &str, n: u32) -> Self {
        self.partitions.insert(topic.to_string(), n.max(1));
        self
    }

    /// The partition count of every topic not set with [`partitions`](Self::partitions).
    /// Default: 1.
    pub fn default_partitions(mut self, n: u32) -> Self {
        self.default_partitions = n.max(1);
        self
    }

    /// The mocked wall clock's start, in ms since the epoch. Default: 0.
    pub fn wall_clock_start(mut self, ms: i64) -> Self {
        self.wall_clock_start = ms;
        self
    }

    /// Creates the tasks and initializes them.
    pub fn build(self) -> Result<TopologyTestDriver> {
        self.config.validate()?;
        let config = Arc::new(self.config);
        let t: &TopologyInner = &self.topology.inner;
        let app = config.application_id().to_string();
        let mut partitions: HashMap<String, u32> = self.partitions;
        let default = self.default_partitions;
        for s in &t.subtopologies {
            for topic in &s.sources {
                if let TopicName::External(name) = topic {
                    partitions.entry(name.clone()).or_insert(default);
                }
            }
        }
        t.size_repartition_topics(&app, &mut partitions)?;
        let (root, temp_root) = match config.state_dir() {
            Some(d) => (d.to_path_buf(), None),
            None => {
                let d = temp_state_root()?;
                (d.clone(), Some(d))
            }
        };
        let state_dir = StateDirectory::open(&root, &app)?;
        let resources = RocksDbResources::with_budget(config.memory_bytes());
        let globals = if t.global_stores.is_empty() {
            None
        } else {
            let dir = state_dir.task_dir("global")?;
            Some(GlobalStores::open(
                t,
                &config,
                Some(&dir),
                resources.clone(),
            )?)
        };
        let env = TaskEnv {
            config: config.clone(),
            resources,
            cache: ThreadCache::new(config.cache_max_bytes()),
            globals: crate::internals::global::shared(globals.as_ref()),
        };
        let mut topics: HashMap<String, TopicState> = HashMap::new();
        let mut tasks = BTreeMap::new();
        for (i, s) in t.subtopologies.iter().enumerate() {
            let sub = i as u32;
            let mut n = 0;
            for src in &s.sources {
                let name = src.resolve(&app);
                let p = partitions.get(&name).copied().unwrap_or(default);
                n = n.max(p);
                topics.insert(name, TopicState::new(p, Some(sub)));
            }
            for &st in &s.stores {
                let spec = &t.stores[st];
                if spec.logged {
                    topics.insert(
                        spec.changelog_topic().resolve(&app),
                        TopicState::new(n.max(1), None),
                    );
                }
            }
            for p in 0..n {
                let id = TaskId {
                    subtopology: sub,
                    partition: p,
                };
                let task_dir = state_dir.task_dir(&id.to_string())?;
                let mut task = Task::new(t, sub, p, &env, Some(task_dir), self.wall_clock_start)?;
                task.init()?;
                // Every record written to a topic a task reads is queued there at once.
                task.set_caught_up();
                tasks.insert(task.id(), task);
            }
        }
        for (name, p) in partitions {
            topics
                .entry(name)
                .or_insert_with(|| TopicState::new(p, None));
        }
        let mut inner = Inner {
            config,
            state_dir,
            temp_root,
            tasks,
            topics,
            default_partitions: default,
            wall_clock: self.wall_clock_start,
            round_robin: 0,
            globals,
        };
        // Punctuators scheduled in init may have produced output.
        let mut out = Vec::new();
        for task in inner.tasks.values_mut() {
            out.extend(task.take_output());
        }
        inner.route(out)?;
        inner.run()?;
        Ok(TopologyTestDriver {
            inner: Rc::new(RefCell::new(inner)),
        })
    }
}

/// Runs a topology deterministically, with no broker. See the [module docs](self).
pub struct TopologyTestDriver {
    inner: Rc<RefCell<Inner>>,
}

impl std::fmt::Debug for TopologyTestDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopologyTestDriver")
            .field("tasks", &self.task_ids())
            .finish()
    }
}

impl TopologyTestDriver {
    /// A driver where every topic has one partition.
    pub fn new(topology: Topology, config: StreamsConfig) -> Result<Self> {
        Self::builder(topology, config).build()
    }

    /// A builder, to set partition counts and the start time.
    pub fn builder(topology: Topology, config: StreamsConfig) -> TopologyTestDriverBuilder {
        TopologyTestDriverBuilder {
            topology,
            config,
            partitions: HashMap::new(),
            default_partitions: 1,
            wall_clock_start: 0,
        }
    }

    /// An input topic with the default serdes of `K` and `V`.
    pub fn input_topic<K: DefaultSerde, V: DefaultSerde>(
        &self,
        topic: &str,
    ) -> TestInputTopic<K, V> {
        self.input_topic_with(topic, K::default_serde(), V::default_serde())
    }

    /// An input topic with explicit serdes.
    pub fn input_topic_with<K, V>(
        &self,
        topic: &str,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> TestInputTopic<K, V> {
        TestInputTopic {
            inner: self.inner.clone(),
            topic: topic.to_string(),
            key_serde,
            value_serde,
            time: Cell::new(0),
            advance: Cell::new(0),
        }
    }

    /// An output topic with the default serdes of `K` and `V`. Use `Option<V>` to read
    /// tombstones, and `Option<Vec<u8>>` for raw bytes.
    pub fn output_topic<K: DefaultSerde, V: DefaultSerde>(
        &self,
        topic: &str,
    ) -> TestOutputTopic<K, V> {
        self.output_topic_with(topic, K::default_serde(), V::default_serde())
    }

    /// An output topic with explicit serdes. Reading starts at the first record.
    pub fn output_topic_with<K, V>(
        &self,
        topic: &str,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> TestOutputTopic<K, V> {
        TestOutputTopic {
            inner: self.inner.clone(),
            topic: topic.to_string(),
            key_serde,
            value_serde,
            cursor: Cell::new(0),
        }
    }

    /// Moves the mocked wall clock forward, fires due wall-clock punctuators and processes
    /// what they produce.
    pub fn advance_wall_clock_time(&mut self, by: Duration) -> Result<()> {
        let mut inner = self.inner.borrow_mut();
        inner.wall_clock += i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        let now = inner.wall_clock;
        let ids: Vec<TaskId> = inner.tasks.keys().copied().collect();
        for id in ids {
            let out = match inner.tasks.get_mut(&id) {
                Some(task) => {
                    task.punctuate_wall_clock(now)?;
                    task.take_output()
                }
                None => continue,
            };
            inner.route(out)?;
        }
        inner.run()
    }

    /// The mocked wall-clock time (ms).
    pub fn wall_clock_time(&self) -> i64 {
        self.inner.borrow().wall_clock
    }

    /// The ids of the tasks, one per (sub-topology, partition).
    pub fn task_ids(&self) -> Vec<TaskId> {
        self.inner.borrow().tasks.keys().copied().collect()
    }

    /// The partition count the driver uses for `topic` (internal topics by their full name).
    pub fn partition_count(&self, topic: &str) -> u32 {
        self.inner.borrow().partitions_of(topic)
    }

    /// Metrics summed over all tasks.
    pub fn metrics(&self) -> TaskMetrics {
        let mut sum = TaskMetrics::default();
        for t in self.inner.borrow().tasks.values() {
            sum += t.ctx.metrics;
        }
        sum
    }

    /// Metrics per task.
    pub fn task_metrics(&self) -> BTreeMap<TaskId, TaskMetrics> {
        self.inner
            .borrow()
            .tasks
            .iter()
            .map(|(id, t)| (*id, t.ctx.metrics))
            .collect()
    }

    /// A read view of the key-value store `name` across all tasks. Works for DSL stores
    /// (which keep a timestamp per value) and Processor API stores alike.
    pub fn key_value_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<KeyValueStoreView<K, V>> {
        KeyValueStoreView::from_entries(name, &self.entries(name))
    }

    fn entries(&self, name: &str) -> Vec<crate::state::StoreEntry> {
        let inner = self.inner.borrow();
        if let Some(g) = inner
            .globals
            .as_ref()
            .and_then(|g| g.entries().into_iter().find(|e| e.name() == name))
        {
            return vec![g];
        }
        drop(inner);
        self.inner
            .borrow()
            .tasks
            .values()
            .filter_map(|t| t.ctx.store(name).ok().cloned())
            .collect()
    }

    /// A read view of the window store `name` across all tasks. Works for DSL window
    /// stores (which keep a timestamp per value) and Processor API stores alike.
    pub fn window_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<WindowStoreView<K, V>> {
        WindowStoreView::from_entries(name, &self.entries(name))
    }

    /// A read view of the session store `name` across all tasks.
    pub fn session_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<SessionStoreView<K, V>> {
        SessionStoreView::from_entries(name, &self.entries(name))
    }

    /// Commits like the runtime does: writes record caches down, flushes every store's
    /// engine, and writes each task's checkpoint with the changelog end offsets.
    pub fn commit(&mut self) -> Result<()> {
        self.inner.borrow_mut().commit()
    }

    /// Commits, then closes every task (nodes first, then stores).
    pub fn close(self) -> Result<()> {
        let mut inner = self.inner.borrow_mut();
        inner.commit()?;
        let ids: Vec<TaskId> = inner.tasks.keys().copied().collect();
        for id in ids {
            if let Some(mut task) = inner.tasks.remove(&id) {
                task.close()?;
            }
        }
        if let Some(globals) = &inner.globals {
            globals.close()?;
        }
        Ok(())
    }

    /// The application's state directory (`<state.dir>/<application.id>`).
    pub fn state_dir(&self) -> std::path::PathBuf {
        self.inner.borrow().state_dir.app_dir().to_path_buf()
    }

    /// The application's configuration.
    pub fn config(&self) -> StreamsConfig {
        (*self.inner.borrow().config).clone()
    }
}

/// Pipes typed records into a topic of a [`TopologyTestDriver`].
pub struct TestInputTopic<K, V> {
    inner: Rc<RefCell<Inner>>,
    topic: String,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
    time: Cell<i64>,
    advance: Cell<i64>,
}

impl<K, V> std::fmt::Debug for TestInputTopic<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestInputTopic")
            .field("topic", &self.topic)
            .field("time", &self.time.get())
            .finish()
    }
}

impl<K: 'static, V: 'static> TestInputTopic<K, V> {
    /// Sets the timestamp of the next record piped without one, and how far each such record
    /// moves it. Default: 0 and 0.
    pub fn with_time(self, start_ms: i64, auto_advance: Duration) -> Self {
        self.time.set(start_ms);
        self.advance
            .set(i64::try_from(auto_advance.as_millis()).unwrap_or(i64::MAX));
        self
    }

    /// Moves the topic's current time forward.
    pub fn advance_time(&self, by: Duration) {
        self.time
            .set(self.time.get() + i64::try_from(by.as_millis()).unwrap_or(i64::MAX));
    }

    fn next_time(&self) -> i64 {
        let t = self.time.get();
        self.time.set(t + self.advance.get());
        t
    }

    fn enqueue(&self, record: Record<K, V>, partition: Option<u32>) -> Result<()> {
        let (key, value) = crate::internals::sink::serialize_key_value(
            &self.key_serde,
            &self.value_serde,
            &record,
            || self.topic.clone(),
        )?;
        self.inner.borrow_mut().append(
            &self.topic,
            partition,
            key,
            value,
            record.timestamp,
            record.headers,
        )
    }

    /// Pipes one record at the topic's current time and processes it completely.
    pub fn pipe_input(&self, key: K, value: V) -> Result<()> {
        let ts = self.next_time();
        self.pipe_record(Record::new(key, value, ts))
    }

    /// Pipes one record at time `timestamp` (ms) and processes it completely.
    pub fn pipe_input_at(&self, key: K, value: V, timestamp: i64) -> Result<()> {
        self.pipe_record(Record::new(key, value, timestamp))
    }

    /// Pipes one record (with its timestamp and headers) and processes it completely.
    pub fn pipe_record(&self, record: Record<K, V>) -> Result<()> {
        self.enqueue(record, None)?;
        self.inner.borrow_mut().run()
    }

    /// Pipes one record into a chosen partition, bypassing the partitioner.
    pub fn pipe_record_to(&self, partition: u32, record: Record<K, V>) -> Result<()> {
        self.enqueue(record, Some(partition))?;
        self.inner.borrow_mut().run()
    }

    /// Enqueues every pair at the topic's current time (auto-advancing), then processes the
    /// batch.
    pub fn pipe_key_values(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<()> {
        for (k, v) in pairs {
            let ts = self.next_time();
            self.enqueue(Record::new(k, v, ts), None)?;
        }
        self.inner.borrow_mut().run()
    }

    /// Enqueues every record, then processes the batch.
    pub fn pipe_records(&self, records: impl IntoIterator<Item = Record<K, V>>) -> Result<()> {
        for r in records {
            self.enqueue(r, None)?;
        }
        self.inner.borrow_mut().run()
    }

    /// Pipes raw bytes (for example a malformed value) at time `timestamp`.
    pub fn pipe_raw(
        &self,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        timestamp: i64,
    ) -> Result<()> {
        self.inner
            .borrow_mut()
            .append(&self.topic, None, key, value, timestamp, Headers::new())?;
        self.inner.borrow_mut().run()
    }
}

/// Reads typed records from a topic of a [`TopologyTestDriver`], in production order.
pub struct TestOutputTopic<K, V> {
    inner: Rc<RefCell<Inner>>,
    topic: String,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
    cursor: Cell<usize>,
}

impl<K, V> std::fmt::Debug for TestOutputTopic<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestOutputTopic")
            .field("topic", &self.topic)
            .field("read", &self.cursor.get())
            .finish()
    }
}

/// A record read from an output topic, with the partition it landed in.
#[derive(Debug, Clone, PartialEq)]
pub struct TestRecord<K, V> {
    /// The record.
    pub record: Record<K, V>,
    /// Its partition.
    pub partition: u32,
    /// Its offset.
    pub offset: i64,
}

impl<K: 'static, V: 'static> TestOutputTopic<K, V> {
    /// The next record with its partition, if any.
    pub fn read_test_record(&self) -> Result<Option<TestRecord<K, V>>> {
        let inner = self.inner.borrow();
        let Some(stored) = inner
            .topics
            .get(&self.topic)
            .and_then(|l| l.records.get(self.cursor.get()))
        else {
            return Ok(None);
        };
        self.cursor.set(self.cursor.get() + 1);
        let raw = &stored.raw;
        let de = |which, e| StreamsError::Deserialization {
            which,
            topic: self.topic.clone(),
            partition: stored.partition,
            offset: raw.offset,
            source: e,
        };
        let key = self
            .key_serde
            .deserialize_nullable(raw.key.as_deref())
            .map_err(|e| de("key", e))?;
        let value = self
            .value_serde
            .deserialize_nullable(raw.value.as_deref())
            .map_err(|e| de("value", e))?;
        Ok(Some(TestRecord {
            record: Record {
                key,
                value,
                timestamp: raw.timestamp,
                headers: raw.headers.clone(),
            },
            partition: stored.partition,
            offset: raw.offset,
        }))
    }

    /// The next record, if any.
    pub fn read_record(&self) -> Result<Option<Record<K, V>>> {
        Ok(self.read_test_record()?.map(|t| t.record))
    }

    /// The next value, if any.
    pub fn read_value(&self) -> Result<Option<V>> {
        Ok(self.read_record()?.map(|r| r.value))
    }

    /// The next key and value, if any.
    pub fn read_key_value(&self) -> Result<Option<(K, V)>> {
        Ok(self.read_record()?.map(|r| (r.key, r.value)))
    }

    /// Every remaining record.
    pub fn read_records_to_list(&self) -> Result<Vec<Record<K, V>>> {
        let mut out = Vec::new();
        while let Some(r) = self.read_record()? {
            out.push(r);
        }
        Ok(out)
    }

    /// Every remaining value.
    pub fn read_values_to_list(&self) -> Result<Vec<V>> {
        Ok(self
            .read_records_to_list()?
            .into_iter()
            .map(|r| r.value)
            .collect())
    }

    /// Every remaining key.
    pub fn read_keys_to_list(&self) -> Result<Vec<K>> {
        Ok(self
            .read_records_to_list()?
            .into_iter()
            .map(|r| r.key)
            .collect())
    }

    /// Every remaining key and value.
    pub fn read_key_values_to_list(&self) -> Result<Vec<(K, V)>> {
        Ok(self
            .read_records_to_list()?
            .into_iter()
            .map(|r| (r.key, r.value))
            .collect())
    }

    /// The latest value per key over the remaining records.
    pub fn read_key_values_to_map(&self) -> Result<HashMap<K, V>>
    where
        K: Hash + Eq,
    {
        Ok(self.read_key_values_to_list()?.into_iter().collect())
    }

    /// Whether every record has been read.
    pub fn is_empty(&self) -> bool {
        self.queue_size() == 0
    }

    /// The number of records not yet read.
    pub fn queue_size(&self) -> usize {
        let inner = self.inner.borrow();
        inner
            .topics
            .get(&self.topic)
            .map_or(0, |l| l.records.len().saturating_sub(self.cursor.get()))
    }
}
