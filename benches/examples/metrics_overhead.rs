//! The cost of the metrics export (issue #21) on W1 and W2 of the e2e bench: the same
//! pre-filled page views processed by one stream thread with publishing off, on at the
//! default `metrics.recording.level` (`INFO`), and on at `DEBUG` (a Prometheus recorder
//! installed, each thread publishing every second, the text rendered every second as a
//! scraper would), the modes alternating run by run in one process; the medians, min and
//! max go to stdout.
//!
//! `OVERHEAD_RECORDS` (default 1,000,000) and `OVERHEAD_RUNS` (default 5, per mode and
//! workload) size it. Run with
//! `cargo run --release -p streams-benches --example metrics_overhead`.

#![allow(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use streams_benches::{
    BoxResult, INPUT, PARTITIONS, PageView, env_usize, page_views, stats, w1, w2,
};
use streams_core::config::RecordingLevel;
use streams_core::metrics_export;
use streams_core::partitioner::partition_for_key;
use streams_core::prelude::*;
use streams_core::runtime::{KafkaStreams, LogEngine, NewRecord, TopicConfig};

fn fill(engine: &LogEngine, n: usize) -> BoxResult<()> {
    let serde = PageView::default_serde();
    let mut batches: Vec<Vec<NewRecord>> = vec![Vec::new(); PARTITIONS as usize];
    for view in page_views(42).take(n) {
        let key = view.user_id.clone().into_bytes();
        let p = partition_for_key(&key, PARTITIONS) as usize;
        batches[p].push(NewRecord {
            timestamp: view.ts,
            key: Some(key),
            value: Some(serde.serialize(&view)?),
            headers: Vec::new(),
        });
        if batches[p].len() == 1_000 {
            engine.append(INPUT, p as u32, &batches[p])?;
            batches[p].clear();
        }
    }
    for (p, batch) in batches.iter().enumerate() {
        if !batch.is_empty() {
            engine.append(INPUT, p as u32, batch)?;
        }
    }
    engine.flush()?;
    Ok(())
}

/// One run: start() to caught up; records per second.
fn run(
    engine: &Arc<LogEngine>,
    base: &std::path::Path,
    app: &str,
    topology: Topology,
    n: usize,
    level: RecordingLevel,
) -> BoxResult<f64> {
    let state = base.join(format!("state-{app}"));
    let config = StreamsConfig::new(app)
        .with_state_dir(&state)
        .with_num_stream_threads(1)
        .with_cache_max_bytes(10 << 20)
        .with_poll(Duration::from_millis(10))
        .with_metrics_recording_level(level);
    let mut streams = KafkaStreams::new(topology, config, engine.clone())?;
    let t0 = Instant::now();
    streams.start()?;
    streams.wait_until_caught_up(Duration::from_secs(1800))?;
    let secs = t0.elapsed().as_secs_f64();
    streams.close()?;
    for (name, _) in engine.topics() {
        if name.starts_with(&format!("{app}-")) || name.starts_with("out-") {
            engine.delete_topic(&name)?;
        }
    }
    std::fs::remove_dir_all(&state)?;
    Ok(n as f64 / secs)
}

fn main() -> BoxResult<()> {
    let n = env_usize("OVERHEAD_RECORDS", 1_000_000)?;
    let runs = env_usize("OVERHEAD_RUNS", 5)?.max(1);
    let dir = tempfile::tempdir()?;
    let engine = Arc::new(LogEngine::open(&dir.path().join("log"))?);
    engine.create_topic(INPUT, TopicConfig::new(PARTITIONS))?;
    fill(&engine, n)?;
    let exporter = metrics_export::install_prometheus()?;
    metrics_export::disable_publishing();
    // A scraper: renders every second while the runs go on.
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = {
        let (stop, exporter) = (stop.clone(), exporter.clone());
        std::thread::spawn(move || {
            let mut bytes = 0;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs(1));
                bytes += exporter.render().len();
            }
            bytes
        })
    };
    eprintln!("metrics_overhead: {n} records, {runs} runs per mode and workload");
    println!(
        "| workload | publishing off | on, INFO | on, DEBUG | INFO / off | DEBUG / off | DEBUG / INFO |"
    );
    println!("|---|---|---|---|---|---|---|");
    // (publishing, level) of each mode, run in turn.
    let modes = [
        (false, RecordingLevel::Info),
        (true, RecordingLevel::Info),
        (true, RecordingLevel::Debug),
    ];
    for (w, build) in [("W1", w1 as fn(&str) -> BoxResult<Topology>), ("W2", w2)] {
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
        for i in 0..runs * modes.len() {
            let m = i % modes.len();
            let (publishing, level) = modes[m];
            if publishing {
                metrics_export::enable_publishing(metrics_export::DEFAULT_PUBLISH_INTERVAL);
            } else {
                metrics_export::disable_publishing();
            }
            let app = format!("{}-{i}", w.to_lowercase());
            let rate = run(
                &engine,
                dir.path(),
                &app,
                build(&format!("out-{app}"))?,
                n,
                level,
            )?;
            eprintln!(
                "{w} run {i} publishing {publishing} {}: {rate:.0} records/s",
                level.as_str()
            );
            rates[m].push(rate);
        }
        let s: Vec<(f64, f64, f64)> = rates.iter().map(|r| stats(r)).collect();
        let cell = |(m, lo, hi): (f64, f64, f64)| format!("{m:.0}/s ({lo:.0}-{hi:.0})");
        println!(
            "| {w} | {} | {} | {} | {:.3} | {:.3} | {:.3} |",
            cell(s[0]),
            cell(s[1]),
            cell(s[2]),
            s[1].0 / s[0].0,
            s[2].0 / s[0].0,
            s[2].0 / s[1].0
        );
    }
    stop.store(true, Ordering::Relaxed);
    let rendered = scraper.join().map_err(|_| "the scraper panicked")?;
    eprintln!("rendered {rendered} bytes of metrics text in all");
    Ok(())
}
