//! Why a bus operation failed; the messages never carry the Redis URL or its password.

/// A failed publish or subscribe, or a bus that could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// `REDIS_URL` is not a Redis URL the client understands; fatal at start-up.
    #[error("invalid Redis URL")]
    InvalidUrl(#[source] redis::RedisError),
    /// Redis refused or did not answer a command (publishing while Redis is down).
    #[error("Redis command failed")]
    Redis(#[from] redis::RedisError),
    /// The bus was shut down; nothing more will be delivered.
    #[error("the event bus is shut down")]
    Closed,
}
