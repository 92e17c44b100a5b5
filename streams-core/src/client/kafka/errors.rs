//! librdkafka's errors, classified into [`ClientError`](crate::client::ClientError)s:
//! retriable, fencing, transaction-abortable, fatal (see the table in the module docs).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::ClientError;

use crate::sync::lock;

use super::settings::*;

/// What librdkafka last reported about a client's connections (for error details).
#[derive(Default)]
pub(super) struct Diagnostics {
    pub(super) last_error: Mutex<Option<String>>,
}

impl Diagnostics {
    pub(super) fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", "{fac}: {message}"),
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", "{fac}: {message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", "{fac}: {message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", "{fac}: {message}"),
        }
    }

    pub(super) fn error(&self, error: &KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", error = %error, "{reason}");
        *lock(&self.last_error) = Some(reason.to_string());
    }

    fn last(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }
}

pub(super) fn code_of(e: &KafkaError) -> Option<RDKafkaErrorCode> {
    match e {
        KafkaError::AdminOp(c) => Some(*c),
        e => e.rdkafka_error_code(),
    }
}

/// Failures worth trying again until the deadline: the cluster or the coordinator is
/// (momentarily) unreachable or moving.
pub(super) fn retriable(code: Option<RDKafkaErrorCode>) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        Some(
            C::OperationTimedOut
                | C::RequestTimedOut
                | C::AllBrokersDown
                | C::BrokerTransportFailure
                | C::CoordinatorNotAvailable
                | C::NotCoordinator
                | C::CoordinatorLoadInProgress
                | C::NetworkException
                | C::WaitingForCoordinator
                | C::LeaderNotAvailable
                | C::NotLeaderForPartition
                | C::Resolve
        )
    )
}

/// The group refused a member's request: it is rebalancing, or the member is fenced.
pub(super) fn membership_error(code: Option<RDKafkaErrorCode>) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        Some(
            C::RebalanceInProgress
                | C::IllegalGeneration
                | C::UnknownMemberId
                | C::FencedInstanceId
        )
    )
}

/// Runs `f` (given the time left) until it succeeds, fails for good, or `timeout` passed.
pub(super) fn retry<T>(
    timeout: Duration,
    operation: &str,
    mut f: impl FnMut(Duration) -> Result<T, KafkaError>,
) -> Result<T, KafkaError> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match f(left.max(Duration::from_millis(1))) {
            Err(e) if retriable(code_of(&e)) && Instant::now() + RETRY_BACKOFF < deadline => {
                tracing::debug!(operation, error = %e, "retrying");
                std::thread::sleep(RETRY_BACKOFF);
            }
            result => return result,
        }
    }
}

pub(super) fn timed_out(code: Option<RDKafkaErrorCode>) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        Some(C::OperationTimedOut | C::RequestTimedOut | C::AllBrokersDown | C::MessageTimedOut)
    )
}

pub(super) fn unsupported(code: Option<RDKafkaErrorCode>) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        Some(C::UnsupportedFeature | C::UnsupportedVersion | C::NotImplemented)
    )
}

/// The error of `operation` failing with `e`: a [`ClientError::Timeout`] naming the
/// cluster when it did not answer, else a [`ClientError::Broker`].
pub(super) fn client_error(
    operation: &str,
    e: &KafkaError,
    after: Duration,
    bootstrap: &str,
    diagnostics: &Diagnostics,
) -> ClientError {
    let code = code_of(e);
    if timed_out(code) || retriable(code) {
        let mut detail =
            format!("no answer from the Kafka cluster at bootstrap.servers={bootstrap} ({e})");
        if let Some(last) = diagnostics.last() {
            detail.push_str(&format!("; last client error: {last}"));
        }
        return ClientError::Timeout {
            operation: operation.to_string(),
            after,
            detail,
        };
    }
    ClientError::Broker {
        operation: operation.to_string(),
        detail: e.to_string(),
    }
}

/// Codes saying that someone else took over: another producer registered the same
/// transactional id (librdkafka's `_FENCED`, to which it maps the broker's
/// `PRODUCER_FENCED` and `INVALID_PRODUCER_EPOCH`), or the consumer group moved on from
/// the member whose metadata the offsets were sent with (KIP-447's zombie fencing:
/// `ILLEGAL_GENERATION`, `UNKNOWN_MEMBER_ID`, `FENCED_INSTANCE_ID`).
pub(super) fn fencing(code: Option<RDKafkaErrorCode>) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        Some(
            C::Fenced
                | C::ProducerFenced
                | C::InvalidProducerEpoch
                | C::FencedInstanceId
                | C::IllegalGeneration
                | C::UnknownMemberId
        )
    )
}

/// What a failed transactional call says about itself: librdkafka's flags on a
/// transactional error (`rd_kafka_error_t`), or what the code alone tells for the other
/// failures (a flush that did not finish, a refused send).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TxnFailure {
    pub(super) code: Option<RDKafkaErrorCode>,
    pub(super) fatal: bool,
    pub(super) retriable: bool,
    pub(super) abortable: bool,
}

impl TxnFailure {
    pub(super) fn of(e: &KafkaError) -> Self {
        match e {
            KafkaError::Transaction(t) => Self {
                code: Some(t.code()),
                fatal: t.is_fatal(),
                retriable: t.is_retriable(),
                abortable: t.txn_requires_abort(),
            },
            e => {
                let code = code_of(e);
                Self {
                    code,
                    fatal: code == Some(RDKafkaErrorCode::Fatal),
                    retriable: timed_out(code) || retriable(code),
                    abortable: false,
                }
            }
        }
    }
}

/// How the caller must react to a failed transactional call (the mapping of the
/// [module docs](self#transactions)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TxnReaction {
    /// [`ClientError::ProducerFenced`]: a new producer, tasks closed dirty, rejoin.
    Fenced,
    /// [`ClientError::TransactionAborted`]: abort; the producer stays usable.
    Abort,
    /// [`ClientError::Timeout`]: the same call may be repeated (librdkafka resumes it),
    /// or the transaction aborted.
    Retry,
    /// [`ClientError::Fatal`]: the producer cannot be used any more.
    Fatal,
    /// [`ClientError::Broker`]: refused as such (a call in the wrong state, a bad
    /// argument); nothing changed.
    Refused,
}

pub(super) fn txn_reaction(f: TxnFailure) -> TxnReaction {
    if fencing(f.code) {
        TxnReaction::Fenced
    } else if f.abortable {
        TxnReaction::Abort
    } else if f.fatal {
        TxnReaction::Fatal
    } else if f.retriable {
        TxnReaction::Retry
    } else {
        TxnReaction::Refused
    }
}

/// The client error of a failed transactional call.
pub(super) fn transaction_error(
    operation: &str,
    detail: String,
    failure: TxnFailure,
    after: Duration,
    bootstrap: &str,
) -> ClientError {
    let operation = operation.to_string();
    match txn_reaction(failure) {
        TxnReaction::Fenced => ClientError::ProducerFenced { operation, detail },
        TxnReaction::Abort => ClientError::TransactionAborted { operation, detail },
        TxnReaction::Retry => ClientError::Timeout {
            operation,
            after,
            detail: format!(
                "{detail}; the Kafka cluster at bootstrap.servers={bootstrap} did not answer \
                 in time (the call may be repeated, or the transaction aborted)"
            ),
        },
        TxnReaction::Fatal => ClientError::Fatal { operation, detail },
        TxnReaction::Refused => ClientError::Broker { operation, detail },
    }
}

pub(super) fn config_error(what: &str, e: &KafkaError) -> ClientError {
    ClientError::Broker {
        operation: format!("creating the Kafka {what}"),
        detail: e.to_string(),
    }
}
