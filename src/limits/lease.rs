//! Tokens taken from the shared bucket a few at a time and spent here, so that a busy client
//! costs one Redis round trip per lease instead of one per request.
//!
//! The shared bucket counts leased tokens as spent when it hands them out, so the instances
//! together never admit more than the quota. A lease is at most a sixteenth of what the bucket
//! has left (see the GCRA script), so a client near its limit gets leases of one token and
//! sees exact limits across instances; a lease lives [`LEASE_TTL`], after which its unspent
//! tokens are forgotten (they come back as the bucket refills).
//!
//! A lease half spent asks for the next one in the background ([`Taken::refill`]), so a busy
//! client's requests are served from leased tokens while the round trip is under way instead
//! of waiting for it: the Redis round trip (and the wake-ups of the threads and processes it
//! crosses) stays off the request path.
//!
//! A lease's size follows its client's pace ([`next_ask`]): a client that spends half of one
//! well within [`LEASE_TTL`] asks for twice as many next time, up to [`MAX_LEASE`], one that
//! takes longer for half as many, down to [`FIRST_LEASE`]. With leases of a fixed 64 a client
//! sending 15,000 requests a second asked Redis every 2 ms, too little time for the round trip
//! on a busy machine: its lease ran dry and every request in flight went to Redis itself
//! (BENCHMARKS.md); at the largest lease, the half still held when the next is asked for
//! lasts such a client ~130 ms.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use foldhash::fast::RandomState;

use super::{Decision, LimitClass};

/// How long leased tokens may be spent: short, so that tokens stranded on one instance (the
/// client moved to another) are not missed for long.
pub const LEASE_TTL: Duration = Duration::from_secs(1);

/// The most tokens a lease takes when its client has no pace yet (its first, and any asked
/// for by a request that found none).
pub const FIRST_LEASE: u32 = 64;

/// The most tokens one lease takes, however busy its client: what a client moving to another
/// instance can leave stranded for [`LEASE_TTL`] (and never more than a sixteenth of what its
/// bucket had left).
pub const MAX_LEASE: u32 = 4096;

/// Half a lease spent sooner than this (a quarter of [`LEASE_TTL`]): the client would spend
/// all of it within half its life, so the next is twice as large.
const GROW_WITHIN: Duration = Duration::from_millis(250);

/// Half a lease spent later than this (half of [`LEASE_TTL`]): the rest would likely expire
/// unspent, so the next is half as large.
const SHRINK_AFTER: Duration = Duration::from_millis(500);

/// Leases of fewer tokens are not refilled ahead: the bucket is then near its limit, where a
/// token held ahead by one instance could be one that another instance refuses for.
pub const REFILL_AHEAD_FROM: u32 = 8;

/// Unspent leases by class and key.
#[derive(Default)]
pub struct Leases {
    tables: Mutex<[Table; 2]>,
}

#[derive(Default)]
struct Table {
    /// Keyed with foldhash (seeded per process) rather than SipHash, which cost a few hundred
    /// instructions per request for these short keys.
    leases: HashMap<String, Lease, RandomState>,
    /// Size at which expired leases are next swept out, so memory stays bounded by the keys
    /// active within [`LEASE_TTL`].
    sweep_at: usize,
}

struct Lease {
    /// Tokens still to spend here.
    left: u32,
    /// Tokens of the grant that made or last topped up this lease: half of it spent, the
    /// next grant is asked for.
    size: u32,
    /// A grant is being asked for in the background.
    refilling: bool,
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

/// The size to ask for after a lease of `size` tokens whose first half took `elapsed`.
pub fn next_ask(size: u32, elapsed: Duration) -> u32 {
    let ask = if elapsed < GROW_WITHIN {
        size.saturating_mul(2)
    } else if elapsed > SHRINK_AFTER {
        size / 2
    } else {
        size
    };
    ask.clamp(FIRST_LEASE, MAX_LEASE)
}

fn index(class: LimitClass) -> usize {
    match class {
        LimitClass::General => 0,
        LimitClass::Ai => 1,
    }
}

/// Tokens the shared bucket handed out, as the GCRA script reported them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grant {
    /// Tokens granted (at least one).
    pub tokens: u32,
    /// One of them is for the request that asked; false for a refill ahead.
    pub for_request: bool,
    /// What the shared bucket had left after the grant.
    pub remaining: u32,
    /// Time until the shared bucket is full again.
    pub reset: Duration,
}

/// A request admitted from a lease.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Taken {
    /// The request's decision.
    pub decision: Decision,
    /// The lease is half spent and no grant is being asked for yet: the caller should ask for
    /// one of this many tokens (in the background) and report it with [`Leases::grant`] or
    /// [`Leases::refill_failed`].
    pub refill: Option<u32>,
}

impl Leases {
    /// Spends one leased token of `key`, if a live lease has one.
    pub fn take(&self, class: LimitClass, key: &str, now: Instant) -> Option<Taken> {
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        let table = &mut tables[index(class)];
        let lease = table.leases.get_mut(key)?;
        if lease.left == 0 || now.saturating_duration_since(lease.granted) >= LEASE_TTL {
            table.leases.remove(key);
            return None;
        }
        lease.left -= 1;
        let decision = lease.decision(now);
        let refill =
            (!lease.refilling && lease.size >= REFILL_AHEAD_FROM && lease.left <= lease.size / 2)
                .then(|| next_ask(lease.size, now.saturating_duration_since(lease.granted)));
        lease.refilling |= refill.is_some();
        if lease.left == 0 {
            table.leases.remove(key);
        }
        Some(Taken { decision, refill })
    }

    /// Records `grant` and returns the decision of the request it was asked for, which takes
    /// one of its tokens (a refill ahead takes none).
    pub fn grant(&self, class: LimitClass, key: &str, grant: Grant, now: Instant) -> Decision {
        let lease = Lease {
            left: grant.tokens.saturating_sub(u32::from(grant.for_request)),
            size: grant.tokens,
            refilling: false,
            remaining: grant.remaining,
            reset: grant.reset,
            granted: now,
        };
        if lease.left == 0 && grant.for_request {
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
                held.size = lease.size;
                // Only the refill's own grant ends a pending refill; a request's does not.
                held.refilling &= grant.for_request;
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

    /// A background refill asked for by [`Leases::take`] got no tokens (Redis unreachable, or
    /// the bucket empty): the next half-spent take asks again.
    pub fn refill_failed(&self, class: LimitClass, key: &str) {
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        let table = &mut tables[index(class)];
        if let Some(lease) = table.leases.get_mut(key) {
            lease.refilling = false;
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
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A grant asked for by a request, which takes one of the tokens.
    fn asked(tokens: u32, remaining: u32, reset: Duration) -> Grant {
        Grant {
            tokens,
            for_request: true,
            remaining,
            reset,
        }
    }

    /// A grant asked for ahead of need.
    fn ahead(tokens: u32, remaining: u32, reset: Duration) -> Grant {
        Grant {
            for_request: false,
            ..asked(tokens, remaining, reset)
        }
    }

    /// A take's decision, for the tests that are not about refilling.
    fn take(leases: &Leases, class: LimitClass, key: &str, now: Instant) -> Option<Decision> {
        leases.take(class, key, now).map(|t| t.decision)
    }

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
        let first = leases.grant(class, "u:a", asked(3, 100, Duration::from_secs(2)), t0);
        assert_eq!(
            remaining(Some(first)),
            Some(102),
            "bucket plus two leased tokens"
        );
        assert_eq!(remaining(take(&leases, class, "u:a", t0)), Some(101));
        assert_eq!(remaining(take(&leases, class, "u:a", t0)), Some(100));
        assert_eq!(
            take(&leases, class, "u:a", t0),
            None,
            "three tokens, three requests"
        );
        assert_eq!(take(&leases, class, "u:b", t0), None, "leases are per key");
        assert_eq!(
            take(&leases, LimitClass::Ai, "u:a", t0),
            None,
            "and per class"
        );
    }

    #[test]
    fn a_lease_of_one_is_not_kept_and_an_old_lease_expires() {
        let leases = Leases::default();
        let t0 = Instant::now();
        let class = LimitClass::Ai;
        leases.grant(class, "u:a", asked(1, 5, Duration::from_secs(1)), t0);
        assert_eq!(leases.len(class), 0);
        leases.grant(class, "u:a", asked(10, 50, Duration::from_secs(1)), t0);
        assert!(take(&leases, class, "u:a", t0 + LEASE_TTL / 2).is_some());
        assert_eq!(take(&leases, class, "u:a", t0 + LEASE_TTL), None);
        assert_eq!(leases.len(class), 0, "the expired lease is dropped");
    }

    #[test]
    fn concurrent_grants_for_one_key_add_up() {
        let leases = Leases::default();
        let t0 = Instant::now();
        let class = LimitClass::General;
        leases.grant(class, "u:a", asked(3, 90, Duration::from_secs(1)), t0);
        // A second request found the lease empty before the first grant arrived.
        let second = leases.grant(class, "u:a", asked(3, 87, Duration::from_secs(1)), t0);
        assert_eq!(
            remaining(Some(second)),
            Some(91),
            "bucket plus all four leased"
        );
        let spent = (0..5)
            .filter_map(|_| take(&leases, class, "u:a", t0))
            .count();
        assert_eq!(spent, 4, "both grants' spare tokens are spent, each once");
    }

    #[test]
    fn the_reset_counts_down_from_the_grant() {
        let leases = Leases::default();
        let t0 = Instant::now();
        leases.grant(
            LimitClass::General,
            "k",
            asked(4, 0, Duration::from_millis(900)),
            t0,
        );
        match take(
            &leases,
            LimitClass::General,
            "k",
            t0 + Duration::from_millis(300),
        ) {
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
            leases.grant(class, &format!("k{n}"), asked(2, 10, Duration::ZERO), t0);
        }
        let later = t0 + LEASE_TTL;
        for n in 0..50 {
            leases.grant(
                class,
                &format!("new{n}"),
                asked(2, 10, Duration::ZERO),
                later,
            );
        }
        assert!(
            leases.len(class) <= 50,
            "{} leases kept after their keys went quiet",
            leases.len(class)
        );
    }

    #[test]
    fn a_half_spent_lease_asks_once_for_the_next_and_the_grant_adds_up() {
        let leases = Leases::default();
        let t0 = Instant::now();
        let class = LimitClass::General;
        leases.grant(class, "u:a", asked(16, 1000, Duration::ZERO), t0);
        let asks: Vec<bool> = (0..14)
            .map(|_| leases.take(class, "u:a", t0).unwrap().refill.is_some())
            .collect();
        // 15 tokens left after the grant's own request: the 7th take leaves 8 (half of 16).
        let first = asks.iter().position(|&ask| ask);
        assert_eq!(first, Some(6), "asked at half: {asks:?}");
        assert_eq!(
            asks.iter().filter(|&&ask| ask).count(),
            1,
            "asked once while pending"
        );
        // One token left; the background grant arrives without a request to serve.
        leases.grant(class, "u:a", ahead(16, 900, Duration::ZERO), t0);
        let spent = (0..20)
            .filter_map(|_| take(&leases, class, "u:a", t0))
            .count();
        assert_eq!(
            spent, 17,
            "the one left plus all 16 of the background grant"
        );
    }

    #[test]
    fn a_failed_refill_is_asked_for_again_and_small_leases_never_ask() {
        let leases = Leases::default();
        let t0 = Instant::now();
        let class = LimitClass::Ai;
        leases.grant(class, "u:a", asked(16, 1000, Duration::ZERO), t0);
        let ask = |leases: &Leases| leases.take(class, "u:a", t0).unwrap().refill.is_some();
        assert!((0..7).any(|_| ask(&leases)));
        assert!(!ask(&leases), "pending");
        leases.refill_failed(class, "u:a");
        assert!(ask(&leases), "asked again after the failure");

        leases.grant(
            class,
            "u:b",
            asked(REFILL_AHEAD_FROM - 1, 1, Duration::ZERO),
            t0,
        );
        let small: Vec<bool> = std::iter::from_fn(|| leases.take(class, "u:b", t0))
            .map(|t| t.refill.is_some())
            .collect();
        assert_eq!(small.len(), REFILL_AHEAD_FROM as usize - 2);
        assert!(
            small.iter().all(|&ask| !ask),
            "near the limit, nothing is held ahead"
        );
    }

    #[test]
    fn a_busy_clients_next_lease_is_larger_and_a_slow_ones_smaller_within_bounds() {
        let fast = GROW_WITHIN / 2;
        let steady = (GROW_WITHIN + SHRINK_AFTER) / 2;
        let slow = SHRINK_AFTER * 3 / 2;
        assert_eq!(next_ask(FIRST_LEASE, fast), 2 * FIRST_LEASE);
        assert_eq!(next_ask(1024, steady), 1024);
        assert_eq!(next_ask(1024, slow), 512);
        assert_eq!(
            next_ask(MAX_LEASE, fast),
            MAX_LEASE,
            "never above the largest"
        );
        assert_eq!(
            next_ask(FIRST_LEASE, slow),
            FIRST_LEASE,
            "never below the first"
        );
        assert_eq!(
            next_ask(REFILL_AHEAD_FROM, fast),
            FIRST_LEASE,
            "a lease the bucket kept small asks for a first one again"
        );
    }

    #[test]
    fn the_refill_asks_for_a_lease_sized_by_how_soon_half_of_this_one_went() {
        let leases = Leases::default();
        let t0 = Instant::now();
        let class = LimitClass::General;
        let ask_after = |key: &str, size: u32, elapsed: Duration| {
            leases.grant(class, key, asked(size, 100_000, Duration::ZERO), t0);
            (0..size).find_map(|_| leases.take(class, key, t0 + elapsed).unwrap().refill)
        };
        assert_eq!(ask_after("busy", 64, Duration::from_millis(10)), Some(128));
        assert_eq!(
            ask_after("slow", 256, Duration::from_millis(600)),
            Some(128)
        );
    }
}
