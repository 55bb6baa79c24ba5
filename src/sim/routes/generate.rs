//! `POST /api/ai/generate`: accept at once, generate in the background.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::sim::ai_body::{self, Unprocessable};
use crate::sim::fault_reply;
use crate::sim::faults::{Fault, FaultRoute};
use crate::sim::generation::{Generation, Outcome};
use crate::sim::state::SharedState;
use crate::sim::stats::Call;

#[derive(Debug, Deserialize)]
struct GenerateRequest {
    conversation_id: String,
    scenario_id: String,
}

/// Answers 202 and starts the generation; its progress and result arrive later, by callback.
pub(crate) async fn generate(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.stats.count(Call::Generate);
    let request = match parse(&body) {
        Ok(request) => request,
        Err(rejection) => return rejection.into_response(),
    };
    let fault = state.faults.draw(FaultRoute::Generate);
    // Only hangs and delays affect the answer; the other faults hit the generation itself.
    let answer_fault = fault.filter(|fault| matches!(fault, Fault::Hang | Fault::Slow(_)));
    if let Err(response) = fault_reply::before_answer(&state, answer_fault).await {
        return response;
    }
    let job = Generation {
        conversation_id: request.conversation_id,
        scenario_id: request.scenario_id,
        request_id: headers.get("x-request-id").cloned(),
        stage_delay: match fault {
            Some(Fault::Slow(slowdown)) => slowdown.apply(state.config.stage_delay),
            _ => state.config.stage_delay,
        },
        outcome: match fault {
            Some(Fault::Error(_)) => Outcome::Fail,
            Some(Fault::Malformed) => Outcome::Malformed,
            Some(Fault::DropMidStream) => Outcome::Abandon,
            _ => Outcome::Complete,
        },
    };
    state.tasks.spawn(job.run(state.clone()));
    (StatusCode::ACCEPTED, Json(json!({ "status": "accepted" }))).into_response()
}

fn parse(body: &[u8]) -> Result<GenerateRequest, Unprocessable> {
    let request: GenerateRequest = ai_body::parse(body)?;
    ai_body::path_safe_id("conversation_id", &request.conversation_id)?;
    ai_body::required("scenario_id", &request.scenario_id)?;
    Ok(request)
}
