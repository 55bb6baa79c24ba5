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
mod patience;
mod scenarios;

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Connection, Executor};
use tokio::runtime::Handle;

pub use messages::TurnStart;
pub use model::{
    Conversation, ConversationStatus, HistoryEntry, Message, MessageRole, MessageStatus,
    NewMessage, Page, ProgressUpdate, Scenario, TerminalOutcome,
};
pub use patience::while_busy;

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
    /// The runtime the store was opened on (the main one); see [`Store::on_home`].
    home: Handle,
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
        Ok(Self {
            pool,
            backend,
            home: Handle::current(),
        })
    }

    /// The runtime the store was opened on, for work that must outlive its caller.
    pub fn home(&self) -> &Handle {
        &self.home
    }

    /// Runs `op` (store calls) on the runtime the store was opened on, and waits for it.
    ///
    /// For the hot paths of streams, called from the event-loop threads: a statement's
    /// reads are driven by whichever task awaits it, and an event-loop thread relaying
    /// thousands of streams comes back to a ready database socket late, holding the pooled
    /// connection all that time. Under a burst of stream starts that exhausted the pool and
    /// starts were refused; on the main runtime a statement holds its connection only for as
    /// long as the database takes.
    pub async fn on_home<T, Fut>(&self, op: Fut) -> Result<T, StoreError>
    where
        T: Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        match self.home.spawn(op).await {
            Ok(result) => result,
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            // The main runtime is shutting down.
            Err(_) => Err(StoreError::Database(sqlx::Error::PoolClosed)),
        }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// Work handed to `on_home` from another runtime (an event-loop thread) runs on the
    /// runtime the store was opened on.
    #[test]
    fn store_work_runs_on_the_runtime_that_opened_the_store() {
        let home = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("store-home")
            .enable_all()
            .build()
            .unwrap();
        let store = home.block_on(Store::connect("sqlite::memory:")).unwrap();
        let event_loop = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ran_on = event_loop
            .block_on(store.on_home(async { Ok(std::thread::current().name().map(str::to_owned)) }))
            .unwrap();
        assert_eq!(ran_on.as_deref(), Some("store-home"));
    }
}
