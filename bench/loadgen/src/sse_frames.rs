//! A minimal incremental Server-Sent Events parser: bytes in as they arrive, complete events
//! out, for any framing (LF or CRLF, comments, multi-line `data`). Only `event` and `data`
//! matter to the load client.

/// One complete event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The `event:` field, `message` when absent.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Keeps the unfinished line and event between chunks.
#[derive(Debug, Default)]
pub struct FrameParser {
    line: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
}

impl FrameParser {
    /// Feeds a chunk; every event it completes is passed to `on_frame`.
    pub fn push(&mut self, chunk: &[u8], mut on_frame: impl FnMut(Frame)) {
        for &byte in chunk {
            if byte != b'\n' {
                self.line.push(byte);
                continue;
            }
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            let line = std::mem::take(&mut self.line);
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    let event = self.event.take().unwrap_or_else(|| "message".into());
                    on_frame(Frame { event, data });
                }
                self.event = None;
                continue;
            }
            let text = String::from_utf8_lossy(&line);
            if text.starts_with(':') {
                continue;
            }
            let (field, value) = match text.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (text.as_ref(), ""),
            };
            match field {
                "event" => self.event = Some(value.to_owned()),
                "data" => match &mut self.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => self.data = Some(value.to_owned()),
                },
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn parse(chunks: &[&str]) -> Vec<Frame> {
        let mut parser = FrameParser::default();
        let mut frames = Vec::new();
        for chunk in chunks {
            parser.push(chunk.as_bytes(), |frame| frames.push(frame));
        }
        frames
    }

    #[test]
    fn events_split_across_chunks_and_crlf_are_joined() {
        let frames = parse(&[
            ": ping\r\n\r\nevent: tok",
            "en\r\ndata: {\"a\":1}\r",
            "\n\r\n",
        ]);
        assert_eq!(
            frames,
            vec![Frame {
                event: "token".into(),
                data: "{\"a\":1}".into()
            }]
        );
    }

    #[test]
    fn data_only_events_are_messages_and_multiline_data_joins() {
        let frames = parse(&["data: a\ndata: b\n\ndata: [DONE]\n\n"]);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].event, "message");
        assert_eq!(frames[0].data, "a\nb");
        assert_eq!(frames[1].data, "[DONE]");
    }
}
