//! Which channels this instance wants, shared between the subscribers (who join and leave) and
//! the connection task (the only one that talks to Redis).
//!
//! Subscribers never send SUBSCRIBE themselves: they change the wanted set and mark the channel
//! dirty; the connection task compares the wanted set with what Redis confirmed and issues the
//! difference, one command at a time. Because one task owns every command and re-reads the
//! wanted set after each, a subscribe racing an unsubscribe of the same channel always ends with
//! Redis subscribed exactly when the channel has listeners.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{Notify, broadcast, oneshot, watch};

use crate::events::channel_table::{ChannelEntry, ChannelTable};
use crate::events::subscription::ReleaseChannel;
use crate::events::{BusError, BusEvent, BusHealth};

/// The wanted channels, their fan-out and the subscription state the connection task reports.
pub(super) struct Registry {
    state: Mutex<RegistryState>,
    /// Wakes the connection task when a channel became dirty.
    changed: Notify,
    health: watch::Sender<BusHealth>,
}

struct RegistryState {
    table: ChannelTable<RedisChannel>,
    /// Channels whose wanted state changed since the connection task last looked.
    dirty: HashSet<Arc<str>>,
    /// A subscriber connection exists, so a new subscriber waits for its SUBSCRIBE to be
    /// confirmed; while it does not, the subscriber is registered and gets a `Resync` later.
    connected: bool,
    closed: bool,
}

/// A channel's Redis side, as far as the connection task has confirmed it.
#[derive(Default)]
struct RedisChannel {
    /// Redis confirmed the subscription on the current connection.
    live: bool,
    /// Messages may have been missed (the connection dropped): send `Resync` once live again.
    needs_resync: bool,
    /// Subscribers waiting for `live`.
    waiters: Vec<oneshot::Sender<()>>,
}

/// A new listener's receiver and, unless it is already live, what to await before using it.
pub(super) struct Joined {
    pub(super) receiver: broadcast::Receiver<BusEvent>,
    pub(super) live: Option<oneshot::Receiver<()>>,
}

/// What the connection task must send to Redis to match the wanted set.
#[derive(Debug, Default)]
pub(super) struct Plan {
    pub(super) subscribe: Vec<Arc<str>>,
    pub(super) unsubscribe: Vec<Arc<str>>,
}

impl Plan {
    pub(super) fn is_empty(&self) -> bool {
        self.subscribe.is_empty() && self.unsubscribe.is_empty()
    }
}

impl Registry {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(RegistryState {
                table: ChannelTable::new(capacity),
                dirty: HashSet::new(),
                connected: false,
                closed: false,
            }),
            changed: Notify::new(),
            health: watch::Sender::new(BusHealth::Down),
        }
    }

    fn lock(&self) -> MutexGuard<'_, RegistryState> {
        // Every critical section leaves the state consistent, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    // ---- subscriber side ----

    /// Adds a listener. Its receiver is created before the subscription is confirmed, so it
    /// cannot miss a message published after the confirmation.
    pub(super) fn join(&self, channel: &str) -> Result<Joined, BusError> {
        let mut state = self.lock();
        if state.closed {
            return Err(BusError::Closed);
        }
        let connected = state.connected;
        let (receiver, entry, created) = state.table.join(channel);
        let live = if entry.state.live {
            None
        } else if connected {
            let (tx, rx) = oneshot::channel();
            entry.state.waiters.push(tx);
            Some(rx)
        } else {
            entry.state.needs_resync = true;
            None
        };
        if created {
            state.dirty.insert(Arc::from(channel));
            drop(state);
            self.changed.notify_one();
        }
        Ok(Joined { receiver, live })
    }

    pub(super) fn channel_count(&self) -> usize {
        self.lock().table.len()
    }

    pub(super) fn health(&self) -> BusHealth {
        *self.health.borrow()
    }

    pub(super) fn health_changes(&self) -> watch::Receiver<BusHealth> {
        self.health.subscribe()
    }

    pub(super) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    // ---- connection task side ----

    /// Resolves when a channel became dirty since the last call (a stored permit counts).
    pub(super) async fn changed(&self) {
        self.changed.notified().await;
    }

    /// A new connection has no subscriptions: every wanted channel must be subscribed again.
    /// Health turns `Up` before any resubscription is confirmed, so a subscriber told to
    /// `Resync` already sees the bus up.
    pub(super) fn on_connected(&self) {
        let mut state = self.lock();
        state.connected = true;
        let names: Vec<Arc<str>> = state.table.names().cloned().collect();
        state.dirty.extend(names);
        self.health.send_replace(BusHealth::Up);
    }

    /// The connection is gone: subscriptions are no longer live, their subscribers may miss
    /// messages until the reconnect, and anyone waiting for a confirmation stops waiting
    /// (the channel stays registered and gets a `Resync` once subscribed again).
    pub(super) fn on_disconnected(&self) {
        let mut state = self.lock();
        state.connected = false;
        for entry in state.table.entries_mut() {
            entry.state.live = false;
            entry.state.needs_resync = true;
            release_waiters(entry);
        }
        self.health.send_replace(BusHealth::Down);
    }

    /// Takes the dirty channels and works out the commands that make Redis match them, given
    /// the channels Redis has confirmed on this connection (`subscribed`).
    pub(super) fn take_plan(&self, subscribed: &HashSet<Arc<str>>) -> Plan {
        let mut state = self.lock();
        let state = &mut *state;
        let mut plan = Plan::default();
        for channel in state.dirty.drain() {
            let have = subscribed.contains(&channel);
            match state.table.get_mut(&channel) {
                Some(entry) if have => mark_live(entry),
                Some(_) => plan.subscribe.push(channel),
                None if have => plan.unsubscribe.push(channel),
                None => {}
            }
        }
        plan
    }

    /// Redis confirmed SUBSCRIBE for `channels`: whoever listens to them now is live.
    pub(super) fn confirm(&self, channels: &[Arc<str>]) {
        let mut state = self.lock();
        for channel in channels {
            if let Some(entry) = state.table.get_mut(channel) {
                mark_live(entry);
            }
        }
    }

    /// Fans a published message out to this instance's listeners of `channel`.
    pub(super) fn deliver(&self, channel: &str, payload: &str) {
        self.lock()
            .table
            .send(channel, BusEvent::Message(Arc::from(payload)));
    }

    /// The bus is shutting down: end every subscription and refuse new ones.
    pub(super) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.connected = false;
        state.dirty.clear();
        // Dropping the entries drops their senders (streams end) and their waiters (the
        // pending `subscribe` calls fail with `Closed`).
        state.table.clear();
        self.health.send_replace(BusHealth::Down);
    }
}

impl ReleaseChannel for Registry {
    fn release(&self, channel: &str) {
        let mut state = self.lock();
        if state.table.leave(channel) {
            state.dirty.insert(Arc::from(channel));
            drop(state);
            self.changed.notify_one();
        }
    }
}

fn mark_live(entry: &mut ChannelEntry<RedisChannel>) {
    entry.state.live = true;
    release_waiters(entry);
    if entry.state.needs_resync {
        entry.state.needs_resync = false;
        entry.send(BusEvent::Resync);
    }
}

fn release_waiters(entry: &mut ChannelEntry<RedisChannel>) {
    for waiter in entry.state.waiters.drain(..) {
        // A waiter that gave up (its subscribe call was cancelled) needs no answer.
        let _ = waiter.send(());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn subscribed(names: &[&str]) -> HashSet<Arc<str>> {
        names.iter().map(|name| Arc::from(*name)).collect()
    }

    #[test]
    fn a_first_listener_waits_for_the_confirmation() {
        let registry = Registry::new(8);
        registry.on_connected();
        let mut joined = registry.join("c").unwrap();
        let mut live = joined.live.take().expect("must wait while connected");

        let plan = registry.take_plan(&HashSet::new());
        assert_eq!(plan.subscribe, vec![Arc::from("c")]);
        assert!(live.try_recv().is_err(), "not live before the confirmation");

        registry.confirm(&plan.subscribe);
        assert!(live.try_recv().is_ok());
        assert!(
            joined.receiver.try_recv().is_err(),
            "no resync for a fresh channel"
        );

        let second = registry.join("c").unwrap();
        assert!(second.live.is_none(), "a live channel needs no wait");
    }

    #[test]
    fn joining_while_disconnected_resolves_at_once_and_resyncs_when_subscribed() {
        let registry = Registry::new(8);
        let mut joined = registry.join("c").unwrap();
        assert!(joined.live.is_none());

        registry.on_connected();
        let plan = registry.take_plan(&HashSet::new());
        registry.confirm(&plan.subscribe);
        assert_eq!(joined.receiver.try_recv().unwrap(), BusEvent::Resync);
    }

    #[test]
    fn a_disconnect_releases_waiters_and_a_reconnect_resubscribes_and_resyncs() {
        let registry = Registry::new(8);
        registry.on_connected();
        let mut first = registry.join("c").unwrap();
        let plan = registry.take_plan(&HashSet::new());
        registry.confirm(&plan.subscribe);
        assert_eq!(registry.health(), BusHealth::Up);

        registry.on_disconnected();
        assert_eq!(registry.health(), BusHealth::Down);

        registry.on_connected();
        let mut waiting = registry.join("c").unwrap();
        let mut live = waiting.live.take().expect("connected again: waits");
        let plan = registry.take_plan(&HashSet::new());
        assert_eq!(plan.subscribe, vec![Arc::from("c")], "resubscribed");
        registry.confirm(&plan.subscribe);
        assert!(live.try_recv().is_ok());
        assert_eq!(first.receiver.try_recv().unwrap(), BusEvent::Resync);
        assert_eq!(waiting.receiver.try_recv().unwrap(), BusEvent::Resync);
    }

    #[test]
    fn the_last_leave_unsubscribes_and_a_quick_rejoin_keeps_the_subscription() {
        let registry = Arc::new(Registry::new(8));
        registry.on_connected();
        registry.join("c").unwrap(); // counted as a listener until released
        let plan = registry.take_plan(&HashSet::new());
        registry.confirm(&plan.subscribe);
        let redis = subscribed(&["c"]);

        registry.release("c");
        assert_eq!(registry.channel_count(), 0);
        let mut rejoined = registry.join("c").unwrap();
        let mut live = rejoined.live.take().expect("a new entry is not live yet");
        let plan = registry.take_plan(&redis);
        assert!(
            plan.is_empty(),
            "still subscribed on Redis: nothing to send"
        );
        assert!(live.try_recv().is_ok(), "and the new listener is live");

        registry.release("c");
        let plan = registry.take_plan(&redis);
        assert_eq!(plan.unsubscribe, vec![Arc::from("c")]);
    }

    #[test]
    fn a_rejoin_during_an_unsubscribe_subscribes_again() {
        let registry = Registry::new(8);
        registry.on_connected();
        registry.join("c").unwrap();
        let plan = registry.take_plan(&HashSet::new());
        registry.confirm(&plan.subscribe);
        registry.release("c");
        let plan = registry.take_plan(&subscribed(&["c"]));
        assert_eq!(plan.unsubscribe.len(), 1);

        // While UNSUBSCRIBE is in flight, a listener comes back.
        let mut joined = registry.join("c").unwrap();
        let mut live = joined.live.take().unwrap();
        let plan = registry.take_plan(&HashSet::new());
        assert_eq!(plan.subscribe, vec![Arc::from("c")]);
        assert!(live.try_recv().is_err());
        registry.confirm(&plan.subscribe);
        assert!(live.try_recv().is_ok());
    }

    #[test]
    fn close_ends_streams_fails_waiters_and_refuses_new_listeners() {
        let registry = Registry::new(8);
        registry.on_connected();
        let mut joined = registry.join("c").unwrap();
        let mut live = joined.live.take().unwrap();
        registry.close();
        assert!(matches!(
            live.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
        assert!(matches!(
            joined.receiver.try_recv(),
            Err(broadcast::error::TryRecvError::Closed)
        ));
        assert!(matches!(registry.join("c"), Err(BusError::Closed)));
    }
}
