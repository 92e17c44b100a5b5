//! Typed nodes in a task's arena, and forwarding between them.

use std::any::Any;
use std::sync::Arc;

use crate::Data;
use crate::error::{Result, StreamsError};
use crate::punctuation::Punctuation;
use crate::record::Record;

use super::context::TaskContext;
use super::source::SourceOps;

/// What every node can do regardless of its input type.
pub(crate) trait NodeOps: Send {
    fn init(&mut self, _task: &mut TaskContext) -> Result<()> {
        Ok(())
    }
    fn close(&mut self, _task: &mut TaskContext) -> Result<()> {
        Ok(())
    }
    fn punctuate(&mut self, _p: Punctuation, _task: &mut TaskContext) -> Result<()> {
        Ok(())
    }
    /// Called on commit, in topological order: nodes with cached stores write their caches
    /// down and forward what left them.
    fn flush(&mut self, _task: &mut TaskContext) -> Result<()> {
        Ok(())
    }
    /// Called, in topological order, when stream time advanced without a record (idle
    /// advance): nodes that emit on stream time emit what became due.
    fn advance_time(&mut self, _task: &mut TaskContext) -> Result<()> {
        Ok(())
    }
}

/// A node that takes records of type `(K, V)`.
pub(crate) trait Input<K, V>: NodeOps {
    fn process(&mut self, record: Record<K, V>, task: &mut TaskContext) -> Result<()>;
}

type OpsFn = fn(&mut (dyn Any + Send)) -> Option<&mut dyn NodeOps>;

/// A type-erased node: either a typed processing node or a source.
pub(crate) struct NodeBox {
    any: Box<dyn Any + Send>,
    ops: OpsFn,
}

fn typed_ops<K: 'static, V: 'static>(a: &mut (dyn Any + Send)) -> Option<&mut dyn NodeOps> {
    a.downcast_mut::<Box<dyn Input<K, V>>>()
        .map(|b| &mut **b as &mut dyn NodeOps)
}

fn source_ops(a: &mut (dyn Any + Send)) -> Option<&mut dyn NodeOps> {
    a.downcast_mut::<Box<dyn SourceOps>>()
        .map(|b| &mut **b as &mut dyn NodeOps)
}

impl NodeBox {
    pub(crate) fn typed<K: 'static, V: 'static, N: Input<K, V> + 'static>(node: N) -> Self {
        let b: Box<dyn Input<K, V>> = Box::new(node);
        Self {
            any: Box::new(b),
            ops: typed_ops::<K, V>,
        }
    }

    pub(crate) fn source<N: SourceOps + 'static>(node: N) -> Self {
        let b: Box<dyn SourceOps> = Box::new(node);
        Self {
            any: Box::new(b),
            ops: source_ops,
        }
    }

    pub(crate) fn ops(&mut self) -> Option<&mut dyn NodeOps> {
        (self.ops)(self.any.as_mut())
    }

    pub(crate) fn as_source(&mut self) -> Option<&mut (dyn SourceOps + 'static)> {
        self.any
            .downcast_mut::<Box<dyn SourceOps>>()
            .map(|b| &mut **b)
    }

    pub(crate) fn as_input<K: 'static, V: 'static>(
        &mut self,
    ) -> Option<&mut (dyn Input<K, V> + 'static)> {
        self.any
            .downcast_mut::<Box<dyn Input<K, V>>>()
            .map(|b| &mut **b)
    }
}

/// A slot of the arena. `node` is `None` while the node is running (taken out so that it can
/// receive `&mut TaskContext`).
pub(crate) struct Slot {
    pub(crate) name: Arc<str>,
    pub(crate) node: Option<NodeBox>,
    /// Whether the node has no children (a sink, a processor that forwards nothing): its
    /// records' end-to-end latency is recorded as they reach it (KIP-613).
    pub(crate) terminal: bool,
    /// Whether the node is a source (end-to-end latency recorded as records leave its queue).
    pub(crate) source: bool,
    /// Records the node received (kept at the `DEBUG` recording level only).
    pub(crate) processed: u64,
    /// End-to-end latencies since the last metrics publish (source and terminal nodes).
    pub(crate) e2e: crate::metrics_export::LatencyWindow,
}

impl Slot {
    /// A slot holding `node`.
    pub(crate) fn new(name: Arc<str>, node: NodeBox, source: bool, terminal: bool) -> Self {
        Self {
            name,
            node: Some(node),
            terminal,
            source,
            processed: 0,
            e2e: Default::default(),
        }
    }
}

/// The children of a node, by arena index.
#[derive(Debug, Clone, Default)]
pub(crate) struct Children {
    idx: Box<[usize]>,
    names: Box<[Arc<str>]>,
}

impl Children {
    pub(crate) fn new(idx: Vec<usize>, names: Vec<Arc<str>>) -> Self {
        Self {
            idx: idx.into_boxed_slice(),
            names: names.into_boxed_slice(),
        }
    }

    /// Sends `record` to every child: clones for all but the last, which gets it by move.
    #[inline]
    pub(crate) fn forward<K: Data, V: Data>(
        &self,
        task: &mut TaskContext,
        record: Record<K, V>,
    ) -> Result<()> {
        match self.idx.split_last() {
            None => Ok(()),
            Some((last, rest)) => {
                for &child in rest {
                    task.dispatch(child, record.clone())?;
                }
                task.dispatch(*last, record)
            }
        }
    }

    /// Sends `record` to the `n`-th child only.
    pub(crate) fn forward_nth<K: Data, V: Data>(
        &self,
        task: &mut TaskContext,
        n: usize,
        record: Record<K, V>,
    ) -> Result<()> {
        match self.idx.get(n) {
            Some(&child) => task.dispatch(child, record),
            None => Err(StreamsError::Internal(format!("no child {n}"))),
        }
    }

    /// Sends `record` to the child called `name`.
    pub(crate) fn forward_to<K: Data, V: Data>(
        &self,
        task: &mut TaskContext,
        from: &str,
        name: &str,
        record: Record<K, V>,
    ) -> Result<()> {
        match self.names.iter().position(|n| &**n == name) {
            Some(i) => task.dispatch(self.idx[i], record),
            None => Err(StreamsError::UnknownChild {
                node: from.to_string(),
                child: name.to_string(),
            }),
        }
    }
}

/// What a node factory gets to build one task's copy of a node.
pub(crate) struct NodeBuild<'a> {
    pub(crate) name: Arc<str>,
    pub(crate) idx: usize,
    pub(crate) children: Children,
    pub(crate) partition: u32,
    /// Resolved topic names (application-id prefix applied) of a source or sink.
    pub(crate) topics: Vec<Arc<str>>,
    /// The names of the stores connected to the node.
    pub(crate) stores: Vec<String>,
    pub(crate) config: &'a crate::config::StreamsConfig,
}

/// Builds one task's copy of a node.
pub(crate) type NodeFactory = Arc<dyn Fn(NodeBuild<'_>) -> Result<NodeBox> + Send + Sync>;
