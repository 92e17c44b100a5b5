//! `/api/topology/stores`: the entries each store holds in this instance's tasks, counted
//! at most every few seconds.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use streams_core::runtime::KafkaStreams;
use streams_core::state::ReadOnlyWindowStore;

use crate::activity::web::{OPEN_END, WebState};
use crate::activity::{
    Alert, CATEGORY_CTR_STORE, CLICK_ATTRIBUTION_STORE, COUNTRY_VIEW_COUNTS_STORE, ClickThrough,
    PAGE_CATALOGUE_STORE, PAGE_CTR_STORE, PAGE_VIEW_COUNTS_STORE, PageInfo, RECENT_ALERTS_STORE,
    USER_CLICK_COUNTS_STORE, USER_PROFILES_STORE, UserPage, UserProfile,
};

/// The answer of `/api/topology/stores`.
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct StoreSizes {
    /// Entries per store, over this instance's tasks: the key-value stores' approximate
    /// counts, the window stores' windows. Stores that cannot be counted (session stores,
    /// the joins' and suppressions' internal stores) are left out.
    stores: BTreeMap<String, u64>,
    /// How old the counts are, in ms.
    age_ms: u64,
}

/// Counts taken at `at`, which took `took` (counting window stores reads them all).
#[derive(Debug)]
struct Counted {
    at: Instant,
    took: Duration,
    stores: BTreeMap<String, u64>,
}

/// The last counts.
#[derive(Debug, Default)]
pub(super) struct SizeCache {
    last: Mutex<Option<Counted>>,
}

/// Counts are reused for at least this long...
const SIZES_FRESH: Duration = Duration::from_secs(5);
/// ...and for at least this many times as long as counting took, so that counting large
/// window stores costs at most 1/20 of a core.
const SIZES_COST_FACTOR: u32 = 20;

pub(super) async fn store_sizes(s: Arc<WebState>, cache: Arc<SizeCache>) -> axum::Json<StoreSizes> {
    let answer = tokio::task::spawn_blocking(move || {
        // One caller counts at a time; the others wait for its counts.
        let mut last = cache.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = last.as_ref()
            && c.at.elapsed() < SIZES_FRESH.max(c.took * SIZES_COST_FACTOR)
        {
            return StoreSizes {
                stores: c.stores.clone(),
                age_ms: u64::try_from(c.at.elapsed().as_millis()).unwrap_or(u64::MAX),
            };
        }
        let at = Instant::now();
        let stores = count_stores(&s.streams);
        *last = Some(Counted {
            at,
            took: at.elapsed(),
            stores: stores.clone(),
        });
        StoreSizes { stores, age_ms: 0 }
    })
    .await;
    axum::Json(answer.unwrap_or_default())
}

/// The entries of the activity stores this instance can count (see [`StoreSizes`]).
fn count_stores(streams: &KafkaStreams) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut put = |name: &str, n: streams_core::error::Result<u64>| {
        if let Ok(n) = n {
            out.insert(name.to_string(), n);
        }
    };
    put(
        USER_PROFILES_STORE,
        streams
            .key_value_store::<String, UserProfile>(USER_PROFILES_STORE)
            .and_then(|v| v.approximate_num_entries()),
    );
    put(
        PAGE_CATALOGUE_STORE,
        streams
            .key_value_store::<String, PageInfo>(PAGE_CATALOGUE_STORE)
            .and_then(|v| v.approximate_num_entries()),
    );
    put(
        RECENT_ALERTS_STORE,
        streams
            .key_value_store::<String, Alert>(RECENT_ALERTS_STORE)
            .and_then(|v| v.approximate_num_entries()),
    );
    fn windows<K: 'static, V: 'static>(
        streams: &KafkaStreams,
        name: &str,
    ) -> streams_core::error::Result<u64> {
        let view = streams.window_store::<K, V>(name)?;
        Ok(view.fetch_all(i64::MIN / 2, OPEN_END)?.len() as u64)
    }
    for name in [
        PAGE_VIEW_COUNTS_STORE,
        COUNTRY_VIEW_COUNTS_STORE,
        USER_CLICK_COUNTS_STORE,
    ] {
        put(name, windows::<String, i64>(streams, name));
    }
    for name in [PAGE_CTR_STORE, CATEGORY_CTR_STORE] {
        put(name, windows::<String, ClickThrough>(streams, name));
    }
    put(
        CLICK_ATTRIBUTION_STORE,
        windows::<UserPage, i64>(streams, CLICK_ATTRIBUTION_STORE),
    );
    out
}
