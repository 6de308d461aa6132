//! A chat model on another machine, over the OpenAI-compatible chat completions API with
//! streaming (llama-server, vLLM, Ollama): the same [`LanguageModel`] as the in-process
//! engine. Embeddings stay local.
//!
//! `sse` reads the event stream, `stream` turns its chunks into a completion's text (stop
//! strings, the repeated prefix, cancel), `prefix` decides how the assistant prefix
//! travels, `engine` speaks HTTP.
//!
//! [`LanguageModel`]: crate::core::model::LanguageModel

pub mod engine;
pub mod prefix;
pub mod sse;
pub mod stream;

pub use engine::{API_KEY_VAR, RemoteConfig, RemoteEngine, ServerKind};
