//! `/api/conversations`: create (the polling flow), list, read, status, and the progress
//! streams (`create-stream`, `{id}/events`) that replace polling.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::domain::generation::{Conversations, ConversationsDeps};
use crate::domain::pagination::PageQuery;
use crate::domain::progress::{ProgressEvent, ProgressStream};
use crate::error::ApiError;
use crate::http::call_context::call_context;
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::http::sse::{Frame, sse_response};
use crate::ids::{ConversationId, ScenarioId};
use crate::limits::StreamSlot;
use crate::store::{Conversation, ConversationStatus};

/// Metric label of these streams.
const KIND: &str = "progress";

/// The conversation operations over the application's infrastructure.
pub fn conversations(state: &AppState) -> Conversations {
    Conversations::new(ConversationsDeps {
        store: state.store.clone(),
        ai: state.ai.clone(),
        bus: state.bus.clone(),
        metrics: state.metrics.clone(),
        generation_timeout: state.settings.ai.generation_timeout,
        tasks: state.tasks.clone(),
        shutdown: state.shutdown.clone(),
    })
}

/// Body of `POST /api/conversations`, and query of `create-stream`.
#[derive(Debug, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScenarioRef {
    /// The caller's scenario.
    #[schema(value_type = String, format = Uuid)]
    #[param(value_type = String, format = Uuid)]
    scenario_id: ScenarioId,
}

/// `202` body of `POST /api/conversations`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedBody {
    #[schema(value_type = String, format = Uuid)]
    id: ConversationId,
    /// Always `pending`.
    #[schema(value_type = String)]
    status: ConversationStatus,
}

/// `GET /api/conversations/{id}/status` body (old polling clients).
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusBody {
    /// `pending`, `generating`, `completed` or `failed`.
    #[schema(value_type = String)]
    status: ConversationStatus,
    /// 0..=100.
    progress: i64,
    /// Status text, or the failure reason.
    message: Option<String>,
}

/// A conversation as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationBody {
    #[schema(value_type = String, format = Uuid)]
    id: ConversationId,
    #[schema(value_type = String, format = Uuid)]
    scenario_id: ScenarioId,
    /// `pending`, `generating`, `completed` or `failed`.
    #[schema(value_type = String)]
    status: ConversationStatus,
    progress: i64,
    status_message: Option<String>,
    error: Option<String>,
    created_at: String,
    completed_at: Option<String>,
}

impl From<Conversation> for ConversationBody {
    fn from(c: Conversation) -> Self {
        Self {
            id: c.id,
            scenario_id: c.scenario_id,
            status: c.status,
            progress: c.progress,
            status_message: c.status_message,
            error: c.error,
            created_at: super::rfc3339(c.created_at),
            completed_at: c.completed_at.map(super::rfc3339),
        }
    }
}

/// `POST /api/conversations` → 202 `{"id","status":"pending"}` + `Location`; generation runs
/// in the background (old polling clients then read `/status`).
#[utoipa::path(
    post,
    path = "/api/conversations",
    tag = "conversations",
    security(("bearer" = []), ("cookie" = [])),
    request_body = ScenarioRef,
    responses(
        (status = 202, body = CreatedBody, description = "Generation started; `Location` names the conversation"),
        (status = 400, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 429, body = crate::openapi::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(body): AppJson<ScenarioRef>,
) -> Result<Response, ApiError> {
    let service = conversations(&state);
    let conversation = service.create(&user.id, body.scenario_id).await?;
    // Nobody waits for the trigger's answer; a failure is stored and shows in `/status`.
    drop(service.start(&conversation, call_context(Some(&user)), true));
    let location = format!("/api/conversations/{}", conversation.id);
    let mut response = (
        StatusCode::ACCEPTED,
        Json(CreatedBody {
            id: conversation.id,
            status: conversation.status,
        }),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// `GET /api/conversations?limit=&before=`: the caller's own, newest first.
#[utoipa::path(
    get,
    path = "/api/conversations",
    tag = "conversations",
    security(("bearer" = []), ("cookie" = [])),
    params(PageQuery),
    responses(
        (status = 200, body = Vec<ConversationBody>),
        (status = 400, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::openapi::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    AppQuery(query): AppQuery<PageQuery>,
) -> Result<Json<Vec<ConversationBody>>, ApiError> {
    let page = query.parse()?;
    let list = conversations(&state).list(&user.id, page).await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

/// `GET /api/conversations/{id}`.
#[utoipa::path(
    get,
    path = "/api/conversations/{id}",
    tag = "conversations",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, format = Uuid, description = "Conversation id")),
    responses(
        (status = 200, body = ConversationBody),
        (status = 400, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::openapi::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(id): AppPath<ConversationId>,
) -> Result<Json<ConversationBody>, ApiError> {
    Ok(Json(conversations(&state).get(&user.id, id).await?.into()))
}

/// `GET /api/conversations/{id}/status`: `{"status","progress","message"}` for old polling
/// clients.
#[utoipa::path(
    get,
    path = "/api/conversations/{id}/status",
    tag = "conversations",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, format = Uuid, description = "Conversation id")),
    responses(
        (status = 200, body = StatusBody),
        (status = 400, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::openapi::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn status(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(id): AppPath<ConversationId>,
) -> Result<Json<StatusBody>, ApiError> {
    let c = conversations(&state).get(&user.id, id).await?;
    let message = match c.status {
        ConversationStatus::Failed => c.error,
        _ => c.status_message,
    };
    Ok(Json(StatusBody {
        status: c.status,
        progress: c.progress,
        message,
    }))
}

/// `GET /api/conversations/create-stream?scenario_id=…`: creates, subscribes, then generates.
#[utoipa::path(
    get,
    path = "/api/conversations/create-stream",
    tag = "conversations",
    security(("bearer" = []), ("cookie" = [])),
    params(ScenarioRef),
    responses(
        (status = 200, description = "Server-Sent Events, each with a decimal `id:` from the conversation's stored event sequence: `progress` (ProgressEvent), then `complete` (ConversationCompleteEvent) or `error` (ConversationErrorEvent), after which the stream ends", content_type = "text/event-stream"),
        (status = 400, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 429, body = crate::openapi::Problem, content_type = "application/problem+json", description = "rate_limited or too_many_streams"),
    )
)]
pub async fn create_stream(
    State(state): State<AppState>,
    user: AuthUser,
    AppQuery(query): AppQuery<ScenarioRef>,
) -> Result<Response, ApiError> {
    let slot = stream_slot(&state, &user)?;
    let events = conversations(&state)
        .create_stream(&user.id, query.scenario_id, call_context(Some(&user)))
        .await?;
    Ok(progress_response(&state, events, slot))
}

/// `GET /api/conversations/{id}/events`: the current state, then live events; honours
/// `Last-Event-ID`.
#[utoipa::path(
    get,
    path = "/api/conversations/{id}/events",
    tag = "conversations",
    security(("bearer" = []), ("cookie" = [])),
    params(
        ("id" = String, Path, format = Uuid, description = "Conversation id"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id"),
    ),
    responses(
        (status = 200, description = "Server-Sent Events, each with a decimal `id:` from the conversation's stored event sequence: `progress` (ProgressEvent), then `complete` (ConversationCompleteEvent) or `error` (ConversationErrorEvent), after which the stream ends. The current state comes first.", content_type = "text/event-stream"),
        (status = 400, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 429, body = crate::openapi::Problem, content_type = "application/problem+json", description = "too_many_streams"),
    )
)]
pub async fn events(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(id): AppPath<ConversationId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let slot = stream_slot(&state, &user)?;
    let events = conversations(&state)
        .open_stream(&user.id, id, last_event_id)
        .await?;
    Ok(progress_response(&state, events, slot))
}

fn stream_slot(state: &AppState, user: &AuthUser) -> Result<StreamSlot, ApiError> {
    Ok(state.streams.acquire(&user.id)?)
}

/// Maps the domain stream to SSE; the slot and the active-stream gauge live as long as it.
fn progress_response(state: &AppState, events: ProgressStream, slot: StreamSlot) -> Response {
    let metrics = state.metrics.clone();
    let gauge = metrics.sse_stream(KIND);
    let events = events.map(move |event| {
        let _held = (&slot, &gauge);
        metrics.sse_event(KIND, event.name());
        sse_event(&event)
    });
    sse_response(events, state.settings.sse_keepalive, &state.streams_end)
}

/// The payloads of the progress stream's events, serialised from borrowed fields: this runs
/// once per event per open stream (10,000 streams of one conversation share each event).
#[derive(Serialize)]
#[serde(untagged)]
enum ProgressData<'a> {
    Progress {
        conversation_id: ConversationId,
        progress: i64,
        message: &'a str,
    },
    Complete {
        conversation_id: ConversationId,
        status: &'static str,
        message_count: usize,
    },
    Error {
        conversation_id: ConversationId,
        code: &'static str,
        message: &'a str,
    },
}

fn sse_event(event: &ProgressEvent) -> Bytes {
    let data = match event {
        ProgressEvent::Progress {
            conversation_id,
            progress,
            message,
            ..
        } => ProgressData::Progress {
            conversation_id: *conversation_id,
            progress: *progress,
            message,
        },
        ProgressEvent::Complete {
            conversation_id,
            message_count,
            ..
        } => ProgressData::Complete {
            conversation_id: *conversation_id,
            status: "completed",
            message_count: *message_count,
        },
        ProgressEvent::Error {
            conversation_id,
            code,
            message,
            ..
        } => ProgressData::Error {
            conversation_id: *conversation_id,
            code: code.as_str(),
            message,
        },
    };
    Frame::new(64)
        .id(itoa::Buffer::new().format(event.seq()))
        .event(event.name())
        .json_data(&data)
        .finish()
}
