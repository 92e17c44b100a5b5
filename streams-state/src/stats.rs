//! Plain statistics a store keeps for the metrics layer: the record cache's hit ratio and
//! a RocksDB instance's properties.

use std::sync::atomic::{AtomicU64, Ordering};

/// Parts per million: the hit ratio's fixed-point unit.
const PPM: u64 = 1_000_000;

/// A record cache's hit ratio as Kafka records it: at every read of the cache, the ratio
/// of hits among all its reads so far; the window keeps the mean, least and greatest of
/// those ratios (stored in parts per million).
#[derive(Debug)]
pub struct HitRatioStats {
    hits: AtomicU64,
    misses: AtomicU64,
    count: AtomicU64,
    sum_ppm: AtomicU64,
    min_ppm: AtomicU64,
    max_ppm: AtomicU64,
}

impl Default for HitRatioStats {
    fn default() -> Self {
        Self {
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            count: AtomicU64::new(0),
            sum_ppm: AtomicU64::new(0),
            min_ppm: AtomicU64::new(u64::MAX),
            max_ppm: AtomicU64::new(0),
        }
    }
}

/// What [`HitRatioStats::take`] returns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HitRatioWindow {
    /// Mean of the ratios recorded in the window.
    pub avg: f64,
    /// The least.
    pub min: f64,
    /// The greatest.
    pub max: f64,
}

impl HitRatioStats {
    /// Records a read of the cache that hit (`true`) or missed.
    #[inline]
    pub fn record(&self, hit: bool) {
        let (hits, misses) = if hit {
            (
                self.hits.fetch_add(1, Ordering::Relaxed) + 1,
                self.misses.load(Ordering::Relaxed),
            )
        } else {
            (
                self.hits.load(Ordering::Relaxed),
                self.misses.fetch_add(1, Ordering::Relaxed) + 1,
            )
        };
        let ppm = hits.saturating_mul(PPM) / (hits + misses).max(1);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ppm.fetch_add(ppm, Ordering::Relaxed);
        self.min_ppm.fetch_min(ppm, Ordering::Relaxed);
        self.max_ppm.fetch_max(ppm, Ordering::Relaxed);
    }

    /// The window so far (`None` without a read), and a new window.
    pub fn take(&self) -> Option<HitRatioWindow> {
        let count = self.count.swap(0, Ordering::Relaxed);
        let sum = self.sum_ppm.swap(0, Ordering::Relaxed);
        let min = self.min_ppm.swap(u64::MAX, Ordering::Relaxed);
        let max = self.max_ppm.swap(0, Ordering::Relaxed);
        (count > 0).then(|| HitRatioWindow {
            avg: sum as f64 / count as f64 / PPM as f64,
            min: min as f64 / PPM as f64,
            max: max as f64 / PPM as f64,
        })
    }
}

/// RocksDB properties of one store's instance (Kafka's RocksDB property metrics, KIP-607).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RocksDbProperties {
    /// `rocksdb.cur-size-all-mem-tables`: bytes of the active and unflushed memtables.
    pub size_all_mem_tables: u64,
    /// `rocksdb.block-cache-usage`: bytes in the block cache (shared by every store of the
    /// process, memtables charged to it).
    pub block_cache_usage: u64,
    /// `rocksdb.block-cache-capacity`: the block cache's capacity (the process-wide
    /// `statestore.memory.bytes` budget).
    pub block_cache_capacity: u64,
    /// `rocksdb.estimate-pending-compaction-bytes`.
    pub estimate_pending_compaction_bytes: u64,
    /// `rocksdb.estimate-num-keys`.
    pub estimate_num_keys: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_ratio_keeps_kafkas_running_ratio_per_read() {
        let h = HitRatioStats::default();
        assert_eq!(h.take(), None);
        // miss, hit, hit, miss: running ratios 0, 1/2, 2/3, 2/4.
        for hit in [false, true, true, false] {
            h.record(hit);
        }
        let w = h.take().unwrap();
        let ratios = [0.0, 0.5, 2.0 / 3.0, 0.5];
        let avg = ratios.iter().sum::<f64>() / 4.0;
        assert!((w.avg - avg).abs() < 1e-5, "{w:?}");
        assert_eq!(w.min, 0.0);
        assert!((w.max - 2.0 / 3.0).abs() < 1e-5, "{w:?}");
        // The ratio runs on across windows: a hit makes it 3/5.
        h.record(true);
        let w = h.take().unwrap();
        assert!((w.min - 0.6).abs() < 1e-6 && (w.max - 0.6).abs() < 1e-6);
    }
}
