//! `POST /__mock/hold`: pause new token streams after N tokens until `POST /__mock/release`,
//! so a test can act while a stream is known to be half-way.

use std::sync::{Mutex, PoisonError};

use tokio_util::sync::CancellationToken;

/// A pause point a stream picked up when it started.
#[derive(Debug, Clone)]
pub(crate) struct HoldGate {
    /// Tokens sent before the stream pauses.
    pub(crate) after_tokens: usize,
    released: CancellationToken,
}

impl HoldGate {
    /// Resolves once the hold is released (at once if it already was).
    pub(crate) async fn released(&self) {
        self.released.cancelled().await;
    }
}

/// The hold in force, if any.
#[derive(Debug, Default)]
pub(crate) struct Hold {
    current: Mutex<Option<HoldGate>>,
}

impl Hold {
    /// Holds every stream started from now on after `after_tokens` tokens. Streams already held
    /// stay held until the next release.
    pub(crate) fn set(&self, after_tokens: usize) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let released = current
            .as_ref()
            .map(|gate| gate.released.clone())
            .unwrap_or_default();
        *current = Some(HoldGate {
            after_tokens,
            released,
        });
    }

    /// Lets every held stream go on and clears the hold.
    pub(crate) fn release(&self) {
        let gate = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(gate) = gate {
            gate.released.cancel();
        }
    }

    /// The gate a stream starting now must respect.
    pub(crate) fn gate(&self) -> Option<HoldGate> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn release_opens_every_gate_taken_before_it() {
        let hold = Hold::default();
        assert!(hold.gate().is_none());
        hold.set(1);
        let first = hold.gate().unwrap();
        hold.set(3);
        let second = hold.gate().unwrap();
        assert_eq!((first.after_tokens, second.after_tokens), (1, 3));
        let waiting =
            tokio::spawn(async move { tokio::join!(first.released(), second.released()) });
        hold.release();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
        assert!(hold.gate().is_none());
    }
}
