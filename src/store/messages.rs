//! Message queries.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};

use super::{
    Backend, ConversationStatus, HistoryEntry, Message, MessageRole, MessageStatus, NewMessage,
    Store, StoreError, now_millis,
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
        history: Vec<HistoryEntry>,
        /// The stored user message.
        user_message: Message,
    },
}

impl Store {
    /// Starts a chat turn: reads the conversation's state and its recent history and, only
    /// when it is the owner's and completed, stores the user message. A stream start is the
    /// hot path, so this holds one pooled connection for as little as possible: on PostgreSQL
    /// one statement (one round trip), on SQLite two queries on one connection.
    ///
    /// On PostgreSQL the turn's insert commits without waiting for its WAL flush: the flush
    /// (a disk sync, 1–2 ms) would otherwise sit in every answer's time to first token. The
    /// turn becomes durable with the answer: the assistant message is stored by an ordinary
    /// commit, which flushes the log up to and past this insert, before the client is told
    /// `complete`. A database crash mid-answer can lose the unfinished turn, whose stream
    /// then fails; it cannot lose a turn the client saw complete.
    pub async fn open_turn(
        &self,
        owner: &UserId,
        conversation_id: ConversationId,
        history_limit: i64,
        message: &NewMessage,
    ) -> Result<TurnStart, StoreError> {
        let user_message = stamped(conversation_id, message);
        let mut conn = self.pool.acquire().await?;
        let rows = match self.backend {
            // Every part of a WITH statement sees the same snapshot: the history read does not
            // include the message inserted beside it. `set_config(.., true)` lasts until this
            // statement's own commit, so pooled connections keep synchronous commits.
            Backend::Postgres => {
                sqlx::query(
                    "WITH conv AS (
                         SELECT status FROM conversations WHERE id = $1 AND owner = $2
                     ),
                     ins AS (
                         INSERT INTO messages
                             (id, conversation_id, owner, role, content, status, created_at)
                         SELECT $4, $1, $2, $5, $6, $7, $8 FROM conv
                         WHERE conv.status = 'completed'
                     ),
                     hist AS (
                         SELECT role, content, created_at, id
                         FROM messages
                         WHERE conversation_id = $1 AND owner = $2
                           AND status IN ('completed', 'interrupted')
                         ORDER BY created_at DESC, id DESC LIMIT $3
                     )
                     SELECT conv.status AS conversation_status, hist.role, hist.content,
                            set_config('synchronous_commit', 'off', true) AS commit_mode
                     FROM conv LEFT JOIN hist ON TRUE
                     ORDER BY hist.created_at, hist.id",
                )
                .bind(conversation_id.to_string())
                .bind(owner.as_str())
                .bind(history_limit)
                .bind(user_message.id.to_string())
                .bind(user_message.role.as_str())
                .bind(&user_message.content)
                .bind(user_message.status.as_str())
                .bind(user_message.created_at)
                .fetch_all(&mut *conn)
                .await?
            }
            Backend::Sqlite => {
                sqlx::query(
                    "SELECT c.status AS conversation_status, m.role, m.content
                     FROM conversations c
                     LEFT JOIN (SELECT conversation_id, role, content, created_at, id
                                FROM messages
                                WHERE conversation_id = $1 AND owner = $2
                                  AND status IN ('completed', 'interrupted')
                                ORDER BY created_at DESC, id DESC LIMIT $3) m
                            ON m.conversation_id = c.id
                     WHERE c.id = $1 AND c.owner = $2
                     ORDER BY m.created_at, m.id",
                )
                .bind(conversation_id.to_string())
                .bind(owner.as_str())
                .bind(history_limit)
                .fetch_all(&mut *conn)
                .await?
            }
        };
        let Some(first) = rows.first() else {
            return Ok(TurnStart::NotFound);
        };
        let status: String = first.try_get(0)?;
        let status = ConversationStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("conversation status {status}")))?;
        if status != ConversationStatus::Completed {
            return Ok(TurnStart::NotReady(status));
        }
        // Oldest first (the statement orders them); a conversation without history gives
        // one row whose history columns are NULL.
        let mut history = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(role) = row.try_get::<Option<String>, _>(1)? {
                history.push(HistoryEntry {
                    role: MessageRole::parse(&role),
                    content: row.try_get(2)?,
                });
            }
        }
        if self.backend == Backend::Sqlite {
            insert_stored(&mut *conn, owner, &user_message).await?;
        }
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
    let stored = stamped(conversation_id, message);
    insert_stored(executor, owner, &stored).await?;
    Ok(stored)
}

/// The record a new message becomes: a fresh id and the current time.
fn stamped(conversation_id: ConversationId, message: &NewMessage) -> Message {
    Message {
        id: MessageId::new(),
        conversation_id,
        role: message.role,
        content: message.content.clone(),
        status: message.status,
        created_at: now_millis(),
    }
}

async fn insert_stored<'c, E>(
    executor: E,
    owner: &UserId,
    stored: &Message,
) -> Result<(), StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(
        "INSERT INTO messages (id, conversation_id, owner, role, content, status, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(stored.id.to_string())
    .bind(stored.conversation_id.to_string())
    .bind(owner.as_str())
    .bind(stored.role.as_str())
    .bind(&stored.content)
    .bind(stored.status.as_str())
    .bind(stored.created_at)
    .execute(executor)
    .await?;
    Ok(())
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::ids::ScenarioId;
    use crate::store::Scenario;

    /// A fresh database on the PostgreSQL test server (`TEST_POSTGRES_URL`).
    async fn fresh_postgres() -> String {
        let admin = std::env::var("TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
        let name = format!("sluice_unit_{}", uuid::Uuid::new_v4().simple());
        let store = Store::connect_with(&admin, Some(1)).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&store.pool)
            .await
            .unwrap();
        store.close().await;
        let (server, _) = admin.rsplit_once('/').unwrap();
        format!("{server}/{name}")
    }

    #[tokio::test]
    async fn the_turns_relaxed_commit_does_not_outlive_its_statement() {
        // One connection: the query after the turn runs on the connection the turn used.
        let store = Store::connect_with(&fresh_postgres().await, Some(1))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let owner = UserId::new("alice");
        let scenario = Scenario {
            id: ScenarioId::new(),
            owner: owner.clone(),
            novel_id: "moby-dick".into(),
            description: "d".into(),
            passage_ids: vec![],
            passages_source: "ai".into(),
            created_at: 1,
        };
        store.insert_scenario(&scenario).await.unwrap();
        let conversation = store
            .insert_conversation(&owner, scenario.id)
            .await
            .unwrap();
        store
            .complete_conversation(conversation.id, &[])
            .await
            .unwrap();
        let hi = NewMessage {
            role: MessageRole::User,
            content: "hi".into(),
            status: MessageStatus::Completed,
        };
        let turn = store
            .open_turn(&owner, conversation.id, 20, &hi)
            .await
            .unwrap();
        assert!(matches!(turn, TurnStart::Opened { .. }));

        let mode: String = sqlx::query_scalar("SELECT current_setting('synchronous_commit')")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(
            mode, "on",
            "later transactions on the connection commit durably"
        );
        assert_eq!(
            store.messages(&owner, conversation.id).await.unwrap().len(),
            1
        );
    }
}
