#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    Settings::from_source(&RawConfig::from_pairs(pairs.iter().copied()))
}

#[test]
fn defaults_follow_the_contract() {
    let s = settings(&[]).unwrap();
    assert_eq!(s.bind_addr.to_string(), "127.0.0.1:8080");
    assert_eq!(s.database.url.expose(), "sqlite://sluice.db?mode=rwc");
    assert!(s.redis_url.is_none());
    assert!(s.ai.service_url.is_none());
    assert!(
        s.dev_login,
        "dev login defaults on for loopback without keys"
    );
    assert_eq!(s.rate_limits.per_second, 100);
    assert_eq!(s.rate_limits.burst, 200);
    assert_eq!(s.rate_limits.ai_per_minute, 30);
    assert_eq!(s.rate_limits.ai_burst, 10);
    assert_eq!(s.rate_limits.max_streams_per_user, 8);
    assert_eq!(s.breaker.window, 10);
    assert_eq!(s.breaker.failure_rate_percent, 50);
    assert_eq!(s.breaker.open_for, Duration::from_secs(30));
    assert_eq!(s.breaker.half_open_calls, 5);
    assert_eq!(s.ai.upstream_timeout, Duration::from_millis(10_000));
    assert_eq!(s.ai.stream_idle_timeout, Duration::from_millis(30_000));
    assert_eq!(s.sse_keepalive, Duration::from_secs(15));
    assert_eq!(s.shutdown_grace, Duration::from_secs(20));
    assert_eq!(
        Some(s.worker_threads),
        std::thread::available_parallelism().ok(),
        "one event-loop thread per core"
    );
    assert_eq!(s.auth_cookie_name, "sluice_token");
    assert_eq!(
        s.ai.api_key.expose().len(),
        64,
        "a random API key per start"
    );
}

#[test]
fn worker_threads_follow_tokios_variable() {
    let s = settings(&[("TOKIO_WORKER_THREADS", "3")]).unwrap();
    assert_eq!(s.worker_threads.get(), 3);
}

#[test]
fn dev_login_defaults_off_with_a_key_or_a_public_bind() {
    let with_key = settings(&[("JWT_SECRET", "0123456789abcdef0123")]).unwrap();
    assert!(!with_key.dev_login);
    let public = settings(&[("BIND_ADDR", "0.0.0.0:8080")]).unwrap();
    assert!(!public.dev_login);
    let forced = settings(&[("BIND_ADDR", "0.0.0.0:8080"), ("DEV_LOGIN", "true")]).unwrap();
    assert!(forced.dev_login);
}

#[test]
fn errors_name_the_variable() {
    for (key, value) in [
        ("BIND_ADDR", "nonsense"),
        ("RATE_LIMIT_BURST", "-1"),
        ("RATE_LIMIT_PER_SECOND", "0"),
        ("BREAKER_FAILURE_RATE", "101"),
        ("DEV_LOGIN", "maybe"),
        ("AI_SERVICE_URL", "ftp://x"),
        ("LOG_FORMAT", "xml"),
        ("JWT_SECRET", "short"),
        ("TOKIO_WORKER_THREADS", "0"),
    ] {
        let err = settings(&[(key, value)]).unwrap_err();
        assert_eq!(err.variable, key, "{err}");
        assert!(err.to_string().contains(key));
    }
}

#[test]
fn url_errors_do_not_echo_the_value() {
    let err = settings(&[(
        "AI_FALLBACK_URLS",
        "http://ok, not a url with password hunter2",
    )])
    .unwrap_err();
    assert_eq!(err.variable, "AI_FALLBACK_URLS");
    assert!(!err.to_string().contains("hunter2"));
}

#[test]
fn toml_file_is_overridden_by_environment_pairs() {
    let dir = std::env::temp_dir().join(format!("sluice-config-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sluice.toml");
    std::fs::write(
        &path,
        "bind_addr = \"127.0.0.1:9999\"\nrate_limit_burst = 7\ncors_allowed_origins = [\"http://a.test\", \"https://b.test\"]\n",
    )
    .unwrap();
    let raw = RawConfig::layered(
        Some(&path),
        [("RATE_LIMIT_BURST".to_string(), "9".to_string())],
    )
    .unwrap();
    let s = Settings::from_source(&raw).unwrap();
    assert_eq!(s.bind_addr.port(), 9999);
    assert_eq!(s.rate_limits.burst, 9);
    assert_eq!(
        s.cors_allowed_origins,
        vec!["http://a.test", "https://b.test"]
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn secrets_stay_out_of_debug() {
    let s = settings(&[
        ("JWT_SECRET", "super-secret-value-123"),
        ("DATABASE_URL", "postgres://u:pw-hunter2@localhost/db"),
    ])
    .unwrap();
    let debug = format!("{s:?}");
    assert!(!debug.contains("super-secret-value-123"));
    assert!(!debug.contains("hunter2"));
}
