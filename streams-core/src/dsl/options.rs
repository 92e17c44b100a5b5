//! Per-operator options: how to consume, produce, group, repartition, materialize and name.
//!
//! Every option object is built with chained calls; whatever is left unset falls back to
//! what the stream already carries (serdes inherited from upstream) or, for the option-free
//! DSL methods, to the type's [`DefaultSerde`](crate::serde::DefaultSerde).

use std::fmt;
use std::sync::Arc;

use streams_state::KeyValueBytesStoreSupplier;

use crate::config::DslStore;
use crate::serde::SerdeRef;
use crate::time::{ExtractorRef, InvalidTimestampPolicy, TimestampExtractor};

macro_rules! debug_by_name {
    ($t:ident) => {
        impl<K, V> fmt::Debug for $t<K, V> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($t))
                    .field("name", &self.name)
                    .field("key_serde", &self.key_serde.is_some())
                    .field("value_serde", &self.value_serde.is_some())
                    .finish()
            }
        }
    };
}

macro_rules! serde_setters {
    () => {
        /// Sets the key serde.
        pub fn with_key_serde(mut self, serde: SerdeRef<K>) -> Self {
            self.key_serde = Some(serde);
            self
        }
        /// Sets the value serde.
        pub fn with_value_serde(mut self, serde: SerdeRef<V>) -> Self {
            self.value_serde = Some(serde);
            self
        }
    };
}

/// `with_logging_disabled` and `with_logging_enabled`, for options of a logged store;
/// `$what` says what the disabled store loses.
macro_rules! logging_setters {
    ($what:literal) => {
        #[doc = concat!("Stops logging ", $what, " to the changelog (it is then lost with its task's disk). Default: logged.")]
        pub fn with_logging_disabled(mut self) -> Self {
            self.logging = false;
            self
        }
        /// Logs to the changelog (the default).
        pub fn with_logging_enabled(mut self) -> Self {
            self.logging = true;
            self
        }
    };
}

/// An option type of serdes and a name, with `extra` fields that all default to `None`:
/// the struct, `Debug`, `Default`, and the constructors and setters they all share
/// (`with(serdes)`, `new()`, `as_(name)`, `with_name(name)`, `with_key_serde`,
/// `with_value_serde`). Type-specific setters go in a separate `impl` block.
macro_rules! serde_name_options {
    (
        $(#[$meta:meta])*
        $t:ident { $($(#[$fmeta:meta])* $extra:ident: $ety:ty,)* }
        with: $with_doc:literal,
        new: $new_doc:literal,
        name: $name_doc:literal $(,)?
    ) => {
        $(#[$meta])*
        pub struct $t<K, V> {
            pub(crate) key_serde: Option<SerdeRef<K>>,
            pub(crate) value_serde: Option<SerdeRef<V>>,
            $($(#[$fmeta])* pub(crate) $extra: $ety,)*
            pub(crate) name: Option<String>,
        }

        debug_by_name!($t);

        impl<K, V> Default for $t<K, V> {
            fn default() -> Self {
                Self {
                    key_serde: None,
                    value_serde: None,
                    $($extra: None,)*
                    name: None,
                }
            }
        }

        impl<K, V> $t<K, V> {
            #[doc = $with_doc]
            pub fn with(key_serde: SerdeRef<K>, value_serde: SerdeRef<V>) -> Self {
                Self {
                    key_serde: Some(key_serde),
                    value_serde: Some(value_serde),
                    ..Self::default()
                }
            }
            #[doc = $new_doc]
            pub fn new() -> Self {
                Self::default()
            }
            #[doc = $name_doc]
            pub fn as_(name: impl Into<String>) -> Self {
                Self {
                    name: Some(name.into()),
                    ..Self::default()
                }
            }
            #[doc = $name_doc]
            pub fn with_name(mut self, name: impl Into<String>) -> Self {
                self.name = Some(name.into());
                self
            }
            serde_setters!();
        }
    };
}

/// The constructors and setters of a join's options, over both sides' serdes: `with`,
/// `new`, `with_name`, `with_key_serde`, `with_value_serde`, `with_other_value_serde`.
/// `$o` is the other side's value type; the docs name what each serde is for.
macro_rules! join_options {
    ($t:ident<$o:ident>, new: $new_doc:literal, value: $value_doc:literal, other: $other_doc:literal) => {
        impl<K, V, $o> $t<K, V, $o> {
            /// Joins with these serdes.
            pub fn with(
                key_serde: SerdeRef<K>,
                value_serde: SerdeRef<V>,
                other_value_serde: SerdeRef<$o>,
            ) -> Self {
                Self {
                    key_serde: Some(key_serde),
                    value_serde: Some(value_serde),
                    other_value_serde: Some(other_value_serde),
                    ..Self::default()
                }
            }
            #[doc = $new_doc]
            pub fn new() -> Self {
                Self::default()
            }
            /// See [`as_`](Self::as_).
            pub fn with_name(mut self, name: impl Into<String>) -> Self {
                self.name = Some(name.into());
                self
            }
            /// Sets the key serde.
            pub fn with_key_serde(mut self, serde: SerdeRef<K>) -> Self {
                self.key_serde = Some(serde);
                self
            }
            #[doc = $value_doc]
            pub fn with_value_serde(mut self, serde: SerdeRef<V>) -> Self {
                self.value_serde = Some(serde);
                self
            }
            #[doc = $other_doc]
            pub fn with_other_value_serde(mut self, serde: SerdeRef<$o>) -> Self {
                self.other_value_serde = Some(serde);
                self
            }
        }
    };
}

/// A processor name, for operators that take only a name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Named {
    pub(crate) name: Option<String>,
}

impl Named {
    /// The name `name`.
    pub fn as_(name: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
        }
    }
    /// No name: one is generated.
    pub fn none() -> Self {
        Self::default()
    }
}

serde_name_options! {
    /// How a source reads its topics: serdes, timestamp extractor, invalid-timestamp policy
    /// and the source's name.
    Consumed {
        extractor: Option<ExtractorRef<K, V>>,
        policy: Option<InvalidTimestampPolicy>,
    }
    with: "Reads with these serdes.",
    new: "No options: everything from the defaults.",
    name: "Names the source node.",
}

impl<K, V> Consumed<K, V> {
    /// Chooses event time with this extractor. Default: the record's own timestamp.
    pub fn with_timestamp_extractor(mut self, e: impl TimestampExtractor<K, V>) -> Self {
        self.extractor = Some(Arc::new(e));
        self
    }
    /// What to do with invalid (negative) timestamps. Default: the application's policy.
    pub fn with_invalid_timestamp_policy(mut self, policy: InvalidTimestampPolicy) -> Self {
        self.policy = Some(policy);
        self
    }
}

serde_name_options! {
    /// How a sink writes its topic: serdes and the sink's name.
    Produced {}
    with: "Writes with these serdes.",
    new: "No options.",
    name: "Names the sink node.",
}

serde_name_options! {
    /// How a stream is grouped: serdes for the repartition topic (if one is needed) and its
    /// name (the topic becomes `<application.id>-<name>-repartition`).
    Grouped {}
    with: "Groups with these serdes.",
    new: "No options.",
    name: "Names the grouping (and its repartition topic): `<application.id>-<name>-repartition`.",
}

serde_name_options! {
    /// How a stream is repartitioned through an internal topic.
    Repartitioned {
        partitions: Option<u32>,
    }
    with: "Repartitions with these serdes.",
    new: "No options.",
    name: "Names the repartition topic: `<application.id>-<name>-repartition`.",
}

impl<K, V> Repartitioned<K, V> {
    /// Sets the repartition topic's partition count. Default: the largest partition count of
    /// the upstream sub-topology's source topics.
    pub fn with_number_of_partitions(mut self, partitions: u32) -> Self {
        self.partitions = Some(partitions);
        self
    }
}

/// How a table's store is made: its name (which also names its changelog and makes it
/// queryable), serdes and store supplier.
pub struct Materialized<K, V> {
    pub(crate) key_serde: Option<SerdeRef<K>>,
    pub(crate) value_serde: Option<SerdeRef<V>>,
    pub(crate) name: Option<String>,
    pub(crate) supplier: Option<Arc<dyn KeyValueBytesStoreSupplier>>,
    pub(crate) caching: bool,
    pub(crate) logging: bool,
    pub(crate) retention: Option<i64>,
    /// For versioned tables: how long (ms of stream time) old versions are kept.
    pub(crate) history: Option<i64>,
}

debug_by_name!(Materialized);

impl<K, V> Default for Materialized<K, V> {
    fn default() -> Self {
        Self {
            key_serde: None,
            value_serde: None,
            name: None,
            supplier: None,
            caching: true,
            logging: true,
            retention: None,
            history: None,
        }
    }
}

impl<K, V> Materialized<K, V> {
    /// Materializes with these serdes.
    pub fn with(key_serde: SerdeRef<K>, value_serde: SerdeRef<V>) -> Self {
        Self {
            key_serde: Some(key_serde),
            value_serde: Some(value_serde),
            ..Self::default()
        }
    }
    /// No options.
    pub fn new() -> Self {
        Self::default()
    }
    /// Names the store.
    pub fn as_(name: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
            ..Self::default()
        }
    }
    /// A versioned table's store (KIP-889): besides the latest value per key, the values of
    /// the last `history_retention` of stream time are kept (in `<name>-versions`), so a
    /// stream-table join with a grace period joins the version valid at each record's
    /// timestamp; an update older than a key's latest value only enters the history
    /// (KIP-914). Only source tables (`StreamsBuilder::table_with`) can be versioned.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// # use std::time::Duration;
    /// let builder = StreamsBuilder::new();
    /// let prices = builder.table_with("prices", Consumed::<String, i64>::with(default_serde(), default_serde()),
    ///     Materialized::as_versioned("prices", Duration::from_secs(3600)));
    /// builder.stream::<String, i64>("orders")
    ///     .join_table_with(&prices, |qty, price| qty * price,
    ///         Joined::new().with_grace_period(Duration::from_secs(10)))
    ///     .to("totals");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    /// let p = driver.input_topic::<String, Option<i64>>("prices");
    /// let o = driver.input_topic::<String, i64>("orders");
    /// p.pipe_input_at("pen".into(), Some(2), 1_000).unwrap();
    /// o.pipe_input_at("pen".into(), 3, 5_000).unwrap();     // waits for the grace period
    /// p.pipe_input_at("pen".into(), Some(4), 3_000).unwrap(); // late price change, valid at 3 s
    /// o.pipe_input_at("pen".into(), 1, 16_000).unwrap();    // stream time 16 s: the first order joins
    /// assert_eq!(driver.output_topic::<String, i64>("totals").read_values_to_list().unwrap(), vec![12]);
    /// ```
    pub fn as_versioned(name: impl Into<String>, history_retention: std::time::Duration) -> Self {
        Self {
            name: Some(name.into()),
            history: Some(i64::try_from(history_retention.as_millis()).unwrap_or(i64::MAX)),
            ..Self::default()
        }
    }
    /// Turns the record cache off for this store: every update is forwarded. Default: on.
    pub fn with_caching_disabled(mut self) -> Self {
        self.caching = false;
        self
    }
    /// Turns the record cache on (the default).
    pub fn with_caching_enabled(mut self) -> Self {
        self.caching = true;
        self
    }
    logging_setters!("the store");
    /// Uses stores from this supplier (its name names the store).
    pub fn as_store(supplier: Arc<dyn KeyValueBytesStoreSupplier>) -> Self {
        Self {
            name: Some(supplier.name().to_string()),
            supplier: Some(supplier),
            ..Self::default()
        }
    }
    /// Names the store.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    serde_setters!();
}

/// Options of a stream-stream join ([`KStream::join_with`](crate::dsl::KStream::join_with)
/// and its left and outer forms): serdes of the key and of both sides' values (for the
/// join stores and, when a side must be repartitioned, its topic), the processors' base
/// name, the stores' base name, their engine and whether they are logged.
///
/// The two window stores are named `<store name>-this-join-store` and
/// `<store name>-other-join-store` (`-outer-this-join-store`/`-outer-other-join-store` for
/// the sides that emit unmatched records) and a left or outer join adds
/// `<store name>-left-shared-join-store` or `-outer-shared-join-store` for records still
/// waiting for a partner, as Kafka Streams names them. They are never cached.
pub struct StreamJoined<K, V, VO> {
    pub(crate) key_serde: Option<SerdeRef<K>>,
    pub(crate) value_serde: Option<SerdeRef<V>>,
    pub(crate) other_value_serde: Option<SerdeRef<VO>>,
    pub(crate) name: Option<String>,
    pub(crate) store_name: Option<String>,
    pub(crate) store_type: Option<DslStore>,
    pub(crate) logging: bool,
}

impl<K, V, VO> fmt::Debug for StreamJoined<K, V, VO> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamJoined")
            .field("name", &self.name)
            .field("store_name", &self.store_name)
            .field("store_type", &self.store_type)
            .field("logging", &self.logging)
            .finish()
    }
}

impl<K, V, VO> Default for StreamJoined<K, V, VO> {
    fn default() -> Self {
        Self {
            key_serde: None,
            value_serde: None,
            other_value_serde: None,
            name: None,
            store_name: None,
            store_type: None,
            logging: true,
        }
    }
}

join_options!(StreamJoined<VO>, new: "No options: serdes from the streams, generated names.", value: "Sets this side's value serde.", other: "Sets the other side's value serde.");

impl<K, V, VO> StreamJoined<K, V, VO> {
    /// Names the join's processors (`<name>-this-join`, `<name>-other-join`,
    /// `<name>-merge`) and, unless [`with_store_name`](Self::with_store_name) is given, its
    /// stores and repartition topics.
    pub fn as_(name: impl Into<String>) -> Self {
        Self::default().with_name(name)
    }
    /// The base name of the join's stores (and so of their changelog topics).
    pub fn with_store_name(mut self, name: impl Into<String>) -> Self {
        self.store_name = Some(name.into());
        self
    }
    /// Keeps the join stores in this engine. Default: the application's `default.dsl.store`.
    pub fn with_store_type(mut self, store: DslStore) -> Self {
        self.store_type = Some(store);
        self
    }
    logging_setters!("the join stores");
}

/// Options of a stream-table join ([`KStream::join_table_with`](crate::dsl::KStream::join_table_with)):
/// serdes for repartitioning the stream side when its key was changed, and the processor's
/// name (which also names that repartition topic).
pub struct Joined<K, V, VT> {
    pub(crate) key_serde: Option<SerdeRef<K>>,
    pub(crate) value_serde: Option<SerdeRef<V>>,
    pub(crate) other_value_serde: Option<SerdeRef<VT>>,
    pub(crate) name: Option<String>,
    pub(crate) grace: Option<i64>,
}

impl<K, V, VT> fmt::Debug for Joined<K, V, VT> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Joined").field("name", &self.name).finish()
    }
}

impl<K, V, VT> Default for Joined<K, V, VT> {
    fn default() -> Self {
        Self {
            key_serde: None,
            value_serde: None,
            other_value_serde: None,
            name: None,
            grace: None,
        }
    }
}

join_options!(Joined<VT>, new: "No options.", value: "Sets the stream's value serde.", other: "Sets the table's value serde.");

impl<K, V, VT> Joined<K, V, VT> {
    /// Holds each stream record for `grace` of stream time, then joins it with the table
    /// version valid at its timestamp (KIP-923); the table must be versioned
    /// ([`Materialized::as_versioned`]). Records are emitted in timestamp order; a record
    /// already older than the grace period is joined at once. Without it, a record is joined
    /// when it arrives: with the table version valid at its timestamp if the table is
    /// versioned, else with the table's latest value.
    pub fn with_grace_period(mut self, grace: std::time::Duration) -> Self {
        self.grace = Some(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX));
        self
    }
    /// Names the join processor (and the stream side's repartition topic, if one is needed).
    pub fn as_(name: impl Into<String>) -> Self {
        Self::default().with_name(name)
    }
}

/// Options of one branch of [`KStream::split`](crate::dsl::KStream::split).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Branched {
    pub(crate) name: Option<String>,
}

impl Branched {
    /// Names the branch; the branch's key in the result is the split's name + this name.
    pub fn as_(name: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
        }
    }
}
