//! What sluice does, free of HTTP: scenarios with search fallbacks, conversation generation,
//! chat. Handlers call in here; infrastructure is reached through the store, the AI service,
//! the cache and the event bus.

pub mod chat;
pub mod generation;
pub mod pagination;
pub mod progress;
pub mod scenarios;

use crate::store::StoreError;
use crate::upstream::CallError;

/// Failures of domain operations; mapped to problem+json in `crate::error`.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// Input out of range.
    #[error("{field}: {message}")]
    Validation {
        /// The field as named in the request.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The thing does not exist for this user.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The conversation is still being generated.
    #[error("conversation is not ready")]
    NotReady,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The AI service failed or its breaker is open.
    #[error("AI service: {0}")]
    Upstream(#[from] CallError),
}

impl DomainError {
    /// A validation error for `field`.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Validation {
            field,
            message: message.into(),
        }
    }
}

/// Checks a text field's length in characters (after trimming) against `min..=max`.
pub fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), DomainError> {
    let len = value.trim().chars().count();
    if len == 0 {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(())
}
