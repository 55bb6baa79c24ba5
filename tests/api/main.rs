//! Integration tests, one binary for all (linking once is what takes time).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bus;
mod support;
