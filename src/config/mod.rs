//! Typed settings, read once at start-up.
//!
//! Layering is defaults < TOML file (`--config` or `SLUICE_CONFIG`) < environment. Every value
//! is parsed here; a bad one stops start-up with one line naming the variable.

mod parse;
mod secret;
mod source;

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

pub use secret::Secret;
pub use source::RawConfig;

use parse::Parser;

/// A configuration problem, always tied to the variable that caused it.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {variable}: {message}")]
pub struct ConfigError {
    /// The contract name of the offending variable (`BIND_ADDR`, …).
    pub variable: String,
    /// What is wrong with it, without echoing secret values.
    pub message: String,
}

impl ConfigError {
    /// Creates an error for `variable`.
    pub fn new(variable: &str, message: impl Into<String>) -> Self {
        Self {
            variable: variable.to_string(),
            message: message.into(),
        }
    }
}

/// Where the database lives; the URL scheme picks the driver.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `sqlite://…` or `postgres://…`; may contain a password.
    pub url: Secret<String>,
    /// `DATABASE_MAX_CONNECTIONS`: pool size (default per back end, see `Store`).
    pub max_connections: Option<u32>,
}

/// How user JWTs are verified (at most one key source is used: secret, PEM file, JWKS).
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// HS256 shared secret.
    pub secret: Option<Secret<String>>,
    /// PEM public key for RS*/PS*/ES*/EdDSA.
    pub public_key_file: Option<PathBuf>,
    /// JWKS endpoint for rotating keys.
    pub jwks_url: Option<url::Url>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp`/`nbf`.
    pub leeway: Duration,
    /// Shortest interval between two JWKS fetches.
    pub jwks_min_refetch: Duration,
}

impl JwtSettings {
    /// Whether any real verification key is configured (dev login defaults off then).
    pub fn has_key(&self) -> bool {
        self.secret.is_some() || self.public_key_file.is_some() || self.jwks_url.is_some()
    }
}

/// Token-bucket style limits; see CONTRACT.md section 2.
#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    /// General class: sustained requests per second per client.
    pub per_second: u32,
    /// General class: burst size.
    pub burst: u32,
    /// AI-costly class: sustained requests per minute per user.
    pub ai_per_minute: u32,
    /// AI-costly class: burst size.
    pub ai_burst: u32,
    /// Concurrent open SSE streams per user.
    pub max_streams_per_user: usize,
    /// Take the client IP from `X-Forwarded-For` (only behind a trusted load balancer).
    pub trust_forwarded_for: bool,
}

/// Circuit breaker tuning shared by every upstream operation.
#[derive(Debug, Clone)]
pub struct BreakerSettings {
    /// Calls in the sliding window.
    pub window: usize,
    /// Failure percentage of a full window that opens the breaker.
    pub failure_rate_percent: u8,
    /// Time open before half-open.
    pub open_for: Duration,
    /// Trial calls admitted half-open.
    pub half_open_calls: usize,
}

/// How sluice reaches the AI service.
#[derive(Debug, Clone)]
pub struct AiSettings {
    /// The real AI service; `None` runs the simulator in-process.
    pub service_url: Option<url::Url>,
    /// Bearer token for calls to the AI service and for its callbacks to us.
    pub api_key: Secret<String>,
    /// OpenAI-compatible fallbacks, tried in order.
    pub fallback_urls: Vec<url::Url>,
    /// Whole-call timeout for ordinary calls; time to first byte for streams.
    pub upstream_timeout: Duration,
    /// Longest gap between upstream stream chunks.
    pub stream_idle_timeout: Duration,
    /// Longest silence while a conversation is generating.
    pub generation_timeout: Duration,
    /// Passage search cache lifetime.
    pub search_cache_ttl: Duration,
}

/// The in-process simulated AI service (used when `AI_SERVICE_URL` is unset).
#[derive(Debug, Clone)]
pub struct SimulatorSettings {
    /// `MOCK_TOKENS`: tokens per streamed answer.
    pub tokens: usize,
    /// `MOCK_TOKEN_DELAY_MS`: gap between tokens.
    pub token_delay: Duration,
    /// `MOCK_STAGE_DELAY_MS`: gap between generation stages.
    pub stage_delay: Duration,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, for terminals.
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

impl LogFormat {
    /// `LOG_FORMAT` alone, for commands that need no other setting (`sluice mock-ai`).
    pub fn from_env() -> Result<Self, ConfigError> {
        Parser::new(&RawConfig::load(None)?).log_format("LOG_FORMAT")
    }
}

/// Every setting of the gateway, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address.
    pub bind_addr: SocketAddr,
    /// Database location.
    pub database: DatabaseSettings,
    /// Shared Redis; `None` keeps bus, cache and limiter in-process.
    pub redis_url: Option<Secret<String>>,
    /// AI service access.
    pub ai: AiSettings,
    /// JWT verification.
    pub jwt: JwtSettings,
    /// Cookie that may carry the JWT.
    pub auth_cookie_name: String,
    /// Whether `POST /api/auth/dev-login` exists.
    pub dev_login: bool,
    /// Cross-origin callers allowed (exact origins).
    pub cors_allowed_origins: Vec<String>,
    /// Rate limits and stream caps.
    pub rate_limits: RateLimitSettings,
    /// Circuit breaker tuning.
    pub breaker: BreakerSettings,
    /// Comment line interval on idle SSE streams.
    pub sse_keepalive: Duration,
    /// Drain time for open streams on shutdown.
    pub shutdown_grace: Duration,
    /// Event-loop threads serving connections (`TOKIO_WORKER_THREADS`, tokio's own variable,
    /// which also sizes the runtime of everything else; default: one per core).
    pub worker_threads: NonZeroUsize,
    /// Log format.
    pub log_format: LogFormat,
    /// Directory of the built demo frontend served at `/`.
    pub frontend_dir: PathBuf,
    /// The in-process AI simulator's behaviour.
    pub simulator: SimulatorSettings,
}

impl Settings {
    /// Loads from the TOML file (if any) and the environment.
    pub fn load(config_file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let file = config_file
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("SLUICE_CONFIG").map(PathBuf::from));
        Self::from_source(&RawConfig::load(file.as_deref())?)
    }

    /// Parses layered raw values; the single place where configuration gets its types.
    pub fn from_source(raw: &RawConfig) -> Result<Self, ConfigError> {
        let p = Parser::new(raw);
        let bind_addr: SocketAddr = p.parse_or("BIND_ADDR", "127.0.0.1:8080".parse().ok())?;

        let jwt = JwtSettings {
            secret: p.secret("JWT_SECRET"),
            public_key_file: p.string("JWT_PUBLIC_KEY_FILE").map(PathBuf::from),
            jwks_url: p.url("JWT_JWKS_URL")?,
            issuer: p.string("JWT_ISSUER"),
            audience: p.string("JWT_AUDIENCE"),
            leeway: p.secs("JWT_LEEWAY_SECS", 30)?,
            jwks_min_refetch: p.secs("JWT_JWKS_MIN_REFETCH_SECS", 30)?,
        };
        let key_sources = [
            jwt.secret.is_some(),
            jwt.public_key_file.is_some(),
            jwt.jwks_url.is_some(),
        ];
        if key_sources.iter().filter(|set| **set).count() > 1 {
            return Err(ConfigError::new(
                "JWT_SECRET",
                "set only one of JWT_SECRET, JWT_PUBLIC_KEY_FILE, JWT_JWKS_URL",
            ));
        }
        if let Some(secret) = &jwt.secret
            && secret.expose().len() < 16
        {
            return Err(ConfigError::new("JWT_SECRET", "must be at least 16 bytes"));
        }
        let dev_login_default = !jwt.has_key() && bind_addr.ip().is_loopback();
        let dev_login = p.bool("DEV_LOGIN", dev_login_default)?;
        if dev_login && (jwt.public_key_file.is_some() || jwt.jwks_url.is_some()) {
            return Err(ConfigError::new(
                "DEV_LOGIN",
                "dev login signs HS256 tokens; it cannot be on with a public key or JWKS",
            ));
        }

        let api_key = match p.secret("AI_API_KEY") {
            Some(key) => key,
            None => Secret::new(random_token()),
        };

        let settings = Settings {
            bind_addr,
            database: DatabaseSettings {
                url: Secret::new(
                    p.string("DATABASE_URL")
                        .unwrap_or_else(|| "sqlite://sluice.db?mode=rwc".to_string()),
                ),
                max_connections: match p.string("DATABASE_MAX_CONNECTIONS") {
                    Some(_) => Some(p.positive("DATABASE_MAX_CONNECTIONS", 1)?),
                    None => None,
                },
            },
            redis_url: p.secret("REDIS_URL"),
            ai: AiSettings {
                service_url: p.url("AI_SERVICE_URL")?,
                api_key,
                fallback_urls: p.url_list("AI_FALLBACK_URLS")?,
                upstream_timeout: p.millis("UPSTREAM_TIMEOUT_MS", 10_000)?,
                stream_idle_timeout: p.millis("STREAM_IDLE_TIMEOUT_MS", 30_000)?,
                generation_timeout: p.secs("GENERATION_TIMEOUT_SECS", 300)?,
                search_cache_ttl: p.secs("SEARCH_CACHE_TTL_SECS", 600)?,
            },
            jwt,
            auth_cookie_name: p
                .string("AUTH_COOKIE_NAME")
                .unwrap_or_else(|| "sluice_token".to_string()),
            dev_login,
            cors_allowed_origins: p.origin_list("CORS_ALLOWED_ORIGINS")?,
            rate_limits: RateLimitSettings {
                per_second: p.positive("RATE_LIMIT_PER_SECOND", 100)?,
                burst: p.positive("RATE_LIMIT_BURST", 200)?,
                ai_per_minute: p.positive("AI_RATE_LIMIT_PER_MINUTE", 30)?,
                ai_burst: p.positive("AI_RATE_LIMIT_BURST", 10)?,
                max_streams_per_user: p.positive("MAX_STREAMS_PER_USER", 8)? as usize,
                trust_forwarded_for: p.bool("TRUST_FORWARDED_FOR", false)?,
            },
            breaker: BreakerSettings {
                window: p.positive("BREAKER_WINDOW", 10)? as usize,
                failure_rate_percent: p.percent("BREAKER_FAILURE_RATE", 50)?,
                open_for: p.secs("BREAKER_OPEN_SECS", 30)?,
                half_open_calls: p.positive("BREAKER_HALF_OPEN_CALLS", 5)? as usize,
            },
            sse_keepalive: p.secs("SSE_KEEPALIVE_SECS", 15)?,
            shutdown_grace: p.secs("SHUTDOWN_GRACE_SECS", 20)?,
            worker_threads: worker_threads(&p)?,
            log_format: p.log_format("LOG_FORMAT")?,
            frontend_dir: p
                .string("FRONTEND_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("frontend-demo/dist")),
            simulator: SimulatorSettings {
                tokens: p.positive("MOCK_TOKENS", 20)? as usize,
                token_delay: Duration::from_millis(p.parse_or("MOCK_TOKEN_DELAY_MS", Some(20))?),
                stage_delay: Duration::from_millis(p.parse_or("MOCK_STAGE_DELAY_MS", Some(500))?),
            },
        };
        if settings.sse_keepalive.is_zero() {
            return Err(ConfigError::new("SSE_KEEPALIVE_SECS", "must be at least 1"));
        }
        Ok(settings)
    }
}

/// `TOKIO_WORKER_THREADS`, else the number of cores.
fn worker_threads(p: &Parser<'_>) -> Result<NonZeroUsize, ConfigError> {
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let count = p.positive(
        "TOKIO_WORKER_THREADS",
        u32::try_from(cores).unwrap_or(u32::MAX),
    )?;
    Ok(NonZeroUsize::new(count as usize).unwrap_or(NonZeroUsize::MIN))
}

/// A random URL-safe token (used for the per-start AI API key and dev signing secret).
pub fn random_token() -> String {
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
