//! `/api/internal/conversations/{id}/…`: the AI service's callbacks. Authenticated by
//! `AI_API_KEY` (compared in constant time), never by a user JWT, and not rate-limited: the
//! AI service is one trusted caller reporting on many users' conversations.

use std::convert::Infallible;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tower::Service;

use super::conversations::conversations;
use crate::app::AppState;
use crate::domain::progress::ProgressMessage;
use crate::error::ApiError;
use crate::http::bearer::bearer_token;
use crate::http::extract::{AppJson, AppPath};
use crate::ids::ConversationId;
use crate::store::{MessageRole, MessageStatus, NewMessage};

/// Middleware of the internal group: `Authorization: Bearer $AI_API_KEY` or 401 (a
/// [`crate::http::middleware::layer`] fn: `inner` is the route, ready to call).
pub async fn require_ai_key<S>(state: AppState, request: Request, mut inner: S) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let presented = match bearer_token(request.headers()) {
        Some(Ok(token)) => token,
        _ => "",
    };
    let expected = state.settings.ai.api_key.expose();
    if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) && !expected.is_empty() {
        let Ok(response) = inner.call(request).await;
        response
    } else {
        ApiError::unauthorized("a valid AI service key is required").into_response()
    }
}

/// `POST …/{id}/events` with a progress message → 204: stored, then published.
#[utoipa::path(
    post,
    path = "/api/internal/conversations/{id}/events",
    tag = "internal",
    security(("ai_api_key" = [])),
    params(("id" = String, Path, format = Uuid, description = "Conversation id")),
    request_body(content = crate::openapi::ProgressReport, description = "A Redis progress message (CONTRACT.md section 5); unknown fields are ignored"),
    responses(
        (status = 204, description = "Stored and relayed to the conversation's streams"),
        (status = 400, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::openapi::Problem, content_type = "application/problem+json", description = "Not the AI service's key (user JWTs are refused)"),
        (status = 404, body = crate::openapi::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn events(
    State(state): State<AppState>,
    AppPath(id): AppPath<ConversationId>,
    AppJson(message): AppJson<ProgressMessage>,
) -> Result<StatusCode, ApiError> {
    conversations(&state).report(id, message).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of the complete callback.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CompleteBody {
    /// The generated messages, in order.
    #[serde(default)]
    messages: Vec<GeneratedMessage>,
}

/// One generated message.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct GeneratedMessage {
    /// `assistant` or `user`.
    role: String,
    /// Text.
    content: String,
}

/// `POST …/{id}/complete {"messages":[{"role","content"}]}` → 204.
#[utoipa::path(
    post,
    path = "/api/internal/conversations/{id}/complete",
    tag = "internal",
    security(("ai_api_key" = [])),
    params(("id" = String, Path, format = Uuid, description = "Conversation id")),
    request_body = CompleteBody,
    responses(
        (status = 204, description = "Stored and relayed to the conversation's streams"),
        (status = 400, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::openapi::Problem, content_type = "application/problem+json", description = "Not the AI service's key (user JWTs are refused)"),
        (status = 404, body = crate::openapi::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn complete(
    State(state): State<AppState>,
    AppPath(id): AppPath<ConversationId>,
    AppJson(body): AppJson<CompleteBody>,
) -> Result<StatusCode, ApiError> {
    let messages: Vec<NewMessage> = body
        .messages
        .into_iter()
        .map(|m| NewMessage {
            role: MessageRole::parse(&m.role),
            content: m.content,
            status: MessageStatus::Completed,
        })
        .collect();
    conversations(&state).complete(id, &messages).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of the failed callback.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct FailedBody {
    /// Why it failed (logged; never shown to users verbatim).
    #[serde(default)]
    error: Option<String>,
}

/// `POST …/{id}/failed {"error"}` → 204.
#[utoipa::path(
    post,
    path = "/api/internal/conversations/{id}/failed",
    tag = "internal",
    security(("ai_api_key" = [])),
    params(("id" = String, Path, format = Uuid, description = "Conversation id")),
    request_body = FailedBody,
    responses(
        (status = 204, description = "Stored and relayed to the conversation's streams"),
        (status = 400, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::openapi::Problem, content_type = "application/problem+json", description = "Not the AI service's key (user JWTs are refused)"),
        (status = 404, body = crate::openapi::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn failed(
    State(state): State<AppState>,
    AppPath(id): AppPath<ConversationId>,
    AppJson(body): AppJson<FailedBody>,
) -> Result<StatusCode, ApiError> {
    conversations(&state)
        .report_failure(id, body.error.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
