//! Handlers of the mock, one file per area: extraction, fault handling, answer.

pub(crate) mod control;
pub(crate) mod generate;
pub(crate) mod messages_stream;
pub(crate) mod openai;
pub(crate) mod search;
