//! The one pooled HTTP client for every upstream call, so that connections are reused and
//! every call gets the same headers, timeouts and error sorting.
//!
//! Timeouts go by phase, never one over a whole stream: connecting is bounded by
//! [`CONNECT_TIMEOUT`] (or the call timeout when shorter); an ordinary call by the call timeout
//! from start to parsed body; a stream by the call timeout to its first body chunk and then by
//! the idle timeout between chunks (see [`ByteStream`]).

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, Stream, StreamExt};
use http::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, HeaderName, HeaderValue, USER_AGENT,
};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use url::Url;

use super::base_url::BaseUrl;
use super::byte_stream::{ByteStream, StreamTimeouts};
use super::error::{STATUS_BODY_LOG_LIMIT, UpstreamError};
use super::transport::{RequestBody, Resend, StreamBody, Transport, empty_body, full_body};

/// Longest time spent opening a connection, whatever the call timeout: long enough for three
/// retransmitted SYNs (at 1, 3 and 7 s), which is how an AI service whose accept queue is
/// full answers a burst of new streams; at 2 s, 584 connections of a burst of 9,000 stream
/// starts timed out and opened the breaker, which failed 2,689 streams. A refused connection
/// still fails at once.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default cap on a non-streamed response body.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_USER_ID: HeaderName = HeaderName::from_static("x-user-id");
const SLUICE_USER_AGENT: HeaderValue =
    HeaderValue::from_static(concat!("sluice/", env!("CARGO_PKG_VERSION")));

/// Settings of the upstream client, taken from `AI_API_KEY`, `UPSTREAM_TIMEOUT_MS` and
/// `STREAM_IDLE_TIMEOUT_MS`.
#[derive(Clone)]
pub struct UpstreamConfig {
    /// Bearer token sent to the AI service on every call.
    pub api_key: String,
    /// Whole-call timeout for ordinary calls; time to first byte for streams.
    pub call_timeout: Duration,
    /// Longest gap between two chunks of a streamed body.
    pub stream_idle_timeout: Duration,
    /// Largest non-streamed body accepted.
    pub max_body_bytes: usize,
}

impl UpstreamConfig {
    /// Settings with the default body cap.
    pub fn new(
        api_key: impl Into<String>,
        call_timeout: Duration,
        stream_idle_timeout: Duration,
    ) -> Self {
        Self {
            api_key: api_key.into(),
            call_timeout,
            stream_idle_timeout,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

impl fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamConfig")
            .field("api_key", &"[redacted]")
            .field("call_timeout", &self.call_timeout)
            .field("stream_idle_timeout", &self.stream_idle_timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

/// The body of a request given to [`UpstreamClient::send`]. Bytes in hand go out with their
/// head in one write and the answer is read by the calling task ([`Transport::exchange`]):
/// no connection task to wake per call, about a tenth fewer instructions per proxied JSON
/// call. A body still arriving from the browser is streamed on through hyper's client.
pub enum OutgoingBody {
    /// The whole body (empty for none).
    Whole(Bytes),
    /// A body sent as it arrives.
    Streamed(RequestBody),
}

/// Who a call is made for: forwarded as `X-Request-Id` and `X-User-Id` so the AI service can
/// correlate its logs with ours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallContext {
    /// The gateway request's id (none outside a request).
    pub request_id: Option<HeaderValue>,
    /// The authenticated user (`sub`), if any.
    pub user_id: Option<String>,
}

/// The shared upstream client. Cloning is cheap and clones share the connection pool.
#[derive(Clone)]
pub struct UpstreamClient {
    http: Transport,
    authorization: HeaderValue,
    call_timeout: Duration,
    idle_timeout: Duration,
    max_body_bytes: usize,
}

impl fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("call_timeout", &self.call_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl UpstreamClient {
    /// Builds the pooled client. Fails only if the API key is not a valid header value.
    pub fn new(config: UpstreamConfig) -> Result<Self, UpstreamError> {
        let mut authorization = HeaderValue::try_from(format!("Bearer {}", config.api_key))
            .map_err(|_| UpstreamError::Request("the API key is not a valid header value"))?;
        authorization.set_sensitive(true);
        let http = Transport::new(config.call_timeout.min(CONNECT_TIMEOUT));
        Ok(Self {
            http,
            authorization,
            call_timeout: config.call_timeout,
            idle_timeout: config.stream_idle_timeout,
            max_body_bytes: config.max_body_bytes,
        })
    }

    /// The whole-call budget of one ordinary call (also the deadline helper for retries).
    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    /// The limits every stream from this client gets.
    pub fn stream_timeouts(&self) -> StreamTimeouts {
        StreamTimeouts {
            first_byte: self.call_timeout,
            idle: self.idle_timeout,
        }
    }

    /// `GET base + path`, expecting a 2xx JSON answer.
    pub async fn get_json<R: DeserializeOwned>(
        &self,
        base: &BaseUrl,
        path: &str,
        ctx: &CallContext,
    ) -> Result<R, UpstreamError> {
        let request = self.request(Method::GET, base, path, None, "application/json", ctx)?;
        self.call_json(request).await
    }

    /// `POST base + path` with a JSON body, expecting a 2xx JSON answer.
    pub async fn post_json<T: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        base: &BaseUrl,
        path: &str,
        body: &T,
        ctx: &CallContext,
    ) -> Result<R, UpstreamError> {
        let body = json_body(body)?;
        let request = self.request(
            Method::POST,
            base,
            path,
            Some(body),
            "application/json",
            ctx,
        )?;
        self.call_json(request).await
    }

    /// `POST base + path` with a JSON body, expecting any 2xx (e.g. a `202 Accepted` with no
    /// useful body). Returns the status.
    pub async fn post_for_status<T: Serialize + ?Sized>(
        &self,
        base: &BaseUrl,
        path: &str,
        body: &T,
        ctx: &CallContext,
    ) -> Result<u16, UpstreamError> {
        let body = json_body(body)?;
        let request = self.request(Method::POST, base, path, Some(body), "*/*", ctx)?;
        let deadline = Instant::now() + self.call_timeout;
        self.within(deadline, async {
            let response = self.execute(request).await?;
            let response = error_for_status(response).await?;
            Ok(response.status().as_u16())
        })
        .await
    }

    /// `POST base + path` with a JSON body, expecting a 2xx streamed answer (SSE).
    ///
    /// Returns once the response headers are in; the body then follows the stream timeouts.
    /// Drop the stream to cancel the call.
    pub async fn post_stream<T: Serialize + ?Sized>(
        &self,
        base: &BaseUrl,
        path: &str,
        body: &T,
        ctx: &CallContext,
    ) -> Result<ByteStream, UpstreamError> {
        let started = Instant::now();
        let body = json_body(body)?;
        let request = self.request_with(
            Method::POST,
            base,
            path,
            body,
            true,
            "text/event-stream",
            ctx,
        )?;
        let body = self
            .within(started + self.call_timeout, async {
                // A chat start is the gateway's own call, not one it relays: sent again when
                // a reused connection gave nothing back, the upstream most likely never saw
                // it, and a failed start would fail the user's message.
                let response = self
                    .http
                    .exchange(request, Resend::IfUnanswered)
                    .await
                    .map_err(UpstreamError::from_client)?;
                let status = response.status();
                if status.is_success() {
                    Ok(response.into_body())
                } else {
                    Err(status_error(status, response.into_body()).await)
                }
            })
            .await?;
        Ok(ByteStream::new(body, started, self.stream_timeouts()))
    }

    /// Sends a request built by the caller (the passthrough proxy, which also sets `Host` from
    /// [`BaseUrl::host`]) with our headers and the call timeout up to the response headers.
    /// Any status is returned as is; the body is not read (see
    /// [`UpstreamClient::body_stream`]).
    ///
    /// `Authorization`, `X-Request-Id` and `X-User-Id` are replaced, so neither a browser's
    /// token nor a forged user id reaches the AI service. Hop-by-hop headers and cookies are
    /// the caller's to strip. Take `Instant::now()` before the call and pass it to
    /// [`UpstreamClient::body_stream`] so the first-byte budget covers the whole call.
    pub async fn send(
        &self,
        request: Request<OutgoingBody>,
        ctx: &CallContext,
    ) -> Result<Response<StreamBody>, UpstreamError> {
        let (mut parts, body) = request.into_parts();
        self.apply_context(&mut parts.headers, ctx);
        let deadline = Instant::now() + self.call_timeout;
        self.within(deadline, async {
            match body {
                OutgoingBody::Whole(bytes) => {
                    let resend = Resend::relaying(&parts.method);
                    self.http
                        .exchange(Request::from_parts(parts, bytes), resend)
                        .await
                        .map_err(UpstreamError::from_client)
                }
                OutgoingBody::Streamed(body) => {
                    // Boxed for the same reason as `Transport::exchange` boxes its TLS call.
                    let response = Box::pin(self.execute(Request::from_parts(parts, body))).await?;
                    Ok(response.map(StreamBody::Pooled))
                }
            }
        })
        .await
    }

    /// The body of a response as chunks, with the stream timeouts counted from `call_started`.
    pub fn body_stream(&self, response: Response<StreamBody>, call_started: Instant) -> ByteStream {
        ByteStream::new(response.into_body(), call_started, self.stream_timeouts())
    }

    fn request(
        &self,
        method: Method,
        base: &BaseUrl,
        path: &str,
        body: Option<Bytes>,
        accept: &'static str,
        ctx: &CallContext,
    ) -> Result<Request<RequestBody>, UpstreamError> {
        let has_body = body.is_some();
        let body = body.map_or_else(empty_body, full_body);
        self.request_with(method, base, path, body, has_body, accept, ctx)
    }

    /// A request with our headers; `has_body` says whether it carries JSON.
    #[allow(clippy::too_many_arguments)]
    fn request_with<B>(
        &self,
        method: Method,
        base: &BaseUrl,
        path: &str,
        body: B,
        has_body: bool,
        accept: &'static str,
        ctx: &CallContext,
    ) -> Result<Request<B>, UpstreamError> {
        let mut request = Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = base.endpoint(path)?;
        let headers = request.headers_mut();
        if let Some(host) = base.host() {
            headers.insert(HOST, host.clone());
        }
        headers.insert(ACCEPT, HeaderValue::from_static(accept));
        if has_body {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        self.apply_context(request.headers_mut(), ctx);
        Ok(request)
    }

    fn apply_context(&self, headers: &mut HeaderMap, ctx: &CallContext) {
        headers.insert(AUTHORIZATION, self.authorization.clone());
        headers.insert(USER_AGENT, SLUICE_USER_AGENT);
        // `insert` replaces every value the caller's headers had; what is not inserted is
        // removed.
        match &ctx.request_id {
            Some(value) => {
                headers.insert(X_REQUEST_ID, value.clone());
            }
            None => {
                headers.remove(&X_REQUEST_ID);
            }
        }
        match ctx.user_id.as_deref().map(HeaderValue::try_from) {
            Some(Ok(value)) => {
                headers.insert(X_USER_ID, value);
            }
            Some(Err(_)) => {
                headers.remove(&X_USER_ID);
                tracing::warn!("user id is not a valid header value; not forwarded");
            }
            None => {
                headers.remove(&X_USER_ID);
            }
        }
    }

    async fn execute(
        &self,
        request: Request<RequestBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        self.http
            .request(request)
            .await
            .map_err(UpstreamError::from_client)
    }

    async fn call_json<R: DeserializeOwned>(
        &self,
        request: Request<RequestBody>,
    ) -> Result<R, UpstreamError> {
        let deadline = Instant::now() + self.call_timeout;
        self.within(deadline, async {
            let response = error_for_status(self.execute(request).await?).await?;
            let body = read_body(response, self.max_body_bytes).await?;
            serde_json::from_slice(&body).map_err(|err| UpstreamError::Malformed {
                detail: err.to_string(),
            })
        })
        .await
    }

    /// Runs `call` until `deadline`, turning the deadline into [`UpstreamError::Timeout`].
    ///
    /// Not an `async fn`: one would keep `call` twice in its state (as the argument, and
    /// inside the timeout), doubling the size of every call's future, which each layer above
    /// copies when it moves it.
    fn within<T>(
        &self,
        deadline: Instant,
        call: impl Future<Output = Result<T, UpstreamError>>,
    ) -> impl Future<Output = Result<T, UpstreamError>> {
        let limit = self.call_timeout;
        tokio::time::timeout_at(deadline, call)
            .map(move |outcome| outcome.unwrap_or(Err(UpstreamError::Timeout(limit))))
    }
}

/// `host:port` of an upstream, for metric labels and logs: never the scheme's credentials or
/// the path.
pub fn host_port(url: &Url) -> String {
    let host = url.host_str().unwrap_or("unknown");
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

fn json_body<T: Serialize + ?Sized>(body: &T) -> Result<Bytes, UpstreamError> {
    serde_json::to_vec(body)
        .map(Bytes::from)
        .map_err(|_| UpstreamError::Request("the request body could not be serialised"))
}

/// Passes a 2xx response through; turns any other into [`UpstreamError::Status`], keeping the
/// start of its body for the logs.
async fn error_for_status(
    response: Response<Incoming>,
) -> Result<Response<Incoming>, UpstreamError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response
        .into_body()
        .into_data_stream()
        .map(|chunk| chunk.map_err(UpstreamError::from_body));
    Err(status_error(status, body).await)
}

/// The [`UpstreamError::Status`] for a non-2xx answer, with the start of its body.
async fn status_error(
    status: StatusCode,
    body: impl Stream<Item = Result<Bytes, UpstreamError>>,
) -> UpstreamError {
    let mut body = std::pin::pin!(body);
    let mut kept = Vec::new();
    while kept.len() < STATUS_BODY_LOG_LIMIT {
        match body.next().await {
            Some(Ok(chunk)) => kept.extend_from_slice(&chunk),
            Some(Err(_)) | None => break,
        }
    }
    UpstreamError::status_with_body(status.as_u16(), &kept)
}

async fn read_body(response: Response<Incoming>, limit: usize) -> Result<Bytes, UpstreamError> {
    match Limited::new(response.into_body(), limit).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(err) if err.is::<LengthLimitError>() => Err(UpstreamError::TooLarge {
            what: "body",
            limit,
        }),
        Err(err) => Err(UpstreamError::Stream(Some(err))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn host_port_never_shows_credentials_or_path() {
        let url = Url::parse("https://user:pw@api.example.com/v1?key=k").unwrap();
        assert_eq!(host_port(&url), "api.example.com:443");
    }

    #[test]
    fn debug_output_hides_the_api_key() {
        let config = UpstreamConfig::new(
            "sk-very-secret",
            Duration::from_secs(1),
            Duration::from_secs(1),
        );
        assert!(!format!("{config:?}").contains("sk-very-secret"));
        let client = UpstreamClient::new(config).unwrap();
        assert!(!format!("{client:?}").contains("sk-very-secret"));
    }

    #[test]
    fn call_futures_can_run_in_axum_handlers() {
        fn assert_send<T: Send>(_: T) {}
        let config = UpstreamConfig::new("k", Duration::from_secs(1), Duration::from_secs(1));
        let client = UpstreamClient::new(config).unwrap();
        let base = BaseUrl::new(Url::parse("http://127.0.0.1:9").unwrap());
        let (body, ctx) = (serde_json::json!({}), CallContext::default());
        assert_send(client.get_json::<serde_json::Value>(&base, "/", &ctx));
        assert_send(client.post_json::<_, serde_json::Value>(&base, "/", &body, &ctx));
        assert_send(client.post_for_status(&base, "/", &body, &ctx));
        assert_send(client.post_stream(&base, "/", &body, &ctx));
        let mut request = Request::new(OutgoingBody::Whole(Bytes::new()));
        *request.uri_mut() = base.endpoint("/").unwrap();
        assert_send(client.send(request, &ctx));
    }

    /// Every layer above moves a call's future (and axum copies the handler's into a box),
    /// so its size is paid per call in `memcpy`: the timeout must not keep the call twice
    /// (an `async fn` would) and rare branches (TLS, streamed bodies) stay boxed. It was
    /// 4,128 bytes in a release build before, 1,528 after.
    #[test]
    fn a_proxied_calls_future_stays_small() {
        let config = UpstreamConfig::new("k", Duration::from_secs(1), Duration::from_secs(1));
        let client = UpstreamClient::new(config).unwrap();
        let base = BaseUrl::new(Url::parse("http://127.0.0.1:9").unwrap());
        let mut request = Request::new(OutgoingBody::Whole(Bytes::new()));
        *request.uri_mut() = base.endpoint("/").unwrap();
        let ctx = CallContext::default();
        let call = client.send(request, &ctx);
        let size = std::mem::size_of_val(&call);
        assert!(size <= 2048, "{size} bytes");
    }

    #[test]
    fn an_api_key_that_cannot_be_a_header_is_refused() {
        let config =
            UpstreamConfig::new("bad\nkey", Duration::from_secs(1), Duration::from_secs(1));
        assert!(matches!(
            UpstreamClient::new(config),
            Err(UpstreamError::Request(_))
        ));
    }
}
