//! `/__mock/*`: the test controls. Not part of the AI API and not authenticated, so a test can
//! break the mock and read what reached it without knowing the key.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::sim::faults::{FaultRequest, FaultSettings};
use crate::sim::state::SharedState;

/// A control request that does not make sense: 400 naming the field.
struct BadControl {
    field: String,
    message: String,
}

impl IntoResponse for BadControl {
    fn into_response(self) -> Response {
        let body = json!({ "error": "bad_request", "field": self.field, "message": self.message });
        (StatusCode::BAD_REQUEST, Json(body)).into_response()
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, BadControl> {
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(deserializer).map_err(|error| BadControl {
        field: error.path().to_string(),
        message: error.into_inner().to_string(),
    })
}

/// Sets the fault mode, rate, routes and options; answers with the settings now in force.
pub(crate) async fn set_faults(State(state): State<SharedState>, body: Bytes) -> Response {
    let settings = parse::<FaultRequest>(&body).and_then(|request| {
        FaultSettings::try_from(request).map_err(|invalid| BadControl {
            field: invalid.field.to_owned(),
            message: invalid.message.to_owned(),
        })
    });
    match settings {
        Ok(settings) => {
            state.faults.set(settings.clone());
            Json(settings).into_response()
        }
        Err(bad) => bad.into_response(),
    }
}

/// The fault settings in force.
pub(crate) async fn faults(State(state): State<SharedState>) -> Response {
    Json(state.faults.current()).into_response()
}

/// Calls per route and what became of the streams.
pub(crate) async fn stats(State(state): State<SharedState>) -> Response {
    Json(state.stats.snapshot()).into_response()
}

/// The last calls to the AI API, oldest first.
pub(crate) async fn requests(State(state): State<SharedState>) -> Response {
    Json(state.requests.entries()).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldRequest {
    after_tokens: usize,
}

/// Pauses every new token stream after `after_tokens` tokens.
pub(crate) async fn hold(State(state): State<SharedState>, body: Bytes) -> Response {
    match parse::<HoldRequest>(&body) {
        Ok(request) => {
            state.hold.set(request.after_tokens);
            Json(json!({ "after_tokens": request.after_tokens })).into_response()
        }
        Err(bad) => bad.into_response(),
    }
}

/// Lets held streams go on and clears the hold.
pub(crate) async fn release(State(state): State<SharedState>) -> Response {
    state.hold.release();
    Json(json!({ "status": "released" })).into_response()
}

/// Back to a well-behaved mock: no faults, counters zero, no hold (held streams go on), an
/// empty request log.
pub(crate) async fn reset(State(state): State<SharedState>) -> Response {
    state.faults.set(FaultSettings::default());
    state.hold.release();
    state.stats.reset();
    state.requests.clear();
    Json(json!({ "status": "reset" })).into_response()
}
