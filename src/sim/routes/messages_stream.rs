//! `POST /api/ai/conversations/{id}/messages-stream`: the answer to a chat message, token by
//! token, as CRLF-framed SSE.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::sim::ai_body::{self, Unprocessable};
use crate::sim::fault_reply;
use crate::sim::faults::{Fault, FaultRoute};
use crate::sim::sse::AiEvents;
use crate::sim::state::SharedState;
use crate::sim::stats::Call;
use crate::sim::text;
use crate::sim::token_stream::token_body;

#[derive(Debug, Deserialize)]
struct StreamRequest {
    content: String,
    #[serde(default)]
    history: Vec<HistoryEntry>,
}

/// Checked for shape like the real service does; the mock's answer does not depend on it.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct HistoryEntry {
    role: String,
    content: String,
}

/// Streams a deterministic answer to `content`.
pub(crate) async fn messages_stream(
    State(state): State<SharedState>,
    Path(conversation_id): Path<String>,
    body: Bytes,
) -> Response {
    state.stats.count(Call::Stream);
    let request = match parse(&body) {
        Ok(request) => request,
        Err(rejection) => return rejection.into_response(),
    };
    tracing::debug!(
        conversation_id,
        history = request.history.len(),
        "mock-ai: streaming an answer"
    );
    let fault = state.faults.draw(FaultRoute::Stream);
    // A hanging stream still sends its headers; the body then stays silent.
    let before = fault.filter(|fault| !matches!(fault, Fault::Hang));
    if let Err(response) = fault_reply::before_answer(&state, before).await {
        return response;
    }
    let tokens = text::answer_tokens(&request.content, state.config.tokens);
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        token_body(&state, AiEvents, tokens, fault),
    )
        .into_response()
}

fn parse(body: &[u8]) -> Result<StreamRequest, Unprocessable> {
    let request: StreamRequest = ai_body::parse(body)?;
    ai_body::required("content", &request.content)?;
    Ok(request)
}
