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

pub mod async_api;
mod global;
mod membership;
mod thread;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use streams_state::{RocksDbResources, StateDirectory};

use crate::client::embedded::EmbeddedClients;
use crate::client::{Admin, ClientError, ClientSupplier, NewTopic};
use crate::config::StreamsConfig;
use crate::error::{Result, StreamsError};
use crate::metrics::TaskMetrics;
use crate::record::TaskId;
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

/// What a thread reports about itself.
#[derive(Debug, Clone)]
struct ThreadStatus {
    running: bool,
    /// Running, with every input partition processed to its end and committed.
    caught_up: bool,
    /// How many times the thread reported (once per loop).
    reports: u64,
    snapshot: ThreadSnapshot,
}

#[derive(Default)]
struct SharedInner {
    state: Option<StreamsState>,
    /// The group's members and assignment, as a thread last saw them (not kept where the
    /// instance announces: `announced` is used instead).
    group: Vec<crate::client::GroupMember>,
    /// The members and assignment the threads announced (see `membership`), when the
    /// clients' own group view may be partial.
    announced: Vec<crate::client::GroupMember>,
    /// Bumped whenever `announced` changes (the threads re-place their standbys).
    announced_version: u64,
    threads: BTreeMap<usize, ThreadStatus>,
    error: Option<String>,
    handles: Vec<JoinHandle<()>>,
}

/// What the instance and its threads share.
struct Shared {
    stop: AtomicBool,
    /// Callers of `wait_until_caught_up`: threads commit as soon as they caught up.
    waiters: std::sync::atomic::AtomicUsize,
    inner: Mutex<SharedInner>,
    listener: Mutex<Option<StateListener>>,
    handler: Mutex<Option<UncaughtErrorHandler>>,
}

use crate::sync::lock;

impl Shared {
    fn state(&self) -> StreamsState {
        lock(&self.inner).state.unwrap_or(StreamsState::Created)
    }

    /// Moves to `new` (unless the instance is already shutting down or failed) and tells
    /// the listener.
    fn transition(&self, new: StreamsState) {
        let old = {
            let mut inner = lock(&self.inner);
            let old = inner.state.unwrap_or(StreamsState::Created);
            let terminal = matches!(old, StreamsState::NotRunning | StreamsState::Error);
            let closing = old == StreamsState::PendingShutdown
                && matches!(new, StreamsState::Rebalancing | StreamsState::Running);
            if old == new || terminal || closing {
                return;
            }
            inner.state = Some(new);
            old
        };
        tracing::info!(?old, ?new, "state change");
        if let Some(l) = lock(&self.listener).as_ref() {
            l(new, old);
        }
    }

    /// A thread reports its status; the instance is Running when every thread is.
    fn report(&self, slot: usize, status: ThreadStatus) {
        let all_running = {
            let mut inner = lock(&self.inner);
            inner.threads.insert(slot, status);
            inner.threads.values().all(|t| t.running)
        };
        self.transition(if all_running {
            StreamsState::Running
        } else {
            StreamsState::Rebalancing
        });
    }

    fn fail(&self, e: String) {
        lock(&self.inner).error.get_or_insert(e);
    }

    /// One check of `wait_until_caught_up` (shared with its async form in `async_api`):
    /// whether the instance is caught up, with `seen` carried from one check to the next.
    /// Caught up must hold over two more reports of every thread: one thread's output may
    /// still be on its way to another's input when both last reported.
    fn caught_up(&self, seen: &mut Option<BTreeMap<usize, u64>>) -> Result<bool> {
        let inner = lock(&self.inner);
        if let Some(e) = &inner.error {
            return Err(StreamsError::Stopped { cause: e.clone() });
        }
        let now_caught_up = inner.state == Some(StreamsState::Running)
            && !inner.threads.is_empty()
            && inner.threads.values().all(|t| t.caught_up);
        let reports: BTreeMap<usize, u64> =
            inner.threads.iter().map(|(k, t)| (*k, t.reports)).collect();
        match seen.as_ref() {
            _ if !now_caught_up => *seen = None,
            None => *seen = Some(reports),
            Some(before) => {
                let stable = reports.len() == before.len()
                    && reports
                        .iter()
                        .all(|(k, n)| before.get(k).is_some_and(|b| *n >= b + 2));
                return Ok(stable);
            }
        }
        Ok(false)
    }
}

/// Task directories in use by this instance's threads: a task moving between threads
/// opens only once the other thread let go of it.
#[derive(Default)]
pub(crate) struct TaskLocks {
    held: Mutex<HashSet<TaskId>>,
}

/// A held task directory; released on drop.
pub(crate) struct TaskLock {
    locks: Arc<TaskLocks>,
    id: TaskId,
}

impl TaskLocks {
    pub(crate) fn try_lock(self: &Arc<Self>, id: TaskId) -> Option<TaskLock> {
        lock(&self.held).insert(id).then(|| TaskLock {
            locks: self.clone(),
            id,
        })
    }
}

impl Drop for TaskLock {
    fn drop(&mut self) {
        lock(&self.locks.held).remove(&self.id);
    }
}

/// Everything an instance's threads share: the topology, settings, clients, the state
/// directory and the topic layout worked out at start.
pub(crate) struct Instance {
    pub(crate) topology: Arc<Topology>,
    pub(crate) config: Arc<StreamsConfig>,
    pub(crate) clients: Arc<dyn ClientSupplier>,
    pub(crate) state_dir: StateDirectory,
    pub(crate) locks: Arc<TaskLocks>,
    pub(crate) resources: RocksDbResources,
    /// Partition counts of every topic the app reads or writes.
    pub(crate) partitions: HashMap<String, u32>,
    /// The sub-topology reading each source topic (external and repartition).
    pub(crate) source_of: HashMap<String, usize>,
    /// Which sub-topologies have logged stores.
    pub(crate) logged: Vec<bool>,
    /// Repartition topics (their records are deleted once committed).
    pub(crate) repartition: HashSet<String>,
    /// Names this instance's clients: `<application.id>-<instance>[-srv-<host>_<port>]`
    /// (the suffix carries `application.server` to the other instances through the group).
    pub(crate) client_prefix: String,
    /// The stores of the running active tasks, for interactive queries.
    pub(crate) queryable: Mutex<BTreeMap<TaskId, Vec<crate::state::StoreEntry>>>,
    /// The global stores (every partition of their topics), shared by every task.
    pub(crate) globals: Option<Arc<crate::internals::global::GlobalStores>>,
    /// The same stores as tasks see them.
    pub(crate) global_entries: Arc<Vec<crate::state::StoreEntry>>,
    /// The topic the threads announce their assignments on (see `membership`): set when
    /// `application.server` or standbys are and the clients' group view may be partial.
    pub(crate) announcements: Option<String>,
    shared: Arc<Shared>,
    next_thread: AtomicU64,
}

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
        })
    }

    /// The group as interactive-query metadata sees it: announced by the threads when
    /// the clients' own view may be partial, else as the clients describe it.
    ///
    /// Announced views are corrected by what this instance knows for sure: the partitions
    /// its own threads hold now (their active tasks, restoring or running) are this
    /// instance's, and another client's announcement that claims one of them is from a past
    /// generation (with eager rebalances a partition changes owner only through a
    /// rebalance, after which every live member announces again): it is dropped, as
    /// [`membership`] drops announcements superseded by newer ones. A member that left or
    /// died thus disappears with the first announcement, or local assignment, of the
    /// rebalance that removed it.
    fn query_group(&self, instance: &Instance) -> Vec<crate::client::GroupMember> {
        let inner = lock(&self.shared.inner);
        if instance.announcements.is_none() {
            return inner.group.clone();
        }
        let local: Vec<crate::client::GroupMember> = inner
            .threads
            .values()
            .map(|t| crate::client::GroupMember {
                member_id: t.snapshot.name.clone(),
                client_id: t.snapshot.name.clone(),
                assignment: instance.topic_partitions_of(
                    t.snapshot
                        .tasks
                        .iter()
                        .filter(|task| {
                            matches!(
                                task.state,
                                TaskState::Created | TaskState::Restoring | TaskState::Running
                            )
                        })
                        .map(|task| task.id),
                ),
            })
            .collect();
        membership::with_local(&inner.announced, &instance.client_prefix, local)
    }

    /// The partitions of store `store`'s sub-topology (its number, and how many
    /// partitions it has), or `None` for a global store (and `Err` for no such store).
    fn store_layout(&self, instance: &Instance, store: &str) -> Result<Option<(usize, u32)>> {
        if self
            .topology
            .inner
            .global_stores
            .iter()
            .any(|g| g.name == store)
        {
            return Ok(None);
        }
        let sub = instance
            .store_subtopology(store)
            .ok_or_else(|| StreamsError::StoreAccess {
                store: store.to_string(),
                detail: "no such store in this topology".into(),
            })?;
        Ok(Some((sub, instance.subtopology_partitions(sub))))
    }

    /// Where the partitions (tasks) of the store `store` stand on this instance: how many
    /// the store has in all, which run here (the views of this instance cover them), which
    /// are assigned here but restoring, and which this instance keeps standbys of. A
    /// global store runs every partition of its topic on every instance.
    ///
    /// Merged answers (one part per instance) are complete only when the parts cover every
    /// partition (see [`Coverage`](crate::query::Coverage)).
    pub fn store_partitions(&self, store: &str) -> Result<crate::query::StorePartitions> {
        let instance = self.instance()?;
        let Some((sub, total)) = self.store_layout(instance, store)? else {
            let topic = self
                .topology
                .inner
                .global_stores
                .iter()
                .find(|g| g.name == store)
                .map(|g| g.topic.clone())
                .unwrap_or_default();
            let n = instance.partitions.get(&topic).copied().unwrap_or(1);
            return Ok(crate::query::StorePartitions {
                store: store.to_string(),
                partitions: n,
                running: (0..n).collect(),
                restoring: Vec::new(),
                standby: Vec::new(),
            });
        };
        let running: Vec<u32> = lock(&instance.queryable)
            .iter()
            .filter(|(id, stores)| {
                id.subtopology as usize == sub && stores.iter().any(|e| e.name() == store)
            })
            .map(|(id, _)| id.partition)
            .collect();
        let mut restoring = Vec::new();
        let mut standby = Vec::new();
        for t in self.metrics().tasks() {
            if t.id.subtopology as usize != sub || running.contains(&t.id.partition) {
                continue;
            }
            match t.state {
                TaskState::Created | TaskState::Restoring | TaskState::Running => {
                    restoring.push(t.id.partition);
                }
                TaskState::Standby => standby.push(t.id.partition),
                TaskState::Suspended => {}
            }
        }
        let sorted = |mut v: Vec<u32>| {
            v.sort_unstable();
            v.dedup();
            v
        };
        Ok(crate::query::StorePartitions {
            store: store.to_string(),
            partitions: total,
            running: sorted(running),
            restoring: sorted(restoring),
            standby: sorted(standby),
        })
    }

    fn instance(&self) -> Result<&Arc<Instance>> {
        self.instance
            .as_ref()
            .ok_or_else(|| StreamsError::StoreAccess {
                store: String::new(),
                detail: "the app is not started".into(),
            })
    }

    /// The store `name` of each running task that has it, and the partitions they cover
    /// (a global store covers every partition of its topic).
    fn store_entries(&self, name: &str) -> Result<(Vec<crate::state::StoreEntry>, Vec<u32>)> {
        let instance = self.instance()?;
        if let Some(g) = instance.global_entries.iter().find(|e| e.name() == name) {
            let all = self.store_partitions(name).map(|p| p.running)?;
            return Ok((vec![g.clone()], all));
        }
        let mut entries = Vec::new();
        let mut partitions = Vec::new();
        for (id, stores) in lock(&instance.queryable).iter() {
            for e in stores.iter().filter(|e| e.name() == name) {
                entries.push(e.clone());
                partitions.push(id.partition);
            }
        }
        Ok((entries, partitions))
    }

    /// A read-only view of the key-value store `name` over this instance's running tasks
    /// (Kafka Streams' `store(StoreQueryParameters)`). Keys of tasks running elsewhere, or
    /// restoring here, are not in it: the view lists the partitions it covers
    /// ([`partitions`](crate::query::KeyValueStoreView::partitions)); see
    /// [`query_metadata_for_key`](Self::query_metadata_for_key) and
    /// [`store_partitions`](Self::store_partitions).
    pub fn key_value_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<crate::query::KeyValueStoreView<K, V>> {
        let (entries, partitions) = self.store_entries(name)?;
        Ok(crate::query::KeyValueStoreView::from_entries(name, &entries)?.covering(partitions))
    }

    /// A read-only view of the window store `name` over this instance's running tasks.
    pub fn window_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<crate::query::WindowStoreView<K, V>> {
        let (entries, partitions) = self.store_entries(name)?;
        Ok(crate::query::WindowStoreView::from_entries(name, &entries)?.covering(partitions))
    }

    /// A read-only view of the session store `name` over this instance's running tasks.
    pub fn session_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<crate::query::SessionStoreView<K, V>> {
        let (entries, partitions) = self.store_entries(name)?;
        Ok(crate::query::SessionStoreView::from_entries(name, &entries)?.covering(partitions))
    }

    /// Every instance of the app in the group, with its `application.server`, the stores
    /// of its tasks and its input partitions (Kafka Streams' `metadataForAllStreamsClients`),
    /// as of the last rebalance this instance saw: live members only (a member that left
    /// or died is gone with the first announcement of the rebalance that removed it), this
    /// instance included as soon as it holds tasks.
    pub fn metadata_for_all_clients(&self) -> Result<Vec<crate::query::StreamsMetadata>> {
        let instance = self.instance()?;
        let group = self.query_group(instance);
        let mut by_instance: BTreeMap<String, crate::query::StreamsMetadata> = BTreeMap::new();
        for m in group {
            let name = instance_of(&m.client_id);
            let entry =
                by_instance
                    .entry(name.clone())
                    .or_insert_with(|| crate::query::StreamsMetadata {
                        host: host_of(&name),
                        instance: name.clone(),
                        state_stores: Vec::new(),
                        topic_partitions: Vec::new(),
                    });
            for tp in m.assignment {
                if let Some(&sub) = instance.source_of.get(&*tp.topic) {
                    for s in instance.store_names(sub) {
                        if !entry.state_stores.contains(&s) {
                            entry.state_stores.push(s);
                        }
                    }
                }
                entry.topic_partitions.push(tp);
            }
        }
        Ok(by_instance.into_values().collect())
    }

    /// Where `key` of the store `store` lives: its partition, and the live instance
    /// running its task (Kafka Streams' `queryMetadataForKey`), `None` while the task
    /// moves. `key_serde` must be the store's key serde: the partition is murmur2 of the
    /// serialized key, as the producer chose it. Whether the owner can answer yet (its task
    /// may still be restoring) only it knows: on this instance,
    /// [`store_partitions`](Self::store_partitions) and the views'
    /// [`covers`](crate::query::KeyValueStoreView::covers) tell.
    pub fn query_metadata_for_key<K: 'static>(
        &self,
        store: &str,
        key: &K,
        key_serde: &dyn crate::serde::Serde<K>,
    ) -> Result<crate::query::KeyQueryMetadata> {
        let instance = self.instance()?;
        let sub = instance
            .store_subtopology(store)
            .ok_or_else(|| StreamsError::StoreAccess {
                store: store.to_string(),
                detail: "no such store in this topology".into(),
            })?;
        let topics: Vec<&String> = instance
            .source_of
            .iter()
            .filter(|(_, s)| **s == sub)
            .map(|(t, _)| t)
            .collect();
        let n = instance.subtopology_partitions(sub);
        let bytes = key_serde
            .serialize(key)
            .map_err(|source| StreamsError::Serialization {
                which: "key",
                target: store.to_string(),
                source,
            })?;
        let partition = crate::partitioner::partition_for_key(&bytes, n);
        let group = self.query_group(instance);
        let active_host = group
            .iter()
            .find(|m| {
                m.assignment
                    .iter()
                    .any(|tp| tp.partition == partition && topics.iter().any(|t| **t == *tp.topic))
            })
            .and_then(|m| host_of(&instance_of(&m.client_id)));
        Ok(crate::query::KeyQueryMetadata {
            active_host,
            standby_hosts: Vec::new(),
            partition,
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

/// Waits for Ctrl-C (SIGINT) or, on Unix, SIGTERM: what [`KafkaStreams::run_until_signal`]
/// waits for, for apps that run more than the streams client (an HTTP server, say) and stop
/// it all on the same signal.
///
/// # Errors
///
/// [`StreamsError::System`] when the signal handlers cannot be installed.
#[cfg(unix)]
pub async fn shutdown_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|source| StreamsError::System {
        what: "cannot watch SIGTERM",
        source,
    })?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(|source| StreamsError::System {
            what: "cannot watch Ctrl-C",
            source,
        }),
        _ = term.recv() => Ok(()),
    }
}

/// Waits for Ctrl-C: what [`KafkaStreams::run_until_signal`] waits for.
///
/// # Errors
///
/// [`StreamsError::System`] when the signal handler cannot be installed.
#[cfg(not(unix))]
pub async fn shutdown_signal() -> Result<()> {
    tokio::signal::ctrl_c()
        .await
        .map_err(|source| StreamsError::System {
            what: "cannot watch Ctrl-C",
            source,
        })
}

impl Drop for KafkaStreams {
    fn drop(&mut self) {
        if self.instance.is_some() && !self.shared.stop.load(Ordering::SeqCst) {
            let _ = self.shutdown(Duration::from_secs(60));
        }
    }
}

fn no_state_dir() -> crate::config::ConfigError {
    crate::config::ConfigError::Invalid {
        setting: "state.dir",
        detail: "the runtime needs a state directory for its stores and checkpoints".into(),
    }
}

/// The instance part of a member's client id (before `-StreamThread-`).
pub(crate) fn instance_of(client_id: &str) -> String {
    client_id
        .split("-StreamThread-")
        .next()
        .unwrap_or(client_id)
        .to_string()
}

/// The `application.server` an instance name carries, if any.
fn host_of(instance: &str) -> Option<crate::query::HostInfo> {
    let (_, server) = instance.rsplit_once("-srv-")?;
    let (host, port) = server.rsplit_once('_')?;
    Some(crate::query::HostInfo {
        host: host.to_string(),
        port: port.parse().ok()?,
    })
}

impl Instance {
    /// The sub-topology holding the store `name`.
    fn store_subtopology(&self, name: &str) -> Option<usize> {
        let t = &self.topology.inner;
        t.subtopologies
            .iter()
            .position(|s| s.stores.iter().any(|&i| t.stores[i].name == name))
    }

    /// How many partitions (tasks) sub-topology `sub` has: those of its source topics.
    fn subtopology_partitions(&self, sub: usize) -> u32 {
        self.source_of
            .iter()
            .filter(|(_, s)| **s == sub)
            .filter_map(|(t, _)| self.partitions.get(t))
            .copied()
            .max()
            .unwrap_or(1)
    }

    /// The input partitions of `tasks`: partition *p* of each source topic of a task's
    /// sub-topology, sorted.
    fn topic_partitions_of(
        &self,
        tasks: impl Iterator<Item = TaskId>,
    ) -> Vec<crate::client::TopicPartition> {
        let mut out: Vec<crate::client::TopicPartition> = Vec::new();
        for id in tasks {
            for (topic, sub) in &self.source_of {
                if *sub == id.subtopology as usize {
                    out.push(crate::client::TopicPartition::new(
                        topic.as_str(),
                        id.partition,
                    ));
                }
            }
        }
        out.sort_by(|a, b| (&*a.topic, a.partition).cmp(&(&*b.topic, b.partition)));
        out.dedup();
        out
    }

    /// The stores of sub-topology `sub`.
    fn store_names(&self, sub: usize) -> Vec<String> {
        let t = &self.topology.inner;
        t.subtopologies
            .get(sub)
            .map(|s| s.stores.iter().map(|&i| t.stores[i].name.clone()).collect())
            .unwrap_or_default()
    }

    /// Makes the stores of a running task queryable, or not.
    pub(crate) fn set_queryable(&self, id: TaskId, stores: Option<Vec<crate::state::StoreEntry>>) {
        let mut q = lock(&self.queryable);
        match stores {
            Some(s) => {
                q.insert(id, s);
            }
            None => {
                q.remove(&id);
            }
        }
    }

    /// Records the group's members and assignment after a rebalance.
    pub(crate) fn set_group(&self, members: Vec<crate::client::GroupMember>) {
        lock(&self.shared.inner).group = members;
    }
}

/// Starts a stream thread of `instance`.
fn spawn_thread(instance: &Arc<Instance>) -> Result<()> {
    let n = instance.next_thread.fetch_add(1, Ordering::Relaxed);
    let slot = n as usize;
    let name = format!("{}-StreamThread-{n}", instance.client_prefix);
    let inst = instance.clone();
    let thread_name = name.clone();
    let handle = std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            // The thread's span, entered for its whole life (see docs/TRACING.md): its task
            // spans are children of it.
            let _span = tracing::info_span!("stream_thread", thread = %thread_name).entered();
            let shared = inst.shared.clone();
            let result = thread::StreamThread::new(inst.clone(), slot, thread_name.clone())
                .and_then(|mut t| t.run());
            lock(&shared.inner).threads.remove(&slot);
            let Err(e) = result else { return };
            tracing::error!(thread = %thread_name, error = %e, "stream thread failed");
            let handler = lock(&shared.handler).clone();
            let response = handler.map_or(ThreadFailureResponse::ShutdownClient, |h| h(&e));
            let stopping = shared.stop.load(Ordering::SeqCst);
            if response == ThreadFailureResponse::ReplaceThread && !stopping {
                if let Err(e2) = spawn_thread(&inst) {
                    shared.fail(format!("{e}; replacing the thread failed: {e2}"));
                    shared.stop.store(true, Ordering::SeqCst);
                    shared.transition(StreamsState::Error);
                }
            } else if !stopping {
                shared.fail(e.to_string());
                shared.stop.store(true, Ordering::SeqCst);
                shared.transition(StreamsState::Error);
            } else {
                shared.fail(e.to_string());
            }
        })
        .map_err(|source| StreamsError::System {
            what: "cannot start a stream thread",
            source,
        })?;
    lock(&instance.shared.inner).handles.push(handle);
    Ok(())
}

/// Creates `topic` unless it exists with the same partition count; another instance may
/// create it at the same time.
fn ensure_topic(
    admin: &dyn Admin,
    existing: &BTreeMap<String, u32>,
    topic: &NewTopic,
) -> Result<()> {
    let mismatch = |n: u32| StreamsError::Topic {
        topic: topic.name.clone(),
        detail: format!(
            "internal topic has {n} partitions, the topology needs {}; reset the application",
            topic.partitions
        ),
    };
    match existing.get(&topic.name) {
        Some(&n) if n == topic.partitions => Ok(()),
        Some(&n) => Err(mismatch(n)),
        None => match admin.create_topic(topic) {
            Ok(()) => Ok(()),
            Err(ClientError::TopicExists(_)) => match admin.topics()?.get(&topic.name) {
                Some(&n) if n != topic.partitions => Err(mismatch(n)),
                _ => Ok(()),
            },
            Err(e) => Err(e.into()),
        },
    }
}

fn wall_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
