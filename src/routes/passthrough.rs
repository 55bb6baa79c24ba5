//! `/api/ai/*` and `/api/search/*`: forwarded to the AI service with the same path and
//! query, bodies streamed both ways, behind the passthrough breaker. Search GETs are cached
//! for 60 s per user.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use http_body_util::BodyExt;
use tokio::time::Instant;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::cache;
use crate::error::{ApiError, ErrorCode};
use crate::http::call_context::call_context;
use crate::http::stack::MAX_BODY_BYTES;
use crate::upstream::CallError;
use crate::upstream::client::OutgoingBody;

const SEARCH_CACHE_TTL: Duration = Duration::from_secs(60);
/// Largest search response kept in the cache.
const MAX_CACHED_BYTES: usize = 1024 * 1024;

/// Request headers worth sending on; everything else (cookies, the user's token, hop-by-hop
/// headers) stays here.
const FORWARDED_REQUEST_HEADERS: [HeaderName; 4] = [
    header::CONTENT_TYPE,
    header::ACCEPT,
    header::ACCEPT_LANGUAGE,
    header::IF_NONE_MATCH,
];

// A plain fn handing back `forward`'s future (as is `forward_search`): an `async` wrapper
// would hold that ~3 KB future in its own state and copy it once more per call. Not in the
// doc comment, which is the operation's summary in the OpenAPI document.
/// `/api/ai/{path}`: any method, forwarded with the same path and query.
#[utoipa::path(
    get,
    path = "/api/ai/{path}",
    tag = "passthrough",
    security(("bearer" = []), ("cookie" = [])),
    params(("path" = String, Path, description = "Rest of the AI service path")),
    responses(
        (status = 200, description = "The AI service's answer (status, body and safe headers kept)"),
        (status = 400, body = crate::openapi::Problem, content_type = "application/problem+json", description = "validation_failed: a '.' or '..' path segment, or an encoded slash"),
        (status = 401, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 429, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 502, body = crate::openapi::Problem, content_type = "application/problem+json", description = "upstream_error"),
        (status = 503, body = crate::openapi::Problem, content_type = "application/problem+json", description = "ai_unavailable (breaker open), with Retry-After"),
        (status = 504, body = crate::openapi::Problem, content_type = "application/problem+json", description = "upstream_timeout"),
        (status = "default", description = "Any other status the AI service answered (e.g. 404 for a path it does not know), relayed with its body"),
    )
)]
pub fn forward_ai(
    state: State<AppState>,
    user: AuthUser,
    request: Request,
) -> impl Future<Output = Result<Response, ApiError>> + Send {
    forward(state, user, request)
}

/// `/api/search/{path}`: forwarded like `/api/ai/*`; GET answers cached 60 s per user.
#[utoipa::path(
    get,
    path = "/api/search/{path}",
    tag = "passthrough",
    security(("bearer" = []), ("cookie" = [])),
    params(("path" = String, Path, description = "Rest of the AI service search path")),
    responses(
        (status = 200, description = "The AI service's answer"),
        (status = 400, body = crate::openapi::Problem, content_type = "application/problem+json", description = "validation_failed: a '.' or '..' path segment, or an encoded slash"),
        (status = 401, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 429, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 502, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 503, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 504, body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = "default", description = "Any other status the AI service answered, relayed with its body"),
    )
)]
pub fn forward_search(
    state: State<AppState>,
    user: AuthUser,
    request: Request,
) -> impl Future<Output = Result<Response, ApiError>> + Send {
    forward(state, user, request)
}

/// Proxies one request.
async fn forward(
    State(state): State<AppState>,
    user: AuthUser,
    request: Request,
) -> Result<Response, ApiError> {
    let ai = &state.ai;
    if !stays_under_its_route(request.uri().path()) {
        return Err(ApiError::new(
            ErrorCode::ValidationFailed,
            "the path may not contain '.' or '..' segments or encoded slashes",
        ));
    }
    let method = request.method().clone();
    let uri = request.uri();
    let path_and_query = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    let cacheable = method == Method::GET && path_and_query.starts_with("/api/search/");
    let cache_key =
        cacheable.then(|| cache::key("passthrough", &[user.id.as_str(), path_and_query]));
    if let Some(cache_key) = &cache_key {
        if let Some(hit) = state.cache.get(cache_key).await {
            state.metrics.cache("passthrough_search", "hit");
            return Ok(cached_response(hit));
        }
        state.metrics.cache("passthrough_search", "miss");
    }

    let breaker = ai.passthrough_breaker();
    let permit = breaker.acquire().map_err(|rejected| {
        ai.note_rejection(breaker);
        ApiError::from(CallError::Rejected(rejected))
    })?;

    let base = ai.base();
    let uri = match request.uri().path_and_query() {
        Some(parsed) => base.endpoint_at(parsed),
        None => base.endpoint(path_and_query),
    }
    .map_err(ApiError::internal)?;
    // Room for the five headers added on the way (`Host`, key, user agent, request and user
    // ids), so the map is never reallocated.
    let mut headers = HeaderMap::with_capacity(FORWARDED_REQUEST_HEADERS.len() + 5);
    if let Some(host) = base.host() {
        headers.insert(header::HOST, host.clone());
    }
    for name in FORWARDED_REQUEST_HEADERS {
        if let Some(value) = request.headers().get(&name) {
            headers.insert(name, value.clone());
        }
    }
    let mut upstream = http::Request::new(upstream_body(request).await?);
    *upstream.method_mut() = method;
    *upstream.uri_mut() = uri;
    *upstream.headers_mut() = headers;

    let started = Instant::now();
    let ctx = call_context(Some(&user));
    let mut response = match ai.client().send(upstream, &ctx).await {
        Ok(response) => response,
        Err(err) => {
            if err.counts_as_failure() {
                permit.failure();
            }
            state
                .metrics
                .upstream_duration("passthrough", started.elapsed());
            return Err(CallError::Upstream(err).into());
        }
    };
    state
        .metrics
        .upstream_duration("passthrough", started.elapsed());
    let status = response.status();
    if status.is_server_error() {
        permit.failure();
        tracing::warn!(status = status.as_u16(), "AI service error on passthrough");
        return Err(ApiError::new(
            ErrorCode::UpstreamError,
            "the AI service answered with an error",
        ));
    }
    permit.success();

    let headers = safe_response_headers(std::mem::take(response.headers_mut()));
    if let Some(cache_key) = cache_key.filter(|_| status == StatusCode::OK) {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_string();
        let mut body = BytesMut::new();
        let mut stream = ai.client().body_stream(response, started);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ApiError::from(CallError::Upstream(e)))?;
            body.extend_from_slice(&chunk);
        }
        let body = body.freeze();
        if body.len() <= MAX_CACHED_BYTES {
            state
                .cache
                .put(
                    &cache_key,
                    encode_cached(&content_type, &body),
                    SEARCH_CACHE_TTL,
                )
                .await;
        }
        let mut out = (status, body).into_response();
        *out.headers_mut() = headers;
        return Ok(out);
    }
    let body = Body::from_stream(ai.client().body_stream(response, started));
    let mut out = Response::new(body);
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok(out)
}

/// Whether `path` can only mean itself: no `.` or `..` segment, plain or percent-encoded, and
/// no encoded slash or backslash. A server resolving such a path (the AI service, or a proxy
/// before it) would take `/api/ai/../../admin` out of the passthrough's prefixes to any of
/// its routes, called with the gateway's key.
fn stays_under_its_route(path: &str) -> bool {
    let path = path.as_bytes();
    if path.contains(&b'\\') {
        return false;
    }
    let encoded = path.contains(&b'%');
    path.split(|b| *b == b'/').all(|segment| match segment {
        b"." | b".." => false,
        _ if !encoded || !segment.contains(&b'%') => true,
        _ => {
            let lower = String::from_utf8_lossy(segment).to_ascii_lowercase();
            let decoded = lower.replace("%2e", ".");
            decoded != "." && decoded != ".." && !lower.contains("%2f") && !lower.contains("%5c")
        }
    })
}

/// Small bodies of known length are sent whole, with the request's head (no chunked encoding
/// for the AI service to parse); large or unknown-length bodies are streamed, capped at 1 MiB.
async fn upstream_body(request: Request) -> Result<OutgoingBody, ApiError> {
    const BUFFERED_UP_TO: u64 = 64 * 1024;
    let length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = request.headers().contains_key(header::TRANSFER_ENCODING);
    match length {
        Some(0) => Ok(OutgoingBody::Whole(Bytes::new())),
        None if !chunked => Ok(OutgoingBody::Whole(Bytes::new())),
        Some(len) if len <= BUFFERED_UP_TO => {
            let bytes = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
                .await
                .map_err(|_| {
                    ApiError::new(
                        ErrorCode::PayloadTooLarge,
                        "request body is larger than 1 MiB",
                    )
                })?;
            Ok(OutgoingBody::Whole(bytes))
        }
        _ => Ok(OutgoingBody::Streamed(
            http_body_util::Limited::new(request.into_body(), MAX_BODY_BYTES).boxed_unsync(),
        )),
    }
}

/// Response headers minus hop-by-hop ones and cookies (the AI service never sets ours).
///
/// The AI service's map is kept and only the dropped names are removed from it, and then only
/// when there are any: the usual answer has none, and copying the map cost an allocation per
/// header (a cloned value's bytes are moved to shared storage) besides the new map.
fn safe_response_headers(mut headers: HeaderMap) -> HeaderMap {
    // Names, not strings: comparing two standard header names compares a tag.
    const DROPPED: [HeaderName; 10] = [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::SET_COOKIE,
        header::SERVER,
    ];
    if headers.keys().any(|name| DROPPED.contains(name)) {
        for name in &DROPPED {
            headers.remove(name);
        }
    }
    headers
}

fn encode_cached(content_type: &str, body: &Bytes) -> Bytes {
    let mut out = BytesMut::with_capacity(content_type.len() + 1 + body.len());
    out.put_slice(content_type.as_bytes());
    out.put_u8(b'\n');
    out.put_slice(body);
    out.freeze()
}

fn cached_response(entry: Bytes) -> Response {
    let split = entry.iter().position(|b| *b == b'\n').unwrap_or(0);
    let content_type = String::from_utf8_lossy(&entry[..split]).to_string();
    let body = entry.slice((split + 1).min(entry.len())..);
    let mut response = (StatusCode::OK, body).into_response();
    if let Ok(value) = HeaderValue::from_str(&content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `handler` returns, without calling it.
    fn future_size<H, F>(_: H) -> usize
    where
        H: FnOnce(State<AppState>, AuthUser, Request) -> F,
    {
        std::mem::size_of::<F>()
    }

    /// axum moves the handler's future into its box, so a wrapper's extra state is copied on
    /// every call: the route handlers must hand back `forward`'s future as it is.
    #[test]
    fn the_route_handlers_add_nothing_to_forwards_future() {
        let forward_size = future_size(forward);
        assert_eq!(future_size(forward_ai), forward_size);
        assert_eq!(future_size(forward_search), forward_size);
    }

    /// A header map with `headers`, repeated names appended.
    fn header_map(headers: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        map
    }

    #[test]
    fn hop_by_hop_headers_cookies_and_server_are_not_relayed() {
        let upstream = header_map(&[
            ("content-type", "application/json"),
            ("etag", "\"v1\""),
            ("x-custom", "kept"),
            ("connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("proxy-authenticate", "Basic"),
            ("te", "trailers"),
            ("trailer", "x-sum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("server", "ai/1.0"),
        ]);
        let relayed = safe_response_headers(upstream);
        let mut names: Vec<&str> = relayed.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-type", "etag", "x-custom"]);
    }

    #[test]
    fn an_answer_without_hop_by_hop_headers_keeps_all_of_its_own() {
        let mut upstream = header_map(&[
            ("content-type", "application/json"),
            ("link", "</a>; rel=next"),
            ("link", "</b>; rel=prev"),
        ]);
        let relayed = safe_response_headers(upstream.clone());
        assert_eq!(relayed, upstream);
        // One dropped name among them goes, with nothing else.
        upstream.append(header::SERVER, HeaderValue::from_static("ai/1.0"));
        let relayed = safe_response_headers(upstream);
        assert_eq!(relayed.len(), 3);
        assert_eq!(relayed.get_all("link").iter().count(), 2);
        assert!(relayed.get(header::SERVER).is_none());
    }

    #[test]
    fn only_paths_that_mean_themselves_are_forwarded() {
        for ok in [
            "/api/ai/search/passages",
            "/api/search/a.b/..c/x..",
            "/api/ai/%2e%2ex",
        ] {
            assert!(stays_under_its_route(ok), "{ok}");
        }
        for escape in [
            "/api/ai/../../admin",
            "/api/ai/./x",
            "/api/ai/%2e%2E/%2e%2e/v1/models",
            "/api/ai/.%2e/x",
            "/api/search/..%2f..%2fadmin",
            "/api/search/x%5C..",
            "/api/ai/..",
        ] {
            assert!(!stays_under_its_route(escape), "{escape}");
        }
    }
}
