//! Rate-limit middleware: the general class on every limited route, and the AI class on the
//! AI-costly ones. Keyed by the user's `sub` when authenticated, else by client IP.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use tower::Service;

use super::client_ip::client_ip;
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorCode};
use crate::limits::{Decision, LimitClass, Quota, RateLimiter};
use crate::metrics::Metrics;

const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// What the rate-limit middleware needs.
#[derive(Clone)]
pub struct RateLimitState {
    limiter: RateLimiter,
    metrics: Metrics,
    trust_forwarded_for: bool,
    /// `RateLimit-Policy` of the general and AI classes: fixed by the quotas, so made once.
    policies: [HeaderValue; 2],
}

impl RateLimitState {
    /// The state for `limiter`; `trust_forwarded_for` says whether `X-Forwarded-For` names
    /// the client.
    pub fn new(limiter: RateLimiter, metrics: Metrics, trust_forwarded_for: bool) -> Self {
        let quotas = limiter.quotas();
        let policies = [LimitClass::General, LimitClass::Ai]
            .map(|class| policy_header(class, quotas.of(class)));
        Self {
            limiter,
            metrics,
            trust_forwarded_for,
            policies,
        }
    }

    /// The limiter (the application sweeps its in-process buckets).
    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    fn policy(&self, class: LimitClass) -> HeaderValue {
        match class {
            LimitClass::General => self.policies[0].clone(),
            LimitClass::Ai => self.policies[1].clone(),
        }
    }
}

/// General-class middleware (a [`super::middleware::layer`] fn).
pub async fn general<S>(state: Arc<RateLimitState>, request: Request, inner: S) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    limit(LimitClass::General, &state, request, inner).await
}

/// AI-class middleware, in addition to the general class (a [`super::middleware::layer`] fn).
pub async fn ai<S>(state: Arc<RateLimitState>, request: Request, inner: S) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    limit(LimitClass::Ai, &state, request, inner).await
}

/// Checks `class` for the request's client and runs the rest of the route if admitted, with
/// the `RateLimit` headers on its response; refuses it with a 429 problem otherwise. `inner`
/// is the rest of the route, ready to call.
pub async fn limit<S>(
    class: LimitClass,
    state: &RateLimitState,
    request: Request,
    mut inner: S,
) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let key = match request.extensions().get::<AuthUser>() {
        Some(user) => ["u:", user.id.as_str()].concat(),
        None => match client_ip(&request, state.trust_forwarded_for) {
            Some(ip) => format!("ip:{ip}"),
            None => "ip:unknown".to_string(),
        },
    };
    match state.limiter.check(class, &key).await {
        Decision::Allowed { remaining, reset } => {
            let Ok(mut response) = inner.call(request).await;
            // An inner, stricter class (ai) may have set its own headers already: keep them.
            let headers = response.headers_mut();
            headers
                .entry(RATELIMIT_POLICY)
                .or_insert_with(|| state.policy(class));
            headers
                .entry(RATELIMIT)
                .or_insert_with(|| current_header(class, remaining, reset.as_secs()));
            response
        }
        Decision::Limited { retry_after } => {
            state.metrics.rate_limited(class.as_str());
            let secs = (retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)).max(1);
            ApiError::new(
                ErrorCode::RateLimited,
                format!(
                    "rate limit exceeded for {} requests; retry in {secs} s",
                    class.as_str(),
                ),
            )
            .with_retry_after(retry_after)
            .with_header(RATELIMIT_POLICY, state.policy(class))
            .with_header(RATELIMIT, current_header(class, 0, secs))
            .into_response()
        }
    }
}

/// `RateLimit-Policy` (IETF httpapi ratelimit headers, structured fields).
fn policy_header(class: LimitClass, quota: Quota) -> HeaderValue {
    let policy = format!(
        "\"{}\";q={};w={}",
        class.as_str(),
        quota.burst,
        quota.window_secs()
    );
    HeaderValue::try_from(policy).unwrap_or(HeaderValue::from_static(""))
}

/// `RateLimit`: what is left now and when the bucket is full again.
fn current_header(class: LimitClass, remaining: u32, reset_secs: u64) -> HeaderValue {
    // Pieces pushed rather than `format!`ed: this runs on every limited request.
    let mut current = String::with_capacity(40);
    current.push('"');
    current.push_str(class.as_str());
    current.push_str("\";r=");
    current.push_str(itoa::Buffer::new().format(remaining));
    current.push_str(";t=");
    current.push_str(itoa::Buffer::new().format(reset_secs));
    HeaderValue::try_from(current).unwrap_or(HeaderValue::from_static(""))
}
