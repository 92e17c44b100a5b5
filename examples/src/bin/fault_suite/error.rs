//! What can go wrong in the suite.

use std::fmt;

use streams_core::error::{StateError, StreamsError, TopologyError};

/// What can go wrong in the suite.
#[derive(Debug)]
pub(crate) enum SuiteError {
    /// A bad command line.
    Usage(String),
    /// The app or its topology failed.
    Streams(StreamsError),
    /// The log engine failed.
    State(StateError),
    /// A file or process operation failed.
    Io {
        /// What was being done.
        action: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A child app misbehaved (exited early, failed, or did not finish in time).
    Child(String),
    /// An output record could not be read as the app writes it.
    Output(String),
    /// The Kafka-protocol server (`streams serve`) did not start.
    Serve(streams_state::serve::ServeError),
}

impl fmt::Display for SuiteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(m) => write!(f, "{m}"),
            Self::Streams(e) => write!(f, "streams: {e}"),
            Self::State(e) => write!(f, "log engine: {e}"),
            Self::Io { action, source } => write!(f, "{action}: {source}"),
            Self::Child(m) => write!(f, "app: {m}"),
            Self::Output(m) => write!(f, "output: {m}"),
            Self::Serve(e) => write!(f, "streams serve: {e}"),
        }
    }
}

impl std::error::Error for SuiteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Streams(e) => Some(e),
            Self::State(e) => Some(e),
            Self::Io { source, .. } => Some(source),
            Self::Serve(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StreamsError> for SuiteError {
    fn from(e: StreamsError) -> Self {
        Self::Streams(e)
    }
}

impl From<streams_state::serve::ServeError> for SuiteError {
    fn from(e: streams_state::serve::ServeError) -> Self {
        Self::Serve(e)
    }
}

impl From<StateError> for SuiteError {
    fn from(e: StateError) -> Self {
        Self::State(e)
    }
}

impl From<TopologyError> for SuiteError {
    fn from(e: TopologyError) -> Self {
        Self::Streams(e.into())
    }
}

pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> SuiteError {
    let action = action.into();
    move |source| SuiteError::Io { action, source }
}
