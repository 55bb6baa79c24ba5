//! The last good passage search per novel (the fallback when the AI service is down).

use sqlx::Row;

use super::{Store, StoreError, now_millis};

impl Store {
    /// Remembers a successful search result for the novel.
    pub async fn save_novel_passages(
        &self,
        novel_id: &str,
        passage_ids: &[String],
    ) -> Result<(), StoreError> {
        let json =
            serde_json::to_string(passage_ids).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO novel_passages (novel_id, passage_ids, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (novel_id) DO UPDATE SET passage_ids = excluded.passage_ids, updated_at = excluded.updated_at",
        )
        .bind(novel_id)
        .bind(json)
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The last good result for the novel, if any.
    pub async fn novel_passages(&self, novel_id: &str) -> Result<Option<Vec<String>>, StoreError> {
        let row = sqlx::query("SELECT passage_ids FROM novel_passages WHERE novel_id = $1")
            .bind(novel_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            let json: String = r.try_get("passage_ids")?;
            serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(e.to_string()))
        })
        .transpose()
    }
}
