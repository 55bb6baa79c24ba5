//! Every lower layer's error becomes an [`ApiError`] here, and nowhere else.

use super::{ApiError, ErrorCode};
use crate::auth::AuthError;
use crate::store::StoreError;

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Missing => Self::unauthorized("authentication required"),
            AuthError::Expired => Self::unauthorized("token has expired"),
            AuthError::Invalid(_) => Self::unauthorized("invalid token"),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Database(sqlx::Error::PoolTimedOut)
            | StoreError::Database(sqlx::Error::Io(_)) => {
                tracing::error!(error = %err, "database unavailable");
                Self::new(ErrorCode::ServiceUnavailable, "the database is unavailable")
            }
            other => Self::internal(other),
        }
    }
}

impl From<crate::domain::DomainError> for ApiError {
    fn from(err: crate::domain::DomainError) -> Self {
        use crate::domain::DomainError;
        match err {
            DomainError::Validation { field, message } => Self::validation(field, message),
            DomainError::NotFound(what) => Self::not_found(what),
            DomainError::NotReady => Self::new(
                ErrorCode::ConversationNotReady,
                "the conversation is still being generated",
            ),
            DomainError::Store(err) => err.into(),
            DomainError::Upstream(err) => err.into(),
        }
    }
}

impl From<crate::upstream::CallError> for ApiError {
    fn from(err: crate::upstream::CallError) -> Self {
        use crate::upstream::{CallError, UpstreamError};
        match err {
            CallError::Rejected(rejected) => Self::new(
                ErrorCode::AiUnavailable,
                "the AI service is unavailable right now; try again shortly",
            )
            .with_retry_after(rejected.retry_after),
            CallError::Upstream(err) => {
                tracing::warn!(error = %err, "AI service call failed");
                match err {
                    UpstreamError::Timeout(_) | UpstreamError::IdleTimeout(_) => Self::new(
                        ErrorCode::UpstreamTimeout,
                        "the AI service did not answer in time",
                    ),
                    UpstreamError::Connect(_) => Self::new(
                        ErrorCode::AiUnavailable,
                        "the AI service is unavailable right now; try again shortly",
                    )
                    .with_retry_after(std::time::Duration::from_secs(5)),
                    _ => Self::new(ErrorCode::UpstreamError, "the AI service failed"),
                }
            }
        }
    }
}

impl From<crate::limits::TooManyStreams> for ApiError {
    fn from(err: crate::limits::TooManyStreams) -> Self {
        Self::new(
            ErrorCode::TooManyStreams,
            format!("at most {} streams may be open at once", err.limit),
        )
    }
}
