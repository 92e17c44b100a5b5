//! The typed DSL: [`StreamsBuilder`], [`KStream`], [`KTable`] and their grouped forms.
//!
//! Calls build a topology; nothing runs until the topology is handed to the test driver or
//! the runtime. Operators in one sub-topology pass typed values to each other; serdes are
//! needed only where records cross a topic (sources, sinks, repartition topics) or enter a
//! store. Methods without an options argument take their serdes from what the stream
//! carries or from the type's [`DefaultSerde`](crate::serde::DefaultSerde) (a compile-time
//! requirement); the `_with` variants take explicit options and report a missing serde when
//! the topology is built.

/// A `Debug` for a DSL type (whatever its type parameters: none need `Debug`) that shows
/// the given fields of `$s` (the value): `debug_fields!(KTable<K, V>, t => { "node": t.node })`.
macro_rules! debug_fields {
    ($t:ident<$($p:ident),+>, $s:ident => { $($label:literal: $value:expr),* $(,)? }) => {
        impl<$($p),+> std::fmt::Debug for $t<$($p),+> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let $s = self;
                f.debug_struct(stringify!($t))$(.field($label, &$value))*.finish()
            }
        }
    };
}

mod aggregate_methods;
mod builder;
mod cogroup;
mod fk_join;
mod global;
mod grouped;
mod join;
mod join_methods;
mod kstream;
mod ktable;
mod nodes;
mod options;
mod suppress;
mod table_join;
mod table_store;
mod versioned;
mod windowed;

pub use builder::StreamsBuilder;
pub use cogroup::{
    CogroupedKStream, SessionWindowedCogroupedKStream, TimeWindowedCogroupedKStream,
};
pub use global::GlobalKTable;
pub use grouped::KGroupedStream;
pub use kstream::{BranchedKStream, Branches, KStream};
pub use ktable::{ChangeSerde, KGroupedTable, KTable};
pub use options::{
    Branched, Consumed, Grouped, Joined, Materialized, Named, Produced, Repartitioned, StreamJoined,
};
pub use suppress::{BufferConfig, Suppressed, WhenFull};
pub use windowed::{
    EmitStrategy, SessionWindowedKStream, SlidingWindowedKStream, TimeWindowedKStream,
};
