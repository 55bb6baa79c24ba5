//! Schemas that exist only to document wire formats produced elsewhere.

use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 9457 problem (every error response, `application/problem+json`).
#[derive(Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong, for a person.
    pub detail: String,
    /// Machine-readable code (CONTRACT.md section 3).
    #[schema(example = "validation_failed")]
    pub code: String,
    /// The request id (also in `X-Request-Id`).
    pub request_id: Option<String>,
    /// Invalid fields (validation errors only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldErrorDoc>>,
}

/// One invalid field.
#[derive(Serialize, ToSchema)]
#[schema(as = FieldError)]
pub struct FieldErrorDoc {
    /// The field as named in the request.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// `event: token` of a chat stream: one upstream token, flushed as it arrives.
#[derive(Serialize, ToSchema)]
pub struct TokenEvent {
    /// The token text.
    pub content: String,
}

/// `event: complete` of a chat stream: the stored assistant message.
#[derive(Serialize, ToSchema)]
pub struct MessageCompleteEvent {
    /// Stored message id.
    #[schema(format = Uuid)]
    pub message_id: String,
    /// The whole answer.
    pub content: String,
}

/// `event: error` of a chat stream; the stream ends after it.
#[derive(Serialize, ToSchema)]
pub struct StreamErrorEvent {
    /// `ai_unavailable`, `upstream_timeout`, `upstream_error`, …
    pub code: String,
    /// For a person.
    pub message: String,
}

/// `event: progress` of a progress stream.
#[derive(Serialize, ToSchema)]
pub struct ProgressEvent {
    /// The conversation.
    #[schema(format = Uuid)]
    pub conversation_id: String,
    /// 0..=100.
    pub progress: i64,
    /// Status text from the AI service.
    pub message: Option<String>,
}

/// `event: complete` of a progress stream; the stream ends after it.
#[derive(Serialize, ToSchema)]
pub struct ConversationCompleteEvent {
    /// The conversation.
    #[schema(format = Uuid)]
    pub conversation_id: String,
    /// Always `completed`.
    pub status: String,
    /// Messages stored in the conversation.
    pub message_count: i64,
}

/// `event: error` of a progress stream; the stream ends after it.
#[derive(Serialize, ToSchema)]
pub struct ConversationErrorEvent {
    /// The conversation.
    #[schema(format = Uuid)]
    pub conversation_id: String,
    /// `ai_unavailable`, `upstream_timeout`, `upstream_error`, …
    pub code: String,
    /// For a person.
    pub message: String,
}
