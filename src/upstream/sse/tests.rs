#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures_util::{StreamExt, stream};

use super::*;

fn event(event: &str, data: &str, id: Option<&str>) -> SseEvent {
    SseEvent {
        event: event.into(),
        data: data.to_owned(),
        id: id.map(str::to_owned),
    }
}

/// Parses `chunks` with `limits`, returning the events and the error that ended the stream.
async fn parse_with(
    chunks: Vec<Vec<u8>>,
    limits: SseLimits,
) -> (Vec<SseEvent>, Option<UpstreamError>) {
    let bytes = stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from(c))));
    let items: Vec<_> = tokio::time::timeout(
        Duration::from_secs(5),
        sse_events(bytes, limits).collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    let mut events = Vec::new();
    let mut error = None;
    for item in items {
        assert!(error.is_none(), "nothing may follow an error");
        match item {
            Ok(event) => events.push(event),
            Err(err) => error = Some(err),
        }
    }
    (events, error)
}

async fn parse_chunks(chunks: &[&[u8]]) -> Vec<SseEvent> {
    let (events, error) = parse_with(
        chunks.iter().map(|c| c.to_vec()).collect(),
        SseLimits::default(),
    )
    .await;
    assert!(error.is_none(), "unexpected {error:?}");
    events
}

async fn parse(text: &str) -> Vec<SseEvent> {
    parse_chunks(&[text.as_bytes()]).await
}

#[tokio::test]
async fn lf_framing() {
    let events = parse("event: token\ndata: {\"content\":\"Hi\"}\n\ndata: two\n\n").await;
    assert_eq!(
        events,
        [
            event("token", "{\"content\":\"Hi\"}", None),
            event("message", "two", None)
        ]
    );
}

#[tokio::test]
async fn crlf_framing() {
    let events = parse("event: token\r\ndata: a\r\n\r\nevent: complete\r\ndata: {}\r\n\r\n").await;
    assert_eq!(
        events,
        [event("token", "a", None), event("complete", "{}", None)]
    );
}

#[tokio::test]
async fn cr_framing() {
    let events = parse("event: token\rdata: a\r\rdata: b\r\r").await;
    assert_eq!(
        events,
        [event("token", "a", None), event("message", "b", None)]
    );
}

#[tokio::test]
async fn comment_pings_are_skipped() {
    let events = parse(": ping\n\n:\n\ndata: a\n: ping inside an event\ndata: b\n\n").await;
    assert_eq!(events, [event("message", "a\nb", None)]);
}

#[tokio::test]
async fn multi_line_data_is_joined_with_newlines() {
    let events = parse("data: first\ndata:second\ndata\ndata:  indented\n\n").await;
    assert_eq!(
        events,
        [event("message", "first\nsecond\n\n indented", None)]
    );
}

#[tokio::test]
async fn retry_and_unknown_fields_are_ignored() {
    let events = parse("retry: 3000\nevent: token\nretry: x\nfoo: bar\ndata: a\n\n").await;
    assert_eq!(events, [event("token", "a", None)]);
}

#[tokio::test]
async fn ids_persist_until_changed_or_cleared() {
    let events = parse("id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: x\0y\ndata: d\n\n").await;
    assert_eq!(
        events,
        [
            event("message", "a", Some("7")),
            event("message", "b", Some("7")),
            event("message", "c", None),
            event("message", "d", None),
        ]
    );
}

#[tokio::test]
async fn a_leading_bom_is_skipped() {
    let events = parse_chunks(&[b"\xEF\xBB", b"\xBFdata: a\n\n"]).await;
    assert_eq!(events, [event("message", "a", None)]);
}

#[tokio::test]
async fn events_without_data_are_not_dispatched() {
    let events = parse("event: token\n\ndata: a\n\n").await;
    assert_eq!(events, [event("message", "a", None)]);
}

#[tokio::test]
async fn an_unterminated_last_event_is_dropped() {
    let events = parse("data: a\n\ndata: b\n").await;
    assert_eq!(events, [event("message", "a", None)]);
}

#[tokio::test]
async fn a_crlf_split_across_chunks_is_one_line_end() {
    // Were the LF read as a second line end, "a" would be dispatched alone.
    let events = parse_chunks(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]).await;
    assert_eq!(events, [event("message", "a\nb", None)]);
}

#[tokio::test]
async fn a_chunk_boundary_anywhere_gives_the_same_events() {
    let text = "\u{FEFF}: hello\r\nid: 1\r\nevent: token\r\ndata: {\"content\":\"h\u{e9}\"}\r\n\r\n\
                retry: 10\rdata: x\rdata: y\r\r: ping\n\nevent: complete\ndata: {}\n\n";
    let bytes = text.as_bytes();
    let whole = parse(text).await;
    assert_eq!(whole.len(), 3);
    for split in 0..=bytes.len() {
        let (a, b) = bytes.split_at(split);
        assert_eq!(parse_chunks(&[a, b]).await, whole, "split at byte {split}");
    }
    let single_bytes: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(parse_chunks(&single_bytes).await, whole);
}

#[tokio::test]
async fn a_line_over_the_cap_ends_the_stream_after_earlier_events() {
    let limits = SseLimits {
        max_line_bytes: 16,
        max_event_bytes: 1024,
    };
    let exactly = format!("data: {}\n\n", "x".repeat(10)); // a 16-byte line
    let over = format!("data: {}", "x".repeat(11));
    let (events, error) = parse_with(
        vec![exactly.into_bytes(), over[..8].into(), over[8..].into()],
        limits,
    )
    .await;
    assert_eq!(events, [event("message", &"x".repeat(10), None)]);
    assert!(matches!(
        error,
        Some(UpstreamError::TooLarge {
            what: "line",
            limit: 16
        })
    ));
}

#[tokio::test]
async fn a_whole_line_over_the_cap_in_one_chunk_ends_the_stream() {
    let limits = SseLimits {
        max_line_bytes: 16,
        max_event_bytes: 1024,
    };
    let text = format!("data: {}\n\ndata: {}\n\n", "x".repeat(10), "x".repeat(11));
    let (events, error) = parse_with(vec![text.into_bytes()], limits).await;
    assert_eq!(events, [event("message", &"x".repeat(10), None)]);
    assert!(matches!(
        error,
        Some(UpstreamError::TooLarge { what: "line", .. })
    ));
}

#[tokio::test]
async fn a_line_without_end_is_capped_before_it_is_buffered() {
    let limits = SseLimits {
        max_line_bytes: 1024,
        max_event_bytes: 4096,
    };
    let chunks = vec![vec![b'x'; 600], vec![b'x'; 600], vec![b'x'; 600]];
    let (events, error) = parse_with(chunks, limits).await;
    assert!(events.is_empty());
    assert!(matches!(
        error,
        Some(UpstreamError::TooLarge { what: "line", .. })
    ));
}

#[tokio::test]
async fn an_event_over_the_cap_ends_the_stream() {
    let limits = SseLimits {
        max_line_bytes: 64,
        max_event_bytes: 100,
    };
    let line = format!("data: {}\n", "y".repeat(40));
    let small = format!("{line}{line}\n"); // 82 bytes of data
    let big = line.repeat(3); // 123 bytes, never terminated
    let (events, error) = parse_with(vec![small.into_bytes(), big.into_bytes()], limits).await;
    assert_eq!(events.len(), 1);
    assert!(matches!(
        error,
        Some(UpstreamError::TooLarge {
            what: "event",
            limit: 100
        })
    ));
}

#[tokio::test]
async fn an_upstream_error_is_passed_through_and_ends_the_stream() {
    let bytes = stream::iter(vec![
        Ok(Bytes::from_static(b"data: a\n\ndata: b")),
        Err(UpstreamError::IdleTimeout(Duration::from_secs(1))),
        Ok(Bytes::from_static(b"\n\n")),
    ]);
    let items: Vec<_> = sse_events(bytes, SseLimits::default()).collect().await;
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].as_ref().unwrap(), &event("message", "a", None));
    assert!(matches!(items[1], Err(UpstreamError::IdleTimeout(_))));
}

#[tokio::test]
async fn invalid_utf8_is_replaced_not_buffered() {
    let events = parse_chunks(&[b"data: a\xFFb\n\n"]).await;
    assert_eq!(events, [event("message", "a\u{FFFD}b", None)]);
}

#[tokio::test]
async fn a_long_line_in_tiny_chunks_is_parsed_in_linear_time() {
    // eventsource-stream re-scans its buffer per chunk: this input costs it ~2 billion steps.
    let line = format!("data: {}\n\n", "z".repeat(60 * 1024));
    let chunks: Vec<Vec<u8>> = line.as_bytes().chunks(1).map(<[u8]>::to_vec).collect();
    let (events, error) = parse_with(chunks, SseLimits::default()).await;
    assert!(error.is_none());
    assert_eq!(events[0].data.len(), 60 * 1024);
}

#[test]
fn the_event_stream_can_be_moved_to_another_task() {
    fn assert_send<T: Send + 'static>(_: &T) {}
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let bytes = crate::upstream::ByteStream::new(
        stream::empty(),
        tokio::time::Instant::now(),
        crate::upstream::StreamTimeouts {
            first_byte: Duration::from_secs(1),
            idle: Duration::from_secs(1),
        },
    );
    assert_send(&sse_events(bytes, SseLimits::default()));
}

/// A stream that names the same type again gets the one shared copy; an unnamed event is a
/// `message`, and a new name is its own.
#[tokio::test]
async fn repeated_event_types_share_one_copy() {
    let events = parse(
        "event: token\ndata: a\n\nevent: token\ndata: b\n\ndata: c\n\nevent: done\ndata: d\n\n",
    )
    .await;
    let names: Vec<&str> = events.iter().map(|e| &*e.event).collect();
    assert_eq!(names, ["token", "token", "message", "done"]);
    assert!(Arc::ptr_eq(&events[0].event, &events[1].event));
}
