//! Synchronous domain logic: no terminal, async runtime or llama.cpp imports.

pub mod embed;
pub mod eval;
pub mod eval_report;
pub mod exec;
pub mod extract;
pub mod finetune;
pub mod grammar;
pub mod ground;
pub mod guard;
pub mod hardness;
pub mod history;
pub mod ident;
pub mod llm_api;
pub mod memory;
pub mod model_registry;
pub mod pipeline;
pub mod prompt;
pub mod repair;
pub mod retrieval;
pub mod schema;
pub mod schema_render;
pub mod score;
pub mod simplify;
pub mod store;
pub mod training;
pub mod vote;
