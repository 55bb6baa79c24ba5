//! Server-Sent Events parsing of an upstream byte stream, with caps on line and event size so a
//! misbehaving upstream cannot make us buffer without end.
//!
//! A small parser that follows the WHATWG `text/event-stream` rules instead of
//! `eventsource-stream`: to enforce the caps the guard must already find line ends (LF, CRLF, CR,
//! even a CRLF split across chunks), which is most of a parser; `eventsource-stream` 0.2 would
//! then re-parse its whole buffer from the start on every chunk (quadratic on long lines) and
//! buffers invalid UTF-8 without limit. Here every byte is scanned once and memory is bounded
//! by the caps.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::error::UpstreamError;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Size caps for one SSE stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseLimits {
    /// Longest line accepted, in bytes, without its line ending.
    pub max_line_bytes: usize,
    /// Largest event accepted (event type plus data), in bytes.
    pub max_event_bytes: usize,
}

impl Default for SseLimits {
    /// 64 KiB per line, 256 KiB per event: far above any token or progress message.
    fn default() -> Self {
        Self {
            max_line_bytes: 64 * 1024,
            max_event_bytes: 256 * 1024,
        }
    }
}

/// One dispatched event, as an `EventSource` would see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` type, `"message"` when the event named none. Shared: a stream names the
    /// same few types over and over, and each event would otherwise allocate its own copy.
    pub event: Arc<str>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The last event id seen on the stream (ids persist across events), if any.
    pub id: Option<String>,
}

/// Parses `bytes` as `text/event-stream`.
///
/// The returned stream yields events in order and ends after the first error: an error of the
/// byte stream is passed through, and a line or event over `limits` gives
/// [`UpstreamError::TooLarge`]. Events completed before the error are yielded first. An event
/// left unterminated when the bytes end is dropped, as the SSE specification says.
pub fn sse_events<S>(
    bytes: S,
    limits: SseLimits,
) -> impl Stream<Item = Result<SseEvent, UpstreamError>>
where
    S: Stream<Item = Result<Bytes, UpstreamError>>,
{
    async_stream::stream! {
        let mut bytes = std::pin::pin!(bytes);
        let mut parser = SseParser::new(limits);
        let mut ready = Vec::new();
        while let Some(chunk) = bytes.next().await {
            let outcome = chunk.and_then(|chunk| parser.feed(&chunk, &mut ready));
            for event in ready.drain(..) {
                yield Ok(event);
            }
            if let Err(err) = outcome {
                yield Err(err);
                return;
            }
        }
    }
}

/// Incremental `text/event-stream` parser: bytes in, complete events out.
struct SseParser {
    limits: SseLimits,
    /// The current line, carried across chunks until its end arrives.
    line: Vec<u8>,
    /// The previous line ended with CR: an LF starting the next bytes completes that CRLF.
    after_cr: bool,
    /// No line processed yet (a leading BOM is skipped).
    at_start: bool,
    /// The current event's `event:` type, if it named one.
    event_type: Option<Arc<str>>,
    /// The last type named on the stream, reused while the stream names it again.
    last_type: Option<Arc<str>>,
    data: String,
    last_id: String,
}

impl SseParser {
    fn new(limits: SseLimits) -> Self {
        Self {
            limits,
            line: Vec::new(),
            after_cr: false,
            at_start: true,
            event_type: None,
            last_type: None,
            data: String::new(),
            last_id: String::new(),
        }
    }

    /// Consumes one chunk, appending the events it completes to `out`.
    fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), UpstreamError> {
        while let Some((&first, rest)) = chunk.split_first() {
            if std::mem::take(&mut self.after_cr) && first == b'\n' {
                chunk = rest;
                continue;
            }
            let Some(end) = memchr::memchr2(b'\n', b'\r', chunk) else {
                return self.extend_line(chunk);
            };
            let (line, rest) = (&chunk[..end], &chunk[end + 1..]);
            self.after_cr = chunk[end] == b'\r';
            chunk = rest;
            if self.line.is_empty() {
                // The whole line is in this chunk (the usual case): read it in place.
                if line.len() > self.limits.max_line_bytes {
                    return Err(self.line_too_long());
                }
                self.process_line(line, out)?;
                continue;
            }
            self.extend_line(line)?;
            let line = std::mem::take(&mut self.line);
            let processed = self.process_line(&line, out);
            self.line = line;
            self.line.clear();
            processed?;
        }
        Ok(())
    }

    fn extend_line(&mut self, bytes: &[u8]) -> Result<(), UpstreamError> {
        if self.line.len() + bytes.len() > self.limits.max_line_bytes {
            return Err(self.line_too_long());
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn line_too_long(&self) -> UpstreamError {
        UpstreamError::TooLarge {
            what: "line",
            limit: self.limits.max_line_bytes,
        }
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), UpstreamError> {
        let line = if std::mem::take(&mut self.at_start) {
            line.strip_prefix(BOM).unwrap_or(line)
        } else {
            line
        };
        if line.is_empty() {
            out.extend(self.dispatch());
            return Ok(());
        }
        if line.starts_with(b":") {
            return Ok(()); // a comment, typically a keep-alive ping
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match name {
            b"event" => self.event_type = Some(self.named(value)),
            b"data" => {
                self.data.reserve(value.len() + 1);
                self.data.push_str(&text(value));
                self.data.push('\n');
            }
            b"id" if !value.contains(&0) => {
                self.last_id = text(value).into_owned();
            }
            // `retry:` sets a browser's reconnection delay; a relay has no use for it. Unknown
            // fields are ignored, as the specification says.
            _ => {}
        }
        let type_len = self.event_type.as_deref().map_or(0, str::len);
        if type_len + self.data.len() > self.limits.max_event_bytes {
            return Err(UpstreamError::TooLarge {
                what: "event",
                limit: self.limits.max_event_bytes,
            });
        }
        Ok(())
    }

    /// The type an `event:` line names: the last one again when it is the same.
    fn named(&mut self, value: &[u8]) -> Arc<str> {
        match &self.last_type {
            Some(last) if last.as_bytes() == value => last.clone(),
            _ => {
                let named: Arc<str> = Arc::from(text(value));
                self.last_type = Some(named.clone());
                named
            }
        }
    }

    /// Ends the current event at a blank line; an event without data is not dispatched.
    fn dispatch(&mut self) -> Option<SseEvent> {
        let event_type = self.event_type.take();
        let mut data = std::mem::take(&mut self.data);
        if data.is_empty() {
            return None;
        }
        data.pop(); // the `\n` appended after the last data line
        Some(SseEvent {
            event: match event_type {
                Some(named) if !named.is_empty() => named,
                _ => self.named(b"message"),
            },
            data,
            id: (!self.last_id.is_empty()).then(|| self.last_id.clone()),
        })
    }
}

/// A field's value as text; invalid UTF-8 becomes U+FFFD, as in a browser (checked first
/// with the faster strict validation: upstream text is valid nearly always).
fn text(value: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(value) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(value),
    }
}

#[cfg(test)]
mod tests;
