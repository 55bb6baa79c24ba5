//! The database: scenarios, conversations and messages, every query scoped to its owner.
//!
//! One [`Store`] serves both back ends through sqlx's `Any` driver: the embedded default
//! (an SQLite file) and the shared one (PostgreSQL) are two implementations behind the same
//! queries. The SQL is the common dialect of both; the schema differs only in integer width,
//! hence one migrations folder per back end.

mod conversations;
mod messages;
mod model;
mod passages;
mod scenarios;

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Connection, Executor};

pub use messages::TurnStart;
pub use model::{
    Conversation, ConversationStatus, Message, MessageRole, MessageStatus, NewMessage, Page,
    ProgressUpdate, Scenario, TerminalOutcome,
};

/// Failures of the storage layer; mapped to HTTP only in `crate::error`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or the query failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A stored value could not be decoded (corrupt row).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The URL scheme is neither sqlite nor postgres.
    #[error("unsupported database URL scheme (use sqlite:// or postgres://)")]
    UnsupportedScheme,
}

impl StoreError {
    /// True when no pooled connection came free within the acquire timeout: the database is
    /// overloaded rather than broken, and the same call may well succeed a moment later.
    pub fn is_busy(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::PoolTimedOut))
    }
}

/// A pooled connection idle this long is pinged before use.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(2);

/// Which SQL back end the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded default, a file on this machine.
    Sqlite,
    /// Shared database for several instances.
    Postgres,
}

/// Handle to the database. Cheap to clone (a pool).
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Connects with the default pool size for the back end.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, None).await
    }

    /// Connects with at most `max_connections` (default: 8 for SQLite, whose writes are
    /// serialised anyway; 32 for PostgreSQL, enough for bursts of stream starts while two
    /// instances stay well under the server's default limit of 100).
    pub async fn connect_with(url: &str, max_connections: Option<u32>) -> Result<Self, StoreError> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedScheme);
        };
        let options = AnyPoolOptions::new()
            .acquire_timeout(Duration::from_secs(3))
            // sqlx pings every connection it hands out by default: a round trip per query.
            // Only a connection that sat idle long enough to have been cut (a database restart,
            // a proxy's idle timeout) is checked; one that breaks in use fails its one query
            // and is discarded on release.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= IDLE_BEFORE_PING {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .max_connections(max_connections.unwrap_or(match backend {
                Backend::Sqlite => 8,
                Backend::Postgres => 32,
            }))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;")
                            .await?;
                    }
                    Ok(())
                })
            });
        let pool = options.connect(url).await?;
        Ok(Self { pool, backend })
    }

    /// Applies pending migrations (idempotent).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => {
                sqlx::migrate!("./migrations/sqlite")
                    .run(&self.pool)
                    .await?
            }
            Backend::Postgres => {
                sqlx::migrate!("./migrations/postgres")
                    .run(&self.pool)
                    .await?
            }
        }
        Ok(())
    }

    /// A cheap round trip, for readiness.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool (on shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Milliseconds since the epoch, the stored time format.
pub fn now_millis() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}
