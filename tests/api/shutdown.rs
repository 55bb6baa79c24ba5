//! Graceful shutdown: open streams end, the server drains within the grace period.

use std::time::Duration;

use crate::helpers::spawn_app;
use crate::progress::{SseReader, open_events, seed_conversation};

#[tokio::test]
async fn shutdown_ends_open_streams_and_stops_within_the_grace_period() {
    let mut app = spawn_app(&[("SHUTDOWN_GRACE_SECS", "5")]).await;
    let conversation = seed_conversation(&app, "draining-user").await;
    let token = app.token("draining-user");
    let mut stream = SseReader::new(open_events(&app, &token, conversation.id).await);
    let first = stream.expect("progress").await;
    assert_eq!(first.data["progress"], 0);

    let started = std::time::Instant::now();
    app.begin_shutdown();
    // The pending conversation would keep the stream open forever; shutdown ends it.
    assert!(stream.next().await.is_none(), "the stream ends on shutdown");
    assert!(
        app.wait_stopped(Duration::from_secs(5)).await,
        "server stopped in time"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // New connections are refused once stopped.
    let refused = app.client.get(app.at("/health")).send().await;
    assert!(refused.is_err());
}
