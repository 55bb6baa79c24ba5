//! A deadline that activity keeps pushing back, for streams that are polled far more often
//! than it can fire: an upstream body's idle timeout and an SSE response's keep-alive, both
//! checked on every poll of a stream that relays a token every few milliseconds.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::time::{Instant, Sleep};

/// Fires once a deadline, handed in on every poll, has passed.
///
/// Two costs of a plain [`Sleep`] are avoided, both paid per relayed token otherwise:
/// - moving it on every bit of activity (a timer-wheel removal and insertion): the timer
///   stays where it is and, when it fires early, is moved once to the deadline then due;
/// - polling it on every poll of the stream: tokio registers the waker again each time, and
///   a chat stream's two timers were polled four times per relayed token, 3.4 % of its
///   instructions (callgrind). Once the timer has registered this task's waker,
///   [`Sleep::is_elapsed`], one atomic load, says whether polling it could return anything
///   but `Pending`.
pub struct IdleTimer {
    sleep: Pin<Box<Sleep>>,
    /// The waker the timer holds since it was last polled or moved, if it registered one.
    registered: Option<Waker>,
}

impl IdleTimer {
    /// A timer armed for `deadline`.
    pub fn new(deadline: Instant) -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            registered: None,
        }
    }

    /// Ready once `due` has passed; `Pending` (with the task's waker registered for the
    /// moment it may be) until then. `due` may move later from one poll to the next at no
    /// cost, and earlier at the cost of moving the timer.
    pub fn poll_due(&mut self, due: Instant, cx: &mut Context<'_>) -> Poll<()> {
        if self.sleep.deadline() > due {
            self.reset(due);
        }
        loop {
            if self.quiet(cx) {
                return Poll::Pending;
            }
            // A task out of budget gets `Pending` without the timer registering its waker.
            let registers = tokio::task::coop::has_budget_remaining();
            if self.sleep.as_mut().poll(cx).is_pending() {
                if registers {
                    self.registered = Some(cx.waker().clone());
                }
                return Poll::Pending;
            }
            if due <= Instant::now() {
                return Poll::Ready(());
            }
            self.reset(due);
        }
    }

    /// Where the timer is set: not the due time, which it catches up with only when it fires.
    #[cfg(test)]
    pub(crate) fn deadline(&self) -> Instant {
        self.sleep.deadline()
    }

    /// Moves the timer to `deadline` (after it fired, for the next interval); the next poll
    /// registers the waker again.
    pub fn reset(&mut self, deadline: Instant) {
        self.sleep.as_mut().reset(deadline);
        self.registered = None;
    }

    /// True when polling the timer now could only return `Pending`: it has not fired, and
    /// the waker it holds wakes this task.
    fn quiet(&self, cx: &Context<'_>) -> bool {
        self.registered
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()))
            && !self.sleep.is_elapsed()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::future::poll_fn;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;
    use std::time::Duration;

    use super::*;

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll_with(timer: &mut IdleTimer, due: Instant, waker: &Waker) -> Poll<()> {
        timer.poll_due(due, &mut Context::from_waker(waker))
    }

    /// The timer fires at the deadline though only the first poll reached tokio's timer: the
    /// later ones, with the same waker, were answered without it.
    #[tokio::test(start_paused = true)]
    async fn fires_at_the_deadline_after_quiet_polls() {
        let due = Instant::now() + Duration::from_secs(10);
        let mut timer = IdleTimer::new(due);
        let counter = Arc::new(Counter::default());
        let waker = Waker::from(counter.clone());
        for _ in 0..3 {
            assert!(poll_with(&mut timer, due, &waker).is_pending());
        }
        assert!(
            timer.registered.is_some(),
            "the first poll registered the waker"
        );
        tokio::time::sleep_until(due).await;
        assert_eq!(counter.0.load(Ordering::SeqCst), 1, "woken at the deadline");
        assert!(poll_with(&mut timer, due, &waker).is_ready());
    }

    /// A deadline pushed back is honoured: the timer that fires at the old one is moved to the
    /// new one instead of firing, and fires there.
    #[tokio::test(start_paused = true)]
    async fn a_deadline_pushed_back_moves_the_timer_when_it_fires() {
        let start = Instant::now();
        let mut timer = IdleTimer::new(start + Duration::from_secs(10));
        let later = start + Duration::from_secs(15);
        poll_fn(|cx| timer.poll_due(later, cx)).await;
        assert_eq!(Instant::now(), later);
    }

    /// A deadline brought forward moves the timer at once.
    #[tokio::test(start_paused = true)]
    async fn a_deadline_brought_forward_fires_then() {
        let start = Instant::now();
        let mut timer = IdleTimer::new(start + Duration::from_secs(10));
        let counter = Arc::new(Counter::default());
        let waker = Waker::from(counter.clone());
        assert!(poll_with(&mut timer, start + Duration::from_secs(10), &waker).is_pending());
        let sooner = start + Duration::from_secs(2);
        poll_fn(|cx| timer.poll_due(sooner, cx)).await;
        assert_eq!(Instant::now(), sooner);
    }

    /// Polled by another task, the timer registers that task's waker, or the fired timer
    /// would wake the first one only.
    #[tokio::test(start_paused = true)]
    async fn a_new_waker_is_registered() {
        let due = Instant::now() + Duration::from_secs(10);
        let mut timer = IdleTimer::new(due);
        let first = Arc::new(Counter::default());
        let second = Arc::new(Counter::default());
        assert!(poll_with(&mut timer, due, &Waker::from(first.clone())).is_pending());
        assert!(poll_with(&mut timer, due, &Waker::from(second.clone())).is_pending());
        tokio::time::sleep_until(due).await;
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
    }

    /// A poll made when the task's budget is spent does not reach the timer's registration,
    /// so the next poll must not be answered without it.
    #[tokio::test(start_paused = true)]
    async fn a_poll_out_of_budget_registers_nothing() {
        let due = Instant::now() + Duration::from_secs(10);
        let mut timer = IdleTimer::new(due);
        // Spend the task's budget.
        while tokio::task::coop::has_budget_remaining() {
            tokio::task::coop::consume_budget().await;
        }
        let mut first = true;
        let fired = poll_fn(|cx| {
            let poll = timer.poll_due(due, cx);
            if std::mem::take(&mut first) {
                assert!(poll.is_pending());
                assert!(
                    timer.registered.is_none(),
                    "nothing registered out of budget"
                );
            }
            poll
        });
        // The budget is restored when the task yields; the timer then registers and fires.
        tokio::time::timeout(Duration::from_secs(11), fired)
            .await
            .expect("the timer fired");
    }
}
