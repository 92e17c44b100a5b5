//! The dashboard in a real browser: the activity app runs (as its own process, on the
//! embedded engine) over a bounded, seeded input; headless Chromium loads the dashboard; the
//! test checks that the page rendered the data the API serves (KPIs, what each chart drew,
//! the alerts table; views per country and click-through rates per page and category, the
//! joins' outputs), the runtime panel against `/metrics` and the topology picture against
//! the topology's description, and takes a screenshot. Also: the command line's errors and
//! `--help`.
//!
//! Needs Debian's `chromium` (or `STREAMS_CHROMIUM=/path/to/chrome`). Without it the test
//! prints a notice and passes, except under `CI=true`, where a missing browser fails.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../src/bin/activity/flags.rs"]
mod flags;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{App, get, get_json, prometheus_samples};
use flags::FLAGS;
use serde_json::Value;
use streams_core::topology::NodeType;
use streams_examples::activity::{self, ActivityConfig};

const EVENTS: u64 = 20_000;

fn chromium() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("STREAMS_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Starts the app on a free port over a bounded, seeded input.
fn start(data_dir: &Path) -> App {
    let events = EVENTS.to_string();
    let dir = data_dir.to_string_lossy();
    common::start_app(
        "app",
        &[
            "--rate",
            "0",
            "--threads",
            "1",
            "--events",
            &events,
            "--seed",
            "7",
            "--data-dir",
            &dir,
        ],
    )
}

/// Waits until every event is processed and the dashboard's data stops changing (idle
/// advance closes the last alert windows a few seconds after the input ends).
fn settled_dashboard(port: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut last: Option<Value> = None;
    // Idle advance closes the last alert windows up to about 17 s after the input ends
    // (5 s idle, then the 10 s window and its 2 s grace in stream time).
    let mut caught_up: Option<Instant> = None;
    loop {
        assert!(
            Instant::now() < deadline,
            "the app did not process {EVENTS} events and settle within 180 s"
        );
        std::thread::sleep(Duration::from_secs(2));
        let Ok(body) = get(port, "/api/dashboard") else {
            continue;
        };
        let d: Value = serde_json::from_str(&body).expect("dashboard JSON");
        // Every event written (the generator's count) and processed (no lag).
        let done = d["status"]["generated"].as_u64() == Some(EVENTS)
            && d["status"]["lag"].as_u64() == Some(0);
        let stable = last.as_ref().is_some_and(|l| same_data(l, &d));
        if done {
            caught_up.get_or_insert_with(Instant::now);
        }
        if done && stable && caught_up.is_some_and(|t| t.elapsed() >= Duration::from_secs(25)) {
            return d;
        }
        last = done.then_some(d);
    }
}

/// The parts of two dashboard answers that do not depend on time.
fn same_data(a: &Value, b: &Value) -> bool {
    ["timeline", "ctr", "countries", "categories", "alerts"]
        .iter()
        .all(|k| a[k] == b[k])
}

/// A number as the dashboard's `fmt` shows it ("20.4k", "1.20M", "9,876"), read back; the
/// shown precision in units.
fn shown_number(text: &str) -> Option<(f64, f64)> {
    let text = text.replace(',', "");
    if let Some(k) = text.strip_suffix('k') {
        return k.parse::<f64>().ok().map(|n| (n * 1e3, 50.0));
    }
    if let Some(m) = text.strip_suffix('M') {
        return m.parse::<f64>().ok().map(|n| (n * 1e6, 5_000.0));
    }
    text.parse::<f64>().ok().map(|n| (n, 0.0))
}

/// `label=clicked/resolved+pending;...` as the dashboard's click-through charts record
/// what they drew.
fn drawn_ctr(items: &[Value], label: &str) -> String {
    items
        .iter()
        .map(|p| {
            format!(
                "{}={}/{}+{}",
                p[label].as_str().unwrap_or(""),
                p["clicked_views"],
                p["views"],
                p["pending_views"]
            )
        })
        .collect::<Vec<_>>()
        .join(";")
}

fn chrome(browser: &Path, profile: &Path, extra: &[&str], url: &str) -> String {
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of attribute `attr` of the element with id `id`.
fn attribute(dom: &str, id: &str, attr: &str) -> Option<String> {
    let start = dom.find(&format!("id=\"{id}\""))?;
    let tag_start = dom[..start].rfind('<')?;
    let tag_end = start + dom[start..].find('>')?;
    let tag = &dom[tag_start..tag_end];
    let at = tag.find(&format!("{attr}=\""))? + attr.len() + 2;
    let len = tag[at..].find('"')?;
    Some(tag[at..at + len].replace("&amp;", "&"))
}

/// The text of the element with id `id` (no nested elements).
fn text(dom: &str, id: &str) -> Option<String> {
    let start = dom.find(&format!("id=\"{id}\""))?;
    let from = start + dom[start..].find('>')? + 1;
    let len = dom[from..].find('<')?;
    Some(dom[from..from + len].to_string())
}

/// The first cell of every row of the alerts table.
fn alert_users(dom: &str) -> Vec<String> {
    let Some(body) = dom.split("<tbody>").nth(1) else {
        return Vec::new();
    };
    let body = body.split("</tbody>").next().unwrap_or("");
    body.split("<tr><td>")
        .skip(1)
        .filter_map(|row| row.split("</td>").next().map(str::to_string))
        .collect()
}

/// What the runtime panel shows, computed here from a `/metrics` text: lag, dropped
/// records (all, and by reason), end-to-end latency (mean and max over the tasks), the
/// record-cache hit ratio (mean, if recorded), and the tasks of each sub-topology.
#[derive(Debug, Clone, PartialEq)]
struct Figures {
    lag: f64,
    dropped: f64,
    by_reason: BTreeMap<String, f64>,
    e2e_avg: Option<f64>,
    e2e_max: Option<f64>,
    cache_hit: Option<f64>,
    tasks: BTreeMap<String, BTreeSet<String>>,
    node_rates: BTreeSet<String>,
}

fn figures(text: &str) -> Figures {
    let values = |name: &str| -> Vec<f64> {
        prometheus_samples(text, name)
            .into_iter()
            .map(|(_, v)| v)
            .filter(|v| v.is_finite())
            .collect()
    };
    let mean = |v: Vec<f64>| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    let mut by_reason = BTreeMap::new();
    for (labels, v) in prometheus_samples(
        text,
        "kafka_streams_stream_task_dropped_records_by_reason_total",
    ) {
        *by_reason.entry(labels["reason"].clone()).or_insert(0.0) += v;
    }
    let mut tasks: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (labels, _) in prometheus_samples(text, "kafka_streams_stream_task_process_total") {
        let task = labels["task_id"].clone();
        let sub = task.split('_').next().unwrap_or("").to_string();
        tasks.entry(sub).or_default().insert(task);
    }
    Figures {
        lag: values("kafka_streams_stream_task_records_lag").iter().sum(),
        dropped: values("kafka_streams_stream_task_dropped_records_total")
            .iter()
            .sum(),
        by_reason,
        e2e_avg: mean(values("kafka_streams_stream_task_record_e2e_latency_avg")),
        e2e_max: values("kafka_streams_stream_task_record_e2e_latency_max")
            .into_iter()
            .reduce(f64::max),
        cache_hit: mean(values("kafka_streams_record_cache_hit_ratio_avg")),
        tasks,
        node_rates: prometheus_samples(text, "kafka_streams_stream_processor_node_process_rate")
            .into_iter()
            .map(|(labels, _)| labels["processor_node_id"].clone())
            .collect(),
    }
}

/// A figure of the panel (its `data-value`); `None` when it shows no value.
fn panel_value(dom: &str, id: &str) -> Option<f64> {
    attribute(dom, id, "data-value").and_then(|v| v.parse().ok())
}

/// Whether `shown` is `a`'s or `b`'s figure or lies between them (the page read
/// `/metrics` between the test's two reads).
fn between(shown: Option<f64>, a: Option<f64>, b: Option<f64>) -> bool {
    match (shown, a, b) {
        (None, None, _) | (None, _, None) => true,
        (Some(s), Some(a), Some(b)) => {
            let (lo, hi) = (a.min(b), a.max(b));
            s >= lo - 1e-9 * lo.abs().max(1.0) && s <= hi + 1e-9 * hi.abs().max(1.0)
        }
        (Some(s), Some(a), None) | (Some(s), None, Some(a)) => {
            (s - a).abs() <= 1e-9 * a.abs().max(1.0)
        }
        _ => false,
    }
}

/// The values of `attr` in every tag of `html` that has it, in order (entities of `&`,
/// `<`, `>`, `"` decoded).
fn all_attributes(html: &str, attr: &str) -> Vec<String> {
    html.split(&format!(" {attr}=\""))
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|v| {
            v.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&amp;", "&")
        })
        .collect()
}

/// The tags of `html` that start with `start` (up to their `>`).
fn tags<'a>(html: &'a str, start: &str) -> Vec<&'a str> {
    html.match_indices(start)
        .filter_map(|(at, _)| html[at..].find('>').map(|end| &html[at..at + end]))
        .collect()
}

/// The value of `attr` in one tag.
fn tag_attribute(tag: &str, attr: &str) -> Option<String> {
    all_attributes(tag, attr).into_iter().next()
}

/// The elements and links the topology picture must have, computed from the topology's
/// description (built here): an element per node, per store a processor uses or a global
/// table holds, per topic read or written (internal topics named with the application id);
/// a link per successor, per topic read or written and per store used.
fn expected_picture() -> (BTreeSet<String>, BTreeSet<(String, String)>, Vec<u32>) {
    let desc = activity::topology(&ActivityConfig::default())
        .expect("the topology")
        .describe();
    let topic = |t: &str| {
        format!(
            "topic:{}",
            t.replace("<application.id>", activity::APPLICATION_ID)
        )
    };
    let mut ids = BTreeSet::new();
    let mut links = BTreeSet::new();
    for s in &desc.subtopologies {
        for n in &s.nodes {
            let me = format!("node:{}", n.name);
            ids.insert(me.clone());
            for c in &n.successors {
                links.insert((me.clone(), format!("node:{c}")));
            }
            match &n.kind {
                NodeType::Source { topics } => {
                    for t in topics {
                        ids.insert(topic(t));
                        links.insert((topic(t), me.clone()));
                    }
                }
                NodeType::Sink { topic: Some(t) } => {
                    ids.insert(topic(t));
                    links.insert((me.clone(), topic(t)));
                }
                NodeType::Sink { topic: None } => {}
                NodeType::Processor { stores } => {
                    for st in stores {
                        ids.insert(format!("store:{st}"));
                        links.insert((me.clone(), format!("store:{st}")));
                    }
                }
            }
        }
    }
    for g in &desc.global_stores {
        ids.insert(format!("store:{}", g.store));
        ids.insert(topic(&g.topic));
        links.insert((topic(&g.topic), format!("store:{}", g.store)));
    }
    let subs = desc.subtopologies.iter().map(|s| s.id).collect();
    (ids, links, subs)
}

/// How many times the page says it rendered, by the count in its attribute `attribute` (0
/// without one).
fn updates(dom: &str, attribute: &str) -> u32 {
    dom.split(&format!("{attribute}=\""))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Checks the runtime panel and the topology picture of `dom` against `/metrics` as read
/// just before (`before`) and after (`after`) the page was loaded.
fn check_runtime_view(dom: &str, before: &str, after: &str, api: &Value, port: u16) {
    let (b, a) = (figures(before), figures(after));
    assert!(
        updates(dom, "data-runtime-updates") >= 1,
        "the page never rendered /metrics"
    );

    // Lag and dropped records: the figures of /metrics (settled: the same before and after).
    let lag = panel_value(dom, "m-lag");
    assert!(
        between(lag, Some(b.lag), Some(a.lag)),
        "lag: the panel shows {lag:?}, /metrics says {} then {}",
        b.lag,
        a.lag
    );
    assert_eq!(lag, Some(0.0), "every record is processed");
    assert_eq!(text(dom, "m-lag").as_deref(), Some("0"));
    let dropped = panel_value(dom, "m-dropped");
    assert!(
        between(dropped, Some(b.dropped), Some(a.dropped)),
        "dropped: the panel shows {dropped:?}, /metrics says {} then {}",
        b.dropped,
        a.dropped
    );
    // ...which is what the API reports too (dropped and skipped records).
    let api_dropped = api["status"]["dropped_records"].as_f64().unwrap_or(-1.0)
        + api["status"]["skipped_records"].as_f64().unwrap_or(-1.0);
    assert_eq!(dropped, Some(api_dropped), "dropped records: panel and API");
    let reasons: Vec<(String, f64)> = tags(dom, "<span data-reason=")
        .into_iter()
        .map(|t| {
            (
                tag_attribute(t, "data-reason").unwrap_or_default(),
                tag_attribute(t, "data-value")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN),
            )
        })
        .collect();
    let shown_reasons: BTreeSet<&str> = reasons.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(
        shown_reasons,
        a.by_reason.keys().map(String::as_str).collect(),
        "a figure per reason"
    );
    for (reason, shown) in &reasons {
        assert!(
            between(
                Some(*shown),
                b.by_reason.get(reason).copied(),
                a.by_reason.get(reason).copied()
            ),
            "dropped as {reason}: the panel shows {shown}, /metrics says {:?} then {:?}",
            b.by_reason.get(reason),
            a.by_reason.get(reason)
        );
    }
    assert_eq!(
        reasons.iter().map(|(_, v)| v).sum::<f64>(),
        dropped.unwrap_or(-1.0),
        "the reasons add up to the dropped records"
    );
    // End-to-end latency, settled: the last values stay.
    for (id, before, after) in [
        ("m-e2e-avg", b.e2e_avg, a.e2e_avg),
        ("m-e2e-max", b.e2e_max, a.e2e_max),
    ] {
        let shown = panel_value(dom, id);
        assert!(
            shown.is_some() && between(shown, before, after),
            "{id}: {shown:?} vs {before:?} / {after:?}"
        );
    }
    // The cache hit ratio is recorded only at DEBUG: "—" without it.
    let hit = text(dom, "m-cache-hit");
    match (b.cache_hit, a.cache_hit) {
        (None, None) => assert_eq!(hit.as_deref(), Some("—"), "no hit ratio in /metrics"),
        (before, after) => {
            assert!(hit.as_deref().is_some_and(|h| h.ends_with('%')), "{hit:?}");
            assert!(between(panel_value(dom, "m-cache-hit"), before, after));
        }
    }
    assert!(
        panel_value(dom, "m-process-rate").is_some(),
        "a process rate"
    );

    // The topology picture: an element per node, store and topic, a link per successor,
    // topic and store link, a frame per sub-topology.
    let start = dom
        .find("class=\"topology\"")
        .expect("the topology picture is in the page");
    let svg = &dom[start..start + dom[start..].find("</svg>").expect("the end of the picture")];
    let (ids, links, subs) = expected_picture();
    let shown_ids = all_attributes(svg, "data-id");
    let unique: BTreeSet<String> = shown_ids.iter().cloned().collect();
    assert_eq!(unique.len(), shown_ids.len(), "an element is drawn once");
    assert_eq!(unique, ids, "one element per node, store and topic");
    let shown_links: Vec<(String, String)> = tags(svg, "<path class=\"edge ")
        .into_iter()
        .map(|t| {
            (
                tag_attribute(t, "data-from").unwrap_or_default(),
                tag_attribute(t, "data-to").unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        shown_links.iter().cloned().collect::<BTreeSet<_>>(),
        links,
        "one link per successor, topic and store use"
    );
    assert_eq!(shown_links.len(), links.len(), "each link drawn once");
    // The live figures: tasks per sub-topology as /metrics has them.
    let groups = tags(svg, "<g class=\"group\" data-subtopology=");
    assert_eq!(groups.len(), subs.len(), "a frame per sub-topology");
    for g in groups {
        let sub = tag_attribute(g, "data-subtopology").unwrap_or_default();
        let shown: usize = tag_attribute(g, "data-tasks")
            .and_then(|n| n.parse().ok())
            .unwrap_or(usize::MAX);
        let (nb, na) = (
            b.tasks.get(&sub).map_or(0, BTreeSet::len),
            a.tasks.get(&sub).map_or(0, BTreeSet::len),
        );
        assert!(
            shown == nb || shown == na,
            "sub-topology {sub}: {shown} tasks, /metrics: {nb} / {na}"
        );
        assert_eq!(na, 4, "one task per partition of sub-topology {sub}");
    }
    // Per-node rates only where /metrics has them (recorded at DEBUG).
    for t in tags(svg, "<g class=\"el ") {
        let id = tag_attribute(t, "data-id").unwrap_or_default();
        let name = tag_attribute(t, "data-name").unwrap_or_default();
        let rate = tag_attribute(t, "data-rate");
        if !id.starts_with("node:") {
            assert!(rate.is_none(), "{id}: a rate on a store or topic");
        } else if !b.node_rates.contains(&name) && !a.node_rates.contains(&name) {
            assert!(rate.is_none(), "{id}: a rate without the metric");
        } else {
            assert!(rate.is_some(), "{id}: no rate although /metrics has it");
        }
    }
    // Store sizes as /api/topology/stores serves them (cached, so the same answer).
    let sizes = get_json(port, "/api/topology/stores");
    let sizes = sizes["stores"].as_object().expect("stores").clone();
    assert!(
        sizes.contains_key(activity::PAGE_VIEW_COUNTS_STORE),
        "window stores are counted: {sizes:?}"
    );
    let mut with_entries = 0;
    for t in tags(svg, "<g class=\"el store") {
        let name = tag_attribute(t, "data-name").unwrap_or_default();
        let entries = tag_attribute(t, "data-entries").and_then(|n| n.parse::<u64>().ok());
        assert_eq!(
            entries,
            sizes.get(&name).and_then(Value::as_u64),
            "store {name}"
        );
        with_entries += usize::from(entries.is_some());
    }
    assert_eq!(with_entries, sizes.len(), "every counted store is drawn");
}

/// The activity binary's command line.
fn activity_cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_activity"))
        .args(args)
        .output()
        .expect("the activity binary runs")
}

#[test]
fn the_command_line_names_bad_flags_and_lists_the_flags() {
    for (args, named) in [
        (&["--frobnicate"][..], "--frobnicate"),
        (&["--port", "x"][..], "--port"),
        (&["--rate", "-5"][..], "--rate"),
        (&["--threads", "0"][..], "--threads"),
        (&["--events"][..], "--events"),
        (&["--exit-when-done"][..], "--exit-when-done"),
    ] {
        let out = activity_cli(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(named), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error:"), "clap's error: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let out = activity_cli(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    // Every flag the docs, scripts and tests pass, on a line of its own with its meaning.
    for flag in FLAGS {
        let lines: Vec<&str> = help
            .lines()
            .filter(|l| {
                let l = l.trim_start().trim_start_matches("-h, ");
                l.split_whitespace().next() == Some(flag)
            })
            .collect();
        assert_eq!(lines.len(), 1, "{flag}:\n{help}");
        assert!(
            lines[0].split_whitespace().count() > 2,
            "{flag} has no description: {}",
            lines[0]
        );
    }
}

#[test]
fn the_dashboard_shows_what_the_api_serves() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "chromium is missing: tests/run.sh installs it (apt package `chromium`)"
        );
        eprintln!("NOTICE: skipping the browser test: no chromium (apt install chromium)");
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let app = start(&dir.path().join("data"));
    let port = app.port;
    let api = settled_dashboard(port);
    let url = format!("http://127.0.0.1:{port}/");

    let metrics_before = get(port, "/metrics").expect("GET /metrics");
    let dom = chrome(&browser, &dir.path().join("profile"), &["--dump-dom"], &url);
    let metrics_after = get(port, "/metrics").expect("GET /metrics");
    let after = get_json(port, "/api/dashboard");
    assert!(
        same_data(&api, &after),
        "the data changed while the page loaded: {api} / {after}"
    );
    assert!(
        updates(&dom, "data-updates") >= 1,
        "the page never rendered an answer of /api/dashboard"
    );

    // The KPIs: every record processed (the views and clicks, and the user profiles).
    let processed = api["status"]["processed"].as_u64().expect("processed");
    assert!(processed > EVENTS, "{processed} records processed");
    let (shown, precision) = text(&dom, "kpi-processed")
        .as_deref()
        .and_then(shown_number)
        .expect("the processed KPI is a number");
    assert!(
        (shown - processed as f64).abs() <= precision,
        "processed: the page shows {shown}, the API says {processed}"
    );
    assert_eq!(text(&dom, "kpi-lag").as_deref(), Some("0"));
    // Dropped and skipped records are shown, and add up to what the API reports.
    let dropped = api["status"]["dropped_records"]
        .as_u64()
        .expect("dropped_records")
        + api["status"]["skipped_records"]
            .as_u64()
            .expect("skipped_records");
    assert_eq!(
        text(&dom, "kpi-dropped").map(|t| t.replace(',', "")),
        Some(dropped.to_string()),
        "dropped records (the test's input keeps them below the page's 10k rounding)"
    );
    let alerts = api["alerts"].as_array().expect("alerts");
    assert_eq!(
        text(&dom, "kpi-alerts"),
        Some(alerts.len().to_string()),
        "active alerts"
    );
    assert!(
        !alerts.is_empty(),
        "the seeded bots raise alerts: {}",
        api["alerts"]
    );

    // The views chart drew the top pages' counts per window, as the API has them.
    let series = api["timeline"]["series"].as_array().expect("series");
    assert_eq!(series.len(), 5, "five top pages: {}", api["timeline"]);
    let expected_views: Vec<String> = series
        .iter()
        .map(|s| {
            let counts: Vec<String> = s["counts"]
                .as_array()
                .expect("counts")
                .iter()
                .map(ToString::to_string)
                .collect();
            format!("{}={}", s["page"].as_str().unwrap_or(""), counts.join(" "))
        })
        .collect();
    assert_eq!(
        attribute(&dom, "views-chart", "data-drawn"),
        Some(expected_views.join(";"))
    );
    // The legend names the same pages.
    for s in series {
        let page = s["page"].as_str().unwrap_or("");
        assert!(
            dom.contains(&format!(">{page}</span>")),
            "legend lacks {page}"
        );
    }

    // The click-through charts drew the API's pages and categories with their clicked,
    // resolved and pending views. The input spans less than the click window: no window is
    // settled, every chart shows the share clicked so far.
    assert_eq!(api["ctr"]["settled"], false, "{}", api["ctr"]);
    let ctr_pages = api["ctr"]["pages"].as_array().expect("ctr pages");
    assert!(!ctr_pages.is_empty(), "{}", api["ctr"]);
    assert!(
        ctr_pages
            .iter()
            .any(|p| p["pending_views"].as_i64() > Some(0)),
        "{}",
        api["ctr"]
    );
    assert_eq!(
        attribute(&dom, "ctr-chart", "data-drawn"),
        Some(drawn_ctr(ctr_pages, "page"))
    );
    let categories = api["categories"]["categories"]
        .as_array()
        .expect("categories");
    assert!(!categories.is_empty(), "{}", api["categories"]);
    assert_eq!(
        attribute(&dom, "category-chart", "data-drawn"),
        Some(drawn_ctr(categories, "category"))
    );
    // The countries chart drew the API's views per country, from the users table.
    let countries = api["countries"]["countries"].as_array().expect("countries");
    assert!(countries.len() > 3, "{}", api["countries"]);
    assert!(
        countries.iter().all(|c| c[0] != "unknown"),
        "every user has a profile: {}",
        api["countries"]
    );
    let expected_countries: Vec<String> = countries
        .iter()
        .map(|c| format!("{}={}", c[0].as_str().unwrap_or(""), c[1]))
        .collect();
    assert_eq!(
        attribute(&dom, "country-chart", "data-drawn"),
        Some(expected_countries.join(";"))
    );

    // The alerts table lists the API's alerts, newest first (up to 12 rows).
    let expected_users: Vec<String> = alerts
        .iter()
        .take(12)
        .map(|a| a["user"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(alert_users(&dom), expected_users);

    // The per-key API (one page's views per window) agrees with the dashboard's timeline.
    let top = series[0]["page"].as_str().unwrap_or("");
    let page = get_json(
        port,
        &format!(
            "/api/pages/{}/views?minutes=100000",
            top.replace('/', "%2F")
        ),
    );
    assert_eq!(page["page"].as_str(), Some(top));
    let windows: Vec<(i64, i64)> =
        serde_json::from_value(page["windows"].clone()).expect("(start, views) pairs");
    let starts = api["timeline"]["starts"].as_array().expect("starts");
    let counts = series[0]["counts"].as_array().expect("counts");
    for (start, n) in starts.iter().zip(counts) {
        let (start, n) = (start.as_i64().unwrap_or(0), n.as_i64().unwrap_or(0));
        if n > 0 {
            assert!(
                windows.contains(&(start, n)),
                "{top} {start}: {n} not in {windows:?}"
            );
        }
    }

    // The runtime panel and the topology picture.
    check_runtime_view(&dom, &metrics_before, &metrics_after, &api, port);

    // A screenshot, kept next to the test binaries (CI keeps it as an artifact).
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    chrome(
        &browser,
        &dir.path().join("profile"),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,4200",
        ],
        &url,
    );
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    // A page with five drawn charts and tables compresses to far more than a blank one.
    assert!(png.len() > 30_000, "screenshot of {} bytes", png.len());
    eprintln!("screenshot: {}", shot.display());
}
