//! `train run`: the front end of the fine-tuning workflow in `session::finetune`. It turns
//! the flags into a `FinetuneRequest`, shows the plan and asks before the long part, and
//! reports progress as a bar or as JSON lines (`train_progress`).

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use crate::cli::{ProgressMode, TrainRunArgs};
use crate::commands::train_progress::{ProgressEvent, Reporter};
use crate::core::finetune::registry::ModelVersion;
use crate::error::AppError;
use crate::llm::checkpoint::human_bytes;
use crate::llm::train::WINDOW_GRANULE;
use crate::session::RuntimeOptions;
use crate::session::finetune::{FinetuneProgress, FinetuneRequest, PairSource, Plan};

fn invalid(text: impl Into<String>) -> AppError {
    AppError::Training(text.into())
}

pub fn run(args: &TrainRunArgs, options: &mut RuntimeOptions) -> Result<ExitCode, AppError> {
    let mut reporter = Reporter::new(args.progress);
    match run_inner(args, options, &mut reporter) {
        Ok(code) => Ok(code),
        Err(error) => {
            reporter.finish_bar();
            reporter.emit(&ProgressEvent::Error {
                message: error.to_string(),
            });
            Err(error)
        }
    }
}

fn run_inner(
    args: &TrainRunArgs,
    options: &mut RuntimeOptions,
    reporter: &mut Reporter,
) -> Result<ExitCode, AppError> {
    validate_args(args, options)?;
    let plan = Plan::prepare(request(args), options, reporter)?;
    print_plan(args, &plan, reporter);
    confirm(args)?;
    let trained = plan.execute(options, reporter)?;
    reporter.finish_bar();
    reporter.emit(&ProgressEvent::done(
        &trained.version.id,
        &trained.decision,
        trained.held_out,
        trained.general,
    ));
    if reporter.mode() == ProgressMode::Bar {
        print_result(&trained.version, &trained.path);
    }
    Ok(ExitCode::SUCCESS)
}

fn validate_args(args: &TrainRunArgs, options: &RuntimeOptions) -> Result<(), AppError> {
    if args.epochs == 0 {
        return Err(invalid("--epochs must be at least 1"));
    }
    if args.window < WINDOW_GRANULE || !args.window.is_multiple_of(WINDOW_GRANULE) {
        return Err(invalid(format!(
            "--window {} must be a multiple of {WINDOW_GRANULE} tokens",
            args.window
        )));
    }
    if !(args.lr > 0.0 && args.lr < 1.0) {
        return Err(invalid(format!("--lr {} must be between 0 and 1", args.lr)));
    }
    if options.engine.lora.is_some() {
        return Err(invalid(
            "train run fine-tunes the model itself; leave out --lora",
        ));
    }
    Ok(())
}

fn request(args: &TrainRunArgs) -> FinetuneRequest {
    let pairs = match (&args.pairs, &args.db) {
        (Some(pairs), Some(db)) => PairSource::File {
            pairs: pairs.clone(),
            db: db.clone(),
        },
        _ => PairSource::Store {
            database: args.database.clone(),
        },
    };
    FinetuneRequest {
        pairs,
        epochs: args.epochs,
        layers: args.layers,
        learning_rate: args.lr,
        max_window: args.window,
        learn_prompt: args.learn_prompt,
        general: args.general,
        quick_gate: args.quick_gate,
        no_cache: args.no_cache,
    }
}

fn print_plan(args: &TrainRunArgs, plan: &Plan, reporter: &mut Reporter) {
    let (split, prepared) = (&plan.split, &plan.prepared);
    let mut text = format!(
        "fine-tuning '{}'\n  pairs: {} to train on, {} held out to judge by\n  {} examples \
         packed in {} windows of {} tokens (longest example {}), {} epochs, {} steps, last {} \
         layers + final norm, lr {}\n  \
         disk: an F32 copy of the base ({}, kept in the cache unless --no-cache) and a second \
         one while saving",
        plan.base_path.display(),
        split.train.len(),
        split.held_out.len(),
        prepared.examples,
        prepared.windows.len(),
        prepared.window,
        prepared.longest,
        args.epochs,
        plan.steps(),
        args.layers,
        args.lr,
        human_bytes(plan.f32_bytes),
    );
    if prepared.too_long > 0 {
        text.push_str(&format!(
            "\n  {} examples are longer than --window {} and are left out",
            prepared.too_long, args.window
        ));
    }
    reporter.note(&text);
}

fn confirm(args: &TrainRunArgs) -> Result<(), AppError> {
    if args.yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() || args.progress == ProgressMode::Json {
        return Err(invalid(
            "training takes a long time and several GB of disk: pass --yes to start without asking",
        ));
    }
    eprint!("Start training? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| invalid(format!("cannot read the answer: {e}")))?;
    if answer.trim().eq_ignore_ascii_case("y") || answer.trim().eq_ignore_ascii_case("yes") {
        Ok(())
    } else {
        Err(invalid("training cancelled"))
    }
}

fn print_result(version: &ModelVersion, path: &Path) {
    let Some(report) = &version.eval else { return };
    let curve = &version.loss_curve;
    let first = curve.first().copied().unwrap_or(0.0);
    let last = curve.last().copied().unwrap_or(0.0);
    crate::outln!(
        "version {}: {}\n  held-out EX {}\n  general EX  {}\n  {}",
        version.id,
        if report.decision.passed {
            "accepted, now in use"
        } else {
            "rejected, the base model stays in use"
        },
        report.held_out,
        report.general,
        report.decision.reason
    );
    crate::outln!(
        "  loss {first:.3} -> {last:.3} over {} steps (epoch means {})",
        curve.len(),
        version
            .epoch_losses
            .iter()
            .map(|l| format!("{l:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let t = &version.timings;
    crate::outln!(
        "  time: train {:.0} s ({:.1} tokens/s), dequantize {:.0} s, prompt predictions {:.0} s, \
         save {:.0} s, quantize {:.0} s, eval {:.0} s, total {:.0} s; peak memory {}",
        t.train_s,
        t.tokens_per_s,
        t.dequantize_s,
        t.predict_s,
        t.save_s,
        t.quantize_s,
        t.eval_s,
        t.total_s,
        version
            .peak_rss_bytes
            .map(human_bytes)
            .unwrap_or_else(|| "unknown".into())
    );
    crate::outln!("  file: {}", path.display());
    if !report.decision.passed {
        crate::outln!(
            "  use it anyway: nano-analyst train accept {} --force",
            version.id
        );
    } else {
        crate::outln!("  go back: nano-analyst train rollback");
    }
}
