//! Settings of the simulated AI service, read from the same variables `sluice mock-ai` documents.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use url::Url;

/// Where the mock listens unless `MOCK_BIND` says otherwise.
pub const DEFAULT_BIND: &str = "127.0.0.1:8090";
/// Tokens per streamed answer unless `MOCK_TOKENS` says otherwise.
pub const DEFAULT_TOKENS: usize = 20;
/// Pause between two streamed tokens unless `MOCK_TOKEN_DELAY_MS` says otherwise.
pub const DEFAULT_TOKEN_DELAY_MS: u64 = 20;
/// Pause between two generation stages unless `MOCK_STAGE_DELAY_MS` says otherwise.
pub const DEFAULT_STAGE_DELAY_MS: u64 = 500;
/// Upper bound on `MOCK_TOKENS`, so a typo cannot make every answer endless.
pub const MAX_TOKENS: usize = 100_000;

/// Everything the simulated AI service needs to behave like the real one.
///
/// Built by [`MockAiConfig::from_env`] for `sluice mock-ai`, or field by field when the gateway
/// runs the mock in-process. `Debug` hides the API key and any Redis password.
#[derive(Clone)]
pub struct MockAiConfig {
    /// Listen address used by [`crate::sim::run`] (`MOCK_BIND`); `spawn` takes a listener instead.
    pub bind: SocketAddr,
    /// `REDIS_URL`: progress is published there; when unset it is POSTed to the gateway.
    pub redis_url: Option<String>,
    /// `GATEWAY_URL`: base URL of the gateway, for the internal callbacks.
    pub gateway_url: Option<String>,
    /// `AI_API_KEY`: expected from callers and sent on callbacks.
    pub api_key: String,
    /// `MOCK_TOKENS`: tokens per streamed answer.
    pub tokens: usize,
    /// `MOCK_TOKEN_DELAY_MS`: pause before each streamed token.
    pub token_delay: Duration,
    /// `MOCK_STAGE_DELAY_MS`: pause before each generation progress stage.
    pub stage_delay: Duration,
}

/// A configuration variable with an unusable value; the message names the variable, never the
/// value (it may be a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {variable}: {reason}")]
pub struct SimConfigError {
    /// The environment variable at fault.
    pub variable: &'static str,
    /// Why its value was rejected.
    pub reason: String,
}

impl SimConfigError {
    fn new(variable: &'static str, reason: impl Into<String>) -> Self {
        Self {
            variable,
            reason: reason.into(),
        }
    }
}

const VARIABLES: [&str; 7] = [
    "MOCK_BIND",
    "REDIS_URL",
    "GATEWAY_URL",
    "AI_API_KEY",
    "MOCK_TOKENS",
    "MOCK_TOKEN_DELAY_MS",
    "MOCK_STAGE_DELAY_MS",
];

impl MockAiConfig {
    /// Reads the MOCK_* / REDIS_URL / GATEWAY_URL / AI_API_KEY variables; an invalid value is an
    /// error whose message names the variable.
    pub fn from_env() -> Result<Self, SimConfigError> {
        for variable in VARIABLES {
            if let Err(std::env::VarError::NotUnicode(_)) = std::env::var(variable) {
                return Err(SimConfigError::new(variable, "not valid UTF-8"));
            }
        }
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Same as [`MockAiConfig::from_env`] with any source of variables, so the parsing can be
    /// tested without touching the process environment. Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SimConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());

        let bind = get("MOCK_BIND")
            .unwrap_or_else(|| DEFAULT_BIND.to_owned())
            .trim()
            .parse::<SocketAddr>()
            .map_err(|_| {
                SimConfigError::new("MOCK_BIND", "expected HOST:PORT, e.g. 127.0.0.1:8090")
            })?;

        let redis_url = get("REDIS_URL")
            .map(|value| check_redis_url(&value).map(|()| value))
            .transpose()?;

        let gateway_url = get("GATEWAY_URL")
            .map(|value| check_gateway_url(&value).map(|()| value))
            .transpose()?;

        let api_key = get("AI_API_KEY").ok_or_else(|| {
            SimConfigError::new("AI_API_KEY", "must be set to the key the gateway sends")
        })?;

        let tokens = match get("MOCK_TOKENS") {
            None => DEFAULT_TOKENS,
            Some(value) => value
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|tokens| (1..=MAX_TOKENS).contains(tokens))
                .ok_or_else(|| {
                    SimConfigError::new(
                        "MOCK_TOKENS",
                        format!("expected a whole number from 1 to {MAX_TOKENS}"),
                    )
                })?,
        };

        let token_delay = millis(&get, "MOCK_TOKEN_DELAY_MS", DEFAULT_TOKEN_DELAY_MS)?;
        let stage_delay = millis(&get, "MOCK_STAGE_DELAY_MS", DEFAULT_STAGE_DELAY_MS)?;

        Ok(Self {
            bind,
            redis_url,
            gateway_url,
            api_key,
            tokens,
            token_delay,
            stage_delay,
        })
    }
}

fn millis(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: u64,
) -> Result<Duration, SimConfigError> {
    match get(variable) {
        None => Ok(Duration::from_millis(default)),
        Some(value) => value
            .trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| SimConfigError::new(variable, "expected a whole number of milliseconds")),
    }
}

fn check_redis_url(value: &str) -> Result<(), SimConfigError> {
    let url = Url::parse(value).map_err(|_| SimConfigError::new("REDIS_URL", "not a valid URL"))?;
    match url.scheme() {
        "redis" | "rediss" | "redis+unix" | "unix" => Ok(()),
        _ => Err(SimConfigError::new(
            "REDIS_URL",
            "expected a redis:// or rediss:// URL",
        )),
    }
}

fn check_gateway_url(value: &str) -> Result<(), SimConfigError> {
    let url =
        Url::parse(value).map_err(|_| SimConfigError::new("GATEWAY_URL", "not a valid URL"))?;
    match url.scheme() {
        "http" | "https" if url.has_host() => Ok(()),
        _ => Err(SimConfigError::new(
            "GATEWAY_URL",
            "expected an http:// or https:// URL",
        )),
    }
}

/// Shows a URL without its password, so a Redis URL can appear in `Debug` output.
fn without_password(value: &str) -> String {
    match Url::parse(value) {
        Ok(mut url) => {
            if url.password().is_some() {
                // Only fails for URLs that cannot carry credentials, which then have none.
                let _ = url.set_password(Some("redacted"));
            }
            url.to_string()
        }
        Err(_) => "[unparsable]".to_owned(),
    }
}

impl fmt::Debug for MockAiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockAiConfig")
            .field("bind", &self.bind)
            .field(
                "redis_url",
                &self.redis_url.as_deref().map(without_password),
            )
            .field(
                "gateway_url",
                &self.gateway_url.as_deref().map(without_password),
            )
            .field("api_key", &"[redacted]")
            .field("tokens", &self.tokens)
            .field("token_delay", &self.token_delay)
            .field("stage_delay", &self.stage_delay)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::HashMap;

    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<MockAiConfig, SimConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        MockAiConfig::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_apply_when_only_the_key_is_set() {
        let config = parse(&[("AI_API_KEY", "k")]).unwrap();
        assert_eq!(config.bind, "127.0.0.1:8090".parse().unwrap());
        assert_eq!(config.redis_url, None);
        assert_eq!(config.gateway_url, None);
        assert_eq!(config.tokens, 20);
        assert_eq!(config.token_delay, Duration::from_millis(20));
        assert_eq!(config.stage_delay, Duration::from_millis(500));
    }

    #[test]
    fn every_variable_is_read() {
        let config = parse(&[
            ("AI_API_KEY", "k"),
            ("MOCK_BIND", "0.0.0.0:9000"),
            ("REDIS_URL", "redis://127.0.0.1:6379/0"),
            ("GATEWAY_URL", "http://127.0.0.1:8080"),
            ("MOCK_TOKENS", "3"),
            ("MOCK_TOKEN_DELAY_MS", "0"),
            ("MOCK_STAGE_DELAY_MS", "7"),
        ])
        .unwrap();
        assert_eq!(config.bind.port(), 9000);
        assert_eq!(
            config.redis_url.as_deref(),
            Some("redis://127.0.0.1:6379/0")
        );
        assert_eq!(config.gateway_url.as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(config.tokens, 3);
        assert_eq!(config.token_delay, Duration::ZERO);
        assert_eq!(config.stage_delay, Duration::from_millis(7));
    }

    #[test]
    fn invalid_values_name_their_variable() {
        let cases = [
            ("MOCK_BIND", "nope"),
            ("REDIS_URL", "http://x"),
            ("GATEWAY_URL", "ftp://x"),
            ("MOCK_TOKENS", "0"),
            ("MOCK_TOKENS", "many"),
            ("MOCK_TOKEN_DELAY_MS", "-1"),
            ("MOCK_STAGE_DELAY_MS", "1.5"),
        ];
        for (variable, value) in cases {
            let err = parse(&[("AI_API_KEY", "k"), (variable, value)]).unwrap_err();
            assert_eq!(err.variable, variable, "{value}");
            assert!(err.to_string().contains(variable));
        }
    }

    #[test]
    fn the_api_key_is_required() {
        let err = parse(&[]).unwrap_err();
        assert_eq!(err.variable, "AI_API_KEY");
    }

    #[test]
    fn debug_hides_the_key_and_redis_password() {
        let config = parse(&[
            ("AI_API_KEY", "sk-very-secret"),
            ("REDIS_URL", "redis://user:hunter2@127.0.0.1:6379"),
        ])
        .unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("sk-very-secret"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("127.0.0.1:6379"), "{shown}");
    }
}
