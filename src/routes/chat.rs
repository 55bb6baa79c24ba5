//! `/api/conversations/{id}/messages`: send a message and stream the answer (POST, or GET
//! `messages-stream?content=` for EventSource clients), and list the messages.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use axum::response::sse::Event;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::domain::chat::{Chat, ChatEvent};
use crate::error::{ApiError, ErrorCode};
use crate::http::call_context::call_context;
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::http::sse::{json_event, sse_response};
use crate::ids::{ConversationId, MessageId};
use crate::limits::TooManyStreams;
use crate::store::Message;

/// Body of `POST …/messages`, and query of `GET …/messages-stream`.
#[derive(Debug, Deserialize)]
pub struct SendMessage {
    content: String,
}

/// A message as the API shows it.
#[derive(Debug, Serialize)]
pub struct MessageBody {
    id: MessageId,
    role: &'static str,
    content: String,
    status: &'static str,
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
pub async fn send(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(id): AppPath<ConversationId>,
    AppJson(body): AppJson<SendMessage>,
) -> Result<Response, ApiError> {
    answer(state, user, id, body.content).await
}

/// `GET /api/conversations/{id}/messages-stream?content=…` → the same, for EventSource.
pub async fn send_via_query(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(id): AppPath<ConversationId>,
    AppQuery(query): AppQuery<SendMessage>,
) -> Result<Response, ApiError> {
    answer(state, user, id, query.content).await
}

/// `GET /api/conversations/{id}/messages`, oldest first.
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
    let chat = chat(&state);
    let turn = chat.prepare(&user.id, id, content).await?;
    let slot = state.streams.acquire(&user.id).map_err(too_many_streams)?;
    let events = chat.start(turn, call_context(Some(&user)), slot).await?;
    Ok(sse_response(
        events.map(sse_event),
        state.settings.sse_keepalive,
        &state.shutdown,
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

/// 429 `too_many_streams`.
pub fn too_many_streams(err: TooManyStreams) -> ApiError {
    ApiError::new(
        ErrorCode::TooManyStreams,
        format!("at most {} streams may be open at once", err.limit),
    )
}

fn sse_event(event: ChatEvent) -> Event {
    let name = event.name();
    match event {
        ChatEvent::Token(content) => json_event(name, &json!({ "content": content })),
        ChatEvent::Complete {
            message_id,
            content,
        } => json_event(
            name,
            &json!({ "message_id": message_id, "content": content }),
        ),
        ChatEvent::Error { code, message } => {
            json_event(name, &json!({ "code": code.as_str(), "message": message }))
        }
    }
}
