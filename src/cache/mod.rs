//! A small key/value cache with TTL: in memory (bounded) for one instance, in Redis (under
//! `sluice:cache:`) when instances share it. A cache failure is a miss, never an error.

mod memory;
mod redis_cache;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

pub use memory::MemoryCache;
pub use redis_cache::RedisCache;

/// The cache interface both implementations share.
#[async_trait::async_trait]
pub trait Cache: Send + Sync + 'static {
    /// The value, if present and fresh.
    async fn get(&self, key: &str) -> Option<Bytes>;
    /// Stores a value for `ttl`.
    async fn put(&self, key: &str, value: Bytes, ttl: Duration);
}

/// A shared cache handle.
pub type SharedCache = Arc<dyn Cache>;

/// A stable key from parts (SHA-256, hex), so user input never shapes Redis key syntax.
pub fn key(namespace: &str, parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{namespace}:{hex}")
}
