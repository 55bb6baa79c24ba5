//! The simulated internal AI service (`sluice mock-ai`).
