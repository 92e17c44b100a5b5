//! Exports the runtime's metrics through the [`metrics`](::metrics) facade, named and
//! labelled as Kafka Streams' (issue #21), with a Prometheus text exporter an app mounts
//! on its own HTTP server.
//!
//! Nothing is published until publishing is on: [`install_prometheus`] turns it on (and
//! installs the Prometheus recorder); an app with a recorder of its own (StatsD, OTLP...)
//! installs it with [`::metrics::set_global_recorder`] and calls [`enable_publishing`].
//! Publishing off costs each stream thread one atomic load per loop.
//!
//! Each stream thread publishes from the values it already keeps for
//! [`KafkaStreams::metrics`](crate::runtime::KafkaStreams::metrics), at most once per
//! publish interval (1 s by default), at the end of a loop: counters are set to their
//! totals, rates and windowed averages are computed over the time since the thread last
//! published, maxima and minima are those of that window. The processing loop itself only
//! adds a few integer additions and comparisons (poll and commit maxima, punctuation time,
//! records per poll, end-to-end latency per task).
//!
//! Names follow Kafka Streams' JMX metrics: `kafka_streams_<group>_<metric>`, the group
//! without its `-metrics` suffix and every `-` an `_` (`stream-thread-metrics`
//! `commit-latency-avg` is `kafka_streams_stream_thread_commit_latency_avg`); consumer
//! metrics are `kafka_consumer_<metric>`. Labels are Kafka's tags in snake case
//! (`thread_id`, `task_id`, `topic`, `partition`). Counters end in `_total`; latencies are
//! in milliseconds, as in Kafka Streams. [`METRICS`] lists them all (docs/OPERATIONS.md
//! says which alert to build on each).
//!
//! ```no_run
//! # #[cfg(feature = "prometheus")]
//! # fn main() -> Result<(), streams_core::metrics_export::MetricsExportError> {
//! let exporter = streams_core::metrics_export::install_prometheus()?;
//! // ... start the app; then, in the app's `GET /metrics` handler:
//! let body: String = exporter.render();
//! # let _ = body;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "prometheus"))]
//! # fn main() {}
//! ```

mod catalog;
mod publish;
#[cfg(all(test, feature = "prometheus"))]
mod publish_tests;
mod windows;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

pub use catalog::{METRICS, MetricInfo, MetricKind, describe};
pub(crate) use publish::{PublishInput, ThreadRecorder};
pub(crate) use windows::{BufferWindow, LatencyWindow, NodeExtra, StoreExtra, TaskExtra};

/// Why the metrics export could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MetricsExportError {
    /// A global `metrics` recorder is installed already (only one per process).
    #[error("a metrics recorder is already installed in this process")]
    AlreadyInstalled,
}

/// Whether stream threads publish (see [`enable_publishing`]).
static PUBLISHING: AtomicBool = AtomicBool::new(false);
/// The publish interval, in ms.
static INTERVAL_MS: AtomicU64 = AtomicU64::new(DEFAULT_PUBLISH_INTERVAL.as_millis() as u64);

/// How often each stream thread publishes by default.
pub const DEFAULT_PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

/// Makes every stream thread of the process publish its metrics to the global `metrics`
/// recorder at most once per `interval` (rates and windowed averages are over that
/// interval). For apps installing their own recorder; [`install_prometheus`] calls it.
pub fn enable_publishing(interval: Duration) {
    let ms = u64::try_from(interval.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    INTERVAL_MS.store(ms, Ordering::Relaxed);
    PUBLISHING.store(true, Ordering::Relaxed);
}

/// Stops publishing (the recorder keeps the last values).
pub fn disable_publishing() {
    PUBLISHING.store(false, Ordering::Relaxed);
}

/// Whether stream threads publish their metrics.
pub fn is_publishing() -> bool {
    PUBLISHING.load(Ordering::Relaxed)
}

/// Settings of [`install_prometheus_with`].
#[derive(Debug, Clone, PartialEq)]
pub struct ExportOptions {
    /// How often each stream thread publishes (default [`DEFAULT_PUBLISH_INTERVAL`]).
    pub publish_interval: Duration,
    /// A metric not updated for this long leaves the output (the series of a task that
    /// moved to another instance, of a closed app). Default 60 s; at least five publish
    /// intervals are used.
    pub idle_timeout: Duration,
    /// Labels added to every metric (`application_id`, `instance`...).
    pub global_labels: Vec<(String, String)>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            publish_interval: DEFAULT_PUBLISH_INTERVAL,
            idle_timeout: Duration::from_secs(60),
            global_labels: Vec::new(),
        }
    }
}

/// The Prometheus exporter: renders the text exposition format for an app's own
/// `GET /metrics` route (serve it with [`PrometheusExporter::CONTENT_TYPE`]).
#[cfg(feature = "prometheus")]
#[derive(Clone)]
pub struct PrometheusExporter {
    handle: metrics_exporter_prometheus::PrometheusHandle,
}

#[cfg(feature = "prometheus")]
impl std::fmt::Debug for PrometheusExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusExporter").finish_non_exhaustive()
    }
}

#[cfg(feature = "prometheus")]
impl PrometheusExporter {
    /// The `Content-Type` of [`render`](Self::render)'s output.
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";

    /// Every metric recorded so far in the Prometheus text format (also drops those idle
    /// past the idle timeout).
    pub fn render(&self) -> String {
        self.handle.run_upkeep();
        self.handle.render()
    }
}

/// Installs a Prometheus recorder as the process's global `metrics` recorder, describes
/// the streams metrics, and turns publishing on, with default [`ExportOptions`].
#[cfg(feature = "prometheus")]
pub fn install_prometheus() -> Result<PrometheusExporter, MetricsExportError> {
    install_prometheus_with(ExportOptions::default())
}

/// [`install_prometheus`] with explicit settings.
#[cfg(feature = "prometheus")]
pub fn install_prometheus_with(
    options: ExportOptions,
) -> Result<PrometheusExporter, MetricsExportError> {
    let recorder = prometheus_recorder(&options);
    let handle = recorder.handle();
    ::metrics::set_global_recorder(recorder).map_err(|_| MetricsExportError::AlreadyInstalled)?;
    describe();
    enable_publishing(options.publish_interval);
    Ok(PrometheusExporter { handle })
}

#[cfg(feature = "prometheus")]
fn prometheus_recorder(options: &ExportOptions) -> metrics_exporter_prometheus::PrometheusRecorder {
    let idle = options
        .idle_timeout
        .max(options.publish_interval.saturating_mul(5));
    let mut builder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .idle_timeout(metrics_util::MetricKindMask::ALL, Some(idle));
    for (k, v) in &options.global_labels {
        builder = builder.add_global_label(k.clone(), v.clone());
    }
    builder.build_recorder()
}
