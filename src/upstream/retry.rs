//! Calling an upstream through its breaker, and retrying idempotent calls with exponential
//! backoff and full jitter, without ever hammering an upstream the breaker protects or
//! outliving the caller's time budget.

use std::time::Duration;

use tokio::time::Instant;

use super::breaker::{CircuitBreaker, Permit, Rejected};
use super::error::UpstreamError;

/// Why a guarded call produced no answer: the breaker refused it, or the upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The breaker is open (or its half-open trials are taken): the upstream was not called.
    #[error(transparent)]
    Rejected(#[from] Rejected),
    /// The upstream was called and failed.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

/// How many times, and how patiently, an idempotent call is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (at least 1).
    pub max_attempts: u32,
    /// Backoff cap before the second attempt; doubled for each later one.
    pub base_delay: Duration,
    /// Upper bound of the backoff cap.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Three attempts, backing off up to 100 ms then 200 ms (capped at 2 s).
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The full-jitter delay after failed attempt number `attempt` (0-based): uniform in
    /// `[0, min(max_delay, base_delay * 2^attempt)]`, so that many callers retrying at once
    /// spread out instead of arriving together.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt);
        let cap = self.base_delay.saturating_mul(factor).min(self.max_delay);
        cap.mul_f64(rand::random::<f64>())
    }
}

/// Records an upstream outcome on its permit: failures that say the upstream is unhealthy
/// count against it; a 4xx says it is alive; a local error says nothing (the permit is just
/// released).
pub fn record_outcome<T>(permit: Permit, outcome: &Result<T, UpstreamError>) {
    match outcome {
        Ok(_) => permit.success(),
        Err(err) if err.counts_as_failure() => permit.failure(),
        Err(UpstreamError::Request(_)) => drop(permit),
        Err(_) => permit.success(),
    }
}

/// Makes one call through `breaker`, recording its outcome. For calls that must not be
/// repeated (starting a generation) and for any call where a retry makes no sense.
pub async fn guarded<T>(
    breaker: &CircuitBreaker,
    call: impl Future<Output = Result<T, UpstreamError>>,
) -> Result<T, CallError> {
    let permit = breaker.acquire()?;
    let outcome = call.await;
    record_outcome(permit, &outcome);
    Ok(outcome?)
}

/// Calls `attempt` through `breaker` until it succeeds, retrying transient failures (connect,
/// timeouts, broken streams, 5xx) with full-jitter backoff. Only for idempotent calls.
///
/// It stops at once on a non-transient error (a 4xx, a malformed answer), when the breaker
/// rejects (if it opened because of our own failures, the last upstream error is returned as
/// the more telling one), after `policy.max_attempts`, and when the next attempt could not start
/// before `deadline`. Each attempt is also cut at `deadline`.
pub async fn retry<T, F, Fut>(
    breaker: &CircuitBreaker,
    policy: &RetryPolicy,
    deadline: Instant,
    mut attempt: F,
) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, UpstreamError>>,
{
    let budget = deadline.saturating_duration_since(Instant::now());
    let attempts = policy.max_attempts.max(1);
    let mut made = 0;
    let mut last_error = None;
    loop {
        let permit = match breaker.acquire() {
            Ok(permit) => permit,
            Err(rejected) => {
                return Err(last_error.map_or(CallError::Rejected(rejected), CallError::Upstream));
            }
        };
        let outcome = tokio::time::timeout_at(deadline, attempt())
            .await
            .unwrap_or(Err(UpstreamError::Timeout(budget)));
        record_outcome(permit, &outcome);
        let err = match outcome {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        let delay = policy.backoff(made);
        made += 1;
        if !err.is_transient() || made >= attempts || Instant::now() + delay >= deadline {
            return Err(err.into());
        }
        tracing::debug!(
            breaker = breaker.name(),
            attempt = made,
            error = %err,
            ?delay,
            "retrying upstream call"
        );
        last_error = Some(err);
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests;
