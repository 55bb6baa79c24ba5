//! The background half of `POST /api/ai/generate`: progress stages, then the result handed to
//! the gateway, as a real generation worker would do after accepting the job.

use axum::http::HeaderValue;
use serde_json::json;

use super::fault_reply::LEAK_CANARY;
use super::state::SharedState;
use super::text;

/// Progress published before the result, each after one stage delay.
const STAGES: [(u8, &str); 3] = [
    (20, "Reading the scenario and its passages"),
    (50, "Drafting the conversation"),
    (70, "Polishing the dialogue"),
];

/// How the generation ends, chosen by the fault drawn when it was requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Messages sent to the gateway, then `complete` published.
    Complete,
    /// `failed` published instead of completing (`error` fault).
    Fail,
    /// A message that is not valid JSON instead of completing (`malformed` fault).
    Malformed,
    /// The worker dies silently after the second stage (`drop_mid_stream` fault).
    Abandon,
}

/// One accepted generation job.
#[derive(Debug, Clone)]
pub(crate) struct Generation {
    pub(crate) conversation_id: String,
    pub(crate) scenario_id: String,
    /// The caller's `X-Request-Id`, forwarded on every callback.
    pub(crate) request_id: Option<HeaderValue>,
    pub(crate) stage_delay: std::time::Duration,
    pub(crate) outcome: Outcome,
}

impl Generation {
    /// Runs the job to its end, or until the mock shuts down.
    pub(crate) async fn run(self, state: SharedState) {
        let id = self.conversation_id.as_str();
        let request_id = self.request_id.as_ref();
        for (progress, message) in STAGES {
            if !state.pause(self.stage_delay).await {
                return;
            }
            let event = json!({ "event": "progress", "progress": progress, "message": message });
            state
                .progress
                .publish(id, event.to_string(), request_id)
                .await;
            if self.outcome == Outcome::Abandon && progress == 50 {
                tracing::info!(
                    conversation_id = id,
                    "mock-ai: generation abandoned on purpose"
                );
                return;
            }
        }
        // Writing the messages takes a stage too: like a real service, the last progress
        // report is not immediately followed by the result.
        if !state.pause(self.stage_delay).await {
            return;
        }
        match self.outcome {
            Outcome::Complete | Outcome::Abandon => {
                let messages = text::conversation_messages(id, &self.scenario_id);
                state.progress.complete(id, &messages, request_id).await;
                let event = json!({ "event": "complete", "conversation_id": id });
                state
                    .progress
                    .publish(id, event.to_string(), request_id)
                    .await;
            }
            Outcome::Fail => {
                let error = format!(
                    "generation worker crashed: torch.cuda.OutOfMemoryError on gpu-node-3.internal ({LEAK_CANARY})"
                );
                let event = json!({ "event": "failed", "error": error });
                state
                    .progress
                    .publish(id, event.to_string(), request_id)
                    .await;
            }
            Outcome::Malformed => {
                let broken = format!("{{\"event\":\"complete\",\"conversation_id\":\"{id}");
                state.progress.publish(id, broken, request_id).await;
            }
        }
    }
}
