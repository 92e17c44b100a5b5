//! The stores of DSL tables and aggregations (timestamped key-value, window and session):
//! shared by the builder and every table operator. Forwarding what leaves their caches is
//! per-record work and lives in [`crate::internals::forward`]; it is re-exported here for
//! the DSL's operators.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::Data;
use crate::error::TopologyError;
use crate::internals::window_aggregate::{WindowSpec, session_retention};
use crate::serde::SerdeRef;
use crate::state::{StoreBuilder, StoreSpecParts, Stores, TimestampedSerde, ValueAndTimestamp};
use crate::topology::InternalBuilder;
use crate::window::SessionWindows;
use streams_state::KeyValueBytesStoreSupplier;

use super::options::Materialized;

pub(crate) use crate::internals::forward::{
    TsHandle, flush_and_forward, forward_flushed, update_aggregate,
};

/// The topology being built, shared by the DSL objects that add to it.
pub(crate) type Shared = Rc<RefCell<InternalBuilder>>;

/// Adds a timestamped key-value store for a DSL operator (cached and logged as
/// `materialized` says); returns its name.
pub(crate) fn add_ts_store<K: Data, V: Data>(
    b: &Shared,
    name: String,
    materialized: &Materialized<K, V>,
    ks: SerdeRef<K>,
    vs: SerdeRef<V>,
) -> String {
    let how = (
        materialized.supplier.clone(),
        materialized.caching,
        materialized.logging,
    );
    let parts = ts_store_parts(&name, how, ks, vs);
    let store_name = parts.name.clone();
    b.borrow_mut().add_store(parts);
    store_name
}

/// How a DSL store is made: its supplier (`None`: the default engine), whether it is cached
/// and whether it is logged, as a `Materialized` says.
type StoreHow = (Option<Arc<dyn KeyValueBytesStoreSupplier>>, bool, bool);

/// The spec of a timestamped key-value store named `name`, made as `how` says.
fn ts_store_parts<K: Data, V: Data>(
    name: &str,
    (supplier, caching, logging): StoreHow,
    ks: SerdeRef<K>,
    vs: SerdeRef<V>,
) -> StoreSpecParts {
    let ts_serde: SerdeRef<ValueAndTimestamp<V>> = Arc::new(TimestampedSerde::new(vs));
    Stores::default_key_value_store_builder(name, supplier, ks, ts_serde)
        .with_caching_enabled(caching)
        .forwarding_changes()
        .with_logging_enabled(logging)
        .into_spec()
}

/// Adds an unmaterialized source table's store once an operator reads it; see
/// [`KTable::materialize_on_demand`](super::KTable).
pub(crate) type OnDemandStore = Rc<dyn Fn(&Shared)>;

/// The [`OnDemandStore`] of the table source `node`: adds the store `name` (as
/// `materialized` says), connects it to the node and raises `added` (which tells the node
/// to use it), once.
pub(crate) fn add_store_on_demand<K: Data, V: Data>(
    node: usize,
    name: &str,
    materialized: &Materialized<K, V>,
    (ks, vs): (SerdeRef<K>, SerdeRef<V>),
    added: Arc<AtomicBool>,
) -> OnDemandStore {
    let name = name.to_string();
    let how = (
        materialized.supplier.clone(),
        materialized.caching,
        materialized.logging,
    );
    Rc::new(move |b: &Shared| {
        if added.swap(true, Ordering::Relaxed) {
            return;
        }
        let parts = ts_store_parts(&name, how.clone(), ks.clone(), vs.clone());
        let mut ib = b.borrow_mut();
        ib.add_store(parts);
        ib.connect_store(node, &name);
    })
}

/// A store retention as checked: its value, or `minimum` after reporting why the requested
/// one was refused as a topology error of `operator` (`build()` then fails with it).
fn checked_retention(
    b: &Shared,
    operator: &str,
    checked: std::result::Result<i64, String>,
    minimum: i64,
) -> i64 {
    checked.unwrap_or_else(|detail| {
        b.borrow_mut().error(TopologyError::InvalidOption {
            operator: operator.into(),
            detail,
        });
        minimum
    })
}

/// Adds the timestamped window store of a windowed aggregation (cached and logged as
/// `materialized` says, its retention checked against the windows); returns its name.
pub(crate) fn add_window_store<K: Data, VA: Data>(
    b: &Shared,
    store_name: &str,
    spec: WindowSpec,
    materialized: &Materialized<K, VA>,
    ks: &SerdeRef<K>,
    vas: &SerdeRef<VA>,
) -> String {
    let retention = checked_retention(
        b,
        "windowed_by",
        spec.retention(materialized.retention),
        spec.minimum_retention(),
    );
    let ts_serde: SerdeRef<ValueAndTimestamp<VA>> = Arc::new(TimestampedSerde::new(vas.clone()));
    let size = spec.size_ms();
    let builder =
        Stores::default_window_store_builder(store_name, retention, size, ks.clone(), ts_serde)
            .with_logging_enabled(materialized.logging)
            .with_caching_enabled(materialized.caching)
            .forwarding_changes();
    let parts = builder.into_spec();
    let store = parts.name.clone();
    b.borrow_mut().add_store(parts);
    store
}

/// Adds the session store of a session aggregation (cached and logged as `materialized`
/// says, its retention checked against the gap and grace); returns its name.
pub(crate) fn add_session_store<K: Data, VA: Data>(
    b: &Shared,
    store_name: &str,
    windows: &SessionWindows,
    materialized: &Materialized<K, VA>,
    ks: &SerdeRef<K>,
    vas: &SerdeRef<VA>,
) -> String {
    let retention = checked_retention(
        b,
        "windowed_by_session",
        session_retention(windows, materialized.retention),
        windows.gap_ms().saturating_add(windows.grace_ms()),
    );
    // The store drops sessions that end at or before its time minus the retention, while a
    // session ending exactly `gap + grace` behind still takes records (it closes once it
    // ends strictly before): one more millisecond keeps it until then.
    let kept = retention.saturating_add(1);
    let parts = Stores::default_session_store_builder(store_name, kept, ks.clone(), vas.clone())
        .with_logging_enabled(materialized.logging)
        .with_caching_enabled(materialized.caching)
        .forwarding_changes()
        .into_spec();
    let store = parts.name.clone();
    b.borrow_mut().add_store(parts);
    store
}
