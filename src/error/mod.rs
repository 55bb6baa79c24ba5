//! The one HTTP error type, rendered as RFC 9457 problem+json in one place.
//!
//! Each layer has its own error type (config, auth, store, upstream); the `From` impls at the
//! bottom of this file are the only place they become HTTP responses. Internal details are
//! logged once here and never sent.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::http::request_id;

/// The contract's error codes (CONTRACT.md section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Missing or invalid token.
    Unauthorized,
    /// Authenticated but not allowed.
    Forbidden,
    /// Cookie-authenticated unsafe request from a foreign origin.
    CsrfRejected,
    /// No such resource for this user.
    NotFound,
    /// Malformed input.
    ValidationFailed,
    /// Body over the size limit.
    PayloadTooLarge,
    /// The conversation is still being generated.
    ConversationNotReady,
    /// A rate limit was hit.
    RateLimited,
    /// Too many concurrent streams for this user.
    TooManyStreams,
    /// The AI service is down or its breaker is open.
    AiUnavailable,
    /// The AI service did not answer in time.
    UpstreamTimeout,
    /// The AI service answered with an error.
    UpstreamError,
    /// A dependency of sluice itself is down.
    ServiceUnavailable,
    /// A bug or an unexpected failure.
    Internal,
}

impl ErrorCode {
    /// The wire name of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::CsrfRejected => "csrf_rejected",
            Self::NotFound => "not_found",
            Self::ValidationFailed => "validation_failed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::ConversationNotReady => "conversation_not_ready",
            Self::RateLimited => "rate_limited",
            Self::TooManyStreams => "too_many_streams",
            Self::AiUnavailable => "ai_unavailable",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::UpstreamError => "upstream_error",
            Self::ServiceUnavailable => "service_unavailable",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status the code maps to.
    pub fn status(self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::CsrfRejected => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::ValidationFailed => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::ConversationNotReady => StatusCode::CONFLICT,
            Self::RateLimited | Self::TooManyStreams => StatusCode::TOO_MANY_REQUESTS,
            Self::AiUnavailable | Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::UpstreamError => StatusCode::BAD_GATEWAY,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::Unauthorized => "Authentication required",
            Self::Forbidden => "Forbidden",
            Self::CsrfRejected => "Cross-site request rejected",
            Self::NotFound => "Not found",
            Self::ValidationFailed => "Invalid request",
            Self::PayloadTooLarge => "Request body too large",
            Self::ConversationNotReady => "Conversation not ready",
            Self::RateLimited => "Too many requests",
            Self::TooManyStreams => "Too many open streams",
            Self::AiUnavailable => "AI service unavailable",
            Self::UpstreamTimeout => "AI service timed out",
            Self::UpstreamError => "AI service error",
            Self::ServiceUnavailable => "Service unavailable",
            Self::Internal => "Internal error",
        }
    }
}

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldError {
    /// The field as named in the request (`content`, `scenario_id`, …).
    pub field: String,
    /// What is wrong, for a person.
    pub message: String,
}

/// An error on its way to becoming a problem+json response (boxed: errors are rare and
/// `Result`s should stay small).
#[derive(Debug)]
pub struct ApiError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    code: ErrorCode,
    detail: String,
    errors: Vec<FieldError>,
    headers: HeaderMap,
}

#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
    request_id: Option<String>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [FieldError],
}

impl ApiError {
    /// An error with a code and a detail meant for the client.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self(Box::new(Inner {
            code,
            detail: detail.into(),
            errors: Vec::new(),
            headers: HeaderMap::new(),
        }))
    }

    /// 401 with the `WWW-Authenticate` challenge the contract requires.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, detail)
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    /// 404 without telling whether the thing exists for someone else.
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    /// 400 naming one field.
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(ErrorCode::ValidationFailed, format!("{field}: {message}")).with_field_errors(
            vec![FieldError {
                field: field.to_string(),
                message,
            }],
        )
    }

    /// 500: logs the cause once, sends nothing of it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorCode::Internal, "an unexpected error occurred")
    }

    /// Adds the list of invalid fields.
    pub fn with_field_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.0.errors = errors;
        self
    }

    /// Adds a response header (challenge, rate-limit headers).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.0.headers.insert(name, value);
        self
    }

    /// Adds `Retry-After` in whole seconds, rounded up, at least 1.
    pub fn with_retry_after(self, wait: Duration) -> Self {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        self.with_header(header::RETRY_AFTER, HeaderValue::from(secs.max(1)))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.0.code.as_str(), self.0.detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.0.code.status();
        let body = ProblemBody {
            kind: format!(
                "https://sluice.dev/problems/{}",
                self.0.code.as_str().replace('_', "-")
            ),
            title: self.0.code.title(),
            status: status.as_u16(),
            detail: &self.0.detail,
            code: self.0.code.as_str(),
            request_id: request_id::current(),
            errors: &self.0.errors,
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (status, bytes).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response.headers_mut().extend(self.0.headers);
        response
    }
}

mod conversions;
