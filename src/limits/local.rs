//! In-process limits: governor's keyed GCRA, swept so memory stays bounded under many keys.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;

use super::{Decision, LimitClass, Quota, Quotas};

type Keyed = governor::RateLimiter<
    String,
    DefaultKeyedStateStore<String>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// One keyed limiter per class.
pub struct LocalLimiter {
    general: Keyed,
    ai: Keyed,
    quotas: Quotas,
    clock: DefaultClock,
}

impl LocalLimiter {
    /// Limiters for both classes.
    pub fn new(quotas: Quotas) -> Self {
        Self {
            general: keyed(quotas.general),
            ai: keyed(quotas.ai),
            quotas,
            clock: DefaultClock::default(),
        }
    }

    /// Checks one request.
    pub fn check(&self, class: LimitClass, key: &str) -> Decision {
        let (limiter, quota) = match class {
            LimitClass::General => (&self.general, self.quotas.general),
            LimitClass::Ai => (&self.ai, self.quotas.ai),
        };
        match limiter.check_key(&key.to_string()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let used = quota.burst.saturating_sub(remaining);
                Decision::Allowed {
                    remaining,
                    reset: quota.emission_interval * used,
                }
            }
            Err(not_until) => Decision::Limited {
                retry_after: not_until.wait_time_from(self.clock.now()),
            },
        }
    }

    /// Forgets keys whose buckets are full again (they carry no information).
    pub fn sweep(&self) {
        self.general.retain_recent();
        self.ai.retain_recent();
        self.general.shrink_to_fit();
        self.ai.shrink_to_fit();
    }

    /// Keys currently tracked (for tests and metrics).
    pub fn tracked_keys(&self) -> usize {
        self.general.len() + self.ai.len()
    }
}

fn keyed(quota: Quota) -> Keyed {
    let burst = NonZeroU32::new(quota.burst).unwrap_or(NonZeroU32::MIN);
    let period = if quota.emission_interval.is_zero() {
        Duration::from_nanos(1)
    } else {
        quota.emission_interval
    };
    let gov_quota = governor::Quota::with_period(period)
        .unwrap_or_else(|| governor::Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst);
    governor::RateLimiter::keyed(gov_quota).with_middleware::<StateInformationMiddleware>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_after_burst_and_sweeps_idle_keys() {
        let quota = Quota {
            burst: 3,
            emission_interval: Duration::from_secs(10),
        };
        let limiter = LocalLimiter::new(Quotas {
            general: quota,
            ai: quota,
        });
        for expected_remaining in [2, 1, 0] {
            match limiter.check(LimitClass::General, "alice") {
                Decision::Allowed { remaining, .. } => assert_eq!(remaining, expected_remaining),
                other => panic!("expected allowed, got {other:?}"),
            }
        }
        assert!(matches!(
            limiter.check(LimitClass::General, "alice"),
            Decision::Limited { retry_after } if retry_after > Duration::from_secs(8)
        ));
        // Another key and another class are independent.
        assert!(matches!(
            limiter.check(LimitClass::General, "bob"),
            Decision::Allowed { .. }
        ));
        assert!(matches!(
            limiter.check(LimitClass::Ai, "alice"),
            Decision::Allowed { .. }
        ));
        assert_eq!(limiter.tracked_keys(), 3);
    }
}

#[cfg(test)]
mod sweep_tests {
    use super::*;

    #[test]
    fn sweeping_forgets_keys_whose_buckets_refilled() {
        let quota = Quota {
            burst: 1,
            emission_interval: Duration::from_millis(1),
        };
        let limiter = LocalLimiter::new(Quotas {
            general: quota,
            ai: quota,
        });
        for n in 0..1000 {
            limiter.check(LimitClass::General, &format!("ip:{n}"));
        }
        assert_eq!(limiter.tracked_keys(), 1000);
        // Every bucket refills within 1 ms; wait past that, then sweep.
        std::thread::sleep(Duration::from_millis(20));
        limiter.sweep();
        assert_eq!(limiter.tracked_keys(), 0, "memory stays bounded");
    }
}
