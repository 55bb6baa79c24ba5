//! The simulated internal AI service (`sluice mock-ai`, and in-process when no
//! `AI_SERVICE_URL` is configured).
//!
//! It behaves like the real service described in CONTRACT.md section 6, failures included:
//! `/__mock/faults` makes it fail on purpose, `/__mock/stats` tells what reached it, and
//! `/__mock/hold` pauses streams half-way, so gateway tests can check resilience without sleeps.
//!
//! Layout: `config` and `server` are the public face; `router` lists every route; `routes/*`
//! are the handlers; `faults`, `stats`, `hold` and `request_log` are the test controls' state; `token_stream`
//! and `sse` produce streamed answers; `generation` and `progress` carry out accepted jobs.

mod ai_body;
mod auth;
mod config;
mod error;
mod fault_reply;
mod faults;
mod generation;
mod hold;
mod progress;
mod request_log;
mod router;
mod routes;
mod server;
mod sse;
mod state;
mod stats;
mod text;
mod token_stream;

pub use config::{
    DEFAULT_BIND, DEFAULT_STAGE_DELAY_MS, DEFAULT_TOKEN_DELAY_MS, DEFAULT_TOKENS, MAX_TOKENS,
    MockAiConfig, SimConfigError,
};
pub use error::SimError;
pub use fault_reply::{INTERNAL_ERROR_DETAIL, LEAK_CANARY};
pub use routes::openai::MOCK_MODEL;
pub use server::{MockAiHandle, listen, run, spawn};
