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
    /// Measure execution accuracy on Spider-format questions (see docs/eval.md).
    Eval(EvalArgs),
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
pub struct EvalArgs {
    /// Spider-format questions: dev.json (a JSON list) or JSON Lines, each
    /// {db_id, question, query} (db_id may be left out with --db).
    #[arg(long, value_name = "FILE")]
    pub dataset: PathBuf,
    /// Databases laid out as Spider does: DIR/<db_id>/<db_id>.sqlite.
    #[arg(long, value_name = "DIR", required_unless_present = "db")]
    pub db_dir: Option<PathBuf>,
    /// One database for every question (e.g. sample_dbs/chinook.db for the Chinook pairs).
    #[arg(long, value_name = "FILE", conflicts_with = "db_dir")]
    pub db: Option<PathBuf>,
    /// Only questions on this database (repeatable).
    #[arg(long = "db-id", value_name = "ID")]
    pub db_id: Vec<String>,
    /// A fixed sample of about N questions, stratified by database and hardness level.
    #[arg(long, value_name = "N")]
    pub sample: Option<usize>,
    /// Only the first N selected questions.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Predictions file, one JSON line per question.
    #[arg(long, value_name = "FILE", default_value = "predictions.jsonl")]
    pub out: PathBuf,
    /// Markdown summary (default: the --out path with an .md extension).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// A name for this configuration in the report.
    #[arg(long, default_value = "default")]
    pub config_name: String,
    /// Continue an interrupted run from its predictions file.
    #[arg(long)]
    pub resume: bool,
    /// Replace an existing predictions file.
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
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
