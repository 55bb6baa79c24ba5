//! Spawning the gateway as users reach it: on a random port, with its own database.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sluice::config::{RawConfig, Settings};
use sluice::{AppState, Application};
use tokio_util::sync::CancellationToken;

/// The HS256 secret the test apps use unless a test overrides it.
pub const TEST_SECRET: &str = "test-secret-0123456789-abcdef";

/// Which SQL back end a test app uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// A fresh SQLite file in a temp dir.
    Sqlite,
    /// A fresh database on the local PostgreSQL.
    Postgres,
}

/// A plain connection to the Redis at `url`, for a test to publish or inspect directly.
pub async fn redis_connection(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis")
}

/// A fresh database URL for `db`.
pub async fn fresh_database(db: Db) -> String {
    match db {
        Db::Sqlite => {
            let dir = temp_dir("db");
            format!("sqlite://{}?mode=rwc", dir.join("sluice.db").display())
        }
        Db::Postgres => {
            let name = format!("sluice_test_{}", uuid::Uuid::new_v4().simple());
            let admin = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&admin_url())
                .await
                .expect("local PostgreSQL on 127.0.0.1:5432");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&admin)
                .await
                .expect("create test database");
            admin.close().await;
            let base = admin_url();
            let server = base
                .rsplit_once('/')
                .map(|(server, _)| server)
                .unwrap_or(&base);
            format!("{server}/{name}")
        }
    }
}

/// The PostgreSQL test server (`TEST_POSTGRES_URL`, default the local `test` database).
fn admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A unique temporary directory.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-{tag}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A running gateway.
pub struct TestApp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// Shared state (store, metrics) for assertions.
    pub state: AppState,
    /// A plain client (no cookie store, no redirects).
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    handle: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// Settings for a test app: SQLite, test secret, dev login, plus `overrides`.
pub async fn settings(db: Db, overrides: &[(&str, &str)]) -> Settings {
    let database = fresh_database(db).await;
    let mut pairs: Vec<(String, String)> = vec![
        ("BIND_ADDR".into(), "127.0.0.1:0".into()),
        ("DATABASE_URL".into(), database),
        ("JWT_SECRET".into(), TEST_SECRET.into()),
        ("DEV_LOGIN".into(), "true".into()),
        ("LOG_FORMAT".into(), "json".into()),
        ("SHUTDOWN_GRACE_SECS".into(), "2".into()),
    ];
    for (k, v) in overrides {
        pairs.retain(|(key, _)| key != k);
        pairs.push((k.to_string(), v.to_string()));
    }
    Settings::from_source(&RawConfig::from_pairs(pairs)).expect("valid test settings")
}

/// Spawns a gateway on SQLite with `overrides`.
pub async fn spawn_app(overrides: &[(&str, &str)]) -> TestApp {
    spawn_with(settings(Db::Sqlite, overrides).await).await
}

/// Spawns a gateway on the given back end with `overrides`.
pub async fn spawn_app_on(db: Db, overrides: &[(&str, &str)]) -> TestApp {
    spawn_with(settings(db, overrides).await).await
}

/// Spawns a gateway from complete settings.
pub async fn spawn_with(settings: Settings) -> TestApp {
    let app = Application::build(settings).await.expect("app builds");
    let addr = app.local_addr();
    let state = app.state().clone();
    let shutdown = app.shutdown_token();
    let handle = tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    TestApp {
        addr,
        url: format!("http://{addr}"),
        state,
        client,
        shutdown,
        handle: Some(handle),
    }
}

impl TestApp {
    /// `url` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// The Prometheus exposition of `GET /metrics`.
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(self.at("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// A dev-login token for `user`.
    pub async fn login(&self, user: &str) -> String {
        let response = self
            .client
            .post(self.at("/api/auth/dev-login"))
            .json(&serde_json::json!({"username": user}))
            .send()
            .await
            .expect("dev login request");
        assert_eq!(response.status(), 200, "dev login");
        let body: serde_json::Value = response.json().await.expect("json");
        body["access_token"].as_str().expect("token").to_string()
    }

    /// `GET path` as `token`, the body as JSON (for reads whose status the test does not check).
    pub async fn get_json(&self, path: &str, token: &str) -> serde_json::Value {
        self.client
            .get(self.at(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET request")
            .json()
            .await
            .expect("JSON body")
    }

    /// A token signed with the test secret.
    pub fn token(&self, sub: &str) -> String {
        mint_hs256(
            TEST_SECRET,
            &serde_json::json!({"sub": sub, "exp": now() + 3600}),
        )
    }

    /// Starts a graceful shutdown (as SIGTERM does) without waiting.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Waits until the server has stopped.
    pub async fn wait_stopped(&mut self, within: Duration) -> bool {
        match self.handle.take() {
            Some(handle) => tokio::time::timeout(within, handle).await.is_ok(),
            None => true,
        }
    }

    /// Stops the app and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), handle).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Signs `claims` with HS256.
pub fn mint_hs256(secret: &str, claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

/// Path of a test fixture.
pub fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

/// Asserts the response is a problem+json with `code`, and returns the body.
pub async fn assert_problem(
    response: reqwest::Response,
    status: u16,
    code: &str,
) -> serde_json::Value {
    assert_eq!(response.status(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_eq!(content_type, "application/problem+json");
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body: serde_json::Value = response.json().await.expect("problem body");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    assert!(body["title"].is_string() && body["type"].is_string() && body["detail"].is_string());
    assert_eq!(
        body["request_id"], request_id,
        "request_id matches the header"
    );
    assert!(!request_id.is_empty());
    body
}
