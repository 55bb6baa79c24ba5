//! Prometheus metrics with the contract's names (CONTRACT.md section 7).
//!
//! One registry per application instance (no globals), so several instances in one test
//! process keep separate counts. Labels are bounded: routes are matched templates, never raw
//! paths.

use std::borrow::Cow;
use std::cell::{RefCell, RefMut};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use thread_local::ThreadLocal;

/// A label value: the contract's fixed names are borrowed, never allocated per call.
type Label = Cow<'static, str>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: Label,
    method: Label,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    kind: Label,
    event: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabel {
    upstream: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FallbackLabels {
    route: Label,
    source: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabel {
    class: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: Label,
    result: Label,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Each thread's handles to the series that every request records into, found by a short
/// scan instead of a family lookup per call: a family takes its lock (shared by all threads,
/// so its cache line travels between cores on every request) and hashes the labels with
/// SipHash. Bounded like the labels themselves: matched routes, methods, statuses, upstreams.
type SeriesCache<K, M> = ThreadLocal<RefCell<Vec<(K, M)>>>;

/// This thread's handles to the series that `matches` picks out of `cache`; `make` looks the
/// series up in the registry (creating it) the first time this thread records into it.
fn thread_series<'a, K: Send, M: Send>(
    cache: &'a SeriesCache<K, M>,
    matches: impl Fn(&K) -> bool,
    make: impl FnOnce() -> (K, M),
) -> RefMut<'a, M> {
    let mut series = cache.get_or_default().borrow_mut();
    let at = match series.iter().position(|(key, _)| matches(key)) {
        Some(at) => at,
        None => {
            series.push(make());
            series.len() - 1
        }
    };
    RefMut::map(series, |series| &mut series[at].1)
}

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

struct Inner {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily<RouteLabel>,
    sse_active: Family<KindLabel, Gauge>,
    sse_events: Family<EventLabels, Counter>,
    breaker_state: Family<UpstreamLabel, Gauge>,
    breaker_rejections: Family<UpstreamLabel, Counter>,
    fallbacks: Family<FallbackLabels, Counter>,
    rate_limited: Family<ClassLabel, Counter>,
    rate_limiter_fallbacks: Counter,
    cache_requests: Family<CacheLabels, Counter>,
    upstream_duration: HistogramFamily<UpstreamLabel>,
    time_to_first_token: Histogram,
    pubsub_channels: Gauge,
    redis_up: Gauge,
    /// `(route, method, status)` → duration and request count.
    route_series: SeriesCache<(Label, &'static str, u16), (Histogram, Counter)>,
    /// upstream → call duration.
    upstream_series: SeriesCache<Label, Histogram>,
}

/// The application's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every family under the `sluice_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sluice");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by matched route",
            http_requests.clone(),
        );
        let http_duration: HistogramFamily<RouteLabel> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to response headers by matched route",
            http_duration.clone(),
        );
        let sse_active = Family::<KindLabel, Gauge>::default();
        registry.register(
            "sse_streams_active",
            "Open SSE streams by kind",
            sse_active.clone(),
        );
        let sse_events = Family::<EventLabels, Counter>::default();
        registry.register(
            "sse_events",
            "SSE events sent by kind and event",
            sse_events.clone(),
        );
        let breaker_state = Family::<UpstreamLabel, Gauge>::default();
        registry.register(
            "breaker_state",
            "Circuit breaker state: 0 closed, 1 open, 2 half-open",
            breaker_state.clone(),
        );
        let breaker_rejections = Family::<UpstreamLabel, Counter>::default();
        registry.register(
            "breaker_rejections",
            "Calls rejected by an open breaker",
            breaker_rejections.clone(),
        );
        let fallbacks = Family::<FallbackLabels, Counter>::default();
        registry.register(
            "fallbacks",
            "Responses served from a fallback",
            fallbacks.clone(),
        );
        let rate_limited = Family::<ClassLabel, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused by a rate limit",
            rate_limited.clone(),
        );
        let rate_limiter_fallbacks = Counter::default();
        registry.register(
            "rate_limiter_local_fallbacks",
            "Rate-limit checks done locally because Redis was unreachable",
            rate_limiter_fallbacks.clone(),
        );
        let cache_requests = Family::<CacheLabels, Counter>::default();
        registry.register(
            "cache_requests",
            "Cache lookups by result",
            cache_requests.clone(),
        );
        let upstream_duration: HistogramFamily<UpstreamLabel> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "upstream_request_duration_seconds",
            "AI service call duration by upstream",
            upstream_duration.clone(),
        );
        let time_to_first_token = latency_histogram();
        registry.register(
            "time_to_first_token_seconds",
            "Time from request to the first streamed token",
            time_to_first_token.clone(),
        );
        let pubsub_channels = Gauge::default();
        registry.register(
            "pubsub_channels",
            "Progress channels with local listeners",
            pubsub_channels.clone(),
        );
        let redis_up = Gauge::default();
        registry.register(
            "redis_up",
            "1 when Redis is configured and reachable",
            redis_up.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                http_requests,
                http_duration,
                sse_active,
                sse_events,
                breaker_state,
                breaker_rejections,
                fallbacks,
                rate_limited,
                rate_limiter_fallbacks,
                cache_requests,
                upstream_duration,
                time_to_first_token,
                pubsub_channels,
                redis_up,
                route_series: ThreadLocal::new(),
                upstream_series: ThreadLocal::new(),
            }),
        }
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.inner.registry).is_err() {
            tracing::error!("failed to encode metrics");
        }
        out
    }

    /// One finished HTTP request; `route` is the matched route template.
    pub fn http_request(&self, route: &str, method: &'static str, status: u16, elapsed: Duration) {
        let inner = &*self.inner;
        let handles = thread_series(
            &inner.route_series,
            |(r, m, s)| *s == status && *m == method && r == route,
            || {
                let route: Label = Cow::Owned(route.to_owned());
                let duration = inner.http_duration.get_or_create(&RouteLabel {
                    route: route.clone(),
                });
                let requests = inner.http_requests.get_or_create(&HttpLabels {
                    route: route.clone(),
                    method: Cow::Borrowed(method),
                    status,
                });
                (
                    (route, method, status),
                    (duration.clone(), requests.clone()),
                )
            },
        );
        let (duration, requests) = &*handles;
        duration.observe(elapsed.as_secs_f64());
        requests.inc();
    }

    /// Counts an open stream of `kind` until the guard drops.
    pub fn sse_stream(&self, kind: &'static str) -> StreamGauge {
        let gauge = self
            .inner
            .sse_active
            .get_or_create(&KindLabel { kind: kind.into() })
            .clone();
        gauge.inc();
        StreamGauge { gauge }
    }

    /// One SSE event sent.
    pub fn sse_event(&self, kind: impl Into<Label>, event: impl Into<Label>) {
        self.sse_event_counter(kind, event).inc();
    }

    /// The counter of one kind of SSE event, for a stream to hold: a relay counts every token
    /// and this saves a labelled lookup (a hash and a shared lock) per token.
    pub fn sse_event_counter(&self, kind: impl Into<Label>, event: impl Into<Label>) -> Counter {
        self.inner
            .sse_events
            .get_or_create(&EventLabels {
                kind: kind.into(),
                event: event.into(),
            })
            .clone()
    }

    /// A breaker's current state (0 closed, 1 open, 2 half-open).
    pub fn breaker_state(&self, upstream: impl Into<Label>, value: i64) {
        self.inner
            .breaker_state
            .get_or_create(&UpstreamLabel {
                upstream: upstream.into(),
            })
            .set(value);
    }

    /// A call refused by an open breaker.
    pub fn breaker_rejection(&self, upstream: impl Into<Label>) {
        self.inner
            .breaker_rejections
            .get_or_create(&UpstreamLabel {
                upstream: upstream.into(),
            })
            .inc();
    }

    /// A response served from a fallback source.
    pub fn fallback(&self, route: impl Into<Label>, source: impl Into<Label>) {
        self.inner
            .fallbacks
            .get_or_create(&FallbackLabels {
                route: route.into(),
                source: source.into(),
            })
            .inc();
    }

    /// A request refused by a rate limit.
    pub fn rate_limited(&self, class: impl Into<Label>) {
        self.inner
            .rate_limited
            .get_or_create(&ClassLabel {
                class: class.into(),
            })
            .inc();
    }

    /// A rate-limit check done locally because Redis failed.
    pub fn rate_limiter_fallback(&self) {
        self.inner.rate_limiter_fallbacks.inc();
    }

    /// A cache lookup (`result` is `hit` or `miss`).
    pub fn cache(&self, cache: impl Into<Label>, result: impl Into<Label>) {
        self.inner
            .cache_requests
            .get_or_create(&CacheLabels {
                cache: cache.into(),
                result: result.into(),
            })
            .inc();
    }

    /// One AI service call's duration.
    pub fn upstream_duration(&self, upstream: impl Into<Label>, elapsed: Duration) {
        let upstream = upstream.into();
        let inner = &*self.inner;
        let histogram = thread_series(
            &inner.upstream_series,
            |u| *u == upstream,
            || {
                let label = UpstreamLabel {
                    upstream: upstream.clone(),
                };
                let histogram = inner.upstream_duration.get_or_create(&label).clone();
                (upstream.clone(), histogram)
            },
        );
        histogram.observe(elapsed.as_secs_f64());
    }

    /// Time from request to first token.
    pub fn time_to_first_token(&self, elapsed: Duration) {
        self.inner
            .time_to_first_token
            .observe(elapsed.as_secs_f64());
    }

    /// Channels with local listeners.
    pub fn pubsub_channels(&self, count: usize) {
        self.inner.pubsub_channels.set(count as i64);
    }

    /// Redis reachability.
    pub fn redis_up(&self, up: bool) {
        self.inner.redis_up.set(i64::from(up));
    }
}

/// Decrements the active-stream gauge when the stream ends, however it ends.
pub struct StreamGauge {
    gauge: Gauge,
}

impl Drop for StreamGauge {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
    }

    /// Each thread keeps its own handles, and they all record into the one series of the
    /// registry: requests made on two threads are counted together, and a new status (or
    /// route, or upstream) is a series of its own.
    #[test]
    fn every_threads_requests_land_in_the_same_series() {
        let mut metrics = Metrics::new();
        let ms = Duration::from_millis(1);
        // Both threads live until both have recorded: a thread's slot is reused once it exits.
        let both_recorded = std::sync::Barrier::new(2);
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    for _ in 0..3 {
                        metrics.http_request("/api/x/{id}", "GET", 200, ms);
                        metrics.upstream_duration("chat", ms);
                    }
                    metrics.http_request("/api/x/{id}", "GET", 404, ms);
                    both_recorded.wait();
                });
            }
        });
        // This thread has recorded nothing; the two that did kept their own handles.
        assert!(metrics.inner.route_series.get().is_none());
        let inner = Arc::get_mut(&mut metrics.inner).unwrap();
        let kept: Vec<usize> = inner
            .route_series
            .iter_mut()
            .map(|series| series.get_mut().len())
            .collect();
        assert_eq!(kept, [2, 2], "each thread: the 200 and the 404 series");
        let text = metrics.encode();
        let ok = r#"sluice_http_requests_total{route="/api/x/{id}",method="GET",status="200"}"#;
        assert_eq!(line(&text, ok), format!("{ok} 6"));
        let missing =
            r#"sluice_http_requests_total{route="/api/x/{id}",method="GET",status="404"}"#;
        assert_eq!(line(&text, missing), format!("{missing} 2"));
        let count = r#"sluice_http_request_duration_seconds_count{route="/api/x/{id}"}"#;
        assert_eq!(line(&text, count), format!("{count} 8"));
        let upstream = r#"sluice_upstream_request_duration_seconds_count{upstream="chat"}"#;
        assert_eq!(line(&text, upstream), format!("{upstream} 6"));
    }
}
