//! The gate of every user route: the caller's token, then the general rate limit for that
//! user.
//!
//! One middleware rather than an authentication layer and a limit layer: each layer inside
//! the router clones the rest of the route, and axum boxes each layer's future, on every
//! request.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use tower::Service;

use super::rate_limit::{self, RateLimitState};
use crate::auth::{AuthState, authenticate};
use crate::limits::LimitClass;

/// What the gate needs: token verification and the limiter.
pub struct UserGate {
    /// Verifies the token and applies the CSRF rule to cookie auth.
    pub auth: AuthState,
    /// The general-class limit (shared with the router's other limit layers).
    pub limits: Arc<RateLimitState>,
}

/// Middleware: verifies the token, stores [`crate::auth::AuthUser`] in the request, and
/// applies the user's general-class limit.
///
/// A [`super::middleware::layer`] fn: `inner` is the route, ready to call.
pub async fn user_gate<S>(gate: Arc<UserGate>, mut request: Request, inner: S) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    match authenticate(&gate.auth, request.method(), request.headers()).await {
        Ok(user) => {
            request.extensions_mut().insert(user);
            rate_limit::limit(LimitClass::General, &gate.limits, request, inner).await
        }
        Err(err) => err.into_response(),
    }
}
