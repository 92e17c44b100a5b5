//! Waiting for the signals that stop an app (SIGINT, SIGTERM).

use crate::error::{Result, StreamsError};

/// Waits for Ctrl-C (SIGINT) or, on Unix, SIGTERM: what [`KafkaStreams::run_until_signal`]
/// waits for, for apps that run more than the streams client (an HTTP server, say) and stop
/// it all on the same signal.
///
/// # Errors
///
/// [`StreamsError::System`] when the signal handlers cannot be installed.
#[cfg(unix)]
pub async fn shutdown_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|source| StreamsError::System {
        what: "cannot watch SIGTERM",
        source,
    })?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(|source| StreamsError::System {
            what: "cannot watch Ctrl-C",
            source,
        }),
        _ = term.recv() => Ok(()),
    }
}

/// Waits for Ctrl-C: what [`KafkaStreams::run_until_signal`] waits for.
///
/// # Errors
///
/// [`StreamsError::System`] when the signal handler cannot be installed.
#[cfg(not(unix))]
pub async fn shutdown_signal() -> Result<()> {
    tokio::signal::ctrl_c()
        .await
        .map_err(|source| StreamsError::System {
            what: "cannot watch Ctrl-C",
            source,
        })
}
