//! A word-count app embedded in an axum service, driven through the async facade
//! (`streams_core::runtime::async_api`, docs/ASYNC.md): the streams app starts, answers
//! interactive queries and closes from async code without blocking the executor.
//!
//! Sentences posted to `POST /words` are appended to the `sentences` topic of an embedded
//! log engine; the app splits them into lower-case words, re-keys them by word (through a
//! repartition topic) and counts them in the store `counts`, which `GET /count/{word}`
//! reads with an async interactive query. State changes are printed as they happen and
//! a metrics snapshot stream keeps `GET /stats` current. Ctrl-C (or SIGTERM) stops the
//! HTTP server, then closes the app asynchronously (final commit), and exits.
//!
//! Try it:
//!
//! ```text
//! cargo run -p streams-examples --bin axum_service -- --port 3000
//! curl -X POST --data 'the quick fox jumps over the lazy dog' http://127.0.0.1:3000/words
//! curl http://127.0.0.1:3000/count/the      # {"word":"the","count":2}
//! curl http://127.0.0.1:3000/count/cat      # 404 {"error":"no count for `cat`"}
//! curl http://127.0.0.1:3000/state          # {"state":"Running"}
//! curl http://127.0.0.1:3000/stats          # {"processed":...,"lag":0,...}
//! ```
//!
//! Flags: `--port P` (default 3000; 0 picks a free port), `--data-dir DIR` (default
//! `<tmp>/rust-streams-axum-service-<port>`; counts survive a restart on the same
//! directory), `--partitions N` (of the `sentences` topic, default 2). On start it prints
//! `listening on http://127.0.0.1:<port>`; `examples/tests/axum_service.rs` tests it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use streams_core::prelude::*;
use streams_core::runtime::async_api::{AsyncError, AsyncKafkaStreams};
use streams_core::runtime::{
    KafkaStreams, LogEngine, NewRecord, StreamsState, TopicConfig, shutdown_signal,
};

/// mimalloc: glibc's malloc cost about a third of a stream thread's time (docs/PERFORMANCE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SENTENCES_TOPIC: &str = "sentences";
const COUNTS_STORE: &str = "counts";

type AppResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Args {
    port: u16,
    data_dir: Option<PathBuf>,
    partitions: u32,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        port: 3000,
        data_dir: None,
        partitions: 2,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => {
                let v = value()?;
                parsed.port = v.parse().map_err(|_| format!("--port {v}: not a port"))?;
            }
            "--data-dir" => parsed.data_dir = Some(PathBuf::from(value()?)),
            "--partitions" => {
                let v = value()?;
                parsed.partitions = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(format!("--partitions {v}: expected a number above 0"))?;
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(parsed)
}

/// The word count: sentences → lower-case words → counts per word in `counts`.
fn topology() -> Result<Topology, TopologyError> {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>(SENTENCES_TOPIC)
        .flat_map_values(|s: String| {
            s.split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .select_key(|_, word| word.clone())
        .group_by_key()
        .count_with(Materialized::as_(COUNTS_STORE));
    builder.build()
}

/// What the handlers share.
struct Service {
    app: AsyncKafkaStreams,
    engine: Arc<LogEngine>,
    partitions: u32,
    /// Numbers the sentences posted (their keys).
    next_sentence: AtomicU64,
    /// The last metrics snapshot (`GET /stats`).
    stats: Mutex<serde_json::Value>,
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

/// A query failure: the store is not there while the app starts or rebalances.
fn query_error(e: &AsyncError) -> Response {
    match e {
        AsyncError::Streams(StreamsError::StoreAccess { .. }) | AsyncError::Closed => {
            error(StatusCode::SERVICE_UNAVAILABLE, e)
        }
        _ => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// `GET /count/{word}`: an async interactive query of `counts`.
async fn count(State(service): State<Arc<Service>>, Path(word): Path<String>) -> Response {
    let word = word.to_lowercase();
    match service
        .app
        .get::<String, i64>(COUNTS_STORE, word.clone())
        .await
    {
        Ok(Some(n)) => Json(json!({ "word": word, "count": n })).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no count for `{word}`")),
        Err(e) => query_error(&e),
    }
}

/// `GET /state`.
async fn state(State(service): State<Arc<Service>>) -> Json<serde_json::Value> {
    Json(json!({ "state": format!("{:?}", service.app.state()) }))
}

/// `GET /stats`: from the metrics snapshot stream.
async fn stats(State(service): State<Arc<Service>>) -> Json<serde_json::Value> {
    let stats = service
        .stats
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Json(stats)
}

/// `POST /words`: appends the body as one sentence (the log append runs on the blocking
/// pool: it writes a file).
async fn words(State(service): State<Arc<Service>>, body: String) -> Response {
    let n = body.split_whitespace().count();
    if n == 0 {
        return error(StatusCode::BAD_REQUEST, "no words in the body");
    }
    // Keyed by a sequence number (the key does not matter: the app re-keys by word).
    let seq = service.next_sentence.fetch_add(1, Ordering::Relaxed);
    let key = format!("sentence-{seq}");
    let partition =
        streams_core::partitioner::partition_for_key(key.as_bytes(), service.partitions);
    let engine = service.engine.clone();
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let appended = tokio::task::spawn_blocking(move || {
        let record = NewRecord {
            timestamp,
            key: Some(key.into_bytes()),
            value: Some(body.into_bytes()),
            headers: vec![],
        };
        engine.append(SENTENCES_TOPIC, partition, &[record])
    })
    .await;
    match appended {
        Ok(Ok(_)) => (StatusCode::ACCEPTED, Json(json!({ "words": n }))).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("axum_service: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args).await {
        eprintln!("axum_service: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> AppResult<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    let local: SocketAddr = listener.local_addr()?;
    let data_dir = args.data_dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("rust-streams-axum-service-{}", local.port()))
    });
    let partitions = args.partitions;
    // Opening the engine and creating the topic touch the disk: not on the executor.
    let (engine, app) = tokio::task::spawn_blocking(move || -> AppResult<_> {
        std::fs::create_dir_all(&data_dir)?;
        let engine = Arc::new(LogEngine::open(&data_dir.join("log"))?);
        if !engine.topics().iter().any(|(t, _)| t == SENTENCES_TOPIC) {
            engine.create_topic(SENTENCES_TOPIC, TopicConfig::new(partitions))?;
        }
        let config = StreamsConfig::new("axum-word-count")
            .with_state_dir(data_dir.join("state"))
            .with_commit_interval(Duration::from_millis(200));
        let streams = KafkaStreams::new(topology()?, config, engine.clone())?;
        Ok((engine, AsyncKafkaStreams::new(streams)))
    })
    .await??;
    let partitions = engine
        .topics()
        .into_iter()
        .find(|(t, _)| t == SENTENCES_TOPIC)
        .map_or(partitions, |(_, c)| c.partitions);

    // State changes, printed; a failed app stops the service.
    let (failed_tx, failed) = tokio::sync::oneshot::channel::<()>();
    let mut changes = app.state_changes();
    let watcher = tokio::spawn(async move {
        let mut failed_tx = Some(failed_tx);
        while let Some((new, old)) = changes.next_change().await {
            println!("state: {old:?} -> {new:?}");
            if new == StreamsState::Error
                && let Some(tx) = failed_tx.take()
            {
                let _ = tx.send(());
            }
        }
    });

    app.start().await?;

    let service = Arc::new(Service {
        app: app.clone(),
        engine,
        partitions,
        next_sentence: AtomicU64::new(0),
        stats: Mutex::new(json!({})),
    });
    // The metrics snapshot stream keeps `/stats` current; it ends when the app closes.
    let sampler = {
        let service = service.clone();
        let mut snapshots = app.metrics_snapshots(Duration::from_secs(1));
        tokio::spawn(async move {
            while let Some(m) = snapshots.next_snapshot().await {
                let total = m.total();
                *service.stats.lock().unwrap_or_else(|e| e.into_inner()) = json!({
                    "processed": total.processed,
                    "lag": m.lag(),
                    "threads": m.threads.len(),
                });
            }
        })
    };

    let router = axum::Router::new()
        .route("/count/{word}", get(count))
        .route("/state", get(state))
        .route("/stats", get(stats))
        .route("/words", post(words))
        .with_state(service);
    println!("listening on http://{local}");
    let stop = async {
        tokio::select! {
            r = shutdown_signal() => {
                if let Err(e) = r {
                    eprintln!("axum_service: {e}");
                }
            }
            _ = failed => eprintln!("axum_service: the streams app failed"),
        }
    };
    axum::serve(listener, router)
        .with_graceful_shutdown(stop)
        .await?;
    println!("stopping...");
    let closed = app.close().await;
    let _ = sampler.await;
    let _ = watcher.await;
    closed?;
    println!("stopped");
    Ok(())
}
