//! Reconnect delays: quick first retries for a blip, capped so a long outage is not hammered,
//! jittered so many instances do not reconnect in lockstep after a Redis restart.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff between `min` and `max`, doubling per failed attempt.
#[derive(Debug, Clone)]
pub(super) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(super) fn new(min: Duration, max: Duration) -> Self {
        let max = max.max(min);
        Self {
            min,
            max,
            next: min,
        }
    }

    /// The delay before the next attempt: between half and all of the current step.
    pub(super) fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (step * 2).min(self.max);
        let half = step / 2;
        half + rand::rng().random_range(Duration::ZERO..=step - half)
    }

    /// Starts again from `min` after a successful connection.
    pub(super) fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_reset() {
        let min = Duration::from_millis(50);
        let max = Duration::from_secs(2);
        let mut backoff = Backoff::new(min, max);
        let mut step = min;
        for _ in 0..12 {
            let delay = backoff.next_delay();
            assert!(
                delay >= step / 2 && delay <= step,
                "{delay:?} outside {step:?}"
            );
            step = (step * 2).min(max);
        }
        assert_eq!(step, max, "the cap was reached");

        backoff.reset();
        assert!(backoff.next_delay() <= min);
    }

    #[test]
    fn a_max_below_min_is_raised_to_min() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(10));
        for _ in 0..3 {
            assert!(backoff.next_delay() <= Duration::from_millis(100));
        }
    }
}
