//! The body of a streamed answer: tokens paced by `MOCK_TOKEN_DELAY_MS`, with the hold, the
//! injected faults and the stream accounting applied the same way to both dialects.

use std::io;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;

use super::faults::Fault;
use super::sse::Framing;
use super::state::SharedState;

/// A keep-alive comment every this many tokens (dialects that have one).
const KEEPALIVE_EVERY: usize = 5;

/// Builds a body that sends `tokens` one by one, each frame flushed as it is produced.
///
/// Only the body-level faults matter here (`hang`, `slow`, `malformed`, `drop_mid_stream`);
/// `error` is answered before a stream starts.
pub(crate) fn token_body(
    state: &SharedState,
    framing: impl Framing,
    tokens: Vec<String>,
    fault: Option<Fault>,
) -> Body {
    // Created now, not when the body is first polled, so a caller that leaves before the first
    // byte still counts as a cancelled stream.
    let mut guard = state.stats.open_stream();
    let stats = state.stats.clone();
    let shutdown = state.shutdown.clone();
    let gate = state.hold.gate();
    let delay: Duration = match fault {
        Some(Fault::Slow(slowdown)) => slowdown.apply(state.config.token_delay),
        _ => state.config.token_delay,
    };
    let total = tokens.len();
    let drop_at = matches!(fault, Some(Fault::DropMidStream)).then_some(total / 2);
    let malformed = matches!(fault, Some(Fault::Malformed));
    let hang = matches!(fault, Some(Fault::Hang));

    let frames = async_stream::stream! {
        if hang {
            // Headers only: the server sends them as soon as the body has nothing to give.
            shutdown.cancelled().await;
            guard.aborted();
            return;
        }
        for frame in framing.opening() {
            yield Ok::<Bytes, io::Error>(frame);
        }
        let mut whole = String::new();
        for (sent, token) in tokens.iter().map(Some).chain(std::iter::once(None)).enumerate() {
            if let Some(gate) = gate.as_ref().filter(|gate| gate.after_tokens == sent) {
                let _held = stats.held();
                tokio::select! {
                    () = gate.released() => {}
                    () = shutdown.cancelled() => {
                        guard.aborted();
                        return;
                    }
                }
            }
            let Some(token) = token else { break };
            // No timer at all without a delay: a zero sleep still waits for the runtime's next
            // timer tick (1 ms), which made "zero delay" about 1.3 ms per token.
            if !delay.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.cancelled() => {
                        guard.aborted();
                        return;
                    }
                }
            } else if shutdown.is_cancelled() {
                guard.aborted();
                return;
            }
            if drop_at == Some(sent) {
                // Give the server a turn to flush what was sent, or the cut eats it.
                tokio::task::yield_now().await;
                guard.aborted();
                yield Err(io::Error::other("mock-ai: stream dropped on purpose"));
                return;
            }
            if sent > 0 && sent % KEEPALIVE_EVERY == 0 && let Some(keepalive) = framing.keepalive() {
                yield Ok(keepalive);
            }
            whole.push_str(token);
            yield Ok(framing.token(token));
            if malformed && sent == 0 {
                yield Ok(framing.broken());
            }
        }
        for frame in framing.closing(&whole) {
            yield Ok(frame);
        }
        guard.completed();
    };
    Body::from_stream(frames)
}
