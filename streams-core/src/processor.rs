//! The Processor API: write an operator by hand.
//!
//! A [`Processor`] receives typed records one at a time and forwards results through its
//! [`ProcessorContext`], which also schedules punctuators (on stream time or wall-clock time),
//! opens connected state stores, and tells the record's metadata, the task id and the stream
//! time. Plug a processor into a DSL topology with
//! [`KStream::process`](crate::dsl::KStream::process).
//!
//! ```
//! use std::time::Duration;
//! use streams_core::prelude::*;
//!
//! /// Counts records per key and emits the counts every 10 s of stream time.
//! struct PeriodicCount { store: Option<KeyValueStoreHandle<String, i64>> }
//!
//! impl Processor<String, String, String, i64> for PeriodicCount {
//!     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<(), StreamsError> {
//!         self.store = Some(ctx.key_value_store("counts")?);
//!         ctx.schedule(Duration::from_secs(10), PunctuationType::StreamTime)?;
//!         Ok(())
//!     }
//!     fn process(&mut self, r: Record<String, String>, _ctx: &mut ProcessorContext<'_, String, i64>) -> Result<(), StreamsError> {
//!         let store = self.store.as_ref().expect("init ran");
//!         let n = store.get(&r.key)?.unwrap_or(0);
//!         store.put(&r.key, &(n + 1))?;
//!         Ok(())
//!     }
//!     fn punctuate(&mut self, p: Punctuation, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<(), StreamsError> {
//!         let store = self.store.as_ref().expect("init ran");
//!         for (k, n) in store.all()? {
//!             ctx.forward(Record::new(k, n, p.timestamp))?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let builder = StreamsBuilder::new();
//! builder.add_state_store(Stores::key_value_store_builder(
//!     Stores::in_memory_key_value_store("counts"), default_serde::<String>(), default_serde::<i64>()));
//! builder.stream::<String, String>("words")
//!     .process(|| PeriodicCount { store: None }, Named::as_("periodic-count"), &["counts"])
//!     .to("counts-out");
//! let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("app")).unwrap();
//! let input = driver.input_topic::<String, String>("words");
//! let output = driver.output_topic::<String, i64>("counts-out");
//! input.pipe_input_at("a".into(), "x".into(), 1_000).unwrap(); // first record: punctuates at once
//! assert_eq!(output.read_key_values_to_list().unwrap(), vec![("a".to_string(), 1)]);
//! input.pipe_input_at("a".into(), "y".into(), 5_000).unwrap(); // before the next punctuation at 10 s
//! assert!(output.is_empty());
//! input.pipe_input_at("b".into(), "z".into(), 10_000).unwrap();
//! assert_eq!(output.read_key_values_to_list().unwrap(),
//!            vec![("a".to_string(), 2), ("b".to_string(), 1)]);
//! ```

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::Data;
use crate::error::{Result, StreamsError};
use crate::internals::node::{Children, Input, NodeOps};
use crate::internals::task::TaskContext;
pub use crate::punctuation::{Punctuation, PunctuationType, ScheduleId};
use crate::record::{Record, RecordMetadata, TaskId};
use crate::state::{KeyValueStoreHandle, SessionStoreHandle, WindowStoreHandle};

/// A hand-written operator from `(KIn, VIn)` records to `(KOut, VOut)` records.
///
/// One instance runs per task; the supplier given to
/// [`KStream::process`](crate::dsl::KStream::process) creates them.
pub trait Processor<KIn, VIn, KOut, VOut>: Send + 'static {
    /// Called once before the first record: open stores and schedule punctuators here.
    fn init(&mut self, _ctx: &mut ProcessorContext<'_, KOut, VOut>) -> Result<()> {
        Ok(())
    }
    /// Processes one record.
    fn process(
        &mut self,
        record: Record<KIn, VIn>,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
    ) -> Result<()>;
    /// Called when a punctuator scheduled by this processor fires.
    fn punctuate(
        &mut self,
        _punctuation: Punctuation,
        _ctx: &mut ProcessorContext<'_, KOut, VOut>,
    ) -> Result<()> {
        Ok(())
    }
    /// Called once when the task closes.
    fn close(&mut self, _ctx: &mut ProcessorContext<'_, KOut, VOut>) -> Result<()> {
        Ok(())
    }
}

pub(crate) struct NodeInfo {
    pub(crate) idx: usize,
    pub(crate) name: Arc<str>,
    pub(crate) children: Children,
    /// The stores connected to this processor.
    pub(crate) stores: Vec<String>,
}

/// What a processor can reach while it runs.
pub struct ProcessorContext<'a, KOut, VOut> {
    task: &'a mut TaskContext,
    node: &'a NodeInfo,
    _out: PhantomData<fn(KOut, VOut)>,
}

impl<KOut, VOut> std::fmt::Debug for ProcessorContext<'_, KOut, VOut> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessorContext")
            .field("node", &self.node.name)
            .field("task", &self.task.id)
            .finish()
    }
}

impl<'a, KOut: Data, VOut: Data> ProcessorContext<'a, KOut, VOut> {
    /// Forwards a record to every child.
    pub fn forward(&mut self, record: Record<KOut, VOut>) -> Result<()> {
        self.node.children.forward(self.task, record)
    }

    /// Forwards a record to the child called `child`.
    pub fn forward_to(&mut self, child: &str, record: Record<KOut, VOut>) -> Result<()> {
        self.node
            .children
            .forward_to(self.task, &self.node.name, child, record)
    }
}

impl<'a, KOut, VOut> ProcessorContext<'a, KOut, VOut> {
    fn new(task: &'a mut TaskContext, node: &'a NodeInfo) -> Self {
        Self {
            task,
            node,
            _out: PhantomData,
        }
    }

    /// Schedules [`Processor::punctuate`] every `interval` on the given clock.
    pub fn schedule(&mut self, interval: Duration, kind: PunctuationType) -> Result<ScheduleId> {
        let ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
        if ms < 1 {
            return Err(StreamsError::processor(
                self.node.name.to_string(),
                "punctuation interval must be at least 1 ms",
            ));
        }
        Ok(self.task.schedule(self.node.idx, ms, kind))
    }

    /// Cancels a punctuator.
    pub fn cancel(&mut self, id: ScheduleId) {
        self.task.cancel(id);
    }

    /// The key-value store called `name`, connected to this processor, with its types.
    pub fn key_value_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<KeyValueStoreHandle<K, V>> {
        self.connected_store(name)
    }

    /// The window store called `name`, connected to this processor, with its types.
    pub fn window_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<WindowStoreHandle<K, V>> {
        self.connected_store(name)
    }

    /// The session store called `name`, connected to this processor, with its types.
    pub fn session_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<SessionStoreHandle<K, V>> {
        self.connected_store(name)
    }

    /// The store `name` as a handle of type `H`, if it is connected to this processor.
    fn connected_store<H: Clone + 'static>(&self, name: &str) -> Result<H> {
        self.connected(name)?;
        self.task.store(name)?.typed::<H>()
    }

    fn connected(&self, name: &str) -> Result<()> {
        if self.node.stores.iter().any(|s| s == name) {
            Ok(())
        } else {
            Err(StreamsError::StoreAccess {
                store: name.to_string(),
                detail: format!(
                    "not connected to processor `{}` (list it in the stores of KStream::process)",
                    self.node.name
                ),
            })
        }
    }

    /// Where the current record came from (`None` inside a punctuator).
    pub fn record_metadata(&self) -> Option<&RecordMetadata> {
        self.task.current.as_ref()
    }

    /// The timestamp of the current record, or the punctuation time inside a punctuator.
    pub fn timestamp(&self) -> i64 {
        self.task.current_timestamp
    }

    /// The task's id.
    pub fn task_id(&self) -> TaskId {
        self.task.id
    }

    /// The task's stream time (-1 before the first record).
    pub fn stream_time(&self) -> i64 {
        self.task.stream_time
    }

    /// The current wall-clock time in ms (mocked in the test driver).
    pub fn wall_clock_time(&self) -> i64 {
        self.task.wall_clock
    }

    /// The application id.
    pub fn application_id(&self) -> &str {
        self.task.config.application_id()
    }

    /// This processor's name.
    pub fn name(&self) -> &str {
        &self.node.name
    }

    /// Asks the runtime to commit as soon as possible.
    pub fn request_commit(&mut self) {
        self.task.commit_requested = true;
    }
}

/// Runs a user [`Processor`] as a node.
pub(crate) struct ProcessorNode<P, KIn, VIn, KOut, VOut> {
    processor: P,
    info: NodeInfo,
    _types: PhantomData<fn(KIn, VIn, KOut, VOut)>,
}

impl<P, KIn, VIn, KOut, VOut> ProcessorNode<P, KIn, VIn, KOut, VOut> {
    pub(crate) fn new(processor: P, info: NodeInfo) -> Self {
        Self {
            processor,
            info,
            _types: PhantomData,
        }
    }
}

impl<P, KIn, VIn, KOut, VOut> NodeOps for ProcessorNode<P, KIn, VIn, KOut, VOut>
where
    P: Processor<KIn, VIn, KOut, VOut>,
    KIn: Data,
    VIn: Data,
    KOut: Data,
    VOut: Data,
{
    fn init(&mut self, task: &mut TaskContext) -> Result<()> {
        let mut ctx = ProcessorContext::new(task, &self.info);
        self.processor.init(&mut ctx)
    }
    fn punctuate(&mut self, p: Punctuation, task: &mut TaskContext) -> Result<()> {
        let mut ctx = ProcessorContext::new(task, &self.info);
        self.processor.punctuate(p, &mut ctx)
    }
    fn close(&mut self, task: &mut TaskContext) -> Result<()> {
        let mut ctx = ProcessorContext::new(task, &self.info);
        self.processor.close(&mut ctx)
    }
}

impl<P, KIn, VIn, KOut, VOut> Input<KIn, VIn> for ProcessorNode<P, KIn, VIn, KOut, VOut>
where
    P: Processor<KIn, VIn, KOut, VOut>,
    KIn: Data,
    VIn: Data,
    KOut: Data,
    VOut: Data,
{
    fn process(&mut self, record: Record<KIn, VIn>, task: &mut TaskContext) -> Result<()> {
        let mut ctx = ProcessorContext::new(task, &self.info);
        self.processor.process(record, &mut ctx)
    }
}
