//! Calls to other instances: a minimal HTTP/1.1 client with a time and size limit, and
//! the forwarding of a request to the instance that owns its key.

use std::time::Duration;

use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use streams_core::query::HostInfo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::error::{ApiError, echo};

/// How long a call to another instance may take, connecting and reading included.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(3);
/// The largest answer read from another instance (status line and headers included).
/// An instance's part of the windows of the last hour is about 100 bytes per page and
/// minute: 6 MB for 1 000 pages viewed every minute, all on one instance.
pub const MAX_PEER_RESPONSE: usize = 16 << 20;
/// Marks a request forwarded by another instance: it is answered here, never forwarded
/// again (two instances with different views of a rebalance would otherwise pass it back
/// and forth).
pub(super) const FORWARDED: &str = "x-activity-forwarded";

/// What went wrong calling another instance of the app.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// It could not be reached, or the connection broke.
    #[error("instance {host}: {source}")]
    Unreachable {
        /// The instance.
        host: HostInfo,
        /// What the connection reported.
        #[source]
        source: std::io::Error,
    },
    /// It did not answer in time.
    #[error("instance {host}: no answer within {after:?}")]
    Timeout {
        /// The instance.
        host: HostInfo,
        /// The time it had.
        after: Duration,
    },
    /// Its answer was larger than the limit ([`MAX_PEER_RESPONSE`]).
    #[error("instance {host}: the answer to {path} is larger than {limit} bytes")]
    TooLarge {
        /// The instance.
        host: HostInfo,
        /// The path asked for (its start, if long).
        path: String,
        /// The limit, in bytes.
        limit: usize,
    },
    /// Its answer was not HTTP as this client reads it, or not the JSON expected.
    #[error("instance {host}: malformed answer to {path}: {reason}")]
    Malformed {
        /// The instance.
        host: HostInfo,
        /// The path asked for (its start, if long).
        path: String,
        /// What is wrong with the answer.
        reason: String,
    },
    /// It answered with another status than 200.
    #[error("instance {host} answered {path} with \"{status_line}\"")]
    Status {
        /// The instance.
        host: HostInfo,
        /// The path asked for (its start, if long).
        path: String,
        /// The status code.
        status: u16,
        /// The status line of the answer.
        status_line: String,
    },
}

impl PeerError {
    /// The status this instance answers with when a forwarded request fails so: `503`
    /// (the client may retry once the group has moved the partitions) when the instance
    /// is unreachable, too slow or unavailable itself, `502` otherwise.
    pub fn status(&self) -> StatusCode {
        match self {
            PeerError::Unreachable { .. } | PeerError::Timeout { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            PeerError::Status { status: 503, .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

impl From<PeerError> for ApiError {
    fn from(e: PeerError) -> Self {
        ApiError::new(e.status(), e.to_string())
    }
}

/// Answers with what `owner` answers to the same request (marked [`FORWARDED`]).
pub(super) async fn forward(owner: &HostInfo, uri: &Uri) -> Result<Response, ApiError> {
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let body = request(owner, path, &[(FORWARDED, "1")]).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The JSON answer of `host` to `GET path`.
pub(super) async fn get_json<T: serde::de::DeserializeOwned>(
    host: &HostInfo,
    path: &str,
) -> Result<T, PeerError> {
    let body = http_get(host, path).await?;
    serde_json::from_str(&body).map_err(|e| PeerError::Malformed {
        host: host.clone(),
        path: echo(path),
        reason: format!("bad JSON: {e}"),
    })
}

/// A minimal HTTP/1.1 GET to another instance (they all run this server): the body of a
/// 200 answer, or what went wrong. The call takes at most [`PEER_TIMEOUT`] and reads at
/// most [`MAX_PEER_RESPONSE`] bytes.
///
/// # Errors
///
/// A [`PeerError`] when the instance cannot be reached or does not answer in time, when
/// its answer is too large or malformed, or when its status is not 200.
pub async fn http_get(host: &HostInfo, path: &str) -> Result<String, PeerError> {
    request(host, path, &[]).await
}

/// [`http_get`] with extra request headers.
async fn request(
    host: &HostInfo,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<String, PeerError> {
    call(host, path, headers, MAX_PEER_RESPONSE, PEER_TIMEOUT).await
}

/// [`request`] with a size limit (of the whole answer, header included) and a timeout.
async fn call(
    host: &HostInfo,
    path: &str,
    headers: &[(&str, &str)],
    limit: usize,
    timeout: Duration,
) -> Result<String, PeerError> {
    let io = |source| PeerError::Unreachable {
        host: host.clone(),
        source,
    };
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect((host.host.as_str(), host.port))
            .await
            .map_err(io)?;
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAccept: application/json\r\n"
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.map_err(io)?;
        // One byte more than the limit tells an answer at the limit from a larger one.
        let mut raw = Vec::new();
        (&mut stream)
            .take(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1))
            .read_to_end(&mut raw)
            .await
            .map_err(io)?;
        if raw.len() > limit {
            return Err(PeerError::TooLarge {
                host: host.clone(),
                path: echo(path),
                limit,
            });
        }
        Ok(raw)
    };
    let raw = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| PeerError::Timeout {
            host: host.clone(),
            after: timeout,
        })??;
    body_of(host, path, &raw)
}

/// The body of a complete HTTP/1.x answer `raw` whose status is 200.
fn body_of(host: &HostInfo, path: &str, raw: &[u8]) -> Result<String, PeerError> {
    let malformed = |reason: String| PeerError::Malformed {
        host: host.clone(),
        path: echo(path),
        reason,
    };
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| malformed("no complete HTTP header".into()))?;
    let head = std::str::from_utf8(&raw[..end])
        .map_err(|_| malformed("an HTTP header that is not UTF-8".into()))?;
    let body = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut words = status_line.split_whitespace();
    let status = match (words.next(), words.next().map(str::parse::<u16>)) {
        (Some(version), Some(Ok(code))) if version.starts_with("HTTP/1.") => code,
        _ => return Err(malformed(format!("status line \"{}\"", echo(status_line)))),
    };
    if status != 200 {
        return Err(PeerError::Status {
            host: host.clone(),
            path: echo(path),
            status,
            status_line: echo(status_line),
        });
    }
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(malformed(format!("header line \"{}\"", echo(line))));
        };
        let (name, value) = (name.trim(), value.trim());
        // The instances' server (hyper) sends complete bodies with a length; a chunked
        // body would be passed on with its framing.
        if name.eq_ignore_ascii_case("transfer-encoding") && !value.eq_ignore_ascii_case("identity")
        {
            return Err(malformed(format!("transfer encoding \"{}\"", echo(value))));
        }
        if name.eq_ignore_ascii_case("content-length") && value.parse() != Ok(body.len()) {
            return Err(malformed(format!(
                "{} body bytes, content-length \"{}\"",
                body.len(),
                echo(value)
            )));
        }
    }
    String::from_utf8(body.to_vec()).map_err(|_| malformed("a body that is not UTF-8".into()))
}
#[cfg(test)]
mod tests {
    use super::*;

    /// or holds it open without answering when `answer` is `None`.
    async fn fake_peer(answer: Option<Vec<u8>>) -> HostInfo {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            match answer {
                // The client may stop reading (and close) before the end.
                Some(answer) => {
                    let _ = stream.write_all(&answer).await;
                    let _ = stream.shutdown().await;
                }
                None => tokio::time::sleep(Duration::from_secs(30)).await,
            }
        });
        HostInfo {
            host: "127.0.0.1".into(),
            port,
        }
    }

    fn answer(status_line: &str, headers: &str, body: &[u8]) -> Vec<u8> {
        let mut a = format!("{status_line}\r\n{headers}\r\n").into_bytes();
        a.extend_from_slice(body);
        a
    }

    fn ok_answer(body: &[u8]) -> Vec<u8> {
        answer(
            "HTTP/1.1 200 OK",
            &format!(
                "content-type: application/json\r\ncontent-length: {}\r\n",
                body.len()
            ),
            body,
        )
    }

    async fn call_fake(answer: Option<Vec<u8>>, limit: usize) -> Result<String, PeerError> {
        let host = fake_peer(answer).await;
        call(
            &host,
            "/api/local/alerts",
            &[],
            limit,
            Duration::from_secs(2),
        )
        .await
    }

    #[tokio::test]
    async fn peer_answers_are_read_up_to_the_limit() {
        let whole = ok_answer(b"[1,2,3]");
        let at_limit = whole.len();
        assert_eq!(
            call_fake(Some(whole.clone()), at_limit).await.unwrap(),
            "[1,2,3]"
        );
        let e = call_fake(Some(whole), at_limit - 1).await.unwrap_err();
        assert!(matches!(e, PeerError::TooLarge { .. }), "{e}");
        assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
        // A large answer without an end: read only up to the limit.
        let huge = ok_answer(&vec![b'['; 8 << 20]);
        let e = call_fake(Some(huge), 1 << 20).await.unwrap_err();
        assert!(
            matches!(e, PeerError::TooLarge { limit, .. } if limit == 1 << 20),
            "{e}"
        );
    }

    #[tokio::test]
    async fn bad_peer_answers_are_errors() {
        for bad in [
            b"garbage".to_vec(),
            b"garbage\r\n\r\n{}".to_vec(),
            Vec::new(),
            answer("HTTP/1.1 200 OK", "content-length: 10\r\n", b"[1]"),
            answer(
                "HTTP/1.1 200 OK",
                "transfer-encoding: chunked\r\n",
                b"3\r\n[1]\r\n0\r\n\r\n",
            ),
            answer("HTTP/1.1 200 OK", "no colon\r\n", b"[]"),
            answer("HTTP/1.1 200 OK", "", &[0xff, 0xfe]),
        ] {
            let e = call_fake(Some(bad.clone()), 1 << 20).await.unwrap_err();
            assert!(
                matches!(e, PeerError::Malformed { .. }),
                "{}: {e}",
                String::from_utf8_lossy(&bad)
            );
            assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
        }
        let e = call_fake(Some(answer("HTTP/1.1 404 Not Found", "", b"")), 1 << 20)
            .await
            .unwrap_err();
        assert!(matches!(e, PeerError::Status { status: 404, .. }), "{e}");
        assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
        let unavailable = answer("HTTP/1.1 503 Service Unavailable", "", b"{}");
        let e = call_fake(Some(unavailable), 1 << 20).await.unwrap_err();
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE, "{e}");
    }

    #[tokio::test]
    async fn unreachable_and_silent_peers_are_unavailable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let gone = HostInfo {
            host: "127.0.0.1".into(),
            port,
        };
        let e = call(&gone, "/", &[], 1024, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(e, PeerError::Unreachable { .. }), "{e}");
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);

        let silent = fake_peer(None).await;
        let e = call(&silent, "/", &[], 1024, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(e, PeerError::Timeout { .. }), "{e}");
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
