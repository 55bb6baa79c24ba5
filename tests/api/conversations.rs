//! The conversation routes: the polling flow, ownership, listing, the stream cap, and the
//! internal routes' authentication.

use std::time::Duration;

use serde_json::{Value, json};
use sluice::ids::{ConversationId, UserId};
use tokio::time::timeout;

use crate::helpers::{TestApp, assert_problem, spawn_app};
use crate::progress::{SseReader, WAIT, api_key, open_events, seed_conversation, seed_scenario};

async fn get_json(app: &TestApp, token: &str, path: &str) -> Value {
    let response = app
        .client
        .get(app.at(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_polling_flow_still_works() {
    let app = spawn_app(&[("MOCK_STAGE_DELAY_MS", "20")]).await;
    let token = app.token("alice");
    let scenario = seed_scenario(&app, &UserId::new("alice")).await;
    let response = app
        .client
        .post(app.at("/api/conversations"))
        .bearer_auth(&token)
        .json(&json!({"scenario_id": scenario}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "pending");
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/conversations/{id}"));

    // What an old client does: poll until done, noting the progress it sees.
    let mut seen = Vec::new();
    let status = timeout(WAIT, async {
        loop {
            let status = get_json(&app, &token, &format!("{location}/status")).await;
            seen.push(status["progress"].as_i64().unwrap());
            if status["status"] == "completed" {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("completed in time");
    assert_eq!(status["progress"], 100);
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "never backwards: {seen:?}"
    );

    let conversation = get_json(&app, &token, &location).await;
    assert_eq!(conversation["id"], id.as_str());
    assert_eq!(conversation["scenario_id"], scenario.to_string());
    assert_eq!(conversation["status"], "completed");
    assert!(conversation["completed_at"].is_string());
    let list = get_json(&app, &token, "/api/conversations?limit=10").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
}

#[tokio::test]
async fn the_list_is_newest_first_and_paged() {
    let app = spawn_app(&[]).await;
    let owner = UserId::new("alice");
    let scenario = seed_scenario(&app, &owner).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let c = app
            .state
            .store
            .insert_conversation(&owner, scenario)
            .await
            .unwrap();
        ids.push(c.id.to_string());
        tokio::time::sleep(Duration::from_millis(2)).await; // distinct created_at
    }
    seed_conversation(&app, "bob").await;
    let token = app.token("alice");
    let page = get_json(&app, &token, "/api/conversations?limit=2").await;
    let page: Vec<&str> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(page, [ids[2].as_str(), ids[1].as_str()]);
    let rest = get_json(
        &app,
        &token,
        &format!("/api/conversations?limit=2&before={}", ids[1]),
    )
    .await;
    assert_eq!(rest.as_array().unwrap().len(), 1);
    assert_eq!(rest[0]["id"], ids[0].as_str());
}

#[tokio::test]
async fn another_users_conversation_or_scenario_is_not_found() {
    let app = spawn_app(&[]).await;
    let theirs = seed_conversation(&app, "bob").await;
    let token = app.token("alice");
    for path in [
        format!("/api/conversations/{}", theirs.id),
        format!("/api/conversations/{}/status", theirs.id),
        format!("/api/conversations/{}/events", theirs.id),
        format!(
            "/api/conversations/create-stream?scenario_id={}",
            theirs.scenario_id
        ),
        format!("/api/conversations/{}", ConversationId::new()),
    ] {
        let response = app
            .client
            .get(app.at(&path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_problem(response, 404, "not_found").await;
    }
    let response = app
        .client
        .post(app.at("/api/conversations"))
        .bearer_auth(&token)
        .json(&json!({"scenario_id": theirs.scenario_id}))
        .send()
        .await
        .unwrap();
    assert_problem(response, 404, "not_found").await;
    assert_eq!(
        app.state.streams.open_for(&UserId::new("alice")),
        0,
        "no slot leaked"
    );
}

#[tokio::test]
async fn a_bad_scenario_id_is_a_validation_error() {
    let app = spawn_app(&[]).await;
    let response = app
        .client
        .post(app.at("/api/conversations"))
        .bearer_auth(app.token("alice"))
        .json(&json!({"scenario_id": "nope"}))
        .send()
        .await
        .unwrap();
    let body = assert_problem(response, 400, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "scenario_id");
}

#[tokio::test]
async fn streams_count_against_the_per_user_cap() {
    let app = spawn_app(&[("MAX_STREAMS_PER_USER", "1")]).await;
    let c = seed_conversation(&app, "alice").await;
    let token = app.token("alice");
    let mut open = SseReader::new(open_events(&app, &token, c.id).await);
    assert_eq!(open.expect("progress").await.data["progress"], 0);
    assert_problem(
        open_events(&app, &token, c.id).await,
        429,
        "too_many_streams",
    )
    .await;
    let metrics = app.state.metrics.encode();
    assert!(
        metrics.contains(r#"sluice_sse_streams_active{kind="progress"} 1"#),
        "{metrics}"
    );
    drop(open);
    // The slot is freed once the server notices the client is gone.
    timeout(WAIT, async {
        while app.state.streams.open_for(&UserId::new("alice")) > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("slot freed");
}

#[tokio::test]
async fn internal_routes_accept_only_the_ai_key() {
    let app = spawn_app(&[]).await;
    let c = seed_conversation(&app, "alice").await;
    let path = app.at(&format!("/api/internal/conversations/{}/failed", c.id));
    let body = json!({"error": "boom"});
    let user = app.token("alice");
    for auth in [Some(user.as_str()), Some("wrong-key"), Some(""), None] {
        let mut request = app.client.post(&path).json(&body);
        if let Some(auth) = auth {
            request = request.bearer_auth(auth);
        }
        assert_problem(request.send().await.unwrap(), 401, "unauthorized").await;
    }
    let stored = app
        .state
        .store
        .conversation_unscoped(c.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status.as_str(), "pending", "nothing changed");

    let key = api_key(&app);
    let unknown = app
        .client
        .post(app.at(&format!(
            "/api/internal/conversations/{}/events",
            ConversationId::new()
        )))
        .bearer_auth(&key)
        .json(&json!({"event": "progress", "progress": 10}))
        .send()
        .await
        .unwrap();
    assert_problem(unknown, 404, "not_found").await;
    let malformed = app
        .client
        .post(app.at(&format!("/api/internal/conversations/{}/events", c.id)))
        .bearer_auth(&key)
        .json(&json!({"event": "party"}))
        .send()
        .await
        .unwrap();
    assert_problem(malformed, 400, "validation_failed").await;

    let failed = app
        .client
        .post(&path)
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 204);
    let status = get_json(&app, &user, &format!("/api/conversations/{}/status", c.id)).await;
    assert_eq!(status["status"], "failed");
    assert!(
        !status.to_string().contains("boom"),
        "the AI's words are not shown"
    );
}
