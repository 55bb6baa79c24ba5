//! The in-process bus: the embedded default when no Redis is configured (one instance only).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::channel_table::ChannelTable;
use super::subscription::{ReleaseChannel, Subscription};
use super::{BusError, BusEvent, BusHealth, DEFAULT_CHANNEL_CAPACITY, EventBus};

/// Pub/sub inside one process, with the same semantics as [`super::RedisBus`]: a subscription is
/// live as soon as `subscribe` returns, and a lagging subscriber gets [`BusEvent::Resync`].
#[derive(Clone)]
pub struct LocalBus {
    inner: Arc<LocalChannels>,
}

struct LocalChannels {
    state: Mutex<LocalState>,
}

struct LocalState {
    table: ChannelTable<()>,
    closed: bool,
}

impl LocalBus {
    /// A bus with the default per-channel capacity.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_CHANNEL_CAPACITY)
    }

    /// A bus whose subscribers may fall `capacity` messages behind before they get a `Resync`.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Arc::new(LocalChannels {
                state: Mutex::new(LocalState {
                    table: ChannelTable::new(capacity),
                    closed: false,
                }),
            }),
        }
    }
}

impl Default for LocalBus {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalChannels {
    fn lock(&self) -> MutexGuard<'_, LocalState> {
        // The state stays consistent at every step, so a panic elsewhere does not spoil it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ReleaseChannel for LocalChannels {
    fn release(&self, channel: &str) {
        self.lock().table.leave(channel);
    }
}

#[async_trait::async_trait]
impl EventBus for LocalBus {
    async fn publish(&self, channel: &str, payload: &str) -> Result<(), BusError> {
        let state = self.inner.lock();
        if state.closed {
            return Err(BusError::Closed);
        }
        state
            .table
            .send(channel, BusEvent::Message(Arc::from(payload)));
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> Result<Subscription, BusError> {
        let receiver = {
            let mut state = self.inner.lock();
            if state.closed {
                return Err(BusError::Closed);
            }
            state.table.join(channel).0
        };
        Ok(Subscription::new(channel, receiver, self.inner.clone()))
    }

    fn channel_count(&self) -> usize {
        self.inner.lock().table.len()
    }

    fn health(&self) -> BusHealth {
        BusHealth::Disabled
    }

    async fn shutdown(&self) {
        let mut state = self.inner.lock();
        state.closed = true;
        state.table.clear();
    }
}
