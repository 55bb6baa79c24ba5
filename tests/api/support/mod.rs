//! Helpers shared by the integration tests.

pub mod chaos_proxy;
pub mod redis_server;
