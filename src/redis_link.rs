//! The shared Redis connection for commands (rate limits, cache, readiness).
//!
//! Pub/sub has its own connection in `events`; everything else multiplexes over this one.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// A lazily connecting, self-reconnecting Redis command connection.
///
/// Created without touching the network, so sluice starts (and reports "not ready") while
/// Redis is down; every command has short timeouts so a dead Redis costs milliseconds.
#[derive(Clone)]
pub struct RedisLink {
    manager: ConnectionManager,
}

impl RedisLink {
    /// Prepares the connection; fails only on a malformed URL.
    pub fn new(url: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let manager = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self { manager })
    }

    /// A handle for issuing commands (cheap clone of a multiplexed connection).
    pub fn conn(&self) -> ConnectionManager {
        self.manager.clone()
    }

    /// Whether Redis answers `PING` right now.
    pub async fn ping(&self) -> bool {
        let mut conn = self.conn();
        let result: Result<String, _> = redis::cmd("PING").query_async(&mut conn).await;
        result.is_ok()
    }
}
