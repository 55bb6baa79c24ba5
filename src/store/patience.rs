//! Patience with a busy database: a statement whose pool had no connection free in time is
//! tried again, for callers (stream starts, answer inserts) that would rather wait than fail.

use std::future::Future;
use std::time::Duration;

use super::StoreError;

/// Runs `op` until it succeeds, fails for another reason than a busy database, or `patience`
/// has passed. Each try already waited the pool's acquire timeout, so there is no pause
/// between tries.
pub async fn while_busy<T, F, Fut>(patience: Duration, mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match op().await {
            Err(err) if err.is_busy() && tokio::time::Instant::now() < deadline => {
                tracing::warn!("database busy; trying again");
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::cell::Cell;

    use super::*;

    fn busy() -> StoreError {
        StoreError::Database(sqlx::Error::PoolTimedOut)
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_database_is_tried_again_until_the_insert_goes_through() {
        let tries = Cell::new(0);
        let result = while_busy(Duration::from_secs(30), || {
            tries.set(tries.get() + 1);
            let attempt = tries.get();
            async move {
                // Each failed try takes the pool's acquire timeout.
                tokio::time::sleep(Duration::from_secs(3)).await;
                if attempt < 3 {
                    Err(busy())
                } else {
                    Ok("stored")
                }
            }
        })
        .await;
        assert_eq!(result.unwrap(), "stored");
        assert_eq!(tries.get(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn other_failures_are_not_tried_again() {
        let tries = Cell::new(0);
        let result: Result<(), _> = while_busy(Duration::from_secs(30), || {
            tries.set(tries.get() + 1);
            async { Err(StoreError::Corrupt("bad row".into())) }
        })
        .await;
        assert!(matches!(result, Err(StoreError::Corrupt(_))));
        assert_eq!(tries.get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_database_busy_for_longer_than_the_patience_is_given_up() {
        let started = tokio::time::Instant::now();
        let tries = Cell::new(0);
        let result: Result<(), _> = while_busy(Duration::from_secs(30), || {
            tries.set(tries.get() + 1);
            async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                Err(busy())
            }
        })
        .await;
        assert!(result.unwrap_err().is_busy());
        assert_eq!(tries.get(), 10, "tries started within the 30 s");
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }
}
