//! Limits shared across instances: GCRA in one Lua script, timed by the Redis server's clock
//! (so instances with skewed clocks agree). A client with plenty left gets a lease of several
//! tokens per round trip, spent locally (see [`super::lease`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::lease::{FIRST_LEASE, Grant, Leases};
use super::{Decision, LimitClass, Quota};
use crate::redis_link::RedisLink;

/// GCRA: the stored value is the theoretical arrival time (TAT) in microseconds.
/// ARGV: emission interval (µs), burst, lease asked for. Takes one token, or a sixteenth of the
/// tokens available when that is more (up to the lease asked for), so that leases shrink to one
/// token as the bucket empties.
/// Returns {granted, retry_after_us, remaining, reset_us}; granted 0 means limited.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local emission = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local max_lease = tonumber(ARGV[3])
local tolerance = emission * burst
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local available = math.floor((tolerance - (tat - now)) / emission)
if available < 1 then
  return {0, tat + emission - tolerance - now, 0, tat - now}
end
local granted = math.max(1, math.min(max_lease, math.floor(available / 16)))
local new_tat = tat + emission * granted
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {granted, 0, available - granted, new_tat - now}
"#;

/// The Redis-backed limiter; keys live under `sluice:rl:`.
#[derive(Clone)]
pub struct RedisLimiter {
    link: RedisLink,
    script: Arc<redis::Script>,
    leases: Arc<Leases>,
}

impl RedisLimiter {
    /// A limiter over the shared connection.
    pub fn new(link: RedisLink) -> Self {
        Self {
            link,
            script: Arc::new(redis::Script::new(GCRA)),
            leases: Arc::default(),
        }
    }

    /// One check-and-count: from a lease held here when there is one, else one atomic script.
    pub async fn check(
        &self,
        class: LimitClass,
        quota: Quota,
        key: &str,
    ) -> Result<Decision, redis::RedisError> {
        if let Some(taken) = self.leases.take(class, key, Instant::now()) {
            if let Some(ask) = taken.refill {
                self.refill_ahead(class, quota, key, ask);
            }
            return Ok(taken.decision);
        }
        // Boxed: the script call's future is large, and most requests are served from a
        // lease above; inline, every request's future (and its allocation) would carry it.
        Box::pin(self.refill(class, quota, key, FIRST_LEASE, true)).await
    }

    /// Asks for the next lease (of `ask` tokens) of a half-spent one in a task of its own, so
    /// that no request waits for it. A failure only means the next requests ask Redis
    /// themselves.
    fn refill_ahead(&self, class: LimitClass, quota: Quota, key: &str, ask: u32) {
        let limiter = self.clone();
        let key = key.to_owned();
        tokio::spawn(async move {
            let granted = limiter.refill(class, quota, &key, ask, false).await;
            if !matches!(granted, Ok(Decision::Allowed { .. })) {
                limiter.leases.refill_failed(class, &key);
            }
        });
    }

    /// Asks Redis for a token for the request at hand (`for_request`) and, for a busy client,
    /// a lease of up to `ask` ([`FIRST_LEASE`], or what [`super::lease::next_ask`] sized,
    /// which keeps it within the largest lease).
    async fn refill(
        &self,
        class: LimitClass,
        quota: Quota,
        key: &str,
        ask: u32,
        for_request: bool,
    ) -> Result<Decision, redis::RedisError> {
        let mut conn = self.link.conn();
        let redis_key = format!("sluice:rl:{}:{}", class.as_str(), key);
        let emission_us = quota.emission_interval.as_micros().max(1) as u64;
        let (granted, retry_us, remaining, reset_us): (i64, i64, i64, i64) = self
            .script
            .key(redis_key)
            .arg(emission_us)
            .arg(quota.burst)
            .arg(ask)
            .invoke_async(&mut conn)
            .await?;
        let micros = |v: i64| Duration::from_micros(v.max(0) as u64);
        Ok(if granted >= 1 {
            let grant = Grant {
                tokens: granted.min(i64::from(ask)) as u32,
                for_request,
                remaining: remaining.max(0) as u32,
                reset: micros(reset_us),
            };
            self.leases.grant(class, key, grant, Instant::now())
        } else {
            Decision::Limited {
                retry_after: micros(retry_us),
            }
        })
    }
}
