//! Building and running the gateway: `Application::build` wires every component from
//! settings and binds the listener (port 0 in tests); `run_until_stopped` serves until the
//! shutdown token fires, then drains.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::FromRef;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{AuthState, Authenticator, OriginPolicy, TokenMinter};
use crate::cache::{MemoryCache, RedisCache, SharedCache};
use crate::config::{ConfigError, Settings, random_token};
use crate::domain::scenarios::Scenarios;
use crate::events::{EventBus, LocalBus, RedisBus};
use crate::http::rate_limit::RateLimitState;
use crate::http::server::{Listeners, serve};
use crate::http::shards::Shards;
use crate::http::sse::StreamsEnd;
use crate::limits::{Quotas, RateLimiter, RedisLimiter, StreamSlots};
use crate::metrics::Metrics;
use crate::redis_link::RedisLink;
use crate::router;
use crate::sim::{MockAiConfig, MockAiHandle};
use crate::store::{Store, StoreError};
use crate::upstream::{AiService, BreakerConfig, UpstreamClient, UpstreamConfig};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The in-process AI simulator or the upstream client could not start.
    #[error("AI service: {0}")]
    Ai(String),
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// The listen address could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// Address tried.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// Everything handlers share: one `Arc`, so the per-request clones that axum's extractors
/// and middleware make cost one atomic increment (profiling showed cloning the fields one by
/// one among the top costs of a proxied request).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The components behind [`AppState`].
pub struct Shared {
    /// Validated settings.
    pub settings: Arc<Settings>,
    /// The database.
    pub store: Store,
    /// Token verification and CSRF policy.
    pub auth: AuthState,
    /// Signs dev-login tokens; `None` when dev login is off.
    pub minter: Option<TokenMinter>,
    /// Rate limiting.
    pub limits: RateLimitState,
    /// Per-user stream cap.
    pub streams: StreamSlots,
    /// Metrics registry.
    pub metrics: Metrics,
    /// Progress pub/sub: Redis when configured, else in-process.
    pub bus: Arc<dyn EventBus>,
    /// Shared Redis command connection, when configured.
    pub redis: Option<RedisLink>,
    /// The AI service behind its breakers.
    pub ai: AiService,
    /// Search and passthrough cache (memory or Redis).
    pub cache: SharedCache,
    /// Scenario operations.
    pub scenarios: Scenarios,
    /// The in-process simulator, when no `AI_SERVICE_URL` is configured.
    pub simulator: Option<Arc<MockAiHandle>>,
    /// Fires on shutdown; background work stops when it does.
    pub shutdown: CancellationToken,
    /// Fired as shutdown begins: open SSE streams end.
    pub streams_end: StreamsEnd,
    /// Background tasks to wait for on shutdown.
    pub tasks: TaskTracker,
}

impl FromRef<AppState> for AuthState {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

impl FromRef<AppState> for RateLimitState {
    fn from_ref(state: &AppState) -> Self {
        state.limits.clone()
    }
}

impl FromRef<AppState> for Metrics {
    fn from_ref(state: &AppState) -> Self {
        state.metrics.clone()
    }
}

/// A built, bound, not yet serving gateway.
pub struct Application {
    listeners: Listeners,
    state: AppState,
}

impl Application {
    /// Connects, migrates and binds. Redis being down is not fatal (readiness reports it).
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let listeners = Listeners::bind(settings.bind_addr, settings.worker_threads)
            .await
            .map_err(|source| StartupError::Bind {
                addr: settings.bind_addr,
                source,
            })?;
        let store = Store::connect_with(
            settings.database.url.expose(),
            settings.database.max_connections,
        )
        .await?;
        store.migrate().await?;

        let metrics = Metrics::new();
        let redis = match &settings.redis_url {
            Some(url) => Some(
                RedisLink::new(url.expose())
                    .map_err(|_| ConfigError::new("REDIS_URL", "not a valid Redis URL"))?,
            ),
            None => None,
        };
        metrics.redis_up(false);
        let bus: Arc<dyn EventBus> = match &settings.redis_url {
            Some(url) => Arc::new(
                RedisBus::connect(url.expose())
                    .await
                    .map_err(|_| ConfigError::new("REDIS_URL", "not a valid Redis URL"))?,
            ),
            None => Arc::new(LocalBus::new()),
        };

        let dev_secret = match &settings.jwt.secret {
            Some(secret) => secret.expose().clone(),
            None => random_token(),
        };
        let authenticator = Authenticator::from_settings(&settings.jwt, dev_secret.as_bytes())?;
        let minter = settings.dev_login.then(|| {
            TokenMinter::new(
                dev_secret.as_bytes(),
                settings.jwt.issuer.clone(),
                settings.jwt.audience.clone(),
            )
        });
        let auth = AuthState {
            authenticator,
            cookie_name: settings.auth_cookie_name.as_str().into(),
            origins: Arc::new(OriginPolicy::new(settings.cors_allowed_origins.clone())),
        };

        let limiter = RateLimiter::new(
            Quotas::from_settings(&settings.rate_limits),
            redis.clone().map(RedisLimiter::new),
            metrics.clone(),
        );
        let limits = RateLimitState::new(
            limiter,
            metrics.clone(),
            settings.rate_limits.trust_forwarded_for,
        );

        let (ai_base, simulator) = match &settings.ai.service_url {
            Some(url) => (url.clone(), None),
            None => {
                let handle = start_simulator(&settings, listeners.local_addr()).await?;
                let url =
                    url::Url::parse(&handle.url()).map_err(|e| StartupError::Ai(e.to_string()))?;
                (url, Some(Arc::new(handle)))
            }
        };
        let client = UpstreamClient::new(UpstreamConfig::new(
            settings.ai.api_key.expose().clone(),
            settings.ai.upstream_timeout,
            settings.ai.stream_idle_timeout,
        ))
        .map_err(|e| StartupError::Ai(e.to_string()))?;
        let breaker = BreakerConfig {
            window: settings.breaker.window,
            failure_rate_percent: settings.breaker.failure_rate_percent,
            open_for: settings.breaker.open_for,
            half_open_calls: settings.breaker.half_open_calls,
        };
        let ai = AiService::new(
            client,
            ai_base,
            &settings.ai.fallback_urls,
            breaker,
            metrics.clone(),
        );
        let cache: SharedCache = match &redis {
            Some(link) => Arc::new(RedisCache::new(link.clone())),
            None => Arc::new(MemoryCache::new(10_000)),
        };
        let scenarios = Scenarios::new(
            store.clone(),
            ai.clone(),
            cache.clone(),
            settings.ai.search_cache_ttl,
            metrics.clone(),
        );

        let state = AppState(Arc::new(Shared {
            ai,
            cache,
            scenarios,
            simulator,
            streams: StreamSlots::new(settings.rate_limits.max_streams_per_user),
            settings: Arc::new(settings),
            store,
            auth,
            minter,
            limits,
            metrics,
            bus,
            redis,
            shutdown: CancellationToken::new(),
            streams_end: StreamsEnd::default(),
            tasks: TaskTracker::new(),
        }));
        Ok(Self { listeners, state })
    }

    /// The bound address (tests bind port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listeners.local_addr()
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// Cancel this token to stop the server gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// The shared state (tests reach the store through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until the shutdown token fires, then stops accepting, lets streams end and
    /// waits at most `SHUTDOWN_GRACE_SECS` for connections to drain.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Self { listeners, state } = self;
        spawn_background(&state);
        let shutdown = state.shutdown.clone();
        let streams_end = state.streams_end.clone();
        let grace = state.settings.shutdown_grace;
        let tasks = state.tasks.clone();
        let store = state.store.clone();
        let bus = state.bus.clone();
        let shards = Arc::new(Shards::start(state.settings.worker_threads)?);
        let app = router::router(state);
        tracing::info!(addr = %listeners.local_addr(), threads = shards.len(), "sluice listening");
        let server = tokio::spawn(serve(listeners, app, shutdown.clone(), &shards));
        shutdown.cancelled().await;
        streams_end.fire();
        tracing::info!(
            grace_secs = grace.as_secs(),
            "shutting down; draining connections"
        );
        tasks.close();
        let mut server = server;
        let drained = tokio::time::timeout(grace, async {
            let _ = (&mut server).await;
            tasks.wait().await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!("grace period over; closing remaining connections");
            server.abort();
            let _ = server.await;
        }
        bus.shutdown().await;
        store.close().await;
        // Last, since database and Redis connections opened from a shard are driven by its
        // runtime; stopping the shards drops any connection still open.
        if let Some(shards) = Arc::into_inner(shards) {
            shards.stop().await;
        }
        Ok(())
    }
}

/// Starts the simulated AI service on a loopback port, calling back to this gateway.
async fn start_simulator(
    settings: &Settings,
    gateway_addr: SocketAddr,
) -> Result<MockAiHandle, StartupError> {
    let host = if gateway_addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        gateway_addr.ip().to_string()
    };
    let listener = crate::sim::listen(SocketAddr::from(([127, 0, 0, 1], 0)))
        .map_err(|e| StartupError::Ai(e.to_string()))?;
    let config = MockAiConfig {
        bind: listener
            .local_addr()
            .map_err(|e| StartupError::Ai(e.to_string()))?,
        redis_url: settings.redis_url.as_ref().map(|u| u.expose().clone()),
        gateway_url: Some(format!("http://{host}:{}", gateway_addr.port())),
        api_key: settings.ai.api_key.expose().clone(),
        tokens: settings.simulator.tokens,
        token_delay: settings.simulator.token_delay,
        stage_delay: settings.simulator.stage_delay,
    };
    crate::sim::spawn(listener, config)
        .await
        .map_err(|e| StartupError::Ai(e.to_string()))
}

/// Periodic housekeeping: limiter sweeps and the Redis gauge.
fn spawn_background(state: &AppState) {
    let local = state.limits.limiter().local();
    let shutdown = state.shutdown.clone();
    state.tasks.spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => local.sweep(),
            }
        }
    });
    if let Some(redis) = state.redis.clone() {
        let metrics = state.metrics.clone();
        let shutdown = state.shutdown.clone();
        state.tasks.spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => metrics.redis_up(redis.ping().await),
                }
            }
        });
    }
}

impl AppState {
    /// The worst state among the AI breakers, for readiness: open, then half_open, then closed.
    pub fn ai_breaker_state(&self) -> &'static str {
        self.ai.worst_state().as_str()
    }
}
