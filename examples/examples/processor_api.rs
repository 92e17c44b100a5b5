//! The Processor API: an operator written by hand, with a state store and a punctuator.
//!
//! `SensorTotals` receives temperature readings (key: sensor, value: reading). It adds
//! each reading to the sensor's running total in a key-value store, and a wall-clock
//! punctuator fires every 10 s: it forwards each sensor's total of the period and clears
//! the store, so that the next report starts from zero.
//!
//! The test driver mocks the wall clock: it moves only when the example advances it.
//!
//! Run it with `cargo run -p streams-examples --example processor_api`.

use std::time::Duration;

use streams_core::prelude::*;

const STORE: &str = "totals";
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Two periods of readings `(sensor, reading)`; the clock moves 10 s after each.
const PERIODS: [&[(&str, i64)]; 2] = [
    &[("kitchen", 21), ("garage", 12), ("kitchen", 22)],
    &[("garage", 10), ("attic", 30), ("garage", 11)],
];

/// Sums readings per sensor; reports and resets the sums on every punctuation.
struct SensorTotals {
    /// Opened in `init`: the store must be connected to the processor (see `topology`).
    store: Option<KeyValueStoreHandle<String, i64>>,
}

impl SensorTotals {
    fn store(&self) -> Result<&KeyValueStoreHandle<String, i64>, StreamsError> {
        self.store
            .as_ref()
            .ok_or_else(|| StreamsError::processor("sensor-totals", "init has not run"))
    }
}

impl Processor<String, i64, String, i64> for SensorTotals {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<(), StreamsError> {
        self.store = Some(ctx.key_value_store(STORE)?);
        ctx.schedule(REPORT_EVERY, PunctuationType::WallClockTime)?;
        Ok(())
    }

    fn process(
        &mut self,
        reading: Record<String, i64>,
        _ctx: &mut ProcessorContext<'_, String, i64>,
    ) -> Result<(), StreamsError> {
        // Nothing is forwarded here: the punctuator reports.
        let store = self.store()?;
        let total = store.get(&reading.key)?.unwrap_or(0);
        store.put(&reading.key, &(total + reading.value))
    }

    fn punctuate(
        &mut self,
        p: Punctuation,
        ctx: &mut ProcessorContext<'_, String, i64>,
    ) -> Result<(), StreamsError> {
        let store = self.store()?;
        for (sensor, total) in store.all()? {
            store.delete(&sensor)?;
            ctx.forward(Record::new(sensor, total, p.timestamp))?;
        }
        Ok(())
    }
}

fn topology() -> Result<Topology, TopologyError> {
    let builder = StreamsBuilder::new();
    // The store is declared once, then connected to the processor by name. It is backed by
    // a changelog topic, so its content would survive a restart.
    builder.add_state_store(Stores::key_value_store_builder(
        Stores::in_memory_key_value_store(STORE),
        default_serde::<String>(),
        default_serde::<i64>(),
    ));
    builder
        .stream::<String, i64>("readings")
        // One processor per task, made by the closure.
        .process(
            || SensorTotals { store: None },
            Named::as_("sensor-totals"),
            &[STORE],
        )
        .to("totals-per-period");
    builder.build()
}

/// The records a punctuation forwarded: `(sensor, total, time)`, sorted by sensor.
type Report = Vec<(String, i64, i64)>;

/// Runs every period and returns its report.
fn run() -> Result<Vec<Report>, StreamsError> {
    let mut driver = TopologyTestDriver::new(topology()?, StreamsConfig::new("sensors"))?;
    let readings = driver.input_topic::<String, i64>("readings");
    let reports = driver.output_topic::<String, i64>("totals-per-period");
    let mut out = Vec::new();
    for period in PERIODS {
        for (sensor, reading) in period {
            readings.pipe_input(sensor.to_string(), *reading)?;
        }
        driver.advance_wall_clock_time(REPORT_EVERY)?; // the punctuator fires
        let mut report: Report = reports
            .read_records_to_list()?
            .into_iter()
            .map(|r| (r.key, r.value, r.timestamp))
            .collect();
        report.sort();
        out.push(report);
    }
    Ok(out)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for report in run()? {
        let at = report.first().map_or(0, |r| r.2);
        println!("Report at wall-clock time {at} ms:");
        for (sensor, total, _) in report {
            println!("  {sensor:<8} total {total}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    #[test]
    fn each_report_holds_the_totals_of_its_period_only() {
        let reports = super::run().unwrap();
        assert_eq!(reports.len(), super::PERIODS.len());
        for (i, (period, report)) in super::PERIODS.iter().zip(reports).enumerate() {
            let mut totals: BTreeMap<String, i64> = BTreeMap::new();
            for (sensor, reading) in period.iter() {
                *totals.entry(sensor.to_string()).or_default() += reading;
            }
            let at = 10_000 * (i as i64 + 1);
            let expected: Vec<_> = totals.into_iter().map(|(s, t)| (s, t, at)).collect();
            assert_eq!(report, expected);
        }
    }
}
