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

/// Body of the internal events route: a progress message as the AI service would publish it
/// on `conversation:{id}` (parsed by `domain::progress::ProgressMessage`).
#[derive(Serialize, ToSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ProgressReport {
    /// Generation moved forward.
    Progress {
        /// 0..=100; stored as at most 99 until the conversation completes.
        progress: i64,
        /// What the AI service is doing, for people.
        message: Option<String>,
    },
    /// Generation finished (the messages come by the complete callback).
    Complete {
        /// Echo of the conversation id; not relied on.
        conversation_id: Option<String>,
    },
    /// Generation failed; the reason is logged, never shown to users.
    Failed {
        /// Why, for the logs.
        error: Option<String>,
    },
}

/// The part of an OpenAI chat completion request that the upstreams rely on; every other
/// field is passed on untouched.
#[derive(Serialize, ToSchema)]
pub struct ChatCompletionRequest {
    /// Model name; upstreams may serve another.
    pub model: Option<String>,
    /// The conversation so far.
    #[schema(min_items = 1)]
    pub messages: Vec<ChatCompletionMessage>,
    /// `true`: Server-Sent Events of `chat.completion.chunk`s.
    #[serde(default)]
    pub stream: bool,
}

/// One message of a chat completion request.
#[derive(Serialize, ToSchema)]
pub struct ChatCompletionMessage {
    /// `system`, `user`, `assistant`, …
    pub role: String,
    /// The text, or OpenAI's multi-part array; passed on as it is.
    pub content: Option<serde_json::Value>,
}
