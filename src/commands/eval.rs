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

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::EvalArgs;
use crate::core::eval::harness::{DbSource, EvalJob, EvalRun};
use crate::core::eval::report::{chart, percent};
use crate::core::eval::{EvalItem, Prediction, Summary, load_dataset, stratified_sample};
use crate::error::AppError;
use crate::session::{ModelEngine, RuntimeOptions};

pub fn run(args: &EvalArgs, options: &mut RuntimeOptions) -> Result<Summary, AppError> {
    let outcome = evaluate(args, options)?;
    let summary = outcome.summary;
    crate::outln!("{}", chart(&summary));
    crate::outln!(
        "EX {} | valid {} | repair success {} ({}/{}) | latency p50 {} ms, p95 {} ms",
        percent(summary.overall.accuracy()),
        percent(summary.overall.valid_rate()),
        percent(summary.repair_success_rate()),
        summary.repaired_valid,
        summary.needed_repair,
        summary.latency_p50_ms,
        summary.latency_p95_ms
    );
    crate::outln!(
        "predictions: {} | report: {}",
        args.out.display(),
        outcome.report_path.display()
    );
    if !outcome.finished {
        crate::outln!(
            "stopped after {} of {} questions; run the same command with --resume to continue",
            outcome.answered,
            outcome.selected
        );
    }
    Ok(summary)
}

/// Runs the evaluation and writes its predictions and report; prints nothing on stdout
/// (the progress bar, unless `quiet`, goes to stderr).
pub fn evaluate(args: &EvalArgs, options: &mut RuntimeOptions) -> Result<EvalRun, AppError> {
    let (source, default_db_id) = database_source(args.db.as_deref(), args.db_dir.as_deref())?;
    let items = select_items(load_dataset(&args.dataset, &default_db_id)?, args)?;
    options.pipeline.answer = false;
    let job = EvalJob {
        items,
        source,
        gold_db: args.gold_db.clone(),
        out: args.out.clone(),
        report: args
            .report
            .clone()
            .unwrap_or_else(|| args.out.with_extension("md")),
        resume: args.resume,
        overwrite: args.overwrite,
        pipeline: options.pipeline.clone(),
        render: options.render,
        config_name: args.config_name.clone(),
        dataset: args.dataset.display().to_string(),
        command: reproduce_command(),
        config: config_in_use(options),
        warm: args.warm,
    };
    let mut prepared = job.prepare()?;
    if prepared.remaining() > 0 {
        let mut engine = ModelEngine::load(options)?;
        let stop = Arc::new(AtomicBool::new(false));
        register_interrupt(&stop, &engine)?;
        let bar = progress_bar(job.items.len(), prepared.predictions().len(), args.quiet);
        update_bar(&bar, prepared.predictions(), "");
        prepared.answer(&mut engine, &stop, &mut |predictions, db_id| {
            bar.inc(1);
            update_bar(&bar, predictions, db_id);
        })?;
        bar.finish_and_clear();
    }
    Ok(prepared.finish()?)
}

/// The config file the run's settings came from, as the report names it.
fn config_in_use(options: &RuntimeOptions) -> String {
    match options.paths.config_file.as_deref() {
        Some(path) if path.is_file() => format!("`{}`", path.display()),
        _ => "built-in defaults (no config file)".into(),
    }
}

/// Where a data set's databases are (`--db FILE` or `--db-dir DIR`), and the database id
/// its questions get when the data set names none (the file's stem).
pub(crate) fn database_source(
    db: Option<&Path>,
    db_dir: Option<&Path>,
) -> Result<(DbSource, String), AppError> {
    let source = match (db, db_dir) {
        (Some(file), _) => DbSource::File(file.to_path_buf()),
        (None, Some(dir)) => DbSource::Dir(dir.to_path_buf()),
        (None, None) => {
            return Err(AppError::Usage(
                "say where the databases are: --db-dir DIR (Spider layout) or --db FILE".into(),
            ));
        }
    };
    let default_db_id = source.default_db_id();
    Ok((source, default_db_id))
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
        return Err(AppError::Usage(format!(
            "no questions selected from '{}' (check --db-id and --limit)",
            args.dataset.display()
        )));
    }
    Ok(items)
}

/// Ctrl-C cancels the running generation and stops the loop; a second one exits at once.
fn register_interrupt(stop: &Arc<AtomicBool>, engine: &ModelEngine) -> Result<(), AppError> {
    use signal_hook::consts::SIGINT;
    let failed = |e| AppError::io("cannot handle Ctrl-C")(e);
    signal_hook::flag::register_conditional_shutdown(SIGINT, 130, Arc::clone(stop))
        .map_err(failed)?;
    signal_hook::flag::register(SIGINT, Arc::clone(stop)).map_err(failed)?;
    signal_hook::flag::register(SIGINT, engine.cancel_flag()).map_err(failed)?;
    Ok(())
}

pub(crate) fn progress_bar(total: usize, done: usize, quiet: bool) -> ProgressBar {
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

pub(crate) fn update_bar(bar: &ProgressBar, predictions: &[Prediction], db_id: &str) {
    let summary = Summary::of(predictions);
    bar.set_message(format!(
        "EX {} valid {} | {db_id}",
        percent(summary.overall.accuracy()),
        percent(summary.overall.valid_rate())
    ));
}

/// The command line as typed, with any `user:password@` taken out of URLs: the report is
/// a file people share.
fn reproduce_command() -> String {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .map(|a| without_credentials(&a))
        .collect();
    format!("nano-analyst {}", args.join(" "))
}

fn without_credentials(arg: &str) -> String {
    match arg.split_once('=') {
        Some((flag, value)) if flag.starts_with("--") && value.contains("://") => {
            format!("{flag}={}", crate::remote::engine::shown_url(value))
        }
        _ if arg.contains("://") => crate::remote::engine::shown_url(arg),
        _ => arg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::without_credentials;

    #[test]
    fn the_report_keeps_no_password_from_a_url() {
        assert_eq!(
            without_credentials("http://me:secret@gpu:8080/v1"),
            "http://gpu:8080/v1"
        );
        assert_eq!(
            without_credentials("--llm-url=https://me:secret@gpu/v1"),
            "--llm-url=https://gpu/v1"
        );
        assert_eq!(without_credentials("--sample"), "--sample");
    }
}
