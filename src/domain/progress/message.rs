//! The AI service's progress messages (CONTRACT.md section 5), as they arrive on
//! `conversation:{id}` or on the internal events route. Parsed here once, so a malformed
//! message is recognised (and skipped) in one place.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

/// One message from the AI service about a conversation's generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ProgressMessage {
    /// Generation moved forward.
    Progress {
        /// 0..=100 (stored as at most 99 until completion).
        #[serde(deserialize_with = "whole_number")]
        progress: i64,
        /// What the AI service is doing, for people.
        #[serde(default)]
        message: Option<String>,
        /// The stored event sequence, when a sluice instance stored this report before
        /// publishing it (the internal events route); absent from the AI service.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<i64>,
    },
    /// Generation finished; the messages came (or come) by the internal complete callback.
    Complete {
        /// Echo of the conversation id; not relied on (the channel says which conversation).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation_id: Option<String>,
    },
    /// Generation failed. The reason is the AI service's own words: logged, never shown.
    Failed {
        /// Why, for the logs.
        #[serde(default)]
        error: Option<String>,
    },
}

/// `20` or `20.0`: JSON has one number type, and services written in Python or JavaScript
/// may send a whole number as a float.
fn whole_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    if let Some(whole) = number.as_i64() {
        return Ok(whole);
    }
    match number.as_f64() {
        // Below 2^63 in magnitude, so the conversion is exact for a whole number.
        Some(float) if float.fract() == 0.0 && float.abs() < 9.2e18 => Ok(float as i64),
        _ => Err(D::Error::custom(format!(
            "invalid value: {number}, expected a whole number"
        ))),
    }
}

/// A payload that is not one of the contract's messages.
#[derive(Debug, thiserror::Error)]
#[error("malformed progress message: {0}")]
pub struct MalformedMessage(#[from] serde_json::Error);

impl ProgressMessage {
    /// Parses a published payload; unknown fields are ignored.
    pub fn parse(payload: &str) -> Result<Self, MalformedMessage> {
        Ok(serde_json::from_str(payload)?)
    }

    /// The payload to publish on the bus.
    pub fn to_payload(&self) -> String {
        // Serializing this enum cannot fail (strings and integers only).
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The bus channel of a conversation (shared with the AI service).
pub fn channel(conversation_id: &impl std::fmt::Display) -> String {
    format!("conversation:{conversation_id}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_contract_messages_parse_and_unknown_fields_are_ignored() {
        assert_eq!(
            ProgressMessage::parse(r#"{"event":"progress","progress":20,"message":"m","x":1}"#)
                .unwrap(),
            ProgressMessage::Progress {
                progress: 20,
                message: Some("m".into()),
                seq: None,
            }
        );
        assert_eq!(
            ProgressMessage::parse(r#"{"event":"complete","conversation_id":"c"}"#).unwrap(),
            ProgressMessage::Complete {
                conversation_id: Some("c".into())
            }
        );
        assert_eq!(
            ProgressMessage::parse(r#"{"event":"failed","error":"boom"}"#).unwrap(),
            ProgressMessage::Failed {
                error: Some("boom".into())
            }
        );
    }

    #[test]
    fn a_whole_number_sent_as_a_float_is_a_progress() {
        assert_eq!(
            ProgressMessage::parse(r#"{"event":"progress","progress":40.0}"#).unwrap(),
            ProgressMessage::Progress {
                progress: 40,
                message: None,
                seq: None,
            }
        );
        for bad in [
            r#"{"event":"progress","progress":40.5}"#,
            r#"{"event":"progress","progress":1e300}"#,
            r#"{"event":"progress","progress":"40"}"#,
        ] {
            assert!(ProgressMessage::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn malformed_payloads_are_rejected() {
        for bad in [
            "",
            "not json",
            r#"{"event":"complete","conversation_id":"c"#,
            r#"{"event":"progress"}"#,
            r#"{"event":"party"}"#,
            r#"{"progress":20}"#,
        ] {
            assert!(ProgressMessage::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_payload_round_trips() {
        let message = ProgressMessage::Progress {
            progress: 50,
            message: None,
            seq: Some(3),
        };
        assert_eq!(
            ProgressMessage::parse(&message.to_payload()).unwrap(),
            message
        );
        assert_eq!(channel(&"abc"), "conversation:abc");
    }
}
