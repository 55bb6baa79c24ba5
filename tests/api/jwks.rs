//! JWKS: keys by kid, rotation picked up by a refetch, refetches rate-limited, `oct` refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use tokio::sync::RwLock;

use crate::helpers::{fixture, now, spawn_app};

#[derive(Clone, Default)]
struct JwksServer {
    keys: Arc<RwLock<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

async fn serve_jwks(State(server): State<JwksServer>) -> Json<Value> {
    server.fetches.fetch_add(1, Ordering::SeqCst);
    Json(json!({"keys": *server.keys.read().await}))
}

async fn start(server: JwksServer) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/jwks.json", get(serve_jwks))
        .with_state(server);
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/jwks.json")
}

fn jwk(name: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(fixture(&format!("jwt/{name}.jwk.json"))).unwrap(),
    )
    .unwrap()
}

fn token(key: &str, kid: &str, sub: &str) -> String {
    let pem = std::fs::read(fixture(&format!("jwt/{key}.key.pem"))).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_string());
    encode(
        &header,
        &json!({"sub": sub, "exp": now() + 600}),
        &EncodingKey::from_rsa_pem(&pem).unwrap(),
    )
    .unwrap()
}

async fn status(app: &crate::helpers::TestApp, token: &str) -> u16 {
    app.client
        .get(app.at("/api/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn rotation_is_picked_up_and_refetches_are_rate_limited() {
    let server = JwksServer::default();
    server.keys.write().await.push(jwk("rsa1"));
    let url = start(server.clone()).await;
    let app = spawn_app(&[
        ("JWT_SECRET", ""),
        ("DEV_LOGIN", "false"),
        ("JWT_JWKS_URL", &url),
        ("JWT_JWKS_MIN_REFETCH_SECS", "2"),
    ])
    .await;

    assert_eq!(status(&app, &token("rsa1", "rsa1", "a")).await, 200);
    assert_eq!(
        server.fetches.load(Ordering::SeqCst),
        1,
        "first use fetches once"
    );
    assert_eq!(status(&app, &token("rsa1", "rsa1", "a")).await, 200);
    assert_eq!(
        server.fetches.load(Ordering::SeqCst),
        1,
        "known kid: served from cache"
    );

    // The issuer rotates to rsa2. Within the refetch interval, unknown kids cause no fetch:
    // a flood of tokens with made-up kids cannot hammer the JWKS endpoint.
    server.keys.write().await.push(jwk("rsa2"));
    for i in 0..5 {
        assert_eq!(
            status(&app, &token("rsa2", &format!("made-up-{i}"), "a")).await,
            401
        );
    }
    assert_eq!(
        server.fetches.load(Ordering::SeqCst),
        1,
        "refetch is rate-limited"
    );

    // Once the interval has passed, the new kid triggers exactly one refetch and verifies.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if status(&app, &token("rsa2", "rsa2", "b")).await == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rotation never picked up"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let fetches = server.fetches.load(Ordering::SeqCst);
    assert_eq!(fetches, 2, "exactly one refetch for the rotation");
    // A key signed by rsa2 but claiming rsa1's kid fails the signature check.
    assert_eq!(status(&app, &token("rsa2", "rsa1", "c")).await, 401);
}

#[tokio::test]
async fn symmetric_keys_in_jwks_are_refused() {
    let server = JwksServer::default();
    let secret = "jwks-shared-secret-0123456789";
    server.keys.write().await.push(json!({
        "kty": "oct", "kid": "sym", "alg": "HS256",
        "k": base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, secret)
    }));
    server.keys.write().await.push(jwk("rsa1"));
    let url = start(server.clone()).await;
    let app = spawn_app(&[
        ("JWT_SECRET", ""),
        ("DEV_LOGIN", "false"),
        ("JWT_JWKS_URL", &url),
    ])
    .await;
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("sym".into());
    let forged = encode(
        &header,
        &json!({"sub": "mallory", "exp": now() + 600}),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    assert_eq!(status(&app, &forged).await, 401);
    assert_eq!(status(&app, &token("rsa1", "rsa1", "ok")).await, 200);
}
