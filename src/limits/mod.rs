//! Rate limits per client and class, and the per-user cap on open streams.
//!
//! Without Redis, limits are kept in-process (governor). With Redis, an atomic GCRA script
//! makes a limit hold across instances, handing out small leases of tokens to clients with
//! plenty left; when Redis is unreachable the local limiter takes over for that check, so a
//! Redis outage never lifts the limits.

mod lease;
mod local;
mod redis_gcra;
mod streams;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use local::LocalLimiter;
pub use redis_gcra::RedisLimiter;
pub use streams::{StreamSlot, StreamSlots, TooManyStreams};

use crate::config::RateLimitSettings;
use crate::metrics::Metrics;

/// The two limit classes of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitClass {
    /// Every request.
    General,
    /// AI-costly routes (scenario/conversation creation, messages, `/v1/*`).
    Ai,
}

impl LimitClass {
    /// Label and key name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::General => "general",
            Self::Ai => "ai",
        }
    }
}

/// A bucket's shape: sustained `rate` per `period`, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    /// Requests admitted in a burst.
    pub burst: u32,
    /// Time to earn one request back.
    pub emission_interval: Duration,
}

impl Quota {
    /// Seconds for an empty bucket to refill: the `w` of `RateLimit-Policy`.
    pub fn window_secs(&self) -> u64 {
        let total = self.emission_interval * self.burst;
        total.as_secs().max(1)
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Admitted; `remaining` requests could follow at once; `reset` until the bucket is full.
    Allowed {
        /// Requests left in the burst.
        remaining: u32,
        /// Time until fully refilled.
        reset: Duration,
    },
    /// Refused; retry after this long.
    Limited {
        /// Time until one request is admitted.
        retry_after: Duration,
    },
}

/// The configured quotas of both classes.
#[derive(Debug, Clone, Copy)]
pub struct Quotas {
    /// General class.
    pub general: Quota,
    /// AI class.
    pub ai: Quota,
}

impl Quotas {
    /// From the contract's settings.
    pub fn from_settings(s: &RateLimitSettings) -> Self {
        Self {
            general: Quota {
                burst: s.burst,
                emission_interval: Duration::from_secs(1) / s.per_second,
            },
            ai: Quota {
                burst: s.ai_burst,
                emission_interval: Duration::from_secs(60) / s.ai_per_minute,
            },
        }
    }

    /// The quota of a class.
    pub fn of(&self, class: LimitClass) -> Quota {
        match class {
            LimitClass::General => self.general,
            LimitClass::Ai => self.ai,
        }
    }
}

/// The limiter the HTTP layer uses: Redis when configured, local otherwise or as fallback.
#[derive(Clone)]
pub struct RateLimiter {
    quotas: Quotas,
    local: Arc<LocalLimiter>,
    redis: Option<RedisLimiter>,
    fallback_logged: Arc<AtomicBool>,
    metrics: Metrics,
}

impl RateLimiter {
    /// A limiter; `redis` makes limits shared across instances.
    pub fn new(quotas: Quotas, redis: Option<RedisLimiter>, metrics: Metrics) -> Self {
        Self {
            quotas,
            local: Arc::new(LocalLimiter::new(quotas)),
            redis,
            fallback_logged: Arc::new(AtomicBool::new(false)),
            metrics,
        }
    }

    /// The quotas in force (for the `RateLimit-Policy` header).
    pub fn quotas(&self) -> Quotas {
        self.quotas
    }

    /// The in-process limiter (its sweeper is started by the application).
    pub fn local(&self) -> Arc<LocalLimiter> {
        self.local.clone()
    }

    /// Checks and counts one request of `class` for `key` (a user id or an IP).
    pub async fn check(&self, class: LimitClass, key: &str) -> Decision {
        if let Some(redis) = &self.redis {
            match redis.check(class, self.quotas.of(class), key).await {
                Ok(decision) => {
                    if self.fallback_logged.swap(false, Ordering::Relaxed) {
                        tracing::info!("Redis rate limiter reachable again");
                    }
                    return decision;
                }
                Err(err) => {
                    self.metrics.rate_limiter_fallback();
                    if !self.fallback_logged.swap(true, Ordering::Relaxed) {
                        tracing::warn!(error = %err, "Redis rate limiter unreachable; limiting locally");
                    }
                }
            }
        }
        self.local.check(class, key)
    }
}
