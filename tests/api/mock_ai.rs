//! The simulated AI service, driven over HTTP like the gateway drives it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use futures_util::StreamExt;
use serde_json::{Value, json};
use sluice::sim::{self, LEAK_CANARY, MockAiConfig, MockAiHandle};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);
const TOKENS: usize = 6;

// ---------------------------------------------------------------- helpers

struct Mock {
    handle: MockAiHandle,
    http: reqwest::Client,
    key: String,
}

fn config() -> MockAiConfig {
    MockAiConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        redis_url: None,
        gateway_url: None,
        api_key: format!("test-key-{}", uuid::Uuid::new_v4()),
        tokens: TOKENS,
        token_delay: Duration::from_millis(1),
        stage_delay: Duration::from_millis(5),
    }
}

async fn spawn_mock(config: MockAiConfig) -> Mock {
    let key = config.api_key.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = sim::spawn(listener, config).await.unwrap();
    Mock {
        handle,
        http: reqwest::Client::new(),
        key,
    }
}

impl Mock {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.handle.url())
    }

    fn post_ai(&self, path: &str, body: Value) -> reqwest::RequestBuilder {
        self.http
            .post(self.url(path))
            .bearer_auth(&self.key)
            .json(&body)
    }

    async fn search(&self, body: Value) -> reqwest::Response {
        self.post_ai("/api/ai/search/passages", body)
            .send()
            .await
            .unwrap()
    }

    async fn stream(&self, content: &str) -> reqwest::Response {
        let body =
            json!({ "content": content, "history": [{ "role": "user", "content": "earlier" }] });
        let response = self
            .post_ai("/api/ai/conversations/c-1/messages-stream", body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response
    }

    async fn control(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn fault(&self, body: Value) {
        let response = self.control("/__mock/faults", body).await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    async fn stats(&self) -> Value {
        self.http
            .get(self.url("/__mock/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Polls the stats until `condition` holds; fails the test after [`WAIT`].
    async fn wait_for_stats(&self, condition: impl Fn(&Value) -> bool) -> Value {
        let poll = async {
            loop {
                let stats = self.stats().await;
                if condition(&stats) {
                    return stats;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(WAIT, poll)
            .await
            .expect("stats never reached the expected state")
    }
}

/// One SSE frame, in either dialect.
#[derive(Debug, Clone, PartialEq)]
struct Frame {
    event: Option<String>,
    data: Option<String>,
    comment: bool,
}

impl Frame {
    fn json(&self) -> Value {
        serde_json::from_str(self.data.as_deref().unwrap()).unwrap()
    }
}

/// Reads frames from a streamed body as they arrive, keeping the raw bytes for framing checks.
struct FrameReader {
    response: reqwest::Response,
    buffer: String,
    raw: String,
}

impl FrameReader {
    fn new(response: reqwest::Response) -> Self {
        Self {
            response,
            buffer: String::new(),
            raw: String::new(),
        }
    }

    /// The next frame; `Ok(None)` at the end of the body, `Err` when the body breaks.
    async fn next(&mut self) -> Result<Option<Frame>, reqwest::Error> {
        loop {
            let end = [("\r\n\r\n", 4), ("\n\n", 2)]
                .into_iter()
                .filter_map(|(separator, len)| self.buffer.find(separator).map(|at| (at, len)))
                .min();
            if let Some((at, len)) = end {
                let block: String = self.buffer.drain(..at + len).collect();
                return Ok(Some(parse_frame(&block)));
            }
            match tokio::time::timeout(WAIT, self.response.chunk())
                .await
                .expect("stream stalled")?
            {
                Some(chunk) => {
                    let text = String::from_utf8(chunk.to_vec()).unwrap();
                    self.raw.push_str(&text);
                    self.buffer.push_str(&text);
                }
                None => return Ok(None),
            }
        }
    }

    /// Every remaining frame, failing the test if the body breaks.
    async fn rest(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(frame) = self.next().await.unwrap() {
            frames.push(frame);
        }
        frames
    }

    /// The next frame that is not a keep-alive comment.
    async fn next_event(&mut self) -> Frame {
        loop {
            let frame = self.next().await.unwrap().expect("stream ended early");
            if !frame.comment {
                return frame;
            }
        }
    }
}

fn parse_frame(block: &str) -> Frame {
    let mut frame = Frame {
        event: None,
        data: None,
        comment: false,
    };
    for line in block.lines().filter(|line| !line.is_empty()) {
        if line.starts_with(':') {
            frame.comment = true;
        } else if let Some(event) = line.strip_prefix("event: ") {
            frame.event = Some(event.to_owned());
        } else if let Some(data) = line.strip_prefix("data: ") {
            frame.data = Some(data.to_owned());
        }
    }
    frame
}

fn events<'a>(frames: &'a [Frame], name: &str) -> Vec<&'a Frame> {
    frames
        .iter()
        .filter(|f| f.event.as_deref() == Some(name))
        .collect()
}

// ---------------------------------------------------------------- auth and plain routes

#[tokio::test]
async fn health_is_open_and_the_ai_api_needs_the_key() {
    let mock = spawn_mock(config()).await;

    let health = mock.http.get(mock.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({ "status": "ok" })
    );

    let calls = [
        ("POST", "/api/ai/search/passages"),
        ("POST", "/api/ai/generate"),
        ("POST", "/api/ai/conversations/c-1/messages-stream"),
        ("POST", "/v1/chat/completions"),
        ("GET", "/v1/models"),
    ];
    for (method, path) in calls {
        for key in [None, Some("wrong-key")] {
            let mut request = mock
                .http
                .request(method.parse().unwrap(), mock.url(path))
                .json(&json!({}));
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} {key:?}"
            );
            assert_eq!(response.headers()["www-authenticate"], "Bearer");
            let body: Value = response.json().await.unwrap();
            assert!(body["detail"].is_string());
        }
    }
    let stats = mock.stats().await;
    assert_eq!(
        stats["calls"]["search"], 0,
        "rejected calls are not counted: {stats}"
    );
    mock.handle.shutdown().await;
}

#[tokio::test]
async fn the_request_log_shows_what_reached_the_ai_api() {
    let mock = spawn_mock(config()).await;
    mock.post_ai(
        "/api/ai/search/passages?debug=1",
        json!({ "query": "q", "novel_id": "n" }),
    )
    .header("x-request-id", "req-42")
    .header("x-user-id", "user-7")
    .send()
    .await
    .unwrap();
    mock.http.get(mock.url("/v1/models")).send().await.unwrap();

    let log: Value = mock
        .http
        .get(mock.url("/__mock/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        log,
        json!([
            { "method": "POST", "path": "/api/ai/search/passages?debug=1", "request_id": "req-42", "user_id": "user-7", "status": 200 },
            { "method": "GET", "path": "/v1/models", "request_id": null, "user_id": null, "status": 401 },
        ])
    );
    assert!(
        !log.to_string().contains(&mock.key),
        "the key is never logged"
    );

    mock.control("/__mock/reset", json!({})).await;
    let log: Value = mock
        .http
        .get(mock.url("/__mock/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log, json!([]));
    mock.handle.shutdown().await;
}

#[tokio::test]
async fn search_is_deterministic_and_validated() {
    let mock = spawn_mock(config()).await;
    let request = json!({ "query": "a storm at sea", "novel_id": "moby-dick", "top_k": 3 });

    let first: Value = mock.search(request.clone()).await.json().await.unwrap();
    let second: Value = mock.search(request).await.json().await.unwrap();
    assert_eq!(first, second);
    let ids = first["passage_ids"].as_array().unwrap();
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|id| id.as_str().unwrap().starts_with("p-")));
    assert_eq!(first["passages"][0]["id"], ids[0]);
    assert!(first["passages"][0]["content"].as_str().unwrap().len() > 10);
    assert!(
        first["passages"][0]["distance"].as_f64().unwrap()
            < first["passages"][1]["distance"].as_f64().unwrap()
    );

    let other: Value = mock
        .search(json!({ "query": "a calm day", "novel_id": "moby-dick", "top_k": 3 }))
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(other["passage_ids"], first["passage_ids"]);

    for (top_k, expected) in [(json!(null), 5), (json!(0), 1), (json!(500), 50)] {
        let body: Value = mock
            .search(json!({ "query": "q", "novel_id": "n", "top_k": top_k }))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            body["passage_ids"].as_array().unwrap().len(),
            expected,
            "top_k {top_k}"
        );
    }

    for invalid in [
        json!({ "novel_id": "n" }),
        json!({ "query": "q" }),
        json!({ "query": "", "novel_id": "n" }),
    ] {
        let response = mock.search(invalid.clone()).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{invalid}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["detail"][0]["loc"][0], "body");
    }

    let stats = mock.stats().await;
    assert_eq!(stats["calls"]["search"], 9);
    mock.handle.shutdown().await;
}

// ---------------------------------------------------------------- messages-stream

#[tokio::test]
async fn messages_stream_is_crlf_framed_with_ping_tokens_and_complete() {
    let mock = spawn_mock(config()).await;
    let response = mock.stream("tell me about the lighthouse").await;
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut reader = FrameReader::new(response);
    let frames = reader.rest().await;

    assert!(reader.raw.starts_with(": ping\r\n\r\n"), "{:?}", reader.raw);
    assert!(
        reader
            .raw
            .match_indices('\n')
            .all(|(at, _)| at > 0 && &reader.raw[at - 1..at] == "\r"),
        "every line ends with CRLF"
    );
    assert_eq!(
        frames.iter().filter(|f| f.comment).count(),
        2,
        "a ping first and after 5 tokens"
    );
    let tokens = events(&frames, "token");
    assert_eq!(tokens.len(), TOKENS);
    let text: String = tokens
        .iter()
        .map(|t| t.json()["content"].as_str().unwrap().to_owned())
        .collect();
    assert!(!text.starts_with(' '));
    assert_eq!(text.split(' ').count(), TOKENS);

    let last = frames.last().unwrap();
    assert_eq!(last.event.as_deref(), Some("complete"));
    assert_eq!(last.json()["content"], text.as_str());

    let again = FrameReader::new(mock.stream("tell me about the lighthouse").await)
        .rest()
        .await;
    let text_again: String = events(&again, "token")
        .iter()
        .map(|t| t.json()["content"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text_again, text, "answers are deterministic");

    let stats = mock.wait_for_stats(|s| s["streams_completed"] == 2).await;
    assert_eq!(stats["calls"]["stream"], 2);
    assert_eq!(stats["streams_open"], 0);
    assert_eq!(stats["streams_cancelled"], 0);
    mock.handle.shutdown().await;
}

#[tokio::test]
async fn a_missing_content_is_unprocessable() {
    let mock = spawn_mock(config()).await;
    let response = mock
        .post_ai(
            "/api/ai/conversations/c-1/messages-stream",
            json!({ "history": [] }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    mock.handle.shutdown().await;
}

#[tokio::test]
async fn hold_pauses_streams_until_release() {
    let mock = spawn_mock(config()).await;
    assert_eq!(
        mock.control("/__mock/hold", json!({ "after_tokens": 1 }))
            .await
            .status(),
        StatusCode::OK
    );

    let mut reader = FrameReader::new(mock.stream("hold me").await);
    let first = reader.next_event().await;
    assert_eq!(first.event.as_deref(), Some("token"));
    let stats = mock.wait_for_stats(|s| s["streams_held"] == 1).await;
    assert_eq!(stats["streams_completed"], 0);

    // Nothing but the first token arrived while held.
    assert_eq!(reader.raw.matches("event: token").count(), 1);

    assert_eq!(
        mock.control("/__mock/release", json!({})).await.status(),
        StatusCode::OK
    );
    let rest = reader.rest().await;
    assert_eq!(events(&rest, "token").len(), TOKENS - 1);
    assert_eq!(rest.last().unwrap().event.as_deref(), Some("complete"));
    mock.wait_for_stats(|s| s["streams_held"] == 0 && s["streams_completed"] == 1)
        .await;

    // The hold is cleared: a new stream runs straight through.
    let frames = FrameReader::new(mock.stream("free").await).rest().await;
    assert_eq!(events(&frames, "token").len(), TOKENS);
    mock.handle.shutdown().await;
}

#[tokio::test]
async fn a_caller_that_goes_away_cancels_the_stream() {
    let mock = spawn_mock(config()).await;
    mock.control("/__mock/hold", json!({ "after_tokens": 2 }))
        .await;

    let mut reader = FrameReader::new(mock.stream("leave early").await);
    reader.next_event().await;
    mock.wait_for_stats(|s| s["streams_held"] == 1 && s["streams_open"] == 1)
        .await;
    drop(reader);

    let stats = mock
        .wait_for_stats(|s| s["streams_cancelled"] == 1 && s["streams_open"] == 0)
        .await;
    assert_eq!(stats["streams_held"], 0);
    assert_eq!(stats["streams_completed"], 0);
    mock.handle.shutdown().await;
}

// ---------------------------------------------------------------- faults

#[tokio::test]
async fn error_fault_answers_5xx_with_an_internal_detail() {
    let mock = spawn_mock(config()).await;
    mock.fault(json!({ "mode": "error" })).await;

    let response = mock.search(json!({ "query": "q", "novel_id": "n" })).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(response.text().await.unwrap().contains(LEAK_CANARY));

    let response = mock
        .post_ai(
            "/api/ai/conversations/c-1/messages-stream",
            json!({ "content": "x" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);

    mock.fault(json!({ "mode": "error", "status": 503, "routes": ["openai"] }))
        .await;
    let search = mock.search(json!({ "query": "q", "novel_id": "n" })).await;
    assert_eq!(search.status(), StatusCode::OK, "search is not affected");
    let models = mock
        .http
        .get(mock.url("/v1/models"))
        .bearer_auth(&mock.key)
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), StatusCode::SERVICE_UNAVAILABLE);

    mock.fault(json!({ "mode": "error", "rate": 0.0 })).await;
    assert_eq!(
        mock.search(json!({ "query": "q", "novel_id": "n" }))
            .await
            .status(),
        StatusCode::OK
    );
    mock.handle.shutdown().await;
}

#[tokio::test]
async fn hang_fault_never_answers() {
    let mock = spawn_mock(config()).await;
    mock.fault(json!({ "mode": "hang" })).await;

    let hung = mock
        .post_ai(
            "/api/ai/search/passages",
            json!({ "query": "q", "novel_id": "n" }),
        )
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(hung.unwrap_err().is_timeout());

    // Streams send their headers, then nothing.
    let mut response = mock.stream("silence").await;
    let first = tokio::time::timeout(Duration::from_millis(300), response.chunk()).await;
    assert!(first.is_err(), "no byte of body arrives: {first:?}");
    mock.wait_for_stats(|s| s["streams_open"] == 1).await;
    drop(response);
    mock.wait_for_stats(|s| s["streams_cancelled"] == 1 && s["streams_open"] == 0)
        .await;
    mock.handle.shutdown().await;
}

#[tokio::test]
async fn slow_fault_delays_answers_and_tokens() {
    let mock = spawn_mock(config()).await;
    mock.fault(json!({ "mode": "slow", "slow_ms": 40 })).await;

    let started = Instant::now();
    let response = mock.search(json!({ "query": "q", "novel_id": "n" })).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(40));

    let started = Instant::now();
    let frames = FrameReader::new(mock.stream("slowly").await).rest().await;
    assert_eq!(events(&frames, "token").len(), TOKENS);
    // Headers after 40 ms, then each token at least 40 ms apart.
    assert!(started.elapsed() >= Duration::from_millis(40 * (TOKENS as u64 + 1)));
    mock.handle.shutdown().await;
}

#[tokio::test]
async fn malformed_fault_breaks_json_and_frames() {
    let mock = spawn_mock(config()).await;
    mock.fault(json!({ "mode": "malformed" })).await;

    let response = mock.search(json!({ "query": "q", "novel_id": "n" })).await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");

    let frames = FrameReader::new(mock.stream("broken").await).rest().await;
    let tokens = events(&frames, "token");
    assert_eq!(
        tokens[0].json()["content"].as_str().map(|t| !t.is_empty()),
        Some(true)
    );
    assert_eq!(tokens[1].data.as_deref(), Some("{not json"));

    let chat = mock
        .post_ai(
            "/v1/chat/completions",
            json!({ "model": "mock-1", "stream": true, "messages": [{ "role": "user", "content": "hi" }] }),
        )
        .send()
        .await
        .unwrap();
    let frames = FrameReader::new(chat).rest().await;
    assert!(
        frames
            .iter()
            .any(|f| f.data.as_deref() == Some("{not json"))
    );
    mock.handle.shutdown().await;
}

#[tokio::test]
async fn drop_mid_stream_fault_cuts_the_body() {
    let mock = spawn_mock(config()).await;
    mock.fault(json!({ "mode": "drop_mid_stream" })).await;

    let mut reader = FrameReader::new(mock.stream("cut").await);
    let mut tokens = 0;
    let outcome = loop {
        match reader.next().await {
            Ok(Some(frame)) if frame.event.as_deref() == Some("token") => tokens += 1,
            Ok(Some(frame)) => assert!(frame.comment, "no complete event: {frame:?}"),
            Ok(None) => break "clean end",
            Err(_) => break "body error",
        }
    };
    assert_eq!(outcome, "body error");
    assert_eq!(tokens, TOKENS / 2);
    let stats = mock.wait_for_stats(|s| s["streams_open"] == 0).await;
    assert_eq!(stats["streams_completed"], 0);
    assert_eq!(
        stats["streams_cancelled"], 0,
        "cut by the mock, not by the caller"
    );

    let mut search = mock.search(json!({ "query": "q", "novel_id": "n" })).await;
    let first_half = search.chunk().await.unwrap().unwrap();
    assert!(
        first_half.starts_with(b"{\"passage_ids\""),
        "{first_half:?}"
    );
    assert!(search.chunk().await.is_err(), "a JSON body is cut half-way");
    mock.handle.shutdown().await;
}

#[tokio::test]
async fn control_rejects_bad_bodies_and_reset_restores_everything() {
    let mock = spawn_mock(config()).await;
    for bad in [
        json!({ "mode": "explode" }),
        json!({ "mode": "error", "rate": 2.0 }),
        json!({ "mode": "error", "routes": ["everything"] }),
        json!({ "rate": 0.5 }),
    ] {
        let response = mock.control("/__mock/faults", bad.clone()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let response = mock
        .control("/__mock/hold", json!({ "after_tokens": -1 }))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    mock.fault(json!({ "mode": "error" })).await;
    mock.control("/__mock/hold", json!({ "after_tokens": 0 }))
        .await;
    mock.search(json!({ "query": "q", "novel_id": "n" })).await;
    assert_eq!(mock.stats().await["calls"]["search"], 1);

    assert_eq!(
        mock.control("/__mock/reset", json!({})).await.status(),
        StatusCode::OK
    );
    assert_eq!(mock.stats().await["calls"]["search"], 0);
    assert_eq!(
        mock.search(json!({ "query": "q", "novel_id": "n" }))
            .await
            .status(),
        StatusCode::OK
    );
    let frames = FrameReader::new(mock.stream("after reset").await)
        .rest()
        .await;
    assert_eq!(
        events(&frames, "token").len(),
        TOKENS,
        "no hold after reset"
    );
    mock.handle.shutdown().await;
}

// ---------------------------------------------------------------- OpenAI-compatible API

#[tokio::test]
async fn chat_completions_in_both_modes_and_models() {
    let mock = spawn_mock(config()).await;
    let messages = json!([{ "role": "system", "content": "be brief" }, { "role": "user", "content": "hello there" }]);

    let completion: Value = mock
        .post_ai(
            "/v1/chat/completions",
            json!({ "model": "mock-1", "messages": messages }),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(completion["choices"][0]["message"]["role"], "assistant");
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");
    assert_eq!(completion["usage"]["completion_tokens"], TOKENS);
    assert_eq!(completion["usage"]["prompt_tokens"], 4);
    let whole = completion["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();

    let response = mock
        .post_ai(
            "/v1/chat/completions",
            json!({ "model": "mock-1", "messages": messages, "stream": true }),
        )
        .send()
        .await
        .unwrap();
    let mut reader = FrameReader::new(response);
    let frames = reader.rest().await;
    assert!(!reader.raw.contains('\r'), "OpenAI chunks use LF");
    assert_eq!(frames.last().unwrap().data.as_deref(), Some("[DONE]"));
    let chunks: Vec<Value> = frames[..frames.len() - 1].iter().map(Frame::json).collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, whole, "streamed and whole answers agree");

    let models: Value = mock
        .http
        .get(mock.url("/v1/models"))
        .bearer_auth(&mock.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "mock-1");
    assert_eq!(models["data"][0]["object"], "model");

    let stats = mock.wait_for_stats(|s| s["streams_completed"] == 1).await;
    assert_eq!(stats["calls"]["chat_completions"], 2);
    assert_eq!(stats["calls"]["models"], 1);
    mock.handle.shutdown().await;
}

#[tokio::test]
async fn streaming_chat_completions_respect_the_hold() {
    let mock = spawn_mock(config()).await;
    mock.control("/__mock/hold", json!({ "after_tokens": 1 }))
        .await;
    let response = mock
        .post_ai(
            "/v1/chat/completions",
            json!({ "stream": true, "messages": [{ "role": "user", "content": "hi" }] }),
        )
        .send()
        .await
        .unwrap();
    let mut reader = FrameReader::new(response);
    reader.next().await.unwrap(); // role chunk
    let first = reader.next().await.unwrap().unwrap();
    assert!(first.json()["choices"][0]["delta"]["content"].is_string());
    mock.wait_for_stats(|s| s["streams_held"] == 1).await;
    mock.control("/__mock/release", json!({})).await;
    let rest = reader.rest().await;
    assert_eq!(rest.last().unwrap().data.as_deref(), Some("[DONE]"));
    mock.handle.shutdown().await;
}

// ---------------------------------------------------------------- generate

/// A callback the test gateway received.
#[derive(Debug)]
struct Callback {
    conversation_id: String,
    action: String,
    authorization: Option<String>,
    request_id: Option<String>,
    body: Value,
}

/// A tiny stand-in for the gateway's internal routes, recording every callback in order.
async fn spawn_test_gateway() -> (SocketAddr, mpsc::UnboundedReceiver<Callback>) {
    async fn record(
        State(sender): State<mpsc::UnboundedSender<Callback>>,
        Path((conversation_id, action)): Path<(String, String)>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> StatusCode {
        let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let _ = sender.send(Callback {
            conversation_id,
            action,
            authorization: header("authorization"),
            request_id: header("x-request-id"),
            body,
        });
        StatusCode::NO_CONTENT
    }
    let (sender, receiver) = mpsc::unbounded_channel();
    let app = Router::new()
        .route("/api/internal/conversations/{id}/{action}", post(record))
        .with_state(sender);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, receiver)
}

async fn next_callback(receiver: &mut mpsc::UnboundedReceiver<Callback>) -> Callback {
    tokio::time::timeout(WAIT, receiver.recv())
        .await
        .expect("no callback")
        .expect("gateway gone")
}

async fn start_generation(mock: &Mock, conversation_id: &str, request_id: &str) {
    let response = mock
        .post_ai(
            "/api/ai/generate",
            json!({ "conversation_id": conversation_id, "scenario_id": "s-1" }),
        )
        .header("x-request-id", request_id)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({ "status": "accepted" })
    );
}

#[tokio::test]
async fn generate_without_redis_posts_progress_and_results_to_the_gateway() {
    let (gateway, mut callbacks) = spawn_test_gateway().await;
    let mock = spawn_mock(MockAiConfig {
        gateway_url: Some(format!("http://{gateway}")),
        ..config()
    })
    .await;
    let conversation_id = uuid::Uuid::new_v4().to_string();
    start_generation(&mock, &conversation_id, "req-123").await;

    for progress in [20, 50, 70] {
        let callback = next_callback(&mut callbacks).await;
        assert_eq!(callback.action, "events");
        assert_eq!(callback.conversation_id, conversation_id);
        assert_eq!(callback.body["event"], "progress");
        assert_eq!(callback.body["progress"], progress);
        assert!(!callback.body["message"].as_str().unwrap().is_empty());
        assert_eq!(callback.authorization, Some(format!("Bearer {}", mock.key)));
        assert_eq!(callback.request_id.as_deref(), Some("req-123"));
    }
    let complete = next_callback(&mut callbacks).await;
    assert_eq!(complete.action, "complete");
    let messages = complete.body["messages"].as_array().unwrap();
    assert!((2..=3).contains(&messages.len()), "{messages:?}");
    assert!(
        messages
            .iter()
            .all(|m| m["role"] == "assistant" && m["content"].is_string())
    );
    assert_eq!(complete.request_id.as_deref(), Some("req-123"));

    let event = next_callback(&mut callbacks).await;
    assert_eq!(event.action, "events");
    assert_eq!(
        event.body,
        json!({ "event": "complete", "conversation_id": conversation_id })
    );

    assert_eq!(mock.stats().await["calls"]["generate"], 1);
    mock.handle.shutdown().await;
}

#[tokio::test]
async fn generate_error_fault_reports_a_failure_instead_of_completing() {
    let (gateway, mut callbacks) = spawn_test_gateway().await;
    let mock = spawn_mock(MockAiConfig {
        gateway_url: Some(format!("http://{gateway}")),
        ..config()
    })
    .await;
    mock.fault(json!({ "mode": "error", "routes": ["generate"] }))
        .await;
    start_generation(&mock, "conv-failing", "req-9").await;

    for _ in 0..3 {
        assert_eq!(
            next_callback(&mut callbacks).await.body["event"],
            "progress"
        );
    }
    let failed = next_callback(&mut callbacks).await;
    assert_eq!(failed.action, "events");
    assert_eq!(failed.body["event"], "failed");
    assert!(failed.body["error"].as_str().unwrap().contains(LEAK_CANARY));
    mock.handle.shutdown().await;
    assert!(callbacks.try_recv().is_err(), "nothing after the failure");
}

#[tokio::test]
async fn generate_rejects_ids_unfit_for_a_callback_url() {
    let mock = spawn_mock(config()).await;
    for body in [
        json!({ "conversation_id": "../../admin", "scenario_id": "s" }),
        json!({ "scenario_id": "s" }),
        json!({ "conversation_id": "c" }),
    ] {
        let response = mock
            .post_ai("/api/ai/generate", body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}"
        );
    }
    mock.handle.shutdown().await;
}

#[tokio::test]
async fn generate_with_redis_publishes_on_the_conversation_channel() {
    let redis_url = "redis://127.0.0.1:6379";
    let conversation_id = uuid::Uuid::new_v4().to_string();
    let client = redis::Client::open(redis_url).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .subscribe(format!("conversation:{conversation_id}"))
        .await
        .unwrap();

    let mock = spawn_mock(MockAiConfig {
        redis_url: Some(redis_url.to_owned()),
        ..config()
    })
    .await;
    start_generation(&mock, &conversation_id, "req-redis").await;

    let mut messages = pubsub.on_message();
    let mut received = Vec::new();
    for _ in 0..4 {
        let message = tokio::time::timeout(WAIT, messages.next())
            .await
            .unwrap()
            .unwrap();
        let payload: String = message.get_payload().unwrap();
        received.push(serde_json::from_str::<Value>(&payload).unwrap());
    }
    let progress: Vec<_> = received[..3]
        .iter()
        .map(|m| m["progress"].clone())
        .collect();
    assert_eq!(progress, vec![json!(20), json!(50), json!(70)]);
    assert!(received[..3].iter().all(|m| m["event"] == "progress"));
    assert_eq!(
        received[3],
        json!({ "event": "complete", "conversation_id": conversation_id })
    );
    mock.handle.shutdown().await;
}

// ---------------------------------------------------------------- lifecycle

#[tokio::test]
async fn shutdown_ends_hanging_calls_and_held_streams() {
    let mock = spawn_mock(config()).await;
    mock.control("/__mock/hold", json!({ "after_tokens": 0 }))
        .await;
    let held = FrameReader::new(mock.stream("held").await);
    mock.wait_for_stats(|s| s["streams_held"] == 1).await;

    mock.fault(json!({ "mode": "hang", "routes": ["search"] }))
        .await;
    let http = mock.http.clone();
    let url = mock.url("/api/ai/search/passages");
    let key = mock.key.clone();
    let hanging = tokio::spawn(async move {
        http.post(url)
            .bearer_auth(key)
            .json(&json!({ "query": "q", "novel_id": "n" }))
            .send()
            .await
            .map(|response| response.status())
    });
    mock.wait_for_stats(|s| s["calls"]["search"] == 1).await;

    tokio::time::timeout(WAIT, mock.handle.shutdown())
        .await
        .expect("shutdown waits forever");
    let status = tokio::time::timeout(WAIT, hanging).await.unwrap().unwrap();
    assert_eq!(status.unwrap(), StatusCode::SERVICE_UNAVAILABLE);
    drop(held);
}
