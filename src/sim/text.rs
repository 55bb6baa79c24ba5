//! Deterministic text: passages, streamed answers and generated conversations.
//!
//! Everything is derived from a stable hash of the request (FNV-1a, not `std`'s hasher, whose
//! output may change between Rust releases), so tests can compare two calls and caches in the
//! gateway see the same answer for the same question.

use serde::Serialize;

const WORDS: [&str; 64] = [
    "the",
    "river",
    "remembers",
    "a",
    "lantern",
    "in",
    "fog",
    "and",
    "quiet",
    "harbour",
    "where",
    "old",
    "letters",
    "wait",
    "beneath",
    "stone",
    "her",
    "voice",
    "carried",
    "across",
    "winter",
    "fields",
    "while",
    "distant",
    "bells",
    "answered",
    "slowly",
    "his",
    "promise",
    "broke",
    "like",
    "thin",
    "ice",
    "at",
    "dawn",
    "they",
    "walked",
    "through",
    "silver",
    "orchards",
    "toward",
    "an",
    "unfinished",
    "tower",
    "of",
    "glass",
    "every",
    "door",
    "opened",
    "onto",
    "another",
    "summer",
    "no",
    "one",
    "spoke",
    "until",
    "evening",
    "found",
    "them",
    "still",
    "listening",
    "for",
    "rain",
    "again",
];

/// A stable 64-bit hash of some parts, separated so `("ab","c")` and `("a","bc")` differ.
pub(crate) fn stable_hash(parts: &[&str]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0xff)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

/// Spreads one seed into a sequence of well-mixed numbers (SplitMix64).
fn mixed(seed: u64, index: u64) -> u64 {
    let mut z = seed.wrapping_add(index.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn word(seed: u64, index: u64) -> &'static str {
    // The modulo keeps the index below 64, so the cast cannot truncate.
    WORDS[(mixed(seed, index) % WORDS.len() as u64) as usize]
}

fn sentence(seed: u64, words: u64) -> String {
    let mut text = (0..words)
        .map(|i| word(seed, i))
        .collect::<Vec<_>>()
        .join(" ");
    if let Some(first) = text.get(..1) {
        text.replace_range(..1, &first.to_uppercase());
    }
    text.push('.');
    text
}

/// The tokens of the streamed answer to `content`: words, each but the first with a leading space.
pub(crate) fn answer_tokens(content: &str, count: usize) -> Vec<String> {
    let seed = stable_hash(&["answer", content]);
    (0..count as u64)
        .map(|i| {
            let word = word(seed, i);
            if i == 0 {
                word.to_owned()
            } else {
                format!(" {word}")
            }
        })
        .collect()
}

/// One passage found by the search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Passage {
    pub(crate) id: String,
    pub(crate) content: String,
    pub(crate) distance: f64,
}

/// The `top_k` passages nearest to `query` in `novel_id`, nearest first.
pub(crate) fn passages(novel_id: &str, query: &str, top_k: usize) -> Vec<Passage> {
    (0..top_k)
        .map(|rank| {
            let seed = stable_hash(&["passage", novel_id, query, &rank.to_string()]);
            let jitter = (mixed(seed, 99) % 400) as f64 / 10_000.0;
            Passage {
                id: format!("p-{seed:016x}"),
                content: sentence(seed, 8 + mixed(seed, 98) % 10),
                distance: ((0.12 + rank as f64 * 0.05 + jitter) * 10_000.0).round() / 10_000.0,
            }
        })
        .collect()
}

/// The assistant messages a generation produces for a conversation: two or three of them.
pub(crate) fn conversation_messages(conversation_id: &str, scenario_id: &str) -> Vec<String> {
    let seed = stable_hash(&["conversation", conversation_id, scenario_id]);
    let count = 2 + mixed(seed, 0) % 2;
    (1..=count)
        .map(|n| {
            let message_seed = mixed(seed, n);
            let sentences = 1 + mixed(message_seed, 50) % 3;
            (0..sentences)
                .map(|s| sentence(mixed(message_seed, s), 6 + mixed(message_seed, 60 + s) % 9))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn answers_are_deterministic_and_spaced() {
        let tokens = answer_tokens("hello", 5);
        assert_eq!(tokens, answer_tokens("hello", 5));
        assert_eq!(tokens.len(), 5);
        assert!(!tokens[0].starts_with(' '));
        assert!(
            tokens[1..]
                .iter()
                .all(|t| t.starts_with(' ') && t.len() > 1)
        );
        assert_ne!(answer_tokens("hello", 20), answer_tokens("goodbye", 20));
    }

    #[test]
    fn passages_are_deterministic_and_sorted_by_distance() {
        let found = passages("novel-1", "a storm", 5);
        assert_eq!(found, passages("novel-1", "a storm", 5));
        assert_ne!(found, passages("novel-2", "a storm", 5));
        assert!(
            found
                .iter()
                .all(|p| p.id.starts_with("p-") && p.id.len() == 18)
        );
        assert!(found.windows(2).all(|w| w[0].distance < w[1].distance));
    }

    #[test]
    fn conversations_have_two_or_three_messages() {
        for id in ["a", "b", "c", "d", "e", "f"] {
            let messages = conversation_messages(id, "s");
            assert!((2..=3).contains(&messages.len()));
            assert!(messages.iter().all(|m| m.ends_with('.')));
            assert_eq!(messages, conversation_messages(id, "s"));
        }
    }

    #[test]
    fn hash_separates_parts() {
        assert_ne!(stable_hash(&["ab", "c"]), stable_hash(&["a", "bc"]));
    }
}
