//! Why a generation failed, in words sluice chooses: the AI service's own error text may name
//! hosts or credentials, so it is logged and never stored or shown.

use crate::error::ErrorCode;

/// The kinds of failure a conversation can end with; each has a stored message and an SSE
/// `error` code, and the stored message maps back to the kind (every instance emits the same
/// code from what it reads in the shared database).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenerationFailure {
    /// Generation could not be started: the AI service is unreachable or its breaker is open.
    AiUnavailable,
    /// The AI service went silent for longer than `GENERATION_TIMEOUT_SECS`.
    Timeout,
    /// The AI service reported that generation failed.
    Upstream,
}

const AI_UNAVAILABLE: &str = "the AI service is unavailable; generation could not start";
const TIMEOUT: &str = "the AI service reported no progress in time";
const UPSTREAM: &str = "the AI service could not generate the conversation";

impl GenerationFailure {
    /// The text stored in the conversation's `error` and sent in the `error` event.
    pub fn message(self) -> &'static str {
        match self {
            Self::AiUnavailable => AI_UNAVAILABLE,
            Self::Timeout => TIMEOUT,
            Self::Upstream => UPSTREAM,
        }
    }

    /// The `code` of the SSE `error` event.
    pub fn code(self) -> ErrorCode {
        match self {
            Self::AiUnavailable => ErrorCode::AiUnavailable,
            Self::Timeout => ErrorCode::UpstreamTimeout,
            Self::Upstream => ErrorCode::UpstreamError,
        }
    }

    /// The kind a stored (or reported) error text stands for; anything that is not one of
    /// ours came from the AI service.
    pub fn from_text(text: Option<&str>) -> Self {
        match text {
            Some(AI_UNAVAILABLE) => Self::AiUnavailable,
            Some(TIMEOUT) => Self::Timeout,
            _ => Self::Upstream,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_messages_map_back_to_their_kind() {
        for kind in [
            GenerationFailure::AiUnavailable,
            GenerationFailure::Timeout,
            GenerationFailure::Upstream,
        ] {
            assert_eq!(GenerationFailure::from_text(Some(kind.message())), kind);
        }
        assert_eq!(
            GenerationFailure::from_text(Some("OOM on gpu-node-3.internal")),
            GenerationFailure::Upstream
        );
        assert_eq!(
            GenerationFailure::from_text(None),
            GenerationFailure::Upstream
        );
        assert_eq!(
            GenerationFailure::Timeout.code().as_str(),
            "upstream_timeout"
        );
    }
}
