//! The OpenAI-compatible routes: relayed chunk by chunk, fallbacks while nothing was sent,
//! an error chunk (not silence) when the upstream fails midway.

use std::time::Duration;

use serde_json::{Value, json};
use sluice::sim::{self, MockAiConfig, MockAiHandle};

use crate::chat::{AI_KEY, EventReader, app, mock_post, mock_stats, wait_stat};
use crate::helpers::{TestApp, assert_problem};

const TOKENS: usize = 8;

/// A mock AI service of its own (a fallback), expecting the test apps' key.
async fn spawn_mock() -> MockAiHandle {
    let config = MockAiConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        redis_url: None,
        gateway_url: None,
        api_key: AI_KEY.to_owned(),
        tokens: TOKENS,
        token_delay: Duration::from_millis(1),
        stage_delay: Duration::from_millis(5),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    sim::spawn(listener, config).await.unwrap()
}

/// A URL where nothing listens.
async fn closed_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

fn body(stream: bool) -> Value {
    json!({
        "model": "mock-1",
        "stream": stream,
        "messages": [{ "role": "user", "content": "Tell me about the sea" }],
    })
}

async fn completions(app: &TestApp, body: Value) -> reqwest::Response {
    app.client
        .post(app.at("/v1/chat/completions"))
        .bearer_auth(app.token(&format!("openai-{}", uuid::Uuid::new_v4())))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The `data` payloads of a relayed stream, `[DONE]` included.
async fn chunks(response: reqwest::Response) -> Vec<String> {
    assert_eq!(response.status(), 200);
    EventReader::new(response)
        .rest()
        .await
        .into_iter()
        .map(|event| event.data)
        .collect()
}

fn text_of(chunks: &[String]) -> String {
    chunks
        .iter()
        .filter(|c| *c != "[DONE]")
        .filter_map(|c| {
            let chunk: Value = serde_json::from_str(c).unwrap();
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

fn mock_url(app: &TestApp) -> String {
    app.state.simulator.as_ref().unwrap().url()
}

#[tokio::test]
async fn a_streamed_completion_is_relayed_chunk_by_chunk_and_ends_with_done() {
    let app = app(&[]).await;
    let mock = mock_url(&app);
    let whole = completions(&app, body(false)).await;
    assert_eq!(whole.status(), 200);
    let whole: Value = whole.json().await.unwrap();
    let expected = whole["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();

    mock_post(&mock, "/__mock/hold", json!({ "after_tokens": 1 })).await;
    let response = completions(&app, body(true)).await;
    assert_eq!(response.status(), 200);
    let mut events = EventReader::new(response);
    wait_stat(&mock, "streams_held", 1).await;
    // The role chunk and the first token were sent before the hold: both are here already.
    let role: Value = serde_json::from_str(&events.next().await.unwrap().data).unwrap();
    assert_eq!(role["choices"][0]["delta"]["role"], "assistant");
    let first: Value = serde_json::from_str(&events.next().await.unwrap().data).unwrap();
    let first = first["choices"][0]["delta"]["content"].as_str().unwrap();
    assert!(expected.starts_with(first), "{first:?} starts {expected:?}");

    mock_post(&mock, "/__mock/release", json!({})).await;
    let rest: Vec<String> = events.rest().await.into_iter().map(|e| e.data).collect();
    assert_eq!(rest.last().unwrap(), "[DONE]");
    assert_eq!(format!("{first}{}", text_of(&rest)), expected);
    let metrics = app.state.metrics.encode();
    assert!(metrics.contains(r#"sluice_sse_events_total{kind="openai",event="done"} 1"#));
    assert!(metrics.contains(r#"sluice_sse_streams_active{kind="openai"} 0"#));
}

#[tokio::test]
async fn models_are_listed() {
    let app = app(&[]).await;
    let response = app
        .client
        .get(app.at("/v1/models"))
        .bearer_auth(app.token("openai-models"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let models: Value = response.json().await.unwrap();
    assert_eq!(models["data"][0]["id"], sim::MOCK_MODEL);
}

#[tokio::test]
async fn a_fallback_serves_when_the_primary_is_down() {
    let fallback = spawn_mock().await;
    let primary = closed_port().await;
    let app = app(&[
        ("AI_SERVICE_URL", primary.as_str()),
        ("AI_FALLBACK_URLS", fallback.url().as_str()),
    ])
    .await;

    let streamed = chunks(completions(&app, body(true)).await).await;
    assert_eq!(streamed.last().unwrap(), "[DONE]");
    assert!(!text_of(&streamed).is_empty());

    let whole = completions(&app, body(false)).await;
    assert_eq!(whole.status(), 200);
    let whole: Value = whole.json().await.unwrap();
    assert_eq!(
        whole["choices"][0]["message"]["content"].as_str().unwrap(),
        text_of(&streamed)
    );
    let stats = mock_stats(&fallback.url()).await;
    assert_eq!(stats["calls"]["chat_completions"], 2);
    assert!(
        app.state
            .metrics
            .encode()
            .contains("sluice_fallbacks_total{route=\"/v1/chat/completions\"")
    );
    fallback.shutdown().await;
}

#[tokio::test]
async fn a_fallback_takes_over_when_the_primary_fails_before_its_first_chunk() {
    let fallback = spawn_mock().await;
    let app = app(&[("AI_FALLBACK_URLS", fallback.url().as_str())]).await;
    mock_post(
        &mock_url(&app),
        "/__mock/faults",
        json!({ "mode": "error", "routes": ["openai"] }),
    )
    .await;
    let streamed = chunks(completions(&app, body(true)).await).await;
    assert_eq!(streamed.last().unwrap(), "[DONE]");
    assert_eq!(
        mock_stats(&fallback.url()).await["calls"]["chat_completions"],
        1
    );
    fallback.shutdown().await;
}

#[tokio::test]
async fn a_failure_after_the_first_chunk_ends_with_an_error_chunk_and_done() {
    let app = app(&[]).await;
    mock_post(
        &mock_url(&app),
        "/__mock/faults",
        json!({ "mode": "drop_mid_stream", "routes": ["openai"] }),
    )
    .await;
    let streamed = chunks(completions(&app, body(true)).await).await;
    let n = streamed.len();
    assert_eq!(streamed[n - 1], "[DONE]");
    let error: Value = serde_json::from_str(&streamed[n - 2]).unwrap();
    assert_eq!(error["error"]["type"], "upstream_error");
    assert!(error["error"]["message"].is_string());
    assert!(
        !text_of(&streamed[..n - 2]).is_empty(),
        "chunks before the cut"
    );
}

#[tokio::test]
async fn with_every_upstream_down_the_error_is_problem_json() {
    let primary = closed_port().await;
    let app = app(&[("AI_SERVICE_URL", primary.as_str())]).await;
    assert_problem(completions(&app, body(true)).await, 503, "ai_unavailable").await;
    assert_problem(completions(&app, body(false)).await, 503, "ai_unavailable").await;
}

#[tokio::test]
async fn a_token_is_required_and_stream_must_be_a_boolean() {
    let app = app(&[]).await;
    let anonymous = app
        .client
        .post(app.at("/v1/chat/completions"))
        .json(&body(true))
        .send()
        .await
        .unwrap();
    assert_problem(anonymous, 401, "unauthorized").await;
    let mut bad = body(true);
    bad["stream"] = json!("yes");
    let problem = assert_problem(completions(&app, bad).await, 400, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "stream");
}

#[tokio::test]
async fn a_request_the_upstream_rejects_is_a_400_not_a_fallback() {
    let app = app(&[]).await;
    for stream in [false, true] {
        let empty = json!({ "model": "mock-1", "stream": stream, "messages": [] });
        let problem =
            assert_problem(completions(&app, empty).await, 400, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], "body");
    }
    let breaker = app.state.ai.openai_upstreams()[0].breaker.state();
    assert_eq!(
        breaker.as_str(),
        "closed",
        "a 4xx says nothing about the upstream's health"
    );
}
