//! Health, readiness and metrics for load balancers and Prometheus.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;

/// `GET /health` body.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    status: &'static str,
    /// The running version.
    version: &'static str,
}

/// `GET /health/liveness` body.
#[derive(Serialize, ToSchema)]
pub struct Liveness {
    /// Always `alive`.
    status: &'static str,
}

/// Dependency states in readiness.
#[derive(Serialize, ToSchema)]
pub struct ReadinessChecks {
    /// `up` or `down`.
    database: &'static str,
    /// `up`, `down` or `disabled` (no `REDIS_URL`).
    redis: &'static str,
    /// Worst AI breaker state: `closed`, `open` or `half_open`.
    ai_service: &'static str,
}

/// `GET /health/readiness` body.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    status: &'static str,
    /// Per dependency.
    checks: ReadinessChecks,
}

/// `GET /health`: the process is up.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// `GET /health/liveness`: 200 while serving.
#[utoipa::path(get, path = "/health/liveness", tag = "operations", responses((status = 200, body = Liveness)))]
pub async fn liveness() -> Json<Liveness> {
    Json(Liveness { status: "alive" })
}

/// `GET /health/readiness`: 503 when the database or a configured Redis is down. An open
/// AI breaker does not make sluice unready: fallbacks serve.
#[utoipa::path(
    get,
    path = "/health/readiness",
    tag = "operations",
    responses(
        (status = 200, body = Readiness, description = "Ready"),
        (status = 503, body = Readiness, description = "The database or a configured Redis is down"),
    )
)]
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
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        checks: ReadinessChecks {
            database: if database_up { "up" } else { "down" },
            redis,
            ai_service: state.ai_breaker_state(),
        },
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus metrics", content_type = "application/openmetrics-text"))
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}
