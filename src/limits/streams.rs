//! The per-user cap on concurrently open SSE streams.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::ids::UserId;

/// The user already has the maximum number of streams open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many open streams (limit {limit})")]
pub struct TooManyStreams {
    /// The cap in force.
    pub limit: usize,
}

/// Counts open streams per user on this instance.
#[derive(Clone)]
pub struct StreamSlots {
    limit: usize,
    open: Arc<Mutex<HashMap<UserId, usize>>>,
}

impl StreamSlots {
    /// A counter with the given per-user cap.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            open: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Takes a slot; the returned guard frees it when dropped, however the stream ends
    /// (completion, error, client gone, shutdown, panic).
    pub fn acquire(&self, user: &UserId) -> Result<StreamSlot, TooManyStreams> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(user.clone()).or_insert(0);
        if *count >= self.limit {
            return Err(TooManyStreams { limit: self.limit });
        }
        *count += 1;
        Ok(StreamSlot {
            slots: self.clone(),
            user: user.clone(),
        })
    }

    /// Streams open for `user` right now.
    pub fn open_for(&self, user: &UserId) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(user).copied().unwrap_or(0)
    }

    fn release(&self, user: &UserId) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(user);
            }
        }
    }
}

/// One open stream's slot; move it into the stream so it lives exactly as long.
pub struct StreamSlot {
    slots: StreamSlots,
    user: UserId,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.slots.release(&self.user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_and_freed_on_drop() {
        let slots = StreamSlots::new(2);
        let alice = UserId::new("alice");
        let a = slots.acquire(&alice).unwrap_or_else(|e| panic!("{e}"));
        let _b = slots.acquire(&alice).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            slots.acquire(&alice).err(),
            Some(TooManyStreams { limit: 2 })
        );
        assert!(slots.acquire(&UserId::new("bob")).is_ok());
        drop(a);
        assert_eq!(slots.open_for(&alice), 1);
        assert!(slots.acquire(&alice).is_ok());
    }
}
