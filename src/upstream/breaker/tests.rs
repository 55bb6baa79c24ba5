#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

const OPEN_FOR: Duration = Duration::from_secs(30);

fn breaker(window: usize, half_open_calls: usize) -> CircuitBreaker {
    CircuitBreaker::new(
        "test",
        BreakerConfig {
            window,
            failure_rate_percent: 50,
            open_for: OPEN_FOR,
            half_open_calls,
        },
    )
}

fn outcomes(breaker: &CircuitBreaker, failures: &[bool]) {
    for &failed in failures {
        breaker.acquire().unwrap().record(failed);
    }
}

fn open(breaker: &CircuitBreaker) {
    while breaker.state() == BreakerState::Closed {
        breaker.acquire().unwrap().failure();
    }
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn does_not_open_before_the_window_is_full() {
    let b = breaker(4, 1);
    outcomes(&b, &[true, true, true]);
    assert_eq!(b.state(), BreakerState::Closed);
    assert!(b.acquire().is_ok());
}

#[tokio::test(start_paused = true)]
async fn opens_at_exactly_the_failure_rate() {
    let b = breaker(4, 1);
    // 1 failure in a full window of 4 is 25 %: stays closed.
    outcomes(&b, &[true, false, false, false]);
    assert_eq!(b.state(), BreakerState::Closed);
    // The window slides: [false, false, false, true] is still 25 %.
    outcomes(&b, &[true]);
    assert_eq!(b.state(), BreakerState::Closed);
    // [false, false, true, true] is exactly 50 %.
    outcomes(&b, &[true]);
    assert_eq!(b.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn rejects_while_open_with_the_time_left() {
    let b = breaker(2, 1);
    open(&b);
    assert_eq!(b.acquire().unwrap_err().retry_after, OPEN_FOR);
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(
        b.acquire().unwrap_err().retry_after,
        Duration::from_secs(20)
    );
    tokio::time::advance(Duration::from_secs(19)).await;
    assert_eq!(b.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn becomes_half_open_after_open_for() {
    let b = breaker(2, 1);
    open(&b);
    tokio::time::advance(OPEN_FOR).await;
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert!(b.acquire().is_ok());
}

#[tokio::test(start_paused = true)]
async fn all_trial_successes_close_it_with_an_empty_window() {
    let b = breaker(2, 3);
    open(&b);
    tokio::time::advance(OPEN_FOR).await;
    let permits: Vec<_> = (0..3).map(|_| b.acquire().unwrap()).collect();
    let mut permits = permits.into_iter();
    permits.next().unwrap().success();
    permits.next().unwrap().success();
    assert_eq!(b.state(), BreakerState::HalfOpen);
    permits.next().unwrap().success();
    assert_eq!(b.state(), BreakerState::Closed);
    // The old failures are forgotten: one new failure does not fill the window.
    outcomes(&b, &[true]);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn one_trial_failure_reopens_it_and_restarts_the_timer() {
    let b = breaker(2, 3);
    open(&b);
    tokio::time::advance(OPEN_FOR).await;
    b.acquire().unwrap().success();
    b.acquire().unwrap().failure();
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(b.acquire().unwrap_err().retry_after, OPEN_FOR);
}

#[tokio::test(start_paused = true)]
async fn rejects_calls_beyond_the_trial_limit() {
    let b = breaker(2, 2);
    open(&b);
    tokio::time::advance(OPEN_FOR).await;
    let _first = b.acquire().unwrap();
    let second = b.acquire().unwrap();
    assert!(
        b.acquire().is_err(),
        "a third trial while two are in flight"
    );
    // A success keeps its slot: the trial budget is per half-open period, not concurrency.
    second.success();
    assert!(b.acquire().is_err());
    assert_eq!(b.state(), BreakerState::HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_permit_frees_its_trial_slot() {
    let b = breaker(2, 1);
    open(&b);
    tokio::time::advance(OPEN_FOR).await;
    let permit = b.acquire().unwrap();
    assert!(b.acquire().is_err());
    drop(permit);
    assert_eq!(b.state(), BreakerState::HalfOpen, "a drop records nothing");
    b.acquire().unwrap().success();
    assert_eq!(b.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn stale_permits_are_ignored() {
    let b = breaker(2, 1);
    let stale_success = b.acquire().unwrap();
    let stale_failure = b.acquire().unwrap();
    let stale_dropped = b.acquire().unwrap();
    open(&b);
    tokio::time::advance(OPEN_FOR).await;
    assert_eq!(b.state(), BreakerState::HalfOpen);

    stale_success.success();
    assert_eq!(
        b.state(),
        BreakerState::HalfOpen,
        "an old success must not close it"
    );
    stale_failure.failure();
    assert_eq!(
        b.state(),
        BreakerState::HalfOpen,
        "an old failure must not reopen it"
    );

    let trial = b.acquire().unwrap();
    drop(stale_dropped);
    assert!(
        b.acquire().is_err(),
        "an old drop must not free the trial slot"
    );
    trial.success();
    assert_eq!(b.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn the_observer_sees_each_transition_once() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let b = breaker(2, 1).with_observer(Arc::new(move |name: &str, state| {
        sink.lock().unwrap().push((name.to_owned(), state));
    }));
    open(&b);
    tokio::time::advance(OPEN_FOR).await;
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert_eq!(b.state(), BreakerState::HalfOpen);
    b.acquire().unwrap().failure();
    tokio::time::advance(OPEN_FOR).await;
    b.acquire().unwrap().success();
    assert_eq!(b.state(), BreakerState::Closed);

    let states: Vec<_> = seen.lock().unwrap().iter().map(|(_, s)| *s).collect();
    use BreakerState::*;
    assert_eq!(states, [Open, HalfOpen, Open, HalfOpen, Closed]);
    assert!(seen.lock().unwrap().iter().all(|(name, _)| name == "test"));
}

#[test]
fn states_have_contract_names_and_gauge_values() {
    assert_eq!(BreakerState::Closed.as_str(), "closed");
    assert_eq!(BreakerState::Open.as_str(), "open");
    assert_eq!(BreakerState::HalfOpen.as_str(), "half_open");
    assert_eq!(
        [
            BreakerState::Closed.gauge(),
            BreakerState::Open.gauge(),
            BreakerState::HalfOpen.gauge()
        ],
        [0, 1, 2]
    );
}

#[test]
fn breakers_and_permits_can_cross_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CircuitBreaker>();
    assert_send_sync::<Permit>();
}
