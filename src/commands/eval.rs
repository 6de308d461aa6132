//! `nano-analyst eval`: runs the pipeline over Spider-format questions and scores it the way
//! the field does (execution accuracy, Spider test-suite rules).
//!
//! Invariants:
//! - One model engine serves every database; questions run in dataset order, so the
//!   questions on one database follow each other and reuse its cached schema prefix.
//! - Each prediction is appended and flushed as soon as it is scored. Ctrl-C stops at the
//!   current question and leaves a file that `--resume` continues; a line cut by a crash is
//!   dropped and redone.
//! - The summary is computed from the predictions file alone.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::EvalArgs;
use crate::core::eval::{
    EvalError, EvalItem, Prediction, Summary, load_dataset, read_resume, stratified_sample,
};
use crate::core::eval_report::{RunInfo, chart, markdown_report, percent};
use crate::core::exec::ReadOnlyDb;
use crate::core::llm_api::LanguageModel;
use crate::core::pipeline::{PipelineError, WholeSchemaContext, run_question};
use crate::core::score::{Verdict, score_prediction};
use crate::llm::engine::LlamaEngine;
use crate::runtime::{AppError, RuntimeOptions};

impl From<EvalError> for AppError {
    fn from(error: EvalError) -> Self {
        AppError::Invalid(error.to_string())
    }
}

/// Where each question's database lives.
enum DbSource {
    /// `DIR/<db_id>/<db_id>.sqlite`, as Spider lays them out.
    Dir(PathBuf),
    /// One file for every question.
    File(PathBuf),
}

impl DbSource {
    fn path_for(&self, db_id: &str) -> PathBuf {
        match self {
            DbSource::Dir(dir) => dir.join(db_id).join(format!("{db_id}.sqlite")),
            DbSource::File(path) => path.clone(),
        }
    }
}

/// What an evaluation produced, before anything is printed.
pub struct EvalRun {
    pub summary: Summary,
    /// Every selected question was answered (not stopped by Ctrl-C).
    pub finished: bool,
    pub answered: usize,
    pub selected: usize,
    pub report_path: PathBuf,
}

pub fn run(args: &EvalArgs, options: &mut RuntimeOptions) -> Result<Summary, AppError> {
    let outcome = evaluate(args, options)?;
    let summary = outcome.summary;
    println!("{}", chart(&summary));
    println!(
        "EX {} | valid {} | repair success {} ({}/{}) | latency p50 {} ms, p95 {} ms",
        percent(summary.overall.accuracy()),
        percent(summary.overall.valid_rate()),
        percent(summary.repair_success_rate()),
        summary.repaired_valid,
        summary.needed_repair,
        summary.latency_p50_ms,
        summary.latency_p95_ms
    );
    println!(
        "predictions: {} | report: {}",
        args.out.display(),
        outcome.report_path.display()
    );
    if !outcome.finished {
        println!(
            "stopped after {} of {} questions; run the same command with --resume to continue",
            outcome.answered, outcome.selected
        );
    }
    Ok(summary)
}

/// Runs the evaluation and writes its predictions and report; prints nothing on stdout
/// (the progress bar, unless `quiet`, goes to stderr).
pub fn evaluate(args: &EvalArgs, options: &mut RuntimeOptions) -> Result<EvalRun, AppError> {
    let source = match (&args.db, &args.db_dir) {
        (Some(file), _) => DbSource::File(file.clone()),
        (None, Some(dir)) => DbSource::Dir(dir.clone()),
        (None, None) => {
            return Err(AppError::Invalid(
                "say where the databases are: --db-dir DIR (Spider layout) or --db FILE".into(),
            ));
        }
    };
    let default_db_id = args
        .db
        .as_deref()
        .and_then(Path::file_stem)
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let items = select_items(load_dataset(&args.dataset, &default_db_id)?, args)?;
    // Every database must be there before minutes go into loading the model.
    let mut checked = std::collections::HashSet::new();
    for item in &items {
        if checked.insert(item.db_id.as_str()) {
            let path = source.path_for(&item.db_id);
            if !path.is_file() {
                return Err(AppError::Invalid(format!(
                    "database for '{}' not found: '{}'",
                    item.db_id,
                    path.display()
                )));
            }
        }
    }
    options.pipeline.answer = false;

    let resume = if args.resume {
        read_resume(&args.out, &items)?
    } else {
        if !args.overwrite && std::fs::metadata(&args.out).is_ok_and(|m| m.len() > 0) {
            return Err(AppError::Invalid(format!(
                "'{}' already has predictions; pass --resume to continue it or --overwrite to start over",
                args.out.display()
            )));
        }
        Default::default()
    };
    let mut file = open_output(&args.out, args.resume.then_some(resume.valid_len))?;
    let mut predictions = resume.done;
    let done: std::collections::HashSet<usize> = predictions.iter().map(|p| p.index).collect();
    let todo: Vec<&EvalItem> = items.iter().filter(|i| !done.contains(&i.index)).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let mut model_id = String::from("(not loaded)");
    if !todo.is_empty() {
        let mut engine = LlamaEngine::load(options.engine.clone())?;
        model_id = engine.model_id();
        register_interrupt(&stop, &engine)?;
        let bar = progress_bar(items.len(), predictions.len(), args.quiet);
        update_bar(&bar, &predictions, "");
        let mut open_db: Option<(String, ReadOnlyDb, WholeSchemaContext)> = None;
        for item in todo {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            if open_db.as_ref().is_none_or(|(id, _, _)| *id != item.db_id) {
                let db = ReadOnlyDb::open(&source.path_for(&item.db_id))?;
                let schema = db.introspect()?;
                let context = WholeSchemaContext::with_options(&schema, options.render);
                open_db = Some((item.db_id.clone(), db, context));
            }
            let Some((_, db, context)) = open_db.as_mut() else {
                continue;
            };
            let prediction = match predict(&mut engine, db, context, item, options) {
                Ok(prediction) => prediction,
                Err(PipelineError::Cancelled)
                | Err(PipelineError::Llm(crate::core::llm_api::LlmError::Cancelled)) => break,
                Err(error) => return Err(error.into()),
            };
            append(&mut file, &args.out, &prediction)?;
            predictions.push(prediction);
            bar.inc(1);
            update_bar(&bar, &predictions, &item.db_id);
        }
        bar.finish_and_clear();
    }

    predictions.sort_by_key(|p| p.index);
    let summary = Summary::of(&predictions);
    let info = RunInfo {
        config_name: args.config_name.clone(),
        dataset: args.dataset.display().to_string(),
        model: model_id,
        command: reproduce_command(),
    };
    let report_path = args
        .report
        .clone()
        .unwrap_or_else(|| args.out.with_extension("md"));
    std::fs::write(&report_path, markdown_report(&summary, &info))
        .map_err(|e| AppError::Invalid(format!("cannot write '{}': {e}", report_path.display())))?;

    Ok(EvalRun {
        finished: predictions.len() == items.len(),
        answered: predictions.len(),
        selected: items.len(),
        summary,
        report_path,
    })
}

fn select_items(items: Vec<EvalItem>, args: &EvalArgs) -> Result<Vec<EvalItem>, AppError> {
    let mut items: Vec<EvalItem> = if args.db_id.is_empty() {
        items
    } else {
        items
            .into_iter()
            .filter(|i| args.db_id.contains(&i.db_id))
            .collect()
    };
    if let Some(size) = args.sample {
        items = stratified_sample(&items, size);
    }
    if let Some(limit) = args.limit {
        items.truncate(limit);
    }
    if items.is_empty() {
        return Err(AppError::Invalid(format!(
            "no questions selected from '{}' (check --db-id and --limit)",
            args.dataset.display()
        )));
    }
    Ok(items)
}

/// Runs one question and scores it. Pipeline failures (no valid SQL) are predictions too.
fn predict(
    engine: &mut LlamaEngine,
    db: &ReadOnlyDb,
    context: &mut WholeSchemaContext,
    item: &EvalItem,
    options: &RuntimeOptions,
) -> Result<Prediction, PipelineError> {
    let started = Instant::now();
    let outcome = run_question(
        engine,
        db,
        context,
        &item.question,
        &options.pipeline,
        &mut |_| {},
    )?;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let valid = outcome.succeeded();
    let (correct, error) = match (&outcome.sql, valid) {
        (Some(sql), true) => {
            let verdict = score_prediction(
                db,
                &item.gold_sql,
                sql,
                outcome.result.as_ref(),
                options.pipeline.limits.timeout,
            );
            let error = match &verdict {
                Verdict::PredictionFailed(e) => Some(e.clone()),
                Verdict::GoldFailed(e) => Some(format!("the gold query failed: {e}")),
                Verdict::Correct | Verdict::Wrong => None,
            };
            (verdict.is_correct(), error)
        }
        _ => (false, outcome.error.clone()),
    };
    Ok(Prediction {
        index: item.index,
        db_id: item.db_id.clone(),
        question: item.question.clone(),
        gold_sql: item.gold_sql.clone(),
        predicted_sql: outcome.sql.clone(),
        correct,
        valid,
        attempts: u32::try_from(outcome.attempts.len()).unwrap_or(u32::MAX),
        error,
        latency_ms,
        prompt_tokens: outcome.timings.prompt_tokens,
        tables_sent: outcome.tables_sent.clone(),
        hardness: item.hardness,
    })
}

/// Ctrl-C cancels the running generation and stops the loop; a second one exits at once.
fn register_interrupt(stop: &Arc<AtomicBool>, engine: &LlamaEngine) -> Result<(), AppError> {
    use signal_hook::consts::SIGINT;
    let failed = |e: std::io::Error| AppError::Invalid(format!("cannot handle Ctrl-C: {e}"));
    signal_hook::flag::register_conditional_shutdown(SIGINT, 130, Arc::clone(stop))
        .map_err(failed)?;
    signal_hook::flag::register(SIGINT, Arc::clone(stop)).map_err(failed)?;
    signal_hook::flag::register(SIGINT, engine.cancel_flag()).map_err(failed)?;
    Ok(())
}

fn open_output(path: &Path, resume_at: Option<u64>) -> Result<std::fs::File, AppError> {
    let failed =
        |e: std::io::Error| AppError::Invalid(format!("cannot write '{}': {e}", path.display()));
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    match resume_at {
        Some(length) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(failed)?;
            // Drops a line cut off by an interruption.
            file.set_len(length).map_err(failed)?;
            Ok(file)
        }
        None => std::fs::File::create(path).map_err(failed),
    }
}

fn append(file: &mut std::fs::File, path: &Path, prediction: &Prediction) -> Result<(), AppError> {
    let failed = |e: String| AppError::Invalid(format!("cannot write '{}': {e}", path.display()));
    let mut line = serde_json::to_string(prediction).map_err(|e| failed(e.to_string()))?;
    line.push('\n');
    file.write_all(line.as_bytes())
        .and_then(|()| file.flush())
        .map_err(|e| failed(e.to_string()))
}

fn progress_bar(total: usize, done: usize, quiet: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(total as u64),
        if quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        },
    );
    if let Ok(style) =
        ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} {msg} | ETA {eta}")
    {
        bar.set_style(style.progress_chars("█▉▊▋▌▍▎▏ "));
    }
    bar.set_position(done as u64);
    bar.reset_eta();
    bar
}

fn update_bar(bar: &ProgressBar, predictions: &[Prediction], db_id: &str) {
    let summary = Summary::of(predictions);
    bar.set_message(format!(
        "EX {} valid {} | {db_id}",
        percent(summary.overall.accuracy()),
        percent(summary.overall.valid_rate())
    ));
}

fn reproduce_command() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("nano-analyst {}", args.join(" "))
}
