//! The shared cache in Redis.

use std::time::Duration;

use bytes::Bytes;

use super::Cache;
use crate::redis_link::RedisLink;

/// Redis-backed cache; keys are prefixed `sluice:cache:`.
pub struct RedisCache {
    link: RedisLink,
}

impl RedisCache {
    /// A cache over the shared connection.
    pub fn new(link: RedisLink) -> Self {
        Self { link }
    }
}

#[async_trait::async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> Option<Bytes> {
        let mut conn = self.link.conn();
        let result: Result<Option<Vec<u8>>, _> = redis::cmd("GET")
            .arg(format!("sluice:cache:{key}"))
            .query_async(&mut conn)
            .await;
        match result {
            Ok(value) => value.map(Bytes::from),
            Err(err) => {
                tracing::debug!(error = %err, "cache read failed; treating as a miss");
                None
            }
        }
    }

    async fn put(&self, key: &str, value: Bytes, ttl: Duration) {
        let mut conn = self.link.conn();
        let result: Result<(), _> = redis::cmd("SET")
            .arg(format!("sluice:cache:{key}"))
            .arg(value.as_ref())
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut conn)
            .await;
        if let Err(err) = result {
            tracing::debug!(error = %err, "cache write failed");
        }
    }
}
