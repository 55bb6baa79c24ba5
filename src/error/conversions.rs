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
