//! Conversation queries, including the generation state machine: progress never goes
//! backwards, terminal states never change, completion is idempotent.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{
    Conversation, ConversationStatus, NewMessage, Page, ProgressUpdate, Store, StoreError,
    TerminalOutcome, now_millis,
};
use crate::ids::{ConversationId, MessageId, ScenarioId, UserId};

const COLUMNS: &str = "id, owner, scenario_id, status, progress, status_message, error, event_seq, created_at, completed_at";

impl Store {
    /// Creates a pending conversation for the owner's scenario.
    pub async fn insert_conversation(
        &self,
        owner: &UserId,
        scenario_id: ScenarioId,
    ) -> Result<Conversation, StoreError> {
        let now = now_millis();
        let conversation = Conversation {
            id: ConversationId::new(),
            owner: owner.clone(),
            scenario_id,
            status: ConversationStatus::Pending,
            progress: 0,
            status_message: None,
            error: None,
            event_seq: 0,
            created_at: now,
            completed_at: None,
        };
        sqlx::query(
            "INSERT INTO conversations (id, owner, scenario_id, status, progress, event_seq, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 0, 0, $5, $5)",
        )
        .bind(conversation.id.to_string())
        .bind(owner.as_str())
        .bind(scenario_id.to_string())
        .bind(conversation.status.as_str())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(conversation)
    }

    /// The owner's conversation, or `None` (also when it belongs to someone else).
    pub async fn conversation(
        &self,
        owner: &UserId,
        id: ConversationId,
    ) -> Result<Option<Conversation>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM conversations WHERE id = $1 AND owner = $2"
        ))
        .bind(id.to_string())
        .bind(owner.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| conversation_from_row(&r)).transpose()
    }

    /// Any owner's conversation: only for the AI service's internal callbacks.
    pub async fn conversation_unscoped(
        &self,
        id: ConversationId,
    ) -> Result<Option<Conversation>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM conversations WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| conversation_from_row(&r)).transpose()
    }

    /// The owner's conversations, newest first.
    pub async fn conversations(
        &self,
        owner: &UserId,
        page: Page<ConversationId>,
    ) -> Result<Vec<Conversation>, StoreError> {
        let rows = match page.before {
            None => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM conversations WHERE owner = $1
                     ORDER BY created_at DESC, id DESC LIMIT $2"
                ))
                .bind(owner.as_str())
                .bind(page.limit)
                .fetch_all(&self.pool)
                .await?
            }
            Some(before) => {
                sqlx::query(&format!(
                    "SELECT {} FROM conversations s, conversations c
                     WHERE c.id = $2 AND c.owner = $1 AND s.owner = $1
                       AND (s.created_at < c.created_at OR (s.created_at = c.created_at AND s.id < c.id))
                     ORDER BY s.created_at DESC, s.id DESC LIMIT $3",
                    prefixed("s")
                ))
                .bind(owner.as_str())
                .bind(before.to_string())
                .bind(page.limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(conversation_from_row).collect()
    }

    /// Stores a progress report. Returns the updated conversation when it moved forward,
    /// `None` when it was stale (lower progress) or the conversation is already terminal.
    pub async fn record_progress(
        &self,
        id: ConversationId,
        update: &ProgressUpdate,
    ) -> Result<Option<Conversation>, StoreError> {
        let progress = update.progress.clamp(0, 99);
        let row = sqlx::query(&format!(
            "UPDATE conversations
             SET status = 'generating', progress = $2, status_message = $3,
                 event_seq = event_seq + 1, updated_at = $4
             WHERE id = $1 AND status IN ('pending', 'generating')
               AND (progress < $2 OR status = 'pending')
             RETURNING {COLUMNS}"
        ))
        .bind(id.to_string())
        .bind(progress)
        .bind(update.message.clone())
        .bind(now_millis())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| conversation_from_row(&r)).transpose()
    }

    /// Stores the generated messages and marks the conversation completed, once: a second
    /// completion (callback and pub/sub both report it) changes nothing.
    pub async fn complete_conversation(
        &self,
        id: ConversationId,
        messages: &[NewMessage],
    ) -> Result<Option<TerminalOutcome>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = now_millis();
        let updated = sqlx::query(&format!(
            "UPDATE conversations
             SET status = 'completed', progress = 100, error = NULL,
                 event_seq = event_seq + 1, updated_at = $2, completed_at = $2
             WHERE id = $1 AND status IN ('pending', 'generating')
             RETURNING {COLUMNS}"
        ))
        .bind(id.to_string())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = updated else {
            tx.rollback().await?;
            return self.already_terminal(id).await;
        };
        let conversation = conversation_from_row(&row)?;
        for (offset, message) in messages.iter().enumerate() {
            sqlx::query(
                "INSERT INTO messages (id, conversation_id, owner, role, content, status, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(MessageId::new().to_string())
            .bind(id.to_string())
            .bind(conversation.owner.as_str())
            .bind(message.role.as_str())
            .bind(&message.content)
            .bind(message.status.as_str())
            .bind(now + offset as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Some(TerminalOutcome::Applied(conversation)))
    }

    /// Marks the conversation failed, once.
    pub async fn fail_conversation(
        &self,
        id: ConversationId,
        error: &str,
    ) -> Result<Option<TerminalOutcome>, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE conversations
             SET status = 'failed', error = $2, event_seq = event_seq + 1, updated_at = $3
             WHERE id = $1 AND status IN ('pending', 'generating')
             RETURNING {COLUMNS}"
        ))
        .bind(id.to_string())
        .bind(error)
        .bind(now_millis())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(Some(TerminalOutcome::Applied(conversation_from_row(&row)?))),
            None => self.already_terminal(id).await,
        }
    }

    async fn already_terminal(
        &self,
        id: ConversationId,
    ) -> Result<Option<TerminalOutcome>, StoreError> {
        Ok(self
            .conversation_unscoped(id)
            .await?
            .map(TerminalOutcome::AlreadyTerminal))
    }
}

fn prefixed(alias: &str) -> String {
    COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn conversation_from_row(row: &AnyRow) -> Result<Conversation, StoreError> {
    let id: String = row.try_get("id")?;
    let scenario_id: String = row.try_get("scenario_id")?;
    let status: String = row.try_get("status")?;
    Ok(Conversation {
        id: id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("conversation id {id}")))?,
        owner: UserId::new(row.try_get::<String, _>("owner")?),
        scenario_id: scenario_id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("scenario id {scenario_id}")))?,
        status: ConversationStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("status {status}")))?,
        progress: row.try_get("progress")?,
        status_message: row.try_get("status_message")?,
        error: row.try_get("error")?,
        event_seq: row.try_get("event_seq")?,
        created_at: row.try_get("created_at")?,
        completed_at: row.try_get("completed_at")?,
    })
}
