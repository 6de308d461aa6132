//! Headless front ends: each subcommand drives the same pipeline as the TUI.

pub mod ask;
pub mod bench;
pub mod bench_serve;
pub mod eval;
pub mod eval_paraphrases;
pub mod feedback;
pub mod password;
pub mod paths;
pub mod retrieval_bench;
pub mod rewrites;
pub mod schema;
pub mod serve;
pub mod terminal;
pub mod text_table;
pub mod train;
pub mod train_progress;
pub mod train_run;
