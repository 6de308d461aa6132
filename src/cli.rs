//! The command line. Flags also read `NANO_ANALYST_*` environment variables; they override
//! the config file, which overrides the built-in defaults.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "nano-analyst",
    version,
    about = "A private, offline data analyst: ask questions of a SQLite database in plain English."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    /// The SQLite database to open in the terminal app.
    pub database: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// GGUF model file (default: the model fetched by scripts/fetch-model.sh).
    #[arg(long, global = true, env = "NANO_ANALYST_MODEL", value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// Inference threads (default: physical cores).
    #[arg(long, global = true, env = "NANO_ANALYST_THREADS")]
    pub threads: Option<u32>,
    /// Model layers to offload to the GPU (CUDA/Metal builds).
    #[arg(long, global = true, env = "NANO_ANALYST_GPU_LAYERS")]
    pub gpu_layers: Option<u32>,
    /// Context window in tokens.
    #[arg(long, global = true, env = "NANO_ANALYST_CONTEXT")]
    pub context: Option<u32>,
    /// Directory for all app state: model cache, prompt cache, logs, stores.
    #[arg(long, global = true, env = "NANO_ANALYST_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Config file (default: config.toml in the platform config directory).
    #[arg(long, global = true, env = "NANO_ANALYST_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Times a failing query is sent back to the model with its error.
    #[arg(long, global = true)]
    pub max_repairs: Option<u32>,
    /// Rows kept from a result (the total is still counted).
    #[arg(long, global = true)]
    pub row_limit: Option<usize>,
    /// Query time limit in seconds.
    #[arg(long, global = true, value_name = "SECONDS")]
    pub timeout: Option<f64>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Answer one question and exit.
    Ask(AskArgs),
    /// Time each pipeline stage on a set of question/SQL pairs, cold and warm.
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
pub struct AskArgs {
    /// The SQLite database (opened read-only).
    pub database: PathBuf,
    /// The question, in plain English.
    pub question: String,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Skip the natural-language answer.
    #[arg(long)]
    pub no_answer: bool,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The SQLite database the questions are about.
    pub database: PathBuf,
    /// JSON Lines file of {question, query} pairs.
    #[arg(long, value_name = "FILE")]
    pub pairs: PathBuf,
    /// How many questions to time.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Also generate the natural-language answer (counted in end-to-end time).
    #[arg(long)]
    pub with_answer: bool,
}
