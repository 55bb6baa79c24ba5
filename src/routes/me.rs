//! `GET /api/me`: who the token says you are.

use axum::Json;
use serde_json::{Value, json};

use crate::auth::AuthUser;

/// The caller's verified claims.
pub async fn me(user: AuthUser) -> Json<Value> {
    Json(json!({
        "sub": user.id.as_str(),
        "name": user.claims.name,
        "iss": user.claims.iss,
        "aud": user.claims.aud,
        "exp": user.claims.exp,
    }))
}
