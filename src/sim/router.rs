//! Every route of the mock in one place: the AI API behind the key, the rest open.

use axum::Json;
use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use serde_json::json;

use super::auth::require_api_key;
use super::request_log;
use super::routes::{control, generate, messages_stream, openai, search};
use super::state::SharedState;

/// Builds the mock's router.
pub(crate) fn router(state: SharedState) -> Router {
    let ai_api = Router::new()
        .route("/api/ai/search/passages", post(search::search_passages))
        .route("/api/ai/generate", post(generate::generate))
        .route(
            "/api/ai/conversations/{id}/messages-stream",
            post(messages_stream::messages_stream),
        )
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/models", get(openai::models))
        // Layers run bottom-up: every call is logged, then the key is checked.
        .route_layer(from_fn_with_state(state.clone(), require_api_key))
        .route_layer(from_fn_with_state(state.clone(), request_log::record));

    let controls = Router::new()
        .route(
            "/__mock/faults",
            post(control::set_faults).get(control::faults),
        )
        .route("/__mock/stats", get(control::stats))
        .route("/__mock/requests", get(control::requests))
        .route("/__mock/hold", post(control::hold))
        .route("/__mock/release", post(control::release))
        .route("/__mock/reset", post(control::reset));

    Router::new()
        .route("/health", get(|| async { Json(json!({ "status": "ok" })) }))
        .merge(ai_api)
        .merge(controls)
        .with_state(state)
}
