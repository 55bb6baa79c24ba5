//! The path to the AI service: pooled client, circuit breakers, SSE parsing.
