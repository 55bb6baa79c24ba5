//! Scenarios: passages from the AI search, with the contract's fallback chain so an AI
//! outage never fails scenario creation: cached result for the same query, else the last
//! good result for the novel, else an empty list.

use std::time::Duration;

use bytes::Bytes;

use super::{DomainError, check_text};
use crate::cache::{self, SharedCache};
use crate::ids::{ScenarioId, UserId};
use crate::metrics::Metrics;
use crate::store::{Page, Scenario, Store, now_millis};
use crate::upstream::{AiService, CallContext, PassageQuery};

/// Passages requested per scenario.
const TOP_K: u32 = 5;
const ROUTE: &str = "/api/scenarios";

/// Input of scenario creation, before validation.
#[derive(Debug, Clone)]
pub struct ScenarioInput {
    /// The novel.
    pub novel_id: String,
    /// 1..=4000 characters.
    pub description: String,
}

/// Where the passages of a new scenario came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassagesSource {
    /// Fresh from the AI service.
    Ai,
    /// The cached result of the same query.
    Cache,
    /// The last good result for the novel, or nothing.
    Fallback,
}

impl PassagesSource {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ai => "ai",
            Self::Cache => "cache",
            Self::Fallback => "fallback",
        }
    }
}

/// Scenario operations.
#[derive(Clone)]
pub struct Scenarios {
    store: Store,
    ai: AiService,
    cache: SharedCache,
    cache_ttl: Duration,
    metrics: Metrics,
}

impl Scenarios {
    /// Wires the operations to their infrastructure.
    pub fn new(
        store: Store,
        ai: AiService,
        cache: SharedCache,
        cache_ttl: Duration,
        metrics: Metrics,
    ) -> Self {
        Self {
            store,
            ai,
            cache,
            cache_ttl,
            metrics,
        }
    }

    /// Creates a scenario. Never fails because the AI service is down.
    pub async fn create(
        &self,
        owner: &UserId,
        input: ScenarioInput,
        ctx: &CallContext,
    ) -> Result<Scenario, DomainError> {
        check_text("novel_id", &input.novel_id, 200)?;
        check_text("description", &input.description, 4000)?;
        let (passage_ids, source) = self.find_passages(&input, ctx).await?;
        let scenario = Scenario {
            id: ScenarioId::new(),
            owner: owner.clone(),
            novel_id: input.novel_id,
            description: input.description,
            passage_ids,
            passages_source: source.as_str().to_string(),
            created_at: now_millis(),
        };
        self.store.insert_scenario(&scenario).await?;
        Ok(scenario)
    }

    /// The owner's scenario.
    pub async fn get(&self, owner: &UserId, id: ScenarioId) -> Result<Scenario, DomainError> {
        self.store
            .scenario(owner, id)
            .await?
            .ok_or(DomainError::NotFound("scenario"))
    }

    /// The owner's scenarios, newest first.
    pub async fn list(
        &self,
        owner: &UserId,
        page: Page<ScenarioId>,
    ) -> Result<Vec<Scenario>, DomainError> {
        Ok(self.store.scenarios(owner, page).await?)
    }

    async fn find_passages(
        &self,
        input: &ScenarioInput,
        ctx: &CallContext,
    ) -> Result<(Vec<String>, PassagesSource), DomainError> {
        let key = cache::key(
            "search",
            &[&input.novel_id, &input.description, &TOP_K.to_string()],
        );
        if let Some(cached) = self.cache.get(&key).await
            && let Ok(ids) = serde_json::from_slice::<Vec<String>>(&cached)
        {
            self.metrics.cache("search", "hit");
            return Ok((ids, PassagesSource::Cache));
        }
        self.metrics.cache("search", "miss");

        let query = PassageQuery {
            query: input.description.clone(),
            novel_id: input.novel_id.clone(),
            top_k: TOP_K,
        };
        match self.ai.search_passages(&query, ctx).await {
            Ok(found) => {
                if let Ok(json) = serde_json::to_vec(&found.passage_ids) {
                    self.cache
                        .put(&key, Bytes::from(json), self.cache_ttl)
                        .await;
                }
                self.store
                    .save_novel_passages(&input.novel_id, &found.passage_ids)
                    .await?;
                Ok((found.passage_ids, PassagesSource::Ai))
            }
            Err(err) => {
                tracing::warn!(error = %err, novel_id = %input.novel_id, "passage search failed; using fallback");
                let last_good = self.store.novel_passages(&input.novel_id).await?;
                let source = if last_good.is_some() {
                    "novel"
                } else {
                    "empty"
                };
                self.metrics.fallback(ROUTE, source);
                Ok((last_good.unwrap_or_default(), PassagesSource::Fallback))
            }
        }
    }
}
