//! nano-analyst: a private, offline data analyst for SQLite databases.
//!
//! `core` is synchronous domain logic with no terminal, runtime or llama.cpp imports;
//! `llm` owns llama.cpp; `runtime` wires one database and one model together; `commands`
//! are the headless front ends (the TUI drives the same pipeline).

pub mod cli;
pub mod commands;
pub mod config;
pub mod core;
pub mod llm;
pub mod logging;
pub mod paths;
pub mod runtime;
pub mod schema_search;
pub mod tui;
