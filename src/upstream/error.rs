//! One error type for everything that can go wrong on the way to an upstream, shaped so that
//! callers can decide: fall back, count a breaker failure, retry, or map to a problem code.
//!
//! No variant's `Display` contains a URL, a header or a response body: the upstream's own words
//! (status bodies, decode errors) are kept in fields for `Debug` logs only, and the wrapped
//! transport errors of hyper's client never carry the URL, so credentials in a configured URL
//! cannot leak.

use std::time::Duration;

use super::transport::{BoxError, TransportError};

/// How many bytes of an error response body are kept for the logs.
pub(crate) const STATUS_BODY_LOG_LIMIT: usize = 1024;

/// Why an upstream call did not produce a usable answer.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The TCP/TLS connection could not be opened (refused, unreachable, connect timeout).
    #[error("could not connect to the upstream")]
    Connect(#[source] BoxError),
    /// No answer within the call's time budget (whole call, or first byte of a stream).
    #[error("the upstream did not answer within {0:?}")]
    Timeout(Duration),
    /// The upstream answered with a non-success status.
    ///
    /// `body` is the start of the response body, for logs only: it may contain anything the
    /// upstream chose to say, so it is never part of `Display`.
    #[error("the upstream answered with status {status}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// Start of the body (at most 1 KiB, lossy UTF-8), for logs.
        body: String,
    },
    /// The connection broke after the request was sent, before or while reading the body.
    #[error("the upstream response broke off")]
    Stream(#[source] Option<BoxError>),
    /// A stream went silent for longer than the idle timeout after it had started.
    #[error("the upstream stream was silent for more than {0:?}")]
    IdleTimeout(Duration),
    /// The answer arrived but could not be understood (bad JSON, bad framing).
    ///
    /// `detail` may quote upstream content, so it is for logs only.
    #[error("the upstream sent a malformed response")]
    Malformed {
        /// What was wrong, for logs.
        detail: String,
    },
    /// The answer (a body, an SSE line or an SSE event) exceeded a size cap.
    #[error("the upstream sent a {what} larger than {limit} bytes")]
    TooLarge {
        /// Which unit exceeded its cap: `"body"`, `"line"` or `"event"`.
        what: &'static str,
        /// The cap, in bytes.
        limit: usize,
    },
    /// The request could not be built or sent for a local reason (bad URL, bad header, TLS
    /// set-up); the upstream was never reached.
    #[error("the upstream request could not be built: {0}")]
    Request(&'static str),
}

impl UpstreamError {
    /// Whether this outcome should count against the upstream's circuit breaker.
    ///
    /// Connection failures, timeouts, 5xx, broken or unreadable answers mean the upstream is
    /// unhealthy. A 4xx (or any other non-5xx status) means it answered and judged our request,
    /// and a local `Request` error never reached it: neither says anything about its health.
    pub fn counts_as_failure(&self) -> bool {
        match self {
            Self::Status { status, .. } => *status >= 500,
            Self::Request(_) => false,
            Self::Connect(_)
            | Self::Timeout(_)
            | Self::Stream(_)
            | Self::IdleTimeout(_)
            | Self::Malformed { .. }
            | Self::TooLarge { .. } => true,
        }
    }

    /// Whether trying the same idempotent call again may succeed.
    ///
    /// Only failures of the transport or a 5xx are transient; a malformed or oversized answer
    /// would most likely come back the same, and a 4xx certainly would.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect(_) | Self::Timeout(_) | Self::Stream(_) | Self::IdleTimeout(_) => true,
            Self::Status { status, .. } => *status >= 500 && *status != 501,
            Self::Malformed { .. } | Self::TooLarge { .. } | Self::Request(_) => false,
        }
    }

    /// The upstream's status code, when it answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Sorts an error of the transport (no response head) into our variants.
    pub(crate) fn from_client(err: TransportError) -> Self {
        match err {
            TransportError::Connect(_) | TransportError::BadUrl => Self::Connect(Box::new(err)),
            TransportError::Request(_) | TransportError::Exchange(_) => {
                Self::Stream(Some(Box::new(err)))
            }
        }
    }

    /// A response body that broke off.
    pub(crate) fn from_body(err: hyper::Error) -> Self {
        Self::Stream(Some(Box::new(err)))
    }

    /// Builds a `Status` error, keeping at most [`STATUS_BODY_LOG_LIMIT`] bytes of the body.
    pub(crate) fn status_with_body(status: u16, body: &[u8]) -> Self {
        let kept = &body[..body.len().min(STATUS_BODY_LOG_LIMIT)];
        Self::Status {
            status,
            body: String::from_utf8_lossy(kept).into_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn only_unhealthy_upstreams_count_as_failures() {
        assert!(UpstreamError::Timeout(Duration::from_secs(1)).counts_as_failure());
        assert!(UpstreamError::IdleTimeout(Duration::from_secs(1)).counts_as_failure());
        assert!(UpstreamError::Stream(None).counts_as_failure());
        assert!(UpstreamError::status_with_body(500, b"").counts_as_failure());
        assert!(UpstreamError::status_with_body(503, b"").counts_as_failure());
        assert!(!UpstreamError::status_with_body(404, b"").counts_as_failure());
        assert!(!UpstreamError::status_with_body(429, b"").counts_as_failure());
        assert!(!UpstreamError::Request("bad url").counts_as_failure());
    }

    #[test]
    fn four_hundreds_and_malformed_answers_are_not_retried() {
        assert!(UpstreamError::status_with_body(502, b"").is_transient());
        assert!(!UpstreamError::status_with_body(501, b"").is_transient());
        assert!(!UpstreamError::status_with_body(400, b"").is_transient());
        let malformed = UpstreamError::Malformed { detail: "x".into() };
        assert!(!malformed.is_transient());
        assert!(malformed.counts_as_failure());
    }

    #[test]
    fn display_never_shows_the_upstream_body() {
        let err = UpstreamError::status_with_body(500, b"secret stack trace");
        assert_eq!(err.to_string(), "the upstream answered with status 500");
        let err = UpstreamError::Malformed {
            detail: "invalid type: string \"token\"".into(),
        };
        assert!(!err.to_string().contains("token"));
    }

    #[test]
    fn status_bodies_are_truncated_for_logs() {
        let big = vec![b'a'; STATUS_BODY_LOG_LIMIT * 3];
        match UpstreamError::status_with_body(502, &big) {
            UpstreamError::Status { status, body } => {
                assert_eq!(status, 502);
                assert_eq!(body.len(), STATUS_BODY_LOG_LIMIT);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
