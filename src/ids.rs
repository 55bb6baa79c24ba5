//! Newtypes for identifiers, so a conversation id can never be passed where a scenario id is
//! expected.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered id (UUIDv7 keeps index inserts local).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// A scenario (a novel plus a description, with the passages found for it).
    ScenarioId
);
uuid_id!(
    /// A conversation generated from a scenario.
    ConversationId
);
uuid_id!(
    /// One stored chat message.
    MessageId
);

/// The authenticated user: the JWT `sub`, opaque to sluice.
///
/// Shared rather than owned: every request of a user carries it (from the verified-token
/// cache to the handler), and a clone is then a count, not a copy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(Arc<str>);

impl UserId {
    /// Wraps a `sub` claim.
    pub fn new(sub: impl AsRef<str>) -> Self {
        Self(Arc::from(sub.as_ref()))
    }

    /// The raw `sub`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
