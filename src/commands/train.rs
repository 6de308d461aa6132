//! `train export` (the retraining set) and `train augment` (checked synthetic paraphrases).

use std::process::ExitCode;

use crate::cli::{TrainAugmentArgs, TrainCommand, TrainExportArgs};
use crate::core::llm_api::{ChatMessage, CompletionRequest, LanguageModel, Role, Sampling};
use crate::core::pipeline::{PipelineConfig, WholeSchemaContext, run_question};
use crate::core::score::{gold_is_ordered, results_match};
use crate::core::store::{HistoryStore, PairSource, normalize_question, scope_of, verify_sql};
use crate::core::training::{training_records, write_export};
use crate::runtime::{Analyst, AppError, RuntimeOptions};

pub fn run(command: &TrainCommand, options: &mut RuntimeOptions) -> Result<ExitCode, AppError> {
    match command {
        TrainCommand::Export(args) => export(args, options),
        TrainCommand::Augment(args) => augment(args, options),
    }
}

fn export(args: &TrainExportArgs, options: &RuntimeOptions) -> Result<ExitCode, AppError> {
    let store = HistoryStore::open(&options.paths.history_db())?;
    let scope = match &args.db {
        Some(path) => Some(scope_of(&crate::core::exec::ReadOnlyDb::open(path)?)?),
        None => None,
    };
    let pairs = store.pairs(scope.as_ref())?;
    let (records, skipped) = training_records(pairs, !args.no_synthetic);
    write_export(&records, args.format, &args.out).map_err(|e| AppError::Invalid(e.to_string()))?;
    let count = |source: PairSource| records.iter().filter(|r| r.source == source).count();
    println!(
        "wrote {} examples to '{}' ({} human corrections, {} thumbs-up, {} synthetic)",
        records.len(),
        args.out.display(),
        count(PairSource::Correction),
        count(PairSource::ThumbsUp),
        count(PairSource::Synthetic),
    );
    if skipped > 0 {
        eprintln!(
            "note: {skipped} pairs were left out: their database is gone or its structure changed, \
             so the schema their prompt would hold is unknown"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn augment(args: &TrainAugmentArgs, options: &mut RuntimeOptions) -> Result<ExitCode, AppError> {
    if args.k == 0 {
        return Err(AppError::Invalid("--k must be at least 1".into()));
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
        println!("no verified pairs for this database yet: correct or rate some runs first");
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
                eprintln!("#{}: skipped, its SQL no longer runs: {error}", pair.id);
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
        println!(
            "#{} \"{}\": kept {kept_here} of {} paraphrases",
            pair.id,
            pair.question,
            paraphrases.len()
        );
    }
    println!(
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
