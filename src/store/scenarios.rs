//! Scenario queries.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Page, Scenario, Store, StoreError};
use crate::ids::{ScenarioId, UserId};

impl Store {
    /// Stores a new scenario.
    pub async fn insert_scenario(&self, scenario: &Scenario) -> Result<(), StoreError> {
        let passages = serde_json::to_string(&scenario.passage_ids)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO scenarios (id, owner, novel_id, description, passage_ids, passages_source, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(scenario.id.to_string())
        .bind(scenario.owner.as_str())
        .bind(&scenario.novel_id)
        .bind(&scenario.description)
        .bind(passages)
        .bind(&scenario.passages_source)
        .bind(scenario.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The owner's scenario, or `None` (also when it belongs to someone else).
    pub async fn scenario(
        &self,
        owner: &UserId,
        id: ScenarioId,
    ) -> Result<Option<Scenario>, StoreError> {
        let row = sqlx::query(
            "SELECT id, owner, novel_id, description, passage_ids, passages_source, created_at
             FROM scenarios WHERE id = $1 AND owner = $2",
        )
        .bind(id.to_string())
        .bind(owner.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| scenario_from_row(&r)).transpose()
    }

    /// The owner's scenarios, newest first.
    pub async fn scenarios(
        &self,
        owner: &UserId,
        page: Page<ScenarioId>,
    ) -> Result<Vec<Scenario>, StoreError> {
        let rows = match page.before {
            None => {
                sqlx::query(
                    "SELECT id, owner, novel_id, description, passage_ids, passages_source, created_at
                     FROM scenarios WHERE owner = $1
                     ORDER BY created_at DESC, id DESC LIMIT $2",
                )
                .bind(owner.as_str())
                .bind(page.limit)
                .fetch_all(&self.pool)
                .await?
            }
            Some(before) => {
                sqlx::query(
                    "SELECT s.id, s.owner, s.novel_id, s.description, s.passage_ids, s.passages_source, s.created_at
                     FROM scenarios s, scenarios c
                     WHERE c.id = $2 AND c.owner = $1 AND s.owner = $1
                       AND (s.created_at < c.created_at OR (s.created_at = c.created_at AND s.id < c.id))
                     ORDER BY s.created_at DESC, s.id DESC LIMIT $3",
                )
                .bind(owner.as_str())
                .bind(before.to_string())
                .bind(page.limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(scenario_from_row).collect()
    }
}

fn scenario_from_row(row: &AnyRow) -> Result<Scenario, StoreError> {
    let id: String = row.try_get("id")?;
    let passages: String = row.try_get("passage_ids")?;
    Ok(Scenario {
        id: id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("scenario id {id}")))?,
        owner: UserId::new(row.try_get::<String, _>("owner")?),
        novel_id: row.try_get("novel_id")?,
        description: row.try_get("description")?,
        passage_ids: serde_json::from_str(&passages)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        passages_source: row.try_get("passages_source")?,
        created_at: row.try_get("created_at")?,
    })
}
