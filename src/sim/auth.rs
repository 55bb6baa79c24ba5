//! The AI routes require `Authorization: Bearer <AI_API_KEY>`, as the real service does, so the
//! gateway's key handling is exercised by every test.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use subtle::ConstantTimeEq;

use super::state::SharedState;

/// Lets the request through only with the right bearer key; otherwise 401 JSON.
pub(crate) async fn require_api_key(
    State(state): State<SharedState>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    let expected = state.config.api_key.as_bytes();
    let valid = presented.is_some_and(|key| bool::from(key.as_bytes().ct_eq(expected)));
    if valid {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({ "detail": "Invalid or missing API key" })),
        )
            .into_response()
    }
}
