//! The path to the AI service: pooled client, circuit breakers, SSE parsing.
//!
//! Nothing here knows about axum: routes turn an [`UpstreamError`] or a breaker [`Rejected`]
//! into a problem code or a fallback.

pub mod breaker;
pub mod error;
pub mod sse;

pub use breaker::{BreakerConfig, BreakerObserver, BreakerState, CircuitBreaker, Permit, Rejected};
pub use error::UpstreamError;
pub use sse::{SseEvent, SseLimits, sse_events};
