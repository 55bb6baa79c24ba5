//! Scenarios through the AI search: breaker, timeouts, fallbacks, cache, bad input.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app};

fn mock_url(app: &TestApp) -> String {
    app.state
        .simulator
        .as_ref()
        .expect("in-process simulator")
        .url()
}

async fn faults(app: &TestApp, body: Value) {
    let response = app
        .client
        .post(format!("{}/__mock/faults", mock_url(app)))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

async fn search_calls(app: &TestApp) -> u64 {
    let stats: Value = app
        .client
        .get(format!("{}/__mock/stats", mock_url(app)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stats["calls"]["search"].as_u64().unwrap()
}

async fn create(app: &TestApp, token: &str, novel: &str, description: &str) -> reqwest::Response {
    app.client
        .post(app.at("/api/scenarios"))
        .bearer_auth(token)
        .json(&json!({"novel_id": novel, "description": description}))
        .send()
        .await
        .unwrap()
}

async fn created(app: &TestApp, token: &str, novel: &str, description: &str) -> Value {
    let response = create(app, token, novel, description).await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

async fn metric(app: &TestApp, line_prefix: &str) -> Option<f64> {
    let text = app.metrics_text().await;
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

const BREAKER: [(&str, &str); 5] = [
    ("BREAKER_WINDOW", "4"),
    ("BREAKER_FAILURE_RATE", "50"),
    ("BREAKER_OPEN_SECS", "30"),
    ("AI_RATE_LIMIT_BURST", "1000"),
    ("AI_RATE_LIMIT_PER_MINUTE", "1000"),
];

#[tokio::test]
async fn failures_open_the_breaker_and_creation_still_succeeds_from_fallbacks() {
    let app = spawn_app(&BREAKER).await;
    let token = app.token("breaker-user");
    // A good result for the novel first: it becomes the fallback.
    let good = created(&app, &token, "moby", "the whale").await;
    assert_eq!(good["passages_source"], "ai");
    assert_eq!(good["passage_ids"].as_array().unwrap().len(), 5);

    faults(
        &app,
        json!({"mode": "error", "rate": 1.0, "routes": ["search"]}),
    )
    .await;
    // Retries count against the window: two creations fill it with failures.
    for n in 0..2 {
        let s = created(&app, &token, "moby", &format!("failing {n}")).await;
        assert_eq!(s["passages_source"], "fallback");
        assert_eq!(
            s["passage_ids"], good["passage_ids"],
            "last good result for the novel"
        );
    }
    assert_eq!(
        metric(&app, r#"sluice_breaker_state{upstream="search"}"#).await,
        Some(1.0)
    );
    let before = search_calls(&app).await;
    for n in 0..3 {
        let s = created(&app, &token, "moby", &format!("while open {n}")).await;
        assert_eq!(s["passages_source"], "fallback");
    }
    let empty = created(&app, &token, "unknown-novel", "nothing known").await;
    assert_eq!(empty["passages_source"], "fallback");
    assert_eq!(empty["passage_ids"], json!([]));
    assert_eq!(
        search_calls(&app).await,
        before,
        "an open breaker makes no upstream call"
    );
    assert!(
        metric(
            &app,
            r#"sluice_breaker_rejections_total{upstream="search"}"#
        )
        .await
        .unwrap()
            >= 4.0
    );

    // Readiness shows the open breaker but stays ready: fallbacks serve.
    let ready = app
        .client
        .get(app.at("/health/readiness"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["ai_service"], "open");
}

async fn wait_for_state(app: &TestApp, gauge: f64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        // Reading readiness makes the breaker notice its open time is over.
        app.client
            .get(app.at("/health/readiness"))
            .send()
            .await
            .unwrap();
        if metric(app, r#"sluice_breaker_state{upstream="search"}"#).await == Some(gauge) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "breaker never reached {gauge}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn half_open_closes_on_successes_reopens_on_a_failure_and_caps_trials() {
    let app = spawn_app(&[
        ("BREAKER_WINDOW", "2"),
        ("BREAKER_OPEN_SECS", "1"),
        ("BREAKER_HALF_OPEN_CALLS", "2"),
        ("AI_RATE_LIMIT_BURST", "1000"),
    ])
    .await;
    let token = app.token("half-open-user");
    let open = || async {
        faults(
            &app,
            json!({"mode": "error", "rate": 1.0, "routes": ["search"]}),
        )
        .await;
        created(&app, &token, "n", &uuid::Uuid::new_v4().to_string()).await;
        wait_for_state(&app, 1.0).await;
    };

    // Open, wait for half-open, two successes close it.
    open().await;
    faults(&app, json!({"mode": "none"})).await;
    wait_for_state(&app, 2.0).await;
    for n in 0..2 {
        let s = created(&app, &token, "n", &format!("trial {n}")).await;
        assert_eq!(s["passages_source"], "ai");
    }
    assert_eq!(
        metric(&app, r#"sluice_breaker_state{upstream="search"}"#).await,
        Some(0.0)
    );

    // Open again; half-open; one failure reopens it.
    open().await;
    wait_for_state(&app, 2.0).await;
    let s = created(&app, &token, "n", "fails in half-open").await;
    assert_eq!(s["passages_source"], "fallback");
    assert_eq!(
        metric(&app, r#"sluice_breaker_state{upstream="search"}"#).await,
        Some(1.0)
    );

    // Half-open admits two trials; a third concurrent call is rejected without reaching the AI.
    faults(
        &app,
        json!({"mode": "slow", "rate": 1.0, "routes": ["search"], "slow_ms": 1500}),
    )
    .await;
    wait_for_state(&app, 2.0).await;
    let before = search_calls(&app).await;
    let trials: Vec<_> = (0..2)
        .map(|n| {
            let client = app.client.clone();
            let url = app.at("/api/scenarios");
            let token = token.clone();
            tokio::spawn(async move {
                client
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({"novel_id": "n", "description": format!("slow trial {n}")}))
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while search_calls(&app).await < before + 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "trials never reached the mock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let third = created(&app, &token, "n", "beyond the allowance").await;
    assert_eq!(third["passages_source"], "fallback");
    assert_eq!(
        search_calls(&app).await,
        before + 2,
        "the third call was rejected"
    );
    for trial in trials {
        assert_eq!(trial.await.unwrap(), StatusCode::CREATED);
    }
}

#[tokio::test]
async fn a_hanging_ai_service_times_out_into_a_fallback() {
    let app = spawn_app(&[("UPSTREAM_TIMEOUT_MS", "300")]).await;
    let token = app.token("hang-user");
    faults(
        &app,
        json!({"mode": "hang", "rate": 1.0, "routes": ["search"]}),
    )
    .await;
    let started = std::time::Instant::now();
    let s = created(&app, &token, "n", "hangs").await;
    assert_eq!(s["passages_source"], "fallback");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn client_errors_from_the_ai_service_do_not_trip_the_breaker() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let upstream = axum::Router::new().route(
        "/api/ai/search/passages",
        axum::routing::post(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { (StatusCode::UNPROCESSABLE_ENTITY, "bad query") }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, upstream).await });
    let app = spawn_app(&[
        ("AI_SERVICE_URL", &url),
        ("BREAKER_WINDOW", "2"),
        ("AI_RATE_LIMIT_BURST", "100"),
    ])
    .await;
    let token = app.token("four-xx");
    for n in 0..5 {
        let s = created(&app, &token, "n", &format!("q{n}")).await;
        assert_eq!(s["passages_source"], "fallback");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        5,
        "every call reached the AI: no retries, no open breaker"
    );
    assert_eq!(
        metric(&app, r#"sluice_breaker_state{upstream="search"}"#).await,
        Some(0.0)
    );
}

#[tokio::test]
async fn a_cache_hit_makes_no_upstream_call() {
    let app = spawn_app(&[]).await;
    let token = app.token("cache-user");
    let first = created(&app, &token, "emma", "a ball").await;
    assert_eq!(first["passages_source"], "ai");
    let calls = search_calls(&app).await;
    let second = created(&app, &token, "emma", "a ball").await;
    assert_eq!(second["passages_source"], "cache");
    assert_eq!(second["passage_ids"], first["passage_ids"]);
    assert_eq!(search_calls(&app).await, calls);
    assert_eq!(
        metric(
            &app,
            r#"sluice_cache_requests_total{cache="search",result="hit"}"#
        )
        .await,
        Some(1.0)
    );
}

#[tokio::test]
async fn the_cache_is_shared_through_redis() {
    let overrides = [("REDIS_URL", "redis://127.0.0.1:6379")];
    let a = spawn_app(&overrides).await;
    let b = spawn_app(&overrides).await;
    let description = format!("shared {}", uuid::Uuid::new_v4());
    let first = created(&a, &a.token("u1"), "novel", &description).await;
    assert_eq!(first["passages_source"], "ai");
    let second = created(&b, &b.token("u2"), "novel", &description).await;
    assert_eq!(second["passages_source"], "cache");
}

#[tokio::test]
async fn bad_input_gets_the_contract_errors_and_writes_nothing() {
    let app = spawn_app(&[]).await;
    let token = app.token("validator");
    for (body, field) in [
        (json!({"novel_id": "n", "description": ""}), "description"),
        (
            json!({"novel_id": "n", "description": "   "}),
            "description",
        ),
        (
            json!({"novel_id": "n", "description": "x".repeat(4001)}),
            "description",
        ),
        (json!({"description": "ok"}), "novel_id"),
        (json!({"novel_id": "", "description": "ok"}), "novel_id"),
        (json!({"novel_id": "n", "description": 5}), "description"),
    ] {
        let response = app
            .client
            .post(app.at("/api/scenarios"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 400, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let ok = created(&app, &token, "n", &"y".repeat(4000)).await;
    let list: Value = app.get_json("/api/scenarios", &token).await;
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "only the valid one was stored"
    );

    let id = ok["id"].as_str().unwrap();
    let mine = app
        .client
        .get(app.at(&format!("/api/scenarios/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(mine.status(), 200);
    let theirs = app
        .client
        .get(app.at(&format!("/api/scenarios/{id}")))
        .bearer_auth(app.token("someone-else"))
        .send()
        .await
        .unwrap();
    assert_problem(theirs, 404, "not_found").await;
    let unknown = app
        .client
        .get(app.at(&format!("/api/scenarios/{}", uuid::Uuid::new_v4())))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_problem(unknown, 404, "not_found").await;
    let malformed = app
        .client
        .get(app.at("/api/scenarios/not-a-uuid"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_problem(malformed, 400, "validation_failed").await;
}

#[tokio::test]
async fn listing_is_newest_first_and_paginates() {
    let app = spawn_app(&[("AI_RATE_LIMIT_BURST", "100")]).await;
    let token = app.token("lister");
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(
            created(&app, &token, "n", &format!("d{n}")).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let page: Value = app.get_json("/api/scenarios?limit=2", &token).await;
    let got: Vec<&str> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![ids[2].as_str(), ids[1].as_str()]);
    let next: Value = app
        .get_json(&format!("/api/scenarios?limit=2&before={}", ids[1]), &token)
        .await;
    assert_eq!(next[0]["id"], ids[0].as_str());
    let bad = app
        .client
        .get(app.at("/api/scenarios?limit=0"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let problem = assert_problem(bad, 400, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "limit");
}

#[tokio::test]
async fn the_ai_rate_limit_applies_to_scenario_creation() {
    let app = spawn_app(&[
        ("AI_RATE_LIMIT_BURST", "2"),
        ("AI_RATE_LIMIT_PER_MINUTE", "1"),
    ])
    .await;
    let token = app.token("ai-limited");
    created(&app, &token, "n", "one").await;
    created(&app, &token, "n", "two").await;
    let limited = create(&app, &token, "n", "three").await;
    assert_eq!(
        limited.headers().get("ratelimit-policy").unwrap(),
        "\"ai\";q=2;w=120"
    );
    assert_problem(limited, 429, "rate_limited").await;
    // Reads are not AI-costly.
    let list = app
        .client
        .get(app.at("/api/scenarios"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
}
