//! Errors are problem+json with a request id; bodies over 1 MiB get 413; bad JSON names the
//! field; no secret reaches a response or a log line.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::helpers::{TEST_SECRET, assert_problem, spawn_app};

#[tokio::test]
async fn oversized_body_is_413() {
    let app = spawn_app(&[]).await;
    let big = format!("{{\"username\":\"{}\"}}", "a".repeat(1024 * 1024 + 10));
    let response = app
        .client
        .post(app.at("/api/auth/dev-login"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_problem(response, 413, "payload_too_large").await;
}

#[tokio::test]
async fn bad_json_names_the_field() {
    let app = spawn_app(&[]).await;
    for (body, field) in [
        (json!({"username": 5}).to_string(), "username"),
        (json!({}).to_string(), "username"),
        (json!({"username": ""}).to_string(), "username"),
        ("{not json".to_string(), "body"),
    ] {
        let response = app
            .client
            .post(app.at("/api/auth/dev-login"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 400, "validation_failed").await;
        assert!(
            problem["detail"].as_str().unwrap().contains(field),
            "{body}: {problem}"
        );
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
        assert!(problem["errors"][0]["message"].is_string());
    }
}

#[tokio::test]
async fn request_id_is_kept_from_the_caller_or_created() {
    let app = spawn_app(&[]).await;
    let response = app
        .client
        .get(app.at("/health"))
        .header("x-request-id", "caller-chosen-id")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers().get("x-request-id").unwrap(),
        "caller-chosen-id"
    );
    let response = app.client.get(app.at("/api/me")).send().await.unwrap();
    let generated = response
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(!generated.is_empty());
    let body = assert_problem(response, 401, "unauthorized").await;
    assert_eq!(body["request_id"], generated);
}

#[tokio::test]
async fn unknown_api_route_is_problem_404_and_security_headers_are_set() {
    let app = spawn_app(&[]).await;
    let response = app.client.get(app.at("/api/nope")).send().await.unwrap();
    assert_eq!(
        response.headers().get("x-content-type-options").unwrap(),
        "nosniff"
    );
    assert_eq!(response.headers().get("x-frame-options").unwrap(), "DENY");
    assert!(response.headers().get("referrer-policy").is_some());
    assert_problem(response, 404, "not_found").await;
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Sends this process's JSON log lines at `filter` here. nextest runs each test in its own
    /// process, so the global subscriber sees only that test.
    fn install(filter: &str) -> Self {
        let captured = Self::default();
        let writer = captured.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .json()
            .with_writer(move || writer.clone())
            .try_init();
        captured
    }
}

#[tokio::test]
async fn no_secret_in_responses_or_logs() {
    let captured = Captured::install("trace");

    let db_password = "pg-password-hunter2";
    let app = spawn_app(&[("AI_API_KEY", "ai-api-key-hunter3")]).await;
    let token = app.login("dave").await;
    let bad_token = format!("{token}x");
    let mut bodies = String::new();
    for request in [
        app.client.get(app.at("/api/me")).bearer_auth(&token),
        app.client.get(app.at("/api/me")).bearer_auth(&bad_token),
        app.client
            .get(app.at("/api/me"))
            .header("cookie", format!("sluice_token={bad_token}")),
        app.client.get(app.at("/health/readiness")),
        app.client.get(app.at("/metrics")),
    ] {
        let response = request.send().await.unwrap();
        bodies.push_str(&format!("{:?}", response.headers()));
        bodies.push_str(&response.text().await.unwrap());
    }
    // A database URL with a password that cannot connect: the start-up error must not show it.
    let err =
        sluice::store::Store::connect(&format!("postgres://user:{db_password}@127.0.0.1:1/db"))
            .await
            .unwrap_err();
    tracing::error!(error = %err, "expected failure");
    app.stop().await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("request"), "logs were captured");
    for secret in [
        TEST_SECRET,
        "ai-api-key-hunter3",
        token.as_str(),
        db_password,
    ] {
        assert!(
            !bodies.contains(secret),
            "secret {secret:.8}… in a response"
        );
        assert!(!logs.contains(secret), "secret {secret:.8}… in logs");
    }
}

/// The shared middleware wraps the router from outside, where the matched route is not yet
/// known; the route is recorded on the request span from inside. Log lines must still name it.
#[tokio::test]
async fn request_log_lines_name_the_matched_route_and_request_id() {
    let captured = Captured::install("info,tower_http=debug");

    let app = spawn_app(&[]).await;
    let token = app.login("erin").await;
    let response = app
        .client
        .get(app.at("/api/scenarios/00000000-0000-7000-8000-000000000000"))
        .bearer_auth(&token)
        .header("x-request-id", "trace-me-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    app.stop().await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let finished = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| {
            line["fields"]["message"] == "finished processing request"
                && line["span"]["request_id"] == "trace-me-1"
        })
        .unwrap_or_else(|| panic!("no finished-request line for trace-me-1 in:\n{logs}"));
    assert_eq!(finished["span"]["route"], "/api/scenarios/{id}");
    assert_eq!(finished["span"]["method"], "GET");
}
