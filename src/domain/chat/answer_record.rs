//! The assistant message of one streamed answer, stored exactly once however the stream ends.
//!
//! The text grows token by token. A normal end stores it `completed` or `failed`; if the
//! stream is dropped first (the client went away, the gateway shut down), `Drop` stores it
//! `interrupted` with the partial text. Every insert runs as a small tracked task, so it
//! completes even when the stream that asked for it is dropped while waiting.
//!
//! The answer has already reached the user when it is stored, so a busy database (every
//! pooled connection taken, as when more streams start than the database keeps up with) does
//! not lose it: the insert is tried again for up to [`STORE_PATIENCE`].

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use crate::ids::{ConversationId, UserId};
use crate::store::{Message, MessageRole, MessageStatus, NewMessage, Store, while_busy};

/// How long an answer's insert keeps waiting for a busy database before it is given up.
const STORE_PATIENCE: Duration = Duration::from_secs(30);

/// The answer being built; owned by the stream.
pub(super) struct AnswerRecord {
    store: Store,
    tasks: TaskTracker,
    owner: UserId,
    conversation_id: ConversationId,
    text: String,
    stored: bool,
}

impl AnswerRecord {
    pub(super) fn new(
        store: Store,
        tasks: TaskTracker,
        owner: UserId,
        conversation_id: ConversationId,
    ) -> Self {
        Self {
            store,
            tasks,
            owner,
            conversation_id,
            text: String::new(),
            stored: false,
        }
    }

    /// Appends one token.
    pub(super) fn push(&mut self, token: &str) {
        self.text.push_str(token);
    }

    /// The text so far.
    pub(super) fn text(&self) -> &str {
        &self.text
    }

    /// Stores the message with `status` and waits for it; `None` if the store failed (logged).
    pub(super) async fn store(&mut self, status: MessageStatus) -> Option<Message> {
        match self.spawn_insert(status).await {
            Ok(stored) => stored,
            Err(err) => {
                tracing::error!(error = %err, "storing the assistant message panicked");
                None
            }
        }
    }

    fn spawn_insert(&mut self, status: MessageStatus) -> JoinHandle<Option<Message>> {
        self.stored = true;
        // On the store's own runtime rather than the event-loop thread relaying the stream
        // (see `Store::on_home`).
        let runtime = self.store.home().clone();
        let store = self.store.clone();
        let owner = self.owner.clone();
        let conversation_id = self.conversation_id;
        let message = NewMessage {
            role: MessageRole::Assistant,
            content: std::mem::take(&mut self.text),
            status,
        };
        let insert = async move {
            while_busy(STORE_PATIENCE, || {
                store.insert_message(&owner, conversation_id, &message)
            })
            .await
            .inspect_err(|err| {
                tracing::error!(
                    error = %err,
                    %conversation_id,
                    status = status.as_str(),
                    "could not store the assistant message"
                );
            })
            .ok()
        };
        self.tasks.spawn_on(insert, &runtime)
    }
}

impl Drop for AnswerRecord {
    fn drop(&mut self) {
        if !self.stored {
            // Detached on purpose: nobody is left to wait for it; the task tracker is.
            drop(self.spawn_insert(MessageStatus::Interrupted));
        }
    }
}
