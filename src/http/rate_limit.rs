//! Rate-limit middleware: the general class on every limited route, and the AI class on the
//! AI-costly ones. Keyed by the user's `sub` when authenticated, else by client IP.

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::client_ip::client_ip;
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorCode};
use crate::limits::{Decision, LimitClass, Quota, RateLimiter};
use crate::metrics::Metrics;

/// What the rate-limit middleware needs.
#[derive(Clone)]
pub struct RateLimitState {
    /// The limiter.
    pub limiter: RateLimiter,
    /// Metrics for refused requests.
    pub metrics: Metrics,
    /// Whether `X-Forwarded-For` is trusted.
    pub trust_forwarded_for: bool,
}

/// General-class middleware.
pub async fn general(state: State<RateLimitState>, request: Request, next: Next) -> Response {
    limit(LimitClass::General, state, request, next).await
}

/// AI-class middleware (in addition to the general class).
pub async fn ai(state: State<RateLimitState>, request: Request, next: Next) -> Response {
    limit(LimitClass::Ai, state, request, next).await
}

async fn limit(
    class: LimitClass,
    State(state): State<RateLimitState>,
    request: Request,
    next: Next,
) -> Response {
    let key = match request.extensions().get::<AuthUser>() {
        Some(user) => format!("u:{}", user.id),
        None => match client_ip(&request, state.trust_forwarded_for) {
            Some(ip) => format!("ip:{ip}"),
            None => "ip:unknown".to_string(),
        },
    };
    let quota = state.limiter.quotas().of(class);
    match state.limiter.check(class, &key).await {
        Decision::Allowed { remaining, reset } => {
            let mut response = next.run(request).await;
            // An inner, stricter class (ai) may have set its own headers already: keep them.
            let headers = response.headers_mut();
            for (name, value) in rate_limit_headers(class, quota, remaining, reset.as_secs()) {
                headers.entry(name).or_insert(value);
            }
            response
        }
        Decision::Limited { retry_after } => {
            state.metrics.rate_limited(class.as_str());
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            let mut error = ApiError::new(
                ErrorCode::RateLimited,
                format!(
                    "rate limit exceeded for {} requests; retry in {} s",
                    class.as_str(),
                    secs.max(1)
                ),
            )
            .with_retry_after(retry_after);
            for (name, value) in rate_limit_headers(class, quota, 0, secs.max(1)) {
                error = error.with_header(name, value);
            }
            error.into_response()
        }
    }
}

/// `RateLimit-Policy` and `RateLimit` (IETF httpapi ratelimit headers, structured fields).
fn rate_limit_headers(
    class: LimitClass,
    quota: Quota,
    remaining: u32,
    reset_secs: u64,
) -> Vec<(HeaderName, HeaderValue)> {
    let policy = format!(
        "\"{}\";q={};w={}",
        class.as_str(),
        quota.burst,
        quota.window_secs()
    );
    let current = format!("\"{}\";r={};t={}", class.as_str(), remaining, reset_secs);
    let mut out = Vec::new();
    if let Ok(v) = HeaderValue::from_str(&policy) {
        out.push((HeaderName::from_static("ratelimit-policy"), v));
    }
    if let Ok(v) = HeaderValue::from_str(&current) {
        out.push((HeaderName::from_static("ratelimit"), v));
    }
    out
}
