//! Generic node shapes that DSL operators are made of.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::Data;
use crate::error::{Result, StreamsError};
use crate::internals::node::{Children, Input, NodeOps};
use crate::internals::task::TaskContext;
use crate::record::Record;

/// A stateless node: a closure over the record, the children and the task.
pub(crate) struct FnNode<K, V, F> {
    f: F,
    children: Children,
    _in: PhantomData<fn(K, V)>,
}

impl<K, V, F> FnNode<K, V, F> {
    pub(crate) fn new(f: F, children: Children) -> Self {
        Self {
            f,
            children,
            _in: PhantomData,
        }
    }
}

impl<K: Data, V: Data, F: Send> NodeOps for FnNode<K, V, F> {}

impl<K: Data, V: Data, F> Input<K, V> for FnNode<K, V, F>
where
    F: FnMut(Record<K, V>, &Children, &mut TaskContext) -> Result<()> + Send,
{
    #[inline]
    fn process(&mut self, record: Record<K, V>, task: &mut TaskContext) -> Result<()> {
        (self.f)(record, &self.children, task)
    }
}

/// What a stateful node does on commit (write its cache down and forward what left it).
pub(crate) type FlushFn<S> = fn(&S, &Children, &mut TaskContext) -> Result<()>;

/// What a stateful node does: process a record with its store, and (for nodes that emit
/// on stream time) react to stream time advancing without a record. Every matching closure
/// is one that ignores time; [`Timed`] adds the time hook.
pub(crate) trait StoreProcess<K, V, S>: Send {
    fn process(
        &mut self,
        store: &S,
        record: Record<K, V>,
        children: &Children,
        task: &mut TaskContext,
    ) -> Result<()>;

    fn advance_time(
        &mut self,
        _store: &S,
        _children: &Children,
        _task: &mut TaskContext,
    ) -> Result<()> {
        Ok(())
    }
}

impl<K, V, S, F> StoreProcess<K, V, S> for F
where
    F: FnMut(&S, Record<K, V>, &Children, &mut TaskContext) -> Result<()> + Send,
{
    #[inline]
    fn process(
        &mut self,
        store: &S,
        record: Record<K, V>,
        children: &Children,
        task: &mut TaskContext,
    ) -> Result<()> {
        self(store, record, children, task)
    }
}

/// A stateful node's behaviour with state shared between its record handler `process` and
/// its stream-time handler `advance`.
pub(crate) struct Timed<T, P, A> {
    pub(crate) state: T,
    pub(crate) process: P,
    pub(crate) advance: A,
}

impl<K, V, S, T, P, A> StoreProcess<K, V, S> for Timed<T, P, A>
where
    T: Send,
    P: FnMut(&mut T, &S, Record<K, V>, &Children, &mut TaskContext) -> Result<()> + Send,
    A: FnMut(&mut T, &S, &Children, &mut TaskContext) -> Result<()> + Send,
{
    #[inline]
    fn process(
        &mut self,
        store: &S,
        record: Record<K, V>,
        children: &Children,
        task: &mut TaskContext,
    ) -> Result<()> {
        (self.process)(&mut self.state, store, record, children, task)
    }

    fn advance_time(
        &mut self,
        store: &S,
        children: &Children,
        task: &mut TaskContext,
    ) -> Result<()> {
        (self.advance)(&mut self.state, store, children, task)
    }
}

/// A stateful node: like [`FnNode`], with a typed store handle opened at init.
pub(crate) struct StoreNode<K, V, S, F> {
    store_name: Arc<str>,
    store: Option<S>,
    f: F,
    on_flush: Option<FlushFn<S>>,
    children: Children,
    _in: PhantomData<fn(K, V)>,
}

impl<K, V, S, F> StoreNode<K, V, S, F> {
    pub(crate) fn new(
        store_name: Arc<str>,
        f: F,
        on_flush: Option<FlushFn<S>>,
        children: Children,
    ) -> Self {
        Self {
            store_name,
            store: None,
            f,
            on_flush,
            children,
            _in: PhantomData,
        }
    }
}

impl<K: Data, V: Data, S: Clone + Send + 'static, F: StoreProcess<K, V, S>> NodeOps
    for StoreNode<K, V, S, F>
{
    fn init(&mut self, task: &mut TaskContext) -> Result<()> {
        self.store = Some(task.typed_store(&self.store_name, "operator")?);
        Ok(())
    }
    fn flush(&mut self, task: &mut TaskContext) -> Result<()> {
        match (&self.store, self.on_flush) {
            (Some(store), Some(f)) => f(store, &self.children, task),
            _ => Ok(()),
        }
    }
    fn advance_time(&mut self, task: &mut TaskContext) -> Result<()> {
        match &self.store {
            Some(store) => self.f.advance_time(store, &self.children, task),
            None => Ok(()),
        }
    }
}

impl<K: Data, V: Data, S: Clone + Send + 'static, F> Input<K, V> for StoreNode<K, V, S, F>
where
    F: StoreProcess<K, V, S>,
{
    fn process(&mut self, record: Record<K, V>, task: &mut TaskContext) -> Result<()> {
        let store = self.store.as_ref().ok_or_else(|| {
            StreamsError::Internal(format!("store `{}` used before init", self.store_name))
        })?;
        self.f.process(store, record, &self.children, task)
    }
}
