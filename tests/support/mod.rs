//! Shared fixtures: the real default model, loaded once per test binary, and a lock so
//! model-bound tests take turns on the CPU instead of thrashing it.

#![allow(dead_code)]

pub mod duck;
pub mod postgres;
pub mod tiny_model;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

use llama_cpp_2::model::LlamaModel;
use nano_analyst::core::db::compare::{cell_key, gold_is_ordered, results_match};
use nano_analyst::core::db::exec::{ExecLimits, QueryResult, ReadOnlyDb};
use nano_analyst::llm::embedder::default_embed_model;
use nano_analyst::llm::engine::{EngineConfig, LlamaEngine, load_model};
use nano_analyst::paths::AppPaths;

pub fn chinook_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_dbs/chinook.db")
}

pub fn model_path() -> PathBuf {
    if let Some(path) = std::env::var_os("NANO_ANALYST_MODEL") {
        return PathBuf::from(path);
    }
    let path = AppPaths::resolve(None, None).default_model();
    assert!(
        path.is_file(),
        "the default model is missing at {}: run scripts/test.sh (it fetches it) or set NANO_ANALYST_MODEL",
        path.display()
    );
    path
}

/// The built binary with its own data directory, the default model and no config file
/// (the defaults), as the CLI tests run it.
pub fn app_command(data_dir: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(binary());
    command
        .env("NANO_ANALYST_DATA_DIR", data_dir)
        .env("NANO_ANALYST_MODEL", model_path())
        .env("NANO_ANALYST_CONFIG", data_dir.join("no-config.toml"));
    command
}

pub fn shared_model() -> &'static LlamaModel {
    static MODEL: OnceLock<&'static LlamaModel> = OnceLock::new();
    MODEL.get_or_init(|| load_model(&model_path(), 0).expect("the default model loads"))
}

/// Serialises tests that run the model; poisoning is ignored so one failure does not
/// fail every later test.
pub fn model_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn engine(prefix_cache_dir: Option<PathBuf>) -> LlamaEngine {
    let mut config = EngineConfig::new(model_path());
    config.prefix_cache_dir = prefix_cache_dir;
    LlamaEngine::with_model(shared_model(), config).expect("a context for the default model")
}

pub fn run_sql(db: &ReadOnlyDb, sql: &str) -> QueryResult {
    db.execute(
        sql,
        ExecLimits {
            row_limit: 100_000,
            ..ExecLimits::default()
        },
    )
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Whether `predicted` answers like `gold`: the same rows, allowing extra columns (a
/// person reading the result sees the right answer even with an additional column).
pub fn answers_like(gold: &QueryResult, predicted: &QueryResult, gold_sql: &str) -> bool {
    let ordered = gold_is_ordered(gold_sql);
    if results_match(gold, predicted, ordered) {
        return true;
    }
    if predicted.rows.len() != gold.rows.len() || predicted.columns.len() <= gold.columns.len() {
        return false;
    }
    let mut chosen = Vec::new();
    pick(
        predicted.columns.len(),
        gold.columns.len(),
        0,
        &mut chosen,
        &mut |columns| {
            let projected = QueryResult {
                columns: columns
                    .iter()
                    .map(|&c| predicted.columns[c].clone())
                    .collect(),
                rows: predicted
                    .rows
                    .iter()
                    .map(|r| columns.iter().map(|&c| r[c].clone()).collect())
                    .collect(),
                total_rows: predicted.total_rows,
                cut: predicted.cut,
            };
            results_match(gold, &projected, ordered)
        },
    )
}

fn pick(
    width: usize,
    wanted: usize,
    start: usize,
    chosen: &mut Vec<usize>,
    check: &mut dyn FnMut(&[usize]) -> bool,
) -> bool {
    if chosen.len() == wanted {
        return check(chosen);
    }
    for column in start..width {
        chosen.push(column);
        if pick(width, wanted, column + 1, chosen, check) {
            return true;
        }
        chosen.pop();
    }
    false
}

pub fn describe(result: &QueryResult) -> String {
    let rows: Vec<String> = result
        .rows
        .iter()
        .take(5)
        .map(|r| r.iter().map(cell_key).collect::<Vec<_>>().join(", "))
        .collect();
    format!(
        "{:?} {} rows: {}",
        result.columns,
        result.rows.len(),
        rows.join(" | ")
    )
}

pub fn sha256_of(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(std::fs::read(path).expect("readable file")))
}

/// The built binary, for tests that drive the CLI. `NANO_ANALYST_TEST_BIN` overrides it
/// (worktrees sharing one target directory overwrite each other's `target/debug` binary).
pub fn binary() -> PathBuf {
    std::env::var_os("NANO_ANALYST_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_nano-analyst")))
}

/// The sentence-embedding model the app uses for retrieval and the example memory.
pub fn embed_model_path() -> PathBuf {
    if let Some(path) = std::env::var_os("NANO_ANALYST_EMBED_MODEL") {
        return PathBuf::from(path);
    }
    let path = default_embed_model(&AppPaths::resolve(None, None).data_dir);
    assert!(
        path.is_file(),
        "the embedding model is missing at {}: run scripts/fetch-embedder.sh (scripts/test.sh does) or set NANO_ANALYST_EMBED_MODEL",
        path.display()
    );
    path
}

/// The pipeline settings of the embedded default config (what a user without a config
/// file gets).
pub fn default_pipeline() -> nano_analyst::core::pipeline::PipelineConfig {
    nano_analyst::config::Settings::defaults()
        .expect("the embedded config parses")
        .pipeline_config()
}
