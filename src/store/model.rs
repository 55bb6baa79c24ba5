//! Stored records. Plain data: no HTTP, no SQL.

use serde::{Deserialize, Serialize};

use crate::ids::{ConversationId, MessageId, ScenarioId, UserId};

/// A scenario with the passages found for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Id.
    pub id: ScenarioId,
    /// Owner.
    pub owner: UserId,
    /// The novel it is about.
    pub novel_id: String,
    /// What the user wants.
    pub description: String,
    /// Passages found by the AI search (or a fallback).
    pub passage_ids: Vec<String>,
    /// `ai`, `cache` or `fallback`.
    pub passages_source: String,
    /// Milliseconds since the epoch.
    pub created_at: i64,
}

/// Lifecycle of a conversation's generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationStatus {
    /// Created, generation not started or not yet reported.
    Pending,
    /// The AI service reported progress.
    Generating,
    /// Messages stored.
    Completed,
    /// Generation failed.
    Failed,
}

impl ConversationStatus {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Generating => "generating",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "generating" => Self::Generating,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            _ => return None,
        })
    }

    /// Whether no further events can follow.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

/// A conversation and its generation state.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    /// Id.
    pub id: ConversationId,
    /// Owner.
    pub owner: UserId,
    /// The scenario it was generated from.
    pub scenario_id: ScenarioId,
    /// Generation state.
    pub status: ConversationStatus,
    /// 0..=100, never decreasing.
    pub progress: i64,
    /// Last progress message from the AI service.
    pub status_message: Option<String>,
    /// Failure reason, when failed.
    pub error: Option<String>,
    /// Id of the last stored event; SSE `id:` values come from here.
    pub event_seq: i64,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// Milliseconds since the epoch, when completed.
    pub completed_at: Option<i64>,
}

/// A progress report to store.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressUpdate {
    /// 0..=100.
    pub progress: i64,
    /// Human-readable status.
    pub message: Option<String>,
}

/// What a terminal transition did.
#[derive(Debug, Clone, PartialEq)]
pub enum TerminalOutcome {
    /// This call made the transition; the conversation as it is now.
    Applied(Conversation),
    /// The conversation was already terminal; nothing changed.
    AlreadyTerminal(Conversation),
}

/// Author of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageRole {
    /// The person.
    User,
    /// The AI.
    Assistant,
}

impl MessageRole {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }

    /// Parses the stored name (anything but `user` counts as assistant, e.g. `system`).
    pub fn parse(s: &str) -> Self {
        if s == "user" {
            Self::User
        } else {
            Self::Assistant
        }
    }
}

/// State of a stored message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Being streamed right now.
    Streaming,
    /// Whole.
    Completed,
    /// The client went away; partial text kept.
    Interrupted,
    /// The AI service failed.
    Failed,
}

impl MessageStatus {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Streaming => "streaming",
            Self::Completed => "completed",
            Self::Interrupted => "interrupted",
            Self::Failed => "failed",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "streaming" => Self::Streaming,
            "completed" => Self::Completed,
            "interrupted" => Self::Interrupted,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Id.
    pub id: MessageId,
    /// Conversation.
    pub conversation_id: ConversationId,
    /// Author.
    pub role: MessageRole,
    /// Text.
    pub content: String,
    /// State.
    pub status: MessageStatus,
    /// Milliseconds since the epoch.
    pub created_at: i64,
}

/// One message of a conversation's history, as the AI service is given it: who said what.
/// A stream start reads up to 20 of these, so it reads nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Author.
    pub role: MessageRole,
    /// Text.
    pub content: String,
}

/// A message to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// Author.
    pub role: MessageRole,
    /// Text.
    pub content: String,
    /// State.
    pub status: MessageStatus,
}

/// Keyset pagination: newest first, items strictly older than `before`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Page<Id> {
    /// At most this many.
    pub limit: i64,
    /// Cursor: the id of the last item of the previous page.
    pub before: Option<Id>,
}
