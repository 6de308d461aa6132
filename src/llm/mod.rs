//! llama.cpp through llama-cpp-2: the engine that owns the model and its context; and
//! through llama-cpp-sys-2, training and quantization (`train`), which llama-cpp-2 lacks.

pub mod checkpoint;
pub mod embedder;
pub mod engine;
pub mod gguf;
pub mod train;

pub use engine::{EngineConfig, LlamaEngine};
