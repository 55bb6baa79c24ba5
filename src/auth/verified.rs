//! Tokens already verified, so that a client sending the same JWT on every request pays for
//! its signature and claims once a minute rather than on every call.
//!
//! Decoding and checking a token (two base64 decodes, an HMAC or public-key check, two JSON
//! parses) was a fifth of a proxied call's instructions. An entry is keyed by the whole token
//! text, so a token that differs in any byte (a forged signature included) is verified afresh;
//! its expiry is still checked on every hit; and it is verified again after [`RECHECK_AFTER`],
//! which bounds how long a key removed from a JWKS keeps admitting its tokens. Refused tokens
//! are never kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use foldhash::fast::RandomState;

use super::claims::Claims;
use crate::ids::UserId;

/// How long a verification is trusted before the token is verified again.
pub const RECHECK_AFTER: Duration = Duration::from_secs(60);

/// Most tokens kept; past it, entries past [`RECHECK_AFTER`] are dropped, and all of them if
/// that is not enough (the next request of each client verifies again).
const CAPACITY: usize = 10_000;

/// A verified token's user and claims, shared by every request that presents the token.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The user (`sub`).
    pub user: UserId,
    /// All its claims.
    pub claims: Arc<Claims>,
}

impl Verified {
    /// Claims that passed verification.
    pub fn new(claims: Claims) -> Self {
        Self {
            user: UserId::new(claims.sub.as_str()),
            claims: Arc::new(claims),
        }
    }
}

/// What a lookup found.
#[derive(Debug, PartialEq)]
pub enum Cached {
    /// Verified within [`RECHECK_AFTER`] and not expired.
    Valid(Verified),
    /// Verified, but its `exp` (plus the leeway) has passed since.
    Expired,
    /// Not kept, or kept too long: verify it.
    Unknown,
}

struct Entry {
    verified: Verified,
    verified_at: Instant,
}

/// The verified tokens of this process.
pub struct VerifiedTokens {
    leeway_secs: u64,
    /// Keyed with foldhash rather than SipHash, which took about 1 % of a proxied call to
    /// hash the whole token. Only verified tokens are ever kept, so a client cannot fill the
    /// map with keys of its choosing; the hasher is still randomly seeded.
    entries: Mutex<HashMap<Box<str>, Entry, RandomState>>,
}

impl VerifiedTokens {
    /// An empty cache judging expiry with the validation's leeway.
    pub fn new(leeway_secs: u64) -> Self {
        Self {
            leeway_secs,
            entries: Mutex::new(HashMap::default()),
        }
    }

    /// Looks `token` up at `now` (monotonic) and `unix_now` (seconds since the epoch).
    pub fn get(&self, token: &str, now: Instant, unix_now: u64) -> Cached {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = entries.get(token) else {
            return Cached::Unknown;
        };
        if now.saturating_duration_since(entry.verified_at) >= RECHECK_AFTER {
            entries.remove(token);
            return Cached::Unknown;
        }
        if entry.verified.claims.exp.saturating_add(self.leeway_secs) < unix_now {
            entries.remove(token);
            return Cached::Expired;
        }
        Cached::Valid(entry.verified.clone())
    }

    /// Keeps `verified`, just verified from `token` at `now`.
    pub fn insert(&self, token: &str, verified: Verified, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CAPACITY {
            entries.retain(|_, e| now.saturating_duration_since(e.verified_at) < RECHECK_AFTER);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(
            token.into(),
            Entry {
                verified,
                verified_at: now,
            },
        );
    }

    /// Tokens kept (for tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Verified {
        Verified::new(Claims {
            sub: "alice".into(),
            exp,
            iat: None,
            nbf: None,
            iss: None,
            aud: None,
            name: None,
        })
    }

    #[test]
    fn a_kept_token_is_valid_until_its_expiry_plus_leeway() {
        let cache = VerifiedTokens::new(30);
        let t0 = Instant::now();
        cache.insert("a.b.c", claims(1_000), t0);
        assert_eq!(cache.get("a.b.c", t0, 1_000), Cached::Valid(claims(1_000)));
        assert_eq!(cache.get("a.b.c", t0, 1_030), Cached::Valid(claims(1_000)));
        assert_eq!(cache.get("a.b.c", t0, 1_031), Cached::Expired);
        assert_eq!(cache.get("a.b.c", t0, 1_000), Cached::Unknown, "dropped");
    }

    #[test]
    fn only_the_exact_token_is_found() {
        let cache = VerifiedTokens::new(0);
        let t0 = Instant::now();
        cache.insert("a.b.c", claims(1_000), t0);
        assert_eq!(cache.get("a.b.d", t0, 10), Cached::Unknown);
        assert_eq!(cache.get("a.b.c ", t0, 10), Cached::Unknown);
    }

    #[test]
    fn a_token_is_verified_again_after_a_minute() {
        let cache = VerifiedTokens::new(0);
        let t0 = Instant::now();
        cache.insert("a.b.c", claims(u64::MAX), t0);
        let almost = t0 + RECHECK_AFTER - Duration::from_millis(1);
        assert!(matches!(cache.get("a.b.c", almost, 10), Cached::Valid(_)));
        assert_eq!(cache.get("a.b.c", t0 + RECHECK_AFTER, 10), Cached::Unknown);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = VerifiedTokens::new(0);
        let t0 = Instant::now();
        for n in 0..CAPACITY {
            cache.insert(&format!("old{n}"), claims(u64::MAX), t0);
        }
        let later = t0 + RECHECK_AFTER;
        cache.insert("new", claims(u64::MAX), later);
        assert_eq!(cache.len(), 1, "stale entries swept out");
        for n in 0..CAPACITY {
            cache.insert(&format!("fresh{n}"), claims(u64::MAX), later);
        }
        assert!(cache.len() <= CAPACITY, "{} kept", cache.len());
        assert!(matches!(
            cache.get("fresh9999", later, 10),
            Cached::Valid(_)
        ));
    }
}
