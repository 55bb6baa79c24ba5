//! The JWT matrix, cookie auth and the CSRF origin rule.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

use crate::helpers::{TEST_SECRET, assert_problem, fixture, mint_hs256, now, spawn_app};

async fn me_status(app: &crate::helpers::TestApp, token: &str) -> reqwest::Response {
    app.client
        .get(app.at("/api/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn valid_hs256_token_reaches_me() {
    let app = spawn_app(&[]).await;
    let response = me_status(&app, &app.token("alice")).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["sub"], "alice");
}

#[tokio::test]
async fn hs256_matrix_rejects_every_bad_token() {
    let app = spawn_app(&[]).await;
    let t = now();
    let none_token = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(json!({"sub": "mallory", "exp": t + 3600}).to_string()),
    );
    let cases: Vec<(&str, String)> = vec![
        (
            "expired",
            mint_hs256(TEST_SECRET, &json!({"sub": "a", "exp": t - 120})),
        ),
        (
            "nbf beyond leeway",
            mint_hs256(
                TEST_SECRET,
                &json!({"sub": "a", "exp": t + 3600, "nbf": t + 300}),
            ),
        ),
        (
            "bad signature",
            mint_hs256(
                "another-secret-0123456789",
                &json!({"sub": "a", "exp": t + 3600}),
            ),
        ),
        ("alg none", none_token),
        (
            "missing sub",
            mint_hs256(TEST_SECRET, &json!({"exp": t + 3600})),
        ),
        ("missing exp", mint_hs256(TEST_SECRET, &json!({"sub": "a"}))),
        (
            "exp of the wrong type",
            mint_hs256(TEST_SECRET, &json!({"sub": "a", "exp": "tomorrow"})),
        ),
        ("garbage", "not.a.token".to_string()),
        ("garbage 2", "abc".to_string()),
        ("empty segments", "..".to_string()),
    ];
    for (name, token) in cases {
        let response = me_status(&app, &token).await;
        assert_eq!(response.status(), 401, "{name}");
        assert_eq!(
            response.headers().get("www-authenticate").unwrap(),
            "Bearer",
            "{name}"
        );
        let body = assert_problem(response, 401, "unauthorized").await;
        assert!(!body.to_string().contains(&token), "{name}: token echoed");
    }
    // Within leeway is accepted.
    let within = mint_hs256(
        TEST_SECRET,
        &json!({"sub": "a", "exp": t + 3600, "nbf": t + 10}),
    );
    assert_eq!(me_status(&app, &within).await.status(), 200);
}

#[tokio::test]
async fn missing_token_is_401_with_challenge() {
    let app = spawn_app(&[]).await;
    let response = app.client.get(app.at("/api/me")).send().await.unwrap();
    assert_eq!(
        response.headers().get("www-authenticate").unwrap(),
        "Bearer"
    );
    assert_problem(response, 401, "unauthorized").await;
}

#[tokio::test]
async fn token_in_query_string_is_ignored() {
    let app = spawn_app(&[]).await;
    let token = app.token("alice");
    for param in ["token", "access_token", "jwt"] {
        let response = app
            .client
            .get(app.at(&format!("/api/me?{param}={token}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{param}");
    }
}

#[tokio::test]
async fn issuer_and_audience_are_enforced_when_configured() {
    let app = spawn_app(&[
        ("JWT_ISSUER", "https://issuer.test"),
        ("JWT_AUDIENCE", "sluice"),
    ])
    .await;
    let t = now();
    let good = json!({"sub": "a", "exp": t + 600, "iss": "https://issuer.test", "aud": "sluice"});
    assert_eq!(
        me_status(&app, &mint_hs256(TEST_SECRET, &good))
            .await
            .status(),
        200
    );
    for (name, claims) in [
        (
            "wrong iss",
            json!({"sub": "a", "exp": t + 600, "iss": "https://evil.test", "aud": "sluice"}),
        ),
        (
            "wrong aud",
            json!({"sub": "a", "exp": t + 600, "iss": "https://issuer.test", "aud": "other"}),
        ),
        (
            "no iss",
            json!({"sub": "a", "exp": t + 600, "aud": "sluice"}),
        ),
        (
            "no aud",
            json!({"sub": "a", "exp": t + 600, "iss": "https://issuer.test"}),
        ),
    ] {
        let response = me_status(&app, &mint_hs256(TEST_SECRET, &claims)).await;
        assert_eq!(response.status(), 401, "{name}");
    }
}

fn rsa_token(key_file: &str, kid: Option<&str>, claims: &serde_json::Value) -> String {
    let pem = std::fs::read(fixture(key_file)).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_string);
    encode(&header, claims, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}

#[tokio::test]
async fn public_key_accepts_its_family_and_refuses_hs256_confusion() {
    let public = fixture("jwt/rsa1.pub.pem");
    let app = spawn_app(&[
        ("JWT_SECRET", ""),
        ("DEV_LOGIN", "false"),
        ("JWT_PUBLIC_KEY_FILE", public.to_str().unwrap()),
    ])
    .await;
    let claims = json!({"sub": "rsa-user", "exp": now() + 600});
    let good = rsa_token("jwt/rsa1.key.pem", None, &claims);
    assert_eq!(me_status(&app, &good).await.status(), 200);

    // HS256 signed with the public key's bytes: the classic algorithm confusion attack.
    let public_bytes = std::fs::read(&public).unwrap();
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&public_bytes),
    )
    .unwrap();
    assert_eq!(me_status(&app, &confused).await.status(), 401);

    // Another RSA key's signature.
    let other = rsa_token("jwt/rsa2.key.pem", None, &claims);
    assert_eq!(me_status(&app, &other).await.status(), 401);
    // An HS256 token with the old shared secret is refused too.
    assert_eq!(
        me_status(&app, &mint_hs256(TEST_SECRET, &claims))
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn ec_public_key_works() {
    let public = fixture("jwt/ec.pub.pem");
    let app = spawn_app(&[
        ("JWT_SECRET", ""),
        ("DEV_LOGIN", "false"),
        ("JWT_PUBLIC_KEY_FILE", public.to_str().unwrap()),
    ])
    .await;
    let pem = std::fs::read(fixture("jwt/ec.key.pem")).unwrap();
    let token = encode(
        &Header::new(Algorithm::ES256),
        &json!({"sub": "ec-user", "exp": now() + 600}),
        &EncodingKey::from_ec_pem(&pem).unwrap(),
    )
    .unwrap();
    assert_eq!(me_status(&app, &token).await.status(), 200);
}

#[tokio::test]
async fn cookie_auth_works_and_foreign_origin_post_is_rejected() {
    let app = spawn_app(&[]).await;
    // dev login sets the cookie with the contract's attributes
    let response = app
        .client
        .post(app.at("/api/auth/dev-login"))
        .json(&json!({"username": "carol"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookie = response
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("sluice_token="), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    assert!(!cookie.contains("Secure"), "dev login is on: no Secure");
    let pair = cookie.split(';').next().unwrap().to_string();

    let me = app
        .client
        .get(app.at("/api/me"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let body: serde_json::Value = me.json().await.unwrap();
    assert_eq!(body["sub"], "carol");

    // An unsafe request with the cookie from a foreign origin is refused …
    let foreign = app
        .client
        .post(app.at("/api/auth/logout"))
        .header("cookie", &pair)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_problem(foreign, 403, "csrf_rejected").await;
    // … and so is one with no Origin or Referer at all.
    let bare = app
        .client
        .post(app.at("/api/auth/logout"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_problem(bare, 403, "csrf_rejected").await;
    // The same request with a Bearer header needs no origin.
    let token = pair.trim_start_matches("sluice_token=");
    let bearer = app
        .client
        .post(app.at("/api/auth/logout"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 204);
}

#[tokio::test]
async fn dev_login_is_404_when_off() {
    let app = spawn_app(&[("DEV_LOGIN", "false")]).await;
    let response = app
        .client
        .post(app.at("/api/auth/dev-login"))
        .json(&json!({"username": "x"}))
        .send()
        .await
        .unwrap();
    assert_problem(response, 404, "not_found").await;
}
