//! The handle a stream holds while it listens to a channel.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures_util::Stream;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::BusEvent;

/// Implemented by each bus so a dropped [`Subscription`] gives its channel back.
pub(super) trait ReleaseChannel: Send + Sync {
    /// One listener of `channel` is gone.
    fn release(&self, channel: &str);
}

/// A live subscription: a `Stream` of [`BusEvent`]s that ends only when the bus shuts down.
/// Dropping it releases the channel (the last listener of a channel causes UNSUBSCRIBE).
pub struct Subscription {
    channel: Arc<str>,
    events: BroadcastStream<BusEvent>,
    owner: Arc<dyn ReleaseChannel>,
}

impl Subscription {
    pub(super) fn new(
        channel: &str,
        receiver: broadcast::Receiver<BusEvent>,
        owner: Arc<dyn ReleaseChannel>,
    ) -> Self {
        Self {
            channel: Arc::from(channel),
            events: BroadcastStream::new(receiver),
            owner,
        }
    }

    /// The channel this subscription listens to.
    pub fn channel(&self) -> &str {
        &self.channel
    }
}

impl Stream for Subscription {
    type Item = BusEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<BusEvent>> {
        let event = match ready!(Pin::new(&mut self.events).poll_next(cx)) {
            Some(Ok(event)) => Some(event),
            Some(Err(BroadcastStreamRecvError::Lagged(missed))) => {
                tracing::debug!(channel = %self.channel, missed, "bus subscriber lagged; resync");
                Some(BusEvent::Resync)
            }
            None => None,
        };
        Poll::Ready(event)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.owner.release(&self.channel);
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}
