//! `train export` (the retraining set), `train augment` (checked synthetic paraphrases),
//! `train run` (see `train_run`) and the model versions it makes: `train accept`,
//! `train rollback`, `train status`.

use std::process::ExitCode;

use crate::cli::{
    TrainAcceptArgs, TrainAugmentArgs, TrainCommand, TrainExportArgs, TrainStatusArgs,
};
use crate::core::db::compare::{gold_is_ordered, results_match};
use crate::core::feedback::store::{
    HistoryStore, PairSource, normalize_question, scope_of, verify_sql,
};
use crate::core::feedback::training::{training_records, write_export};
use crate::core::finetune::registry::Registry;
use crate::core::model::{ChatMessage, CompletionRequest, LanguageModel, Role, Sampling};
use crate::core::pipeline::{PipelineConfig, run_question};
use crate::core::retrieval::provider::WholeSchemaContext;
use crate::error::AppError;
use crate::session::{Analyst, RuntimeOptions};

pub fn run(command: &TrainCommand, options: &mut RuntimeOptions) -> Result<ExitCode, AppError> {
    match command {
        TrainCommand::Export(args) => export(args, options),
        TrainCommand::Augment(args) => augment(args, options),
        TrainCommand::Run(args) => crate::commands::train_run::run(args, options),
        TrainCommand::Accept(args) => accept(args, options),
        TrainCommand::Rollback => rollback(options),
        TrainCommand::Status(args) => status(args, options),
    }
}

fn accept(args: &TrainAcceptArgs, options: &RuntimeOptions) -> Result<ExitCode, AppError> {
    let dir = options.paths.versions_dir();
    let mut registry = Registry::load(&dir)?;
    let version = registry
        .accept(&dir, args.id.as_deref(), args.force)?
        .clone();
    registry.save(&dir)?;
    crate::outln!(
        "now using version {} ({})",
        version.id,
        dir.join(&version.file).display()
    );
    if let Some(report) = &version.eval {
        crate::outln!(
            "  held-out EX {}\n  general EX  {}",
            report.held_out,
            report.general
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn rollback(options: &RuntimeOptions) -> Result<ExitCode, AppError> {
    let dir = options.paths.versions_dir();
    let mut registry = Registry::load(&dir)?;
    let now = registry.rollback()?;
    registry.save(&dir)?;
    match now.and_then(|id| registry.version(&id).cloned()) {
        Some(version) => crate::outln!(
            "now using version {} ({})",
            version.id,
            dir.join(&version.file).display()
        ),
        None => crate::outln!("now using the base model"),
    }
    Ok(ExitCode::SUCCESS)
}

fn status(args: &TrainStatusArgs, options: &RuntimeOptions) -> Result<ExitCode, AppError> {
    let dir = options.paths.versions_dir();
    let registry = Registry::load(&dir)?;
    let retraining = HistoryStore::open(&options.paths.history_db())?
        .retraining_status(options.feedback.retrain_threshold)?;
    let model = options.engine.model_path.display().to_string();
    let cache = cached_f32_bytes(&options.paths.finetune_cache_dir());
    if args.json {
        let value = serde_json::json!({
            "model": model,
            "active": registry.active,
            "versions": registry.versions,
            "retraining": retraining,
            "cache_bytes": cache,
        });
        crate::outln!("{value}");
        return Ok(ExitCode::SUCCESS);
    }
    match &registry.active {
        Some(id) => crate::outln!("model in use: version {id} ({model})"),
        None => crate::outln!("model in use: {model} (no fine-tuned version active)"),
    }
    if registry.versions.is_empty() {
        crate::outln!("no fine-tuned versions yet");
    } else {
        let mut table = crate::core::db::exec::QueryResult {
            columns: [
                "id",
                "status",
                "pairs",
                "held-out EX",
                "general EX",
                "loss",
                "train time",
            ]
            .map(String::from)
            .to_vec(),
            rows: Vec::new(),
            total_rows: None,
            cut: None,
        };
        for version in &registry.versions {
            let (held, general) = match &version.eval {
                Some(report) => (
                    format!(
                        "{:.1} -> {:.1}",
                        report.held_out.base.percent(),
                        report.held_out.candidate.percent()
                    ),
                    format!(
                        "{:.1} -> {:.1}",
                        report.general.base.percent(),
                        report.general.candidate.percent()
                    ),
                ),
                None => ("-".into(), "-".into()),
            };
            let loss = match (version.loss_curve.first(), version.loss_curve.last()) {
                (Some(first), Some(last)) => format!("{first:.3} -> {last:.3}"),
                _ => "-".into(),
            };
            let marker = if registry.active.as_deref() == Some(version.id.as_str()) {
                "*"
            } else {
                ""
            };
            table.rows.push(
                [
                    format!("{}{marker}", version.id),
                    version.status.as_str().into(),
                    format!("{}+{}", version.pairs.train, version.pairs.held_out),
                    held,
                    general,
                    loss,
                    format!("{:.0} s", version.timings.train_s),
                ]
                .map(crate::core::db::exec::Cell::Text)
                .to_vec(),
            );
        }
        let rows = table.rows.len();
        crate::out!("{}", crate::commands::text_table::render(&table, rows));
    }
    crate::outln!(
        "retraining: {} of {} new corrections and thumbs-downs since the last training{}",
        retraining.new_feedback,
        retraining.threshold,
        if retraining.due { " (due)" } else { "" }
    );
    if cache > 0 {
        crate::outln!(
            "cache: {} of F32 base models in '{}' (`train run --no-cache` removes it)",
            crate::llm::checkpoint::human_bytes(cache),
            options.paths.finetune_cache_dir().display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn cached_f32_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".f32.gguf"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn export(args: &TrainExportArgs, options: &RuntimeOptions) -> Result<ExitCode, AppError> {
    let store = HistoryStore::open(&options.paths.history_db())?;
    let scope = match &args.db {
        Some(path) => Some(scope_of(&crate::core::db::exec::ReadOnlyDb::open(path)?)?),
        None => None,
    };
    let pairs = store.pairs(scope.as_ref())?;
    let (records, skipped) = training_records(pairs, !args.no_synthetic);
    write_export(&records, args.format, &args.out)?;
    let count = |source: PairSource| records.iter().filter(|r| r.source == source).count();
    crate::outln!(
        "wrote {} examples to '{}' ({} human corrections, {} thumbs-up, {} synthetic)",
        records.len(),
        args.out.display(),
        count(PairSource::Correction),
        count(PairSource::ThumbsUp),
        count(PairSource::Synthetic),
    );
    if skipped > 0 {
        crate::errln!(
            "note: {skipped} pairs were left out: their database is gone or its structure changed, \
             so the schema their prompt would hold is unknown"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn augment(args: &TrainAugmentArgs, options: &mut RuntimeOptions) -> Result<ExitCode, AppError> {
    if args.k == 0 {
        return Err(AppError::Usage("--k must be at least 1".into()));
    }
    // The check must be independent: no example memory (it would show the model the very
    // pair being paraphrased) and no recorded runs.
    options.feedback.record_history = false;
    options.feedback.examples_per_question = 0;
    let mut store = HistoryStore::open(&options.paths.history_db())?;
    let mut analyst = Analyst::open(&args.database, options)?;
    let sources: Vec<_> = store
        .pairs(Some(&analyst.scope))?
        .into_iter()
        .filter(|p| matches!(p.source, PairSource::Correction | PairSource::ThumbsUp))
        .take(args.limit.unwrap_or(usize::MAX))
        .collect();
    if sources.is_empty() {
        crate::outln!("no verified pairs for this database yet: correct or rate some runs first");
        return Ok(ExitCode::SUCCESS);
    }
    let config = PipelineConfig {
        answer: false,
        ..options.pipeline.clone()
    };
    let mut context = WholeSchemaContext::new(&analyst.schema);
    let (mut asked, mut kept) = (0, 0);
    for pair in &sources {
        let gold = match verify_sql(&analyst.db, &pair.sql, config.limits) {
            Ok(result) => result,
            Err(error) => {
                crate::errln!("#{}: skipped, its SQL no longer runs: {error}", pair.id);
                continue;
            }
        };
        let ordered = gold_is_ordered(&pair.sql);
        let paraphrases = paraphrase(&mut analyst.engine, &pair.question, args.k)?;
        let mut kept_here = 0;
        for question in &paraphrases {
            asked += 1;
            let outcome = run_question(
                &mut analyst.engine,
                &analyst.db,
                &mut context,
                question,
                &config,
                &mut |_| {},
            )?;
            let same = outcome
                .result
                .as_ref()
                .is_some_and(|result| results_match(&gold, result, ordered));
            if same && store.add_synthetic(pair.id, question)?.is_some() {
                kept_here += 1;
            }
        }
        kept += kept_here;
        crate::outln!(
            "#{} \"{}\": kept {kept_here} of {} paraphrases",
            pair.id,
            pair.question,
            paraphrases.len()
        );
    }
    crate::outln!(
        "kept {kept} of {asked} paraphrases (each returned the same rows as its verified SQL), \
         labelled synthetic"
    );
    Ok(ExitCode::SUCCESS)
}

const PARAPHRASE_INSTRUCTIONS: &str = "\
You rewrite questions about a database in other words. Keep the meaning exactly: the same \
names, values, numbers, filters, sort order and requested columns. Write one question per \
line, numbered, with nothing else.";

/// Asks the model for `k` rewordings of `question`, distinct from it and from each other.
pub fn paraphrase(
    model: &mut dyn LanguageModel,
    question: &str,
    k: usize,
) -> Result<Vec<String>, AppError> {
    let request = CompletionRequest {
        messages: vec![
            ChatMessage::new(Role::System, PARAPHRASE_INSTRUCTIONS),
            ChatMessage::new(
                Role::User,
                format!(
                    "Write {k} different ways to ask this question:\n{}",
                    question.trim()
                ),
            ),
        ],
        assistant_prefix: "1. ".into(),
        max_tokens: 48 * k + 16,
        stop: Vec::new(),
        sampling: Sampling::Greedy,
        grammar: None,
    };
    let completion = model
        .complete(&request, &mut |_| {})
        .map_err(crate::core::pipeline::PipelineError::from)?;
    Ok(parse_paraphrases(
        &format!("1. {}", completion.text),
        question,
        k,
    ))
}

/// The numbered lines of a paraphrase reply, cleaned, deduplicated, without the original.
pub fn parse_paraphrases(reply: &str, original: &str, k: usize) -> Vec<String> {
    let mut seen = vec![normalize_question(original)];
    let mut out = Vec::new();
    for line in reply.lines() {
        let text = line
            .trim()
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start_matches(['.', ')', '-', '*'])
            .trim()
            .trim_matches('"')
            .trim();
        let key = normalize_question(text);
        if text.len() < 8 || seen.contains(&key) {
            continue;
        }
        seen.push(key);
        out.push(text.to_string());
        if out.len() == k {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::parse_paraphrases;

    #[test]
    fn paraphrase_lines_are_cleaned_and_deduplicated() {
        let reply = "1. How many albums exist?\n2) \"What is the album count?\"\n3. How many albums are there?\n4. How many albums exist?\n5. Count the albums.";
        assert_eq!(
            parse_paraphrases(reply, "How many albums are there?", 3),
            vec![
                "How many albums exist?",
                "What is the album count?",
                "Count the albums."
            ]
        );
    }
}
