//! The binary as a newcomer runs it.

use std::process::Stdio;
use std::time::Duration;

use crate::helpers::temp_dir;

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Removes every sluice variable the test runner might have, so the child sees defaults.
fn bare_command() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("JWT_")
            || key.starts_with("AI_")
            || key.starts_with("RATE_")
            || [
                "DATABASE_URL",
                "REDIS_URL",
                "BIND_ADDR",
                "DEV_LOGIN",
                "SLUICE_CONFIG",
            ]
            .contains(&key.as_str())
        {
            cmd.env_remove(key);
        }
    }
    cmd.kill_on_drop(true);
    cmd
}

#[tokio::test]
async fn serve_with_no_configuration_runs_and_dev_login_reaches_me() {
    let dir = temp_dir("fresh-clone");
    let port = free_port();
    let mut child = bare_command()
        .arg("serve")
        .current_dir(&dir)
        // Only the port is chosen, so parallel tests don't collide on 8080.
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{base}/health")).send().await
            && r.status() == 200
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sluice did not come up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let login: serde_json::Value = client
        .post(format!("{base}/api/auth/dev-login"))
        .json(&serde_json::json!({"username": "newcomer"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap();
    let me: serde_json::Value = client
        .get(format!("{base}/api/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["sub"], "newcomer");
    assert!(
        dir.join("sluice.db").exists(),
        "the embedded SQLite file is created"
    );
    child.kill().await.unwrap();
}

#[tokio::test]
async fn invalid_configuration_exits_2_naming_the_variable() {
    let output = bare_command()
        .arg("serve")
        .env("RATE_LIMIT_BURST", "lots")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("RATE_LIMIT_BURST"), "{stderr}");
}

#[tokio::test]
async fn token_command_mints_a_verifiable_token() {
    let secret = "cli-secret-0123456789abcdef";
    let output = bare_command()
        .args([
            "token", "--sub", "cli-user", "--ttl", "60", "--aud", "aud-x",
        ])
        .env("JWT_SECRET", secret)
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    let token = String::from_utf8(output.stdout).unwrap().trim().to_string();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&["aud-x"]);
    let data = jsonwebtoken::decode::<serde_json::Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .unwrap();
    assert_eq!(data.claims["sub"], "cli-user");
    let ttl = data.claims["exp"].as_u64().unwrap() - data.claims["iat"].as_u64().unwrap();
    assert_eq!(ttl, 60);

    let without_secret = bare_command()
        .args(["token", "--sub", "x"])
        .output()
        .await
        .unwrap();
    assert_eq!(without_secret.status.code(), Some(2));
}

#[tokio::test]
async fn migrate_applies_migrations_to_a_fresh_database() {
    let dir = temp_dir("migrate");
    let url = format!("sqlite://{}?mode=rwc", dir.join("m.db").display());
    let output = bare_command()
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let store = sluice::store::Store::connect(&url).await.unwrap();
    let scenarios = store
        .scenarios(
            &sluice::ids::UserId::new("x"),
            sluice::store::Page {
                limit: 1,
                before: None,
            },
        )
        .await
        .unwrap();
    assert!(scenarios.is_empty(), "tables exist");
}

#[tokio::test]
async fn mock_ai_validates_its_configuration_too() {
    let output = bare_command()
        .arg("mock-ai")
        .env("AI_API_KEY", "mock-key")
        .env("LOG_FORMAT", "xml")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("LOG_FORMAT"));
}
