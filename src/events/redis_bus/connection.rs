//! The one task that owns the instance's Redis subscriber connection: it keeps Redis subscribed
//! to exactly the wanted channels, fans messages out, and reconnects with backoff.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use redis::{Msg, RedisError, Value};
use tokio::sync::oneshot;
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep, timeout};
use tokio_util::sync::CancellationToken;

use super::RedisBusOptions;
use super::registry::Registry;
use crate::events::backoff::Backoff;

/// Channels per SUBSCRIBE / UNSUBSCRIBE command, so a resubscription of many channels is a few
/// round trips without building one huge command.
const CHANNELS_PER_COMMAND: usize = 500;

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
enum ConnectionLost {
    #[error(transparent)]
    Redis(#[from] RedisError),
    #[error("Redis did not answer in time")]
    Timeout,
    #[error("the connection was closed")]
    Closed,
}

/// Runs until `shutdown` is cancelled (or the task is dropped), then closes the registry so
/// every subscription ends. `first_attempt` fires once the first connection attempt is over,
/// successful or not.
pub(super) async fn run(
    client: redis::Client,
    registry: Arc<Registry>,
    options: RedisBusOptions,
    shutdown: CancellationToken,
    first_attempt: oneshot::Sender<()>,
) {
    let _close = CloseOnDrop(registry.clone());
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = maintain(&client, &registry, &options, first_attempt) => {}
    }
}

/// Closes the registry however the task ends (shutdown, runtime drop, panic), so no subscriber
/// waits forever on a task that is gone.
struct CloseOnDrop(Arc<Registry>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

async fn maintain(
    client: &redis::Client,
    registry: &Registry,
    options: &RedisBusOptions,
    first_attempt: oneshot::Sender<()>,
) {
    let mut first_attempt = Some(first_attempt);
    let mut backoff = Backoff::new(options.reconnect_min_delay, options.reconnect_max_delay);
    let mut failed_attempts: u32 = 0;
    let mut ever_connected = false;
    loop {
        match Session::open(client, registry, options).await {
            Ok(mut session) => {
                let channels = session.subscribed.len();
                if ever_connected {
                    tracing::info!(
                        channels,
                        failed_attempts,
                        "redis pubsub connection restored"
                    );
                } else {
                    tracing::info!(channels, "redis pubsub connected");
                }
                ever_connected = true;
                failed_attempts = 0;
                if let Some(signal) = first_attempt.take() {
                    let _ = signal.send(());
                }
                let opened = Instant::now();
                let lost = session.serve(registry, options).await;
                registry.on_disconnected();
                tracing::warn!(error = %lost, "redis pubsub connection lost; reconnecting");
                // A connection that held for a while was healthy: retry quickly. One that drops
                // right after connecting keeps backing off, so a flapping Redis is not hammered.
                if opened.elapsed() >= options.reconnect_max_delay {
                    backoff.reset();
                }
            }
            Err(error) => {
                registry.on_disconnected();
                failed_attempts += 1;
                if failed_attempts == 1 {
                    tracing::warn!(%error, "redis pubsub connection failed; retrying");
                } else {
                    tracing::debug!(%error, failed_attempts, "redis pubsub connection failed");
                }
            }
        }
        if let Some(signal) = first_attempt.take() {
            let _ = signal.send(());
        }
        sleep(backoff.next_delay()).await;
    }
}

/// One subscriber connection and the channels Redis confirmed on it.
struct Session {
    sink: PubSubSink,
    messages: PubSubStream,
    subscribed: HashSet<Arc<str>>,
}

impl Session {
    /// Connects and subscribes every wanted channel, so the bus is fully up when this returns.
    async fn open(
        client: &redis::Client,
        registry: &Registry,
        options: &RedisBusOptions,
    ) -> Result<Self, ConnectionLost> {
        let pubsub = timeout(options.connect_timeout, client.get_async_pubsub())
            .await
            .map_err(|_| ConnectionLost::Timeout)??;
        let (sink, messages) = pubsub.split();
        let mut session = Self {
            sink,
            messages,
            subscribed: HashSet::new(),
        };
        registry.on_connected();
        session.reconcile(registry, options).await?;
        Ok(session)
    }

    /// Reads messages and applies subscription changes until the connection fails.
    async fn serve(&mut self, registry: &Registry, options: &RedisBusOptions) -> ConnectionLost {
        let mut ping = interval_at(
            Instant::now() + options.ping_interval,
            options.ping_interval,
        );
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let step = tokio::select! {
                message = self.messages.next() => match message {
                    Some(message) => {
                        deliver(registry, &message);
                        Ok(())
                    }
                    None => Err(ConnectionLost::Closed),
                },
                () = registry.changed() => self.reconcile(registry, options).await,
                _ = ping.tick() => {
                    within(options.command_timeout, self.sink.ping::<Value>()).await.map(drop)
                }
            };
            if let Err(lost) = step {
                return lost;
            }
        }
    }

    /// Sends the SUBSCRIBE / UNSUBSCRIBE commands that make Redis match the wanted channels,
    /// until nothing is left to change. Messages keep queueing in the meantime.
    async fn reconcile(
        &mut self,
        registry: &Registry,
        options: &RedisBusOptions,
    ) -> Result<(), ConnectionLost> {
        loop {
            let plan = registry.take_plan(&self.subscribed);
            if plan.is_empty() {
                return Ok(());
            }
            for channels in plan.unsubscribe.chunks(CHANNELS_PER_COMMAND) {
                let names: Vec<&str> = channels.iter().map(|name| &**name).collect();
                within(options.command_timeout, self.sink.unsubscribe(names)).await?;
                for channel in channels {
                    self.subscribed.remove(channel);
                }
            }
            for channels in plan.subscribe.chunks(CHANNELS_PER_COMMAND) {
                let names: Vec<&str> = channels.iter().map(|name| &**name).collect();
                within(options.command_timeout, self.sink.subscribe(names)).await?;
                self.subscribed.extend(channels.iter().cloned());
                registry.confirm(channels);
            }
        }
    }
}

/// Bounds a command: a half-open connection must not stall the bus forever.
async fn within<T>(
    limit: Duration,
    command: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, ConnectionLost> {
    match timeout(limit, command).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(ConnectionLost::Timeout),
    }
}

fn deliver(registry: &Registry, message: &Msg) {
    let channel = message.get_channel_name();
    match std::str::from_utf8(message.get_payload_bytes()) {
        Ok(payload) => registry.deliver(channel, payload),
        Err(_) => tracing::warn!(channel, "skipped a pubsub message that is not UTF-8"),
    }
}
