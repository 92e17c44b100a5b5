//! Session stores: values keyed by (key, session start, session end), kept for a retention
//! period.
//!
//! Data is split by session *end* into time segments (Kafka's rule: interval =
//! `max(retention / 2, 60 s)`); retention drops whole segments. Within a segment, keys are
//! laid out as the escaped key, then the end, then the start (order-preserving), so the
//! sessions of a key are contiguous and sorted by (end, start): finding the sessions of a key
//! that end at or after some time is a sequential scan. Engines: [`InMemorySessionStore`] and
//! [`RocksDbSessionStore`] (one RocksDB instance per store, one column family per segment).
//! [`LoggingSessionStore`] sends every write to a changelog, keyed by
//! [`session_changelog_key`].

use std::path::Path;

use crate::changelog::logging_store;
use crate::delegate::delegate;
use crate::kv::StateStore;
use crate::resources::RocksDbResources;
use crate::segments::{
    MemSegments, RawIter, RocksSegments, SegmentEngine, Segmented, TimedWrite, decode_key,
    escape_key, key_upper_bound, push_time, segment_interval, segmented_stores,
};
use crate::{ChangelogRecord, RocksDbProperties, StateError, StoreContext};

/// A session key: the record key and the session's bounds, both inclusive.
///
/// The derived order is (key, start, end); stores return sessions ordered by (key, end,
/// start) instead, as documented on each method.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionKeyBytes {
    /// The record key.
    pub key: Vec<u8>,
    /// The timestamp of the session's first record (ms, inclusive).
    pub start: i64,
    /// The timestamp of the session's last record (ms, inclusive).
    pub end: i64,
}

/// Sessions with their values, borrowing the store.
pub type SessionIter<'a> =
    Box<dyn Iterator<Item = Result<(SessionKeyBytes, Vec<u8>), StateError>> + 'a>;

/// A session store over raw bytes (Kafka's `SessionStore<Bytes, byte[]>`).
///
/// The store keeps sessions for [`retention_period`](Self::retention_period) ms of
/// *observed stream time* (the largest session end written so far): a session whose end is
/// `<= stream time - retention` is expired: writes of it are ignored and reads never return
/// it. Time bounds are inclusive.
pub trait SessionStore: StateStore {
    /// The RocksDB properties of the store's instance, read now, summed over its segments
    /// (`None`: not a RocksDB store). Wrapping stores pass the call down; sampled when a
    /// thread publishes metrics, never per record.
    fn rocksdb_properties(&self) -> Option<crate::RocksDbProperties> {
        None
    }
    /// Stores `value` for the session `[start, end]` of `key`, replacing what was there.
    /// Advances the observed stream time to `end` if it is larger; an expired session is
    /// silently ignored. Fails with [`StateError::InvalidArgument`] if `start > end`.
    fn put(&mut self, key: &[u8], start: i64, end: i64, value: &[u8]) -> Result<(), StateError>;

    /// Removes the session `[start, end]` of `key` (like a put, it advances the observed
    /// stream time to `end`).
    fn remove(&mut self, key: &[u8], start: i64, end: i64) -> Result<(), StateError>;

    /// The value of the session `[start, end]` of `key`, if any (and not expired).
    fn fetch_session(
        &self,
        key: &[u8],
        start: i64,
        end: i64,
    ) -> Result<Option<Vec<u8>>, StateError>;

    /// Sessions of `key` that end at or after `earliest_session_end` and start at or before
    /// `latest_session_start` (the sessions a record may merge with), ascending by
    /// (end, start).
    fn find_sessions(
        &self,
        key: &[u8],
        earliest_session_end: i64,
        latest_session_start: i64,
    ) -> Result<SessionIter<'_>, StateError>;

    /// Like [`find_sessions`](Self::find_sessions), descending by (end, start).
    fn backward_find_sessions(
        &self,
        key: &[u8],
        earliest_session_end: i64,
        latest_session_start: i64,
    ) -> Result<SessionIter<'_>, StateError>;

    /// Sessions of the keys in `[key_from, key_to]` (`None`: open end) that end at or after
    /// `earliest_session_end` and start at or before `latest_session_start`, ascending by
    /// (key bytes, end, start). An inverted key range is empty.
    fn find_sessions_in_range(
        &self,
        key_from: Option<&[u8]>,
        key_to: Option<&[u8]>,
        earliest_session_end: i64,
        latest_session_start: i64,
    ) -> Result<SessionIter<'_>, StateError>;

    /// Like [`find_sessions_in_range`](Self::find_sessions_in_range), descending by
    /// (key bytes, end, start).
    fn backward_find_sessions_in_range(
        &self,
        key_from: Option<&[u8]>,
        key_to: Option<&[u8]>,
        earliest_session_end: i64,
        latest_session_start: i64,
    ) -> Result<SessionIter<'_>, StateError>;

    /// Every live session of `key`, ascending by (end, start).
    fn fetch(&self, key: &[u8]) -> Result<SessionIter<'_>, StateError> {
        self.find_sessions(key, i64::MIN, i64::MAX)
    }

    /// Every live session of `key`, descending by (end, start).
    fn backward_fetch(&self, key: &[u8]) -> Result<SessionIter<'_>, StateError> {
        self.backward_find_sessions(key, i64::MIN, i64::MAX)
    }

    /// How long (ms of stream time) sessions are kept.
    fn retention_period(&self) -> i64;

    /// The largest session end written so far (restoration included), or -1 (Kafka's "no
    /// timestamp") before any write.
    fn observed_stream_time(&self) -> i64;

    /// Applies changelog records during restoration: keys in the
    /// [`session_changelog_key`] layout, a `None` value removes. Expiry rules are those of
    /// [`put`](Self::put). Not logged again by [`LoggingSessionStore`].
    fn restore_batch(&mut self, records: &[ChangelogRecord]) -> Result<(), StateError>;

    /// Writes a record cache's dirty sessions down without flushing the engine (they then
    /// appear in [`take_flushed`](Self::take_flushed)). A no-op without a cache.
    fn flush_cache(&mut self) -> Result<(), StateError> {
        Ok(())
    }

    /// Session updates that left a record cache since the last call, keyed in the
    /// [`session_changelog_key`] layout; always empty for uncached stores.
    fn take_flushed(&mut self) -> Vec<crate::FlushedEntry> {
        Vec::new()
    }
}

/// The changelog key of a session (Kafka's `SessionKeySchema` layout): the raw key bytes,
/// then the end and the start, each as 8 big-endian bytes.
pub fn session_changelog_key(key: &[u8], start: i64, end: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 16);
    out.extend_from_slice(key);
    out.extend_from_slice(&end.to_be_bytes());
    out.extend_from_slice(&start.to_be_bytes());
    out
}

/// Splits a [`session_changelog_key`] into the key and the session bounds.
pub fn split_session_changelog_key(bytes: &[u8]) -> Result<SessionKeyBytes, StateError> {
    split_session_changelog_key_of("<session changelog>", bytes)
}

fn split_session_changelog_key_of(
    store: &str,
    bytes: &[u8],
) -> Result<SessionKeyBytes, StateError> {
    let corrupt = || StateError::Corrupt {
        store: store.to_string(),
        detail: format!(
            "session changelog key of {} bytes is shorter than its 16 bytes of end and start",
            bytes.len()
        ),
    };
    let split = bytes.len().checked_sub(16).ok_or_else(corrupt)?;
    let (key, times) = bytes.split_at(split);
    let (end, start) = times.split_at(8);
    let end: [u8; 8] = end.try_into().map_err(|_| corrupt())?;
    let start: [u8; 8] = start.try_into().map_err(|_| corrupt())?;
    Ok(SessionKeyBytes {
        key: key.to_vec(),
        start: i64::from_be_bytes(start),
        end: i64::from_be_bytes(end),
    })
}

/// The encoded store key of a session: escaped key, end, start.
fn store_key(key: &[u8], start: i64, end: i64) -> Vec<u8> {
    let mut out = escape_key(key);
    push_time(&mut out, end);
    push_time(&mut out, start);
    out
}

fn invalid_session(store: &str, start: i64, end: i64) -> StateError {
    StateError::InvalidArgument {
        store: store.to_string(),
        detail: format!("session start {start} is after its end {end}"),
    }
}

/// The engine-independent session store logic.
#[derive(Debug)]
struct SessionCore<E> {
    seg: Segmented<E>,
}

impl<E: SegmentEngine> SessionCore<E> {
    fn write(
        &mut self,
        key: &[u8],
        start: i64,
        end: i64,
        value: Option<&[u8]>,
    ) -> Result<(), StateError> {
        if start > end {
            return Err(invalid_session(self.seg.name(), start, end));
        }
        self.seg.write([TimedWrite {
            time: end,
            key: store_key(key, start, end),
            value: value.map(<[u8]>::to_vec),
        }])
    }

    fn fetch_session(
        &self,
        key: &[u8],
        start: i64,
        end: i64,
    ) -> Result<Option<Vec<u8>>, StateError> {
        self.seg.get(end, &store_key(key, start, end))
    }

    fn find(
        &self,
        key_from: Option<&[u8]>,
        key_to: Option<&[u8]>,
        earliest_end: i64,
        latest_start: i64,
        reverse: bool,
    ) -> Result<SessionIter<'_>, StateError> {
        self.seg.check_open()?;
        if let (Some(f), Some(t)) = (key_from, key_to)
            && f > t
        {
            return Ok(Box::new(std::iter::empty()));
        }
        let single = matches!((key_from, key_to), (Some(f), Some(t)) if f == t);
        let lo = key_from.map(|k| {
            let mut lo = escape_key(k);
            if single {
                // One key: start right at its first session ending at or after earliest_end.
                push_time(&mut lo, earliest_end.max(self.seg.min_live_time()));
            }
            lo
        });
        let hi = key_to.map(|k| key_upper_bound(k, 2));
        let raw = self.seg.scan(
            earliest_end,
            i64::MAX,
            lo.as_deref(),
            hi.as_deref(),
            reverse,
        )?;
        Ok(Box::new(self.decode(raw, earliest_end, latest_start)))
    }

    /// Decodes raw entries, keeping live sessions with `end >= earliest_end` and
    /// `start <= latest_start`.
    fn decode<'a>(
        &'a self,
        raw: RawIter<'a>,
        earliest_end: i64,
        latest_start: i64,
    ) -> impl Iterator<Item = Result<(SessionKeyBytes, Vec<u8>), StateError>> + 'a {
        let min_end = earliest_end.max(self.seg.min_live_time());
        let name = self.seg.name();
        raw.filter_map(move |r| match r {
            Err(e) => Some(Err(e)),
            Ok((k, v)) => match decode_key::<2>(&k) {
                None => Some(Err(StateError::Corrupt {
                    store: name.to_string(),
                    detail: format!("malformed session store key {k:02x?}"),
                })),
                Some((key, [end, start])) => (end >= min_end && start <= latest_start)
                    .then_some(Ok((SessionKeyBytes { key, start, end }, v))),
            },
        })
    }

    fn restore_batch(&mut self, records: &[ChangelogRecord]) -> Result<(), StateError> {
        let name = self.seg.name().to_string();
        let writes = records
            .iter()
            .map(|r| {
                let k = split_session_changelog_key_of(&name, &r.key)?;
                if k.start > k.end {
                    return Err(StateError::Corrupt {
                        store: name.clone(),
                        detail: format!(
                            "changelog record at offset {} has a session starting at {} after its end {}",
                            r.offset, k.start, k.end
                        ),
                    });
                }
                Ok(TimedWrite {
                    time: k.end,
                    key: store_key(&k.key, k.start, k.end),
                    value: r.value.clone(),
                })
            })
            .collect::<Result<Vec<_>, StateError>>()?;
        self.seg.write(writes)
    }
}

fn validate_retention(name: &str, retention_ms: i64) -> Result<(), StateError> {
    if retention_ms <= 0 {
        return Err(StateError::InvalidArgument {
            store: name.to_string(),
            detail: format!(
                "retention period must be positive (at least inactivity gap + grace), got \
                 {retention_ms} ms"
            ),
        });
    }
    Ok(())
}

segmented_stores!(
    /// A session store held in memory: one ordered map per time segment. Not persistent: after
    /// a restart it is rebuilt from its changelog.
    InMemorySessionStore,
    /// A session store in its own RocksDB instance, one column family (`segment-<id>`) per time
    /// segment of session ends. Expired segments are dropped whole (`drop_cf`); the observed
    /// stream time and the segment interval are kept in the default column family, so a
    /// reopened store carries on where it stopped.
    RocksDbSessionStore,
    SessionCore,
    "sessions",
    impl SessionStore {
        delegate!(SessionStore to core: fetch_session, restore_batch);
        delegate!(SessionStore to core as scans:
            find_sessions, backward_find_sessions, find_sessions_in_range,
            backward_find_sessions_in_range);
        fn put(
            &mut self,
            key: &[u8],
            start: i64,
            end: i64,
            value: &[u8],
        ) -> Result<(), StateError> {
            self.core.write(key, start, end, Some(value))
        }
        fn remove(&mut self, key: &[u8], start: i64, end: i64) -> Result<(), StateError> {
            self.core.write(key, start, end, None)
        }
    }
);

/// Creates session stores: one per task, each named after the supplier.
pub trait SessionBytesStoreSupplier: Send + Sync {
    /// The name the created stores carry.
    fn name(&self) -> &str;
    /// Creates (or, for persistent engines, opens) one task's store.
    fn get(&self, ctx: &StoreContext) -> Result<Box<dyn SessionStore>, StateError>;
    /// Whether the created stores are persistent.
    fn persistent(&self) -> bool;
    /// How long (ms of stream time) the stores keep sessions.
    fn retention_period(&self) -> i64;
    /// The time span of one segment (ms): `max(retention / 2, 60 000)`.
    fn segment_interval(&self) -> i64 {
        segment_interval(self.retention_period())
    }
}

/// Declares a supplier of `$store`s: the struct, `new` and its [`SessionBytesStoreSupplier`]
/// implementation.
macro_rules! session_store_supplier {
    ($(#[$doc:meta])* $name:ident, $store:ident, $what:literal, persistent: $persistent:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name {
            name: String,
            retention_ms: i64,
        }

        impl $name {
            #[doc = concat!("A supplier of ", $what, " session stores called `name`, keeping sessions for")]
            /// `retention_ms`. Fails unless `retention_ms > 0`.
            pub fn new(name: impl Into<String>, retention_ms: i64) -> Result<Self, StateError> {
                let name = name.into();
                validate_retention(&name, retention_ms)?;
                Ok(Self { name, retention_ms })
            }
        }

        impl SessionBytesStoreSupplier for $name {
            fn name(&self) -> &str {
                &self.name
            }
            fn get(&self, ctx: &StoreContext) -> Result<Box<dyn SessionStore>, StateError> {
                Ok(Box::new($store::for_task(&self.name, ctx, self.retention_ms)?))
            }
            fn persistent(&self) -> bool {
                $persistent
            }
            fn retention_period(&self) -> i64 {
                self.retention_ms
            }
        }
    };
}

session_store_supplier!(
    /// Supplies [`InMemorySessionStore`]s.
    InMemorySessionStoreSupplier,
    InMemorySessionStore,
    "in-memory",
    persistent: false
);

session_store_supplier!(
    /// Supplies [`RocksDbSessionStore`]s, one per task, under the task's state directory.
    RocksDbSessionStoreSupplier,
    RocksDbSessionStore,
    "RocksDB",
    persistent: true
);

logging_store!(
    /// A session store that logs every write to a changelog, keyed by
    /// [`session_changelog_key`]; [`remove`](SessionStore::remove) sends a tombstone.
    LoggingSessionStore,
    SessionStore
);

impl SessionStore for LoggingSessionStore {
    // Reads pass through. Restoration writes what the changelog already holds: it is not
    // logged again.
    delegate!(SessionStore to inner:
        rocksdb_properties, fetch_session, find_sessions, backward_find_sessions,
        find_sessions_in_range, backward_find_sessions_in_range, fetch, backward_fetch,
        retention_period, observed_stream_time, restore_batch);
    // Like Kafka's change-logging layer, every accepted write is logged, even one the inner
    // store ignores as expired.
    fn put(&mut self, key: &[u8], start: i64, end: i64, value: &[u8]) -> Result<(), StateError> {
        self.inner.put(key, start, end, value)?;
        self.sink
            .send(&session_changelog_key(key, start, end), Some(value))
    }
    fn remove(&mut self, key: &[u8], start: i64, end: i64) -> Result<(), StateError> {
        self.inner.remove(key, start, end)?;
        self.sink
            .send(&session_changelog_key(key, start, end), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changelog_key_is_key_end_start() {
        let k = session_changelog_key(b"k", 1, 2);
        assert_eq!(
            k,
            vec![b'k', 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1]
        );
        assert_eq!(
            split_session_changelog_key(&k).unwrap(),
            SessionKeyBytes {
                key: b"k".to_vec(),
                start: 1,
                end: 2
            }
        );
        assert!(matches!(
            split_session_changelog_key(&[0; 15]),
            Err(StateError::Corrupt { .. })
        ));
        let empty = split_session_changelog_key(&[0; 16]).unwrap();
        assert_eq!((empty.key.len(), empty.start, empty.end), (0, 0, 0));
    }

    #[test]
    fn put_rejects_inverted_sessions() {
        let mut s = InMemorySessionStore::new("s", 60_000).unwrap();
        assert!(matches!(
            s.put(b"k", 5, 4, b"v"),
            Err(StateError::InvalidArgument { .. })
        ));
        assert_eq!(s.observed_stream_time(), -1);
        assert!(InMemorySessionStoreSupplier::new("s", 0).is_err());
        assert!(RocksDbSessionStoreSupplier::new("s", -5).is_err());
        assert_eq!(
            RocksDbSessionStoreSupplier::new("s", 200_000)
                .unwrap()
                .segment_interval(),
            100_000
        );
    }

    #[test]
    fn find_sessions_scans_by_end_then_start() {
        let mut s = InMemorySessionStore::new("s", 1_000_000).unwrap();
        s.put(b"k", 0, 10, b"a").unwrap();
        s.put(b"k", 5, 10, b"b").unwrap();
        s.put(b"k", 20, 30, b"c").unwrap();
        s.put(b"k", 200_000, 200_000, b"d").unwrap();
        s.put(b"kk", 0, 15, b"x").unwrap();
        let got: Vec<_> = s
            .find_sessions(b"k", 10, 20)
            .unwrap()
            .map(|r| r.unwrap().1)
            .collect();
        assert_eq!(got, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        let got: Vec<_> = s
            .backward_find_sessions(b"k", 11, i64::MAX)
            .unwrap()
            .map(|r| r.unwrap().1)
            .collect();
        assert_eq!(got, vec![b"d".to_vec(), b"c".to_vec()]);
    }
}
