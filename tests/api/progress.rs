//! Progress streams: subscribe first, replay the stored state, relay live events from the
//! bus (in-process or Redis), survive Redis faults, and work across instances.

use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use redis::aio::MultiplexedConnection;
use serde_json::{Value, json};
use sluice::ids::{ConversationId, ScenarioId, UserId};
use sluice::store::{Conversation, Scenario};
use tokio::time::timeout;

use crate::helpers::{
    Db, TestApp, redis_connection, settings, spawn_app, spawn_app_on, spawn_with,
};
use crate::support::redis_server::RedisServer;

pub const WAIT: Duration = Duration::from_secs(20);

pub fn shared_redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// One parsed SSE event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<i64>,
    pub event: String,
    pub data: Value,
}

/// Reads SSE events off a streaming response.
pub struct SseReader {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200, "stream opened");
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Self {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped), or `None` when the stream ended.
    pub async fn next(&mut self) -> Option<SseEvent> {
        timeout(WAIT, self.next_untimed())
            .await
            .expect("an SSE event (or the end) in time")
    }

    async fn next_untimed(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_block(&block) {
                    return Some(event);
                }
                continue;
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                Some(Err(error)) => panic!("stream broke: {error}"),
                None => return None,
            }
        }
    }

    /// The next event, which must be named `name`.
    pub async fn expect(&mut self, name: &str) -> SseEvent {
        let event = self
            .next()
            .await
            .unwrap_or_else(|| panic!("ended before {name}"));
        assert_eq!(event.event, name, "{event:?}");
        event
    }
}

fn parse_block(block: &str) -> Option<SseEvent> {
    let mut id = None;
    let mut event = None;
    let mut data = String::new();
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("id:") {
            id = Some(v.trim().parse().expect("numeric id"));
        } else if let Some(v) = line.strip_prefix("event:") {
            event = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.trim_start());
        }
    }
    let event = event?;
    Some(SseEvent {
        id,
        event,
        data: serde_json::from_str(&data).expect("JSON data"),
    })
}

/// A scenario and a pending conversation of `owner`, straight in the store.
pub async fn seed_conversation(app: &TestApp, owner: &str) -> Conversation {
    let owner = UserId::new(owner);
    let scenario = seed_scenario(app, &owner).await;
    app.state
        .store
        .insert_conversation(&owner, scenario)
        .await
        .unwrap()
}

pub async fn seed_scenario(app: &TestApp, owner: &UserId) -> ScenarioId {
    let scenario = Scenario {
        id: ScenarioId::new(),
        owner: owner.clone(),
        novel_id: "novel-1".into(),
        description: "a duel at dawn".into(),
        passage_ids: vec!["p1".into()],
        passages_source: "ai".into(),
        created_at: 1,
    };
    app.state.store.insert_scenario(&scenario).await.unwrap();
    scenario.id
}

pub async fn open_events(app: &TestApp, token: &str, id: ConversationId) -> reqwest::Response {
    app.client
        .get(app.at(&format!("/api/conversations/{id}/events")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

pub fn api_key(app: &TestApp) -> String {
    app.state.settings.ai.api_key.expose().clone()
}

/// Calls an internal route as the AI service.
pub async fn internal(app: &TestApp, id: ConversationId, action: &str, body: Value) -> u16 {
    app.client
        .post(app.at(&format!("/api/internal/conversations/{id}/{action}")))
        .bearer_auth(api_key(app))
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn publish(connection: &mut MultiplexedConnection, id: ConversationId, payload: &str) -> i64 {
    redis::cmd("PUBLISH")
        .arg(format!("conversation:{id}"))
        .arg(payload)
        .query_async(connection)
        .await
        .unwrap()
}

/// `GET /api/conversations/create-stream` for `scenario`, read as SSE.
async fn create_stream(app: &TestApp, token: &str, scenario: &impl std::fmt::Display) -> SseReader {
    let response = app
        .client
        .get(app.at(&format!(
            "/api/conversations/create-stream?scenario_id={scenario}"
        )))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    SseReader::new(response)
}

/// The whole generation through the in-process simulator, as a browser sees it.
async fn generation_reaches_the_client_in_order(app: TestApp) {
    let token = app.token("alice");
    let scenario = seed_scenario(&app, &UserId::new("alice")).await;
    let mut events = create_stream(&app, &token, &scenario).await;

    let first = events.expect("progress").await;
    assert_eq!(first.data["progress"], 0, "sluice's own first event");
    assert_eq!(first.id, Some(0));
    let conversation_id = first.data["conversation_id"].as_str().unwrap().to_owned();

    let mut last_id = 0;
    for expected in [20, 50, 70] {
        let event = events.expect("progress").await;
        assert_eq!(event.data["progress"], expected, "{event:?}");
        assert_eq!(event.data["conversation_id"], conversation_id.as_str());
        assert!(
            event.data["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert!(event.id.unwrap() > last_id, "ids increase");
        last_id = event.id.unwrap();
    }
    let complete = events.expect("complete").await;
    assert!(complete.id.unwrap() > last_id);
    assert_eq!(complete.data["status"], "completed");
    assert_eq!(complete.data["conversation_id"], conversation_id.as_str());
    assert!(complete.data["message_count"].as_u64().unwrap() > 0);
    assert!(
        events.next().await.is_none(),
        "the stream ends after complete"
    );

    let stored: Value = app
        .get_json(&format!("/api/conversations/{conversation_id}"), &token)
        .await;
    assert_eq!(stored["status"], "completed");
    assert_eq!(stored["progress"], 100);
    let metrics = app.state.metrics.encode();
    assert!(
        metrics.contains(r#"sluice_sse_events_total{kind="progress",event="complete"} "#),
        "{metrics}"
    );
}

#[tokio::test]
async fn progress_then_complete_in_order_with_the_local_bus() {
    let app = spawn_app(&[("MOCK_STAGE_DELAY_MS", "20")]).await;
    generation_reaches_the_client_in_order(app).await;
}

#[tokio::test]
async fn progress_then_complete_in_order_with_redis_and_postgres() {
    let redis_url = shared_redis_url();
    let app = spawn_app_on(
        Db::Postgres,
        &[("MOCK_STAGE_DELAY_MS", "20"), ("REDIS_URL", &redis_url)],
    )
    .await;
    generation_reaches_the_client_in_order(app).await;
}

#[tokio::test]
async fn a_complete_from_before_the_subscription_is_delivered_from_the_store() {
    let redis_url = shared_redis_url();
    let app = spawn_app(&[("REDIS_URL", &redis_url)]).await;
    let conversation = seed_conversation(&app, "alice").await;
    let id = conversation.id;
    let messages = json!({"messages": [
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Hi."},
    ]});
    assert_eq!(internal(&app, id, "complete", messages).await, 204);
    // The AI service's own publish, with nobody listening yet.
    let mut connection = redis_connection(&redis_url).await;
    publish(
        &mut connection,
        id,
        &json!({"event": "complete", "conversation_id": id}).to_string(),
    )
    .await;

    let mut events = SseReader::new(open_events(&app, &app.token("alice"), id).await);
    let complete = events.expect("complete").await;
    assert_eq!(complete.data["message_count"], 2);
    assert_eq!(complete.id, Some(1));
    assert!(events.next().await.is_none());
}

#[tokio::test]
async fn last_event_id_skips_what_the_client_has_seen() {
    let app = spawn_app(&[]).await;
    let id = seed_conversation(&app, "alice").await.id;
    let token = app.token("alice");
    let progress = json!({"event": "progress", "progress": 30, "message": "m"});
    assert_eq!(internal(&app, id, "events", progress).await, 204);

    let response = app
        .client
        .get(app.at(&format!("/api/conversations/{id}/events")))
        .bearer_auth(&token)
        .header("Last-Event-ID", "1")
        .send()
        .await
        .unwrap();
    let mut events = SseReader::new(response);
    let progress = json!({"event": "progress", "progress": 40, "message": "m"});
    assert_eq!(internal(&app, id, "events", progress).await, 204);
    let next = events.expect("progress").await;
    assert_eq!(
        next.data["progress"], 40,
        "event 1 (30 %) was not sent again"
    );
    assert_eq!(next.id, Some(2));
}

#[tokio::test]
async fn malformed_pubsub_payloads_are_skipped_without_ending_the_stream() {
    let redis_url = shared_redis_url();
    let app = spawn_app(&[("REDIS_URL", &redis_url)]).await;
    let id = seed_conversation(&app, "alice").await.id;
    let mut events = SseReader::new(open_events(&app, &app.token("alice"), id).await);
    assert_eq!(events.expect("progress").await.data["progress"], 0);

    let mut connection = redis_connection(&redis_url).await;
    for bad in [
        "not json",
        r#"{"event":"complete","conversation_id":"x"#,
        r#"{"event":"progress"}"#,
        r#"{"event":"party"}"#,
    ] {
        assert_eq!(publish(&mut connection, id, bad).await, 1, "one subscriber");
    }
    let good = json!({"event": "progress", "progress": 25, "message": "still here"});
    publish(&mut connection, id, &good.to_string()).await;
    let next = events.expect("progress").await;
    assert_eq!(next.data["progress"], 25);
    assert_eq!(next.data["message"], "still here");
}

#[tokio::test]
async fn the_stream_survives_a_killed_pubsub_connection() {
    let server = RedisServer::start().await;
    let app = spawn_app(&[("REDIS_URL", &server.url())]).await;
    let id = seed_conversation(&app, "alice").await.id;
    let mut events = SseReader::new(open_events(&app, &app.token("alice"), id).await);
    assert_eq!(events.expect("progress").await.data["progress"], 0);

    let mut admin = redis_connection(&server.url()).await;
    let progress = json!({"event": "progress", "progress": 20, "message": "before"});
    assert_eq!(publish(&mut admin, id, &progress.to_string()).await, 1);
    assert_eq!(events.expect("progress").await.data["progress"], 20);

    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(killed, 1, "the instance's one subscriber connection");

    // Stored during the outage: the resync after the reconnect (or the live event) shows it.
    let during = json!({"event": "progress", "progress": 40, "message": "during"});
    assert_eq!(internal(&app, id, "events", during).await, 204);
    let event = events.expect("progress").await;
    assert_eq!(event.data["progress"], 40);

    // Published once the subscriber is back (PUBLISH counts the receivers).
    let after = json!({"event": "progress", "progress": 60, "message": "after"}).to_string();
    timeout(WAIT, async {
        while publish(&mut admin, id, &after).await == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("resubscribed");
    let event = events.expect("progress").await;
    assert_eq!(event.data["progress"], 60);
    assert_eq!(event.data["message"], "after");
}

#[tokio::test]
async fn a_thousand_streams_share_one_subscriber_connection() {
    const STREAMS: usize = 1000;
    let server = RedisServer::start().await;
    let app = spawn_app_on(
        Db::Postgres,
        &[
            ("REDIS_URL", &server.url()),
            ("MAX_STREAMS_PER_USER", "5000"),
            ("RATE_LIMIT_PER_SECOND", "100000"),
            ("RATE_LIMIT_BURST", "100000"),
        ],
    )
    .await;
    let owner = UserId::new("crowd");
    let scenario = seed_scenario(&app, &owner).await;
    let token = app.token("crowd");
    let mut ids = Vec::new();
    for _ in 0..STREAMS {
        let c = app
            .state
            .store
            .insert_conversation(&owner, scenario)
            .await
            .unwrap();
        ids.push(c.id);
    }

    let readers: Vec<(ConversationId, SseReader)> = stream::iter(ids.iter().copied())
        .map(|id| {
            let app = &app;
            let token = &token;
            async move {
                let mut reader = SseReader::new(open_events(app, token, id).await);
                assert_eq!(reader.expect("progress").await.data["progress"], 0);
                (id, reader)
            }
        })
        .buffer_unordered(100)
        .collect()
        .await;
    assert_eq!(readers.len(), STREAMS);
    assert_eq!(app.state.bus.channel_count(), STREAMS);

    let mut admin = redis_connection(&server.url()).await;
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut admin)
        .await
        .unwrap();
    let subscribers = clients
        .lines()
        .filter(|line| {
            line.split(' ')
                .any(|field| field.starts_with("sub=") && field != "sub=0")
        })
        .count();
    assert_eq!(subscribers, 1, "{clients}");

    for id in &ids {
        let payload = json!({"event": "progress", "progress": 42, "message": id.to_string()});
        assert_eq!(publish(&mut admin, *id, &payload.to_string()).await, 1);
    }
    let checked = stream::iter(readers)
        .map(|(id, mut reader)| async move {
            let event = reader.expect("progress").await;
            assert_eq!(event.data["message"], id.to_string(), "its own event only");
            assert_eq!(event.data["conversation_id"], id.to_string());
        })
        .buffer_unordered(200)
        .count()
        .await;
    assert_eq!(checked, STREAMS);
}

#[tokio::test]
async fn a_stream_on_one_instance_hears_callbacks_landing_on_another() {
    let redis_url = shared_redis_url();
    let overrides = [
        ("REDIS_URL", redis_url.as_str()),
        ("AI_API_KEY", "shared-ai-key-0123456789"),
    ];
    let first = settings(Db::Postgres, &overrides).await;
    let database = first.database.url.expose().clone();
    let a = spawn_with(first).await;
    let mut second = overrides.to_vec();
    second.push(("DATABASE_URL", &database));
    let b = spawn_with(settings(Db::Postgres, &second).await).await;

    let id = seed_conversation(&a, "alice").await.id;
    let mut events = SseReader::new(open_events(&a, &a.token("alice"), id).await);
    assert_eq!(events.expect("progress").await.data["progress"], 0);

    let progress = json!({"event": "progress", "progress": 35, "message": "on b"});
    assert_eq!(internal(&b, id, "events", progress).await, 204);
    let event = events.expect("progress").await;
    assert_eq!(event.data["progress"], 35);
    assert_eq!(event.data["message"], "on b");

    let messages = json!({"messages": [{"role": "assistant", "content": "Done."}]});
    assert_eq!(internal(&b, id, "complete", messages).await, 204);
    let complete = events.expect("complete").await;
    assert_eq!(complete.data["message_count"], 1);
    assert!(events.next().await.is_none());
}

#[tokio::test]
async fn an_unreachable_ai_service_ends_the_stream_with_ai_unavailable() {
    let app = spawn_app(&[("AI_SERVICE_URL", "http://127.0.0.1:1")]).await;
    let token = app.token("alice");
    let scenario = seed_scenario(&app, &UserId::new("alice")).await;
    let mut events = create_stream(&app, &token, &scenario).await;
    let first = events.expect("progress").await;
    let id = first.data["conversation_id"].as_str().unwrap().to_owned();
    let error = events.expect("error").await;
    assert_eq!(error.data["code"], "ai_unavailable");
    assert_eq!(error.data["conversation_id"], id.as_str());
    assert!(events.next().await.is_none());

    let status: Value = app
        .get_json(&format!("/api/conversations/{id}/status"), &token)
        .await;
    assert_eq!(status["status"], "failed");
}

#[tokio::test]
async fn a_failed_generation_ends_the_stream_without_leaking_the_reason() {
    let app = spawn_app(&[("MOCK_STAGE_DELAY_MS", "10")]).await;
    let mock = app.state.simulator.as_ref().unwrap().url();
    let set = app
        .client
        .post(format!("{mock}/__mock/faults"))
        .json(&json!({"mode": "error", "rate": 1.0, "routes": ["generate"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let token = app.token("alice");
    let scenario = seed_scenario(&app, &UserId::new("alice")).await;
    let mut events = create_stream(&app, &token, &scenario).await;
    let id = events.expect("progress").await.data["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let error = loop {
        let event = events.next().await.expect("an error before the end");
        if event.event != "progress" {
            break event;
        }
    };
    assert_eq!(error.event, "error");
    assert_eq!(error.data["code"], "upstream_error");
    assert!(!error.data.to_string().contains(sluice::sim::LEAK_CANARY));
    assert!(events.next().await.is_none());

    let body = app
        .client
        .get(app.at(&format!("/api/conversations/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains(r#""status":"failed""#), "{body}");
    assert!(!body.contains(sluice::sim::LEAK_CANARY), "{body}");
}

#[tokio::test]
async fn silence_longer_than_the_generation_timeout_ends_with_upstream_timeout() {
    let app = spawn_app(&[("GENERATION_TIMEOUT_SECS", "1")]).await;
    let id = seed_conversation(&app, "alice").await.id;
    let mut events = SseReader::new(open_events(&app, &app.token("alice"), id).await);
    assert_eq!(events.expect("progress").await.data["progress"], 0);
    let error = events.expect("error").await;
    assert_eq!(error.data["code"], "upstream_timeout");
    assert!(events.next().await.is_none());
    let stored = app
        .state
        .store
        .conversation_unscoped(id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status.as_str(), "failed");
}
