//! The background side of one generation: listens on the conversation's channel from before
//! the trigger until the conversation ends, storing every report. Without it, a conversation
//! created by the polling flow would show no progress until the complete callback, because
//! pub/sub messages nobody listens to are gone.

use futures_util::StreamExt;
use tokio::sync::oneshot;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::{Conversations, GenerationFailure};
use crate::domain::progress::{Listening, ProgressMessage, channel};
use crate::events::BusEvent;
use crate::ids::{ConversationId, ScenarioId};
use crate::upstream::CallContext;

/// One generation being watched.
pub(super) struct Watcher {
    pub(super) conversations: Conversations,
    pub(super) id: ConversationId,
    pub(super) scenario_id: ScenarioId,
    pub(super) ctx: CallContext,
    pub(super) shutdown: CancellationToken,
    /// Whether to store reports after the trigger (the polling flow), or only trigger.
    pub(super) watch: bool,
}

impl Watcher {
    /// Subscribe, trigger (telling `triggered`), then store reports until the end, the
    /// generation timeout, or shutdown.
    pub(super) async fn run(self, triggered: oneshot::Sender<()>) {
        let c = &self.conversations;
        if !self.watch {
            c.trigger(self.id, self.scenario_id, &self.ctx).await;
            let _ = triggered.send(());
            return;
        }
        let subscription = c.bus.subscribe(&channel(&self.id)).await;
        let started = c.trigger(self.id, self.scenario_id, &self.ctx).await;
        // The stream that asked may be gone already; that is fine.
        let _ = triggered.send(());
        let mut subscription = match subscription {
            Ok(subscription) if started => {
                Listening::new(subscription, c.bus.clone(), c.metrics.clone())
            }
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(conversation_id = %self.id, %error, "generation runs unwatched");
                return;
            }
        };
        let mut deadline = Instant::now() + c.generation_timeout;
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                () = sleep_until(deadline) => {
                    if self.is_terminal().await {
                        return;
                    }
                    tracing::warn!(conversation_id = %self.id, "generation timed out");
                    c.fail(self.id, GenerationFailure::Timeout).await;
                    return;
                }
                event = subscription.next() => match event {
                    None => return,
                    Some(BusEvent::Message(payload)) => match ProgressMessage::parse(&payload) {
                        Ok(message) => {
                            deadline = Instant::now() + c.generation_timeout;
                            if let Err(error) = c.apply(self.id, &message).await {
                                tracing::error!(conversation_id = %self.id, %error, "could not store a progress report");
                            }
                            if !matches!(message, ProgressMessage::Progress { .. }) {
                                return;
                            }
                        }
                        Err(error) => {
                            tracing::warn!(conversation_id = %self.id, %error, "skipping a malformed progress message");
                        }
                    },
                    Some(BusEvent::Resync) => {
                        if self.is_terminal().await {
                            return;
                        }
                    }
                },
            }
        }
    }

    async fn is_terminal(&self) -> bool {
        match self
            .conversations
            .store
            .conversation_unscoped(self.id)
            .await
        {
            Ok(Some(conversation)) => conversation.status.is_terminal(),
            Ok(None) => true,
            Err(_) => false,
        }
    }
}
