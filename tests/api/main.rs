//! One integration test binary; each area of the gateway has its own module.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bus;
mod support;
mod upstream;
