//! `GET /api/me`: who the token says you are.

use axum::Json;
use serde_json::{Value, json};

use crate::auth::AuthUser;

/// The caller's verified claims.
#[utoipa::path(
    get,
    path = "/api/me",
    tag = "auth",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "`{\"sub\", \"name\", \"iss\", \"aud\", \"exp\"}`", body = Object),
        (status = 401, body = crate::openapi::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn me(user: AuthUser) -> Json<Value> {
    Json(json!({
        "sub": user.id.as_str(),
        "name": user.claims.name,
        "iss": user.claims.iss,
        "aud": user.claims.aud,
        "exp": user.claims.exp,
    }))
}
