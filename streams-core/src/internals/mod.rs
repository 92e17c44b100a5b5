//! Runtime machinery shared by the test driver and the runtime: typed processing nodes,
//! tasks, sources and sinks. Nothing here is public API.
//!
//! A task holds its nodes in an arena; a node forwards typed records to its children by
//! index ([`node::Children`]), so operators of one sub-topology pass values without
//! serializing them. Only sources and sinks touch bytes.

pub(crate) mod context;
pub(crate) mod fk_join;
pub(crate) mod forward;
pub(crate) mod global;
pub(crate) mod join_presence;
pub(crate) mod node;
pub(crate) mod sink;
pub(crate) mod source;
pub(crate) mod spec;
pub(crate) mod stream_join;
pub(crate) mod table_source;
pub(crate) mod task;
pub(crate) mod versioned;
pub(crate) mod window_aggregate;
