//! The event bus against real Redis: fan-out, one subscriber connection, reconnects, lag.
//!
//! Tests that only publish and subscribe use the shared Redis with unique channels; tests that
//! count connections or break Redis use a private `redis-server`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::join_all;
use redis::aio::MultiplexedConnection;
use sluice::events::{
    BusError, BusEvent, BusHealth, EventBus, LocalBus, RedisBus, RedisBusOptions, Subscription,
};
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout};

use crate::helpers::redis_connection;
use crate::support::redis_server::RedisServer;

const WAIT: Duration = Duration::from_secs(10);

fn shared_redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn unique_channel() -> String {
    format!("test:bus:{}", uuid::Uuid::new_v4())
}

/// Short timings so reconnect tests run quickly.
fn fast_options() -> RedisBusOptions {
    RedisBusOptions {
        connect_timeout: Duration::from_secs(1),
        command_timeout: Duration::from_secs(2),
        reconnect_min_delay: Duration::from_millis(20),
        reconnect_max_delay: Duration::from_millis(200),
        ..RedisBusOptions::default()
    }
}

async fn redis_bus(url: &str) -> RedisBus {
    RedisBus::connect_with(url, fast_options()).await.unwrap()
}

fn message(text: &str) -> BusEvent {
    BusEvent::Message(Arc::from(text))
}

async fn next_event(subscription: &mut Subscription) -> BusEvent {
    timeout(WAIT, subscription.next())
        .await
        .expect("an event in time")
        .expect("the subscription is still open")
}

async fn numsub(connection: &mut MultiplexedConnection, channel: &str) -> i64 {
    let (_, count): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(connection)
        .await
        .unwrap();
    count
}

/// Waits for a condition on Redis's side, which gives no event to await.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let polled = timeout(WAIT, async {
        while !check().await {
            sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(polled.is_ok(), "timed out waiting until {what}");
}

// ---- behaviour both buses share ----

async fn delivers_in_order_without_crossing_channels(bus: &dyn EventBus) {
    let (a, b) = (unique_channel(), unique_channel());
    let mut sub_a = bus.subscribe(&a).await.unwrap();
    let mut sub_b = bus.subscribe(&b).await.unwrap();
    assert_eq!(sub_a.channel(), a);

    for i in 0..20 {
        bus.publish(&a, &format!("a{i}")).await.unwrap();
    }
    bus.publish(&b, "b0").await.unwrap();

    for i in 0..20 {
        assert_eq!(next_event(&mut sub_a).await, message(&format!("a{i}")));
    }
    assert_eq!(next_event(&mut sub_b).await, message("b0"));
    bus.publish(&a, "end").await.unwrap();
    assert_eq!(
        next_event(&mut sub_a).await,
        message("end"),
        "b0 never reached a"
    );
}

async fn counts_channels_with_listeners(bus: &dyn EventBus) {
    let channel = unique_channel();
    let before = bus.channel_count();
    let first = bus.subscribe(&channel).await.unwrap();
    let second = bus.subscribe(&channel).await.unwrap();
    assert_eq!(bus.channel_count(), before + 1);
    drop(first);
    assert_eq!(bus.channel_count(), before + 1, "one listener is left");
    drop(second);
    assert_eq!(bus.channel_count(), before);
}

/// `bus` must have a channel capacity of 4.
async fn a_lagging_subscriber_gets_resync_and_the_others_everything(bus: &dyn EventBus) {
    let channel = unique_channel();
    let mut idle = bus.subscribe(&channel).await.unwrap();
    let mut keeping_up = bus.subscribe(&channel).await.unwrap();

    for i in 0..10 {
        bus.publish(&channel, &format!("m{i}")).await.unwrap();
        assert_eq!(next_event(&mut keeping_up).await, message(&format!("m{i}")));
    }

    assert_eq!(next_event(&mut idle).await, BusEvent::Resync);
    let mut tail = Vec::new();
    loop {
        match next_event(&mut idle).await {
            BusEvent::Message(text) if &*text == "m9" => break,
            BusEvent::Message(text) => tail.push(text),
            BusEvent::Resync => panic!("one resync for one lag"),
        }
    }
    assert!(
        tail.len() < 4,
        "only what the buffer held is left: {tail:?}"
    );
}

// ---- local bus ----

#[tokio::test]
async fn local_bus_delivers_in_order_without_crossing_channels() {
    delivers_in_order_without_crossing_channels(&LocalBus::new()).await;
}

#[tokio::test]
async fn local_bus_drops_a_channel_with_its_last_listener() {
    counts_channels_with_listeners(&LocalBus::new()).await;
}

#[tokio::test]
async fn local_bus_resyncs_a_lagging_subscriber() {
    a_lagging_subscriber_gets_resync_and_the_others_everything(&LocalBus::with_capacity(4)).await;
}

#[tokio::test]
async fn local_bus_health_is_disabled_and_shutdown_ends_subscriptions() {
    let bus = LocalBus::new();
    assert_eq!(bus.health(), BusHealth::Disabled);
    let channel = unique_channel();
    let mut subscription = bus.subscribe(&channel).await.unwrap();
    bus.shutdown().await;
    assert_eq!(timeout(WAIT, subscription.next()).await.unwrap(), None);
    assert!(matches!(
        bus.publish(&channel, "x").await,
        Err(BusError::Closed)
    ));
    assert!(matches!(
        bus.subscribe(&channel).await,
        Err(BusError::Closed)
    ));
}

// ---- Redis bus, shared server ----

#[tokio::test]
async fn redis_bus_delivers_in_order_without_crossing_channels() {
    let bus = redis_bus(&shared_redis_url()).await;
    assert_eq!(bus.health(), BusHealth::Up);
    delivers_in_order_without_crossing_channels(&bus).await;
}

#[tokio::test]
async fn redis_bus_unsubscribes_after_the_last_listener() {
    let url = shared_redis_url();
    let bus = redis_bus(&url).await;
    let mut redis = redis_connection(&url).await;
    let channel = unique_channel();

    let first = bus.subscribe(&channel).await.unwrap();
    let mut second = bus.subscribe(&channel).await.unwrap();
    assert_eq!(
        numsub(&mut redis, &channel).await,
        1,
        "one connection for both"
    );

    drop(first);
    bus.publish(&channel, "still here").await.unwrap();
    assert_eq!(next_event(&mut second).await, message("still here"));
    assert_eq!(numsub(&mut redis, &channel).await, 1);

    drop(second);
    assert_eq!(bus.channel_count(), 0);
    eventually("Redis shows no subscriber", || {
        let mut redis = redis.clone();
        let channel = channel.clone();
        async move { numsub(&mut redis, &channel).await == 0 }
    })
    .await;
}

#[tokio::test]
async fn redis_bus_counts_channels_with_listeners() {
    counts_channels_with_listeners(&redis_bus(&shared_redis_url()).await).await;
}

#[tokio::test]
async fn redis_bus_resyncs_a_lagging_subscriber() {
    let options = RedisBusOptions {
        channel_capacity: 4,
        ..fast_options()
    };
    let bus = RedisBus::connect_with(&shared_redis_url(), options)
        .await
        .unwrap();
    a_lagging_subscriber_gets_resync_and_the_others_everything(&bus).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_bus_racing_subscribes_and_drops_leave_no_stray_subscription() {
    let url = shared_redis_url();
    let bus = Arc::new(redis_bus(&url).await);
    let mut redis = redis_connection(&url).await;
    let channel = unique_channel();

    let mut tasks = JoinSet::new();
    for worker in 0..20 {
        let (bus, channel) = (bus.clone(), channel.clone());
        tasks.spawn(async move {
            for round in 0..25 {
                let subscription = bus.subscribe(&channel).await.unwrap();
                if (worker + round) % 3 == 0 {
                    tokio::task::yield_now().await;
                }
                drop(subscription);
            }
        });
    }
    timeout(WAIT, async {
        while let Some(finished) = tasks.join_next().await {
            finished.unwrap();
        }
    })
    .await
    .unwrap();

    let mut keeper = bus.subscribe(&channel).await.unwrap();
    assert_eq!(
        numsub(&mut redis, &channel).await,
        1,
        "a listener has its subscription"
    );
    bus.publish(&channel, "delivered").await.unwrap();
    assert_eq!(next_event(&mut keeper).await, message("delivered"));

    drop(keeper);
    assert_eq!(bus.channel_count(), 0);
    eventually("the last drop unsubscribed", || {
        let mut redis = redis.clone();
        let channel = channel.clone();
        async move { numsub(&mut redis, &channel).await == 0 }
    })
    .await;
}

#[tokio::test]
async fn redis_bus_shutdown_ends_subscriptions_and_refuses_calls() {
    let bus = redis_bus(&shared_redis_url()).await;
    let channel = unique_channel();
    let mut subscription = bus.subscribe(&channel).await.unwrap();
    bus.shutdown().await;
    assert_eq!(timeout(WAIT, subscription.next()).await.unwrap(), None);
    assert!(matches!(
        bus.publish(&channel, "x").await,
        Err(BusError::Closed)
    ));
    assert!(matches!(
        bus.subscribe(&channel).await,
        Err(BusError::Closed)
    ));
}

#[tokio::test]
async fn redis_bus_rejects_an_invalid_url_without_echoing_it() {
    let Err(error) = RedisBus::connect("http://user:hunter2@example.com").await else {
        panic!("an http URL is not a Redis URL");
    };
    assert!(matches!(error, BusError::InvalidUrl(_)));
    assert!(!format!("{error} {error:?}").contains("hunter2"));
}

// ---- Redis bus, private server ----

async fn pubsub_client_list(redis: &mut MultiplexedConnection) -> Vec<String> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(redis)
        .await
        .unwrap();
    list.lines()
        .filter(|line| !line.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

async fn pubsub_connections(redis: &mut MultiplexedConnection) -> usize {
    pubsub_client_list(redis).await.len()
}

#[tokio::test]
async fn redis_bus_serves_a_thousand_subscriptions_over_one_connection() {
    let server = RedisServer::start().await;
    let bus = redis_bus(&server.url()).await;
    let mut redis = redis_connection(&server.url()).await;
    let channels: Vec<String> = (0..1000).map(|_| unique_channel()).collect();

    let subscribed = timeout(WAIT, join_all(channels.iter().map(|c| bus.subscribe(c))))
        .await
        .expect("all subscribed in time");
    let mut subscriptions: Vec<Subscription> = subscribed.into_iter().map(Result::unwrap).collect();
    assert_eq!(bus.channel_count(), 1000);
    assert_eq!(pubsub_connections(&mut redis).await, 1);

    let payloads: Vec<String> = channels.iter().map(|c| format!("for {c}")).collect();
    let published = join_all(
        channels
            .iter()
            .zip(&payloads)
            .map(|(c, p)| bus.publish(c, p)),
    );
    timeout(WAIT, published)
        .await
        .unwrap()
        .into_iter()
        .for_each(Result::unwrap);
    for channel in &channels {
        bus.publish(channel, "end").await.unwrap();
    }

    for (subscription, channel) in subscriptions.iter_mut().zip(&channels) {
        assert_eq!(
            next_event(subscription).await,
            message(&format!("for {channel}"))
        );
        assert_eq!(
            next_event(subscription).await,
            message("end"),
            "nothing else came"
        );
    }
    assert_eq!(pubsub_connections(&mut redis).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_bus_resyncs_and_resumes_after_its_connection_is_killed() {
    let server = RedisServer::start().await;
    let bus = redis_bus(&server.url()).await;
    let mut redis = redis_connection(&server.url()).await;
    let channel = unique_channel();
    let mut subscription = bus.subscribe(&channel).await.unwrap();

    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(killed, 1);

    assert_eq!(next_event(&mut subscription).await, BusEvent::Resync);
    assert_eq!(
        bus.health(),
        BusHealth::Up,
        "the resync comes once resubscribed"
    );
    assert_eq!(numsub(&mut redis, &channel).await, 1);
    bus.publish(&channel, "after the reconnect").await.unwrap();
    assert_eq!(
        next_event(&mut subscription).await,
        message("after the reconnect")
    );
}

#[tokio::test]
async fn redis_bus_resyncs_and_resumes_after_redis_restarts() {
    let mut server = RedisServer::start().await;
    let bus = redis_bus(&server.url()).await;
    let channel = unique_channel();
    let mut before = bus.subscribe(&channel).await.unwrap();
    let mut health = bus.health_changes();

    server.kill();
    timeout(WAIT, health.wait_for(|h| *h == BusHealth::Down))
        .await
        .unwrap()
        .unwrap();
    let mut during = timeout(WAIT, bus.subscribe(&channel))
        .await
        .expect("subscribing while down resolves at once")
        .unwrap();
    assert!(
        timeout(WAIT, bus.publish(&channel, "lost"))
            .await
            .unwrap()
            .is_err()
    );

    let port = server.port();
    server.restart().await;
    assert_eq!(
        server.port(),
        port,
        "the bus reconnects to the same address"
    );
    assert_eq!(next_event(&mut before).await, BusEvent::Resync);
    assert_eq!(next_event(&mut during).await, BusEvent::Resync);
    assert_eq!(bus.health(), BusHealth::Up);

    bus.publish(&channel, "after the restart").await.unwrap();
    assert_eq!(next_event(&mut before).await, message("after the restart"));
    assert_eq!(next_event(&mut during).await, message("after the restart"));
}

#[tokio::test]
async fn redis_bus_started_while_redis_is_down_connects_later() {
    let mut server = RedisServer::start().await;
    server.kill();
    let bus = redis_bus(&server.url()).await;
    assert_eq!(bus.health(), BusHealth::Down);
    let channel = unique_channel();
    let mut subscription = timeout(WAIT, bus.subscribe(&channel))
        .await
        .unwrap()
        .unwrap();

    server.restart().await;
    assert_eq!(next_event(&mut subscription).await, BusEvent::Resync);
    assert_eq!(bus.health(), BusHealth::Up);
    bus.publish(&channel, "hello").await.unwrap();
    assert_eq!(next_event(&mut subscription).await, message("hello"));
}

#[tokio::test]
async fn redis_bus_pings_its_idle_connection_without_disturbing_it() {
    let server = RedisServer::start().await;
    let options = RedisBusOptions {
        ping_interval: Duration::from_millis(10),
        ..fast_options()
    };
    let bus = RedisBus::connect_with(&server.url(), options)
        .await
        .unwrap();
    let redis = redis_connection(&server.url()).await;
    let channel = unique_channel();
    let mut subscription = bus.subscribe(&channel).await.unwrap();
    let health = bus.health_changes();

    eventually("the subscriber connection was pinged", || {
        let mut redis = redis.clone();
        async move {
            let clients = pubsub_client_list(&mut redis).await;
            clients.len() == 1 && clients[0].contains("cmd=ping")
        }
    })
    .await;

    assert!(
        !health.has_changed().unwrap(),
        "the connection never went down"
    );
    bus.publish(&channel, "still subscribed").await.unwrap();
    assert_eq!(
        next_event(&mut subscription).await,
        message("still subscribed"),
        "no resync: nothing was lost"
    );
}
