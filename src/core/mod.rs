//! Synchronous domain logic: no terminal, async runtime or llama.cpp imports.
//!
//! The map, each subsystem depending only on those above it:
//! - [`model`]: what the core needs from a chat model and an embedding model (traits).
//! - [`repetition`]: when a reply is caught in a loop, so the model engines stop it.
//! - [`db`]: one read-only SQLite database: execution, schema, compact rendering,
//!   identifiers, parsing and the read-only guard.
//! - [`retrieval`]: what the prompt says about the database for one question (schema
//!   retrieval, glossary, the context-provider interface that example memory plugs into).
//! - [`rewrite`]: checked rewrites of generated SQL, one interface and one ordered registry.
//! - [`pipeline`]: one question end to end: context, generate, rewrite, check, execute,
//!   repair, answer.
//! - [`feedback`]: run history, ratings and corrections, example memory, retraining export.
//! - [`eval`]: execution-accuracy evaluation (harness, scoring, hardness, reports).
//! - [`finetune`]: fine-tuning's pure logic and the registry of trained versions.

pub mod db;
pub mod eval;
pub mod feedback;
pub mod finetune;
pub mod model;
pub mod pipeline;
pub mod repetition;
pub mod retrieval;
pub mod rewrite;
