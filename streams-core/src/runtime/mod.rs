//! The runtime: a long-lived app instance ([`KafkaStreams`]) running a topology on stream
//! threads, against any broker behind the [client interface](crate::client) — by default
//! the embedded log engine.
//!
//! On [`start`](KafkaStreams::start) the instance validates the source topics (they exist;
//! the source topics of one sub-topology have the same partition count), creates the
//! internal topics (repartition topics sized from their sources, compacted changelogs with
//! one partition per task), and starts `num.stream.threads` stream threads. Each thread is
//! a consumer group member (the group is `application.id`); the partitions it is assigned
//! become tasks, one per (sub-topology, partition), which restore their stores from their
//! changelogs (from the checkpoint on) before they process. A thread's loop is Kafka
//! Streams': poll, buffer per partition, process each task in timestamp order, punctuate,
//! and commit every `commit.interval.ms` (flush caches and stores, flush the producer,
//! write checkpoints, commit offsets: at-least-once). Instances sharing an engine — in one
//! process — form one group and split the tasks; when one leaves, its tasks move and their
//! state is restored on the others. With `num.standby.replicas` > 0, other instances keep
//! warm copies of each task's stores, which makes that move fast.
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

mod alignment;
pub mod async_api;
mod global;
mod membership;
mod thread;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streams_state::{RocksDbResources, StateDirectory};

use crate::client::embedded::EmbeddedClients;
use crate::client::{ClientSupplier, NewTopic};
use crate::config::StreamsConfig;
use crate::error::{Result, StreamsError};
use crate::metrics::TaskMetrics;
pub use crate::snapshot::{TaskSnapshot, TaskState, ThreadSnapshot};
use crate::topology::{TopicName, Topology};

pub use streams_state::{
    EngineConfig, Isolation, LogEngine, LogRecord, NewRecord, ProducerId, ReadResult,
    RecoveryReport, TopicConfig, TransactionRecovery, TransactionState, TransactionStatus,
};

/// The lifecycle of an app instance, as in Kafka Streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamsState {
    /// Built, not started.
    Created,
    /// Joining the group, taking over tasks or restoring their state.
    Rebalancing,
    /// Every thread processes its tasks.
    Running,
    /// Closing: final commits are under way.
    PendingShutdown,
    /// Closed.
    NotRunning,
    /// Stopped by an error (see [`KafkaStreams::set_uncaught_error_handler`]).
    Error,
}

/// What to do when a stream thread fails (Kafka Streams'
/// `StreamsUncaughtExceptionHandler` responses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadFailureResponse {
    /// Start a new thread in its place: its tasks move to the others and, after the
    /// rebalance, to the new thread.
    ReplaceThread,
    /// Stop every thread of this instance; the instance goes to [`StreamsState::Error`].
    /// The default, as in Kafka Streams.
    ShutdownClient,
}

/// A snapshot of an instance's metrics ([`KafkaStreams::metrics`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamsMetrics {
    /// Per stream thread.
    pub threads: Vec<ThreadSnapshot>,
}

impl StreamsMetrics {
    /// The metrics of every active task, summed.
    pub fn total(&self) -> TaskMetrics {
        let mut m = TaskMetrics::default();
        for t in self.tasks() {
            if t.state != TaskState::Standby {
                m += t.metrics;
            }
        }
        m
    }

    /// Every task of every thread.
    pub fn tasks(&self) -> impl Iterator<Item = &TaskSnapshot> {
        self.threads.iter().flat_map(|t| t.tasks.iter())
    }

    /// Input records not processed yet, over the active tasks (consumer lag).
    pub fn lag(&self) -> i64 {
        self.tasks()
            .filter(|t| t.state != TaskState::Standby)
            .map(|t| t.lag)
            .sum()
    }
}

/// Called with (new state, old state) on every state change.
pub type StateListener = Box<dyn Fn(StreamsState, StreamsState) + Send + Sync>;
/// Decides what a thread failure leads to.
pub type UncaughtErrorHandler = Arc<dyn Fn(&StreamsError) -> ThreadFailureResponse + Send + Sync>;

mod instance;
mod queries;
mod signal;

use crate::sync::lock;
use instance::*;
pub use signal::shutdown_signal;
use thread::spawn_thread;

/// A streams app instance (see the [module docs](self)).
pub struct KafkaStreams {
    topology: Arc<Topology>,
    config: Arc<StreamsConfig>,
    clients: Arc<dyn ClientSupplier>,
    shared: Arc<Shared>,
    instance: Option<Arc<Instance>>,
}

impl std::fmt::Debug for KafkaStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaStreams")
            .field("application_id", &self.config.application_id())
            .field("state", &self.state())
            .finish()
    }
}

/// A name unique to this instance within the process and over restarts.
fn instance_name() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{:x}{:x}{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl KafkaStreams {
    /// An app instance running `topology` on the embedded `engine`. Instances sharing an
    /// engine (in one process) with the same `application.id` form one group. Checks the
    /// configuration; a state directory (`state.dir`) is required, and settings this
    /// runtime cannot honour yet are refused rather than ignored.
    /// `bootstrap.servers` must be unset (see [`from_config`](Self::from_config)).
    pub fn new(topology: Topology, config: StreamsConfig, engine: Arc<LogEngine>) -> Result<Self> {
        config.validate()?;
        config.check_embedded_runtime()?;
        use crate::config::ClientPrefix;
        // The main consumer's settings: `consumer.`, overridden by `main.consumer.`.
        let mut consumer = config.client_properties(ClientPrefix::Consumer).clone();
        consumer.extend(
            config
                .client_properties(ClientPrefix::MainConsumer)
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        let mut limits = crate::client::embedded::ConsumerSettings::from_properties(&consumer)?;
        if config.processing_guarantee() == crate::config::ProcessingGuarantee::ExactlyOnceV2 {
            // Every consumer reads committed data only, as Kafka Streams enforces.
            limits.isolation = crate::client::IsolationLevel::ReadCommitted;
        }
        for prefix in [
            ClientPrefix::Producer,
            ClientPrefix::Admin,
            ClientPrefix::RestoreConsumer,
        ] {
            for key in config.client_properties(prefix).keys() {
                tracing::warn!(
                    setting = %format!("{}{key}", prefix.prefix()),
                    "ignored: Kafka client settings mean nothing to the embedded engine"
                );
            }
        }
        let clients = EmbeddedClients::new(engine).with_consumer_settings(limits);
        Self::with_clients(topology, config, Arc::new(clients))
    }

    /// An app instance on the broker its configuration names: on Kafka at
    /// `bootstrap.servers` ([`KafkaClients`](crate::client::kafka::KafkaClients), which
    /// checks within `default.api.timeout.ms` that the cluster answers). Without
    /// `bootstrap.servers`, on an embedded log engine in `<state.dir>/log` (instances that
    /// should share an engine in one process use [`new`](Self::new) with one engine).
    pub fn from_config(topology: Topology, config: StreamsConfig) -> Result<Self> {
        config.validate()?;
        if config.bootstrap_servers().is_empty() {
            let Some(dir) = config.state_dir() else {
                return Err(no_state_dir().into());
            };
            let engine = Arc::new(LogEngine::open(&dir.join("log"))?);
            return Self::new(topology, config, engine);
        }
        Self::on_kafka(topology, config)
    }

    #[cfg(feature = "kafka")]
    fn on_kafka(topology: Topology, config: StreamsConfig) -> Result<Self> {
        config.check_runtime()?;
        let clients = crate::client::kafka::KafkaClients::new(&config)?;
        Self::with_clients(topology, config, Arc::new(clients))
    }

    #[cfg(not(feature = "kafka"))]
    fn on_kafka(_topology: Topology, _config: StreamsConfig) -> Result<Self> {
        Err(crate::config::ConfigError::Invalid {
            setting: crate::config::names::BOOTSTRAP_SERVERS,
            detail: "streams-core was built without its `kafka` feature: no Kafka client".into(),
        }
        .into())
    }

    /// An app instance on the broker behind `clients` (Kafka Streams' constructor with a
    /// `KafkaClientSupplier`), e.g. [`KafkaClients`](crate::client::kafka::KafkaClients).
    pub fn with_clients(
        topology: Topology,
        config: StreamsConfig,
        clients: Arc<dyn ClientSupplier>,
    ) -> Result<Self> {
        config.validate()?;
        config.check_runtime()?;
        if config.state_dir().is_none() {
            return Err(no_state_dir().into());
        }
        Ok(Self {
            topology: Arc::new(topology),
            config: Arc::new(config),
            clients,
            shared: Arc::new(Shared {
                stop: AtomicBool::new(false),
                waiters: std::sync::atomic::AtomicUsize::new(0),
                inner: Mutex::new(SharedInner::default()),
                listener: Mutex::new(None),
                handler: Mutex::new(None),
            }),
            instance: None,
        })
    }

    /// The instance's state.
    pub fn state(&self) -> StreamsState {
        self.shared.state()
    }

    /// Why the instance stopped, once a stream thread failed and the instance went to
    /// [`StreamsState::Error`]: the failed thread's error, as it logged it (a record that
    /// does not deserialize names its topic-partition@offset and the handler setting that
    /// would skip it; a full disk names the path). `None` while nothing failed. An app
    /// that watches [`state`](Self::state) prints this as its last line.
    pub fn failure(&self) -> Option<StreamsError> {
        lock(&self.shared.inner)
            .error
            .clone()
            .map(|cause| StreamsError::Stopped { cause })
    }

    /// Calls `listener(new, old)` on every state change (Kafka Streams'
    /// `setStateListener`). Set it before [`start`](Self::start).
    pub fn set_state_listener(
        &mut self,
        listener: impl Fn(StreamsState, StreamsState) + Send + Sync + 'static,
    ) {
        *lock(&self.shared.listener) = Some(Box::new(listener));
    }

    /// Decides what happens when a stream thread fails (Kafka Streams'
    /// `setUncaughtExceptionHandler`). Default: [`ThreadFailureResponse::ShutdownClient`].
    pub fn set_uncaught_error_handler(
        &mut self,
        handler: impl Fn(&StreamsError) -> ThreadFailureResponse + Send + Sync + 'static,
    ) {
        *lock(&self.shared.handler) = Some(Arc::new(handler));
    }

    /// A snapshot of the instance's metrics, per thread and task (as of each thread's last
    /// loop).
    pub fn metrics(&self) -> StreamsMetrics {
        StreamsMetrics {
            threads: lock(&self.shared.inner)
                .threads
                .values()
                .map(|t| t.snapshot.clone())
                .collect(),
        }
    }

    /// Starts the instance: checks the source topics, creates the internal ones and starts
    /// `num.stream.threads` stream threads.
    pub fn start(&mut self) -> Result<()> {
        if self.instance.is_some() {
            return Ok(());
        }
        self.shared.transition(StreamsState::Rebalancing);
        let instance = match self.setup() {
            Ok(i) => Arc::new(i),
            Err(e) => {
                self.shared.transition(StreamsState::Error);
                return Err(e);
            }
        };
        if let Some(stores) = &instance.globals {
            // The global tables are complete before any record is processed.
            let loaded =
                global::GlobalFollower::new(&instance, stores.clone()).and_then(|mut f| {
                    f.bootstrap(&instance)?;
                    Ok(f)
                });
            match loaded {
                Ok(follower) => global::spawn(&instance, follower)?,
                Err(e) => {
                    self.shared.transition(StreamsState::Error);
                    return Err(e);
                }
            }
        }
        if let Some(topic) = &instance.announcements {
            membership::spawn_reader(&instance, topic.clone())?;
        }
        for _ in 0..self.config.num_stream_threads() {
            spawn_thread(&instance)?;
        }
        self.instance = Some(instance);
        Ok(())
    }

    fn setup(&self) -> Result<Instance> {
        let admin = self.clients.admin()?;
        let t = &self.topology.inner;
        let app = self.config.application_id().to_string();
        let existing = admin.topics()?;
        let mut partitions: HashMap<String, u32> = HashMap::new();
        for s in &t.subtopologies {
            for topic in &s.sources {
                if let TopicName::External(name) = topic {
                    let n = existing.get(name).ok_or_else(|| StreamsError::Topic {
                        topic: name.clone(),
                        detail: "source topic does not exist; create it before starting the app"
                            .into(),
                    })?;
                    partitions.insert(name.clone(), *n);
                }
            }
        }
        for g in &t.global_stores {
            let n = existing.get(&g.topic).ok_or_else(|| StreamsError::Topic {
                topic: g.topic.clone(),
                detail: "the topic of a global table does not exist; create it before starting \
                         the app"
                    .into(),
            })?;
            partitions.insert(g.topic.clone(), *n);
        }
        t.size_repartition_topics(&app, &mut partitions)?;
        let counts = t.task_counts(&app, &partitions);
        // Sources of one sub-topology must be co-partitioned: task i reads partition i of
        // each.
        let mut source_of = HashMap::new();
        for (i, s) in t.subtopologies.iter().enumerate() {
            let names: Vec<String> = s.sources.iter().map(|t| t.resolve(&app)).collect();
            let sizes: Vec<(String, u32)> = names
                .iter()
                .map(|n| (n.clone(), partitions.get(n).copied().unwrap_or(1)))
                .collect();
            if sizes.iter().any(|(_, n)| *n != sizes[0].1) {
                let list: Vec<String> = sizes.iter().map(|(t, n)| format!("{t} ({n})")).collect();
                return Err(StreamsError::Topic {
                    topic: sizes[0].0.clone(),
                    detail: format!(
                        "topics read together must have the same number of partitions (be co-partitioned): {}",
                        list.join(", ")
                    ),
                });
            }
            for n in names {
                source_of.insert(n, i);
            }
        }
        let mut repartition = HashSet::new();
        for (topic, _) in &t.repartition_topics {
            let name = topic.resolve(&app);
            let n = partitions.get(&name).copied().unwrap_or(1);
            // Records are purged after each commit, so time does not remove them (Kafka
            // Streams' retention.ms=-1): an app down longer than a retention loses nothing.
            let mut topic = NewTopic::new(&name, n);
            topic.retention_ms = Some(-1);
            ensure_topic(admin.as_ref(), &existing, &topic)?;
            repartition.insert(name);
        }
        let mut logged = vec![false; t.subtopologies.len()];
        for (i, s) in t.subtopologies.iter().enumerate() {
            for &st in &s.stores {
                let spec = &t.stores[st];
                if spec.logged {
                    let name = spec.changelog_topic().resolve(&app);
                    let mut topic = NewTopic::new(&name, counts[i]).compacted();
                    if let crate::state::ChangelogKind::CompactDelete { retention_ms } =
                        spec.changelog_kind
                    {
                        topic.retention_ms = Some(retention_ms);
                    }
                    ensure_topic(admin.as_ref(), &existing, &topic)?;
                    partitions.insert(name, counts[i]);
                    logged[i] = true;
                }
            }
        }
        // Interactive queries and standby placement need the whole group.
        let announcements = ((self.config.application_server().is_some()
            || self.config.num_standby_replicas() > 0)
            && self.clients.group_view_is_partial())
        .then(|| membership::topic_name(&app));
        if let Some(name) = &announcements {
            ensure_topic(
                admin.as_ref(),
                &existing,
                &NewTopic::new(name, 1).compacted(),
            )?;
        }
        for (name, n) in admin.topics()? {
            partitions.entry(name).or_insert(n);
        }
        let root = self
            .config
            .state_dir()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        let state_dir = StateDirectory::open(&root, &app)?;
        let resources = RocksDbResources::with_budget(self.config.memory_bytes());
        let globals = if t.global_stores.is_empty() {
            None
        } else {
            let dir = state_dir.task_dir("global")?;
            Some(Arc::new(crate::internals::global::GlobalStores::open(
                t,
                &self.config,
                Some(&dir),
                resources.clone(),
            )?))
        };
        let global_entries = crate::internals::global::shared(globals.as_deref());
        Ok(Instance {
            topology: self.topology.clone(),
            config: self.config.clone(),
            clients: self.clients.clone(),
            state_dir,
            locks: Arc::new(TaskLocks::default()),
            resources,
            partitions,
            source_of,
            logged,
            repartition,
            client_prefix: match self.config.application_server() {
                Some(server) => {
                    format!("{app}-{}-srv-{}", instance_name(), server.replace(':', "_"))
                }
                None => format!("{app}-{}", instance_name()),
            },
            queryable: Mutex::new(BTreeMap::new()),
            globals,
            global_entries,
            announcements,
            shared: self.shared.clone(),
            next_thread: AtomicU64::new(1),
            clocks: Arc::new(alignment::ThreadClocks::default()),
        })
    }
    /// Blocks until this instance is Running and every partition assigned to it has been
    /// processed to its end (for tests and batch-style runs); fails after `timeout` or when
    /// the instance stopped on an error.
    pub fn wait_until_caught_up(&self, timeout: Duration) -> Result<()> {
        self.shared.waiters.fetch_add(1, Ordering::SeqCst);
        let result = self.wait_caught_up(timeout);
        self.shared.waiters.fetch_sub(1, Ordering::SeqCst);
        result
    }

    fn wait_caught_up(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut seen = None;
        loop {
            if self.shared.caught_up(&mut seen)? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StreamsError::Timeout {
                    operation: "catching up".into(),
                    after: timeout,
                    detail: format!("state {:?}", self.state()),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops processing: every thread commits (flushing caches, stores and the producer,
    /// writing checkpoints and offsets), closes its tasks and leaves the group. Returns an
    /// error if a thread had failed.
    pub fn close(self) -> Result<()> {
        self.close_with_timeout(Duration::from_secs(u64::from(u32::MAX)))
    }

    /// Like [`close`](Self::close), waiting at most `timeout` for the threads; an error
    /// says so when they did not finish in time (they finish in the background).
    pub fn close_with_timeout(mut self, timeout: Duration) -> Result<()> {
        self.shutdown(timeout)
    }

    fn shutdown(&mut self, timeout: Duration) -> Result<()> {
        if self.state() != StreamsState::Error {
            self.shared.transition(StreamsState::PendingShutdown);
        }
        self.shared.stop.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + timeout;
        loop {
            let handles = std::mem::take(&mut lock(&self.shared.inner).handles);
            if handles.is_empty() {
                break;
            }
            for h in handles {
                while !h.is_finished() {
                    if Instant::now() >= deadline {
                        lock(&self.shared.inner).handles.push(h);
                        return Err(StreamsError::Timeout {
                            operation: "stopping the stream threads".into(),
                            after: timeout,
                            detail: String::new(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                let _ = h.join();
            }
        }
        let error = lock(&self.shared.inner).error.clone();
        match error {
            Some(e) => {
                self.shared.transition(StreamsState::Error);
                Err(StreamsError::Stopped { cause: e })
            }
            None => {
                self.shared.transition(StreamsState::NotRunning);
                Ok(())
            }
        }
    }

    /// Runs until the process gets Ctrl-C (SIGINT) or SIGTERM, then closes (Kafka Streams
    /// apps do this with a shutdown hook). Starts the instance if needed. Needs a tokio
    /// runtime with the signal driver (`tokio::main` has it).
    pub async fn run_until_signal(mut self) -> Result<()> {
        self.start()?;
        shutdown_signal().await?;
        tokio::task::spawn_blocking(move || self.close())
            .await
            .map_err(|e| StreamsError::Internal(format!("closing failed: {e}")))?
    }
}
impl Drop for KafkaStreams {
    fn drop(&mut self) {
        if self.instance.is_some() && !self.shared.stop.load(Ordering::SeqCst) {
            let _ = self.shutdown(Duration::from_secs(60));
        }
    }
}
