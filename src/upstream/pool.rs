//! The idle connections of one event-loop thread, by origin.
//!
//! Kept here rather than in hyper-util's pool because a gateway thread talks to one or two
//! origins (the AI service, perhaps a fallback) and never shares a connection with another
//! thread: hyper-util's pool is built for any number of origins shared by all threads, and
//! paid for it on every call with a lock, a byte-by-byte SipHash of the origin's authority
//! (twice), a clone of the request URI and more: about 8 % of a proxied JSON call's
//! instructions (callgrind), now a few hundred.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::time::Duration;

use http::uri::{Authority, Scheme, Uri};
use hyper::client::conn::http1::SendRequest;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::transport::RequestBody;

/// A connection that can wait idle between exchanges.
pub trait Reusable {
    /// The upstream closed it (or it can no longer be used at all).
    fn is_closed(&self) -> bool;
    /// It can take a request now.
    fn is_ready(&self) -> bool;
}

/// hyper's connections (every call but streamed answers over plain HTTP).
impl Reusable for SendRequest<RequestBody> {
    fn is_closed(&self) -> bool {
        SendRequest::is_closed(self)
    }

    fn is_ready(&self) -> bool {
        SendRequest::is_ready(self)
    }
}

/// The plain connections of streamed answers ([`super::h1_stream`]), kept only after a
/// response that ended cleanly. Nothing may arrive on one while it is idle: data or an end
/// (the upstream's idle timeout) makes it unusable. The check costs no system call unless
/// the socket was reported readable.
impl Reusable for TcpStream {
    fn is_closed(&self) -> bool {
        !matches!(self.try_read(&mut [0u8; 1]), Err(err) if err.kind() == std::io::ErrorKind::WouldBlock)
    }

    fn is_ready(&self) -> bool {
        !Reusable::is_closed(self)
    }
}

/// Where a connection goes: a connection is reused only for the same scheme and authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `https`, else plain HTTP.
    pub tls: bool,
    /// Host and port as the URL gave them.
    pub authority: Authority,
}

impl Origin {
    /// The origin of an absolute URL; `None` without a scheme or host.
    pub fn of(uri: &Uri) -> Option<Self> {
        let authority = uri.authority()?.clone();
        let tls = match uri.scheme()? {
            s if *s == Scheme::HTTPS => true,
            s if *s == Scheme::HTTP => false,
            _ => return None,
        };
        Some(Self { tls, authority })
    }

    /// The URL a connector dials for this origin.
    pub fn url(&self) -> Uri {
        let scheme = if self.tls {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        };
        Uri::builder()
            .scheme(scheme)
            .authority(self.authority.clone())
            .path_and_query("/")
            .build()
            .unwrap_or_default()
    }
}

struct Idle<C> {
    origin: Origin,
    conn: C,
    since: Instant,
}

/// One thread's idle connections, oldest first. Only the thread that owns it touches it (see
/// `Transport`), so a `RefCell` is enough and no call takes a lock.
///
/// Expired and closed connections are dropped from the oldest end whenever a connection is
/// taken or put back, and at most `max_idle` are kept: after a burst of thousands of streams
/// a thread does not hold a descriptor for each of them, and a plain connection the upstream
/// closed (which nothing polls while it is idle) is let go as the thread goes on working. A
/// thread that makes no more calls keeps what it has until then.
pub struct IdleConnections<C = SendRequest<RequestBody>> {
    idle: RefCell<VecDeque<Idle<C>>>,
    idle_timeout: Duration,
    max_idle: usize,
}

impl<C: Reusable> IdleConnections<C> {
    /// Connections idle for longer than `idle_timeout` are closed instead of reused; beyond
    /// `max_idle`, the oldest is closed.
    pub fn new(idle_timeout: Duration, max_idle: usize) -> Self {
        Self {
            idle: RefCell::new(VecDeque::new()),
            idle_timeout,
            max_idle,
        }
    }

    /// Drops expired and closed connections from the oldest end.
    fn sweep(&self, idle: &mut VecDeque<Idle<C>>) {
        let now = Instant::now();
        while idle
            .front()
            .is_some_and(|c| c.conn.is_closed() || now.duration_since(c.since) >= self.idle_timeout)
        {
            idle.pop_front();
        }
    }

    /// The most recently used connection to `origin`, if one can take a request now. With one
    /// origin, costs the same however many are idle: expired and closed connections are
    /// dropped (which closes them) from the oldest end, and the newest is tried first.
    pub fn take(&self, origin: &Origin) -> Option<C> {
        let mut idle = self.idle.borrow_mut();
        self.sweep(&mut idle);
        while let Some(at) = idle.iter().rposition(|c| c.origin == *origin) {
            let candidate = idle.remove(at)?;
            // Only exchanges that are over are kept, so one that cannot take a request now
            // is closing: dropped.
            if candidate.conn.is_ready() {
                return Some(candidate.conn);
            }
        }
        None
    }

    /// Keeps a connection whose exchange is over for the next request to `origin`.
    pub fn put(&self, origin: Origin, conn: C) {
        if conn.is_closed() {
            return;
        }
        let mut idle = self.idle.borrow_mut();
        self.sweep(&mut idle);
        if idle.len() >= self.max_idle {
            idle.pop_front();
        }
        idle.push_back(Idle {
            origin,
            conn,
            since: Instant::now(),
        });
    }

    /// How many connections are kept (for tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.idle.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use hyper_util::rt::TokioIo;

    use super::*;

    fn origin(url: &str) -> Origin {
        Origin::of(&url.parse().unwrap()).unwrap()
    }

    /// A client connection over an in-memory pipe, ready for a request, and what ends it:
    /// dropping the peer's end, then awaiting the returned task.
    async fn connection() -> (
        SendRequest<RequestBody>,
        tokio::io::DuplexStream,
        tokio::task::JoinHandle<()>,
    ) {
        let (ours, peer) = tokio::io::duplex(1024);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(ours))
            .await
            .unwrap();
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        sender.ready().await.unwrap();
        (sender, peer, driver)
    }

    #[test]
    fn an_origin_is_the_scheme_and_authority() {
        let a = origin("http://ai.internal:8080/x?y=1");
        assert_eq!(a, origin("http://ai.internal:8080/"));
        assert_ne!(a, origin("https://ai.internal:8080/"));
        assert_ne!(a, origin("http://ai.internal:8081/"));
        assert_eq!(a.url().to_string(), "http://ai.internal:8080/");
        assert!(Origin::of(&"/relative".parse().unwrap()).is_none());
    }

    #[tokio::test]
    async fn a_connection_is_reused_only_for_its_own_origin() {
        let idle = IdleConnections::new(Duration::from_secs(90), 8);
        let (sender, _peer, _driver) = connection().await;
        idle.put(origin("http://a:1/"), sender);
        assert!(idle.take(&origin("http://b:1/")).is_none());
        assert!(idle.take(&origin("http://a:1/")).is_some());
        assert!(idle.take(&origin("http://a:1/")).is_none(), "taken once");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_idle_too_long_is_closed_not_reused() {
        let idle = IdleConnections::new(Duration::from_secs(90), 8);
        let (sender, _peer, _driver) = connection().await;
        idle.put(origin("http://a:1/"), sender);
        tokio::time::advance(Duration::from_secs(91)).await;
        assert!(idle.take(&origin("http://a:1/")).is_none());
        assert_eq!(idle.len(), 0, "dropped");
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_max_idle_are_kept_and_expired_ones_go_when_one_is_put_back() {
        let idle = IdleConnections::new(Duration::from_secs(90), 2);
        let mut peers = Vec::new();
        for _ in 0..3 {
            let (sender, peer, _driver) = connection().await;
            peers.push(peer);
            idle.put(origin("http://a:1/"), sender);
        }
        assert_eq!(idle.len(), 2, "the oldest was closed");
        tokio::time::advance(Duration::from_secs(91)).await;
        let (sender, _peer, _driver) = connection().await;
        idle.put(origin("http://a:1/"), sender);
        assert_eq!(
            idle.len(),
            1,
            "the expired ones went when another was put back"
        );
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_dropped() {
        let idle = IdleConnections::new(Duration::from_secs(90), 8);
        let (sender, peer, driver) = connection().await;
        idle.put(origin("http://a:1/"), sender);
        drop(peer);
        driver.await.unwrap();
        assert!(idle.take(&origin("http://a:1/")).is_none());
        assert_eq!(idle.len(), 0);
    }
}
