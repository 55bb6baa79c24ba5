//! The Redis bus: shared with the AI service and every sluice instance.

mod connection;
mod registry;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::registry::Registry;
use super::{BusError, BusHealth, DEFAULT_CHANNEL_CAPACITY, EventBus, Subscription};

/// Tuning of a [`RedisBus`]; the defaults suit production, tests shorten them.
#[derive(Debug, Clone)]
pub struct RedisBusOptions {
    /// Messages a subscriber may fall behind before it gets a `Resync` instead.
    pub channel_capacity: usize,
    /// Longest wait for a connection (and its handshake) to Redis.
    pub connect_timeout: Duration,
    /// Longest wait for a Redis reply; a silent connection is treated as lost.
    pub command_timeout: Duration,
    /// How often the idle subscriber connection is pinged, to notice a dead peer.
    pub ping_interval: Duration,
    /// First delay before reconnecting; doubles per failed attempt.
    pub reconnect_min_delay: Duration,
    /// Cap of the reconnect delay.
    pub reconnect_max_delay: Duration,
}

impl Default for RedisBusOptions {
    fn default() -> Self {
        Self {
            channel_capacity: DEFAULT_CHANNEL_CAPACITY,
            connect_timeout: Duration::from_secs(3),
            command_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(15),
            reconnect_min_delay: Duration::from_millis(50),
            reconnect_max_delay: Duration::from_secs(2),
        }
    }
}

/// Pub/sub over Redis with one subscriber connection for the whole instance.
///
/// Channels are reference-counted: the first local listener of a channel makes the connection
/// task SUBSCRIBE, the last one leaving makes it UNSUBSCRIBE. When the connection drops, open
/// subscriptions stay open; the task reconnects with capped exponential backoff, resubscribes
/// every channel that still has listeners, and then sends each of them [`super::BusEvent::Resync`].
///
/// Publishing uses a separate multiplexed connection. Dropping the bus (or [`EventBus::shutdown`])
/// stops the connection task and ends every subscription.
pub struct RedisBus {
    registry: Arc<Registry>,
    publisher: ConnectionManager,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl RedisBus {
    /// Connects with the default options; see [`RedisBus::connect_with`].
    pub async fn connect(redis_url: &str) -> Result<Self, BusError> {
        Self::connect_with(redis_url, RedisBusOptions::default()).await
    }

    /// Builds the bus and waits for the first connection attempt.
    ///
    /// Only an invalid URL is an error. If Redis is unreachable the bus is returned anyway,
    /// [`BusHealth::Down`] (so readiness reports it) and reconnecting in the background: a
    /// Redis that starts after sluice, or restarts, needs no restart of sluice. Until then
    /// `subscribe` registers channels (they get a `Resync` once subscribed) and `publish` fails.
    pub async fn connect_with(redis_url: &str, options: RedisBusOptions) -> Result<Self, BusError> {
        let client = redis::Client::open(redis_url).map_err(BusError::InvalidUrl)?;
        let publisher = ConnectionManager::new_lazy_with_config(
            client.clone(),
            ConnectionManagerConfig::new()
                .set_connection_timeout(Some(options.connect_timeout))
                .set_response_timeout(Some(options.command_timeout))
                .set_min_delay(options.reconnect_min_delay)
                .set_max_delay(options.reconnect_max_delay)
                .set_number_of_retries(2),
        )?;
        let registry = Arc::new(Registry::new(options.channel_capacity));
        let stop = CancellationToken::new();
        let (first_attempt, first_attempt_done) = oneshot::channel();
        let task = tokio::spawn(connection::run(
            client,
            registry.clone(),
            options,
            stop.clone(),
            first_attempt,
        ));
        // Should this future be dropped while waiting, the task must not outlive it.
        let stop_on_cancel = stop.clone().drop_guard();
        // An error means the task is gone; the registry is closed then and calls will say so.
        let _ = first_attempt_done.await;
        stop_on_cancel.disarm();
        Ok(Self {
            registry,
            publisher,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// Follows [`EventBus::health`] as it changes (the subscriber connection going down or up).
    pub fn health_changes(&self) -> watch::Receiver<BusHealth> {
        self.registry.health_changes()
    }
}

#[async_trait::async_trait]
impl EventBus for RedisBus {
    async fn publish(&self, channel: &str, payload: &str) -> Result<(), BusError> {
        if self.stop.is_cancelled() || self.registry.is_closed() {
            return Err(BusError::Closed);
        }
        let mut command = redis::cmd("PUBLISH");
        command.arg(channel).arg(payload);
        let mut publisher = self.publisher.clone();
        let first = command.query_async::<i64>(&mut publisher).await;
        match first {
            // The manager noticed a dead connection (Redis restarted) and is replacing it: one
            // retry on the new connection. A duplicate is harmless, as delivery is at most once
            // anyway and subscribers re-read stored state.
            Err(error) if error.is_unrecoverable_error() || error.is_io_error() => {
                tracing::debug!(%error, "redis publish failed on a dead connection; retrying once");
                command.query_async::<i64>(&mut publisher).await?;
            }
            other => {
                other?;
            }
        }
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> Result<Subscription, BusError> {
        let joined = self.registry.join(channel)?;
        let subscription = Subscription::new(channel, joined.receiver, self.registry.clone());
        if let Some(live) = joined.live {
            // The sender is dropped only when the registry closes.
            live.await.map_err(|_| BusError::Closed)?;
        }
        Ok(subscription)
    }

    fn channel_count(&self) -> usize {
        self.registry.channel_count()
    }

    fn health(&self) -> BusHealth {
        self.registry.health()
    }

    async fn shutdown(&self) {
        self.stop.cancel();
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            // A panic in the task has already closed the registry; nothing more to do.
            let _ = task.await;
        }
    }
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
