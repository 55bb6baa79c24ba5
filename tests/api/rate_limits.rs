//! 429 with the contract's headers, per user or (anonymous) per peer address; limits shared
//! across instances through Redis (leased a few tokens at a time to busy clients); a dead Redis
//! falls back to the local limiter instead of lifting limits.

use std::time::{Duration, Instant};

use crate::helpers::{TestApp, assert_problem, redis_connection, spawn_app};
use crate::support::redis_server::RedisServer;

async fn me(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .get(app.at("/api/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn burst_then_429_with_headers_and_health_is_never_limited() {
    let app = spawn_app(&[("RATE_LIMIT_BURST", "3"), ("RATE_LIMIT_PER_SECOND", "1")]).await;
    let token = app.token("limited-user");
    for remaining in [2, 1, 0] {
        let response = me(&app, &token).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers().get("ratelimit-policy").unwrap(),
            "\"general\";q=3;w=3"
        );
        let current = response
            .headers()
            .get("ratelimit")
            .unwrap()
            .to_str()
            .unwrap();
        assert!(
            current.starts_with(&format!("\"general\";r={remaining};t=")),
            "{current}"
        );
    }
    let limited = me(&app, &token).await;
    let retry_after: u64 = limited
        .headers()
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert!(limited.headers().get("ratelimit-policy").is_some());
    assert!(limited.headers().get("ratelimit").is_some());
    assert_problem(limited, 429, "rate_limited").await;

    // Another user is unaffected; health and metrics are never limited.
    assert_eq!(me(&app, &app.token("other-user")).await.status(), 200);
    for _ in 0..10 {
        for path in [
            "/health",
            "/health/liveness",
            "/health/readiness",
            "/metrics",
        ] {
            let response = app.client.get(app.at(path)).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
        }
    }
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("sluice_rate_limited_total{class=\"general\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn limit_is_shared_by_two_instances_on_one_redis() {
    let overrides = [
        ("RATE_LIMIT_BURST", "4"),
        ("RATE_LIMIT_PER_SECOND", "1"),
        ("REDIS_URL", "redis://127.0.0.1:6379"),
    ];
    let a = spawn_app(&overrides).await;
    let b = spawn_app(&overrides).await;
    let user = format!("shared-{}", uuid::Uuid::new_v4());
    let token = a.token(&user);
    assert_eq!(me(&a, &token).await.status(), 200);
    assert_eq!(me(&b, &token).await.status(), 200);
    assert_eq!(me(&a, &token).await.status(), 200);
    assert_eq!(me(&b, &token).await.status(), 200);
    // The burst of 4 is spent across both instances.
    assert_problem(me(&a, &token).await, 429, "rate_limited").await;
    assert_problem(me(&b, &token).await, 429, "rate_limited").await;
}

/// Rate-limit scripts Redis has run (the first call of a script is an `EVAL`).
async fn limit_scripts_run(redis_url: &str) -> u64 {
    let mut conn = redis_connection(redis_url).await;
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    stats
        .lines()
        .filter(|l| l.starts_with("cmdstat_eval:") || l.starts_with("cmdstat_evalsha:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

#[tokio::test]
async fn busy_clients_take_leases_yet_two_instances_never_exceed_the_burst() {
    const BURST: u64 = 320;
    let redis = RedisServer::start().await;
    let url = redis.url();
    let overrides = [
        ("RATE_LIMIT_BURST", "320"),
        ("RATE_LIMIT_PER_SECOND", "1"),
        ("REDIS_URL", url.as_str()),
    ];
    let a = spawn_app(&overrides).await;
    let b = spawn_app(&overrides).await;
    let token = a.token("lease-user");
    let started = Instant::now();
    let before = limit_scripts_run(&url).await;
    let (mut admitted, mut refused_in_a_row) = (0u64, 0);
    while refused_in_a_row < 2 {
        for app in [&a, &b] {
            match me(app, &token).await.status().as_u16() {
                200 => {
                    admitted += 1;
                    refused_in_a_row = 0;
                }
                429 => refused_in_a_row += 1,
                other => panic!("unexpected status {other}"),
            }
        }
        assert!(admitted <= 2 * BURST, "the limit never applied");
    }
    let scripts = limit_scripts_run(&url).await - before;
    // The bucket refills one token a second while the test runs.
    let refilled = started.elapsed().as_secs() + 1;
    assert!(
        admitted <= BURST + refilled,
        "{admitted} admitted: more than the burst across the two instances"
    );
    assert!(
        admitted >= BURST - 16,
        "{admitted} admitted: leases stranded too much of the burst"
    );
    assert!(
        scripts * 2 < admitted,
        "{scripts} Redis round trips for {admitted} admitted requests: no leases"
    );
}

/// A gateway whose general limit (`burst`, refilled at `per_second`) lives in a Redis of its
/// own, so that `limit_scripts_run` counts only this gateway's scripts.
async fn app_on_private_redis(burst: &str, per_second: &str) -> (RedisServer, TestApp) {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let app = spawn_app(&[
        ("RATE_LIMIT_BURST", burst),
        ("RATE_LIMIT_PER_SECOND", per_second),
        ("REDIS_URL", url.as_str()),
    ])
    .await;
    (redis, app)
}

/// A busy client's next lease is asked for in the background once the one it holds is half
/// spent, so its requests never wait for Redis: with Redis frozen after that, every request
/// the first lease could not have covered is still served from leased tokens, none by the
/// local fallback (which a request waiting for the frozen Redis would reach after the
/// connection's response timeout).
#[tokio::test]
async fn a_busy_clients_next_lease_is_taken_before_it_is_needed() {
    let (redis, app) = app_on_private_redis("100000", "1000").await;
    let url = redis.url();
    let token = app.token("refill-ahead-user");
    // The first request takes a first lease of 64; 32 more leave it half spent.
    assert_eq!(me(&app, &token).await.status(), 200);
    let before = limit_scripts_run(&url).await;
    for _ in 0..32 {
        assert_eq!(me(&app, &token).await.status(), 200);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while limit_scripts_run(&url).await == before {
        assert!(Instant::now() < deadline, "no lease was asked for ahead");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut conn = redis_connection(&url).await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(60_000)
        .arg("ALL")
        .query_async(&mut conn)
        .await
        .unwrap();
    // 31 tokens of the first lease and at least 64 of the second: 64 requests need no round
    // trip.
    for _ in 0..64 {
        assert_eq!(me(&app, &token).await.status(), 200);
    }
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("sluice_rate_limiter_local_fallbacks_total 0"),
        "a request waited for the frozen Redis:\n{metrics}"
    );
}

/// A busy client's leases grow with its pace, so it asks Redis less and less often: leases
/// of the first size (64, the next asked for at half of each) would take a round trip every
/// 64 requests.
#[tokio::test]
async fn a_busy_clients_leases_grow_with_its_pace() {
    const REQUESTS: u64 = 3_000;
    let (redis, app) = app_on_private_redis("10000000", "10000000").await;
    let url = redis.url();
    let token = app.token("growing-lease-user");
    let before = limit_scripts_run(&url).await;
    for _ in 0..REQUESTS {
        assert_eq!(me(&app, &token).await.status(), 200);
    }
    let scripts = limit_scripts_run(&url).await - before;
    assert!(
        scripts * 2 <= REQUESTS / 64,
        "{scripts} Redis round trips for {REQUESTS} requests: the leases did not grow"
    );
}

#[tokio::test]
async fn unreachable_redis_falls_back_to_the_local_limiter() {
    let app = spawn_app(&[
        ("RATE_LIMIT_BURST", "2"),
        ("RATE_LIMIT_PER_SECOND", "1"),
        ("REDIS_URL", "redis://127.0.0.1:1"),
    ])
    .await;
    let token = app.token("fallback-user");
    assert_eq!(me(&app, &token).await.status(), 200);
    assert_eq!(me(&app, &token).await.status(), 200);
    assert_problem(me(&app, &token).await, 429, "rate_limited").await;
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("sluice_rate_limiter_local_fallbacks_total 3"),
        "{metrics}"
    );
}

/// Anonymous callers are limited by the address they connect from, which the listener hands
/// to every request: two loopback addresses get a bucket each.
#[tokio::test]
async fn anonymous_callers_are_limited_per_peer_address() {
    let app = spawn_app(&[("RATE_LIMIT_BURST", "2"), ("RATE_LIMIT_PER_SECOND", "1")]).await;
    let from = |ip: [u8; 4]| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from(ip))
            .build()
            .unwrap()
    };
    let (first, second) = (from([127, 0, 0, 1]), from([127, 0, 0, 2]));
    let login = |client: &reqwest::Client| {
        client
            .post(app.at("/api/auth/dev-login"))
            .json(&serde_json::json!({ "sub": "anonymous-caller" }))
            .send()
    };
    for _ in 0..2 {
        assert_ne!(login(&first).await.unwrap().status(), 429);
    }
    assert_problem(login(&first).await.unwrap(), 429, "rate_limited").await;
    let other = login(&second).await.unwrap();
    assert_ne!(other.status(), 429, "127.0.0.2 has a bucket of its own");
    assert_eq!(login(&first).await.unwrap().status(), 429);
}
