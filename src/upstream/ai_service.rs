//! The AI service as sluice uses it: typed calls, each behind its own breaker, timed in
//! metrics. Routes and domain code call these methods and never build URLs themselves.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use url::Url;

use super::base_url::BaseUrl;
use super::breaker::{BreakerConfig, BreakerObserver, BreakerState, CircuitBreaker, Permit};
use super::byte_stream::ByteStream;
use super::client::{CallContext, UpstreamClient, host_port};
use super::error::UpstreamError;
use super::retry::{CallError, RetryPolicy, guarded, retry};
use crate::metrics::Metrics;

/// `POST /api/ai/search/passages` body.
#[derive(Debug, Clone, Serialize)]
pub struct PassageQuery {
    /// What to look for.
    pub query: String,
    /// In which novel.
    pub novel_id: String,
    /// How many passages.
    pub top_k: u32,
}

/// One passage found.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Passage {
    /// Passage id.
    pub id: String,
    /// Text.
    #[serde(default)]
    pub content: String,
    /// Vector distance.
    #[serde(default)]
    pub distance: f64,
}

/// The search answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Passages {
    /// Ids in rank order.
    pub passage_ids: Vec<String>,
    /// Details.
    #[serde(default)]
    pub passages: Vec<Passage>,
}

/// One message of chat history sent upstream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HistoryMessage {
    /// `user` or `assistant`.
    pub role: String,
    /// Text.
    pub content: String,
}

/// The body of a chat call, serialised straight from what the caller holds: building a
/// `serde_json::Value` first copied up to 20 messages of history into a map per call (a fifth
/// of a stream start's CPU).
#[derive(Serialize)]
struct ChatRequest<'a> {
    content: &'a str,
    history: &'a [HistoryMessage],
}

/// An OpenAI-compatible upstream (the primary or a fallback) with its own breaker.
#[derive(Clone)]
pub struct OpenAiUpstream {
    /// Base URL (`/v1/...` is appended).
    pub base: BaseUrl,
    /// Its breaker (`openai:<host:port>`).
    pub breaker: CircuitBreaker,
}

struct Inner {
    client: UpstreamClient,
    base: BaseUrl,
    search: CircuitBreaker,
    generate: CircuitBreaker,
    chat: CircuitBreaker,
    passthrough: CircuitBreaker,
    openai: Vec<OpenAiUpstream>,
    metrics: Metrics,
}

/// Handle to the AI service. Cheap to clone.
#[derive(Clone)]
pub struct AiService {
    inner: Arc<Inner>,
}

impl AiService {
    /// Builds breakers for every upstream operation; `fallbacks` are OpenAI-compatible URLs
    /// tried after the primary.
    pub fn new(
        client: UpstreamClient,
        base: Url,
        fallbacks: &[Url],
        config: BreakerConfig,
        metrics: Metrics,
    ) -> Self {
        let observer: BreakerObserver = {
            let metrics = metrics.clone();
            Arc::new(move |name: &str, state: BreakerState| {
                metrics.breaker_state(name.to_owned(), state.gauge());
            })
        };
        let breaker = |name: String| {
            metrics.breaker_state(name.clone(), BreakerState::Closed.gauge());
            CircuitBreaker::new(name, config.clone()).with_observer(observer.clone())
        };
        let mut openai = Vec::new();
        for url in std::iter::once(&base).chain(fallbacks) {
            openai.push(OpenAiUpstream {
                base: BaseUrl::new(url.clone()),
                breaker: breaker(format!("openai:{}", host_port(url))),
            });
        }
        Self {
            inner: Arc::new(Inner {
                search: breaker("search".into()),
                generate: breaker("generate".into()),
                chat: breaker("chat".into()),
                passthrough: breaker("passthrough".into()),
                openai,
                client,
                base: BaseUrl::new(base),
                metrics,
            }),
        }
    }

    /// The pooled client (for the passthrough proxy and the OpenAI route).
    pub fn client(&self) -> &UpstreamClient {
        &self.inner.client
    }

    /// The AI service's base URL.
    pub fn base(&self) -> &BaseUrl {
        &self.inner.base
    }

    /// The passthrough breaker.
    pub fn passthrough_breaker(&self) -> &CircuitBreaker {
        &self.inner.passthrough
    }

    /// The OpenAI-compatible upstreams, primary first.
    pub fn openai_upstreams(&self) -> &[OpenAiUpstream] {
        &self.inner.openai
    }

    /// Every breaker, for readiness and metrics.
    pub fn breakers(&self) -> Vec<&CircuitBreaker> {
        let i = &self.inner;
        let mut all = vec![&i.search, &i.generate, &i.chat, &i.passthrough];
        all.extend(i.openai.iter().map(|u| &u.breaker));
        all
    }

    /// The worst breaker state: open, then half-open, then closed.
    pub fn worst_state(&self) -> BreakerState {
        let states: Vec<BreakerState> = self.breakers().iter().map(|b| b.state()).collect();
        if states.contains(&BreakerState::Open) {
            BreakerState::Open
        } else if states.contains(&BreakerState::HalfOpen) {
            BreakerState::HalfOpen
        } else {
            BreakerState::Closed
        }
    }

    /// Counts a rejection by an open breaker.
    pub fn note_rejection(&self, breaker: &CircuitBreaker) {
        self.inner.metrics.breaker_rejection(breaker.label());
    }

    /// Passage search: idempotent, so retried with backoff within the call budget.
    pub async fn search_passages(
        &self,
        query: &PassageQuery,
        ctx: &CallContext,
    ) -> Result<Passages, CallError> {
        let i = &self.inner;
        let started = Instant::now();
        let deadline = started + i.client.call_timeout();
        let policy = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(500),
        };
        let result = retry(&i.search, &policy, deadline, || {
            i.client
                .post_json(&i.base, "/api/ai/search/passages", query, ctx)
        })
        .await;
        self.observe("search", started, &result);
        result
    }

    /// Starts generation of a conversation (not retried: it is not idempotent).
    pub async fn generate(
        &self,
        conversation_id: &str,
        scenario_id: &str,
        ctx: &CallContext,
    ) -> Result<(), CallError> {
        let i = &self.inner;
        let started = Instant::now();
        let body =
            serde_json::json!({"conversation_id": conversation_id, "scenario_id": scenario_id});
        let result = guarded(&i.generate, async {
            let status = i
                .client
                .post_for_status(&i.base, "/api/ai/generate", &body, ctx)
                .await?;
            if (200..300).contains(&status) {
                Ok(())
            } else {
                Err(UpstreamError::Status {
                    status,
                    body: String::new(),
                })
            }
        })
        .await;
        self.observe("generate", started, &result);
        result
    }

    /// Opens the token stream of a chat answer. The permit stays with the caller, who
    /// records the outcome when the stream ends (a stream that dies midway is a failure).
    pub async fn chat_stream(
        &self,
        conversation_id: &str,
        content: &str,
        history: &[HistoryMessage],
        ctx: &CallContext,
    ) -> Result<(ByteStream, Permit), CallError> {
        let i = &self.inner;
        let permit = i
            .chat
            .acquire()
            .inspect_err(|_| self.note_rejection(&i.chat))?;
        let started = Instant::now();
        let body = ChatRequest { content, history };
        let path = format!("/api/ai/conversations/{conversation_id}/messages-stream");
        match i.client.post_stream(&i.base, &path, &body, ctx).await {
            Ok(stream) => {
                i.metrics.upstream_duration("chat", started.elapsed());
                Ok((stream, permit))
            }
            Err(err) => {
                if err.counts_as_failure() {
                    permit.failure();
                } else {
                    permit.success();
                }
                i.metrics.upstream_duration("chat", started.elapsed());
                Err(CallError::Upstream(err))
            }
        }
    }

    fn observe<T>(&self, upstream: &'static str, started: Instant, result: &Result<T, CallError>) {
        match result {
            Err(CallError::Rejected(_)) => self.inner.metrics.breaker_rejection(upstream),
            _ => self
                .inner
                .metrics
                .upstream_duration(upstream, started.elapsed()),
        }
    }
}
