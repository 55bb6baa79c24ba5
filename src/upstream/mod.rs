//! The path to the AI service: pooled client, circuit breakers, SSE parsing.
//!
//! Nothing here knows about axum: routes turn an [`UpstreamError`] or a breaker [`Rejected`]
//! into a problem code or a fallback. A typical call:
//!
//! ```ignore
//! let deadline = Instant::now() + client.call_timeout();
//! let found: Passages = retry(&search_breaker, &RetryPolicy::default(), deadline, || {
//!     client.post_json(&base, "/api/ai/search/passages", &query, &ctx)
//! })
//! .await?;
//! ```

pub mod ai_service;
pub mod base_url;
pub mod breaker;
pub mod byte_stream;
pub mod client;
pub mod error;
mod h1_stream;
mod pool;
pub mod retry;
pub mod sse;
pub mod transport;

pub use ai_service::{AiService, HistoryMessage, OpenAiUpstream, Passage, PassageQuery, Passages};
pub use base_url::BaseUrl;
pub use breaker::{BreakerConfig, BreakerObserver, BreakerState, CircuitBreaker, Permit, Rejected};
pub use byte_stream::{ByteStream, StreamTimeouts};
pub use client::{CallContext, UpstreamClient, UpstreamConfig, host_port};
pub use error::UpstreamError;
pub use retry::{CallError, RetryPolicy, guarded, record_outcome, retry};
pub use sse::{SseEvent, SseLimits, sse_events};
