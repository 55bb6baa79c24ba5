//! A stream's subscription, keeping the `sluice_pubsub_channels` gauge current as streams
//! come and go (however they end: completion, client gone, shutdown).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::Stream;

use crate::events::{BusEvent, EventBus, Subscription};
use crate::metrics::Metrics;

/// A [`Subscription`] that updates the channel gauge when it starts and when it is dropped.
pub struct Listening {
    subscription: Option<Subscription>,
    bus: Arc<dyn EventBus>,
    metrics: Metrics,
}

impl Listening {
    /// Wraps a live subscription.
    pub fn new(subscription: Subscription, bus: Arc<dyn EventBus>, metrics: Metrics) -> Self {
        metrics.pubsub_channels(bus.channel_count());
        Self {
            subscription: Some(subscription),
            bus,
            metrics,
        }
    }
}

impl Stream for Listening {
    type Item = BusEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<BusEvent>> {
        match self.subscription.as_mut() {
            Some(subscription) => Pin::new(subscription).poll_next(cx),
            None => Poll::Ready(None),
        }
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        // Release the channel first, so the gauge counts without it.
        drop(self.subscription.take());
        self.metrics.pubsub_channels(self.bus.channel_count());
    }
}
