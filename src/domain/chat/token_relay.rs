//! The AI service's token stream (SSE) turned into [`ChatEvent`]s, one per upstream token as
//! it is parsed, nothing buffered.
//!
//! The stream owns everything the answer needs: the upstream body (dropping the stream drops
//! the upstream connection, which cancels the call), the breaker permit, the user's stream slot,
//! the active-stream gauge and the [`AnswerRecord`]. A stream that ends without the upstream's
//! `complete` is a failure, never a clean-looking end; the breaker only counts a success after
//! `complete`.

use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use tokio::time::Instant;

use super::answer_record::AnswerRecord;
use super::{Chat, ChatEvent, ChatTurn};
use crate::error::ErrorCode;
use crate::limits::StreamSlot;
use crate::metrics::Metrics;
use crate::store::MessageStatus;
use crate::upstream::{
    CallContext, CallError, HistoryMessage, SseEvent, SseLimits, UpstreamError, sse_events,
};

/// The `data` of an upstream `token` event.
#[derive(Deserialize)]
struct TokenData {
    content: String,
}

/// What one upstream event means for the answer.
enum Step {
    Token(String),
    Complete,
    Ignore,
}

/// The answer to `turn` as events; see the module documentation.
pub(super) fn relay(
    chat: Chat,
    turn: ChatTurn,
    history: Vec<HistoryMessage>,
    ctx: CallContext,
    slot: StreamSlot,
) -> impl Stream<Item = ChatEvent> + Send + 'static {
    let started = Instant::now();
    async_stream::stream! {
        let _slot = slot;
        let _gauge = chat.metrics.sse_stream("chat");
        let metrics = chat.metrics.clone();
        let tokens_sent = metrics.sse_event_counter("chat", "token");
        let mut record = AnswerRecord::new(
            chat.store.clone(),
            chat.tasks.clone(),
            turn.owner.clone(),
            turn.conversation_id,
        );
        let conversation_id = turn.conversation_id.to_string();
        // Boxed: the call's future is large and only needed until the headers are in; held
        // inline, its size would stay in this stream's state for the whole answer.
        let opened = Box::pin(chat.ai.chat_stream(&conversation_id, &turn.content, &history, &ctx))
            .await;
        // Sent: an open stream should not hold the conversation's history (up to 20 messages
        // of up to 8,000 characters) for as long as the answer takes.
        drop(history);
        let (bytes, permit) = match opened {
            Ok(opened) => opened,
            Err(err) => {
                yield fail(&mut record, &metrics, &err, true).await;
                return;
            }
        };
        let mut events = std::pin::pin!(sse_events(bytes, SseLimits::default()));
        let mut permit = Some(permit);
        loop {
            let outcome = match events.next().await {
                Some(Ok(event)) => interpret(&event),
                Some(Err(err)) => Err(err),
                None => Err(UpstreamError::Stream(None)),
            };
            match outcome {
                Ok(Step::Ignore) => {}
                Ok(Step::Token(token)) => {
                    if record.text().is_empty() {
                        metrics.time_to_first_token(started.elapsed());
                    }
                    record.push(&token);
                    tokens_sent.inc();
                    yield ChatEvent::Token(token);
                }
                Ok(Step::Complete) => {
                    if let Some(permit) = permit.take() {
                        permit.success();
                    }
                    let content = record.text().to_owned();
                    let event = match record.store(MessageStatus::Completed).await {
                        Some(message) => ChatEvent::Complete {
                            message_id: message.id,
                            content,
                        },
                        None => ChatEvent::Error {
                            code: ErrorCode::Internal,
                            message: "the answer could not be stored",
                        },
                    };
                    yield counted(&metrics, event);
                    return;
                }
                Err(err) => {
                    let first = record.text().is_empty();
                    if let Some(permit) = permit.take() {
                        permit.record(err.counts_as_failure());
                    }
                    yield fail(&mut record, &metrics, &CallError::Upstream(err), first).await;
                    return;
                }
            }
        }
    }
}

/// Reads one upstream event: tokens and the end matter, pings and unknown events do not; an
/// `error` event or a token that is not the expected JSON ends the answer as a failure.
fn interpret(event: &SseEvent) -> Result<Step, UpstreamError> {
    match &*event.event {
        "token" => serde_json::from_str::<TokenData>(&event.data)
            .map(|data| Step::Token(data.content))
            .map_err(|err| UpstreamError::Malformed {
                detail: format!("token event: {err}"),
            }),
        "complete" => Ok(Step::Complete),
        "error" => Err(UpstreamError::Malformed {
            detail: "the AI service sent an error event".to_owned(),
        }),
        _ => Ok(Step::Ignore),
    }
}

/// Stores the answer as failed (keeping any partial text) and says why.
async fn fail(
    record: &mut AnswerRecord,
    metrics: &Metrics,
    err: &CallError,
    before_first_token: bool,
) -> ChatEvent {
    tracing::warn!(error = %err, before_first_token, "chat answer failed");
    record.store(MessageStatus::Failed).await;
    let (code, message) = failure(err, before_first_token);
    counted(metrics, ChatEvent::Error { code, message })
}

/// The code and sentence the browser gets for a failure.
fn failure(err: &CallError, before_first_token: bool) -> (ErrorCode, &'static str) {
    const UNAVAILABLE: &str = "the AI service is unavailable right now; try again shortly";
    match err {
        CallError::Rejected(_) => (ErrorCode::AiUnavailable, UNAVAILABLE),
        CallError::Upstream(UpstreamError::Timeout(_) | UpstreamError::IdleTimeout(_)) => (
            ErrorCode::UpstreamTimeout,
            "the AI service did not answer in time",
        ),
        CallError::Upstream(_) if before_first_token => (ErrorCode::AiUnavailable, UNAVAILABLE),
        CallError::Upstream(_) => (
            ErrorCode::UpstreamError,
            "the AI service failed in the middle of the answer",
        ),
    }
}

fn counted(metrics: &Metrics, event: ChatEvent) -> ChatEvent {
    metrics.sse_event("chat", event.name());
    event
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use super::*;
    use crate::upstream::Rejected;

    fn event(name: &str, data: &str) -> SseEvent {
        SseEvent {
            event: name.into(),
            data: data.to_owned(),
            id: None,
        }
    }

    #[test]
    fn tokens_are_read_from_their_json() {
        match interpret(&event("token", r#"{"content":" word"}"#)) {
            Ok(Step::Token(token)) => assert_eq!(token, " word"),
            _ => panic!("expected a token"),
        }
        assert!(matches!(
            interpret(&event("complete", "{}")),
            Ok(Step::Complete)
        ));
        assert!(matches!(
            interpret(&event("message", "x")),
            Ok(Step::Ignore)
        ));
    }

    #[test]
    fn a_broken_token_or_an_error_event_is_malformed() {
        assert!(matches!(
            interpret(&event("token", "{not json")),
            Err(UpstreamError::Malformed { .. })
        ));
        assert!(matches!(
            interpret(&event("error", r#"{"error":"x"}"#)),
            Err(UpstreamError::Malformed { .. })
        ));
    }

    /// An open answer is held for as long as the model talks, thousands at a time: its
    /// state must not carry the upstream call's future (boxed, and gone once the answer's
    /// headers are in). Inline, that future tripled the stream's size.
    #[tokio::test]
    async fn an_open_answer_does_not_hold_the_call_future() {
        let metrics = Metrics::new();
        let store = crate::store::Store::connect("sqlite::memory:")
            .await
            .unwrap();
        let client = crate::upstream::UpstreamClient::new(crate::upstream::UpstreamConfig::new(
            "key",
            Duration::from_secs(1),
            Duration::from_secs(1),
        ))
        .unwrap();
        let ai = crate::upstream::AiService::new(
            client,
            url::Url::parse("http://127.0.0.1:9").unwrap(),
            &[],
            crate::upstream::BreakerConfig::default(),
            metrics.clone(),
        );
        let chat = Chat::new(store, ai, metrics, tokio_util::task::TaskTracker::new());
        let owner = crate::ids::UserId::new("someone");
        let slot = crate::limits::StreamSlots::new(1).acquire(&owner).unwrap();
        let turn = ChatTurn {
            owner,
            conversation_id: crate::ids::ConversationId::new(),
            content: "hi".to_owned(),
        };
        let stream = relay(chat, turn, Vec::new(), CallContext::default(), slot);
        let size = std::mem::size_of_val(&stream);
        assert!(size < 2048, "an open answer's state is {size} bytes");
    }

    #[test]
    fn failures_map_to_the_contract_codes() {
        let rejected = CallError::Rejected(Rejected {
            retry_after: Duration::from_secs(1),
        });
        assert_eq!(failure(&rejected, true).0, ErrorCode::AiUnavailable);
        let broken = CallError::Upstream(UpstreamError::Stream(None));
        assert_eq!(failure(&broken, true).0, ErrorCode::AiUnavailable);
        assert_eq!(failure(&broken, false).0, ErrorCode::UpstreamError);
        let idle = CallError::Upstream(UpstreamError::IdleTimeout(Duration::from_secs(1)));
        assert_eq!(failure(&idle, false).0, ErrorCode::UpstreamTimeout);
    }
}
