//! Why the simulated AI service could not start.

use std::net::SocketAddr;

/// A failure to start or run the mock; configuration problems are [`super::SimConfigError`].
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The listen address is taken or not allowed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address from `MOCK_BIND`.
        addr: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The listener's own address could not be read.
    #[error("cannot read the listen address: {0}")]
    LocalAddr(std::io::Error),
    /// `REDIS_URL` could not be turned into a Redis client.
    #[error("invalid REDIS_URL: {0}")]
    Redis(#[source] redis::RedisError),
    /// The HTTP client for gateway callbacks could not be built.
    #[error("cannot build the callback HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// SIGINT/SIGTERM handlers could not be installed.
    #[error("cannot listen for shutdown signals: {0}")]
    Signal(std::io::Error),
}
