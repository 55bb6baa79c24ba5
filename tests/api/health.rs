//! Health, liveness, readiness and metrics.

use crate::helpers::spawn_app;

#[tokio::test]
async fn health_liveness_and_readiness_answer() {
    let app = spawn_app(&[]).await;
    let health: serde_json::Value = app
        .client
        .get(app.at("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        app.client
            .get(app.at("/health/liveness"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let ready = app
        .client
        .get(app.at("/health/readiness"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"], "up");
    assert_eq!(body["checks"]["redis"], "disabled");
    assert_eq!(body["checks"]["ai_service"], "closed");
}

#[tokio::test]
async fn readiness_is_503_while_redis_is_unreachable() {
    let app = spawn_app(&[("REDIS_URL", "redis://127.0.0.1:1")]).await;
    let response = app
        .client
        .get(app.at("/health/readiness"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["redis"], "down");
    assert_eq!(body["checks"]["database"], "up");
    // Liveness is unaffected: the process is fine.
    assert_eq!(
        app.client
            .get(app.at("/health/liveness"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn metrics_use_the_contract_names_and_matched_routes() {
    let app = spawn_app(&[]).await;
    let token = app.token("metrics-user");
    app.client
        .get(app.at("/api/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let text = app.metrics_text().await;
    assert!(
        text.contains(r#"sluice_http_requests_total{route="/api/me",method="GET",status="200"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("sluice_http_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[tokio::test]
async fn readiness_goes_503_when_redis_dies_and_200_when_it_returns() {
    let mut redis = crate::support::redis_server::RedisServer::start().await;
    let app = spawn_app(&[("REDIS_URL", &redis.url())]).await;
    let ready = |app: &crate::helpers::TestApp| {
        let request = app.client.get(app.at("/health/readiness"));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(ready(&app).await, 200);
    redis.kill();
    assert_eq!(ready(&app).await, 503);
    redis.restart().await;
    // The command connection reconnects on its own; readiness follows within a few probes.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        if ready(&app).await == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "readiness never recovered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn readiness_follows_the_database_200_503_200() {
    use crate::helpers::{Db, fresh_database, settings, spawn_with};
    let url = fresh_database(Db::Postgres).await;
    let parsed = url::Url::parse(&url).unwrap();
    let target = format!(
        "{}:{}",
        parsed.host_str().unwrap(),
        parsed.port().unwrap_or(5432)
    )
    .parse()
    .unwrap();
    let proxy = crate::support::chaos_proxy::ChaosProxy::start(target).await;
    let mut through_proxy = parsed.clone();
    through_proxy.set_port(Some(proxy.addr().port())).unwrap();
    let mut settings = settings(Db::Sqlite, &[]).await;
    settings.database.url = sluice::config::Secret::new(through_proxy.to_string());
    let app = spawn_with(settings).await;
    let ready = || {
        let request = app.client.get(app.at("/health/readiness"));
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap();
            (
                status,
                body["checks"]["database"].as_str().unwrap().to_string(),
            )
        }
    };
    assert_eq!(ready().await, (200, "up".to_string()));
    proxy.cut();
    assert_eq!(ready().await, (503, "down".to_string()));
    // Liveness is unaffected, and an API call fails cleanly instead of hanging.
    assert_eq!(
        app.client
            .get(app.at("/health/liveness"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    proxy.restore();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        if ready().await.0 == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "readiness never recovered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
