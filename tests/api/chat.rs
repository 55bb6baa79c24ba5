//! Chat over SSE: tokens relayed as they arrive, the answer stored however the stream ends,
//! failures as `error` events, and the checks that come before a stream starts.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::Response;
use axum::routing::post;
use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};
use sluice::ids::{ConversationId, ScenarioId, UserId};
use sluice::store::{Message, MessageRole, MessageStatus, NewMessage, Scenario};
use sluice::upstream::{SseEvent, SseLimits, UpstreamError, sse_events};
use tokio::sync::mpsc;

use crate::helpers::{TestApp, assert_problem, spawn_app};

/// Longest wait for anything a test expects to happen.
pub(crate) const WAIT: Duration = Duration::from_secs(10);
/// The API key the test apps send to their AI service, so tests can call the mock directly.
pub(crate) const AI_KEY: &str = "chat-test-ai-key";
const TOKENS: usize = 8;

// ---------------------------------------------------------------- helpers

/// Reads SSE events off a response as they arrive, with the gateway's own parser.
pub(crate) struct EventReader {
    events: Pin<Box<dyn Stream<Item = Result<SseEvent, UpstreamError>> + Send>>,
}

impl EventReader {
    pub(crate) fn new(response: reqwest::Response) -> Self {
        let bytes = response
            .bytes_stream()
            .map(|chunk| chunk.map_err(|_| UpstreamError::Stream(None)));
        Self {
            events: Box::pin(sse_events(bytes, SseLimits::default())),
        }
    }

    /// The next event, or `None` at the end; panics after [`WAIT`].
    pub(crate) async fn next(&mut self) -> Option<SseEvent> {
        tokio::time::timeout(WAIT, self.events.next())
            .await
            .expect("an event in time")
            .map(|event| event.expect("a well-formed event stream"))
    }

    /// Every remaining event.
    pub(crate) async fn rest(mut self) -> Vec<SseEvent> {
        let mut all = Vec::new();
        while let Some(event) = self.next().await {
            all.push(event);
        }
        all
    }
}

pub(crate) fn data(event: &SseEvent) -> Value {
    serde_json::from_str(&event.data).expect("JSON data")
}

/// A gateway with the in-process mock, quick tokens and a known AI key.
pub(crate) async fn app(overrides: &[(&str, &str)]) -> TestApp {
    let tokens = TOKENS.to_string();
    let mut all = vec![
        ("AI_API_KEY", AI_KEY),
        ("MOCK_TOKENS", tokens.as_str()),
        ("MOCK_TOKEN_DELAY_MS", "1"),
    ];
    all.extend_from_slice(overrides);
    spawn_app(&all).await
}

fn mock(app: &TestApp) -> String {
    app.state.simulator.as_ref().expect("in-process mock").url()
}

pub(crate) async fn mock_post(mock_url: &str, path: &str, body: Value) {
    let response = reqwest::Client::new()
        .post(format!("{mock_url}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
}

pub(crate) async fn mock_stats(mock_url: &str) -> Value {
    reqwest::get(format!("{mock_url}/__mock/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls until `check` holds (there is no event to await for state another process owns).
pub(crate) async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let polled = tokio::time::timeout(WAIT, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(polled.is_ok(), "timed out waiting for {what}");
}

pub(crate) async fn wait_stat(mock_url: &str, field: &str, value: u64) {
    eventually(&format!("mock {field} == {value}"), || async {
        mock_stats(mock_url).await[field] == value
    })
    .await;
}

/// A completed conversation of `user`, with one generated message.
async fn ready_conversation(app: &TestApp, user: &str) -> ConversationId {
    let conversation = conversation(app, user).await;
    app.state
        .store
        .complete_conversation(
            conversation,
            &[NewMessage {
                role: MessageRole::Assistant,
                content: "Once upon a time.".into(),
                status: MessageStatus::Completed,
            }],
        )
        .await
        .unwrap();
    conversation
}

/// A pending conversation of `user`.
async fn conversation(app: &TestApp, user: &str) -> ConversationId {
    let owner = UserId::new(user);
    let scenario = Scenario {
        id: ScenarioId::new(),
        owner: owner.clone(),
        novel_id: "novel-1".into(),
        description: "a storm at sea".into(),
        passage_ids: Vec::new(),
        passages_source: "ai".into(),
        created_at: 0,
    };
    app.state.store.insert_scenario(&scenario).await.unwrap();
    app.state
        .store
        .insert_conversation(&owner, scenario.id)
        .await
        .unwrap()
        .id
}

fn user() -> String {
    format!("chat-{}", uuid::Uuid::new_v4())
}

async fn send(app: &TestApp, user: &str, id: ConversationId, content: &str) -> reqwest::Response {
    app.client
        .post(app.at(&format!("/api/conversations/{id}/messages")))
        .bearer_auth(app.token(user))
        .json(&json!({ "content": content }))
        .send()
        .await
        .unwrap()
}

async fn open(app: &TestApp, user: &str, id: ConversationId, content: &str) -> EventReader {
    let response = send(app, user, id, content).await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()[header::CONTENT_TYPE].to_str().unwrap();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    EventReader::new(response)
}

async fn messages(app: &TestApp, user: &str, id: ConversationId) -> Vec<Message> {
    app.state
        .store
        .messages(&UserId::new(user), id)
        .await
        .unwrap()
}

async fn last_assistant(app: &TestApp, user: &str, id: ConversationId) -> Option<Message> {
    messages(app, user, id)
        .await
        .into_iter()
        .rev()
        .find(|m| m.role == MessageRole::Assistant && m.content != "Once upon a time.")
}

/// The tokens the mock sends for `content`, asked of the mock directly.
async fn mock_tokens(mock_url: &str, content: &str) -> Vec<String> {
    let response = reqwest::Client::new()
        .post(format!("{mock_url}/api/ai/conversations/x/messages-stream"))
        .bearer_auth(AI_KEY)
        .json(&json!({ "content": content, "history": [] }))
        .send()
        .await
        .unwrap();
    EventReader::new(response)
        .rest()
        .await
        .iter()
        .filter(|e| &*e.event == "token")
        .map(|e| data(e)["content"].as_str().unwrap().to_owned())
        .collect()
}

fn tokens_of(events: &[SseEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| &*e.event == "token")
        .map(|e| data(e)["content"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------- streaming

#[tokio::test]
async fn each_token_reaches_the_client_while_the_mock_still_holds_the_rest() {
    let app = app(&[]).await;
    let (mock, user) = (mock(&app), user());
    let id = ready_conversation(&app, &user).await;
    let expected = mock_tokens(&mock, "Where is the ship?").await;
    assert_eq!(expected.len(), TOKENS);

    mock_post(&mock, "/__mock/hold", json!({ "after_tokens": 1 })).await;
    let mut events = open(&app, &user, id, "Where is the ship?").await;
    wait_stat(&mock, "streams_held", 1).await;
    // The mock has sent exactly one token and is holding: it must already be here.
    let first = events.next().await.unwrap();
    assert_eq!(&*first.event, "token");
    assert_eq!(data(&first)["content"], expected[0]);

    mock_post(&mock, "/__mock/release", json!({})).await;
    let rest = events.rest().await;
    let mut received = vec![expected[0].clone()];
    received.extend(tokens_of(&rest));
    assert_eq!(received, expected, "every token, in order");
    let complete = rest.last().unwrap();
    assert_eq!(&*complete.event, "complete");
    let whole = expected.concat();
    assert_eq!(data(complete)["content"], whole);

    let stored = messages(&app, &user, id).await;
    let (question, answer) = (&stored[stored.len() - 2], &stored[stored.len() - 1]);
    assert_eq!(
        (question.role, question.content.as_str()),
        (MessageRole::User, "Where is the ship?")
    );
    assert_eq!(answer.role, MessageRole::Assistant);
    assert_eq!(answer.status, MessageStatus::Completed);
    assert_eq!(answer.content, whole);
    assert_eq!(data(complete)["message_id"], answer.id.to_string());

    let metrics = app.state.metrics.encode();
    assert!(metrics.contains(r#"sluice_sse_events_total{kind="chat",event="token"} 8"#));
    assert!(metrics.contains("sluice_time_to_first_token_seconds_count 1"));
    assert!(metrics.contains(r#"sluice_sse_streams_active{kind="chat"} 0"#));
}

#[tokio::test]
async fn the_eventsource_route_and_the_message_list_show_the_same_answer() {
    let app = app(&[]).await;
    let user = user();
    let id = ready_conversation(&app, &user).await;
    let response = app
        .client
        .get(app.at(&format!("/api/conversations/{id}/messages-stream")))
        .query(&[("content", "Tell me more")])
        .bearer_auth(app.token(&user))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-cache");
    let events = EventReader::new(response).rest().await;
    let complete = events.last().unwrap();
    assert_eq!(&*complete.event, "complete");

    let list: Value = app
        .client
        .get(app.at(&format!("/api/conversations/{id}/messages")))
        .bearer_auth(app.token(&user))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = list.as_array().unwrap();
    let roles: Vec<_> = list.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["assistant", "user", "assistant"]);
    assert_eq!(list[1]["content"], "Tell me more");
    assert_eq!(list[2]["content"], data(complete)["content"]);
    assert_eq!(list[2]["id"], data(complete)["message_id"]);
    assert_eq!(list[2]["status"], "completed");
    assert!(list[2]["created_at"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn keep_alive_comments_flow_before_the_first_token() {
    let app = app(&[("SSE_KEEPALIVE_SECS", "1")]).await;
    let (mock, user) = (mock(&app), user());
    let id = ready_conversation(&app, &user).await;
    mock_post(&mock, "/__mock/hold", json!({ "after_tokens": 0 })).await;
    let mut response = send(&app, &user, id, "hello").await;
    let chunk = tokio::time::timeout(WAIT, response.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(chunk.starts_with(b":"), "a comment first: {chunk:?}");
    mock_post(&mock, "/__mock/release", json!({})).await;
}

// ---------------------------------------------------------------- the client goes away

#[tokio::test]
async fn a_client_that_leaves_cancels_the_upstream_and_keeps_the_partial_answer() {
    let app = app(&[]).await;
    let (mock, user) = (mock(&app), user());
    let id = ready_conversation(&app, &user).await;
    let expected = mock_tokens(&mock, "Run!").await;
    mock_post(&mock, "/__mock/reset", json!({})).await;

    mock_post(&mock, "/__mock/hold", json!({ "after_tokens": 2 })).await;
    let mut events = open(&app, &user, id, "Run!").await;
    for token in &expected[..2] {
        let event = events.next().await.unwrap();
        assert_eq!(data(&event)["content"], *token);
    }
    wait_stat(&mock, "streams_held", 1).await;
    assert_eq!(app.state.streams.open_for(&UserId::new(&user)), 1);
    drop(events);

    wait_stat(&mock, "streams_cancelled", 1).await;
    let partial = expected[..2].concat();
    eventually("the interrupted answer stored", || async {
        last_assistant(&app, &user, id)
            .await
            .is_some_and(|m| m.status == MessageStatus::Interrupted && m.content == partial)
    })
    .await;
    eventually("the stream slot freed", || async {
        app.state.streams.open_for(&UserId::new(&user)) == 0
    })
    .await;
    mock_post(&mock, "/__mock/release", json!({})).await;
}

// ---------------------------------------------------------------- failures

/// Sends a message with `fault` in force; returns the events and the stored answer.
async fn answer_with_fault(overrides: &[(&str, &str)], fault: Value) -> (Vec<SseEvent>, Message) {
    let app = app(overrides).await;
    let (mock, user) = (mock(&app), user());
    let id = ready_conversation(&app, &user).await;
    mock_post(&mock, "/__mock/faults", fault).await;
    let events = open(&app, &user, id, "What now?").await.rest().await;
    let answer = last_assistant(&app, &user, id)
        .await
        .expect("answer stored");
    (events, answer)
}

fn error_code(events: &[SseEvent]) -> Value {
    let last = events.last().expect("some event");
    assert_eq!(
        &*last.event, "error",
        "the stream ends with an error: {events:?}"
    );
    data(last)["code"].clone()
}

#[tokio::test]
async fn a_stream_dropped_midway_ends_with_an_error_and_a_failed_answer() {
    let (events, answer) = answer_with_fault(
        &[],
        json!({ "mode": "drop_mid_stream", "routes": ["stream"] }),
    )
    .await;
    let tokens = tokens_of(&events);
    assert_eq!(tokens.len(), TOKENS / 2, "the tokens sent before the cut");
    assert_eq!(error_code(&events), "upstream_error");
    assert_eq!(answer.status, MessageStatus::Failed);
    assert_eq!(answer.content, tokens.concat());
}

#[tokio::test]
async fn a_malformed_frame_ends_with_an_error_and_a_failed_answer() {
    let (events, answer) =
        answer_with_fault(&[], json!({ "mode": "malformed", "routes": ["stream"] })).await;
    assert_eq!(tokens_of(&events).len(), 1);
    assert_eq!(error_code(&events), "upstream_error");
    assert_eq!(answer.status, MessageStatus::Failed);
    assert_eq!(answer.content, tokens_of(&events).concat());
}

#[tokio::test]
async fn a_silent_upstream_hits_the_idle_timeout() {
    let (events, answer) = answer_with_fault(
        // Headers after 1 s (within the 5 s first-byte budget), then a ping, then silence.
        &[
            ("STREAM_IDLE_TIMEOUT_MS", "200"),
            ("UPSTREAM_TIMEOUT_MS", "5000"),
        ],
        json!({ "mode": "slow", "slow_ms": 1000, "routes": ["stream"] }),
    )
    .await;
    assert_eq!(error_code(&events), "upstream_timeout");
    assert_eq!(answer.status, MessageStatus::Failed);
}

#[tokio::test]
async fn an_upstream_that_never_starts_times_out_with_an_error_event() {
    let (events, answer) = answer_with_fault(
        &[("UPSTREAM_TIMEOUT_MS", "300")],
        json!({ "mode": "hang", "routes": ["stream"] }),
    )
    .await;
    assert_eq!(events.len(), 1);
    assert_eq!(error_code(&events), "upstream_timeout");
    assert_eq!(answer.status, MessageStatus::Failed);
}

#[tokio::test]
async fn an_upstream_error_before_the_first_token_is_an_error_event() {
    let (events, answer) =
        answer_with_fault(&[], json!({ "mode": "error", "routes": ["stream"] })).await;
    assert_eq!(events.len(), 1);
    assert_eq!(error_code(&events), "ai_unavailable");
    assert_eq!(
        (answer.status, answer.content.as_str()),
        (MessageStatus::Failed, "")
    );
}

#[tokio::test]
async fn an_open_breaker_gives_an_immediate_error_without_calling_upstream() {
    let app = app(&[("BREAKER_WINDOW", "1"), ("BREAKER_OPEN_SECS", "60")]).await;
    let (mock, user) = (mock(&app), user());
    let id = ready_conversation(&app, &user).await;
    let chat = app
        .state
        .ai
        .breakers()
        .into_iter()
        .find(|b| b.name() == "chat")
        .unwrap()
        .clone();
    chat.acquire().unwrap().failure();
    assert_eq!(chat.state().as_str(), "open");

    let events = tokio::time::timeout(Duration::from_secs(2), async {
        open(&app, &user, id, "Anyone there?").await.rest().await
    })
    .await
    .expect("no hanging");
    assert_eq!(events.len(), 1);
    assert_eq!(error_code(&events), "ai_unavailable");
    assert_eq!(mock_stats(&mock).await["calls"]["stream"], 0);
}

/// A tiny AI service that records the request, sends one token, then an event over the cap.
async fn oversized_upstream() -> (String, mpsc::UnboundedReceiver<Value>) {
    let (seen, requests) = mpsc::unbounded_channel();
    let router = Router::new().route(
        "/api/ai/conversations/{id}/messages-stream",
        post(move |body: Bytes| {
            let seen = seen.clone();
            async move {
                seen.send(serde_json::from_slice(&body).unwrap()).unwrap();
                let huge = "x".repeat(300 * 1024);
                let frames = vec![
                    Ok::<_, std::io::Error>(Bytes::from(
                        "event: token\ndata: {\"content\":\"Hi\"}\n\n",
                    )),
                    Ok(Bytes::from(format!(
                        "event: token\ndata: {{\"content\":\"{huge}\"}}\n\n"
                    ))),
                    Ok(Bytes::from("event: complete\ndata: {}\n\n")),
                ];
                Response::builder()
                    .header(header::CONTENT_TYPE, "text/event-stream")
                    .body(Body::from_stream(futures_util::stream::iter(frames)))
                    .unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, requests)
}

#[tokio::test]
async fn an_oversized_event_ends_with_an_error_and_history_is_sent_upstream() {
    let (upstream, mut requests) = oversized_upstream().await;
    let app = app(&[("AI_SERVICE_URL", upstream.as_str())]).await;
    let user = user();
    let id = ready_conversation(&app, &user).await;

    let events = open(&app, &user, id, "Say hi").await.rest().await;
    assert_eq!(tokens_of(&events), ["Hi"]);
    assert_eq!(error_code(&events), "upstream_error");
    let answer = last_assistant(&app, &user, id).await.unwrap();
    assert_eq!(
        (answer.status, answer.content.as_str()),
        (MessageStatus::Failed, "Hi")
    );

    let request = requests.recv().await.unwrap();
    assert_eq!(request["content"], "Say hi");
    assert_eq!(
        request["history"],
        json!([{ "role": "assistant", "content": "Once upon a time." }]),
        "the earlier messages, without the new one"
    );
}

// ---------------------------------------------------------------- before the stream

#[tokio::test]
async fn another_users_conversation_is_not_found() {
    let app = app(&[]).await;
    let (owner, other) = (user(), user());
    let id = ready_conversation(&app, &owner).await;
    assert_problem(send(&app, &other, id, "hi").await, 404, "not_found").await;
    let list = app
        .client
        .get(app.at(&format!("/api/conversations/{id}/messages")))
        .bearer_auth(app.token(&other))
        .send()
        .await
        .unwrap();
    assert_problem(list, 404, "not_found").await;
    assert_eq!(messages(&app, &owner, id).await.len(), 1, "nothing stored");
}

#[tokio::test]
async fn a_conversation_still_generating_is_not_ready() {
    let app = app(&[]).await;
    let user = user();
    let id = conversation(&app, &user).await;
    assert_problem(
        send(&app, &user, id, "hi").await,
        409,
        "conversation_not_ready",
    )
    .await;
}

#[tokio::test]
async fn content_must_be_one_to_eight_thousand_characters() {
    let app = app(&[]).await;
    let user = user();
    let id = ready_conversation(&app, &user).await;
    for content in ["", "   ", &"é".repeat(8001)] {
        let body = assert_problem(
            send(&app, &user, id, content).await,
            400,
            "validation_failed",
        )
        .await;
        assert_eq!(body["errors"][0]["field"], "content");
    }
    let missing = app
        .client
        .get(app.at(&format!("/api/conversations/{id}/messages-stream")))
        .bearer_auth(app.token(&user))
        .send()
        .await
        .unwrap();
    let body = assert_problem(missing, 400, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "content");
    let events = open(&app, &user, id, &"é".repeat(8000)).await.rest().await;
    assert_eq!(&*events.last().unwrap().event, "complete");
}

#[tokio::test]
async fn a_token_is_required() {
    let app = app(&[]).await;
    let id = ConversationId::new();
    let response = app
        .client
        .post(app.at(&format!("/api/conversations/{id}/messages")))
        .json(&json!({ "content": "hi" }))
        .send()
        .await
        .unwrap();
    assert_problem(response, 401, "unauthorized").await;
}

#[tokio::test]
async fn the_stream_cap_refuses_one_more_and_frees_the_slot_on_disconnect() {
    let app = app(&[("MAX_STREAMS_PER_USER", "1")]).await;
    let (mock, user) = (mock(&app), user());
    let id = ready_conversation(&app, &user).await;
    mock_post(&mock, "/__mock/hold", json!({ "after_tokens": 1 })).await;
    let mut first = open(&app, &user, id, "one").await;
    assert_eq!(first.next().await.unwrap().event.as_ref(), "token");

    assert_problem(send(&app, &user, id, "two").await, 429, "too_many_streams").await;
    drop(first);
    eventually("the slot freed", || async {
        app.state.streams.open_for(&UserId::new(&user)) == 0
    })
    .await;
    mock_post(&mock, "/__mock/release", json!({})).await;
    let events = open(&app, &user, id, "three").await.rest().await;
    assert_eq!(&*events.last().unwrap().event, "complete");
}
