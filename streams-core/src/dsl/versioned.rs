//! Versioned tables (KIP-889, KIP-914) and the stream-table join with a grace period
//! (KIP-923).
//!
//! A table materialized with [`Materialized::as_versioned`] keeps, besides its latest value
//! per key (the store every other operator reads), the history of its values for
//! `history_retention` ms of stream time in a second store, `<name>-versions` (changelogged
//! like the first). An update older than the key's latest value is an out-of-order update:
//! it goes into the history only and is not forwarded (KIP-914). A stream-table join with
//! [`Joined::with_grace_period`](super::Joined::with_grace_period) holds stream records for
//! the grace period in a time-ordered buffer and then joins each with the table version that
//! was valid at the record's timestamp; without one, each stream record joins that version
//! at once (Kafka's join on a versioned table).
//!
//! This module wires those into the topology (stores and node factories); the nodes and
//! the history's encodings are in `internals::versioned`.

use std::sync::Arc;

use crate::Data;
use crate::internals::node::{NodeBox, NodeBuild, NodeFactory};
use crate::internals::stream_join::JoinFn;
use crate::internals::versioned::{
    BufferKey, BufferKeySerde, Buffered, BufferedSerde, GraceJoin, VersionKey, VersionKeySerde,
    VersionValueSerde, VersionedSource,
};
use crate::serde::SerdeRef;
use crate::state::{StoreBuilder, Stores};
use crate::topology::NodeKind;

use super::options::Materialized;
use super::table_store::{Shared, add_ts_store};

/// Adds the history store of a versioned table called `store`; returns its name.
fn add_history_store<K: Data, V: Data>(
    b: &Shared,
    store: &str,
    logging: bool,
    ks: SerdeRef<K>,
    vs: SerdeRef<V>,
) -> String {
    let name = format!("{store}-versions");
    let key: SerdeRef<VersionKey<K>> = Arc::new(VersionKeySerde { inner: ks });
    let value: SerdeRef<Option<V>> = Arc::new(VersionValueSerde { inner: vs });
    b.borrow_mut().add_store(
        Stores::default_key_value_store_builder(&name, None, key, value)
            .with_logging_enabled(logging)
            .into_spec(),
    );
    name
}

/// Adds the source node of a versioned table (its latest-value store and its history);
/// returns (node, store, history store).
#[allow(clippy::too_many_arguments)]
pub(crate) fn add_versioned_table_source<K: Data, VIn: Data, V: Data>(
    b: &Shared,
    parent: usize,
    processor_name: Option<&str>,
    materialized: Materialized<K, V>,
    retention: i64,
    ks: SerdeRef<K>,
    vs: SerdeRef<V>,
    to_opt: fn(VIn) -> Option<V>,
) -> (usize, String, String) {
    let store_name = b
        .borrow_mut()
        .name_or(materialized.name.as_deref(), "KTABLE-SOURCE-STATE-STORE-");
    let name = b.borrow_mut().name_or(processor_name, "KTABLE-SOURCE-");
    let history = add_history_store(b, &store_name, materialized.logging, ks.clone(), vs.clone());
    let store = add_ts_store(b, store_name, &materialized, ks, vs.clone());
    let (s, h) = (
        Arc::<str>::from(store.as_str()),
        Arc::<str>::from(history.as_str()),
    );
    let factory: NodeFactory = Arc::new(move |nb: NodeBuild<'_>| {
        Ok(NodeBox::typed::<K, VIn, _>(
            VersionedSource::<K, VIn, V>::new(
                s.clone(),
                h.clone(),
                retention,
                to_opt,
                vs.clone(),
                nb.children,
            ),
        ))
    });
    let node = {
        let mut ib = b.borrow_mut();
        let node = ib.add_node(name, NodeKind::Processor, &[parent], factory);
        ib.connect_store(node, &store);
        ib.connect_store(node, &history);
        node
    };
    (node, store, history)
}

/// Adds a stream-table join with a grace period against the history store `history`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn add_grace_join<K: Data, V: Data, VT: Data, VR: Data>(
    b: &Shared,
    name: &str,
    parent: usize,
    history: &str,
    grace: i64,
    left: bool,
    joiner: JoinFn<K, V, VT, VR>,
    ks: SerdeRef<K>,
    vs: SerdeRef<V>,
) -> usize {
    let buffer = format!("{name}-buffer");
    let value: SerdeRef<Buffered<K, V>> = Arc::new(BufferedSerde {
        key: ks.clone(),
        value: vs.clone(),
    });
    let key: SerdeRef<BufferKey> = Arc::new(BufferKeySerde);
    b.borrow_mut()
        .add_store(Stores::default_key_value_store_builder(&buffer, None, key, value).into_spec());
    let (bn, hn) = (Arc::<str>::from(buffer.as_str()), Arc::<str>::from(history));
    let factory: NodeFactory = Arc::new(move |nb: NodeBuild<'_>| {
        Ok(NodeBox::typed::<K, V, _>(GraceJoin::<K, V, VT, VR>::new(
            bn.clone(),
            hn.clone(),
            grace,
            left,
            joiner.clone(),
            ks.clone(),
            vs.clone(),
            nb.children,
        )))
    });
    let mut ib = b.borrow_mut();
    let node = ib.add_node(name.to_string(), NodeKind::Processor, &[parent], factory);
    ib.connect_store(node, &buffer);
    ib.connect_store(node, history);
    node
}
