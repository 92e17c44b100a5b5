//! Windowed count: page views per page per minute, with a grace period for late records.
//!
//! Views arrive on `page-views` (key: user, value: page). The topology counts them per page
//! in tumbling one-minute windows `[start, start + 60 s)`, aligned to the epoch. A record
//! may arrive out of order: it still counts while its window is open, that is until stream
//! time (the largest timestamp seen so far) reaches the window's end plus the grace period
//! (10 s here). After that the record is late: it is dropped and counted in the metrics.
//!
//! Run it with `cargo run -p streams-examples --example windowed_count`.

use std::sync::Arc;
use std::time::Duration;

use streams_core::prelude::*;
use streams_core::window::{TimeWindowedSerde, TimeWindows};

const VIEWS: &str = "page-views";
const COUNTS: &str = "views-per-minute";
const WINDOW: Duration = Duration::from_secs(60);
const GRACE: Duration = Duration::from_secs(10);

/// `(user, page, timestamp in ms)`, in arrival order.
const INPUT: [(&str, &str, i64); 7] = [
    ("alice", "/home", 5_000),
    ("bob", "/home", 30_000),
    ("alice", "/shop", 59_999), // the last millisecond of the first window
    ("carol", "/home", 60_000), // a window's end is exclusive: the second window
    ("bob", "/shop", 55_000),   // out of order, but [0 s, 60 s) is open until 70 s
    ("dave", "/home", 75_000),  // stream time 75 s: [0 s, 60 s) closes
    ("erin", "/home", 50_000),  // too late for [0 s, 60 s): dropped
];

/// One output record: the page, its window `[start, end)` and the window's count so far.
type Update = (String, i64, i64, i64);

fn topology() -> Result<Topology, TopologyError> {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>(VIEWS)
        .group_by(|_user, page| page.clone())
        .windowed_by(TimeWindows::of_size_and_grace(WINDOW, GRACE))
        // A table keyed by `Windowed<String>`: the page and its window.
        .count()
        .to_stream()
        .to(COUNTS);
    builder.build()
}

/// Runs the topology over `input`; returns every count update and the dropped records.
fn run(input: &[(&str, &str, i64)]) -> Result<(Vec<Update>, u64), StreamsError> {
    let driver = TopologyTestDriver::new(topology()?, StreamsConfig::new("windowed-count"))?;
    let views = driver.input_topic::<String, String>(VIEWS);
    for (user, page, ts) in input {
        views.pipe_input_at(user.to_string(), page.to_string(), *ts)?;
    }
    // A windowed key is written as the key followed by the window's start; the serde needs
    // the window size to give the end back.
    let size = Some(TimeWindows::of_size_and_grace(WINDOW, GRACE).size_ms());
    let key_serde = Arc::new(TimeWindowedSerde::new(default_serde::<String>(), size));
    let output = driver.output_topic_with::<Windowed<String>, Option<i64>>(
        COUNTS,
        key_serde,
        default_serde(),
    );
    let updates = output
        .read_key_values_to_list()?
        .into_iter()
        .map(|(w, n)| (w.key, w.window.start, w.window.end, n.unwrap_or(0)))
        .collect();
    Ok((updates, driver.metrics().dropped_records))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (updates, dropped) = run(&INPUT)?;
    println!("Views per page per minute (one line per update):");
    for (page, start, end, count) in updates {
        println!(
            "  {page:<6} [{:>3} s, {:>3} s) -> {count}",
            start / 1000,
            end / 1000
        );
    }
    println!("Late records dropped: {dropped}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    #[test]
    fn final_counts_per_window_match_a_plain_computation() {
        let (size, grace) = (60_000, 10_000);
        // Plain code: track stream time; a record counts if its window is still open.
        let mut expected: BTreeMap<(String, i64), i64> = BTreeMap::new();
        let (mut stream_time, mut dropped) = (i64::MIN, 0);
        for (_user, page, ts) in super::INPUT {
            stream_time = stream_time.max(ts);
            let start = ts - ts % size;
            if start + size + grace <= stream_time {
                dropped += 1;
            } else {
                *expected.entry((page.to_string(), start)).or_default() += 1;
            }
        }
        let (updates, got_dropped) = super::run(&super::INPUT).unwrap();
        // The last update of each window is its count; every window is one minute long.
        let mut latest = BTreeMap::new();
        for (page, start, end, count) in updates {
            assert_eq!(end - start, size);
            latest.insert((page, start), count);
        }
        assert_eq!(latest, expected);
        assert_eq!(got_dropped, dropped);
        assert_eq!(dropped, 1);
    }
}
