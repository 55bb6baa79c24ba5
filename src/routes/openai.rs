//! The OpenAI-compatible API (`/v1/chat/completions`, `/v1/models`), forwarded with fallbacks.
//! Errors before a stream starts are problem+json like every other error.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::domain::chat::openai_relay::{OpenAiChunk, OpenAiRelay};
use crate::error::ApiError;
use crate::http::call_context::call_context;
use crate::http::extract::AppJson;
use crate::http::sse::{Frame, sse_response};
use crate::upstream::CallError;

/// `POST /v1/chat/completions`, `stream` true or false.
#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    tag = "openai",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = crate::openapi::ChatCompletionRequest, description = "An OpenAI chat completion request, passed on as it is"),
    responses(
        (status = 200, description = "A `chat.completion` object, or with `stream: true` Server-Sent Events of `chat.completion.chunk` objects ending with `data: [DONE]`; a failure after the first chunk is an error chunk, then `[DONE]`", content(
            (Object = "application/json"),
            ("text/event-stream"),
        )),
        (status = 400, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 429, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 502, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 503, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 504, body = crate::openapi::Problem, content_type = "application/problem+json"),
    )
)]
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
        let completion = relay
            .complete(&body, &ctx)
            .await
            .map_err(rejected_request)?;
        return Ok(Json(completion).into_response());
    }
    let slot = state.streams.acquire(&user.id).map_err(ApiError::from)?;
    let chunks = relay
        .stream(&body, &ctx, slot)
        .await
        .map_err(rejected_request)?;
    Ok(sse_response(
        chunks.map(sse_event),
        state.settings.sse_keepalive,
        &state.streams_end,
    ))
}

/// `GET /v1/models`.
#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "openai",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "An OpenAI model list", body = Object),
        (status = 401, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 429, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 502, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 503, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 504, body = crate::openapi::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn models(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<Value>, ApiError> {
    let ctx = call_context(Some(&user));
    Ok(Json(relay(&state).models(&ctx).await?))
}

/// A 4xx from the upstream judged the client's request: a 400 naming the body, not a 502.
fn rejected_request(err: CallError) -> ApiError {
    match err {
        CallError::Upstream(ref upstream)
            if upstream.status().is_some_and(|s| (400..500).contains(&s)) =>
        {
            ApiError::validation("body", "the AI service rejected the request")
        }
        other => other.into(),
    }
}

fn relay(state: &AppState) -> OpenAiRelay {
    OpenAiRelay::new(state.ai.clone(), state.metrics.clone())
}

fn sse_event(chunk: OpenAiChunk) -> Bytes {
    match chunk {
        OpenAiChunk::Data(data) => Frame::new(data.len()).data(&data).finish(),
        OpenAiChunk::Done => Bytes::from_static(b"data: [DONE]\n\n"),
    }
}
