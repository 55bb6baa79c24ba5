//! How token streams are framed on the wire.
//!
//! Two dialects: the AI service's own events, framed the way common Python servers do it (CRLF
//! line endings, `: ping` comments), and OpenAI's `data:`-only chunks ending in `[DONE]`. The
//! gateway must accept both, so the mock sends them exactly like that.

use bytes::Bytes;
use serde_json::{Value, json};

/// The frames of one token stream dialect.
pub(crate) trait Framing: Send + 'static {
    /// Sent before the first token.
    fn opening(&self) -> Vec<Bytes>;
    /// A keep-alive sent every few tokens, if the dialect has one.
    fn keepalive(&self) -> Option<Bytes>;
    /// One token.
    fn token(&self, token: &str) -> Bytes;
    /// A frame whose payload is not valid JSON (the `malformed` fault).
    fn broken(&self) -> Bytes;
    /// Sent after the last token; `whole` is the full answer.
    fn closing(&self, whole: &str) -> Vec<Bytes>;
}

/// Frames one SSE event with CRLF line endings.
fn crlf_event(event: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {event}\r\ndata: {data}\r\n\r\n"))
}

/// `POST /api/ai/conversations/{id}/messages-stream`: `event: token` … `event: complete`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AiEvents;

const PING: &str = ": ping\r\n\r\n";

impl Framing for AiEvents {
    fn opening(&self) -> Vec<Bytes> {
        vec![Bytes::from_static(PING.as_bytes())]
    }

    fn keepalive(&self) -> Option<Bytes> {
        Some(Bytes::from_static(PING.as_bytes()))
    }

    fn token(&self, token: &str) -> Bytes {
        crlf_event("token", &json!({ "content": token }).to_string())
    }

    fn broken(&self) -> Bytes {
        crlf_event("token", "{not json")
    }

    fn closing(&self, whole: &str) -> Vec<Bytes> {
        vec![crlf_event(
            "complete",
            &json!({ "content": whole }).to_string(),
        )]
    }
}

/// `POST /v1/chat/completions` with `stream: true`: `chat.completion.chunk` objects.
#[derive(Debug, Clone)]
pub(crate) struct OpenAiChunks {
    /// The completion id shared by all chunks.
    pub(crate) id: String,
    /// Unix seconds, shared by all chunks.
    pub(crate) created: u64,
    /// The model the caller asked for.
    pub(crate) model: String,
}

impl OpenAiChunks {
    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Bytes {
        let chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish_reason }],
        });
        Bytes::from(format!("data: {chunk}\n\n"))
    }
}

impl Framing for OpenAiChunks {
    fn opening(&self) -> Vec<Bytes> {
        vec![self.chunk(json!({ "role": "assistant", "content": "" }), None)]
    }

    fn keepalive(&self) -> Option<Bytes> {
        None
    }

    fn token(&self, token: &str) -> Bytes {
        self.chunk(json!({ "content": token }), None)
    }

    fn broken(&self) -> Bytes {
        Bytes::from_static(b"data: {not json\n\n")
    }

    fn closing(&self, _whole: &str) -> Vec<Bytes> {
        vec![
            self.chunk(json!({}), Some("stop")),
            Bytes::from_static(b"data: [DONE]\n\n"),
        ]
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn ai_events_use_crlf() {
        let frame = AiEvents.token(" word");
        assert_eq!(
            &frame[..],
            b"event: token\r\ndata: {\"content\":\" word\"}\r\n\r\n"
        );
        assert_eq!(&AiEvents.opening()[0][..], b": ping\r\n\r\n");
    }

    #[test]
    fn openai_chunks_end_with_stop_and_done() {
        let framing = OpenAiChunks {
            id: "chatcmpl-1".into(),
            created: 1,
            model: "mock-1".into(),
        };
        let closing = framing.closing("x");
        let stop: Value = serde_json::from_slice(&closing[0][6..]).unwrap();
        assert_eq!(stop["choices"][0]["finish_reason"], "stop");
        assert_eq!(&closing[1][..], b"data: [DONE]\n\n");
        let first: Value = serde_json::from_slice(&framing.opening()[0][6..]).unwrap();
        assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    }
}
