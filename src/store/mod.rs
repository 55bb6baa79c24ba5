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

/// Idle pooled connections below which [`Store::near_or_home`] hands work to the store's
/// runtime. Measured at 9,000 chat streams: with 4, starts kept running on swamped
/// event-loop threads until the pool was dry, and time to first token went from 0.7–1.2 s
/// to 2.5–3.5 s at p50; with 16, no worse than always handing over. A pool smaller than
/// this (SQLite's 8) always hands over.
pub const SPARE_CONNECTIONS: usize = 16;

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
    /// For streams' statements called from the event-loop threads (answer inserts, and
    /// stream starts once the pool runs low: [`Store::near_or_home`]): a statement's
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

    /// Runs `op` (store calls) here while the pool has [`SPARE_CONNECTIONS`] idle, and on the
    /// store's runtime ([`Store::on_home`]) once it has fewer.
    ///
    /// For stream starts. The hand-over to the store's runtime and back are two thread
    /// crossings, each a wait for a core on a busy machine: measured at 1,000 chat streams,
    /// p99 up to 5 ms there and 30 ms back, and starts run here had the lower time to first
    /// token in alternated runs (BENCHMARKS.md). What `on_home` guards against, event-loop
    /// threads too busy to come back to their statements holding the pool's connections,
    /// drains the pool; from there on, starts go home.
    pub async fn near_or_home<T, Fut>(&self, op: Fut) -> Result<T, StoreError>
    where
        T: Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        if self.pool.num_idle() >= SPARE_CONNECTIONS {
            op.await
        } else {
            self.on_home(op).await
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

    /// The runtime a store is opened on in these tests: one worker, named.
    fn home_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("store-home")
            .enable_all()
            .build()
            .unwrap()
    }

    /// Work handed to `on_home` from another runtime (an event-loop thread) runs on the
    /// runtime the store was opened on.
    #[test]
    fn store_work_runs_on_the_runtime_that_opened_the_store() {
        let home = home_runtime();
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

    /// A start's statement stays on the event-loop thread while the pool has connections to
    /// spare, and goes to the store's runtime once it has not.
    #[test]
    fn store_work_stays_here_while_the_pool_has_connections_to_spare() {
        let home = home_runtime();
        let room = u32::try_from(SPARE_CONNECTIONS).unwrap() + 1;
        let store = home
            .block_on(Store::connect_with("sqlite::memory:", Some(room)))
            .unwrap();
        let event_loop = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let thread = || async { Ok(std::thread::current().name().map(str::to_owned)) };
        // The event loop runs on a thread of this name, as the shards' do.
        let ran_on = |store: &Store| {
            std::thread::scope(|scope| {
                std::thread::Builder::new()
                    .name("event-loop".into())
                    .spawn_scoped(scope, || {
                        event_loop.block_on(store.near_or_home(thread())).unwrap()
                    })
                    .unwrap()
                    .join()
                    .unwrap()
            })
        };
        // A fresh pool holds the one connection `connect` opened.
        assert!(store.pool.num_idle() < SPARE_CONNECTIONS);
        assert_eq!(ran_on(&store).as_deref(), Some("store-home"));
        home.block_on(async {
            let mut held = Vec::new();
            for _ in 0..SPARE_CONNECTIONS {
                held.push(store.pool.acquire().await.unwrap());
            }
            // Each connection goes back to the pool in a task of sqlx's; there is no event to
            // await for it, so the test yields until they are all back.
            drop(held);
            tokio::time::timeout(std::time::Duration::from_secs(5), async {
                while store.pool.num_idle() < SPARE_CONNECTIONS {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .expect("connections back in the pool");
        });
        assert_eq!(ran_on(&store).as_deref(), Some("event-loop"));
    }
}
