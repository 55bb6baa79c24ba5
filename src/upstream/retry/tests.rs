#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;
use crate::upstream::breaker::{BreakerConfig, BreakerState};

const POLICY: RetryPolicy = RetryPolicy {
    max_attempts: 4,
    base_delay: Duration::from_millis(100),
    max_delay: Duration::from_secs(1),
};

fn breaker(window: usize) -> CircuitBreaker {
    CircuitBreaker::new(
        "retry-test",
        BreakerConfig {
            window,
            failure_rate_percent: 50,
            open_for: Duration::from_secs(30),
            half_open_calls: 1,
        },
    )
}

fn status(code: u16) -> UpstreamError {
    UpstreamError::status_with_body(code, b"")
}

/// An attempt function that returns the scripted outcomes in order and counts calls.
fn scripted(
    outcomes: Vec<Result<&'static str, UpstreamError>>,
) -> (
    Arc<AtomicU32>,
    impl FnMut() -> std::future::Ready<Result<&'static str, UpstreamError>>,
) {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let mut outcomes = outcomes.into_iter();
    let attempt = move || {
        counter.fetch_add(1, Ordering::SeqCst);
        std::future::ready(outcomes.next().unwrap_or(Err(status(599))))
    };
    (calls, attempt)
}

fn far_deadline() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

#[tokio::test(start_paused = true)]
async fn retries_transient_failures_until_success() {
    let b = breaker(100);
    let (calls, attempt) = scripted(vec![
        Err(UpstreamError::Stream(None)),
        Err(status(503)),
        Ok("answer"),
    ]);
    let result = retry(&b, &POLICY, far_deadline(), attempt).await;
    assert_eq!(result.unwrap(), "answer");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn never_retries_a_4xx() {
    let b = breaker(100);
    let (calls, attempt) = scripted(vec![Err(status(404)), Ok("never")]);
    let result = retry(&b, &POLICY, far_deadline(), attempt).await;
    assert!(matches!(result, Err(CallError::Upstream(e)) if e.status() == Some(404)));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_max_attempts() {
    let b = breaker(100);
    let (calls, attempt) = scripted(vec![]);
    let result = retry(&b, &POLICY, far_deadline(), attempt).await;
    assert!(matches!(result, Err(CallError::Upstream(_))));
    assert_eq!(calls.load(Ordering::SeqCst), POLICY.max_attempts);
}

#[tokio::test(start_paused = true)]
async fn never_calls_through_an_open_breaker() {
    let b = breaker(1);
    b.acquire().unwrap().failure();
    assert_eq!(b.state(), BreakerState::Open);
    let (calls, attempt) = scripted(vec![Ok("never")]);
    let result = retry(&b, &POLICY, far_deadline(), attempt).await;
    assert!(matches!(result, Err(CallError::Rejected(_))));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn stops_when_its_own_failures_open_the_breaker() {
    let b = breaker(2);
    let (calls, attempt) = scripted(vec![]);
    let result = retry(&b, &POLICY, far_deadline(), attempt).await;
    assert!(
        matches!(result, Err(CallError::Upstream(ref e)) if e.status() == Some(599)),
        "the upstream error explains more than the rejection: {result:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(b.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn never_runs_past_the_deadline() {
    let b = breaker(100);
    let started = Instant::now();
    let deadline = started + Duration::from_millis(250);
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let slow = || {
        counter.fetch_add(1, Ordering::SeqCst);
        async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Err::<(), _>(UpstreamError::Stream(None))
        }
    };
    let policy = RetryPolicy {
        max_attempts: 10,
        ..POLICY
    };
    let result = retry(&b, &policy, deadline, slow).await;
    assert!(result.is_err());
    assert!(Instant::now() <= deadline, "ran {:?}", started.elapsed());
    assert!(calls.load(Ordering::SeqCst) <= 2);
}

#[tokio::test(start_paused = true)]
async fn an_attempt_cut_by_the_deadline_is_a_timeout_and_a_failure() {
    let b = breaker(1);
    let deadline = Instant::now() + Duration::from_millis(100);
    let hang = || std::future::pending::<Result<(), UpstreamError>>();
    let result = retry(&b, &POLICY, deadline, hang).await;
    assert!(matches!(
        result,
        Err(CallError::Upstream(UpstreamError::Timeout(_)))
    ));
    assert_eq!(
        b.state(),
        BreakerState::Open,
        "the hang counted as a failure"
    );
}

#[tokio::test(start_paused = true)]
async fn guarded_records_the_outcome() {
    let b = breaker(2);
    let ok = guarded(&b, async { Ok::<_, UpstreamError>(1) }).await;
    assert_eq!(ok.unwrap(), 1);
    let not_found = guarded(&b, async { Err::<(), _>(status(404)) }).await;
    assert!(matches!(not_found, Err(CallError::Upstream(_))));
    assert_eq!(b.state(), BreakerState::Closed, "a 4xx is not a failure");
    for _ in 0..2 {
        let _ = guarded(&b, async { Err::<(), _>(status(500)) }).await;
    }
    assert_eq!(b.state(), BreakerState::Open);
    let rejected = guarded(&b, async { Ok::<_, UpstreamError>(()) }).await;
    assert!(matches!(rejected, Err(CallError::Rejected(_))));
}

#[test]
fn backoff_is_full_jitter_under_a_doubling_cap() {
    for attempt in 0..6 {
        let cap = (POLICY.base_delay * 2u32.pow(attempt)).min(POLICY.max_delay);
        for _ in 0..50 {
            assert!(POLICY.backoff(attempt) <= cap);
        }
    }
    let spread: std::collections::HashSet<_> = (0..50).map(|_| POLICY.backoff(3)).collect();
    assert!(spread.len() > 1, "delays must be randomised");
}
