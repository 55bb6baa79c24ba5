//! A stream that is polled again only when something it waits on has woken it.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::Stream;
use futures_util::task::AtomicWaker;

/// Wraps a response body's stream so that a poll nothing has asked for costs two atomic
/// operations instead of a walk down the whole stream.
///
/// hyper's HTTP/1 connection polls a response body three times per wake-up: for the frame,
/// again to find it `Pending`, and once more after the flush to see whether more can be
/// written. For an SSE stream relaying a token, the last poll went through every layer of the
/// relay down to the upstream socket only to find nothing new: the frame, the SSE and HTTP/1
/// decoders, both timers and a registration with the socket. Here the inner stream is polled
/// with a waker of this wrapper's, which notes that it was woken and then wakes the task; a
/// poll that finds no note (and follows a `Pending`) answers `Pending` at once. (Placed around
/// the whole response body instead, outside the middleware's body wrappers, it saved nothing
/// more.)
pub struct WokenOnly<S> {
    inner: S,
    gate: Arc<Gate>,
    /// `gate` as a waker, made once: the inner stream registers clones of it.
    waker: Waker,
}

/// What the inner stream's waker reaches: the note and the task to wake.
struct Gate {
    /// Set by a wake-up, and while the inner stream may have more ready (after it yielded);
    /// cleared just before the inner stream is polled.
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Gate {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<S> WokenOnly<S> {
    /// `inner`, to be polled on its first poll and then only when woken.
    pub fn new(inner: S) -> Self {
        let gate = Arc::new(Gate {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        let waker = Waker::from(gate.clone());
        Self { inner, gate, waker }
    }
}

impl<S: Stream + Unpin> Stream for WokenOnly<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        // Registered before the note is read, so a wake-up in between reaches this task.
        this.gate.task.register(cx.waker());
        if !this.gate.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let polled = Pin::new(&mut this.inner).poll_next(&mut Context::from_waker(&this.waker));
        if polled.is_ready() {
            // More may be ready without a wake-up: the next poll must look.
            this.gate.woken.store(true, Ordering::Release);
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::AtomicUsize;

    use futures_util::StreamExt;

    use super::*;

    /// Counts its polls; yields an item when one was sent, and is woken by the sender.
    struct Counted {
        polls: Arc<AtomicUsize>,
        items: tokio::sync::mpsc::UnboundedReceiver<u32>,
    }

    impl Stream for Counted {
        type Item = u32;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<u32>> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            self.items.poll_recv(cx)
        }
    }

    fn counted() -> (
        WokenOnly<Counted>,
        Arc<AtomicUsize>,
        tokio::sync::mpsc::UnboundedSender<u32>,
    ) {
        let polls = Arc::new(AtomicUsize::new(0));
        let (tx, items) = tokio::sync::mpsc::unbounded_channel();
        let stream = WokenOnly::new(Counted {
            polls: polls.clone(),
            items,
        });
        (stream, polls, tx)
    }

    fn poll_once<S: Stream + Unpin>(stream: &mut S) -> Poll<Option<S::Item>> {
        stream.poll_next_unpin(&mut Context::from_waker(Waker::noop()))
    }

    /// A poll that follows `Pending` with no wake-up in between does not reach the inner
    /// stream; one after a wake-up does, and gets the item.
    #[tokio::test]
    async fn an_unwoken_poll_stops_here() {
        let (mut stream, polls, tx) = counted();
        assert!(poll_once(&mut stream).is_pending());
        assert_eq!(polls.load(Ordering::SeqCst), 1);
        assert!(poll_once(&mut stream).is_pending());
        assert!(poll_once(&mut stream).is_pending());
        assert_eq!(polls.load(Ordering::SeqCst), 1, "no wake-up, no poll");
        tx.send(7).unwrap();
        assert_eq!(poll_once(&mut stream), Poll::Ready(Some(7)));
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    }

    /// After an item the inner stream is asked again, since more may be ready without a
    /// wake-up of its own.
    #[tokio::test]
    async fn items_ready_together_are_all_taken() {
        let (mut stream, _polls, tx) = counted();
        for item in [1, 2, 3] {
            tx.send(item).unwrap();
        }
        assert_eq!(poll_once(&mut stream), Poll::Ready(Some(1)));
        assert_eq!(poll_once(&mut stream), Poll::Ready(Some(2)));
        assert_eq!(poll_once(&mut stream), Poll::Ready(Some(3)));
        assert!(poll_once(&mut stream).is_pending());
    }

    /// The task that polls the wrapper is woken when the inner stream is, through the
    /// wrapper's own waker.
    #[tokio::test]
    async fn the_task_is_woken_through_the_gate() {
        let (stream, _polls, tx) = counted();
        let reader = tokio::spawn(stream.take(2).collect::<Vec<_>>());
        tokio::task::yield_now().await;
        tx.send(1).unwrap();
        tokio::task::yield_now().await;
        tx.send(2).unwrap();
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), reader).await;
        assert_eq!(read.expect("the reader was woken").unwrap(), [1, 2]);
    }
}
