//! Error answers: a status and a reason as JSON, `Retry-After` on every `503`.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// How much of a bad parameter value or path an error answer repeats.
const ECHO_LIMIT: usize = 64;

/// An error answer: a status and a reason (and the query parameter at fault, if one is),
/// sent as JSON `{"error": ..., "parameter": ...}`.
#[derive(Debug)]
pub(super) struct ApiError {
    /// The status.
    pub(super) status: StatusCode,
    /// Why.
    pub(super) reason: String,
    /// The query parameter at fault, if one is.
    pub(super) parameter: Option<&'static str>,
}

/// What a `503` answer's `Retry-After` header says, in seconds: rebalances and restores
/// take seconds.
pub const RETRY_AFTER_SECS: u64 = 1;

impl ApiError {
    pub(super) fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            parameter: None,
        }
    }

    /// A `503`: the answer cannot be complete right now (a task restores or moves, an
    /// instance does not answer); the client may retry.
    pub(super) fn retry(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, reason)
    }

    /// A `400` about query parameter `name`.
    pub(super) fn parameter(name: &'static str, reason: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            reason: reason.into(),
            parameter: Some(name),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.parameter {
            Some(name) => serde_json::json!({ "error": self.reason, "parameter": name }),
            None => serde_json::json!({ "error": self.reason }),
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(RETRY_AFTER_SECS),
            );
        }
        response
    }
}

impl From<streams_core::error::StreamsError> for ApiError {
    fn from(e: streams_core::error::StreamsError) -> Self {
        // Stores move during rebalances: the client may retry.
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}
/// A JSON answer or an error answer.
pub(super) type ApiResult<T> = Result<axum::Json<T>, ApiError>;

/// At most [`ECHO_LIMIT`] characters of `s`, for an error answer (which must not grow
/// with the request).
pub(super) fn echo(s: &str) -> String {
    match s.char_indices().nth(ECHO_LIMIT) {
        Some((at, _)) => format!("{}...", &s[..at]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_repeat_a_bounded_part_of_the_request() {
        assert_eq!(echo("short"), "short");
        let long = "é".repeat(10_000);
        let echoed = echo(&long);
        assert_eq!(echoed.chars().count(), ECHO_LIMIT + 3);
        assert!(echoed.ends_with("..."));
    }
}
