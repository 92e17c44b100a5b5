//! An async facade over [`KafkaStreams`] for tokio apps (issue #21): start, close and the
//! waits as `async fn`s that never block the executor, state changes and metric snapshots
//! as [`futures::Stream`]s, and interactive queries callable from an async handler.
//!
//! [`AsyncKafkaStreams`] owns the instance and is cheap to clone (every clone is the same
//! instance), so an HTTP server's handlers can each hold one. Where the work runs:
//!
//! | operation | where |
//! | --- | --- |
//! | [`start`](AsyncKafkaStreams::start), [`close`](AsyncKafkaStreams::close) | the blocking pool (`spawn_blocking`): they create topics, open stores, join threads |
//! | [`query`](AsyncKafkaStreams::query), [`get`](AsyncKafkaStreams::get) | the blocking pool: a store read may hit the disk (RocksDB) and waits while a stream thread holds the store for a commit |
//! | [`wait_until_running`](AsyncKafkaStreams::wait_until_running) | the executor, woken by the state listener |
//! | [`wait_until_caught_up`](AsyncKafkaStreams::wait_until_caught_up) | the executor, checking every 5 ms (each check holds a lock for microseconds) |
//! | [`state`](AsyncKafkaStreams::state), [`state_changes`](AsyncKafkaStreams::state_changes), [`metrics_snapshots`](AsyncKafkaStreams::metrics_snapshots) | the executor: each reads or copies a small value under a short lock |
//!
//! Everything needs a tokio runtime with the time driver (`tokio::main` and
//! `tokio::test` have it); a current-thread runtime is enough.
//!
//! ```
//! use std::time::Duration;
//! use streams_core::prelude::*;
//! use streams_core::runtime::async_api::AsyncKafkaStreams;
//! use streams_core::runtime::{KafkaStreams, LogEngine, NewRecord, TopicConfig};
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let dir = tempfile::tempdir()?;
//!     let engine = std::sync::Arc::new(LogEngine::open(&dir.path().join("log"))?);
//!     engine.create_topic("words", TopicConfig::new(1))?;
//!     for w in ["a", "b", "a"] {
//!         let record = NewRecord { timestamp: 1, key: Some(w.into()), value: Some(w.into()), headers: vec![] };
//!         engine.append("words", 0, &[record])?;
//!     }
//!     let builder = StreamsBuilder::new();
//!     builder.stream::<String, String>("words").group_by_key().count_with(Materialized::as_("counts"));
//!     let config = StreamsConfig::new("doc-async").with_state_dir(dir.path().join("state"));
//!     let app = AsyncKafkaStreams::new(KafkaStreams::new(builder.build()?, config, engine)?);
//!
//!     let mut changes = app.state_changes();
//!     app.start().await?;
//!     app.wait_until_caught_up(Duration::from_secs(30)).await?;
//!     assert_eq!(app.get::<String, i64>("counts", "a".to_string()).await?, Some(2));
//!     app.close().await?;
//!     // The stream ends after the last state change.
//!     let mut last = None;
//!     while let Some((new, _old)) = changes.next_change().await {
//!         last = Some(new);
//!     }
//!     assert_eq!(last, Some(streams_core::runtime::StreamsState::NotRunning));
//!     Ok(())
//! }
//! ```

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::channel::mpsc;
use futures::stream::{BoxStream, Stream, StreamExt};
use tokio::sync::{RwLock, watch};

use super::{KafkaStreams, Shared, StreamsMetrics, StreamsState};
use crate::error::StreamsError;
use crate::sync::lock;

/// How often [`AsyncKafkaStreams::wait_until_caught_up`] checks (as the blocking form does).
const CATCH_UP_CHECK: Duration = Duration::from_millis(5);

/// Errors of the async facade.
///
/// ```
/// use streams_core::runtime::async_api::AsyncError;
/// use streams_core::prelude::StreamsError;
///
/// let e: AsyncError = StreamsError::Internal("x".into()).into();
/// assert!(matches!(e, AsyncError::Streams(StreamsError::Internal(_))));
/// assert!(AsyncError::Closed.to_string().contains("closed"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AsyncError {
    /// What the runtime reported: a failed start or close, a query on a store that is not
    /// there, a timeout ([`StreamsError::Timeout`]), a failed stream thread
    /// ([`StreamsError::Stopped`]).
    #[error(transparent)]
    Streams(#[from] StreamsError),
    /// The instance was closed (by [`AsyncKafkaStreams::close`]) or is closing, so it will
    /// never run or answer again.
    #[error("the streams app is closed")]
    Closed,
    /// The blocking task doing `operation` did not finish: it panicked, or the tokio
    /// runtime is shutting down.
    #[error("{operation} did not complete on the blocking pool: {detail}")]
    BlockingTask {
        /// What the task did.
        operation: &'static str,
        /// What tokio said.
        detail: String,
    },
}

/// Results of the async facade.
///
/// ```
/// use streams_core::runtime::async_api::{AsyncError, AsyncResult};
///
/// let r: AsyncResult<()> = Err(AsyncError::Closed);
/// assert!(r.is_err());
/// ```
pub type AsyncResult<T> = Result<T, AsyncError>;

/// A state change: (new state, old state), in the order of
/// [`KafkaStreams::set_state_listener`]'s arguments.
type Change = (StreamsState, StreamsState);

/// The subscribers of the state changes, fed by the instance's state listener.
struct Hub {
    subscribers: Mutex<Subscribers>,
    /// The instance's state after the last change, for the waits.
    state: watch::Sender<StreamsState>,
}

struct Subscribers {
    senders: Vec<mpsc::UnboundedSender<Change>>,
    /// A terminal state was reached: no change comes any more.
    ended: bool,
}

fn terminal(state: StreamsState) -> bool {
    matches!(state, StreamsState::NotRunning | StreamsState::Error)
}

impl Hub {
    fn publish(&self, new: StreamsState, old: StreamsState, current: StreamsState) {
        {
            let mut subs = lock(&self.subscribers);
            if !subs.ended {
                subs.senders
                    .retain(|tx| tx.unbounded_send((new, old)).is_ok());
                if terminal(new) {
                    subs.ended = true;
                    subs.senders.clear();
                }
            }
        }
        self.state.send_replace(current);
    }
}

/// What every clone of an [`AsyncKafkaStreams`] shares.
struct Inner {
    /// The instance; `None` once closed. Start and close take it exclusively, queries and
    /// metric snapshots share it.
    streams: Arc<RwLock<Option<KafkaStreams>>>,
    /// Closes one at a time, so that a second close returns once the first is done.
    closing: tokio::sync::Mutex<()>,
    shared: Arc<Shared>,
    hub: Arc<Hub>,
    application_id: String,
}

impl Drop for Inner {
    /// Dropping the last handle of an instance that was not closed closes it: on the
    /// blocking pool when a tokio runtime is there, so that the executor is not blocked.
    fn drop(&mut self) {
        let Some(slot) = Arc::get_mut(&mut self.streams) else {
            // An in-flight blocking query still holds it: its end drops (closes) it there.
            return;
        };
        let Some(streams) = slot.get_mut().take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let _closing = runtime.spawn_blocking(move || drop(streams));
            }
            Err(_) => drop(streams),
        }
    }
}

/// A [`KafkaStreams`] instance driven from async code (see the [module docs](self)).
///
/// Clones are handles to the same instance. Close it with [`close`](Self::close); dropping
/// the last handle of an open instance closes it in the background.
///
/// ```
/// # use streams_core::prelude::*;
/// # use streams_core::runtime::{KafkaStreams, LogEngine, TopicConfig};
/// use streams_core::runtime::async_api::AsyncKafkaStreams;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let engine = std::sync::Arc::new(LogEngine::open(&dir.path().join("log"))?);
/// # engine.create_topic("words", TopicConfig::new(1))?;
/// # let builder = StreamsBuilder::new();
/// # builder.stream::<String, String>("words").group_by_key().count_with(Materialized::as_("counts"));
/// # let config = StreamsConfig::new("doc-async-struct").with_state_dir(dir.path().join("state"));
/// let app = AsyncKafkaStreams::new(KafkaStreams::new(builder.build()?, config, engine)?);
/// let handler_copy = app.clone();
/// app.start().await?;
/// handler_copy.wait_until_running(std::time::Duration::from_secs(30)).await?;
/// app.close().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct AsyncKafkaStreams {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AsyncKafkaStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncKafkaStreams")
            .field("application_id", &self.inner.application_id)
            .field("state", &self.state())
            .finish()
    }
}

impl From<KafkaStreams> for AsyncKafkaStreams {
    /// The same as [`AsyncKafkaStreams::new`].
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// # use streams_core::runtime::{KafkaStreams, LogEngine, StreamsState, TopicConfig};
    /// use streams_core::runtime::async_api::AsyncKafkaStreams;
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let engine = std::sync::Arc::new(LogEngine::open(&dir.path().join("log")).unwrap());
    /// # let builder = StreamsBuilder::new();
    /// # builder.stream::<String, String>("words").to("out");
    /// # let config = StreamsConfig::new("doc-async-from").with_state_dir(dir.path().join("state"));
    /// let app: AsyncKafkaStreams = KafkaStreams::new(builder.build().unwrap(), config, engine).unwrap().into();
    /// assert_eq!(app.state(), StreamsState::Created);
    /// ```
    fn from(streams: KafkaStreams) -> Self {
        Self::new(streams)
    }
}

impl AsyncKafkaStreams {
    /// Takes over `streams`, started or not (state changes before this call are not seen).
    /// A state listener set with [`KafkaStreams::set_state_listener`] before keeps being
    /// called, before [`state_changes`](Self::state_changes)' subscribers are fed.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// # use streams_core::runtime::{KafkaStreams, LogEngine, StreamsState, TopicConfig};
    /// use streams_core::runtime::async_api::AsyncKafkaStreams;
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let engine = std::sync::Arc::new(LogEngine::open(&dir.path().join("log")).unwrap());
    /// # let builder = StreamsBuilder::new();
    /// # builder.stream::<String, String>("words").to("out");
    /// # let config = StreamsConfig::new("doc-async-new").with_state_dir(dir.path().join("state"));
    /// let mut streams = KafkaStreams::new(builder.build().unwrap(), config, engine).unwrap();
    /// streams.set_state_listener(|new, old| println!("{old:?} -> {new:?}"));
    /// let app = AsyncKafkaStreams::new(streams); // the listener above still runs
    /// assert_eq!(app.state(), StreamsState::Created);
    /// ```
    pub fn new(mut streams: KafkaStreams) -> Self {
        let shared = streams.shared.clone();
        let current = shared.state();
        let hub = Arc::new(Hub {
            subscribers: Mutex::new(Subscribers {
                senders: Vec::new(),
                ended: terminal(current),
            }),
            state: watch::Sender::new(current),
        });
        let previous = lock(&shared.listener).take();
        // Weak: the listener lives in `Shared`.
        let weak: Weak<Shared> = Arc::downgrade(&shared);
        let feed = hub.clone();
        streams.set_state_listener(move |new, old| {
            if let Some(previous) = &previous {
                previous(new, old);
            }
            // The waits follow the instance's state as it is now: listener calls of two
            // threads' transitions may come in either order.
            let current = weak.upgrade().map_or(new, |s| s.state());
            feed.publish(new, old, current);
        });
        let application_id = streams.config.application_id().to_string();
        Self {
            inner: Arc::new(Inner {
                streams: Arc::new(RwLock::new(Some(streams))),
                closing: tokio::sync::Mutex::new(()),
                shared,
                hub,
                application_id,
            }),
        }
    }

    /// The instance's state (cheap, non-blocking).
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// # use streams_core::runtime::{KafkaStreams, LogEngine, StreamsState, TopicConfig};
    /// # use streams_core::runtime::async_api::AsyncKafkaStreams;
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let engine = std::sync::Arc::new(LogEngine::open(&dir.path().join("log")).unwrap());
    /// # let builder = StreamsBuilder::new();
    /// # builder.stream::<String, String>("words").to("out");
    /// # let config = StreamsConfig::new("doc-async-state").with_state_dir(dir.path().join("state"));
    /// let app = AsyncKafkaStreams::new(KafkaStreams::new(builder.build().unwrap(), config, engine).unwrap());
    /// assert_eq!(app.state(), StreamsState::Created);
    /// ```
    pub fn state(&self) -> StreamsState {
        self.inner.shared.state()
    }

    /// The state changes from now on, as `(new, old)` pairs in order; the stream ends after
    /// the change to [`StreamsState::NotRunning`] or [`StreamsState::Error`] (at once when
    /// the instance is already there). Any number of subscribers each get every change;
    /// subscribe before [`start`](Self::start) to see them all.
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// # use streams_core::runtime::{KafkaStreams, LogEngine, StreamsState, TopicConfig};
    /// # use streams_core::runtime::async_api::AsyncKafkaStreams;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let engine = std::sync::Arc::new(LogEngine::open(&dir.path().join("log"))?);
    /// # engine.create_topic("words", TopicConfig::new(1))?;
    /// # let builder = StreamsBuilder::new();
    /// # builder.stream::<String, String>("words").to("out");
    /// # let config = StreamsConfig::new("doc-async-changes").with_state_dir(dir.path().join("state"));
    /// let app = AsyncKafkaStreams::new(KafkaStreams::new(builder.build()?, config, engine)?);
    /// let mut changes = app.state_changes();
    /// app.start().await?;
    /// assert_eq!(changes.next_change().await, Some((StreamsState::Rebalancing, StreamsState::Created)));
    /// app.close().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn state_changes(&self) -> StateChanges {
        let (tx, rx) = mpsc::unbounded();
        let mut subs = lock(&self.inner.hub.subscribers);
        if !subs.ended {
            subs.senders.push(tx);
        }
        StateChanges { rx }
    }

    /// Starts the instance ([`KafkaStreams::start`]) on the blocking pool. Queries wait
    /// until it returned. Starting twice does nothing.
    ///
    /// # Errors
    ///
    /// What [`KafkaStreams::start`] returns (a source topic missing, a configuration the
    /// runtime refuses...); [`AsyncError::Closed`] after [`close`](Self::close).
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// # use streams_core::runtime::{KafkaStreams, LogEngine, TopicConfig};
    /// # use streams_core::runtime::async_api::{AsyncError, AsyncKafkaStreams};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let engine = std::sync::Arc::new(LogEngine::open(&dir.path().join("log"))?);
    /// # let builder = StreamsBuilder::new();
    /// # builder.stream::<String, String>("words").to("out");
    /// # let config = StreamsConfig::new("doc-async-start").with_state_dir(dir.path().join("state"));
    /// let app = AsyncKafkaStreams::new(KafkaStreams::new(builder.build()?, config, engine.clone())?);
    /// // No `words` topic yet: the start fails.
    /// assert!(matches!(app.start().await, Err(AsyncError::Streams(StreamsError::Topic { .. }))));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn start(&self) -> AsyncResult<()> {
        let mut slot = self.inner.streams.clone().write_owned().await;
        blocking("starting the streams app", move || match slot.as_mut() {
            Some(streams) => Ok(streams.start()?),
            None => Err(AsyncError::Closed),
        })
        .await
    }

    /// Closes the instance ([`KafkaStreams::close`]: final commits, threads joined) on the
    /// blocking pool; the executor keeps running other tasks meanwhile. Queries started
    /// after this call fail with [`AsyncError::Closed`]. Closing again returns `Ok` once
    /// the first close is done.
    ///
    /// # Errors
    ///
    /// What [`KafkaStreams::close`] returns (a stream thread had failed).
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// # use streams_core::runtime::{KafkaStreams, LogEngine, StreamsState, TopicConfig};
    /// # use streams_core::runtime::async_api::AsyncKafkaStreams;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let engine = std::sync::Arc::new(LogEngine::open(&dir.path().join("log"))?);
    /// # engine.create_topic("words", TopicConfig::new(1))?;
    /// # let builder = StreamsBuilder::new();
    /// # builder.stream::<String, String>("words").to("out");
    /// # let config = StreamsConfig::new("doc-async-close").with_state_dir(dir.path().join("state"));
    /// let app = AsyncKafkaStreams::new(KafkaStreams::new(builder.build()?, config, engine)?);
    /// app.start().await?;
    /// app.close().await?;
    /// assert_eq!(app.state(), StreamsState::NotRunning);
    /// app.close().await?; // idempotent
    /// # Ok(())
    /// # }
    /// ```
    pub async fn close(&self) -> AsyncResult<()> {
        self.close_with_timeout(Duration::from_secs(u64::from(u32::MAX)))
            .await
    }

    /// Like [`close`](Self::close), waiting at most `timeout` for the stream threads
    /// ([`KafkaStreams::close_with_timeout`]).
    ///
    /// # Errors
    ///
    /// [`StreamsError::Timeout`] (inside [`AsyncError::Streams`]) when the threads did not
    /// stop in time (they finish in the background), or what a failed thread reported.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streams_core::prelude::*;
    /// # use streams_core::runtime::{KafkaStreams, LogEngine, TopicConfig};
    /// # use streams_core::runtime::async_api::AsyncKafkaStreams;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let engine = std::sync::Arc::new(LogEngine::open(&dir.path().join("log"))?);
    /// # engine.create_topic("words", TopicConfig::new(1))?;
    /// # let builder = StreamsBuilder::new();
    /// # builder.stream::<String, String>("words").to("out");
    /// # let config = StreamsConfig::new("doc-async-close-t").with_state_dir(dir.path().join("state"));
    /// let app = AsyncKafkaStreams::new(KafkaStreams::new(builder.build()?, config, engine)?);
    /// app.start().await?;
    /// app.close_with_timeout(Duration::from_secs(30)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn close_with_timeout(&self, timeout: Duration) -> AsyncResult<()> {
        let _one_at_a_time = self.inner.closing.lock().await;
        let taken = self.inner.streams.write().await.take();
        match taken {
            None => Ok(()),
            Some(streams) => {
                blocking("closing the streams app", move || {
                    Ok(streams.close_with_timeout(timeout)?)
                })
                .await
            }
        }
    }

    /// Waits until the instance is [`Running`](StreamsState::Running), without blocking
    /// the executor (the state listener wakes it).
    ///
    /// # Errors
    ///
    /// [`StreamsError::Timeout`] after `timeout`; [`StreamsError::Stopped`] when the
    /// instance went to [`StreamsState::Error`]; [`AsyncError::Closed`] when it is closing
    /// or closed.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streams_core::prelude::*;
    /// # use streams_core::runtime::{KafkaStreams, LogEngine, StreamsState, TopicConfig};
    /// # use streams_core::runtime::async_api::AsyncKafkaStreams;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let engine = std::sync::Arc::new(LogEngine::open(&dir.path().join("log"))?);
    /// # engine.create_topic("words", TopicConfig::new(1))?;
    /// # let builder = StreamsBuilder::new();
    /// # builder.stream::<String, String>("words").to("out");
    /// # let config = StreamsConfig::new("doc-async-running").with_state_dir(dir.path().join("state"));
    /// let app = AsyncKafkaStreams::new(KafkaStreams::new(builder.build()?, config, engine)?);
    /// app.start().await?;
    /// app.wait_until_running(Duration::from_secs(30)).await?;
    /// assert_eq!(app.state(), StreamsState::Running);
    /// app.close().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait_until_running(&self, timeout: Duration) -> AsyncResult<()> {
        let mut rx = self.inner.hub.state.subscribe();
        let settled = |s: &StreamsState| *s == StreamsState::Running || self.never_runs(*s);
        let outcome = tokio::time::timeout(timeout, async {
            // The sender lives as long as `self`: `wait_for` cannot fail here.
            rx.wait_for(settled).await.map(|s| *s).ok()
        })
        .await;
        // The listener's view may trail the instance's own by a transition.
        let state = self.state();
        match outcome {
            _ if state == StreamsState::Running => Ok(()),
            _ if self.never_runs(state) => Err(self.not_running(state)),
            Ok(Some(seen)) if self.never_runs(seen) => Err(self.not_running(seen)),
            _ => Err(StreamsError::Timeout {
                operation: "waiting for the Running state".into(),
                after: timeout,
                detail: format!("state {state:?}"),
            }
            .into()),
        }
    }

    fn never_runs(&self, state: StreamsState) -> bool {
        matches!(
            state,
            StreamsState::PendingShutdown | StreamsState::NotRunning | StreamsState::Error
        )
    }

    /// The error for an instance that will never run (again).
    fn not_running(&self, state: StreamsState) -> AsyncError {
        if state == StreamsState::Error {
            let cause = lock(&self.inner.shared.inner)
                .error
                .clone()
                .unwrap_or_else(|| "the app is in the Error state (its start failed)".into());
            AsyncError::Streams(StreamsError::Stopped { cause })
        } else {
            AsyncError::Closed
        }
    }

    /// Waits until the instance is Running and has processed every partition assigned to
    /// it to its end ([`KafkaStreams::wait_until_caught_up`], same criterion), checking on
    /// the executor every 5 ms instead of blocking a thread. Dropping the future stops the
    /// wait.
    ///
    /// # Errors
    ///
    /// [`StreamsError::Timeout`] after `timeout`; [`StreamsError::Stopped`] when a stream
    /// thread failed; [`AsyncError::Closed`] when the instance is closing or closed.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streams_core::prelude::*;
    /// # use streams_core::runtime::{KafkaStreams, LogEngine, NewRecord, TopicConfig};
    /// # use streams_core::runtime::async_api::AsyncKafkaStreams;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let engine = std::sync::Arc::new(LogEngine::open(&dir.path().join("log"))?);
    /// # engine.create_topic("words", TopicConfig::new(1))?;
    /// # engine.append("words", 0, &[NewRecord { timestamp: 1, key: Some(b"k".to_vec()), value: Some(b"v".to_vec()), headers: vec![] }])?;
    /// # let builder = StreamsBuilder::new();
    /// # builder.stream::<String, String>("words").group_by_key().count_with(Materialized::as_("counts"));
    /// # let config = StreamsConfig::new("doc-async-caught-up").with_state_dir(dir.path().join("state"));
    /// let app = AsyncKafkaStreams::new(KafkaStreams::new(builder.build()?, config, engine)?);
    /// app.start().await?;
    /// app.wait_until_caught_up(Duration::from_secs(30)).await?;
    /// assert_eq!(app.get::<String, i64>("counts", "k".into()).await?, Some(1));
    /// app.close().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait_until_caught_up(&self, timeout: Duration) -> AsyncResult<()> {
        let shared = &self.inner.shared;
        let _waiting = CatchUpWaiter::new(shared);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = None;
        loop {
            if shared.caught_up(&mut seen)? {
                return Ok(());
            }
            let state = shared.state();
            if self.never_runs(state) {
                return Err(self.not_running(state));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StreamsError::Timeout {
                    operation: "catching up".into(),
                    after: timeout,
                    detail: format!("state {state:?}"),
                }
                .into());
            }
            tokio::time::sleep(CATCH_UP_CHECK).await;
        }
    }

    /// A snapshot of the instance's metrics ([`KafkaStreams::metrics`]) every `every`
    /// (the first at once; a zero interval counts as 1 ms). The stream ends once the
    /// instance is closed or every handle dropped. Snapshots are copied on the executor:
    /// the runtime keeps them ready, reading one is a short lock.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streams_core::prelude::*;
    /// # use streams_core::runtime::{KafkaStreams, LogEngine, TopicConfig};
    /// # use streams_core::runtime::async_api::AsyncKafkaStreams;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let engine = std::sync::Arc::new(LogEngine::open(&dir.path().join("log"))?);
    /// # engine.create_topic("words", TopicConfig::new(1))?;
    /// # let builder = StreamsBuilder::new();
    /// # builder.stream::<String, String>("words").to("out");
    /// # let config = StreamsConfig::new("doc-async-metrics").with_state_dir(dir.path().join("state"));
    /// let app = AsyncKafkaStreams::new(KafkaStreams::new(builder.build()?, config, engine)?);
    /// let mut snapshots = app.metrics_snapshots(Duration::from_millis(100));
    /// app.start().await?;
    /// let first = snapshots.next_snapshot().await.expect("a snapshot while open");
    /// println!("lag {}", first.lag());
    /// app.close().await?;
    /// assert!(snapshots.next_snapshot().await.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn metrics_snapshots(&self, every: Duration) -> MetricsSnapshots {
        let slot = Arc::downgrade(&self.inner.streams);
        let every = every.max(Duration::from_millis(1));
        let stream = futures::stream::unfold(None, move |ticker: Option<tokio::time::Interval>| {
            let slot = slot.clone();
            async move {
                let mut ticker = ticker.unwrap_or_else(|| {
                    let mut t = tokio::time::interval(every);
                    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    t
                });
                ticker.tick().await;
                let slot = slot.upgrade()?;
                let snapshot = slot.read().await.as_ref().map(KafkaStreams::metrics)?;
                Some((snapshot, Some(ticker)))
            }
        });
        MetricsSnapshots {
            inner: stream.boxed(),
        }
    }

    /// Runs `read` against the instance on tokio's blocking pool and returns its result:
    /// any interactive query ([`KafkaStreams::key_value_store`], `window_store`,
    /// `session_store`, `query_metadata_for_key`...). Store reads run there, not on the
    /// executor, because a read may go to the disk (RocksDB) or wait while a stream thread
    /// holds the store for a commit. Waits while [`start`](Self::start) runs.
    ///
    /// # Errors
    ///
    /// What `read` returns; [`AsyncError::Closed`] once closed.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streams_core::prelude::*;
    /// # use streams_core::runtime::{KafkaStreams, LogEngine, NewRecord, TopicConfig};
    /// # use streams_core::runtime::async_api::AsyncKafkaStreams;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let engine = std::sync::Arc::new(LogEngine::open(&dir.path().join("log"))?);
    /// # engine.create_topic("words", TopicConfig::new(1))?;
    /// # for w in ["a", "b", "a"] {
    /// #     engine.append("words", 0, &[NewRecord { timestamp: 1, key: Some(w.into()), value: Some(w.into()), headers: vec![] }])?;
    /// # }
    /// # let builder = StreamsBuilder::new();
    /// # builder.stream::<String, String>("words").group_by_key().count_with(Materialized::as_("counts"));
    /// # let config = StreamsConfig::new("doc-async-query").with_state_dir(dir.path().join("state"));
    /// let app = AsyncKafkaStreams::new(KafkaStreams::new(builder.build()?, config, engine)?);
    /// app.start().await?;
    /// app.wait_until_caught_up(Duration::from_secs(30)).await?;
    /// let mut all = app.query(|s| s.key_value_store::<String, i64>("counts")?.all()).await?;
    /// all.sort();
    /// assert_eq!(all, vec![("a".to_string(), 2), ("b".to_string(), 1)]);
    /// app.close().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn query<T, F>(&self, read: F) -> AsyncResult<T>
    where
        F: FnOnce(&KafkaStreams) -> crate::error::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let slot = self.inner.streams.clone().read_owned().await;
        blocking("an interactive query", move || match slot.as_ref() {
            Some(streams) => Ok(read(streams)?),
            None => Err(AsyncError::Closed),
        })
        .await
    }

    /// The value of `key` in the key-value store `store` of this instance's running tasks
    /// (a [`query`](Self::query) of [`KafkaStreams::key_value_store`]): `None` when no task
    /// here holds it.
    ///
    /// # Errors
    ///
    /// [`StreamsError::StoreAccess`] when the store is not there (not started, not running
    /// yet, other types); [`AsyncError::Closed`] once closed.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streams_core::prelude::*;
    /// # use streams_core::runtime::{KafkaStreams, LogEngine, NewRecord, TopicConfig};
    /// # use streams_core::runtime::async_api::AsyncKafkaStreams;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let engine = std::sync::Arc::new(LogEngine::open(&dir.path().join("log"))?);
    /// # engine.create_topic("words", TopicConfig::new(1))?;
    /// # engine.append("words", 0, &[NewRecord { timestamp: 1, key: Some(b"a".to_vec()), value: Some(b"a".to_vec()), headers: vec![] }])?;
    /// # let builder = StreamsBuilder::new();
    /// # builder.stream::<String, String>("words").group_by_key().count_with(Materialized::as_("counts"));
    /// # let config = StreamsConfig::new("doc-async-get").with_state_dir(dir.path().join("state"));
    /// let app = AsyncKafkaStreams::new(KafkaStreams::new(builder.build()?, config, engine)?);
    /// app.start().await?;
    /// app.wait_until_caught_up(Duration::from_secs(30)).await?;
    /// assert_eq!(app.get::<String, i64>("counts", "a".into()).await?, Some(1));
    /// assert_eq!(app.get::<String, i64>("counts", "zzz".into()).await?, None);
    /// app.close().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get<K, V>(&self, store: &str, key: K) -> AsyncResult<Option<V>>
    where
        K: Send + 'static,
        V: Send + 'static,
    {
        let store = store.to_string();
        self.query(move |s| s.key_value_store::<K, V>(&store)?.get(&key))
            .await
    }
}

/// Runs `work` on the blocking pool.
async fn blocking<T: Send + 'static>(
    operation: &'static str,
    work: impl FnOnce() -> AsyncResult<T> + Send + 'static,
) -> AsyncResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| AsyncError::BlockingTask {
            operation,
            detail: e.to_string(),
        })?
}

/// Counts a caller of `wait_until_caught_up` (the threads then commit as soon as they
/// caught up) for as long as it waits, the future dropped included.
struct CatchUpWaiter<'a>(&'a Shared);

impl<'a> CatchUpWaiter<'a> {
    fn new(shared: &'a Shared) -> Self {
        shared.waiters.fetch_add(1, Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for CatchUpWaiter<'_> {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The state changes of an instance as `(new, old)` pairs
/// ([`AsyncKafkaStreams::state_changes`]); a [`futures::Stream`].
///
/// ```
/// # use streams_core::prelude::*;
/// # use streams_core::runtime::{KafkaStreams, LogEngine, StreamsState, TopicConfig};
/// # use streams_core::runtime::async_api::AsyncKafkaStreams;
/// use futures::StreamExt;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let engine = std::sync::Arc::new(LogEngine::open(&dir.path().join("log"))?);
/// # engine.create_topic("words", TopicConfig::new(1))?;
/// # let builder = StreamsBuilder::new();
/// # builder.stream::<String, String>("words").to("out");
/// # let config = StreamsConfig::new("doc-async-changes-t").with_state_dir(dir.path().join("state"));
/// let app = AsyncKafkaStreams::new(KafkaStreams::new(builder.build()?, config, engine)?);
/// let changes = app.state_changes();
/// app.start().await?;
/// app.close().await?;
/// let all: Vec<(StreamsState, StreamsState)> = changes.collect().await;
/// assert_eq!(all.last().map(|c| c.0), Some(StreamsState::NotRunning));
/// # Ok(())
/// # }
/// ```
pub struct StateChanges {
    rx: mpsc::UnboundedReceiver<Change>,
}

impl std::fmt::Debug for StateChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateChanges").finish_non_exhaustive()
    }
}

impl StateChanges {
    /// The next change, `None` once the stream ended (the same as `StreamExt::next`,
    /// without importing it).
    ///
    /// ```
    /// # use streams_core::prelude::*;
    /// # use streams_core::runtime::{KafkaStreams, LogEngine, StreamsState, TopicConfig};
    /// # use streams_core::runtime::async_api::AsyncKafkaStreams;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let engine = std::sync::Arc::new(LogEngine::open(&dir.path().join("log"))?);
    /// # let builder = StreamsBuilder::new();
    /// # builder.stream::<String, String>("words").to("out");
    /// # let config = StreamsConfig::new("doc-async-next").with_state_dir(dir.path().join("state"));
    /// let app = AsyncKafkaStreams::new(KafkaStreams::new(builder.build()?, config, engine)?);
    /// let mut changes = app.state_changes();
    /// app.close().await?; // never started: Created -> PendingShutdown -> NotRunning
    /// assert_eq!(changes.next_change().await, Some((StreamsState::PendingShutdown, StreamsState::Created)));
    /// assert_eq!(changes.next_change().await, Some((StreamsState::NotRunning, StreamsState::PendingShutdown)));
    /// assert_eq!(changes.next_change().await, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn next_change(&mut self) -> Option<(StreamsState, StreamsState)> {
        self.rx.next().await
    }
}

impl Stream for StateChanges {
    type Item = (StreamsState, StreamsState);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_next_unpin(cx)
    }
}

/// Periodic metric snapshots of an instance ([`AsyncKafkaStreams::metrics_snapshots`]); a
/// [`futures::Stream`].
///
/// ```
/// # use std::time::Duration;
/// # use streams_core::prelude::*;
/// # use streams_core::runtime::{KafkaStreams, LogEngine, TopicConfig};
/// # use streams_core::runtime::async_api::AsyncKafkaStreams;
/// use futures::StreamExt;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let engine = std::sync::Arc::new(LogEngine::open(&dir.path().join("log"))?);
/// # engine.create_topic("words", TopicConfig::new(1))?;
/// # let builder = StreamsBuilder::new();
/// # builder.stream::<String, String>("words").to("out");
/// # let config = StreamsConfig::new("doc-async-snap-t").with_state_dir(dir.path().join("state"));
/// let app = AsyncKafkaStreams::new(KafkaStreams::new(builder.build()?, config, engine)?);
/// app.start().await?;
/// let three: Vec<_> = app.metrics_snapshots(Duration::from_millis(10)).take(3).collect().await;
/// assert_eq!(three.len(), 3);
/// app.close().await?;
/// # Ok(())
/// # }
/// ```
pub struct MetricsSnapshots {
    inner: BoxStream<'static, StreamsMetrics>,
}

impl std::fmt::Debug for MetricsSnapshots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsSnapshots").finish_non_exhaustive()
    }
}

impl MetricsSnapshots {
    /// The next snapshot, `None` once the stream ended (the same as `StreamExt::next`,
    /// without importing it).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streams_core::prelude::*;
    /// # use streams_core::runtime::{KafkaStreams, LogEngine, TopicConfig};
    /// # use streams_core::runtime::async_api::AsyncKafkaStreams;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let engine = std::sync::Arc::new(LogEngine::open(&dir.path().join("log"))?);
    /// # let builder = StreamsBuilder::new();
    /// # builder.stream::<String, String>("words").to("out");
    /// # let config = StreamsConfig::new("doc-async-snap").with_state_dir(dir.path().join("state"));
    /// let app = AsyncKafkaStreams::new(KafkaStreams::new(builder.build()?, config, engine)?);
    /// let mut snapshots = app.metrics_snapshots(Duration::from_millis(10));
    /// // Not started: no threads yet.
    /// assert!(snapshots.next_snapshot().await.is_some_and(|m| m.threads.is_empty()));
    /// # app.close().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn next_snapshot(&mut self) -> Option<StreamsMetrics> {
        self.inner.next().await
    }
}

impl Stream for MetricsSnapshots {
    type Item = StreamsMetrics;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::HashMap;
    use std::sync::atomic::AtomicU64;
    use std::time::Instant;

    use super::*;
    use crate::partitioner::partition_for_key;
    use crate::prelude::*;
    use crate::runtime::{LogEngine, NewRecord, TopicConfig};

    const WAIT: Duration = Duration::from_secs(60);

    /// Words drawn from a small vocabulary by a fixed LCG, so that counts differ per word.
    fn words(n: usize) -> Vec<String> {
        let vocab = ["apple", "pear", "fig", "kiwi", "plum", "lime", "date"];
        let mut x: u64 = 7;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                vocab[((x >> 33) % vocab.len() as u64) as usize].to_string()
            })
            .collect()
    }

    fn append(engine: &LogEngine, words: &[String], partitions: u32) {
        for (i, w) in words.iter().enumerate() {
            let p = partition_for_key(w.as_bytes(), partitions);
            let record = NewRecord {
                timestamp: i as i64,
                key: Some(w.as_bytes().to_vec()),
                value: Some(w.as_bytes().to_vec()),
                headers: vec![],
            };
            engine.append("words", p, &[record]).unwrap();
        }
    }

    /// A processor whose close takes `CLOSE_DELAY`: a close that blocked the executor would
    /// stop a ticker for that long.
    struct SlowClose;

    const CLOSE_DELAY: Duration = Duration::from_millis(300);

    impl Processor<String, String, String, String> for SlowClose {
        fn process(
            &mut self,
            _record: Record<String, String>,
            _ctx: &mut ProcessorContext<'_, String, String>,
        ) -> crate::error::Result<()> {
            Ok(())
        }
        fn close(
            &mut self,
            _ctx: &mut ProcessorContext<'_, String, String>,
        ) -> crate::error::Result<()> {
            std::thread::sleep(CLOSE_DELAY);
            Ok(())
        }
    }

    /// A word count over `words` (`partitions` partitions) materialized as `counts`.
    fn app(
        dir: &std::path::Path,
        input: &[String],
        partitions: u32,
        slow_close: bool,
    ) -> AsyncKafkaStreams {
        let engine = Arc::new(LogEngine::open(&dir.join("log")).unwrap());
        engine
            .create_topic("words", TopicConfig::new(partitions))
            .unwrap();
        append(&engine, input, partitions);
        let builder = StreamsBuilder::new();
        let stream = builder.stream::<String, String>("words");
        stream
            .group_by_key()
            .count_with(Materialized::as_("counts"));
        if slow_close {
            let _: KStream<String, String> = stream.process(|| SlowClose, Named::as_("slow"), &[]);
        }
        let config = StreamsConfig::new("async-test")
            .with_state_dir(dir.join("state"))
            .with_commit_interval(Duration::from_millis(100));
        AsyncKafkaStreams::new(KafkaStreams::new(builder.build().unwrap(), config, engine).unwrap())
    }

    fn expected(input: &[String]) -> HashMap<String, i64> {
        let mut m = HashMap::new();
        for w in input {
            *m.entry(w.clone()).or_insert(0) += 1;
        }
        m
    }

    #[tokio::test]
    async fn two_subscribers_see_every_state_change_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path(), &words(50), 2, false);
        let a = app.state_changes();
        let b = app.state_changes();
        app.start().await.unwrap();
        app.wait_until_running(WAIT).await.unwrap();
        assert_eq!(app.state(), StreamsState::Running);
        app.close().await.unwrap();
        let a: Vec<Change> = tokio::time::timeout(WAIT, a.collect()).await.unwrap();
        let b: Vec<Change> = tokio::time::timeout(WAIT, b.collect()).await.unwrap();
        assert_eq!(a, b);
        // A chain from Created to NotRunning through Running, closing with PendingShutdown.
        assert_eq!(
            a.first(),
            Some(&(StreamsState::Rebalancing, StreamsState::Created))
        );
        for pair in a.windows(2) {
            assert_eq!(pair[0].0, pair[1].1, "not a chain: {a:?}");
        }
        assert!(a.iter().any(|c| c.0 == StreamsState::Running), "{a:?}");
        let n = a.len();
        assert!(n >= 4, "{a:?}");
        assert_eq!(a[n - 2].0, StreamsState::PendingShutdown);
        assert_eq!(a[n - 1].0, StreamsState::NotRunning);
        // A subscriber after the end gets an ended stream.
        assert_eq!(app.state_changes().next_change().await, None);
    }

    #[test]
    fn queries_from_a_current_thread_runtime_match_a_recount() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let input = words(400);
            let want = expected(&input);
            let app = app(dir.path(), &input, 3, false);
            // Before start: the store is not there.
            assert!(matches!(
                app.get::<String, i64>("counts", "fig".into()).await,
                Err(AsyncError::Streams(StreamsError::StoreAccess { .. }))
            ));
            app.start().await.unwrap();
            app.wait_until_caught_up(WAIT).await.unwrap();
            for (word, n) in &want {
                let got = app
                    .get::<String, i64>("counts", word.clone())
                    .await
                    .unwrap();
                assert_eq!(got, Some(*n), "{word}");
            }
            assert_eq!(
                app.get::<String, i64>("counts", "durian".into())
                    .await
                    .unwrap(),
                None
            );
            let all: HashMap<String, i64> = app
                .query(|s| s.key_value_store::<String, i64>("counts")?.all())
                .await
                .unwrap()
                .into_iter()
                .collect();
            assert_eq!(all, want);
            // Wrong types are a typed error, not a panic.
            assert!(matches!(
                app.get::<String, String>("counts", "fig".into()).await,
                Err(AsyncError::Streams(StreamsError::StoreAccess { .. }))
            ));
            app.close().await.unwrap();
            assert!(matches!(
                app.get::<String, i64>("counts", "fig".into()).await,
                Err(AsyncError::Closed)
            ));
            assert!(matches!(app.start().await, Err(AsyncError::Closed)));
            assert!(matches!(
                app.wait_until_running(WAIT).await,
                Err(AsyncError::Closed)
            ));
            assert!(matches!(
                app.wait_until_caught_up(WAIT).await,
                Err(AsyncError::Closed)
            ));
            app.close().await.unwrap();
        });
    }

    #[tokio::test]
    async fn close_does_not_block_the_executor() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path(), &words(20), 1, true);
        app.start().await.unwrap();
        app.wait_until_caught_up(WAIT).await.unwrap();
        let ticks = Arc::new(AtomicU64::new(0));
        let ticker = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_millis(5));
                loop {
                    every.tick().await;
                    ticks.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let before = ticks.load(Ordering::SeqCst);
        let started = Instant::now();
        app.close().await.unwrap();
        let took = started.elapsed();
        let during = ticks.load(Ordering::SeqCst) - before;
        ticker.abort();
        // The close waited for the slow processor; the ticker ran all along (a blocking
        // close on this single-threaded runtime would have let it tick at most once).
        assert!(took >= CLOSE_DELAY, "{took:?}");
        assert!(during >= 10, "{during} ticks in {took:?}");
        assert_eq!(app.state(), StreamsState::NotRunning);
    }

    #[tokio::test]
    async fn metric_snapshots_follow_processing_and_end_at_close() {
        let dir = tempfile::tempdir().unwrap();
        let input = words(120);
        let app = app(dir.path(), &input, 2, false);
        let mut snapshots = app.metrics_snapshots(Duration::from_millis(20));
        app.start().await.unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            let m = snapshots.next_snapshot().await.unwrap();
            if m.total().processed == input.len() as u64 {
                break;
            }
            assert!(Instant::now() < deadline, "processed {:?}", m.total());
        }
        app.close().await.unwrap();
        let end = tokio::time::timeout(WAIT, snapshots.next_snapshot())
            .await
            .unwrap();
        assert!(end.is_none());
    }

    #[tokio::test]
    async fn a_failed_start_is_reported_to_the_waits() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(LogEngine::open(&dir.path().join("log")).unwrap());
        let builder = StreamsBuilder::new();
        builder.stream::<String, String>("missing").to("out");
        let config = StreamsConfig::new("async-fail").with_state_dir(dir.path().join("state"));
        let app = AsyncKafkaStreams::new(
            KafkaStreams::new(builder.build().unwrap(), config, engine).unwrap(),
        );
        let mut changes = app.state_changes();
        assert!(matches!(
            app.start().await,
            Err(AsyncError::Streams(StreamsError::Topic { .. }))
        ));
        assert!(matches!(
            app.wait_until_running(WAIT).await,
            Err(AsyncError::Streams(StreamsError::Stopped { .. }))
        ));
        assert!(matches!(
            app.wait_until_caught_up(WAIT).await,
            Err(AsyncError::Streams(StreamsError::Stopped { .. }))
        ));
        assert_eq!(
            changes.next_change().await,
            Some((StreamsState::Rebalancing, StreamsState::Created))
        );
        assert_eq!(
            changes.next_change().await,
            Some((StreamsState::Error, StreamsState::Rebalancing))
        );
        assert_eq!(changes.next_change().await, None);
        app.close().await.unwrap();
    }

    #[tokio::test]
    async fn waits_time_out_with_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path(), &words(5), 1, false);
        let started = Instant::now();
        let e = app
            .wait_until_running(Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(
            matches!(e, AsyncError::Streams(StreamsError::Timeout { .. })),
            "{e}"
        );
        assert!(started.elapsed() >= Duration::from_millis(50));
        let e = app
            .wait_until_caught_up(Duration::from_millis(30))
            .await
            .unwrap_err();
        assert!(
            matches!(e, AsyncError::Streams(StreamsError::Timeout { .. })),
            "{e}"
        );
        assert_eq!(app.inner.shared.waiters.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_earlier_listener_still_runs_and_dropping_the_last_handle_closes() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(LogEngine::open(&dir.path().join("log")).unwrap());
        engine.create_topic("words", TopicConfig::new(1)).unwrap();
        let builder = StreamsBuilder::new();
        builder.stream::<String, String>("words").to("out");
        let config = StreamsConfig::new("async-drop").with_state_dir(dir.path().join("state"));
        let mut streams = KafkaStreams::new(builder.build().unwrap(), config, engine).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        streams.set_state_listener(move |new, _| lock(&sink).push(new));
        let app = AsyncKafkaStreams::new(streams);
        let changes = app.state_changes();
        app.start().await.unwrap();
        app.wait_until_running(WAIT).await.unwrap();
        drop(app);
        let all: Vec<Change> = tokio::time::timeout(WAIT, changes.collect()).await.unwrap();
        assert_eq!(all.last().map(|c| c.0), Some(StreamsState::NotRunning));
        let mine: Vec<StreamsState> = all.iter().map(|c| c.0).collect();
        assert_eq!(*lock(&seen), mine);
    }
}
