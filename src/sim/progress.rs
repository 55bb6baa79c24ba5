//! How generation progress leaves the mock: Redis PUBLISH on `conversation:{id}`, or, without
//! Redis, a POST to the gateway's internal events route. The final messages always go to the
//! gateway's internal complete route.
//!
//! Delivery failures are logged and otherwise ignored, like a real worker that keeps going.

use std::time::Duration;

use axum::http::HeaderValue;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde_json::json;

use super::config::MockAiConfig;
use super::error::SimError;

const CALLBACK_TIMEOUT: Duration = Duration::from_secs(10);
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// Where progress messages go.
enum Channel {
    Redis(ConnectionManager),
    Gateway,
}

/// Sends a generation's progress and result to the gateway.
pub(crate) struct Progress {
    channel: Channel,
    http: reqwest::Client,
    gateway_url: Option<String>,
    api_key: String,
}

impl Progress {
    /// Connects lazily: the mock starts even while Redis is down, and the manager reconnects.
    pub(crate) fn new(config: &MockAiConfig) -> Result<Self, SimError> {
        let channel = match &config.redis_url {
            Some(url) => {
                let client = redis::Client::open(url.as_str()).map_err(SimError::Redis)?;
                let manager_config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(REDIS_TIMEOUT))
                    .set_response_timeout(Some(REDIS_TIMEOUT))
                    .set_number_of_retries(2);
                Channel::Redis(
                    ConnectionManager::new_lazy_with_config(client, manager_config)
                        .map_err(SimError::Redis)?,
                )
            }
            None => Channel::Gateway,
        };
        let http = reqwest::Client::builder()
            .timeout(CALLBACK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(SimError::HttpClient)?;
        Ok(Self {
            channel,
            http,
            gateway_url: config
                .gateway_url
                .as_ref()
                .map(|url| url.trim_end_matches('/').to_owned()),
            api_key: config.api_key.clone(),
        })
    }

    /// Publishes one message (normally JSON, but the `malformed` fault sends anything).
    pub(crate) async fn publish(
        &self,
        conversation_id: &str,
        message: String,
        request_id: Option<&HeaderValue>,
    ) {
        match &self.channel {
            Channel::Redis(manager) => {
                let channel = format!("conversation:{conversation_id}");
                let published = redis::cmd("PUBLISH")
                    .arg(&channel)
                    .arg(message)
                    .query_async::<i64>(&mut manager.clone())
                    .await;
                if let Err(error) = published {
                    tracing::warn!(%channel, %error, "mock-ai: could not publish progress");
                }
            }
            Channel::Gateway => {
                self.post(conversation_id, "events", message, request_id)
                    .await;
            }
        }
    }

    /// Hands the generated messages to the gateway (`POST …/complete`).
    pub(crate) async fn complete(
        &self,
        conversation_id: &str,
        messages: &[String],
        request_id: Option<&HeaderValue>,
    ) {
        let body = json!({
            "messages": messages
                .iter()
                .map(|content| json!({ "role": "assistant", "content": content }))
                .collect::<Vec<_>>(),
        });
        self.post(conversation_id, "complete", body.to_string(), request_id)
            .await;
    }

    async fn post(
        &self,
        conversation_id: &str,
        action: &str,
        body: String,
        request_id: Option<&HeaderValue>,
    ) {
        let Some(base) = &self.gateway_url else {
            tracing::warn!(
                conversation_id,
                action,
                "mock-ai: GATEWAY_URL is not set; callback skipped"
            );
            return;
        };
        let url = format!("{base}/api/internal/conversations/{conversation_id}/{action}");
        let mut request = self
            .http
            .post(&url)
            .bearer_auth(&self.api_key)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(request_id) = request_id {
            request = request.header("x-request-id", request_id);
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => {
                tracing::warn!(conversation_id, action, status = %response.status(), "mock-ai: gateway refused a callback");
            }
            Err(error) => {
                // reqwest errors carry the URL; strip it, it may point inside the deployment.
                tracing::warn!(conversation_id, action, error = %error.without_url(), "mock-ai: callback failed");
            }
        }
    }
}
