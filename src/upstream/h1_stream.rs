//! An HTTP/1.1 exchange over plain TCP whose response body is read by the task that consumes
//! it: streamed chat answers and passthrough calls whose body is in hand.
//!
//! Why not hyper's client for these: hyper drives each connection from a task of its own and
//! hands the response head and body chunks over through channels, so every token of an
//! answer woke two tasks (the connection's, twice: once for the chunk and once more when the
//! chunk was taken) besides the one relaying it, and every proxied call woke the connection's
//! task to write and again to read. Measured with callgrind (BENCHMARKS.md): reading here
//! instead cut the gateway's instructions per relayed token by about a quarter and per
//! passthrough call by about a tenth. Here the caller's own poll writes the request, reads
//! the socket and decodes in place.
//!
//! The request is written whole (head and a known body); the response head is parsed with
//! `httparse` (hyper's own parser), then the body is framed by `Transfer-Encoding: chunked`,
//! `Content-Length` or the connection's end. A body dropped before its end closes the
//! connection, which is how a call is cancelled; one that ended cleanly hands its connection
//! to [`H1Body::on_clean_end`] for the next exchange.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::Stream;
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::io::poll_read_buf;

use super::error::UpstreamError;
use super::transport::READ_BUFFER_BYTES;

/// Longest response head accepted (status line and headers).
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Most response headers accepted.
const MAX_HEADERS: usize = 64;

/// Longest chunk-size or trailer line accepted.
const MAX_LINE_BYTES: usize = 4096;

/// Takes a connection whose response ended cleanly, for the next exchange.
pub type GiveBack = Box<dyn FnOnce(TcpStream) + Send>;

/// Why an exchange got no response head.
#[derive(Debug)]
pub enum ExchangeError {
    /// The request could not be written whole (the connection was closed or reset): the
    /// upstream cannot have acted on it, and it can go on a new connection.
    Unsent(std::io::Error),
    /// The request was written whole and not one byte came back. On a reused connection
    /// this is most likely the upstream having closed it while idle; in a rare race it read
    /// the request first.
    Unanswered(std::io::Error),
    /// The connection broke, or the head was not HTTP/1.1, after the response began.
    Failed(std::io::Error),
}

impl ExchangeError {
    /// The underlying error.
    pub fn into_inner(self) -> std::io::Error {
        match self {
            Self::Unsent(err) | Self::Unanswered(err) | Self::Failed(err) => err,
        }
    }
}

/// Writes `request` (origin-form URI, `Host` set) on `io` and reads the response head.
/// Interim `1xx` heads are skipped. The body is returned unread, whatever the status.
pub async fn exchange(
    mut io: TcpStream,
    request: &Request<Bytes>,
) -> Result<Response<H1Body>, ExchangeError> {
    let head_request = request.method() == Method::HEAD;
    io.write_all(&encode(request))
        .await
        .map_err(ExchangeError::Unsent)?;
    let mut buf = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let mut answered = false;
    loop {
        if let Some(head) = parse_head(&buf, head_request).map_err(ExchangeError::Failed)? {
            buf.advance(head.len);
            if head.status.is_informational() {
                continue;
            }
            let body = H1Body {
                io: Some(io),
                buf,
                framing: head.framing,
                keep_alive: head.keep_alive,
                give_back: None,
            };
            let mut response = Response::new(body);
            *response.status_mut() = head.status;
            *response.headers_mut() = head.headers;
            return Ok(response);
        }
        if buf.len() >= MAX_HEAD_BYTES {
            let err = invalid("the response head is too large");
            return Err(ExchangeError::Failed(err));
        }
        buf.reserve(READ_BUFFER_BYTES);
        let read = match io.read_buf(&mut buf).await {
            Ok(0) => Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => Ok(()),
            Err(err) => Err(err),
        };
        match read {
            Ok(()) => answered = true,
            Err(err) if answered => return Err(ExchangeError::Failed(err)),
            Err(err) => return Err(ExchangeError::Unanswered(err)),
        }
    }
}

/// The request as bytes on the wire: head, then the body with its length.
fn encode(request: &Request<Bytes>) -> Vec<u8> {
    let body = request.body();
    let path = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    // Sized once: the request line, each header line, the length line and the body.
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let mut out = Vec::with_capacity(64 + path.len() + headers + body.len());
    out.extend_from_slice(request.method().as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in request.headers() {
        // The framing is this function's: the body's own length.
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    debug_assert!(request.headers().contains_key(HOST));
    // As hyper does: an empty body is announced only for methods whose body means something.
    let method = request.method();
    if !body.is_empty()
        || *method == Method::POST
        || *method == Method::PUT
        || *method == Method::PATCH
    {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// What a response head says.
struct Head {
    status: StatusCode,
    headers: HeaderMap,
    framing: Framing,
    /// HTTP/1.1 without `Connection: close`: the connection may take another request.
    keep_alive: bool,
    /// Bytes of the head.
    len: usize,
}

/// Headers the gateway's layers add to a relayed response (`crate::routes::passthrough`).
const ADDED_ON_THE_WAY_OUT: usize = 8;

/// The complete head at the start of `buf`; `None` while it is incomplete. The answer to a
/// `HEAD` request (`head_request`) has no body, whatever its head says.
fn parse_head(buf: &[u8], head_request: bool) -> std::io::Result<Option<Head>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(invalid("the response head is malformed")),
    };
    let status = response
        .code
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| invalid("the response status is malformed"))?;
    // `Some(chunked)` once a Transfer-Encoding is seen: chunked only as its last coding.
    let mut encoding = None;
    let mut length = None;
    let mut keep_alive = response.version == Some(1);
    // Room for the headers the gateway adds to a relayed answer (request id, security and
    // rate-limit headers), so that the map is not grown on the way out.
    let mut map = HeaderMap::with_capacity(response.headers.len() + ADDED_ON_THE_WAY_OUT);
    for header in response.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes());
        let value = HeaderValue::from_bytes(header.value);
        match (name, value) {
            (Ok(name), Ok(value)) => {
                map.append(name, value);
            }
            _ => return Err(invalid("a response header is malformed")),
        }
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = header
                .value
                .rsplit(|b| *b == b',')
                .next()
                .unwrap_or_default();
            encoding = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value).ok();
            let parsed = value.and_then(|v| v.trim().parse::<u64>().ok());
            length = Some(parsed.ok_or_else(|| invalid("the Content-Length is malformed"))?);
        } else if header.name.eq_ignore_ascii_case("connection") {
            let close = header.value.split(|b| *b == b',');
            if close
                .into_iter()
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
            {
                keep_alive = false;
            }
        }
    }
    // RFC 9112 6.3: no body after a HEAD request, 204 or 304; Transfer-Encoding overrides Content-Length,
    // and a response whose last coding is not chunked ends with the connection.
    let no_body =
        head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    let framing = match (encoding, length) {
        _ if no_body => Framing::Length(0),
        (Some(true), _) => Framing::Chunked(Chunk::Size),
        (Some(false), _) | (None, None) => Framing::UntilClose,
        (None, Some(length)) => Framing::Length(length),
    };
    Ok(Some(Head {
        status,
        headers: map,
        keep_alive: keep_alive && framing != Framing::UntilClose,
        framing,
        len: head_len,
    }))
}

fn invalid(what: &'static str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

/// How the body's end is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Chunked(Chunk),
    /// Bytes still to come.
    Length(u64),
    UntilClose,
    /// The body ended as its framing said.
    Done,
    /// The body broke off or was badly framed; nothing more is read.
    Broken,
}

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// A size line is next.
    Size,
    /// Bytes of the current chunk still to come.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines after the last (empty) chunk, up to a blank line.
    Trailers,
}

/// The body of a response read by [`exchange`]: its data as it arrives, in the polling task.
/// Ends with `None` when the body is complete, with an error when the connection breaks or
/// sends something that is not HTTP/1.1 framing. Dropping it before its end closes the
/// connection.
pub struct H1Body {
    /// Always there until `Drop` hands it back.
    io: Option<TcpStream>,
    buf: BytesMut,
    framing: Framing,
    keep_alive: bool,
    give_back: Option<GiveBack>,
}

impl std::fmt::Debug for H1Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Body")
            .field("framing", &self.framing)
            .finish_non_exhaustive()
    }
}

/// What decoding the buffered bytes gave.
enum Step {
    Data(Bytes),
    End,
    /// More bytes are needed.
    Read,
    /// Progress was made (a size line or a CRLF consumed); decode again.
    Again,
}

impl H1Body {
    /// Hands the connection to `give_back` when the body is dropped after a clean end (and
    /// the upstream did not ask to close it); otherwise it is closed.
    pub fn on_clean_end(&mut self, give_back: GiveBack) {
        self.give_back = Some(give_back);
    }

    fn decode(&mut self) -> std::io::Result<Step> {
        let buf = &mut self.buf;
        Ok(match &mut self.framing {
            Framing::Broken => Step::End,
            Framing::Done | Framing::Length(0) => {
                self.framing = Framing::Done;
                Step::End
            }
            Framing::Length(left) if !buf.is_empty() => {
                let n = (*left).min(buf.len() as u64);
                *left -= n;
                Step::Data(buf.split_to(n as usize).freeze())
            }
            Framing::UntilClose if !buf.is_empty() => Step::Data(buf.split().freeze()),
            Framing::Length(_) | Framing::UntilClose => Step::Read,
            Framing::Chunked(chunk) => match *chunk {
                Chunk::Size => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        buf.advance(used);
                        *chunk = if size == 0 {
                            Chunk::Trailers
                        } else {
                            Chunk::Data(size)
                        };
                        Step::Again
                    }
                    Ok(httparse::Status::Partial) if buf.len() < MAX_LINE_BYTES => Step::Read,
                    _ => return Err(invalid("a chunk size line is malformed")),
                },
                Chunk::Data(left) if !buf.is_empty() => {
                    let n = left.min(buf.len() as u64);
                    *chunk = if n == left {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left - n)
                    };
                    Step::Data(buf.split_to(n as usize).freeze())
                }
                Chunk::Data(_) => Step::Read,
                Chunk::DataEnd if buf.len() < 2 => Step::Read,
                Chunk::DataEnd if buf.starts_with(b"\r\n") => {
                    buf.advance(2);
                    *chunk = Chunk::Size;
                    Step::Again
                }
                Chunk::DataEnd => return Err(invalid("a chunk does not end with CRLF")),
                Chunk::Trailers => match memchr::memmem::find(buf, b"\r\n") {
                    Some(0) => {
                        buf.advance(2);
                        self.framing = Framing::Done;
                        Step::End
                    }
                    Some(end) => {
                        buf.advance(end + 2);
                        Step::Again
                    }
                    None if buf.len() < MAX_LINE_BYTES => Step::Read,
                    None => return Err(invalid("a trailer line is too long")),
                },
            },
        })
    }

    /// Ends the body with `err`: nothing more is read.
    fn fail(&mut self, err: std::io::Error) -> UpstreamError {
        self.framing = Framing::Broken;
        self.buf.clear();
        UpstreamError::Stream(Some(Box::new(err)))
    }

    /// Whether the body has ended cleanly, reading on without waiting: a relay stops at the
    /// answer's last event, and the end of the body (a chunked body's last, empty chunk)
    /// has usually arrived with it or just after.
    fn ended_without_waiting(&mut self) -> bool {
        // Bounded: a size line, a CRLF, a few trailer lines.
        for _ in 0..8 {
            match self.decode() {
                Ok(Step::End) => return self.framing == Framing::Done,
                Ok(Step::Again) => {}
                Ok(Step::Read) => match self.io.as_ref().map(|io| io.try_read_buf(&mut self.buf)) {
                    Some(Ok(n)) if n > 0 => {}
                    _ => return false,
                },
                Ok(Step::Data(_)) | Err(_) => return false,
            }
        }
        false
    }
}

impl Stream for H1Body {
    type Item = Result<Bytes, UpstreamError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match this.decode() {
                Ok(Step::Data(data)) => return Poll::Ready(Some(Ok(data))),
                Ok(Step::End) => return Poll::Ready(None),
                Ok(Step::Again) => continue,
                Ok(Step::Read) => {}
                Err(err) => return Poll::Ready(Some(Err(this.fail(err)))),
            }
            if this.buf.capacity() == this.buf.len() {
                this.buf.reserve(READ_BUFFER_BYTES);
            }
            let Some(io) = this.io.as_mut() else {
                return Poll::Ready(None);
            };
            match ready!(poll_read_buf(Pin::new(io), cx, &mut this.buf)) {
                Ok(0) if this.framing == Framing::UntilClose => {
                    this.framing = Framing::Done;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    let err = std::io::ErrorKind::UnexpectedEof.into();
                    return Poll::Ready(Some(Err(this.fail(err))));
                }
                Ok(_) => {}
                Err(err) => return Poll::Ready(Some(Err(this.fail(err)))),
            }
        }
    }
}

impl Drop for H1Body {
    fn drop(&mut self) {
        let Some(give_back) = self.give_back.take() else {
            return;
        };
        if self.keep_alive
            && self.ended_without_waiting()
            && self.buf.is_empty()
            && let Some(io) = self.io.take()
        {
            give_back(io);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use futures_util::StreamExt;
    use tokio::net::TcpListener;

    use super::*;

    /// Runs one exchange against a peer that answers `reply` in the given pieces (each
    /// written and flushed alone) and then closes; returns the status and what the body gave.
    async fn against(pieces: &[&'static [u8]]) -> (StatusCode, Vec<Result<Bytes, String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pieces: Vec<&'static [u8]> = pieces.to_vec();
        let peer = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 4096];
            let mut read = 0;
            // The whole request: head and the 2-byte body.
            while !request[..read].ends_with(b"\r\n\r\nhi") {
                read += socket.read(&mut request[read..]).await.unwrap();
            }
            for piece in pieces {
                socket.write_all(piece).await.unwrap();
                socket.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
            String::from_utf8(request[..read].to_vec()).unwrap()
        });
        let io = TcpStream::connect(addr).await.unwrap();
        let mut request = Request::new(Bytes::from_static(b"hi"));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = "/stream?x=1".parse().unwrap();
        request
            .headers_mut()
            .insert(HOST, http::HeaderValue::from_static("ai.test"));
        let response = exchange(io, &request).await.unwrap();
        let status = response.status();
        let items: Vec<_> = response
            .into_body()
            .map(|item| item.map_err(|err| format!("{err:?}")))
            .collect()
            .await;
        let sent = peer.await.unwrap();
        assert!(sent.starts_with("POST /stream?x=1 HTTP/1.1\r\nhost: ai.test\r\n"));
        assert!(sent.contains("content-length: 2\r\n\r\nhi"));
        (status, items)
    }

    fn data(items: &[Result<Bytes, String>]) -> Vec<u8> {
        items
            .iter()
            .flat_map(|item| item.as_ref().unwrap().to_vec())
            .collect()
    }

    #[tokio::test]
    async fn a_chunked_body_split_anywhere_gives_its_data_in_order_and_ends() {
        let (status, items) = against(&[
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n",
            b"\r\n5;ext=1\r\nhel",
            b"lo\r",
            b"\n6\r\n world\r\n0\r\n",
            b"Trailer: x\r\n\r\n",
        ])
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(data(&items), b"hello world");
        assert!(items.len() >= 3, "each chunk as it came: {items:?}");
    }

    #[tokio::test]
    async fn a_length_or_close_delimited_body_ends_where_it_should() {
        let (_, items) =
            against(&[b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", b"cde"]).await;
        assert_eq!(data(&items), b"abcde");
        let (status, items) = against(&[b"HTTP/1.1 503 Busy\r\n\r\nno", b"pe"]).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(data(&items), b"nope");
        let (_, items) = against(&[
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\nabcd",
        ])
        .await;
        assert_eq!(
            data(&items),
            b"abcd",
            "a last coding other than chunked ends at close"
        );
        let (status, items) = against(&[b"HTTP/1.1 204 No Content\r\n\r\nxyz"]).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert!(items.is_empty(), "no body after 204: {items:?}");
    }

    #[tokio::test]
    async fn a_body_cut_short_or_badly_framed_ends_with_an_error() {
        let (_, items) =
            against(&[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"]).await;
        assert_eq!(items.first().unwrap().as_deref().unwrap(), b"hel");
        assert!(items.last().unwrap().is_err(), "{items:?}");
        let (_, items) = against(&[b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"]).await;
        assert!(items.last().unwrap().is_err(), "{items:?}");
        let (_, items) =
            against(&[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY0\r\n\r\n"])
                .await;
        assert_eq!(items.len(), 2, "{items:?}");
        assert!(items[1].as_ref().unwrap_err().contains("CRLF"));
    }

    /// Sends `request` to a peer that reads its head (and no body), answers `reply` and keeps
    /// the connection open; returns what the peer received and the response.
    async fn head_and_reply(
        request: Request<Bytes>,
        reply: &'static [u8],
    ) -> (String, Response<H1Body>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (sent_tx, sent_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut received = Vec::new();
            while !received.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                socket.read_exact(&mut byte).await.unwrap();
                received.push(byte[0]);
            }
            socket.write_all(reply).await.unwrap();
            let _ = sent_tx.send(String::from_utf8(received).unwrap());
            let _ = socket.read(&mut [0u8; 1]).await;
        });
        let io = TcpStream::connect(addr).await.unwrap();
        let response = exchange(io, &request).await.unwrap();
        (sent_rx.await.unwrap(), response)
    }

    fn request(method: http::Method, body: &'static [u8]) -> Request<Bytes> {
        let mut request = Request::new(Bytes::from_static(body));
        *request.method_mut() = method;
        *request.uri_mut() = "/x".parse().unwrap();
        let headers = request.headers_mut();
        headers.insert(HOST, http::HeaderValue::from_static("ai.test"));
        // The caller's framing never reaches the wire: the body's own length does.
        headers.insert(TRANSFER_ENCODING, http::HeaderValue::from_static("chunked"));
        headers.insert(CONTENT_LENGTH, http::HeaderValue::from_static("99"));
        request
    }

    #[tokio::test]
    async fn the_answer_keeps_its_headers_and_a_bodiless_request_announces_no_length() {
        let reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Tag: a\r\nx-tag: b\r\nContent-Length: 2\r\n\r\n{}";
        let (sent, response) = head_and_reply(request(http::Method::GET, b""), reply).await;
        assert_eq!(sent, "GET /x HTTP/1.1\r\nhost: ai.test\r\n\r\n");
        assert_eq!(response.headers()["content-type"], "application/json");
        let tags: Vec<_> = response.headers().get_all("x-tag").iter().collect();
        assert_eq!(tags, ["a", "b"]);
        let body: Vec<u8> = response
            .into_body()
            .flat_map(|chunk| futures_util::stream::iter(chunk.unwrap()))
            .collect()
            .await;
        assert_eq!(body, b"{}");

        let (sent, _) = head_and_reply(request(http::Method::POST, b""), reply).await;
        assert!(
            sent.ends_with("host: ai.test\r\ncontent-length: 0\r\n\r\n"),
            "{sent}"
        );
    }

    #[tokio::test]
    async fn the_answer_to_head_has_no_body_and_leaves_the_connection_reusable() {
        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n";
        let (_, mut response) = head_and_reply(request(http::Method::HEAD, b""), reply).await;
        assert_eq!(response.headers()["content-length"], "5000");
        let (given_tx, given_rx) = tokio::sync::oneshot::channel();
        response
            .body_mut()
            .on_clean_end(Box::new(move |io| drop(given_tx.send(io))));
        let mut body = response.into_body();
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), body.next()).await;
        assert!(
            next.expect("not waiting for a body").is_none(),
            "no body after HEAD"
        );
        drop(body);
        assert!(given_rx.await.is_ok(), "the connection was given back");
    }

    #[tokio::test]
    async fn a_malformed_head_is_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            socket.write_all(b"SMTP ready\r\n\r\n").await.unwrap();
            let _ = socket.read(&mut [0u8; 1024]).await;
        });
        let io = TcpStream::connect(addr).await.unwrap();
        let mut request = Request::new(Bytes::new());
        request
            .headers_mut()
            .insert(HOST, http::HeaderValue::from_static("ai.test"));
        match exchange(io, &request).await.unwrap_err() {
            ExchangeError::Failed(err) => assert_eq!(err.kind(), std::io::ErrorKind::InvalidData),
            other => panic!("answered, though not in HTTP: {other:?}"),
        }
    }
}
