//! The in-process cache: TTL per entry, and a hard cap on entries (oldest insert evicted).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::Cache;

struct Entries {
    values: HashMap<String, (Instant, Bytes)>,
    order: VecDeque<String>,
}

/// Bounded memory cache.
pub struct MemoryCache {
    max_entries: usize,
    entries: Mutex<Entries>,
}

impl MemoryCache {
    /// A cache holding at most `max_entries`.
    pub fn new(max_entries: usize) -> Self {
        Self {
            max_entries: max_entries.max(1),
            entries: Mutex::new(Entries {
                values: HashMap::new(),
                order: VecDeque::new(),
            }),
        }
    }

    /// Entries held (expired ones included until evicted).
    pub fn len(&self) -> usize {
        self.lock().values.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait::async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Option<Bytes> {
        let mut entries = self.lock();
        match entries.values.get(key) {
            Some((expires, value)) if *expires > Instant::now() => Some(value.clone()),
            Some(_) => {
                entries.values.remove(key);
                None
            }
            None => None,
        }
    }

    async fn put(&self, key: &str, value: Bytes, ttl: Duration) {
        let mut entries = self.lock();
        let expires = Instant::now() + ttl;
        if entries
            .values
            .insert(key.to_string(), (expires, value))
            .is_none()
        {
            entries.order.push_back(key.to_string());
        }
        while entries.values.len() > self.max_entries {
            let Some(oldest) = entries.order.pop_front() else {
                break;
            };
            entries.values.remove(&oldest);
        }
        // Keep the order queue from growing with keys already evicted by expiry.
        if entries.order.len() > self.max_entries * 2 {
            let Entries { values, order } = &mut *entries;
            order.retain(|k| values.contains_key(k));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn expires_and_stays_bounded() {
        let cache = MemoryCache::new(2);
        cache
            .put("a", Bytes::from("1"), Duration::from_secs(10))
            .await;
        assert_eq!(cache.get("a").await, Some(Bytes::from("1")));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(cache.get("a").await, None);
        for k in ["x", "y", "z"] {
            cache.put(k, Bytes::from(k), Duration::from_secs(60)).await;
        }
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get("x").await, None, "oldest evicted");
        assert!(cache.get("z").await.is_some());
    }
}
