//! The quick-start demo: page views per region and the most viewed pages, computed by a
//! topology over 4 partitions from seeded, generated page views.
//!
//! Until the runtime lands it runs through the deterministic test driver (no broker, no
//! disk). Flags: `--events N` (default 200000), `--seed S` (default 42).

use std::collections::HashMap;
use std::time::Instant;

use streams_core::prelude::*;
use streams_examples::{PageView, PageViewGenerator};

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
    let driver = TopologyTestDriver::builder(topology, StreamsConfig::new("demo"))
        .partitions("page_views", 4)
        .build()?;
    let input = driver.input_topic::<String, PageView>("page_views");
    let start = Instant::now();
    let views = PageViewGenerator::new(seed, 100_000, 10_000, 1_700_000_000_000);
    let mut batch = Vec::with_capacity(10_000);
    for view in views.take(events as usize) {
        batch.push(Record::new(view.user_id.clone(), view.clone(), view.ts));
        if batch.len() == batch.capacity() {
            input.pipe_records(batch.drain(..))?;
        }
    }
    input.pipe_records(batch.drain(..))?;
    let elapsed = start.elapsed();
    let m = driver.metrics();
    println!(
        "processed {} records in {} tasks in {:.2?} ({:.0} records/s through 2 sub-topologies)",
        m.processed,
        driver.task_ids().len(),
        elapsed,
        m.processed as f64 / elapsed.as_secs_f64()
    );
    let regions: HashMap<String, Option<i64>> = driver
        .output_topic::<String, Option<i64>>("views-per-region")
        .read_key_values_to_map()?;
    let mut regions: Vec<_> = regions.into_iter().collect();
    regions.sort();
    println!("\nviews per region (bots excluded):");
    for (region, n) in regions {
        println!("  {region:<10} {:>8}", n.unwrap_or(0));
    }
    let pages = driver.key_value_store::<String, i64>("views-per-page")?;
    let mut top = pages.all()?;
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    println!("\ntop pages:");
    for (page, n) in top.iter().take(5) {
        println!("  {page:<10} {n:>8}");
    }
    driver.close()?;
    Ok(())
}
