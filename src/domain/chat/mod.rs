//! Chat: a user message in, the AI's answer out token by token, both stored.
//!
//! Split so that each piece can be read alone: this file checks a turn and starts it;
//! [`token_relay`] turns the AI service's SSE stream into [`ChatEvent`]s; [`answer_record`]
//! stores the assistant message however the stream ends (a drop guard covers the client going
//! away); [`openai_relay`] forwards the OpenAI-compatible API with fallbacks. Nothing here
//! knows about axum: routes map [`ChatEvent`]s to SSE events.

mod answer_record;
pub mod openai_relay;
mod token_relay;

use futures_util::Stream;
use tokio_util::task::TaskTracker;

use super::{DomainError, check_text};
use crate::error::ErrorCode;
use crate::ids::{ConversationId, MessageId, UserId};
use crate::limits::StreamSlot;
use crate::metrics::Metrics;
use crate::store::{ConversationStatus, Message, MessageRole, MessageStatus, NewMessage, Store};
use crate::upstream::{AiService, CallContext, HistoryMessage};

/// Longest chat message accepted, in characters.
pub const MAX_CONTENT_CHARS: usize = 8000;

/// How many of the conversation's last messages go to the AI service as history.
const HISTORY_MESSAGES: i64 = 20;

/// What the browser is told while an answer streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEvent {
    /// One upstream token, in order.
    Token(String),
    /// The answer is whole and stored.
    Complete {
        /// The stored assistant message.
        message_id: MessageId,
        /// The whole answer.
        content: String,
    },
    /// The answer failed; the stream ends.
    Error {
        /// The contract's error code.
        code: ErrorCode,
        /// A sentence for a person; never upstream text.
        message: &'static str,
    },
}

impl ChatEvent {
    /// The SSE event name (and the `event` label of `sluice_sse_events_total`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Token(_) => "token",
            Self::Complete { .. } => "complete",
            Self::Error { .. } => "error",
        }
    }
}

/// A checked request to answer `content` in a conversation: owned by the caller, ready.
#[derive(Debug, Clone)]
pub struct ChatTurn {
    owner: UserId,
    conversation_id: ConversationId,
    content: String,
}

/// Chat operations. Cheap to clone.
#[derive(Clone)]
pub struct Chat {
    store: Store,
    ai: AiService,
    metrics: Metrics,
    tasks: TaskTracker,
}

impl Chat {
    /// `tasks` runs the store updates that must outlive a stream the client left (the
    /// gateway waits for them on shutdown).
    pub fn new(store: Store, ai: AiService, metrics: Metrics, tasks: TaskTracker) -> Self {
        Self {
            store,
            ai,
            metrics,
            tasks,
        }
    }

    /// Checks everything that must fail before a stream starts: the content's length, that the
    /// conversation is the caller's (else not found) and that it is completed (else not ready).
    pub async fn prepare(
        &self,
        owner: &UserId,
        conversation_id: ConversationId,
        content: String,
    ) -> Result<ChatTurn, DomainError> {
        check_text("content", &content, MAX_CONTENT_CHARS)?;
        let conversation = self
            .store
            .conversation(owner, conversation_id)
            .await?
            .ok_or(DomainError::NotFound("conversation"))?;
        if conversation.status != ConversationStatus::Completed {
            return Err(DomainError::NotReady);
        }
        Ok(ChatTurn {
            owner: owner.clone(),
            conversation_id,
            content,
        })
    }

    /// Stores the user message, then returns the answer's events. The upstream call happens
    /// when the stream is first polled and lives exactly as long as the stream (and `slot`).
    pub async fn start(
        &self,
        turn: ChatTurn,
        ctx: CallContext,
        slot: StreamSlot,
    ) -> Result<impl Stream<Item = ChatEvent> + Send + 'static, DomainError> {
        let history = self
            .store
            .recent_messages(&turn.owner, turn.conversation_id, HISTORY_MESSAGES)
            .await?
            .into_iter()
            .map(|m| HistoryMessage {
                role: m.role.as_str().to_owned(),
                content: m.content,
            })
            .collect();
        let user_message = NewMessage {
            role: MessageRole::User,
            content: turn.content.clone(),
            status: MessageStatus::Completed,
        };
        self.store
            .insert_message(&turn.owner, turn.conversation_id, &user_message)
            .await?;
        Ok(token_relay::relay(self.clone(), turn, history, ctx, slot))
    }

    /// The caller's messages of a conversation, oldest first; not found for anyone else's.
    pub async fn messages(
        &self,
        owner: &UserId,
        conversation_id: ConversationId,
    ) -> Result<Vec<Message>, DomainError> {
        self.store
            .conversation(owner, conversation_id)
            .await?
            .ok_or(DomainError::NotFound("conversation"))?;
        Ok(self.store.messages(owner, conversation_id).await?)
    }
}
