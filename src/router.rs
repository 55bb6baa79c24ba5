//! Every route of the gateway, grouped by who may call it. Authentication is applied per
//! group: `user` routes require a JWT; `public` and `operations` routes are the explicit
//! exceptions.

use std::sync::Arc;

use axum::Router;
use axum::routing::{any, get, post};

use crate::app::AppState;
use crate::http::stack::App;
use crate::http::user_gate::{UserGate, user_gate};
use crate::http::{metrics_layer, middleware, rate_limit, stack};
use crate::openapi;
use crate::routes::{
    auth, chat, conversations, frontend, health, internal, me, openai, passthrough, scenarios,
};

/// Builds the complete application router.
pub fn router(state: AppState) -> impl App {
    // Operations: no auth, never rate-limited.
    let operations = Router::new()
        .route("/health", get(health::health))
        .route("/health/liveness", get(health::liveness))
        .route("/health/readiness", get(health::readiness))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::openapi_json));

    // Public: no auth, limited per client IP.
    let limits = Arc::new(state.limits.clone());
    let public = Router::new()
        .route("/api/auth/dev-login", post(auth::dev_login))
        .route_layer(middleware::layer(limits.clone(), rate_limit::general));

    // The AI-costly routes also pass the per-user AI limit (CONTRACT.md section 2).
    let ai_limit = middleware::layer(limits.clone(), rate_limit::ai);

    // Users: JWT required (header or cookie), then limited per user.
    let gate = Arc::new(UserGate {
        auth: state.auth.clone(),
        limits,
    });
    let user = Router::new()
        .route("/api/me", get(me::me))
        .route("/api/auth/logout", post(auth::logout))
        .route(
            "/api/scenarios",
            post(scenarios::create)
                .layer(ai_limit.clone())
                .get(scenarios::list),
        )
        .route("/api/scenarios/{id}", get(scenarios::get))
        .route(
            "/api/conversations",
            post(conversations::create)
                .layer(ai_limit.clone())
                .get(conversations::list),
        )
        .route(
            "/api/conversations/create-stream",
            get(conversations::create_stream).layer(ai_limit.clone()),
        )
        .route("/api/conversations/{id}", get(conversations::get))
        .route("/api/conversations/{id}/status", get(conversations::status))
        .route("/api/conversations/{id}/events", get(conversations::events))
        .route(
            "/api/conversations/{id}/messages",
            post(chat::send).layer(ai_limit.clone()).get(chat::list),
        )
        .route(
            "/api/conversations/{id}/messages-stream",
            get(chat::send_via_query).layer(ai_limit.clone()),
        )
        .route(
            "/v1/chat/completions",
            post(openai::chat_completions).layer(ai_limit.clone()),
        )
        .route("/v1/models", get(openai::models).layer(ai_limit.clone()))
        .route("/api/ai/{*path}", any(passthrough::forward_ai))
        .route("/api/search/{*path}", any(passthrough::forward_search))
        .route_layer(middleware::layer(gate, user_gate));

    // Internal: the AI service's callbacks, `AI_API_KEY` only, never rate-limited.
    let internal = Router::new()
        .route(
            "/api/internal/conversations/{id}/events",
            post(internal::events),
        )
        .route(
            "/api/internal/conversations/{id}/complete",
            post(internal::complete),
        )
        .route(
            "/api/internal/conversations/{id}/failed",
            post(internal::failed),
        )
        .route_layer(middleware::layer(state.clone(), internal::require_ai_key));

    let cors_origins = state.settings.cors_allowed_origins.clone();
    let router = Router::new()
        .merge(operations)
        .merge(public)
        .merge(user)
        .merge(internal)
        .fallback(frontend::serve)
        .layer(middleware::layer(
            state.metrics.clone(),
            metrics_layer::track,
        ))
        .with_state(state);
    stack::apply(router, &cors_origins)
}
