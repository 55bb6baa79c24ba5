//! One integration test binary; each area of the gateway has its own module.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth;
mod bus;
mod chat;
mod cli;
mod conversations;
mod errors;
mod health;
mod helpers;
mod jwks;
mod mock_ai;
mod openai;
mod openapi;
mod passthrough;
mod progress;
mod rate_limits;
mod scenarios;
mod shutdown;
mod store;
mod support;
mod upstream;
