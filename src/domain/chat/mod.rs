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

use std::time::Duration;

use futures_util::Stream;
use tokio_util::task::TaskTracker;

use super::{DomainError, check_text};
use crate::error::ErrorCode;
use crate::ids::{ConversationId, MessageId, UserId};
use crate::limits::StreamSlot;
use crate::metrics::Metrics;
use crate::store::{Message, MessageRole, MessageStatus, NewMessage, Store, TurnStart, while_busy};
use crate::upstream::{AiService, CallContext, HistoryMessage};

/// Longest chat message accepted, in characters.
pub const MAX_CONTENT_CHARS: usize = 8000;

/// How many of the conversation's last messages go to the AI service as history.
const HISTORY_MESSAGES: i64 = 20;

/// How long a stream start waits for a busy database (every pooled connection taken) before
/// it is refused. A burst of starts larger than the pool serves at once queues for a few
/// seconds, as the browser would wait for its first token anyway, instead of being refused
/// after the pool's own acquire timeout (3 s) and retried by every client at once.
const START_PATIENCE: Duration = Duration::from_secs(15);

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

/// Checks a message's length: callers run it before taking a stream slot, so that bad input
/// is a 400 whatever else is true.
pub fn check_content(content: &str) -> Result<(), DomainError> {
    check_text("content", content, MAX_CONTENT_CHARS)
}

/// A started turn: the user message is stored, the answer is to come.
#[derive(Debug, Clone)]
struct ChatTurn {
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

    /// Checks everything that must fail before a stream starts (the content's length, that
    /// the conversation is the caller's, else not found, and that it is completed, else not
    /// ready), stores the user message, and returns the answer's events. The upstream call
    /// happens when the stream is first polled and lives exactly as long as the stream (and
    /// `slot`).
    pub async fn start(
        &self,
        owner: &UserId,
        conversation_id: ConversationId,
        content: String,
        ctx: CallContext,
        slot: StreamSlot,
    ) -> Result<impl Stream<Item = ChatEvent> + Send + 'static, DomainError> {
        check_content(&content)?;
        let user_message = NewMessage {
            role: MessageRole::User,
            content,
            status: MessageStatus::Completed,
        };
        let store = self.store.clone();
        let turn_owner = owner.clone();
        let opened = self
            .store
            .near_or_home(async move {
                while_busy(START_PATIENCE, || {
                    store.open_turn(
                        &turn_owner,
                        conversation_id,
                        HISTORY_MESSAGES,
                        &user_message,
                    )
                })
                .await
            })
            .await?;
        let (history, user_message) = match opened {
            TurnStart::NotFound => return Err(DomainError::NotFound("conversation")),
            TurnStart::NotReady(_) => return Err(DomainError::NotReady),
            TurnStart::Opened {
                history,
                user_message,
            } => (history, user_message),
        };
        let history = history
            .into_iter()
            .map(|entry| HistoryMessage {
                role: entry.role.as_str().to_owned(),
                content: entry.content,
            })
            .collect();
        let turn = ChatTurn {
            owner: owner.clone(),
            conversation_id,
            content: user_message.content,
        };
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
