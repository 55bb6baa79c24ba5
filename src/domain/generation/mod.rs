//! Conversation generation: creating conversations, asking the AI service to generate them,
//! and storing what it reports, however the report arrives (pub/sub, the internal callback
//! routes, or a timeout). Every store operation is idempotent and never goes backwards, so
//! the same report arriving on several instances, or twice, is harmless.

mod failure;
mod watcher;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use failure::GenerationFailure;

use super::DomainError;
use super::progress::{ProgressMessage, channel};
use crate::events::EventBus;
use crate::ids::{ConversationId, ScenarioId, UserId};
use crate::metrics::Metrics;
use crate::store::{Conversation, NewMessage, Page, ProgressUpdate, Store, StoreError};
use crate::upstream::{AiService, CallContext};

/// Conversation operations and the generation life cycle. Cheap to clone.
#[derive(Clone)]
pub struct Conversations {
    pub(crate) store: Store,
    ai: AiService,
    pub(crate) bus: Arc<dyn EventBus>,
    pub(crate) metrics: Metrics,
    pub(crate) generation_timeout: Duration,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

/// What [`Conversations`] needs from the application.
pub struct ConversationsDeps {
    /// The database.
    pub store: Store,
    /// The AI service (generation is triggered through its breaker).
    pub ai: AiService,
    /// Where progress is published and heard.
    pub bus: Arc<dyn EventBus>,
    /// Gauges and counters.
    pub metrics: Metrics,
    /// `GENERATION_TIMEOUT_SECS`.
    pub generation_timeout: Duration,
    /// Background generation watchers are tracked here, to be drained on shutdown.
    pub tasks: TaskTracker,
    /// Ends the watchers on shutdown.
    pub shutdown: CancellationToken,
}

impl Conversations {
    /// Wires the operations to their infrastructure.
    pub fn new(deps: ConversationsDeps) -> Self {
        Self {
            store: deps.store,
            ai: deps.ai,
            bus: deps.bus,
            metrics: deps.metrics,
            generation_timeout: deps.generation_timeout,
            tasks: deps.tasks,
            shutdown: deps.shutdown,
        }
    }

    /// Creates a pending conversation for one of the owner's scenarios (404 for anyone else's).
    pub async fn create(
        &self,
        owner: &UserId,
        scenario_id: ScenarioId,
    ) -> Result<Conversation, DomainError> {
        if self.store.scenario(owner, scenario_id).await?.is_none() {
            return Err(DomainError::NotFound("scenario"));
        }
        Ok(self.store.insert_conversation(owner, scenario_id).await?)
    }

    /// The owner's conversation.
    pub async fn get(
        &self,
        owner: &UserId,
        id: ConversationId,
    ) -> Result<Conversation, DomainError> {
        self.store
            .conversation(owner, id)
            .await?
            .ok_or(DomainError::NotFound("conversation"))
    }

    /// The owner's conversations, newest first.
    pub async fn list(
        &self,
        owner: &UserId,
        page: Page<ConversationId>,
    ) -> Result<Vec<Conversation>, DomainError> {
        Ok(self.store.conversations(owner, page).await?)
    }

    /// Asks the AI service to generate `conversation`, in a background task so a client that
    /// goes away does not cancel it.
    ///
    /// With `watch` (the polling flow, where no stream listens), the task subscribes to the
    /// conversation's channel first, then triggers generation, then stores what the AI
    /// service reports until the conversation ends, so `/status` shows progress. A stream
    /// (`create-stream`) stores the reports itself and emits exactly what it stored, so it
    /// asks for no watcher: one racing it would make the stream read a later state and skip
    /// a progress step.
    ///
    /// The returned receiver fires once the trigger has been answered (and, if it failed,
    /// once the conversation is stored as failed).
    pub fn start(
        &self,
        conversation: &Conversation,
        ctx: CallContext,
        watch: bool,
    ) -> oneshot::Receiver<()> {
        let (triggered, on_triggered) = oneshot::channel();
        let watcher = watcher::Watcher {
            conversations: self.clone(),
            id: conversation.id,
            scenario_id: conversation.scenario_id,
            ctx,
            shutdown: self.shutdown.clone(),
            watch,
        };
        self.tasks.spawn(watcher.run(triggered));
        on_triggered
    }

    /// Triggers generation (the watcher's first step, after it has subscribed).
    pub(crate) async fn trigger(
        &self,
        id: ConversationId,
        scenario_id: ScenarioId,
        ctx: &CallContext,
    ) -> bool {
        match self
            .ai
            .generate(&id.to_string(), &scenario_id.to_string(), ctx)
            .await
        {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(conversation_id = %id, %error, "generation could not be started");
                self.fail(id, GenerationFailure::AiUnavailable).await;
                false
            }
        }
    }

    /// Stores one report from the AI service. Idempotent: a stale progress, or a second
    /// terminal report, changes nothing. Returns the conversation when this call moved its
    /// progress forward (the caller then knows that event's exact sequence number).
    pub async fn apply(
        &self,
        id: ConversationId,
        message: &ProgressMessage,
    ) -> Result<Option<Conversation>, StoreError> {
        match message {
            ProgressMessage::Progress {
                progress, message, ..
            } => {
                let update = ProgressUpdate {
                    progress: *progress,
                    message: message.clone(),
                };
                return self.store.record_progress(id, &update).await;
            }
            ProgressMessage::Complete { .. } => {
                // The messages come by the complete callback, which the AI service makes
                // before it publishes `complete`; this only makes sure the state is terminal.
                self.store.complete_conversation(id, &[]).await?;
            }
            ProgressMessage::Failed { error } => {
                let failure = GenerationFailure::from_text(error.as_deref());
                if failure == GenerationFailure::Upstream {
                    tracing::warn!(conversation_id = %id, reported = ?error, "the AI service reports generation failed");
                }
                self.store.fail_conversation(id, failure.message()).await?;
            }
        }
        Ok(None)
    }

    /// The internal events route: stores the report, then publishes it so the streams of
    /// every instance see it (the same effect as the AI service publishing it).
    pub async fn report(
        &self,
        id: ConversationId,
        message: ProgressMessage,
    ) -> Result<(), DomainError> {
        self.exists(id).await?;
        let stored = self.apply(id, &message).await?;
        let published = match message {
            // Published with its sequence number, so streams emit exactly this step; a stale
            // report changed nothing and is not published.
            ProgressMessage::Progress { .. } => match stored {
                Some(conversation) => ProgressMessage::Progress {
                    progress: conversation.progress,
                    message: conversation.status_message,
                    seq: Some(conversation.event_seq),
                },
                None => return Ok(()),
            },
            // Never pass the AI service's own error text on.
            ProgressMessage::Failed { error } => ProgressMessage::Failed {
                error: Some(
                    GenerationFailure::from_text(error.as_deref())
                        .message()
                        .to_owned(),
                ),
            },
            other => other,
        };
        self.publish(id, &published).await;
        Ok(())
    }

    /// The internal complete route: stores the messages and marks the conversation
    /// completed (once), then publishes `complete`.
    pub async fn complete(
        &self,
        id: ConversationId,
        messages: &[NewMessage],
    ) -> Result<(), DomainError> {
        self.exists(id).await?;
        self.store.complete_conversation(id, messages).await?;
        let complete = ProgressMessage::Complete {
            conversation_id: Some(id.to_string()),
        };
        self.publish(id, &complete).await;
        Ok(())
    }

    /// The internal failed route: marks the conversation failed (once), then publishes it.
    pub async fn report_failure(
        &self,
        id: ConversationId,
        error: Option<&str>,
    ) -> Result<(), DomainError> {
        self.exists(id).await?;
        let failure = GenerationFailure::from_text(error);
        tracing::warn!(conversation_id = %id, reported = ?error, "the AI service reports generation failed");
        self.store.fail_conversation(id, failure.message()).await?;
        self.publish_failure(id, failure).await;
        Ok(())
    }

    /// Marks the conversation failed for `failure` and tells every stream. Errors are logged:
    /// callers are background tasks and streams with nobody to report to.
    pub(crate) async fn fail(&self, id: ConversationId, failure: GenerationFailure) {
        if let Err(error) = self.store.fail_conversation(id, failure.message()).await {
            tracing::error!(conversation_id = %id, %error, "could not store a generation failure");
        }
        self.publish_failure(id, failure).await;
    }

    async fn publish_failure(&self, id: ConversationId, failure: GenerationFailure) {
        let failed = ProgressMessage::Failed {
            error: Some(failure.message().to_owned()),
        };
        self.publish(id, &failed).await;
    }

    /// Publishes on the conversation's channel. A failure (Redis down) is logged only: the
    /// state is stored, and streams re-read it when the bus reconnects.
    async fn publish(&self, id: ConversationId, message: &ProgressMessage) {
        if let Err(error) = self.bus.publish(&channel(&id), &message.to_payload()).await {
            tracing::warn!(conversation_id = %id, %error, "could not publish a progress event");
        }
    }

    async fn exists(&self, id: ConversationId) -> Result<(), DomainError> {
        match self.store.conversation_unscoped(id).await? {
            Some(_) => Ok(()),
            None => Err(DomainError::NotFound("conversation")),
        }
    }
}
