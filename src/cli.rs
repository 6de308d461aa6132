//! The command line. Flags also read `NANO_ANALYST_*` environment variables; they override
//! the config file, which overrides the built-in defaults.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "nano-analyst",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("NANO_ANALYST_COMMIT"), ")"),
    about = "A private, offline data analyst: ask questions of a SQLite database in plain English."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    /// The database to open in the terminal app: a SQLite or DuckDB file, a CSV/Parquet file
    /// or folder of them, or a postgres:// URL.
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
    /// Config file (default: config.toml in the platform config directory). A file named
    /// with --config must exist.
    #[arg(long, global = true, env = "NANO_ANALYST_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Times a failing query is sent back to the model with its error.
    #[arg(long, global = true)]
    pub max_repairs: Option<u32>,
    /// Rows kept from a result (the total is still counted).
    #[arg(long, global = true)]
    pub row_limit: Option<usize>,
    /// Query time limit in seconds (0.001 to 86400).
    #[arg(long, global = true, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// MiB of values a result keeps (1 to 1024); no single value may be longer.
    #[arg(long, global = true, value_name = "MIB")]
    pub byte_limit_mib: Option<u64>,
    /// GGUF embedding model for schema retrieval (default: all-MiniLM-L6-v2 fetched by
    /// scripts/fetch-embedder.sh). Without one, retrieval uses BM25 alone.
    #[arg(
        long,
        global = true,
        env = "NANO_ANALYST_EMBED_MODEL",
        value_name = "PATH"
    )]
    pub embed_model: Option<PathBuf>,
    /// Glossary file (JSON or TOML, term -> definition) indexed with the schema; matching
    /// entries go into the prompt.
    #[arg(
        long,
        global = true,
        env = "NANO_ANALYST_GLOSSARY",
        value_name = "FILE"
    )]
    pub glossary: Option<PathBuf>,
    /// GGUF LoRA adapter applied on top of the model (e.g. trained with PEFT or Unsloth and
    /// converted with llama.cpp's convert_lora_to_gguf.py; see the README).
    #[arg(long, global = true, env = "NANO_ANALYST_LORA", value_name = "PATH")]
    pub lora: Option<PathBuf>,
    /// How strongly the LoRA adapter applies (default 1.0).
    #[arg(long, global = true, env = "NANO_ANALYST_LORA_SCALE", value_name = "S")]
    pub lora_scale: Option<f32>,
    /// A model server with the OpenAI chat API to ask instead of the local model, e.g.
    /// http://gpu-box:8080/v1 (llama-server, vLLM, Ollama). Its API key, if it needs one,
    /// comes from NANO_ANALYST_LLM_API_KEY.
    #[arg(long, global = true, env = "NANO_ANALYST_LLM_URL", value_name = "URL")]
    pub llm_url: Option<String>,
    /// The model to ask the server for (default: the first one it lists).
    #[arg(
        long,
        global = true,
        env = "NANO_ANALYST_LLM_MODEL",
        value_name = "NAME"
    )]
    pub llm_model: Option<String>,
    /// What the server is, for what it accepts beyond the OpenAI API (default: openai).
    #[arg(
        long,
        global = true,
        env = "NANO_ANALYST_LLM_SERVER",
        value_name = "KIND",
        value_enum
    )]
    pub llm_server: Option<crate::remote::ServerKind>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Answer one question and exit.
    Ask(AskArgs),
    /// Time each pipeline stage on a set of question/SQL pairs, cold and warm.
    Bench(BenchArgs),
    /// Measure execution accuracy on Spider-format questions (see docs/eval.md).
    Eval(EvalArgs),
    /// Measure whether a correction of one wording fixes another wording of the same
    /// question, and whether the corrections mislead questions that were right.
    EvalParaphrases(EvalParaphrasesArgs),
    /// Show the tables and columns retrieval finds for a question, with scores and reasons.
    Schema(SchemaArgs),
    /// Measure schema retrieval recall on a Spider-format dataset, or time it on a
    /// generated schema.
    RetrievalBench(RetrievalBenchArgs),
    /// Record the right SQL for a question; later questions like it get it as an example.
    Correct(CorrectArgs),
    /// Rate a recorded run: up stores its SQL as verified, down counts towards retraining.
    Rate(RateArgs),
    /// Show the questions asked on a database, newest first.
    History(HistoryArgs),
    /// List, show, remove or edit what the app has learned (verified question/SQL pairs).
    #[command(subcommand)]
    Corrections(CorrectionsCommand),
    /// Build the retraining set from verified pairs.
    #[command(subcommand)]
    Train(TrainCommand),
    /// Check the query rewrites against known-correct queries.
    #[command(subcommand)]
    Rewrites(RewritesCommand),
    /// Serve the analyst over HTTP (ask, correct, rate, history) and the loaded model as an
    /// OpenAI-compatible chat API (see docs/serve.md).
    Serve(ServeArgs),
    /// Load-test a running `serve`: concurrent clients ask questions; prints latency
    /// percentiles, throughput, refusals, and checks the history holds each answer once.
    BenchServe(BenchServeArgs),
    /// Show where the app reads and writes: config file, data dir, log file, model dir, and
    /// whether each exists.
    Paths,
    /// Print a shell completion script, e.g. `nano-analyst completions bash >
    /// ~/.local/share/bash-completion/completions/nano-analyst`.
    Completions {
        #[arg(value_enum)]
        shell: CompletionShell,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A database to serve, by the name requests use: --db chinook=sample_dbs/chinook.db
    /// (repeatable; adds to [serve.databases] in the config).
    #[arg(long = "db", value_name = "NAME=PATH")]
    pub databases: Vec<String>,
    /// The address to listen on (default 127.0.0.1). Any other than loopback needs --token.
    #[arg(long)]
    pub host: Option<String>,
    /// The port (default 8765; 0 takes a free one). The bound address is printed at start.
    #[arg(long)]
    pub port: Option<u16>,
    /// Every request must carry `Authorization: Bearer TOKEN` (at least 16 characters).
    /// Prefer the environment variable: a flag shows in the process list.
    #[arg(long, env = "NANO_ANALYST_SERVE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Requests waiting for the model beyond the running one; more get 503.
    #[arg(long)]
    pub queue: Option<usize>,
    /// The longest a request may take, its wait included.
    #[arg(long, value_name = "SECONDS")]
    pub request_timeout: Option<u64>,
}

#[derive(Debug, Args)]
pub struct BenchServeArgs {
    /// The server, e.g. http://127.0.0.1:8765.
    #[arg(long)]
    pub url: String,
    /// The served database's name.
    #[arg(long, default_value = "chinook")]
    pub database: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 40)]
    pub clients: usize,
    /// Questions each client asks, one after another.
    #[arg(long, default_value_t = 3)]
    pub questions: usize,
    /// A question to ask (repeatable; default: a few Chinook questions).
    #[arg(long = "question", value_name = "TEXT")]
    pub question_texts: Vec<String>,
    /// Also write the natural-language answers.
    #[arg(long)]
    pub with_answer: bool,
    /// Times a client retries after a 503, waiting the Retry-After each time.
    #[arg(long, default_value_t = 1000)]
    pub max_retries: u32,
    /// The server's token (also NANO_ANALYST_SERVE_TOKEN).
    #[arg(long, env = "NANO_ANALYST_SERVE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Subcommand)]
pub enum RewritesCommand {
    /// Run every rewrite, alone and as the configured chain, over the gold queries of a
    /// Spider-format data set and list each gold result a rule changes.
    Audit(AuditArgs),
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Spider-format questions (a JSON list, or JSON Lines of {question, query}).
    #[arg(long, value_name = "FILE")]
    pub dataset: PathBuf,
    /// Directory with <db_id>/<db_id>.sqlite.
    #[arg(long, value_name = "DIR", conflicts_with = "db")]
    pub db_dir: Option<PathBuf>,
    /// One database for every question.
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// Audit only the first N gold queries.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Print one JSON object per gold query instead of the summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// A SQLite or DuckDB file, a CSV/Parquet file or folder of them, or a postgres:// URL
    /// (opened read-only).
    pub database: PathBuf,
    /// The question, in plain English.
    pub question: String,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// How many ranked tables to show.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
}

#[derive(Debug, Args)]
pub struct RetrievalBenchArgs {
    /// Spider-format questions (dev.json).
    #[arg(long, value_name = "FILE", required_unless_present = "synthetic")]
    pub dataset: Option<PathBuf>,
    /// Spider-format schemas (tables.json).
    #[arg(long, value_name = "FILE", required_unless_present = "synthetic")]
    pub tables: Option<PathBuf>,
    /// Directory with <db_id>/<db_id>.sqlite.
    #[arg(long, value_name = "DIR", required_unless_present = "synthetic")]
    pub db_dir: Option<PathBuf>,
    /// Put every schema into one index and ask each question against all of them.
    #[arg(long)]
    pub catalog: bool,
    /// Which questions: all, even or odd positions (tune on one half, report the other).
    #[arg(long, default_value = "all")]
    pub split: String,
    /// BM25 (and values) only, even when an embedding model is available.
    #[arg(long)]
    pub no_vectors: bool,
    /// No value matching.
    #[arg(long)]
    pub no_values: bool,
    /// Tables among the first N whose join paths are added (0: no FK closure).
    #[arg(long)]
    pub closure_top: Option<usize>,
    /// Fusion weights: bm25-table,bm25-column,vector-table,vector-column,value.
    #[arg(long, value_name = "W,W,W,W,W")]
    pub weights: Option<String>,
    /// Reciprocal-rank constant.
    #[arg(long)]
    pub rrf_k: Option<f32>,
    /// Instead of a dataset: time index build and retrieval on a generated schema of N tables.
    #[arg(long, value_name = "N")]
    pub synthetic: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CorrectArgs {
    /// The database the question is about: a SQLite or DuckDB file, a CSV/Parquet file or
    /// folder of them, or a postgres:// URL (opened read-only).
    pub database: PathBuf,
    /// The question (default: the question of --run).
    #[arg(long)]
    pub question: Option<String>,
    /// SQL that answers it; it must run read-only on DATABASE.
    #[arg(long)]
    pub sql: String,
    /// The recorded run this corrects (see `history`).
    #[arg(long, value_name = "ID")]
    pub run: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RatingArg {
    Up,
    Down,
}

#[derive(Debug, Args)]
pub struct RateArgs {
    /// The database the run was asked on (a file, folder or postgres:// URL).
    pub database: PathBuf,
    /// The run's id (printed by `ask`, listed by `history`).
    #[arg(long, value_name = "ID")]
    pub run: i64,
    pub rating: RatingArg,
    /// Why (kept with the rating).
    #[arg(long)]
    pub note: Option<String>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The database whose runs to show (a file, folder or postgres:// URL).
    pub database: PathBuf,
    /// Print JSON Lines, one run per line.
    #[arg(long)]
    pub json: bool,
    /// How many runs to show.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

#[derive(Debug, Subcommand)]
pub enum CorrectionsCommand {
    /// List verified pairs (of one database, or all).
    List {
        /// Only the pairs of this database.
        database: Option<PathBuf>,
        /// Print JSON Lines.
        #[arg(long)]
        json: bool,
    },
    /// Show one pair in full.
    Show { id: i64 },
    /// Forget a pair (and the synthetic paraphrases made from it).
    Rm { id: i64 },
    /// Change a pair's question or SQL (new SQL must run read-only on its database).
    Edit {
        id: i64,
        #[arg(long)]
        question: Option<String>,
        #[arg(long)]
        sql: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// Write verified pairs as JSON Lines in the exact prompt format used at inference.
    Export(TrainExportArgs),
    /// Ask the model for paraphrases of verified questions; keep those whose SQL returns
    /// the same rows as the verified SQL, labelled synthetic.
    Augment(TrainAugmentArgs),
    /// Fine-tune the model on verified pairs, evaluate it against the base, and switch to it
    /// only when it is better (held-out EX up, general EX down by at most 1 point).
    Run(TrainRunArgs),
    /// Use a fine-tuned version (default: the newest).
    Accept(TrainAcceptArgs),
    /// Go back to the previously used model (a version, or the base model).
    Rollback,
    /// Show the model in use, every fine-tuned version with its numbers, and whether
    /// retraining is due.
    Status(TrainStatusArgs),
}

#[derive(Debug, Args)]
pub struct TrainRunArgs {
    /// Train on the verified pairs of this database (default: every database in the history
    /// store).
    pub database: Option<PathBuf>,
    /// Spider-format pairs instead of the history store: JSON Lines or a JSON list of
    /// {question, query} (with --db).
    #[arg(long, value_name = "FILE", requires = "db")]
    pub pairs: Option<PathBuf>,
    /// The database the --pairs file is about.
    #[arg(long, value_name = "DB", requires = "pairs")]
    pub db: Option<PathBuf>,
    /// Passes over the training half.
    #[arg(long, default_value_t = 1)]
    pub epochs: u32,
    /// How many of the last transformer blocks train (with the final norm).
    #[arg(long, default_value_t = 2)]
    pub layers: u32,
    /// AdamW learning rate (1e-4 measured much worse than 2e-5 on the Chinook pairs).
    #[arg(long, default_value_t = 2e-5)]
    pub lr: f32,
    /// Largest training window in tokens (a multiple of 256). Examples are packed whole into
    /// windows of the smallest size that holds the longest one; longer ones are left out.
    #[arg(long, default_value_t = 1024)]
    pub window: u32,
    /// Train on every position, prompt text included, instead of labelling prompt
    /// positions with the base model's own predictions (measured worse; kept to compare).
    #[arg(long)]
    pub learn_prompt: bool,
    /// Questions of the fixed general set evaluated (the first N of its 100).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub general: usize,
    /// Skip the general set when held-out EX did not rise (the gate rejects either way;
    /// saves two evaluations, but the report then has no general figures).
    #[arg(long)]
    pub quick_gate: bool,
    /// Do not ask before starting.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Delete the F32 copy of the base model afterwards (about 4 bytes per weight) instead
    /// of keeping it for the next run.
    #[arg(long)]
    pub no_cache: bool,
    /// Progress as a bar (default) or as JSON lines on stdout (for the terminal app).
    #[arg(long, value_enum, default_value = "bar")]
    pub progress: ProgressMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    Bar,
    Json,
}

#[derive(Debug, Args)]
pub struct TrainAcceptArgs {
    /// The version id (`train status` lists them); default: the newest.
    pub id: Option<String>,
    /// Use a version even though it did not pass the gate.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct TrainStatusArgs {
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TrainExportArgs {
    /// chat (messages), alpaca (instruction/input/output) or spider (db_id/question/query).
    #[arg(long, default_value = "chat")]
    pub format: crate::core::feedback::training::ExportFormat,
    /// The JSON Lines file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Only the pairs of this database.
    #[arg(long, value_name = "DB")]
    pub db: Option<PathBuf>,
    /// Leave out synthetic paraphrases.
    #[arg(long)]
    pub no_synthetic: bool,
}

#[derive(Debug, Args)]
pub struct TrainAugmentArgs {
    /// The SQLite database whose verified pairs to paraphrase.
    pub database: PathBuf,
    /// Paraphrases asked for per verified question.
    #[arg(long, default_value_t = 3)]
    pub k: usize,
    /// At most this many verified questions.
    #[arg(long)]
    pub limit: Option<usize>,
}

#[derive(Debug, Args)]
pub struct AskArgs {
    /// A SQLite or DuckDB file, a CSV/Parquet file or folder of them, or a postgres:// URL
    /// (opened read-only).
    pub database: PathBuf,
    /// The question, in plain English.
    pub question: String,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Skip the natural-language answer.
    #[arg(long)]
    pub no_answer: bool,
    /// Continue the last conversation on this database: its last one or two questions and
    /// their SQL go to the model as earlier turns ("same for 2024", "only the top 3").
    #[arg(long)]
    pub follow_up: bool,
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
    /// Run the gold queries on this database instead of --db: the SQLite original of a
    /// copy in PostgreSQL, DuckDB or CSV files. Spider's gold SQL is SQLite's (double-quoted
    /// strings, loose GROUP BY), so on another backend it is scored against the original.
    #[arg(long, value_name = "FILE", requires = "db")]
    pub gold_db: Option<PathBuf>,
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
    /// Evaluate each database's schema prefix before its first question, as the app does
    /// while you type, so every question's latency is the warm one (the warm-ups' time is
    /// reported apart).
    #[arg(long)]
    pub warm: bool,
}

#[derive(Debug, Args)]
pub struct EvalParaphrasesArgs {
    /// Spider-format questions whose gold queries are written with several questions
    /// (the training split: ../shared/data/spider-train/train.json).
    #[arg(long, value_name = "FILE")]
    pub dataset: PathBuf,
    /// Databases laid out as Spider does: DIR/<db_id>/<db_id>.sqlite.
    #[arg(long, value_name = "DIR")]
    pub db_dir: PathBuf,
    /// Which databases: a third for tuning settings, or the rest, held back for reporting.
    #[arg(long, value_enum, default_value = "report")]
    pub part: ParaphrasePart,
    /// About N groups, spread over the databases and hardness levels.
    #[arg(long, value_name = "N")]
    pub sample: Option<usize>,
    /// One JSON line per group: both wordings, the SQL before and after, the examples shown.
    /// Its memory of corrections is kept beside it (FILE with .memory.sqlite3).
    #[arg(long, value_name = "FILE", default_value = "paraphrases.jsonl")]
    pub out: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    pub overwrite: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ParaphrasePart {
    Tune,
    Report,
    All,
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
