//! The quick-start demo: page views per region and the most viewed pages, computed by a
//! topology over 4 partitions from seeded, generated page views.
//!
//! It runs for real on the embedded log engine (no broker): the generator writes
//! `page_views` into the engine, the app (`KafkaStreams`) processes it with RocksDB state,
//! and the demo reads the results back from the output topic and the engine.
//! Flags: `--events N` (default 200000), `--seed S` (default 42).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use streams_core::partitioner::partition_for_key;
use streams_core::prelude::*;
use streams_core::runtime::{KafkaStreams, LogEngine, NewRecord, TopicConfig};
use streams_examples::{PageView, PageViewGenerator};

/// mimalloc: glibc's malloc cost about a third of a stream thread's time (docs/PERFORMANCE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const REGIONS: [&str; 4] = ["eu-west", "us-east", "us-west", "ap-south"];

fn region_of(user: &str) -> &'static str {
    let n: usize = user.bytes().map(usize::from).sum();
    REGIONS[n % REGIONS.len()]
}

/// The demo topology: views per region and views per page.
fn topology() -> Result<Topology, TopologyError> {
    let builder = StreamsBuilder::new();
    let views = builder
        .stream_with::<String, PageView>(
            &["page_views"],
            Consumed::with(default_serde(), default_serde())
                .with_timestamp_extractor(EventTimeExtractor)
                .with_name("page-views-source"),
        )
        .filter_named(|_, v| v.referrer != "bot", Named::as_("drop-bots"), false);
    views
        .group_by_with(
            |user, _| region_of(user).to_string(),
            Grouped::as_("by-region")
                .with_key_serde(default_serde())
                .with_value_serde(default_serde()),
        )
        .count_with(Materialized::as_("views-per-region"))
        .to_stream()
        .to("views-per-region");
    views
        .group_by_with(
            |_, v| v.page.clone(),
            Grouped::as_("by-page")
                .with_key_serde(default_serde())
                .with_value_serde(default_serde()),
        )
        .count_with(Materialized::as_("views-per-page"))
        .to_stream()
        .to("views-per-page");
    builder.build()
}

fn arg(name: &str, default: u64) -> Result<u64, String> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .ok_or_else(|| format!("{name} needs a value"))?
            .parse()
            .map_err(|e| format!("{name}: {e}")),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events = arg("--events", 200_000)?;
    let seed = arg("--seed", 42)?;
    let topology = topology()?;
    println!("{}", topology.describe());

    let dir = std::env::temp_dir().join(format!("rust-streams-demo-{}", std::process::id()));
    let engine = Arc::new(LogEngine::open(&dir.join("log"))?);
    engine.create_topic("page_views", TopicConfig::new(4))?;
    let serde = PageView::default_serde();
    let mut batches: Vec<Vec<NewRecord>> = vec![Vec::new(); 4];
    for view in
        PageViewGenerator::new(seed, 100_000, 10_000, 1_700_000_000_000).take(events as usize)
    {
        let key = view.user_id.clone().into_bytes();
        let p = partition_for_key(&key, 4) as usize;
        batches[p].push(NewRecord {
            timestamp: view.ts,
            key: Some(key),
            value: Some(serde.serialize(&view)?),
            headers: Vec::new(),
        });
        if batches[p].len() == 1_000 {
            engine.append("page_views", p as u32, &batches[p])?;
            batches[p].clear();
        }
    }
    for (p, batch) in batches.iter().enumerate() {
        engine.append("page_views", p as u32, batch)?;
    }
    println!(
        "wrote {events} page views to the embedded engine in {}",
        dir.display()
    );

    let config = StreamsConfig::new("demo")
        .with_state_dir(dir.join("state"))
        .with_commit_interval(Duration::from_millis(500));
    let start = Instant::now();
    let mut app = KafkaStreams::new(topology, config, engine.clone())?;
    app.start()?;
    app.wait_until_caught_up(Duration::from_secs(600))?;
    let elapsed = start.elapsed();
    let m = app.metrics().total();
    app.close()?;
    println!(
        "processed {} records (input and repartitioned) in {:.2?}: {:.0} records/s on one stream thread",
        m.processed,
        elapsed,
        m.processed as f64 / elapsed.as_secs_f64()
    );

    let mut regions: HashMap<String, i64> = HashMap::new();
    let mut pages: HashMap<String, i64> = HashMap::new();
    for (topic, map) in [
        ("views-per-region", &mut regions),
        ("views-per-page", &mut pages),
    ] {
        let partitions = engine
            .topics()
            .into_iter()
            .find(|(n, _)| n == topic)
            .map_or(0, |(_, c)| c.partitions);
        for p in 0..partitions {
            for r in engine.read(topic, p, 0, usize::MAX)? {
                if let (Some(k), Some(v)) = (r.key, r.value) {
                    let n = i64::from_be_bytes(v.as_slice().try_into()?);
                    map.insert(String::from_utf8(k)?, n);
                }
            }
        }
    }
    let mut regions: Vec<_> = regions.into_iter().collect();
    regions.sort();
    println!("\nviews per region (bots excluded):");
    for (region, n) in regions {
        println!("  {region:<10} {n:>8}");
    }
    let mut top: Vec<_> = pages.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    println!("\ntop pages:");
    for (page, n) in top.iter().take(5) {
        println!("  {page:<10} {n:>8}");
    }
    drop(engine);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
