//! Message queries.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Message, MessageRole, MessageStatus, NewMessage, Store, StoreError, now_millis};
use crate::ids::{ConversationId, MessageId, UserId};

impl Store {
    /// Stores one message in the owner's conversation.
    pub async fn insert_message(
        &self,
        owner: &UserId,
        conversation_id: ConversationId,
        message: &NewMessage,
    ) -> Result<Message, StoreError> {
        let stored = Message {
            id: MessageId::new(),
            conversation_id,
            role: message.role,
            content: message.content.clone(),
            status: message.status,
            created_at: now_millis(),
        };
        sqlx::query(
            "INSERT INTO messages (id, conversation_id, owner, role, content, status, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(stored.id.to_string())
        .bind(conversation_id.to_string())
        .bind(owner.as_str())
        .bind(stored.role.as_str())
        .bind(&stored.content)
        .bind(stored.status.as_str())
        .bind(stored.created_at)
        .execute(&self.pool)
        .await?;
        Ok(stored)
    }

    /// Sets the final text and status of a message (end of a stream).
    pub async fn finish_message(
        &self,
        id: MessageId,
        content: &str,
        status: MessageStatus,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE messages SET content = $2, status = $3 WHERE id = $1")
            .bind(id.to_string())
            .bind(content)
            .bind(status.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The owner's messages of a conversation, oldest first.
    pub async fn messages(
        &self,
        owner: &UserId,
        conversation_id: ConversationId,
    ) -> Result<Vec<Message>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, conversation_id, role, content, status, created_at FROM messages
             WHERE conversation_id = $1 AND owner = $2 ORDER BY created_at, id",
        )
        .bind(conversation_id.to_string())
        .bind(owner.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(message_from_row).collect()
    }

    /// The last `limit` finished messages, oldest first: the history sent to the AI service.
    pub async fn recent_messages(
        &self,
        owner: &UserId,
        conversation_id: ConversationId,
        limit: i64,
    ) -> Result<Vec<Message>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, conversation_id, role, content, status, created_at FROM messages
             WHERE conversation_id = $1 AND owner = $2 AND status IN ('completed', 'interrupted')
             ORDER BY created_at DESC, id DESC LIMIT $3",
        )
        .bind(conversation_id.to_string())
        .bind(owner.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut messages = rows
            .iter()
            .map(message_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        messages.reverse();
        Ok(messages)
    }
}

fn message_from_row(row: &AnyRow) -> Result<Message, StoreError> {
    let id: String = row.try_get("id")?;
    let conversation_id: String = row.try_get("conversation_id")?;
    let role: String = row.try_get("role")?;
    let status: String = row.try_get("status")?;
    Ok(Message {
        id: id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("message id {id}")))?,
        conversation_id: conversation_id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("conversation id {conversation_id}")))?,
        role: MessageRole::parse(&role),
        content: row.try_get("content")?,
        status: MessageStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("message status {status}")))?,
        created_at: row.try_get("created_at")?,
    })
}
