//! A circuit breaker per upstream operation, so that a failing AI service is left alone for a
//! while instead of being hammered, and callers can serve a fallback at once.
//!
//! A small state machine rather than the `failsafe` crate: we need a limit on half-open trial
//! calls, a state getter for readiness and metrics, and a transition hook.
//!
//! - **Closed**: every call is admitted; the outcomes of the last `window` calls are kept. When the
//!   window is full and `failures * 100 >= failure_rate_percent * window`, the breaker opens.
//! - **Open**: every call is rejected at once with the time left, for `open_for`.
//! - **HalfOpen**: `half_open_calls` trial calls are admitted, further ones rejected. One trial
//!   failure opens the breaker again (the timer restarts); when every trial succeeded it closes
//!   with an empty window.
//!
//! Each transition bumps a generation counter; a [`Permit`] remembers the generation it was
//! issued in, and its outcome is ignored if the breaker has moved on since, so a slow call that
//! started while closed cannot, say, close a breaker that has since opened.
//!
//! Time is `tokio::time::Instant`, so tests drive it with `tokio::time::pause()`.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// How long a caller rejected because every half-open trial slot is taken should wait: the
/// trials are already in flight and usually finish well within this.
const HALF_OPEN_BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Tuning of one breaker (`BREAKER_*` settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Number of recent call outcomes judged together (at least 1).
    pub window: usize,
    /// Percentage of failures in a full window that opens the breaker (a window without any
    /// failure never does, even at 0 %).
    pub failure_rate_percent: u8,
    /// How long the breaker stays open before admitting trial calls.
    pub open_for: Duration,
    /// Trial calls admitted half-open; all must succeed to close (at least 1).
    pub half_open_calls: usize,
}

impl Default for BreakerConfig {
    /// The contract's defaults: 10 calls, 50 %, 30 s, 5 trials.
    fn default() -> Self {
        Self {
            window: 10,
            failure_rate_percent: 50,
            open_for: Duration::from_secs(30),
            half_open_calls: 5,
        }
    }
}

/// What a breaker currently does with new calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Admitting every call.
    Closed,
    /// Rejecting every call.
    Open,
    /// Admitting a limited number of trial calls.
    HalfOpen,
}

impl BreakerState {
    /// The name used in readiness checks and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    /// The value of the `sluice_breaker_state` gauge.
    pub fn gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Hook called on every transition with the breaker's name and new state (metrics, logs).
///
/// It runs while the breaker's lock is held, so transitions are reported in order; it must be
/// quick and must not call back into the same breaker.
pub type BreakerObserver = Arc<dyn Fn(&str, BreakerState) + Send + Sync>;

/// A call was refused without reaching the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker open; retry after {retry_after:?}")]
pub struct Rejected {
    /// How long until the breaker may admit calls again (for `Retry-After`).
    pub retry_after: Duration,
}

/// Guards one upstream operation. Cloning is cheap and clones share state.
#[derive(Clone)]
pub struct CircuitBreaker {
    shared: Arc<Shared>,
}

struct Shared {
    name: Cow<'static, str>,
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

struct Inner {
    phase: Phase,
    /// Bumped on every transition; outcomes of older permits are ignored.
    generation: u64,
    observer: Option<BreakerObserver>,
}

enum Phase {
    Closed {
        /// Most recent outcome last; `true` is a failure.
        window: VecDeque<bool>,
        failures: usize,
    },
    Open {
        until: Instant,
    },
    HalfOpen {
        /// Trial slots taken (in flight or succeeded).
        admitted: usize,
        succeeded: usize,
    },
}

impl Phase {
    fn closed(capacity: usize) -> Self {
        Self::Closed {
            window: VecDeque::with_capacity(capacity),
            failures: 0,
        }
    }

    fn state(&self) -> BreakerState {
        match self {
            Self::Closed { .. } => BreakerState::Closed,
            Self::Open { .. } => BreakerState::Open,
            Self::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

impl CircuitBreaker {
    /// A closed breaker. `window` and `half_open_calls` below 1 are treated as 1.
    pub fn new(name: impl Into<Cow<'static, str>>, config: BreakerConfig) -> Self {
        let config = BreakerConfig {
            window: config.window.max(1),
            half_open_calls: config.half_open_calls.max(1),
            ..config
        };
        Self {
            shared: Arc::new(Shared {
                name: name.into(),
                inner: Mutex::new(Inner {
                    phase: Phase::closed(config.window),
                    generation: 0,
                    observer: None,
                }),
                config,
            }),
        }
    }

    /// Adds the transition hook (metrics gauge, logs). It applies to every clone.
    pub fn with_observer(self, observer: BreakerObserver) -> Self {
        self.shared.lock().observer = Some(observer);
        self
    }

    /// The upstream operation this breaker guards (the metrics label).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The name as a metric label: free for the fixed names, a copy for `openai:<host:port>`.
    pub fn label(&self) -> Cow<'static, str> {
        self.shared.name.clone()
    }

    /// The current state; an open breaker whose time is up reads (and becomes) half-open.
    pub fn state(&self) -> BreakerState {
        let mut inner = self.shared.lock();
        self.shared.expire_open(&mut inner, Instant::now());
        inner.phase.state()
    }

    /// Asks to make one call. The permit must be resolved with [`Permit::success`] or
    /// [`Permit::failure`] once the outcome is known.
    pub fn acquire(&self) -> Result<Permit, Rejected> {
        let now = Instant::now();
        let mut inner = self.shared.lock();
        self.shared.expire_open(&mut inner, now);
        match &mut inner.phase {
            Phase::Closed { .. } => {}
            Phase::Open { until } => {
                return Err(Rejected {
                    retry_after: until.saturating_duration_since(now),
                });
            }
            Phase::HalfOpen { admitted, .. } => {
                if *admitted >= self.shared.config.half_open_calls {
                    return Err(Rejected {
                        retry_after: HALF_OPEN_BUSY_RETRY_AFTER,
                    });
                }
                *admitted += 1;
            }
        }
        Ok(Permit {
            shared: Arc::clone(&self.shared),
            generation: inner.generation,
            resolved: false,
        })
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.shared.name)
            .field("state", &self.state())
            .finish()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking observer must not disable the breaker: the state itself is always
        // consistent between statements, so a poisoned lock is safe to reuse.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn expire_open(&self, inner: &mut Inner, now: Instant) {
        if let Phase::Open { until } = inner.phase
            && now >= until
        {
            self.transition(
                inner,
                Phase::HalfOpen {
                    admitted: 0,
                    succeeded: 0,
                },
            );
        }
    }

    fn transition(&self, inner: &mut Inner, phase: Phase) {
        inner.generation += 1;
        inner.phase = phase;
        let state = inner.phase.state();
        match state {
            BreakerState::Open => tracing::warn!(
                breaker = %self.name,
                open_for = ?self.config.open_for,
                "circuit breaker opened"
            ),
            BreakerState::HalfOpen => {
                tracing::info!(breaker = %self.name, "circuit breaker half-open")
            }
            BreakerState::Closed => tracing::info!(breaker = %self.name, "circuit breaker closed"),
        }
        if let Some(observer) = &inner.observer {
            observer(&self.name, state);
        }
    }

    fn open(&self, inner: &mut Inner) {
        let until = Instant::now() + self.config.open_for;
        self.transition(inner, Phase::Open { until });
    }

    fn record(&self, generation: u64, failed: bool) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        match &mut inner.phase {
            Phase::Closed { window, failures } => {
                if window.len() == self.config.window && window.pop_front() == Some(true) {
                    *failures -= 1;
                }
                window.push_back(failed);
                if failed {
                    *failures += 1;
                }
                let full = window.len() == self.config.window;
                let rate_reached = *failures * 100
                    >= usize::from(self.config.failure_rate_percent) * self.config.window;
                if full && *failures > 0 && rate_reached {
                    self.open(&mut inner);
                }
            }
            Phase::HalfOpen { succeeded, .. } => {
                if failed {
                    self.open(&mut inner);
                } else {
                    *succeeded += 1;
                    if *succeeded >= self.config.half_open_calls {
                        self.transition(&mut inner, Phase::closed(self.config.window));
                    }
                }
            }
            // Permits are only issued closed or half-open, and every transition bumps the
            // generation, so an open phase never sees a current permit.
            Phase::Open { .. } => {}
        }
    }

    fn release(&self, generation: u64) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if let Phase::HalfOpen { admitted, .. } = &mut inner.phase {
            *admitted = admitted.saturating_sub(1);
        }
    }
}

/// The right to make one call through a breaker.
///
/// `success()`/`failure()` record the outcome; dropping it without either (the caller went away)
/// records nothing but frees a half-open trial slot.
#[must_use = "record the call's outcome with success() or failure()"]
pub struct Permit {
    shared: Arc<Shared>,
    generation: u64,
    resolved: bool,
}

impl Permit {
    /// The call succeeded (or the upstream answered in a way that says it is healthy).
    pub fn success(mut self) {
        self.resolved = true;
        self.shared.record(self.generation, false);
    }

    /// The call failed in a way that counts against the upstream.
    pub fn failure(mut self) {
        self.resolved = true;
        self.shared.record(self.generation, true);
    }

    /// Records `failure()` when `failed`, else `success()`.
    pub fn record(self, failed: bool) {
        if failed {
            self.failure();
        } else {
            self.success();
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.resolved {
            self.shared.release(self.generation);
        }
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("breaker", &self.shared.name)
            .field("generation", &self.generation)
            .finish()
    }
}

#[cfg(test)]
mod tests;
