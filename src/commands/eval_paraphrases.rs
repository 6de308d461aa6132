//! `nano-analyst eval-paraphrases`: the paraphrase benchmark of `core::eval::paraphrase`
//! run with the example memory as the app runs it (sentence vectors and BM25, the
//! `[feedback]` settings), on the whole schema as `eval` uses it.
//!
//! On each database: every selected group's second wording is asked with an empty memory,
//! then every group's first wording is corrected with its gold SQL (as `correct` stores
//! it), then every second wording is asked again. So a question sees its own correction
//! and the other corrections of its database, as a user's memory would hold them.

use std::io::Write;
use std::path::Path;

use crate::cli::{EvalParaphrasesArgs, ParaphrasePart};
use crate::core::db::exec::ReadOnlyDb;
use crate::core::db::open::sidecar;
use crate::core::eval::load_dataset;
use crate::core::eval::paraphrase::{
    ParaphraseGroup, ParaphraseRecord, ParaphraseSummary, Part, paraphrase_groups, select_groups,
};
use crate::core::eval::report::percent;
use crate::core::eval::score::score_prediction;
use crate::core::feedback::memory::ExampleMemory;
use crate::core::feedback::store::{HistoryStore, scope_of};
use crate::core::model::LanguageModel;
use crate::core::pipeline::{PipelineConfig, run_question};
use crate::core::retrieval::provider::{ComposedContext, WholeSchemaContext};
use crate::error::AppError;
use crate::session::{ModelEngine, RuntimeOptions};

pub fn run(args: &EvalParaphrasesArgs, options: &mut RuntimeOptions) -> Result<(), AppError> {
    let items = load_dataset(&args.dataset, "")?;
    let part = match args.part {
        ParaphrasePart::Tune => Part::Tune,
        ParaphrasePart::Report => Part::Report,
        ParaphrasePart::All => Part::All,
    };
    let groups = select_groups(&paraphrase_groups(&items), part, args.sample);
    if groups.is_empty() {
        return Err(AppError::Usage(format!(
            "no gold query of '{}' is written with two different questions",
            args.dataset.display()
        )));
    }
    if args.out.exists() && !args.overwrite {
        return Err(AppError::Usage(format!(
            "'{}' exists; pass --overwrite to replace it",
            args.out.display()
        )));
    }
    let memory_path = args.out.with_extension("memory.sqlite3");
    remove_store(&memory_path)?;
    let mut out = std::fs::File::create(&args.out).map_err(AppError::io(format!(
        "cannot write '{}'",
        args.out.display()
    )))?;
    options.pipeline.answer = false;
    let mut engine = ModelEngine::load(options)?;
    let mut records = Vec::with_capacity(groups.len());
    for database in databases_in_order(&groups) {
        let members: Vec<&ParaphraseGroup> =
            groups.iter().filter(|g| g.db_id == database).collect();
        let path = args
            .db_dir
            .join(&database)
            .join(format!("{database}.sqlite"));
        let done = run_database(&mut engine, &path, &members, &memory_path, options)?;
        for record in &done {
            let line = serde_json::to_string(record).map_err(AppError::json("a record"))?;
            writeln!(out, "{line}")
                .and_then(|()| out.flush())
                .map_err(AppError::io(format!(
                    "cannot write '{}'",
                    args.out.display()
                )))?;
        }
        records.extend(done);
        if !args.quiet {
            let summary = ParaphraseSummary::of(&records);
            crate::errln!(
                "{} of {} groups ({database}): right before {}, after {}",
                records.len(),
                groups.len(),
                summary.right_before,
                summary.right_after
            );
        }
    }
    print_summary(&ParaphraseSummary::of(&records), args);
    Ok(())
}

fn databases_in_order(groups: &[ParaphraseGroup]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for group in groups {
        if !seen.contains(&group.db_id) {
            seen.push(group.db_id.clone());
        }
    }
    seen
}

/// A store left by an earlier run would hold its corrections; the run starts empty.
fn remove_store(path: &Path) -> Result<(), AppError> {
    for suffix in ["", "-wal", "-shm"] {
        let file = sidecar(path, suffix);
        if file.exists() {
            std::fs::remove_file(&file)
                .map_err(AppError::io(format!("cannot remove '{}'", file.display())))?;
        }
    }
    Ok(())
}

/// One database's groups: asked, corrected, asked again.
fn run_database(
    engine: &mut ModelEngine,
    path: &Path,
    groups: &[&ParaphraseGroup],
    memory_path: &Path,
    options: &RuntimeOptions,
) -> Result<Vec<ParaphraseRecord>, AppError> {
    let db = ReadOnlyDb::open(path)?;
    let schema = db.askable_schema()?;
    let scope = scope_of(&db)?;
    let embedder =
        crate::session::retrieval::load_embedder(&options.embed_model, options.engine.threads).ok();
    let memory = ExampleMemory::open(memory_path, scope.clone(), embedder)?;
    let mut context = ComposedContext {
        schema: Box::new(WholeSchemaContext::with_options(&schema, options.render)),
        examples: Some(Box::new(memory)),
        examples_per_question: options.feedback.examples_per_question,
    };
    let mut store = HistoryStore::open(memory_path)?;
    let pipeline = &options.pipeline;
    let mut asked = |question: &str, gold: &str, context: &mut ComposedContext| {
        ask_and_score(engine, &db, context, question, gold, pipeline)
    };
    let mut before = Vec::with_capacity(groups.len());
    for group in groups {
        before.push(asked(&group.asked, &group.gold_sql, &mut context)?);
    }
    for group in groups {
        store.add_correction(&scope, &group.corrected, &group.gold_sql, None)?;
    }
    let mut records = Vec::with_capacity(groups.len());
    for (group, before) in groups.iter().zip(before) {
        let after = asked(&group.asked, &group.gold_sql, &mut context)?;
        records.push(ParaphraseRecord {
            db_id: group.db_id.clone(),
            gold_sql: group.gold_sql.clone(),
            corrected_question: group.corrected.clone(),
            asked_question: group.asked.clone(),
            before_sql: before.sql,
            before_correct: before.correct,
            before_rewrites: before.rewrites,
            after_sql: after.sql,
            after_correct: after.correct,
            after_rewrites: after.rewrites,
            own_example_shown: after.examples.contains(&group.corrected),
            examples: after.examples,
        });
    }
    Ok(records)
}

/// What one question ended with.
struct Asked {
    sql: Option<String>,
    /// The final query gives the gold result.
    correct: bool,
    /// The questions of the examples in its prompt, best first.
    examples: Vec<String>,
    /// The rewrites and checks that fired on its queries.
    rewrites: Vec<String>,
}

fn ask_and_score(
    model: &mut dyn LanguageModel,
    db: &ReadOnlyDb,
    context: &mut ComposedContext,
    question: &str,
    gold_sql: &str,
    pipeline: &PipelineConfig,
) -> Result<Asked, AppError> {
    let outcome = run_question(model, db, context, question, pipeline, &mut |_| {})?;
    let correct = match (&outcome.sql, outcome.succeeded()) {
        (Some(sql), true) => score_prediction(
            (db, db),
            gold_sql,
            sql,
            outcome.result.as_ref(),
            pipeline.limits.timeout,
        )
        .is_correct(),
        _ => false,
    };
    let examples = outcome
        .prompt
        .as_ref()
        .map(|prompt| prompt.examples.iter().map(|e| e.question.clone()).collect())
        .unwrap_or_default();
    Ok(Asked {
        sql: outcome.sql,
        correct,
        examples,
        rewrites: outcome.rewrites,
    })
}

fn print_summary(summary: &ParaphraseSummary, args: &EvalParaphrasesArgs) {
    let share = |count: usize| percent(count as f64 / summary.groups.max(1) as f64);
    crate::outln!(
        "{} groups on {} databases ({:?} part of '{}')",
        summary.groups,
        summary.databases,
        args.part,
        args.dataset.display()
    );
    crate::outln!(
        "second wording right before the corrections: {} ({})",
        summary.right_before,
        share(summary.right_before)
    );
    crate::outln!(
        "right after its first wording was corrected: {} ({}); right to wrong {}, wrong to \
         right {}; its own correction shown for {}",
        summary.right_after,
        share(summary.right_after),
        summary.right_to_wrong,
        summary.wrong_to_right,
        summary.own_example_shown
    );
    crate::outln!("records: {}", args.out.display());
}
