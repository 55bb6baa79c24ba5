//! Tokens taken from the shared bucket a few at a time and spent here, so that a busy client
//! costs one Redis round trip per lease instead of one per request.
//!
//! The shared bucket counts leased tokens as spent when it hands them out, so the instances
//! together never admit more than the quota. A lease is at most a sixteenth of what the bucket
//! has left (see the GCRA script), so a client near its limit gets leases of one token and
//! sees exact limits across instances; a lease lives [`LEASE_TTL`], after which its unspent
//! tokens are forgotten (they come back as the bucket refills).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Decision, LimitClass};

/// How long leased tokens may be spent: short, so that tokens stranded on one instance (the
/// client moved to another) are not missed for long.
pub const LEASE_TTL: Duration = Duration::from_secs(1);

/// The most tokens one lease takes.
pub const MAX_LEASE: u32 = 64;

/// Unspent leases by class and key.
#[derive(Default)]
pub struct Leases {
    tables: Mutex<[Table; 2]>,
}

#[derive(Default)]
struct Table {
    leases: HashMap<String, Lease>,
    /// Size at which expired leases are next swept out, so memory stays bounded by the keys
    /// active within [`LEASE_TTL`].
    sweep_at: usize,
}

struct Lease {
    /// Tokens still to spend here.
    left: u32,
    /// What the shared bucket had left after the grant.
    remaining: u32,
    /// Time until the shared bucket was full again, from the grant.
    reset: Duration,
    granted: Instant,
}

impl Lease {
    fn decision(&self, now: Instant) -> Decision {
        Decision::Allowed {
            remaining: self.remaining.saturating_add(self.left),
            reset: self
                .reset
                .saturating_sub(now.saturating_duration_since(self.granted)),
        }
    }
}

fn index(class: LimitClass) -> usize {
    match class {
        LimitClass::General => 0,
        LimitClass::Ai => 1,
    }
}

impl Leases {
    /// Spends one leased token of `key`, if a live lease has one.
    pub fn take(&self, class: LimitClass, key: &str, now: Instant) -> Option<Decision> {
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        let table = &mut tables[index(class)];
        let lease = table.leases.get_mut(key)?;
        if lease.left == 0 || now.saturating_duration_since(lease.granted) >= LEASE_TTL {
            table.leases.remove(key);
            return None;
        }
        lease.left -= 1;
        let decision = lease.decision(now);
        if lease.left == 0 {
            table.leases.remove(key);
        }
        Some(decision)
    }

    /// Records a grant of `granted` tokens (one of them for the request at hand) and returns
    /// that request's decision. `remaining` and `reset` are the shared bucket's after the grant.
    pub fn grant(
        &self,
        class: LimitClass,
        key: &str,
        granted: u32,
        remaining: u32,
        reset: Duration,
        now: Instant,
    ) -> Decision {
        let lease = Lease {
            left: granted.saturating_sub(1),
            remaining,
            reset,
            granted: now,
        };
        if lease.left == 0 {
            return lease.decision(now);
        }
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        let table = &mut tables[index(class)];
        if table.leases.len() >= table.sweep_at {
            table
                .leases
                .retain(|_, l| now.saturating_duration_since(l.granted) < LEASE_TTL);
            table.sweep_at = (table.leases.len() * 2).max(1024);
        }
        // Grants made while others were in flight for the same key (a busy client's
        // concurrent requests all finding the lease empty) add up: the shared bucket has
        // counted every granted token as spent, so forgetting the older ones would only
        // send the next requests back to Redis. The sum lives on from this grant.
        match table.leases.get_mut(key) {
            Some(held) if now.saturating_duration_since(held.granted) < LEASE_TTL => {
                held.left = held.left.saturating_add(lease.left);
                held.remaining = lease.remaining;
                held.reset = lease.reset;
                held.granted = now;
                held.decision(now)
            }
            _ => {
                let decision = lease.decision(now);
                table.leases.insert(key.to_owned(), lease);
                decision
            }
        }
    }

    /// Leases held (for tests of the sweep).
    #[cfg(test)]
    fn len(&self, class: LimitClass) -> usize {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())[index(class)]
            .leases
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remaining(decision: Option<Decision>) -> Option<u32> {
        match decision {
            Some(Decision::Allowed { remaining, .. }) => Some(remaining),
            _ => None,
        }
    }

    #[test]
    fn a_lease_is_spent_one_request_at_a_time_then_gone() {
        let leases = Leases::default();
        let t0 = Instant::now();
        let class = LimitClass::General;
        let first = leases.grant(class, "u:a", 3, 100, Duration::from_secs(2), t0);
        assert_eq!(
            remaining(Some(first)),
            Some(102),
            "bucket plus two leased tokens"
        );
        assert_eq!(remaining(leases.take(class, "u:a", t0)), Some(101));
        assert_eq!(remaining(leases.take(class, "u:a", t0)), Some(100));
        assert_eq!(
            leases.take(class, "u:a", t0),
            None,
            "three tokens, three requests"
        );
        assert_eq!(leases.take(class, "u:b", t0), None, "leases are per key");
        assert_eq!(
            leases.take(LimitClass::Ai, "u:a", t0),
            None,
            "and per class"
        );
    }

    #[test]
    fn a_lease_of_one_is_not_kept_and_an_old_lease_expires() {
        let leases = Leases::default();
        let t0 = Instant::now();
        let class = LimitClass::Ai;
        leases.grant(class, "u:a", 1, 5, Duration::from_secs(1), t0);
        assert_eq!(leases.len(class), 0);
        leases.grant(class, "u:a", 10, 50, Duration::from_secs(1), t0);
        assert!(leases.take(class, "u:a", t0 + LEASE_TTL / 2).is_some());
        assert_eq!(leases.take(class, "u:a", t0 + LEASE_TTL), None);
        assert_eq!(leases.len(class), 0, "the expired lease is dropped");
    }

    #[test]
    fn concurrent_grants_for_one_key_add_up() {
        let leases = Leases::default();
        let t0 = Instant::now();
        let class = LimitClass::General;
        leases.grant(class, "u:a", 3, 90, Duration::from_secs(1), t0);
        // A second request found the lease empty before the first grant arrived.
        let second = leases.grant(class, "u:a", 3, 87, Duration::from_secs(1), t0);
        assert_eq!(
            remaining(Some(second)),
            Some(91),
            "bucket plus all four leased"
        );
        let spent = (0..5).filter_map(|_| leases.take(class, "u:a", t0)).count();
        assert_eq!(spent, 4, "both grants' spare tokens are spent, each once");
    }

    #[test]
    fn the_reset_counts_down_from_the_grant() {
        let leases = Leases::default();
        let t0 = Instant::now();
        leases.grant(
            LimitClass::General,
            "k",
            4,
            0,
            Duration::from_millis(900),
            t0,
        );
        match leases.take(LimitClass::General, "k", t0 + Duration::from_millis(300)) {
            Some(Decision::Allowed { reset, .. }) => assert_eq!(reset, Duration::from_millis(600)),
            other => panic!("expected an allowed request, got {other:?}"),
        }
    }

    #[test]
    fn expired_leases_of_many_keys_are_swept() {
        let leases = Leases::default();
        let t0 = Instant::now();
        let class = LimitClass::General;
        for n in 0..1000 {
            leases.grant(class, &format!("k{n}"), 2, 10, Duration::ZERO, t0);
        }
        let later = t0 + LEASE_TTL;
        for n in 0..50 {
            leases.grant(class, &format!("new{n}"), 2, 10, Duration::ZERO, later);
        }
        assert!(
            leases.len(class) <= 50,
            "{} leases kept after their keys went quiet",
            leases.len(class)
        );
    }
}
