//! Event bus: in-process and Redis pub/sub behind one interface.
//!
//! The AI service reports generation progress by publishing on `conversation:{id}`; every open
//! SSE stream of that conversation subscribes here. Two implementations share the semantics:
//!
//! - [`LocalBus`]: the embedded default (no `REDIS_URL`), one instance, nothing leaves the process.
//! - [`RedisBus`]: shared with the AI service and every sluice instance. It holds exactly one
//!   subscriber connection for all streams, resubscribes after a reconnect and tells every
//!   subscriber to [`BusEvent::Resync`], because pub/sub delivers at most once.
//!
//! Both fan out per channel through a bounded broadcast: a slow subscriber never blocks the
//! others; it receives [`BusEvent::Resync`] instead of the messages it missed.

mod backoff;
mod channel_table;
mod error;
mod local;
mod redis_bus;
mod subscription;

use std::sync::Arc;

pub use error::BusError;
pub use local::LocalBus;
pub use redis_bus::{RedisBus, RedisBusOptions};
pub use subscription::Subscription;

/// Broadcast capacity per channel when none is given: progress messages come in short bursts,
/// so a subscriber this far behind is better served by re-reading stored state.
pub const DEFAULT_CHANNEL_CAPACITY: usize = 128;

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusEvent {
    /// A payload published on the channel (raw text; parsing is the caller's job).
    Message(Arc<str>),
    /// Messages may have been lost (reconnect, or this subscriber lagged): re-read stored state.
    Resync,
}

/// Whether the bus can currently deliver messages from other instances; feeds readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusHealth {
    /// The Redis subscriber connection is up (right after a reconnect, its channels are being
    /// subscribed again; their subscribers get `Resync` once that is confirmed).
    Up,
    /// The Redis subscriber connection is down; the bus is reconnecting.
    Down,
    /// No shared component: the in-process bus cannot fail.
    Disabled,
}

impl BusHealth {
    /// The label readiness reports under `checks.redis`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::Disabled => "disabled",
        }
    }
}

/// The interface the SSE handlers use, so they do not care whether Redis is configured.
#[async_trait::async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Publishes to every subscriber of `channel`, on every instance (Redis) or this one (local).
    async fn publish(&self, channel: &str, payload: &str) -> Result<(), BusError>;

    /// Subscribes; resolves once the subscription is live (for Redis: SUBSCRIBE confirmed, or the
    /// connection is down and the channel is registered for resubscription, in which case a
    /// [`BusEvent::Resync`] follows on reconnect). "Subscribe first, then trigger generation"
    /// relies on this.
    async fn subscribe(&self, channel: &str) -> Result<Subscription, BusError>;

    /// Channels with at least one local listener (the `sluice_pubsub_channels` gauge).
    fn channel_count(&self) -> usize;

    /// Redis: is the subscriber connection up right now (for readiness)? Local: `Disabled`.
    fn health(&self) -> BusHealth;

    /// Stops background work and ends every open subscription; later calls fail with
    /// [`BusError::Closed`]. Part of graceful shutdown, after the streams were drained.
    async fn shutdown(&self);
}
