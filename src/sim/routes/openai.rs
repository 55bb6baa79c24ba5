//! The OpenAI-compatible API: `POST /v1/chat/completions` (streamed or not) and `GET /v1/models`.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::sim::ai_body::{self, Unprocessable};
use crate::sim::fault_reply;
use crate::sim::faults::{Fault, FaultRoute};
use crate::sim::sse::OpenAiChunks;
use crate::sim::state::SharedState;
use crate::sim::stats::Call;
use crate::sim::text;
use crate::sim::token_stream::token_body;

/// The only model the mock serves (any requested name is accepted and echoed).
pub const MOCK_MODEL: &str = "mock-1";

#[derive(Debug, Deserialize)]
struct ChatRequest {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<ChatMessage>,
    #[serde(default)]
    stream: bool,
}

#[derive(Debug, Deserialize)]
struct ChatMessage {
    role: String,
    #[serde(default)]
    content: Value,
}

impl ChatMessage {
    /// The text of the message: a plain string or the text parts of a multi-part content.
    fn text(&self) -> String {
        match &self.content {
            Value::String(text) => text.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|part| part.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        }
    }
}

/// Answers the last user message, as one `chat.completion` or as `chat.completion.chunk`s.
pub(crate) async fn chat_completions(State(state): State<SharedState>, body: Bytes) -> Response {
    state.stats.count(Call::ChatCompletions);
    let request = match parse(&body) {
        Ok(request) => request,
        Err(rejection) => return rejection.into_response(),
    };
    let fault = state.faults.draw(FaultRoute::Openai);
    let before = if request.stream {
        fault.filter(|fault| !matches!(fault, Fault::Hang))
    } else {
        fault
    };
    if let Err(response) = fault_reply::before_answer(&state, before).await {
        return response;
    }

    let prompt = request
        .messages
        .iter()
        .rev()
        .find(|message| message.role == "user")
        .map(ChatMessage::text)
        .unwrap_or_default();
    let tokens = text::answer_tokens(&prompt, state.config.tokens);
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let model = request.model.unwrap_or_else(|| MOCK_MODEL.to_owned());

    if request.stream {
        let framing = OpenAiChunks { id, created, model };
        return (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/event-stream; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            token_body(&state, framing, tokens, fault),
        )
            .into_response();
    }

    let prompt_tokens: usize = request
        .messages
        .iter()
        .map(|m| m.text().split_whitespace().count())
        .sum();
    let completion = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": tokens.concat() },
            "finish_reason": "stop",
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": tokens.len(),
            "total_tokens": prompt_tokens + tokens.len(),
        },
    });
    fault_reply::answer(fault, StatusCode::OK, &completion)
}

/// Lists the mock's one model.
pub(crate) async fn models(State(state): State<SharedState>) -> Response {
    state.stats.count(Call::Models);
    let fault = state.faults.draw(FaultRoute::Openai);
    if let Err(response) = fault_reply::before_answer(&state, fault).await {
        return response;
    }
    let list = json!({
        "object": "list",
        "data": [{ "id": MOCK_MODEL, "object": "model", "created": 0, "owned_by": "sluice-mock" }],
    });
    fault_reply::answer(fault, StatusCode::OK, &list)
}

fn parse(body: &[u8]) -> Result<ChatRequest, Unprocessable> {
    let request: ChatRequest = ai_body::parse(body)?;
    if request.messages.is_empty() {
        return Err(Unprocessable::new(
            "messages",
            "must contain at least one message",
        ));
    }
    Ok(request)
}
