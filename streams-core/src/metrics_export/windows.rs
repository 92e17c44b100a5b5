//! What the processing loop records between publishes: latency and buffer-size windows
//! and the extra per-task, per-node and per-store values a task hands over.

use std::sync::Arc;

use crate::record::TaskId;

/// Minimum, sum, maximum and count of latencies in a window (the hot path only adds and
/// compares).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LatencyWindow {
    pub(super) min: i64,
    pub(super) max: i64,
    pub(super) sum: i64,
    pub(super) count: u64,
}

impl LatencyWindow {
    /// Adds one latency, in ms.
    #[inline]
    pub(crate) fn record(&mut self, ms: i64) {
        if self.count == 0 {
            self.min = ms;
            self.max = ms;
        } else {
            self.min = self.min.min(ms);
            self.max = self.max.max(ms);
        }
        self.sum = self.sum.saturating_add(ms);
        self.count += 1;
    }

    /// The window so far (if anything was recorded), and a new window.
    pub(crate) fn take(&mut self) -> Option<LatencyWindow> {
        (self.count > 0).then(|| std::mem::take(self))
    }

    pub(super) fn avg(&self) -> f64 {
        self.sum as f64 / self.count.max(1) as f64
    }
}

/// Sizes of a suppression buffer sampled in a window: bytes and records, mean and most.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BufferWindow {
    pub(super) samples: u64,
    pub(super) bytes_sum: u64,
    pub(super) bytes_max: u64,
    pub(super) count_sum: u64,
    pub(super) count_max: u64,
}

impl BufferWindow {
    /// Adds a sample: the buffer holds `bytes` in `count` records.
    #[inline]
    pub(crate) fn record(&mut self, bytes: usize, count: usize) {
        let (bytes, count) = (bytes as u64, count as u64);
        self.samples += 1;
        self.bytes_sum = self.bytes_sum.saturating_add(bytes);
        self.bytes_max = self.bytes_max.max(bytes);
        self.count_sum = self.count_sum.saturating_add(count);
        self.count_max = self.count_max.max(count);
    }

    /// The window so far (if anything was recorded), and a new window.
    pub(crate) fn take(&mut self) -> Option<BufferWindow> {
        (self.samples > 0).then(|| std::mem::take(self))
    }
}

/// A processor node's share of a publish.
#[derive(Debug, Clone)]
pub(crate) struct NodeExtra {
    pub(crate) name: Arc<str>,
    /// Records the node received so far (`DEBUG` only).
    pub(crate) processed: Option<u64>,
    /// End-to-end latencies since the last publish (source and terminal nodes).
    pub(crate) e2e: Option<LatencyWindow>,
}

/// A store's share of a publish.
#[derive(Debug, Clone)]
pub(crate) struct StoreExtra {
    pub(crate) name: Arc<str>,
    /// Kafka's `[store-scope]` and the operations of the window (`DEBUG` only).
    pub(crate) ops: Option<(
        &'static str,
        Vec<(&'static str, streams_state::metrics::OpWindow)>,
    )>,
    /// The record cache's hit ratio over the window (cached stores, `DEBUG` only).
    pub(crate) hit_ratio: Option<streams_state::HitRatioWindow>,
    /// RocksDB properties sampled now (RocksDB key-value stores).
    pub(crate) rocksdb: Option<streams_state::RocksDbProperties>,
}

/// What a task contributes to a publish besides its [`TaskSnapshot`](crate::runtime::TaskSnapshot).
#[derive(Debug, Clone)]
pub(crate) struct TaskExtra {
    pub(crate) id: TaskId,
    /// Records queued in the task.
    pub(crate) buffered: usize,
    /// End-to-end latencies since the last publish.
    pub(crate) e2e: Option<LatencyWindow>,
    /// Record lateness since the last publish (`DEBUG` only).
    pub(crate) lateness: Option<LatencyWindow>,
    pub(crate) nodes: Vec<NodeExtra>,
    pub(crate) stores: Vec<StoreExtra>,
    /// Per suppression node: its buffer's sizes since the last publish (`DEBUG` only).
    pub(crate) suppression: Vec<(Arc<str>, BufferWindow)>,
}

impl TaskExtra {
    /// A task's share with `buffered` records queued and end-to-end latencies `e2e`; the
    /// node, store and suppression parts empty.
    pub(crate) fn new(id: TaskId, buffered: usize, e2e: Option<LatencyWindow>) -> Self {
        Self {
            id,
            buffered,
            e2e,
            lateness: None,
            nodes: Vec::new(),
            stores: Vec::new(),
            suppression: Vec::new(),
        }
    }
}
