//! Health, readiness and metrics for load balancers and Prometheus.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

use crate::app::AppState;

/// `GET /health`: the process is up.
pub async fn health() -> impl IntoResponse {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

/// `GET /health/liveness`: 200 while serving.
pub async fn liveness() -> impl IntoResponse {
    Json(json!({"status": "alive"}))
}

/// `GET /health/readiness`: 503 when the database or a configured Redis is down. An open
/// AI breaker does not make sluice unready: fallbacks serve.
pub async fn readiness(State(state): State<AppState>) -> impl IntoResponse {
    let probe = Duration::from_secs(1);
    let database_up = matches!(
        tokio::time::timeout(probe, state.store.ping()).await,
        Ok(Ok(()))
    );
    let redis = match &state.redis {
        None => "disabled",
        Some(link) => {
            let up = matches!(tokio::time::timeout(probe, link.ping()).await, Ok(true));
            state.metrics.redis_up(up);
            if up { "up" } else { "down" }
        }
    };
    let ready = database_up && redis != "down";
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": {
            "database": if database_up { "up" } else { "down" },
            "redis": redis,
            "ai_service": state.ai_breaker_state(),
        }
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}
