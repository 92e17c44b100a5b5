//! The dashboard in a real browser: the activity app runs (as its own process, on the
//! embedded engine) over a bounded, seeded input; headless Chromium loads the dashboard; the
//! test checks that the page rendered the data the API serves (KPIs, what each chart drew,
//! the alerts table; views per country and click-through rates per page and category, the
//! joins' outputs) and takes a screenshot.
//!
//! Needs Debian's `chromium` (or `STREAMS_CHROMIUM=/path/to/chrome`). Without it the test
//! prints a notice and passes, except under `CI=true`, where a missing browser fails.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{App, get, get_json};
use serde_json::Value;

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

    let dom = chrome(&browser, &dir.path().join("profile"), &["--dump-dom"], &url);
    let after = get_json(port, "/api/dashboard");
    assert!(
        same_data(&api, &after),
        "the data changed while the page loaded: {api} / {after}"
    );
    let updates: u32 = dom
        .split("data-updates=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        updates >= 1,
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

    // A screenshot, kept next to the test binaries (CI keeps it as an artifact).
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    chrome(
        &browser,
        &dir.path().join("profile"),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,1500",
        ],
        &url,
    );
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    // A page with five drawn charts and tables compresses to far more than a blank one.
    assert!(png.len() > 30_000, "screenshot of {} bytes", png.len());
    eprintln!("screenshot: {}", shot.display());
}
