//! `POST /api/ai/search/passages`: deterministic passages for a query in a novel.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::sim::ai_body::{self, Unprocessable};
use crate::sim::fault_reply;
use crate::sim::faults::FaultRoute;
use crate::sim::state::SharedState;
use crate::sim::stats::Call;
use crate::sim::text::{self, Passage};

const DEFAULT_TOP_K: i64 = 5;
const MAX_TOP_K: i64 = 50;

#[derive(Debug, Deserialize)]
struct SearchRequest {
    query: String,
    novel_id: String,
    #[serde(default)]
    top_k: Option<i64>,
}

#[derive(Debug, Serialize)]
struct SearchResponse {
    passage_ids: Vec<String>,
    passages: Vec<Passage>,
}

/// Finds passages; the same `(novel_id, query, top_k)` always gives the same answer.
pub(crate) async fn search_passages(State(state): State<SharedState>, body: Bytes) -> Response {
    state.stats.count(Call::Search);
    let request = match parse(&body) {
        Ok(request) => request,
        Err(rejection) => return rejection.into_response(),
    };
    let fault = state.faults.draw(FaultRoute::Search);
    if let Err(response) = fault_reply::before_answer(&state, fault).await {
        return response;
    }
    let top_k = request.top_k.unwrap_or(DEFAULT_TOP_K).clamp(1, MAX_TOP_K);
    // The clamp keeps top_k in 1..=50, so the conversion cannot fail.
    let passages = text::passages(
        &request.novel_id,
        &request.query,
        usize::try_from(top_k).unwrap_or(1),
    );
    let response = SearchResponse {
        passage_ids: passages.iter().map(|p| p.id.clone()).collect(),
        passages,
    };
    fault_reply::answer(fault, StatusCode::OK, &response)
}

fn parse(body: &[u8]) -> Result<SearchRequest, Unprocessable> {
    let request: SearchRequest = ai_body::parse(body)?;
    ai_body::required("query", &request.query)?;
    ai_body::required("novel_id", &request.novel_id)?;
    Ok(request)
}
