//! `POST /api/auth/dev-login`: a token for a username, for local development only.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::app::AppState;
use crate::error::ApiError;
use crate::http::extract::AppJson;

const DEV_TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);

/// Request body.
#[derive(Debug, Deserialize)]
pub struct DevLogin {
    username: String,
}

/// Issues a token and sets it as an HttpOnly, SameSite=Strict cookie (EventSource cannot send
/// headers, but same-origin cookies travel on their own). 404 when dev login is off.
pub async fn dev_login(
    State(state): State<AppState>,
    AppJson(body): AppJson<DevLogin>,
) -> Result<Response, ApiError> {
    let Some(minter) = &state.minter else {
        return Err(ApiError::not_found("route"));
    };
    let username = body.username.trim();
    if username.is_empty() || username.chars().count() > 64 {
        return Err(ApiError::validation(
            "username",
            "must be 1 to 64 characters",
        ));
    }
    if !username
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'))
    {
        return Err(ApiError::validation(
            "username",
            "may contain letters, digits and _ - . @ only",
        ));
    }
    let token = minter
        .mint(username, Some(username), DEV_TOKEN_TTL)
        .map_err(ApiError::internal)?;
    // Dev login is only on for local development, where there is no TLS: no `Secure`.
    let cookie = format!(
        "{}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        state.settings.auth_cookie_name,
        token,
        DEV_TOKEN_TTL.as_secs()
    );
    let mut response = Json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": DEV_TOKEN_TTL.as_secs(),
    }))
    .into_response();
    let cookie = HeaderValue::from_str(&cookie).map_err(ApiError::internal)?;
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
