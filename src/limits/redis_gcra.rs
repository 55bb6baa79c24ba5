//! Limits shared across instances: GCRA in one Lua script, timed by the Redis server's clock
//! (so instances with skewed clocks agree).

use std::time::Duration;

use super::{Decision, LimitClass, Quota};
use crate::redis_link::RedisLink;

/// GCRA: the stored value is the theoretical arrival time (TAT) in microseconds.
/// ARGV: emission interval (µs), burst. Returns {allowed, retry_after_us, remaining, reset_us}.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local emission = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tolerance = emission * burst
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + emission
local allow_at = new_tat - tolerance
if allow_at > now then
  return {0, allow_at - now, 0, tat - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
local remaining = math.floor((tolerance - (new_tat - now)) / emission)
return {1, 0, remaining, new_tat - now}
"#;

/// The Redis-backed limiter; keys live under `sluice:rl:`.
#[derive(Clone)]
pub struct RedisLimiter {
    link: RedisLink,
    script: std::sync::Arc<redis::Script>,
}

impl RedisLimiter {
    /// A limiter over the shared connection.
    pub fn new(link: RedisLink) -> Self {
        Self {
            link,
            script: std::sync::Arc::new(redis::Script::new(GCRA)),
        }
    }

    /// One atomic check-and-count.
    pub async fn check(
        &self,
        class: LimitClass,
        quota: Quota,
        key: &str,
    ) -> Result<Decision, redis::RedisError> {
        let mut conn = self.link.conn();
        let redis_key = format!("sluice:rl:{}:{}", class.as_str(), key);
        let emission_us = quota.emission_interval.as_micros().max(1) as u64;
        let (allowed, retry_us, remaining, reset_us): (i64, i64, i64, i64) = self
            .script
            .key(redis_key)
            .arg(emission_us)
            .arg(quota.burst)
            .invoke_async(&mut conn)
            .await?;
        let micros = |v: i64| Duration::from_micros(v.max(0) as u64);
        Ok(if allowed == 1 {
            Decision::Allowed {
                remaining: remaining.max(0) as u32,
                reset: micros(reset_us),
            }
        } else {
            Decision::Limited {
                retry_after: micros(retry_us),
            }
        })
    }
}
