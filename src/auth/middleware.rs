//! The authentication middleware and the `AuthUser` extractor.

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum_extra::extract::CookieJar;

use super::{AuthError, Authenticator, Claims, OriginPolicy};
use crate::error::{ApiError, ErrorCode};
use crate::http::bearer::bearer_token;
use crate::ids::UserId;

/// How the token arrived; cookie-borne tokens are subject to the CSRF origin check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer …`.
    Header,
    /// The `AUTH_COOKIE_NAME` cookie.
    Cookie,
}

/// The authenticated caller, put in request extensions by the user routes' gate
/// (`crate::http::user_gate`).
///
/// Handlers take it as an argument; it cannot be optional, because every route behind the
/// middleware requires a user.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The user id (`sub`).
    pub id: UserId,
    /// All verified claims.
    pub claims: Arc<Claims>,
    /// Where the token came from.
    pub source: TokenSource,
}

/// What the authentication middleware needs from the application.
#[derive(Clone)]
pub struct AuthState {
    /// Verifies tokens.
    pub authenticator: Authenticator,
    /// Cookie carrying the token.
    pub cookie_name: Arc<str>,
    /// CSRF origins.
    pub origins: Arc<OriginPolicy>,
}

/// Finds and verifies the caller's token. Query parameters are never looked at.
pub async fn authenticate(
    state: &AuthState,
    method: &axum::http::Method,
    headers: &HeaderMap,
) -> Result<AuthUser, ApiError> {
    let (token, source) = match bearer_token(headers) {
        Some(Ok(token)) => (Cow::Borrowed(token), TokenSource::Header),
        Some(Err(())) => return Err(ApiError::unauthorized("expected a Bearer token")),
        None => {
            let jar = CookieJar::from_headers(headers);
            let token = jar
                .get(&state.cookie_name[..])
                .map(|c| c.value().to_owned())
                .ok_or_else(|| ApiError::from(AuthError::Missing))?;
            (Cow::Owned(token), TokenSource::Cookie)
        }
    };
    let verified = state.authenticator.verify(&token).await.map_err(|err| {
        tracing::debug!(reason = %err, "token rejected");
        ApiError::from(err)
    })?;
    if source == TokenSource::Cookie && !state.origins.permits(method, headers) {
        return Err(ApiError::new(
            ErrorCode::CsrfRejected,
            "cross-site request rejected: Origin is not allowed",
        ));
    }
    Ok(AuthUser {
        id: verified.user,
        claims: verified.claims,
        source,
    })
}

impl<S: Send + Sync> FromRequestParts<S> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<AuthUser>()
            .cloned()
            .ok_or_else(|| ApiError::from(AuthError::Missing))
    }
}
