//! `POST /api/auth/dev-login`: a token for a username, for local development only.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::http::extract::AppJson;

const DEV_TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);

/// Request body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DevLogin {
    /// 1..=64 letters, digits, `_ - . @` (Unicode letters and surrounding blanks are
    /// accepted too).
    #[schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9_.@-]+$")]
    username: String,
}

/// Response body of dev login.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenBody {
    /// The JWT (also set as the auth cookie).
    access_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Seconds until it expires.
    expires_in: u64,
}

/// Issues a token and sets it as an HttpOnly, SameSite=Strict cookie (EventSource cannot send
/// headers, but same-origin cookies travel on their own). 404 when dev login is off.
#[utoipa::path(
    post,
    path = "/api/auth/dev-login",
    tag = "auth",
    request_body = DevLogin,
    responses(
        (status = 200, body = TokenBody, description = "Token, also set as an HttpOnly SameSite=Strict cookie"),
        (status = 400, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::openapi::Problem, content_type = "application/problem+json", description = "Dev login is off"),
        (status = 413, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 429, body = crate::openapi::Problem, content_type = "application/problem+json"),
    )
)]
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
    let mut response = Json(TokenBody {
        access_token: token,
        token_type: "Bearer",
        expires_in: DEV_TOKEN_TTL.as_secs(),
    })
    .into_response();
    let cookie = HeaderValue::from_str(&cookie).map_err(ApiError::internal)?;
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `POST /api/auth/logout`: clears the auth cookie (the token itself simply expires).
#[utoipa::path(
    post,
    path = "/api/auth/logout",
    tag = "auth",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "Cookie cleared"),
        (status = 401, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::openapi::Problem, content_type = "application/problem+json", description = "csrf_rejected"),
    )
)]
pub async fn logout(State(state): State<AppState>, _user: AuthUser) -> Response {
    let cookie = format!(
        "{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
        state.settings.auth_cookie_name
    );
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
