//! llama.cpp through llama-cpp-2: the engine that owns the model and its context.

pub mod embedder;
pub mod engine;
pub mod gguf;

pub use engine::{EngineConfig, LlamaEngine};
