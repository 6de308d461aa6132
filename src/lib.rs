//! nano-analyst: a private, offline data analyst for SQLite databases.
//!
//! The module map:
//! - [`core`]: synchronous domain logic (database, retrieval, rewrites, pipeline, feedback,
//!   evaluation, fine-tuning) with no terminal, async runtime or llama.cpp imports.
//! - [`llm`]: llama.cpp: the chat engine, the embedder, GGUF checks, training.
//! - [`remote`]: the chat model on an OpenAI-compatible server (`--llm-url`).
//! - [`server`]: `nano-analyst serve`, the pipeline and the model over HTTP.
//! - [`session`]: the composition root: settings + flags -> one database, one model,
//!   retrieval and example memory, and the [`session::Analyst`] every front end asks through.
//! - [`commands`]: the headless front ends (`ask`, `eval`, `bench`, `schema`, feedback,
//!   `train`); [`tui`]: the terminal app.
//! - [`cli`], [`config`], [`paths`], [`logging`], [`error`]: the edges.

pub mod cli;
pub mod commands;
pub mod config;
pub mod core;
pub mod error;
pub mod llm;
pub mod logging;
pub mod paths;
pub mod remote;
pub mod server;
pub mod session;
pub mod tui;
