//! Progress streams: what a browser sees of a conversation's generation, without polling.
//!
//! The order of operations is what makes it lossless:
//! 1. subscribe to `conversation:{id}` (the bus confirms the subscription is live);
//! 2. only then trigger generation (for `create-stream`);
//! 3. read the stored state and emit it (a `complete` that happened before the client
//!    connected is delivered here);
//! 4. relay live events: each report is stored (idempotently) and the stream emits what its
//!    store read says, dropping anything not newer than what it already emitted.
//!
//! Event ids are the conversation's stored `event_seq`, so they keep increasing across
//! streams, instances and reconnects, and `Last-Event-ID` can be honoured. A `Resync` from
//! the bus (reconnect, or this stream lagged) is answered by re-reading the stored state.

mod listening;
mod message;

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use tokio::sync::oneshot;
use tokio::time::{Instant, sleep_until};

pub use listening::Listening;
pub use message::{MalformedMessage, ProgressMessage, channel};

use super::DomainError;
use super::generation::{Conversations, GenerationFailure};
use crate::error::ErrorCode;
use crate::events::BusEvent;
use crate::ids::{ConversationId, ScenarioId, UserId};
use crate::store::{Conversation, ConversationStatus, StoreError};
use crate::upstream::CallContext;

/// One event of a progress stream; `seq` becomes the SSE `id:`.
#[derive(Debug, Clone, PartialEq)]
pub enum ProgressEvent {
    /// Generation is pending or under way.
    Progress {
        /// Stored event sequence.
        seq: i64,
        /// Which conversation.
        conversation_id: ConversationId,
        /// 0..=99.
        progress: i64,
        /// What is happening, for people.
        message: String,
    },
    /// The conversation is ready; the stream ends after this.
    Complete {
        /// Stored event sequence.
        seq: i64,
        /// Which conversation.
        conversation_id: ConversationId,
        /// Messages stored in the conversation.
        message_count: usize,
    },
    /// Generation failed; the stream ends after this.
    Error {
        /// Stored event sequence.
        seq: i64,
        /// Which conversation.
        conversation_id: ConversationId,
        /// `ai_unavailable`, `upstream_timeout` or `upstream_error`.
        code: ErrorCode,
        /// For people; never the AI service's own words.
        message: String,
    },
}

impl ProgressEvent {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Progress { .. } => "progress",
            Self::Complete { .. } => "complete",
            Self::Error { .. } => "error",
        }
    }

    /// The SSE `id:`.
    pub fn seq(&self) -> i64 {
        match self {
            Self::Progress { seq, .. } | Self::Complete { seq, .. } | Self::Error { seq, .. } => {
                *seq
            }
        }
    }

    /// Whether the stream ends after this event.
    pub fn is_terminal(&self) -> bool {
        !matches!(self, Self::Progress { .. })
    }
}

/// A progress stream, ready to be mapped to SSE.
pub type ProgressStream = Pin<Box<dyn Stream<Item = ProgressEvent> + Send>>;

impl Conversations {
    /// `create-stream`: creates the conversation, subscribes, then triggers generation, and
    /// returns its progress stream (the first event, progress 0, comes at once).
    pub async fn create_stream(
        &self,
        owner: &UserId,
        scenario_id: ScenarioId,
        ctx: CallContext,
    ) -> Result<ProgressStream, DomainError> {
        let conversation = self.create(owner, scenario_id).await?;
        let listening = self.listen(conversation.id).await;
        let triggered = self.start(&conversation, ctx, false);
        // The first event is the state as created, even if the trigger fails before the
        // stream is first polled (that failure then follows as `error`).
        let start = Start::Created(progress_event(&conversation), triggered);
        Ok(self.follow(owner.clone(), conversation.id, listening, -1, start))
    }

    /// `/events`: the progress stream of an existing conversation of the owner, skipping
    /// events up to `last_event_id`.
    pub async fn open_stream(
        &self,
        owner: &UserId,
        id: ConversationId,
        last_event_id: Option<i64>,
    ) -> Result<ProgressStream, DomainError> {
        self.get(owner, id).await?;
        let listening = self.listen(id).await;
        Ok(self.follow(
            owner.clone(),
            id,
            listening,
            last_event_id.unwrap_or(-1),
            Start::Stored,
        ))
    }

    /// Subscribes to the conversation's channel. `None` only when the bus is shut down (the
    /// gateway is stopping): the stream then shows the stored state and ends.
    async fn listen(&self, id: ConversationId) -> Option<Listening> {
        match self.bus.subscribe(&channel(&id)).await {
            Ok(subscription) => Some(Listening::new(
                subscription,
                self.bus.clone(),
                self.metrics.clone(),
            )),
            Err(error) => {
                tracing::warn!(conversation_id = %id, %error, "cannot subscribe; no live events");
                None
            }
        }
    }

    fn follow(
        &self,
        owner: UserId,
        id: ConversationId,
        listening: Option<Listening>,
        last_seq: i64,
        start: Start,
    ) -> ProgressStream {
        let follower = Follower {
            conversations: self.clone(),
            owner,
            id,
            last_seq,
        };
        Box::pin(follower.run(listening, start))
    }
}

/// How a stream begins.
enum Start {
    /// With the stored state (`/events`).
    Stored,
    /// With the just-created conversation, then waiting for the generation trigger's answer.
    Created(ProgressEvent, oneshot::Receiver<()>),
}

/// The state of one stream: whose conversation, and the last id it emitted.
struct Follower {
    conversations: Conversations,
    owner: UserId,
    id: ConversationId,
    last_seq: i64,
}

impl Follower {
    fn run(
        mut self,
        listening: Option<Listening>,
        start: Start,
    ) -> impl Stream<Item = ProgressEvent> + Send {
        async_stream::stream! {
            let triggered = match start {
                Start::Created(first, triggered) => {
                    self.last_seq = first.seq();
                    yield first;
                    Some(triggered)
                }
                // Terminal events are always emitted (even below `Last-Event-ID`), so a
                // reconnecting client learns that the conversation is over.
                Start::Stored => {
                    match self.observe(true).await {
                        Some(event) => {
                            let end = event.is_terminal();
                            yield event;
                            if end {
                                return;
                            }
                        }
                        None if self.is_gone().await => return,
                        None => {}
                    }
                    None
                }
            };
            let Some(mut listening) = listening else {
                return;
            };
            let timeout = self.conversations.generation_timeout;
            let mut deadline = Instant::now() + timeout;
            let mut waiting_for_trigger = triggered.is_some();
            // Without a trigger to wait for, that branch is disabled; any receiver will do.
            let mut triggered = triggered.unwrap_or_else(|| oneshot::channel().1);
            loop {
                let emitted = tokio::select! {
                    _ = &mut triggered, if waiting_for_trigger => {
                        waiting_for_trigger = false;
                        deadline = Instant::now() + timeout;
                        self.observe(false).await
                    }
                    () = sleep_until(deadline) => {
                        deadline = Instant::now() + timeout;
                        self.expire().await
                    }
                    event = listening.next() => match event {
                        None => return,
                        Some(BusEvent::Message(payload)) => {
                            match ProgressMessage::parse(&payload) {
                                Ok(message) => {
                                    deadline = Instant::now() + timeout;
                                    self.relay(&message).await
                                }
                                Err(error) => {
                                    tracing::warn!(conversation_id = %self.id, %error, "skipping a malformed progress message");
                                    None
                                }
                            }
                        }
                        Some(BusEvent::Resync) => self.observe(false).await,
                    },
                };
                if let Some(event) = emitted {
                    let end = event.is_terminal();
                    yield event;
                    if end {
                        return;
                    }
                }
            }
        }
    }

    /// Stores a live report and returns what to emit. A progress step this stream stored
    /// itself, or one published with its sequence number, is emitted as that exact step;
    /// anything else is emitted as the stored state reads.
    async fn relay(&mut self, message: &ProgressMessage) -> Option<ProgressEvent> {
        if let ProgressMessage::Progress {
            seq: Some(seq),
            progress,
            message,
        } = message
        {
            if *seq <= self.last_seq {
                return None;
            }
            self.last_seq = *seq;
            return Some(ProgressEvent::Progress {
                seq: *seq,
                conversation_id: self.id,
                progress: *progress,
                message: message.clone().unwrap_or_else(|| "Generating".to_owned()),
            });
        }
        match self.conversations.apply(self.id, message).await {
            Ok(Some(stored)) if stored.event_seq > self.last_seq => {
                self.last_seq = stored.event_seq;
                Some(progress_event(&stored))
            }
            Ok(_) => self.observe(false).await,
            Err(error) => {
                tracing::error!(conversation_id = %self.id, %error, "could not store a progress report");
                self.observe(false).await
            }
        }
    }

    /// No report for `GENERATION_TIMEOUT_SECS`: unless the stored state moved meanwhile
    /// (reported to another instance), the generation is failed as timed out.
    async fn expire(&mut self) -> Option<ProgressEvent> {
        if let Some(event) = self.observe(false).await {
            return Some(event);
        }
        if self.is_gone().await {
            return None;
        }
        tracing::warn!(conversation_id = %self.id, "generation timed out");
        self.conversations
            .fail(self.id, GenerationFailure::Timeout)
            .await;
        self.observe(false).await
    }

    /// Reads the stored state and returns the event to emit, if it is news to this stream
    /// (terminal states always are on the first read). Store errors are logged: the next
    /// report or resync reads again.
    async fn observe(&mut self, first: bool) -> Option<ProgressEvent> {
        match self.read(first).await {
            Ok(event) => {
                if let Some(event) = &event {
                    self.last_seq = self.last_seq.max(event.seq());
                }
                event
            }
            Err(error) => {
                tracing::error!(conversation_id = %self.id, %error, "cannot read the conversation");
                None
            }
        }
    }

    async fn read(&self, first: bool) -> Result<Option<ProgressEvent>, StoreError> {
        let store = &self.conversations.store;
        let Some(conversation) = store.conversation(&self.owner, self.id).await? else {
            return Ok(None);
        };
        let news = conversation.event_seq > self.last_seq;
        let terminal = conversation.status.is_terminal();
        if !(news || (first && terminal)) {
            return Ok(None);
        }
        Ok(Some(match conversation.status {
            ConversationStatus::Completed => ProgressEvent::Complete {
                seq: conversation.event_seq,
                conversation_id: self.id,
                message_count: store.messages(&self.owner, self.id).await?.len(),
            },
            ConversationStatus::Failed => {
                let failure = GenerationFailure::from_text(conversation.error.as_deref());
                ProgressEvent::Error {
                    seq: conversation.event_seq,
                    conversation_id: self.id,
                    code: failure.code(),
                    message: failure.message().to_owned(),
                }
            }
            ConversationStatus::Pending | ConversationStatus::Generating => {
                progress_event(&conversation)
            }
        }))
    }

    /// Whether the conversation no longer exists (nothing more will ever come).
    async fn is_gone(&self) -> bool {
        matches!(
            self.conversations
                .store
                .conversation(&self.owner, self.id)
                .await,
            Ok(None)
        )
    }
}

fn progress_event(conversation: &Conversation) -> ProgressEvent {
    let message = conversation.status_message.clone().unwrap_or_else(|| {
        match conversation.status {
            ConversationStatus::Pending => "Waiting for the AI service",
            _ => "Generating",
        }
        .to_owned()
    });
    ProgressEvent::Progress {
        seq: conversation.event_seq,
        conversation_id: conversation.id,
        progress: conversation.progress,
        message,
    }
}
