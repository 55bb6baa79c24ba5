//! A minimal incremental Server-Sent Events parser: bytes in as they arrive, complete events
//! out, for any framing (LF or CRLF, comments, multi-line `data`). Only `event` and `data`
//! matter to the load client.

/// One complete event, borrowed from the parser until the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The `event:` field, `message` when absent.
    pub event: &'a str,
    /// The `data:` lines joined with `\n`.
    pub data: &'a str,
}

/// Keeps the unfinished line and event between chunks. Its buffers are kept from event to
/// event: the load client parses every token of thousands of streams on the machine it
/// measures, and a parser that allocates per line costs the contenders CPU.
#[derive(Debug, Default)]
pub struct FrameParser {
    /// A line whose end has not arrived yet.
    line: Vec<u8>,
    event: String,
    data: String,
    has_data: bool,
}

impl FrameParser {
    /// Feeds a chunk; every event it completes is passed to `on_frame`.
    pub fn push(&mut self, mut chunk: &[u8], mut on_frame: impl FnMut(Frame<'_>)) {
        while let Some(end) = chunk.iter().position(|&b| b == b'\n') {
            if self.line.is_empty() {
                // The whole line is in this chunk (the usual case): read it in place.
                self.line_done(&chunk[..end], &mut on_frame);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&chunk[..end]);
                self.line_done(&line, &mut on_frame);
                line.clear();
                self.line = line;
            }
            chunk = &chunk[end + 1..];
        }
        self.line.extend_from_slice(chunk);
    }

    fn line_done(&mut self, line: &[u8], on_frame: &mut impl FnMut(Frame<'_>)) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if std::mem::take(&mut self.has_data) {
                let event = if self.event.is_empty() {
                    "message"
                } else {
                    &self.event
                };
                on_frame(Frame {
                    event,
                    data: &self.data,
                });
            }
            self.event.clear();
            self.data.clear();
            return;
        }
        if line.starts_with(b":") {
            return;
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (text.as_ref(), ""),
        };
        match field {
            "event" => {
                self.event.clear();
                self.event.push_str(value);
            }
            "data" => {
                if std::mem::replace(&mut self.has_data, true) {
                    self.data.push('\n');
                }
                self.data.push_str(value);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// Every frame the chunks complete, as (event, data).
    fn parse(chunks: &[&str]) -> Vec<(String, String)> {
        let mut parser = FrameParser::default();
        let mut frames = Vec::new();
        for chunk in chunks {
            parser.push(chunk.as_bytes(), |frame| {
                frames.push((frame.event.to_owned(), frame.data.to_owned()));
            });
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
        assert_eq!(frames, vec![("token".into(), "{\"a\":1}".into())]);
    }

    #[test]
    fn data_only_events_are_messages_and_multiline_data_joins() {
        let frames = parse(&["data: a\ndata: b\n\ndata: [DONE]\n\nevent: x\n\ndata:\n\n"]);
        assert_eq!(
            frames,
            vec![
                ("message".into(), "a\nb".into()),
                ("message".into(), "[DONE]".into()),
                // An event without data is not dispatched; an empty data line is data.
                ("message".into(), String::new()),
            ]
        );
    }
}
