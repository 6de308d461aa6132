//! `nano-analyst bench DB --pairs FILE`: cold and warm timings per pipeline stage.
//!
//! "Cold" is the first question after the model loads with an empty prompt cache (the
//! schema prefix is evaluated); "restart" is the same after forgetting the in-memory cache
//! but keeping the on-disk one (what a second launch of the app pays); "warm" are the rest.

use std::io::BufRead;
use std::path::Path;
use std::time::Instant;

use serde::Deserialize;

use crate::cli::BenchArgs;
use crate::core::db::compare::gold_is_ordered;
use crate::core::db::compare::results_match;
use crate::core::db::exec::ExecLimits;
use crate::core::eval::percentile;
use crate::core::pipeline::outcome::{RunOutcome, Timings};
use crate::error::AppError;
use crate::session::{Analyst, RuntimeOptions};

#[derive(Debug, Deserialize)]
pub struct QuestionPair {
    pub question: String,
    pub query: String,
}

pub fn load_pairs(path: &Path) -> Result<Vec<QuestionPair>, AppError> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(AppError::io(format!("cannot read '{shown}'")))?;
    let mut pairs = Vec::new();
    for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(AppError::io(format!("cannot read '{shown}'")))?;
        if line.trim().is_empty() {
            continue;
        }
        let pair: QuestionPair = serde_json::from_str(&line)
            .map_err(|e| AppError::Usage(format!("'{shown}' line {}: {e}", number + 1)))?;
        pairs.push(pair);
    }
    Ok(pairs)
}

pub fn run(args: &BenchArgs, options: &mut RuntimeOptions) -> Result<(), AppError> {
    let pairs = load_pairs(&args.pairs)?;
    let pairs: Vec<&QuestionPair> = pairs.iter().take(args.limit.max(1)).collect();
    options.pipeline.answer = args.with_answer;
    // Timings must not depend on what this data directory has learned, nor add to it.
    options.feedback.record_history = false;
    options.feedback.examples_per_question = 0;
    // A private prompt cache so the first question really is cold.
    let scratch = tempfile::tempdir().map_err(AppError::io("cannot create a temp dir"))?;
    options.engine.prefix_cache_dir = Some(scratch.path().to_path_buf());

    let load_started = Instant::now();
    let mut analyst = Analyst::open(&args.database, options)?;
    let load_ms = load_started.elapsed().as_millis();
    crate::outln!(
        "model {} | {} threads | context {} | {} questions from {}",
        analyst.model_id(),
        options.engine.threads,
        options.engine.context_tokens,
        pairs.len(),
        args.pairs.display()
    );
    crate::outln!("model + schema load: {load_ms} ms\n");
    crate::outln!(
        "{:<8} {:>6} {:>6} {:>7} {:>8} {:>7} {:>7} {:>8} {:>4}  question",
        "run",
        "prompt",
        "cached",
        "ttft",
        "generate",
        "execute",
        "answer",
        "total",
        "ok"
    );

    let mut warm: Vec<Timings> = Vec::new();
    let mut correct = 0usize;
    for (index, pair) in pairs.iter().enumerate() {
        let label = match index {
            0 => "cold",
            1 => {
                analyst.engine.clear_cache();
                "restart"
            }
            _ => "warm",
        };
        let outcome = analyst.ask(&pair.question, &mut |_| {})?;
        let ok = is_correct(&analyst, &outcome, &pair.query);
        correct += usize::from(ok);
        let t = &outcome.timings;
        crate::outln!(
            "{label:<8} {:>6} {:>6} {:>5}ms {:>6}ms {:>5}ms {:>5}ms {:>6}ms {:>4}  {}",
            t.prompt_tokens,
            t.cached_prompt_tokens,
            t.ttft_ms,
            t.generate_ms,
            t.execute_ms,
            t.answer_ms,
            t.total_ms,
            if ok { "yes" } else { "no" },
            pair.question
        );
        if index >= 2 {
            warm.push(outcome.timings.clone());
        }
    }
    crate::outln!();
    if !warm.is_empty() {
        let total: Vec<u64> = warm.iter().map(|t| t.total_ms).collect();
        let ttft: Vec<u64> = warm.iter().map(|t| t.ttft_ms).collect();
        let generate: Vec<u64> = warm.iter().map(|t| t.generate_ms).collect();
        crate::outln!(
            "warm ({} questions): end-to-end p50 {} ms, p95 {} ms | first SQL token p50 {} ms, p95 {} ms | generate p50 {} ms",
            warm.len(),
            percentile(&total, 50),
            percentile(&total, 95),
            percentile(&ttft, 50),
            percentile(&ttft, 95),
            percentile(&generate, 50)
        );
    }
    crate::outln!(
        "execution accuracy against the pairs' SQL: {correct}/{}",
        pairs.len()
    );
    Ok(())
}

fn is_correct(analyst: &Analyst, outcome: &RunOutcome, gold_sql: &str) -> bool {
    let Some(predicted) = &outcome.result else {
        return false;
    };
    let limits = ExecLimits {
        row_limit: 100_000,
        ..ExecLimits::default()
    };
    let Ok(gold) = analyst.db.execute(gold_sql, limits) else {
        return false;
    };
    if predicted.truncated() {
        let Some(sql) = &outcome.sql else {
            return false;
        };
        let Ok(full) = analyst.db.execute(sql, limits) else {
            return false;
        };
        return results_match(&gold, &full, gold_is_ordered(gold_sql));
    }
    results_match(&gold, predicted, gold_is_ordered(gold_sql))
}
