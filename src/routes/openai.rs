//! The OpenAI-compatible API (`/v1/chat/completions`, `/v1/models`), forwarded with fallbacks.
//! Errors before a stream starts are problem+json like every other error.

use axum::Json;
use axum::extract::State;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::Value;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::domain::chat::openai_relay::{OpenAiChunk, OpenAiRelay};
use crate::error::ApiError;
use crate::http::call_context::call_context;
use crate::http::extract::AppJson;
use crate::http::sse::sse_response;

/// `POST /v1/chat/completions`, `stream` true or false.
pub async fn chat_completions(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(body): AppJson<Value>,
) -> Result<Response, ApiError> {
    if !body.is_object() {
        return Err(ApiError::validation("body", "must be a JSON object"));
    }
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(stream)) => *stream,
        Some(_) => return Err(ApiError::validation("stream", "must be a boolean")),
    };
    let relay = relay(&state);
    let ctx = call_context(Some(&user));
    if !stream {
        return Ok(Json(relay.complete(&body, &ctx).await?).into_response());
    }
    let slot = state
        .streams
        .acquire(&user.id)
        .map_err(super::chat::too_many_streams)?;
    let chunks = relay.stream(&body, &ctx, slot).await?;
    Ok(sse_response(
        chunks.map(sse_event),
        state.settings.sse_keepalive,
        &state.shutdown,
    ))
}

/// `GET /v1/models`.
pub async fn models(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<Value>, ApiError> {
    let ctx = call_context(Some(&user));
    Ok(Json(relay(&state).models(&ctx).await?))
}

fn relay(state: &AppState) -> OpenAiRelay {
    OpenAiRelay::new(state.ai.clone(), state.metrics.clone())
}

fn sse_event(chunk: OpenAiChunk) -> Event {
    match chunk {
        OpenAiChunk::Data(data) => Event::default().data(data),
        OpenAiChunk::Done => Event::default().data("[DONE]"),
    }
}
