//! The listener, the connection loop and the server's lifetime.
//!
//! A connection reads length-prefixed request frames and answers each before reading the
//! next (Kafka answers a connection's requests in order; clients pipeline them anyway). A
//! frame whose length is negative or above [`ServeConfig::max_frame_bytes`], or a request
//! that cannot be decoded, closes the connection. The server runs on its own Tokio runtime
//! in its own thread, so it works the same from synchronous and asynchronous callers.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};

use super::dispatch::{self, Reply};
use super::{ServeConfig, ServeError, data, group, txn};
use crate::LogEngine;

/// What every connection shares.
pub(crate) struct State {
    pub(crate) engine: Arc<LogEngine>,
    pub(crate) config: ServeConfig,
    /// The advertised host and port.
    pub(crate) host: String,
    pub(crate) port: i32,
    /// Notified after every append and transaction end: waiting fetches look again.
    pub(crate) appended: Notify,
    pub(crate) producers: data::Producers,
    pub(crate) groups: group::Coordinator,
    pub(crate) txns: txn::Transactions,
}

impl State {
    /// Wakes the fetches waiting for data.
    pub(crate) fn wake_fetches(&self) {
        self.appended.notify_waiters();
    }
}

/// Starts servers: see [`Server::start`].
#[derive(Debug)]
pub struct Server;

impl Server {
    /// Serves `engine` on `addr` (`127.0.0.1:0` picks a free port: see
    /// [`ServerHandle::local_addr`]) with default settings, until the handle is shut down or
    /// dropped.
    pub fn start(
        engine: Arc<LogEngine>,
        addr: impl ToSocketAddrs + std::fmt::Debug,
    ) -> Result<ServerHandle, ServeError> {
        Self::start_with(engine, addr, ServeConfig::default())
    }

    /// Serves `engine` on `addr` with `config`.
    pub fn start_with(
        engine: Arc<LogEngine>,
        addr: impl ToSocketAddrs + std::fmt::Debug,
        config: ServeConfig,
    ) -> Result<ServerHandle, ServeError> {
        let shown = format!("{addr:?}");
        let bind = |source| ServeError::Bind {
            addr: shown.clone(),
            source,
        };
        let listener = std::net::TcpListener::bind(addr).map_err(bind)?;
        listener.set_nonblocking(true).map_err(bind)?;
        let local = listener.local_addr().map_err(bind)?;
        let (host, port) = config.advertised.clone().unwrap_or_else(|| {
            let ip = if local.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                local.ip().to_string()
            };
            (ip, local.port())
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads.max(1))
            .thread_name("streams-serve-worker")
            .enable_all()
            .build()
            .map_err(ServeError::Start)?;
        let state = Arc::new(State {
            engine,
            groups: group::Coordinator::new(config.initial_rebalance_delay),
            config,
            host,
            port: i32::from(port),
            appended: Notify::new(),
            producers: data::Producers::default(),
            txns: txn::Transactions::default(),
        });
        let (stop, stopped) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("streams-serve".into())
            .spawn(move || {
                runtime.block_on(run(listener, state, stopped));
                // Connection tasks still running are dropped with the runtime.
                runtime.shutdown_timeout(Duration::from_secs(5));
            })
            .map_err(ServeError::Start)?;
        tracing::info!(%local, "serving the log engine over the Kafka protocol");
        Ok(ServerHandle {
            addr: local,
            stop,
            thread: Some(thread),
        })
    }
}

/// A running server: [`ServerHandle::shutdown`] or dropping it stops it (open connections
/// are closed, and the server lets go of its engine).
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port` for a client's `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        self.addr.to_string()
    }

    /// Stops the server and waits until it has stopped.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    /// Waits until the server stops (it stops only when shut down).
    fn stop_now(&mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the server thread panicked");
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

async fn run(
    listener: std::net::TcpListener,
    state: Arc<State>,
    mut stopped: watch::Receiver<bool>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("the server cannot listen: {e}");
            return;
        }
    };
    let ticker = tokio::spawn(tick(state.clone()));
    let maintenance = state
        .config
        .maintenance_interval
        .map(|every| tokio::spawn(maintain(state.engine.clone(), every)));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve_connection(stream, peer, state.clone()));
                }
                Err(e) => {
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = done
                    && e.is_panic()
                {
                    tracing::error!("a connection task panicked: {e}");
                }
            }
            _ = stopped.changed() => break,
        }
    }
    ticker.abort();
    if let Some(m) = maintenance {
        m.abort();
    }
    connections.shutdown().await;
}

/// Expires group members and transactions whose time ran out.
async fn tick(state: Arc<State>) {
    let mut every = tokio::time::interval(Duration::from_millis(100));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        state.groups.tick();
        txn::expire(&state);
    }
}

/// Runs retention and compaction periodically.
async fn maintain(engine: Arc<LogEngine>, every: Duration) {
    let mut timer = tokio::time::interval(every);
    timer.tick().await;
    loop {
        timer.tick().await;
        let engine = engine.clone();
        match tokio::task::spawn_blocking(move || engine.run_maintenance()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("maintenance failed: {e}"),
            Err(e) => tracing::warn!("maintenance task failed: {e}"),
        }
    }
}

/// The largest request or response buffer a connection keeps for the next one.
const KEPT_BUFFER_BYTES: usize = 32 << 20;

async fn serve_connection(stream: TcpStream, peer: SocketAddr, state: Arc<State>) {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::with_capacity(64 << 10, read);
    // One buffer per connection: a frame is split off it, and once the request is done
    // with the frame, `reserve` takes the same memory back for the next one (no fresh,
    // zeroed allocation per request).
    let mut buf = BytesMut::new();
    let mut out = BytesMut::new();
    loop {
        let mut len = [0u8; 4];
        if read.read_exact(&mut len).await.is_err() {
            return; // closed
        }
        let len = i32::from_be_bytes(len);
        let Ok(len) = usize::try_from(len) else {
            tracing::debug!(%peer, len, "negative frame length: closing the connection");
            return;
        };
        if len > state.config.max_frame_bytes {
            tracing::warn!(%peer, len, max = state.config.max_frame_bytes, "request frame too large: closing the connection");
            return;
        }
        buf.clear();
        buf.reserve(len);
        while buf.len() < len {
            let want = len - buf.len();
            match (&mut read).take(want as u64).read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        let frame = buf.split_to(len).freeze();
        if buf.capacity() > KEPT_BUFFER_BYTES {
            // A rare large request: do not keep its memory for the connection's life.
            buf = BytesMut::new();
        }
        match dispatch::handle(&state, frame, peer, &mut out).await {
            Reply::Frame(bytes) => {
                if write.write_all(&bytes).await.is_err() {
                    return;
                }
                drop(bytes);
                if out.capacity() > KEPT_BUFFER_BYTES {
                    out = BytesMut::new();
                }
            }
            Reply::Nothing => {}
            Reply::Close(why) => {
                tracing::debug!(%peer, "closing the connection: {why}");
                return;
            }
        }
    }
}
