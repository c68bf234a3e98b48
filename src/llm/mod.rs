//! The LLM decision engine: one OpenAI-compatible client (OpenRouter, Ollama, vLLM,
//! llama.cpp), prompt rendering from template files, and the parser that turns any
//! reply into validated decisions (or HOLDs with the reason).

/// OpenAI-compatible chat-completions client: deadlines, retries, usage and cost.
pub mod client;
/// Reply parsing: repair, JSON-schema validation, semantic checks.
pub mod parse;
/// Prompt templates and the context they are rendered with.
pub mod prompt;
/// The decision JSON schema for an account's assets.
pub mod schema;
