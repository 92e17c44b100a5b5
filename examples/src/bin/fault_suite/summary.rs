//! What a drive found: lost and duplicated results per output, recovery times and where
//! the kills came, as one JSON line.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use streams_core::config::ProcessingGuarantee;

use super::OutputCheck;

/// When a kill came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KillPoint {
    /// Before the app processed a record or found nothing to process (opening the engine,
    /// joining the group, restoring).
    Startup,
    /// While input was left to process.
    Processing,
    /// With nothing left to process (as last reported).
    Idle,
}

/// What a drive found.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    /// `embedded` (the app opens the engine) or `serve` (the engine over the Kafka
    /// protocol, the app through librdkafka).
    pub(crate) engine: &'static str,
    /// App instances run at once.
    pub(crate) instances: usize,
    /// The guarantee the app ran with.
    pub(crate) guarantee: ProcessingGuarantee,
    /// Kills done.
    pub(crate) kills: usize,
    /// Input records written.
    pub(crate) records_in: usize,
    /// Per output topic: what was checked.
    pub(crate) outputs: BTreeMap<&'static str, OutputCheck>,
    /// Per restart (after each kill, the final run included): time from the spawn to the
    /// first record processed (or to caught-up when there was nothing left), if it got
    /// that far before the next kill.
    pub(crate) recoveries: Vec<Duration>,
    /// Where each kill came.
    pub(crate) kill_points: Vec<KillPoint>,
    /// Instances paused and resumed instead of killed (zombies).
    pub(crate) pauses: usize,
    /// Output records a read_uncommitted reader sees and a read_committed one does not
    /// (records of aborted transactions).
    pub(crate) uncommitted_output_records: usize,
    /// Records the final run dropped as late. The input has none (see
    /// [`generate_events`](super::generate_events)); a restart drops records when its
    /// restored stores are ahead of the committed input (at-least-once after a kill
    /// mid-processing).
    pub(crate) final_run_dropped: u64,
    /// How long the final run took.
    pub(crate) final_run: Duration,
}

impl Summary {
    /// The summary's leading fields, in order.
    pub(crate) const HEAD: [&'static str; 8] = [
        "engine",
        "guarantee",
        "kills",
        "records_in",
        "lost",
        "duplicated",
        "recovery_p50_ms",
        "recovery_p99_ms",
    ];

    /// Results lost over all outputs.
    pub(crate) fn lost(&self) -> usize {
        self.outputs.values().map(|c| c.lost).sum()
    }

    /// Results duplicated over all outputs.
    pub(crate) fn duplicated(&self) -> usize {
        self.outputs.values().map(|c| c.duplicated).sum()
    }

    /// Whether the run passes: nothing lost, and nothing duplicated under exactly-once.
    pub(crate) fn passed(&self) -> bool {
        self.lost() == 0
            && (self.guarantee == ProcessingGuarantee::AtLeastOnce || self.duplicated() == 0)
    }

    /// The recovery time at percentile `p` (nearest rank), in ms.
    pub(crate) fn recovery_ms(&self, p: f64) -> Option<u128> {
        let mut v: Vec<u128> = self.recoveries.iter().map(Duration::as_millis).collect();
        v.sort_unstable();
        if v.is_empty() {
            return None;
        }
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v.get(rank.clamp(1, v.len()) - 1).copied()
    }

    /// The one-line JSON summary.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let count = |k: KillPoint| self.kill_points.iter().filter(|p| **p == k).count();
        let outputs: serde_json::Map<String, serde_json::Value> = self
            .outputs
            .iter()
            .map(|(t, c)| {
                (
                    (*t).to_string(),
                    serde_json::json!({
                        "records": c.records,
                        "lost": c.lost,
                        "duplicated": c.duplicated,
                        "examples": c.examples,
                    }),
                )
            })
            .collect();
        serde_json::json!({
            "engine": self.engine,
            "instances": self.instances,
            "pauses": self.pauses,
            "guarantee": self.guarantee.as_str(),
            "kills": self.kills,
            "records_in": self.records_in,
            "lost": self.lost(),
            "duplicated": self.duplicated(),
            "recovery_p50_ms": self.recovery_ms(50.0),
            "recovery_p99_ms": self.recovery_ms(99.0),
            "recoveries_measured": self.recoveries.len(),
            "kills_at_startup": count(KillPoint::Startup),
            "kills_while_processing": count(KillPoint::Processing),
            "kills_when_idle": count(KillPoint::Idle),
            "uncommitted_output_records": self.uncommitted_output_records,
            "final_run_ms": self.final_run.as_millis(),
            "final_run_dropped": self.final_run_dropped,
            "outputs": outputs,
        })
    }
}

impl fmt::Display for Summary {
    /// The one-line JSON summary, the fields of [`Summary::HEAD`] first.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = self.to_json();
        let mut parts: Vec<String> = Self::HEAD
            .iter()
            .map(|k| format!("\"{k}\":{}", json[*k]))
            .collect();
        if let Some(all) = json.as_object() {
            for (k, v) in all {
                if !Self::HEAD.contains(&k.as_str()) {
                    parts.push(format!("{}:{v}", serde_json::Value::from(k.as_str())));
                }
            }
        }
        write!(f, "{{{}}}", parts.join(","))
    }
}
