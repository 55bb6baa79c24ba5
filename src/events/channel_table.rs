//! The per-channel fan-out both buses share: one bounded broadcast per channel, counted
//! listeners, and the channel removed when its last listener leaves.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::broadcast;

use super::BusEvent;

/// Channels with local listeners. `S` is what a bus tracks per channel beyond the fan-out
/// (the Redis bus: subscription state); callers hold it behind their own lock.
pub(super) struct ChannelTable<S> {
    channels: HashMap<Arc<str>, ChannelEntry<S>>,
    capacity: usize,
}

/// One channel's fan-out and its listener count.
pub(super) struct ChannelEntry<S> {
    sender: broadcast::Sender<BusEvent>,
    listeners: usize,
    /// Bus-specific state of this channel.
    pub(super) state: S,
}

impl<S> ChannelEntry<S> {
    /// Sends to every listener; a listener that is too far behind will see `Resync` instead.
    pub(super) fn send(&self, event: BusEvent) {
        // An error only means there is no receiver at this instant, which is not a failure.
        let _ = self.sender.send(event);
    }
}

impl<S: Default> ChannelTable<S> {
    /// `capacity` bounds each channel's buffer (at least 1, as `broadcast` requires).
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            channels: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Adds a listener to `channel`, creating the channel if needed. Returns the listener's
    /// receiver, the channel's entry and whether it was just created.
    pub(super) fn join(
        &mut self,
        channel: &str,
    ) -> (broadcast::Receiver<BusEvent>, &mut ChannelEntry<S>, bool) {
        let capacity = self.capacity;
        let mut created = false;
        let entry = self.channels.entry(Arc::from(channel)).or_insert_with(|| {
            created = true;
            ChannelEntry {
                sender: broadcast::Sender::new(capacity),
                listeners: 0,
                state: S::default(),
            }
        });
        entry.listeners += 1;
        (entry.sender.subscribe(), entry, created)
    }
}

impl<S> ChannelTable<S> {
    /// Removes a listener; returns `true` when it was the channel's last and the channel is gone.
    /// Unknown channels (the table was cleared by a shutdown) are ignored.
    pub(super) fn leave(&mut self, channel: &str) -> bool {
        let Some(entry) = self.channels.get_mut(channel) else {
            return false;
        };
        entry.listeners = entry.listeners.saturating_sub(1);
        if entry.listeners > 0 {
            return false;
        }
        self.channels.remove(channel);
        true
    }

    /// Delivers `event` to the listeners of `channel`, if it has any.
    pub(super) fn send(&self, channel: &str, event: BusEvent) {
        if let Some(entry) = self.channels.get(channel) {
            entry.send(event);
        }
    }

    pub(super) fn get_mut(&mut self, channel: &str) -> Option<&mut ChannelEntry<S>> {
        self.channels.get_mut(channel)
    }

    pub(super) fn names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.channels.keys()
    }

    pub(super) fn entries_mut(&mut self) -> impl Iterator<Item = &mut ChannelEntry<S>> {
        self.channels.values_mut()
    }

    pub(super) fn len(&self) -> usize {
        self.channels.len()
    }

    /// Drops every channel, which ends every listener's stream.
    pub(super) fn clear(&mut self) {
        self.channels.clear();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_channel_lives_until_its_last_listener_leaves() {
        let mut table = ChannelTable::<()>::new(4);
        let (_a, _, created_a) = table.join("c");
        let (_b, _, created_b) = table.join("c");
        assert!(created_a);
        assert!(!created_b);
        assert_eq!(table.len(), 1);

        assert!(!table.leave("c"));
        assert_eq!(table.len(), 1);
        assert!(table.leave("c"));
        assert_eq!(table.len(), 0);
        assert!(!table.leave("c"), "leaving an unknown channel is a no-op");
    }

    #[test]
    fn send_reaches_only_that_channels_listeners() {
        let mut table = ChannelTable::<()>::new(4);
        let (mut a, _, _) = table.join("a");
        let (mut b, _, _) = table.join("b");
        table.send("a", BusEvent::Message(Arc::from("for a")));
        assert_eq!(a.try_recv().unwrap(), BusEvent::Message(Arc::from("for a")));
        assert!(b.try_recv().is_err());
    }

    #[test]
    fn clear_closes_every_receiver() {
        let mut table = ChannelTable::<()>::new(4);
        let (mut a, _, _) = table.join("a");
        table.clear();
        assert_eq!(
            a.try_recv(),
            Err(broadcast::error::TryRecvError::Closed),
            "the sender was dropped with the table"
        );
    }
}
