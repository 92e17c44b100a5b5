//! The activity app's HTTP API under random requests: the router of `activity::web` served
//! over a real app instance (embedded engine, seeded input, processed before the requests
//! start), and requests over the loopback with random paths (the known routes with random
//! segments: percent-encoded, invalid UTF-8, unicode, very long; unknown routes), random
//! query parameters with random values (huge, negative, non-numeric, empty, unicode, given
//! twice) and a few other methods. Every answer must be the one the API documents for the
//! request (200, 400, 404, 405 or 414: never a 5xx, never a dropped connection), errors
//! must carry a JSON reason, and the server must still answer a normal request at the end.
//!
//! A second test points the instance's `application.server` at a fake instance that
//! answers too much or not at all: forwarded requests are answered 502 and 503 with a
//! reason, merged answers leave it out.
//!
//! `HTTP_FUZZ_SEED=<n>` replays a run; `HTTP_FUZZ_REQUESTS=<n>` changes the number of
//! random requests (default 500).

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use streams_core::config::StreamsConfig;
use streams_core::query::HostInfo;
use streams_core::runtime::{KafkaStreams, LogEngine, StreamsState};
use streams_examples::activity::generator::{
    ActivityGenerator, GeneratorConfig, append_events, create_input_topics,
};
use streams_examples::activity::web::{
    self, MAX_PEER_RESPONSE, MAX_RESULTS, MAX_WINDOW_START, OPEN_END, Stats, WebState,
};
use streams_examples::activity::{self, ActivityConfig, ActivityEvent};

const MINUTE: i64 = 60_000;
const PARTITIONS: u32 = 2;
/// hyper answers 414 to a request target longer than this.
const MAX_URI_LEN: usize = 65_534;

/// An app instance with the API served on the loopback; stopped when dropped.
struct Served {
    port: u16,
    streams: Arc<KafkaStreams>,
    /// Window starts and page names the input has.
    windows: Vec<i64>,
    pages: Vec<String>,
    users: Vec<String>,
    runtime: Option<tokio::runtime::Runtime>,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

/// Starts an instance over 2 000 seeded events of the last half hour, waits until they are
/// processed and serves its API. `application.server` is the API's address, or `advertised`.
fn serve(advertised: Option<HostInfo>) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(LogEngine::open(&dir.path().join("log")).unwrap());
    create_input_topics(&engine, PARTITIONS).unwrap();
    let start_ms = web::now_ms() - 30 * MINUTE;
    let generator = ActivityGenerator::new(GeneratorConfig {
        seed: 17,
        users: 300,
        pages: 40,
        start_ms,
        events_per_second: 2.0,
        ..GeneratorConfig::default()
    });
    append_events(&engine, generator.catalogue(), PARTITIONS).unwrap();
    let events: Vec<ActivityEvent> = generator.take(2_000).collect();
    let mut windows: Vec<i64> = events
        .iter()
        .map(|e| e.ts().div_euclid(MINUTE) * MINUTE)
        .collect();
    windows.dedup();
    let mut pages: Vec<String> = events.iter().map(|e| e.page().to_string()).collect();
    pages.sort();
    pages.dedup();
    let mut users: Vec<String> = events.iter().map(|e| e.user_id().to_string()).collect();
    users.sort();
    users.dedup();
    append_events(&engine, events, PARTITIONS).unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let me = HostInfo {
        host: "127.0.0.1".into(),
        port,
    };
    let config = StreamsConfig::new(activity::APPLICATION_ID)
        .with_state_dir(dir.path().join("state"))
        .with_commit_interval(Duration::from_millis(100))
        .with_application_server(advertised.unwrap_or_else(|| me.clone()).to_string());
    let topology = activity::topology(&ActivityConfig::default()).unwrap();
    let mut streams = KafkaStreams::new(topology, config, engine).unwrap();
    streams.start().unwrap();
    streams
        .wait_until_caught_up(Duration::from_secs(60))
        .unwrap();
    assert_eq!(streams.state(), StreamsState::Running);
    let streams = Arc::new(streams);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let router = web::router(Arc::new(WebState {
        streams: streams.clone(),
        stats: Arc::new(Stats::default()),
        me: Some(me),
    }));
    runtime.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        axum::serve(listener, router).await.unwrap();
    });
    Served {
        port,
        streams,
        windows,
        pages,
        users,
        runtime: Some(runtime),
        _dir: dir,
    }
}

/// An answer: status and body.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", shorten(&self.body)))
    }
}

fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(300).collect();
    if out.len() < s.len() {
        out.push_str("...");
    }
    out
}

/// Sends `method target` (the target as is, bytes included) with `headers` and reads the
/// whole answer; `Err` when the connection breaks or closes without an answer.
fn send(port: u16, method: &str, target: &[u8], headers: &str) -> Result<Answer, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let mut request = format!("{method} ").into_bytes();
    request.extend_from_slice(target);
    request.extend_from_slice(
        format!(" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{headers}\r\n").as_bytes(),
    );
    s.write_all(&request).map_err(|e| format!("writing: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("reading: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no answer (connection closed after {} bytes)", raw.len()))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line: {}", head.lines().next().unwrap_or("")))?;
    Ok(Answer {
        status,
        body: body.to_string(),
    })
}

fn get(port: u16, target: &str) -> Answer {
    send(port, "GET", target.as_bytes(), "").unwrap_or_else(|e| panic!("GET {target}: {e}"))
}

/// SplitMix64: a seeded, dependency-free generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Percent-encodes every byte but the unreserved ones (RFC 3986), so that decoding gives
/// back exactly `bytes`.
fn encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Random bytes for a path segment or a parameter value: the app's own names, ASCII,
/// unicode, arbitrary bytes (invalid UTF-8 included), long or very long.
fn random_bytes(rng: &mut Rng, served: &Served) -> Vec<u8> {
    match rng.below(10) {
        0 | 1 => rng.pick(&served.pages).clone().into_bytes(),
        2 => rng.pick(&served.users).clone().into_bytes(),
        3 => {
            let n = rng.below(20);
            (0..n).map(|_| b'a' + rng.below(26) as u8).collect()
        }
        4 => rng
            .pick(&[
                "é",
                "日本語",
                "🙂",
                "\u{0}",
                "\u{feff}",
                "٣",
                "Ω≈ç√",
                "a b+c",
                "..",
            ])
            .as_bytes()
            .to_vec(),
        5 => {
            let n = rng.below(40);
            (0..n).map(|_| rng.next() as u8).collect()
        }
        6 => vec![b'x'; 1_000 + rng.below(9_000)],
        7 => {
            // Past hyper's URI limit once encoded now and then.
            let n = if rng.chance(30) { 70_000 } else { 20_000 };
            vec![b'/'; n / 3]
        }
        8 => Vec::new(),
        _ => format!("{}", rng.next()).into_bytes(),
    }
}

/// A random value for a numeric parameter; mostly edge cases, a fair share valid.
fn random_value(rng: &mut Rng, served: &Served, name: &str) -> Vec<u8> {
    let valid = match name {
        "window" => {
            let w = if rng.chance(70) {
                *rng.pick(&served.windows)
            } else {
                MINUTE * (rng.next() % (MAX_WINDOW_START as u64 / MINUTE as u64 + 1)) as i64
            };
            w.to_string()
        }
        "n" | "limit" => (1 + rng.below(MAX_RESULTS)).to_string(),
        "minutes" => (1 + rng.below(3_000)).to_string(),
        "from" | "to" => (rng.next() % (OPEN_END as u64)).to_string(),
        _ => "1".into(),
    };
    let special: &[&str] = &[
        "9223372036854775807",
        "-9223372036854775808",
        "9223372036854775808",
        "18446744073709551616",
        "99999999999999999999999999999999",
        "-1",
        "0",
        "1",
        "1000",
        "1001",
        "60000",
        "60001",
        "-60000",
        "253402300740000",
        "253402300800000",
        "4611686018427387903",
        "4611686018427387904",
        "",
        "abc",
        "1e3",
        "0x10",
        "1.5",
        "+5",
        " 5",
        "5 ",
        "١٢٣",
        "NaN",
        "null",
        "[]",
    ];
    match rng.below(10) {
        0..=3 => valid.into_bytes(),
        4..=7 => rng.pick(special).as_bytes().to_vec(),
        8 => {
            // A long number.
            let digits = 1 + rng.below(5_000);
            (0..digits).map(|_| b'0' + rng.below(10) as u8).collect()
        }
        _ => random_bytes(rng, served),
    }
}

/// The routes, with the query parameters each one reads.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Route {
    Index,
    Js,
    Css,
    Status,
    Dashboard,
    TopPages,
    Ctr,
    Countries,
    Categories,
    PageViews,
    UserSessions,
    Alerts,
    LocalWindows,
    LocalAlerts,
}

const ROUTES: [Route; 14] = [
    Route::Index,
    Route::Js,
    Route::Css,
    Route::Status,
    Route::Dashboard,
    Route::TopPages,
    Route::Ctr,
    Route::Countries,
    Route::Categories,
    Route::PageViews,
    Route::UserSessions,
    Route::Alerts,
    Route::LocalWindows,
    Route::LocalAlerts,
];

impl Route {
    fn params(self) -> &'static [&'static str] {
        match self {
            Route::TopPages | Route::Ctr | Route::Countries | Route::Categories => &["window", "n"],
            Route::PageViews => &["minutes"],
            Route::Alerts => &["limit"],
            Route::LocalWindows => &["from", "to"],
            _ => &[],
        }
    }

    fn is_api(self) -> bool {
        !matches!(self, Route::Index | Route::Js | Route::Css)
    }
}

/// Whether the API accepts `values` (the decoded values of `name`, in order), by the rules
/// `activity::web` documents.
fn accepted(name: &str, values: &[String]) -> bool {
    let [value] = values else {
        return values.is_empty();
    };
    let Ok(v) = value.parse::<i64>() else {
        return false;
    };
    match name {
        "window" => (0..=MAX_WINDOW_START).contains(&v) && v % MINUTE == 0,
        "n" | "limit" => (1..=MAX_RESULTS as i64).contains(&v),
        "minutes" => v >= 1,
        "from" | "to" => (0..=OPEN_END).contains(&v),
        _ => true,
    }
}

/// What the API must answer.
#[derive(Debug, PartialEq)]
enum Expect {
    /// This status.
    Status(u16),
    /// Some 2xx or 4xx (the request is one the model does not predict exactly).
    Any,
}

/// One random request: method, target and the expected answer.
fn random_request(
    rng: &mut Rng,
    served: &Served,
) -> (&'static str, Vec<u8>, Expect, Option<Route>) {
    let method = match rng.below(20) {
        0 => "POST",
        1 => "DELETE",
        2 => "HEAD",
        _ => "GET",
    };
    let route = if rng.chance(85) {
        Some(*rng.pick(&ROUTES))
    } else {
        None
    };
    let mut segment_ok = true;
    let mut path = match route {
        Some(Route::Index) => "/".to_string(),
        Some(Route::Js) => "/dashboard.js".into(),
        Some(Route::Css) => "/dashboard.css".into(),
        Some(Route::Status) => "/api/status".into(),
        Some(Route::Dashboard) => "/api/dashboard".into(),
        Some(Route::TopPages) => "/api/top-pages".into(),
        Some(Route::Ctr) => "/api/ctr".into(),
        Some(Route::Countries) => "/api/countries".into(),
        Some(Route::Categories) => "/api/categories".into(),
        Some(Route::Alerts) => "/api/alerts".into(),
        Some(Route::LocalWindows) => "/api/local/windows".into(),
        Some(Route::LocalAlerts) => "/api/local/alerts".into(),
        Some(r @ (Route::PageViews | Route::UserSessions)) => {
            // Empty too: "/api/pages//views" asks about the page "".
            let bytes = random_bytes(rng, served);
            segment_ok = std::str::from_utf8(&bytes).is_ok();
            if r == Route::PageViews {
                format!("/api/pages/{}/views", encode(&bytes))
            } else {
                format!("/api/users/{}/sessions", encode(&bytes))
            }
        }
        None => {
            let segment = encode(&random_bytes(rng, served));
            match rng.below(5) {
                0 => format!("/api/no-{segment}"),
                1 => format!("/no-{segment}"),
                2 => "/api/top-pages/".into(),
                3 => format!("/api/pages/{segment}"),
                _ => format!("/api/users/u/sessions/{segment}"),
            }
        }
    };
    // Query parameters: the route's own, others, repeated now and then.
    let mut pairs: Vec<(String, Vec<u8>)> = Vec::new();
    let own = route.map_or(&[][..], Route::params);
    let names: Vec<&str> = own
        .iter()
        .copied()
        .chain(["n", "window", "limit", "minutes", "x", "", "窓", "window[]"])
        .collect();
    for _ in 0..rng.below(5) {
        let name = if !own.is_empty() && rng.chance(60) {
            *rng.pick(own)
        } else {
            *rng.pick(&names)
        };
        let value = random_value(rng, served, name);
        pairs.push((name.to_string(), value));
    }
    // /api/local/windows needs both bounds: give valid ones mostly.
    if route == Some(Route::LocalWindows) && rng.chance(70) {
        let from = served.windows[0] - 60 * MINUTE;
        pairs.retain(|(n, _)| n != "from" && n != "to");
        pairs.push(("from".into(), from.to_string().into_bytes()));
        pairs.push(("to".into(), OPEN_END.to_string().into_bytes()));
    }
    let mut raw_query = false;
    if !pairs.is_empty() {
        path.push('?');
        let query: Vec<String> = pairs
            .iter()
            .map(|(n, v)| format!("{}={}", encode(n.as_bytes()), encode(v)))
            .collect();
        path.push_str(&query.join("&"));
    }
    if rng.chance(3) {
        // Unencoded odds and ends that are still a valid request target.
        path.push_str(if pairs.is_empty() { "?" } else { "&" });
        let extra: &&str = rng.pick(&["%zz", "a=%", "+=+", ";;", "&&", "n=%FF", "?=?"]);
        path.push_str(extra);
        raw_query = true;
    }

    let mut target = path.into_bytes();
    let mut malformed_target = false;
    if rng.chance(2) {
        // Raw bytes a request target may not hold: hyper rejects the request.
        let odd: [&[u8]; 3] = [b"\xff\xfe", b"\x7f", "é".as_bytes()];
        let odd: &&[u8] = rng.pick(&odd);
        target.extend_from_slice(odd);
        malformed_target = true;
    }

    let expect = if malformed_target {
        Expect::Any
    } else if target.len() > MAX_URI_LEN {
        Expect::Status(414)
    } else if let Some(route) = route {
        if method == "POST" || method == "DELETE" {
            Expect::Status(405)
        } else if raw_query {
            Expect::Any
        } else if !segment_ok {
            Expect::Status(400)
        } else {
            let decoded: Vec<(String, String)> = pairs
                .iter()
                .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned()))
                .collect();
            let values = |name: &str| -> Vec<String> {
                decoded
                    .iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .collect()
            };
            let mut ok = route.params().iter().all(|n| accepted(n, &values(n)));
            if route == Route::LocalWindows {
                let (from, to) = (values("from"), values("to"));
                ok &= match (from.as_slice(), to.as_slice()) {
                    ([f], [t]) => f.parse::<i64>().ok() <= t.parse::<i64>().ok(),
                    _ => false,
                };
            }
            Expect::Status(if ok { 200 } else { 400 })
        }
    } else {
        Expect::Status(404)
    };
    (method, target, expect, route)
}

#[test]
fn random_requests_never_fail_the_server() {
    let started = Instant::now();
    let served = serve(None);
    let port = served.port;
    eprintln!("app ready in {:?}", started.elapsed());

    // The requests.
    for route in [
        "/api/top-pages",
        "/api/ctr",
        "/api/countries",
        "/api/categories",
    ] {
        let a = get(port, &format!("{route}?window=9223372036854775807"));
        assert_eq!(a.status, 400, "{route}: {}", a.body);
        let v = a.json();
        assert_eq!(v["parameter"], "window", "{v}");
        assert!(
            v["error"].as_str().unwrap().contains("multiple of 60000"),
            "{v}"
        );
    }

    let seed: u64 = std::env::var("HTTP_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_fa11);
    let requests: usize = std::env::var("HTTP_FUZZ_REQUESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    eprintln!("HTTP_FUZZ_SEED={seed} HTTP_FUZZ_REQUESTS={requests}");
    let mut rng = Rng(seed);
    let mut by_status: std::collections::BTreeMap<u16, usize> = Default::default();
    for i in 0..requests {
        let (method, target, expect, route) = random_request(&mut rng, &served);
        let shown = shorten(&String::from_utf8_lossy(&target));
        let what = format!("request {i} (HTTP_FUZZ_SEED={seed}): {method} {shown}");
        let a = send(port, method, &target, "").unwrap_or_else(|e| panic!("{what}: {e}"));
        *by_status.entry(a.status).or_default() += 1;
        let predicted = match expect {
            Expect::Status(s) => {
                assert_eq!(a.status, s, "{what}: {}", shorten(&a.body));
                true
            }
            Expect::Any => {
                assert!(
                    (200..300).contains(&a.status) || (400..500).contains(&a.status),
                    "{what}: {} {}",
                    a.status,
                    shorten(&a.body)
                );
                false
            }
        };
        // The API's own answers are JSON: results, or an error with a reason.
        let api = route.is_some_and(Route::is_api) || a.status == 404;
        if predicted && method == "GET" && api && matches!(a.status, 200 | 400 | 404) {
            let v: Value = serde_json::from_str(&a.body)
                .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", shorten(&a.body)));
            if a.status != 200 {
                assert!(
                    v["error"].as_str().is_some_and(|e| !e.is_empty()),
                    "{what}: {v}"
                );
                assert!(
                    a.body.len() < 1_000,
                    "{what}: a long error: {}",
                    shorten(&a.body)
                );
            }
        }
    }
    eprintln!("answers by status: {by_status:?}");
    assert!(by_status.get(&200).copied().unwrap_or(0) > requests / 5);
    assert!(by_status.get(&400).copied().unwrap_or(0) > requests / 10);

    // Still serving, with the data: the latest window by default (the input may end with
    // a single view in it), any other on demand.
    let latest = get(port, "/api/top-pages");
    assert_eq!(latest.status, 200, "{}", latest.body);
    let latest = latest.json();
    assert_eq!(
        latest["window_start"],
        served.windows.last().copied().unwrap(),
        "{latest}"
    );
    let window = served.windows[served.windows.len() / 2];
    let top = get(port, &format!("/api/top-pages?window={window}&n=3"));
    assert_eq!(top.status, 200, "{}", top.body);
    let top = top.json();
    assert_eq!(top["pages"].as_array().map(Vec::len), Some(3), "{top}");
    let ctr = get(port, &format!("/api/ctr?window={window}&n={MAX_RESULTS}"));
    assert_eq!(ctr.status, 200, "{}", ctr.body);
    assert!(!ctr.json()["pages"].as_array().unwrap().is_empty());
    let countries = get(port, &format!("/api/countries?window={window}"));
    assert_eq!(countries.status, 200, "{}", countries.body);
    assert!(!countries.json()["countries"].as_array().unwrap().is_empty());
    let categories = get(port, "/api/categories");
    assert_eq!(categories.status, 200, "{}", categories.body);
    assert!(
        !categories.json()["categories"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let page = encode(served.pages[0].as_bytes());
    let views = get(port, &format!("/api/pages/{page}/views?minutes=1000000"));
    assert_eq!(views.status, 200, "{}", views.body);
    assert!(!views.json()["windows"].as_array().unwrap().is_empty());
    assert_eq!(get(port, "/api/dashboard").status, 200);
    assert_eq!(served.streams.state(), StreamsState::Running);
    eprintln!("done in {:?}", started.elapsed());
}

/// A fake instance: answers every connection with `answer` until stopped (then its port
/// refuses connections).
struct FakePeer {
    host: HostInfo,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakePeer {
    fn start(answer: Vec<u8>) -> FakePeer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let host = HostInfo {
            host: "127.0.0.1".into(),
            port: listener.local_addr().unwrap().port(),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let answer = Arc::new(answer);
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let Ok((mut s, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    let answer = answer.clone();
                    std::thread::spawn(move || {
                        let _ = s.set_nonblocking(false);
                        let mut request = Vec::new();
                        let mut buf = [0u8; 4096];
                        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                            match s.read(&mut buf) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => request.extend_from_slice(&buf[..n]),
                            }
                        }
                        // The reader stops early: writing then fails, which is fine.
                        let _ = s.write_all(&answer);
                    });
                }
            })
        };
        FakePeer {
            host,
            stop,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for FakePeer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn answers_of_other_instances_are_bounded() {
    // More than the limit, in a valid HTTP answer.
    let body = vec![b' '; MAX_PEER_RESPONSE + 1];
    let mut answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    let mut peer = FakePeer::start(answer);
    // The instance believes the fake owns every key and holds part of every merged answer.
    let served = serve(Some(peer.host.clone()));
    let port = served.port;
    let page = encode(served.pages[0].as_bytes());
    let user = encode(served.users[0].as_bytes());

    for target in [
        format!("/api/pages/{page}/views"),
        format!("/api/users/{user}/sessions"),
    ] {
        let a = get(port, &target);
        assert_eq!(a.status, 502, "{target}: {}", a.body);
        let error = a.json()["error"].as_str().unwrap().to_string();
        assert!(
            error.contains(&format!("larger than {MAX_PEER_RESPONSE} bytes")),
            "{target}: {error}"
        );
    }
    // Bad parameters are answered here, before forwarding.
    let a = get(port, &format!("/api/pages/{page}/views?minutes=0"));
    assert_eq!(a.status, 400, "{}", a.body);
    // Answered here when forwarded already.
    let a = send(
        port,
        "GET",
        format!("/api/pages/{page}/views").as_bytes(),
        "x-activity-forwarded: 1\r\n",
    )
    .unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    // Merged answers leave the fake out.
    for target in [
        "/api/top-pages",
        "/api/ctr",
        "/api/countries",
        "/api/categories",
        "/api/alerts",
        "/api/dashboard",
    ] {
        let a = get(port, target);
        assert_eq!(a.status, 200, "{target}: {}", a.body);
    }
    let top = get(port, "/api/top-pages").json();
    assert!(!top["pages"].as_array().unwrap().is_empty(), "{top}");

    // Gone: forwarded requests are unavailable, merged answers still come.
    peer.stop();
    let a = get(port, &format!("/api/pages/{page}/views"));
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(
        a.json()["error"].as_str().unwrap().contains("instance"),
        "{}",
        a.body
    );
    assert_eq!(get(port, "/api/top-pages").status, 200);
}
