//! Message queries.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};

use super::{
    ConversationStatus, Message, MessageRole, MessageStatus, NewMessage, Store, StoreError,
    now_millis,
};
use crate::ids::{ConversationId, MessageId, UserId};

/// What [`Store::open_turn`] found.
#[derive(Debug)]
pub enum TurnStart {
    /// The caller has no such conversation: nothing was stored.
    NotFound,
    /// The conversation exists but is not `completed`: nothing was stored.
    NotReady(ConversationStatus),
    /// The user message is stored; `history` is what preceded it, oldest first.
    Opened {
        /// The last finished messages before this turn.
        history: Vec<Message>,
        /// The stored user message.
        user_message: Message,
    },
}

impl Store {
    /// Starts a chat turn in two round trips on one connection: the conversation's state and
    /// its recent history in one query, then (only when it is the owner's and completed) the
    /// user message. A stream start is the hot path: separate queries each paid a pool
    /// checkout and release.
    pub async fn open_turn(
        &self,
        owner: &UserId,
        conversation_id: ConversationId,
        history_limit: i64,
        message: &NewMessage,
    ) -> Result<TurnStart, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(
            "SELECT c.status AS conversation_status,
                    m.id, m.conversation_id, m.role, m.content, m.status, m.created_at
             FROM conversations c
             LEFT JOIN (SELECT id, conversation_id, role, content, status, created_at
                        FROM messages
                        WHERE conversation_id = $1 AND owner = $2
                          AND status IN ('completed', 'interrupted')
                        ORDER BY created_at DESC, id DESC LIMIT $3) m
                    ON m.conversation_id = c.id
             WHERE c.id = $1 AND c.owner = $2",
        )
        .bind(conversation_id.to_string())
        .bind(owner.as_str())
        .bind(history_limit)
        .fetch_all(&mut *conn)
        .await?;
        let Some(first) = rows.first() else {
            return Ok(TurnStart::NotFound);
        };
        let status: String = first.try_get("conversation_status")?;
        let status = ConversationStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("conversation status {status}")))?;
        if status != ConversationStatus::Completed {
            return Ok(TurnStart::NotReady(status));
        }
        let mut history = Vec::with_capacity(rows.len());
        for row in &rows {
            if row.try_get::<Option<String>, _>("id")?.is_some() {
                history.push(message_from_row(row)?);
            }
        }
        history.sort_by_key(|m| (m.created_at, m.id));
        let user_message = insert(&mut *conn, owner, conversation_id, message).await?;
        Ok(TurnStart::Opened {
            history,
            user_message,
        })
    }

    /// Stores one message in the owner's conversation.
    pub async fn insert_message(
        &self,
        owner: &UserId,
        conversation_id: ConversationId,
        message: &NewMessage,
    ) -> Result<Message, StoreError> {
        insert(&self.pool, owner, conversation_id, message).await
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
}

async fn insert<'c, E>(
    executor: E,
    owner: &UserId,
    conversation_id: ConversationId,
    message: &NewMessage,
) -> Result<Message, StoreError>
where
    E: Executor<'c, Database = Any>,
{
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
    .execute(executor)
    .await?;
    Ok(stored)
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
