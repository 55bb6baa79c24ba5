//! `/api/conversations/{id}/messages`: send a message and stream the answer (POST, or GET
//! `messages-stream?content=` for EventSource clients), and list the messages.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::domain::chat::{Chat, ChatEvent, check_content};
use crate::error::ApiError;
use crate::http::call_context::call_context;
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::http::sse::{Frame, sse_response};
use crate::ids::{ConversationId, MessageId};
use crate::store::Message;

/// Body of `POST …/messages`, and query of `GET …/messages-stream`.
#[derive(Debug, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SendMessage {
    /// 1..=8000 characters, not blank.
    #[schema(min_length = 1, max_length = 8000, pattern = r"\S")]
    #[param(min_length = 1, max_length = 8000, pattern = r"\S")]
    content: String,
}

/// A message as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageBody {
    #[schema(value_type = String, format = Uuid)]
    id: MessageId,
    /// `user` or `assistant`.
    role: &'static str,
    content: String,
    /// `completed`, `interrupted` or `failed`.
    status: &'static str,
    /// RFC 3339.
    created_at: String,
}

impl From<Message> for MessageBody {
    fn from(m: Message) -> Self {
        Self {
            id: m.id,
            role: m.role.as_str(),
            content: m.content,
            status: m.status.as_str(),
            created_at: super::rfc3339(m.created_at),
        }
    }
}

/// `POST /api/conversations/{id}/messages` → `text/event-stream`.
#[utoipa::path(
    post,
    path = "/api/conversations/{id}/messages",
    tag = "chat",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, format = Uuid, description = "Conversation id")),
    request_body = SendMessage,
    responses(
        (status = 200, description = "Server-Sent Events: `token` (TokenEvent) per upstream token, then `complete` (MessageCompleteEvent) or `error` (StreamErrorEvent); every failure after this point is an `error` event", content_type = "text/event-stream"),
        (status = 400, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 409, body = crate::openapi::Problem, content_type = "application/problem+json", description = "conversation_not_ready"),
        (status = 429, body = crate::openapi::Problem, content_type = "application/problem+json", description = "rate_limited or too_many_streams"),
    )
)]
pub async fn send(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(id): AppPath<ConversationId>,
    AppJson(body): AppJson<SendMessage>,
) -> Result<Response, ApiError> {
    answer(state, user, id, body.content).await
}

/// `GET /api/conversations/{id}/messages-stream?content=…` → the same, for EventSource.
#[utoipa::path(
    get,
    path = "/api/conversations/{id}/messages-stream",
    tag = "chat",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, format = Uuid, description = "Conversation id"), SendMessage),
    responses(
        (status = 200, description = "Server-Sent Events: `token` (TokenEvent) per upstream token, then `complete` (MessageCompleteEvent) or `error` (StreamErrorEvent); every failure after this point is an `error` event", content_type = "text/event-stream"),
        (status = 400, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 409, body = crate::openapi::Problem, content_type = "application/problem+json", description = "conversation_not_ready"),
        (status = 429, body = crate::openapi::Problem, content_type = "application/problem+json", description = "rate_limited or too_many_streams"),
    )
)]
pub async fn send_via_query(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(id): AppPath<ConversationId>,
    AppQuery(query): AppQuery<SendMessage>,
) -> Result<Response, ApiError> {
    answer(state, user, id, query.content).await
}

/// `GET /api/conversations/{id}/messages`, oldest first.
#[utoipa::path(
    get,
    path = "/api/conversations/{id}/messages",
    tag = "chat",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, format = Uuid, description = "Conversation id")),
    responses(
        (status = 200, body = Vec<MessageBody>),
        (status = 400, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::openapi::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(id): AppPath<ConversationId>,
) -> Result<Json<Vec<MessageBody>>, ApiError> {
    let messages = chat(&state).messages(&user.id, id).await?;
    Ok(Json(messages.into_iter().map(Into::into).collect()))
}

/// Checks, then streams: every problem+json error happens before the first byte.
async fn answer(
    state: AppState,
    user: AuthUser,
    id: ConversationId,
    content: String,
) -> Result<Response, ApiError> {
    check_content(&content)?;
    let slot = state.streams.acquire(&user.id).map_err(ApiError::from)?;
    let events = chat(&state)
        .start(&user.id, id, content, call_context(Some(&user)), slot)
        .await?;
    Ok(sse_response(
        events.map(sse_event),
        state.settings.sse_keepalive,
        &state.streams_end,
    ))
}

fn chat(state: &AppState) -> Chat {
    Chat::new(
        state.store.clone(),
        state.ai.clone(),
        state.metrics.clone(),
        state.tasks.clone(),
    )
}

/// The `complete` payload.
#[derive(Serialize)]
struct CompleteEvent<'a> {
    message_id: MessageId,
    content: &'a str,
}

/// The `error` payload.
#[derive(Serialize)]
struct ErrorEvent<'a> {
    code: &'a str,
    message: &'a str,
}

fn sse_event(event: ChatEvent) -> Bytes {
    let name = event.name();
    match event {
        ChatEvent::Token(content) => Frame::new(content.len())
            .event(name)
            .json_string_field("content", &content),
        ChatEvent::Complete {
            message_id,
            content,
        } => Frame::new(content.len() + 64)
            .event(name)
            .json_data(&CompleteEvent {
                message_id,
                content: &content,
            }),
        ChatEvent::Error { code, message } => {
            Frame::new(message.len() + 32)
                .event(name)
                .json_data(&ErrorEvent {
                    code: code.as_str(),
                    message,
                })
        }
    }
    .finish()
}
