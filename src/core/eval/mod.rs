//! Execution-accuracy evaluation: the harness that runs a model over Spider-format
//! questions, scoring, hardness and reports.
//!
//! This module holds the data: Spider-format questions in, one prediction record per
//! question out, and
//! the summary (execution accuracy, valid rate, repair success, latency, per database and
//! per hardness level) computed from those records alone, so a resumed or finished
//! predictions file always yields the same report.

pub mod hardness;
pub mod harness;
pub mod paraphrase;
pub mod report;
pub mod score;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::core::eval::hardness::{Hardness, hardness_of_spider_sql, hardness_of_sql};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read '{path}': {reason}")]
    Read { path: String, reason: String },
    #[error("'{path}' is not Spider-format data: {reason}")]
    Format { path: String, reason: String },
    #[error("cannot write '{path}': {reason}")]
    Write { path: String, reason: String },
    #[error(
        "'{path}' line {line} does not belong to this run ({reason}); use another --out, or delete the file to start over"
    )]
    ResumeMismatch {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("database for '{db_id}' not found: '{path}'")]
    MissingDatabase { db_id: String, path: String },
    #[error(
        "'{0}' already has predictions; pass --resume to continue it or --overwrite to start over"
    )]
    OutputExists(String),
    #[error("cannot open database '{path}': {reason}")]
    Database { path: String, reason: String },
    #[error("{0}")]
    Model(String),
}

/// One question of the data set, with its position in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalItem {
    pub index: usize,
    pub db_id: String,
    pub question: String,
    pub gold_sql: String,
    pub hardness: Hardness,
}

#[derive(Debug, Deserialize)]
struct RawItem {
    #[serde(default)]
    db_id: Option<String>,
    question: String,
    query: String,
    #[serde(default)]
    sql: Option<Value>,
}

/// Reads Spider's `dev.json` (a JSON list) or JSON Lines of `{db_id?, question, query}`.
/// Items without a `db_id` get `default_db_id` (the name of a `--db` file).
pub fn load_dataset(path: &Path, default_db_id: &str) -> Result<Vec<EvalItem>, EvalError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::Read {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    let format_error = |reason: String| EvalError::Format {
        path: shown.clone(),
        reason,
    };
    let raw: Vec<RawItem> = if text.trim_start().starts_with('[') {
        serde_json::from_str(&text).map_err(|e| format_error(e.to_string()))?
    } else {
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(number, line)| {
                serde_json::from_str(line)
                    .map_err(|e| format_error(format!("line {}: {e}", number + 1)))
            })
            .collect::<Result<_, _>>()?
    };
    Ok(raw
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let hardness = item
                .sql
                .as_ref()
                .and_then(hardness_of_spider_sql)
                .or_else(|| hardness_of_sql(&item.query))
                .unwrap_or(Hardness::Extra);
            EvalItem {
                index,
                db_id: item.db_id.unwrap_or_else(|| default_db_id.to_string()),
                question: item.question,
                gold_sql: item.query,
                hardness,
            }
        })
        .collect())
}

/// A fixed sample of `size` items, stratified by database first and by hardness within
/// each database. Every database gets one item when `size` allows it (so a 500-question
/// sample of the 139-database training split spans all of them), the rest is shared in
/// proportion to each database's size, and each database's share is split over its
/// hardness levels the same way, taking evenly spaced items. Deterministic; dataset order
/// is kept.
pub(crate) fn stratified_sample(items: &[EvalItem], size: usize) -> Vec<EvalItem> {
    if size >= items.len() {
        return items.to_vec();
    }
    let mut databases: BTreeMap<&str, Vec<&EvalItem>> = BTreeMap::new();
    for item in items {
        databases.entry(item.db_id.as_str()).or_default().push(item);
    }
    let groups: Vec<&Vec<&EvalItem>> = databases.values().collect();
    let sizes: Vec<usize> = groups.iter().map(|members| members.len()).collect();
    let quotas = if size >= groups.len() {
        let rest: Vec<usize> = sizes.iter().map(|n| n - 1).collect();
        apportion(&rest, size - groups.len())
            .into_iter()
            .map(|quota| quota + 1)
            .collect()
    } else {
        apportion(&sizes, size)
    };
    let mut chosen: Vec<EvalItem> = Vec::with_capacity(size);
    for (members, quota) in groups.into_iter().zip(quotas) {
        let mut levels: BTreeMap<Hardness, Vec<&EvalItem>> = BTreeMap::new();
        for item in members {
            levels.entry(item.hardness).or_default().push(item);
        }
        let level_sizes: Vec<usize> = levels.values().map(Vec::len).collect();
        for (level, level_quota) in levels.values().zip(apportion(&level_sizes, quota)) {
            for k in 0..level_quota {
                // The middle of each of `level_quota` equal slices.
                let position = (2 * k + 1) * level.len() / (2 * level_quota);
                chosen.push(level[position].clone());
            }
        }
    }
    chosen.sort_by_key(|item| item.index);
    chosen
}

/// Splits `size` over groups of the given sizes in proportion (largest remainders first,
/// ties to the earlier group). Never gives a group more than it holds when `size` is at
/// most their total.
fn apportion(sizes: &[usize], size: usize) -> Vec<usize> {
    let total: usize = sizes.iter().sum();
    if total == 0 {
        return vec![0; sizes.len()];
    }
    let mut quotas: Vec<usize> = sizes.iter().map(|n| n * size / total).collect();
    let remainders: Vec<usize> = sizes.iter().map(|n| n * size % total).collect();
    let mut left = size.saturating_sub(quotas.iter().sum());
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by(|&a, &b| remainders[b].cmp(&remainders[a]).then(a.cmp(&b)));
    for position in order {
        if left == 0 {
            break;
        }
        if quotas[position] < sizes[position] {
            quotas[position] += 1;
            left -= 1;
        }
    }
    quotas
}

/// One line of the predictions file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub index: usize,
    pub db_id: String,
    pub question: String,
    pub gold_sql: String,
    pub predicted_sql: Option<String>,
    /// Execution match with the gold query (Spider's test-suite rules).
    pub correct: bool,
    /// The final query ran without error.
    pub valid: bool,
    /// Generations made (1 + repairs).
    pub attempts: u32,
    /// Why the prediction failed or was scored wrong by error; `None` otherwise.
    pub error: Option<String>,
    pub latency_ms: u64,
    pub prompt_tokens: usize,
    pub tables_sent: Vec<String>,
    pub hardness: Hardness,
    /// The rewrites and checks that fired on the run's queries (`core::rewrite`).
    #[serde(default)]
    pub rewrites: Vec<String>,
    /// With `eval --warm`, on a database's first question: the time its schema prefix took
    /// before the question was asked (not in `latency_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_ms: Option<u64>,
}

impl Prediction {
    /// The first attempt failed, so the repair loop ran (or could not).
    pub(crate) fn needed_repair(&self) -> bool {
        self.attempts > 1 || !self.valid
    }
}

/// Counts for one slice of the predictions.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tally {
    pub questions: usize,
    pub correct: usize,
    pub valid: usize,
}

impl Tally {
    fn add(&mut self, prediction: &Prediction) {
        self.questions += 1;
        self.correct += usize::from(prediction.correct);
        self.valid += usize::from(prediction.valid);
    }

    pub fn accuracy(&self) -> f64 {
        ratio(self.correct, self.questions)
    }

    pub(crate) fn valid_rate(&self) -> f64 {
        ratio(self.valid, self.questions)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub overall: Tally,
    pub by_database: BTreeMap<String, Tally>,
    pub by_hardness: BTreeMap<Hardness, Tally>,
    /// Questions whose first query failed.
    pub needed_repair: usize,
    /// ... and whose final query ran.
    pub repaired_valid: usize,
    /// ... and whose final query was correct.
    pub repaired_correct: usize,
    pub latency_p50_ms: u64,
    pub latency_p95_ms: u64,
    /// p95 of the questions that are not their database's first (the first one also
    /// evaluates the schema prefix unless the run warmed it).
    pub latency_p95_later_ms: u64,
    /// Schema prefixes evaluated before a database's first question (`eval --warm`), and
    /// their time in all.
    pub warmups: usize,
    pub warmup_total_ms: u64,
    pub mean_prompt_tokens: f64,
}

impl Summary {
    pub fn of(predictions: &[Prediction]) -> Self {
        let mut summary = Summary::default();
        for prediction in predictions {
            summary.overall.add(prediction);
            summary
                .by_database
                .entry(prediction.db_id.clone())
                .or_default()
                .add(prediction);
            summary
                .by_hardness
                .entry(prediction.hardness)
                .or_default()
                .add(prediction);
            if prediction.needed_repair() {
                summary.needed_repair += 1;
                summary.repaired_valid += usize::from(prediction.valid);
                summary.repaired_correct += usize::from(prediction.correct);
            }
        }
        let latencies: Vec<u64> = predictions.iter().map(|p| p.latency_ms).collect();
        summary.latency_p50_ms = percentile(&latencies, 50);
        summary.latency_p95_ms = percentile(&latencies, 95);
        let mut first_on: BTreeMap<&str, usize> = BTreeMap::new();
        for prediction in predictions {
            let first = first_on
                .entry(&prediction.db_id)
                .or_insert(prediction.index);
            *first = (*first).min(prediction.index);
        }
        let later: Vec<u64> = predictions
            .iter()
            .filter(|p| first_on.get(p.db_id.as_str()) != Some(&p.index))
            .map(|p| p.latency_ms)
            .collect();
        summary.latency_p95_later_ms = percentile(&later, 95);
        let warmups: Vec<u64> = predictions.iter().filter_map(|p| p.warmup_ms).collect();
        summary.warmups = warmups.len();
        summary.warmup_total_ms = warmups.iter().sum();
        let tokens: usize = predictions.iter().map(|p| p.prompt_tokens).sum();
        summary.mean_prompt_tokens = tokens as f64 / predictions.len().max(1) as f64;
        summary
    }

    pub(crate) fn repair_success_rate(&self) -> f64 {
        ratio(self.repaired_valid, self.needed_repair)
    }
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Nearest-rank percentile (zero for no values); every figure we print uses this one.
pub(crate) fn percentile<T: Copy + PartialOrd + Default>(values: &[T], percent: usize) -> T {
    if values.is_empty() {
        return T::default();
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let rank = (percent * sorted.len())
        .div_ceil(100)
        .clamp(1, sorted.len());
    sorted[rank - 1]
}

/// What an earlier, interrupted run left: its complete records, and the byte length of the
/// file up to the last complete line (a line cut by Ctrl-C or a crash is dropped).
#[derive(Debug, Default)]
pub(crate) struct ResumeState {
    pub done: Vec<Prediction>,
    pub valid_len: u64,
}

/// Reads a predictions file for `--resume`, checking each record against the run's items.
pub(crate) fn read_resume(path: &Path, items: &[EvalItem]) -> Result<ResumeState, EvalError> {
    let shown = path.display().to_string();
    let text = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(ResumeState::default());
        }
        Err(error) => {
            return Err(EvalError::Read {
                path: shown,
                reason: error.to_string(),
            });
        }
    };
    let by_index: BTreeMap<usize, &EvalItem> = items.iter().map(|i| (i.index, i)).collect();
    let mut state = ResumeState::default();
    let mut offset = 0usize;
    for (number, line) in text.split_inclusive(|b| *b == b'\n').enumerate() {
        let complete = line.ends_with(b"\n");
        let parsed = std::str::from_utf8(line)
            .ok()
            .and_then(|l| serde_json::from_str::<Prediction>(l.trim()).ok());
        let Some(prediction) = parsed.filter(|_| complete) else {
            let is_last = offset + line.len() == text.len();
            if is_last {
                break; // cut off mid-write: dropped and redone
            }
            return Err(EvalError::ResumeMismatch {
                path: shown,
                line: number + 1,
                reason: "not a prediction record".into(),
            });
        };
        let matches = by_index.get(&prediction.index).is_some_and(|item| {
            item.question == prediction.question && item.db_id == prediction.db_id
        });
        if !matches {
            return Err(EvalError::ResumeMismatch {
                path: shown,
                line: number + 1,
                reason: format!("question {} is not in the selected data", prediction.index),
            });
        }
        offset += line.len();
        state.done.push(prediction);
    }
    state.valid_len = offset as u64;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(index: usize, db: &str, hardness: Hardness) -> EvalItem {
        EvalItem {
            index,
            db_id: db.into(),
            question: format!("q{index}"),
            gold_sql: "SELECT 1".into(),
            hardness,
        }
    }

    fn prediction(index: usize, correct: bool, valid: bool, attempts: u32, ms: u64) -> Prediction {
        Prediction {
            warmup_ms: None,
            index,
            db_id: if index.is_multiple_of(2) { "a" } else { "b" }.into(),
            question: format!("q{index}"),
            gold_sql: "SELECT 1".into(),
            predicted_sql: Some("SELECT 1".into()),
            correct,
            valid,
            attempts,
            error: None,
            latency_ms: ms,
            prompt_tokens: 100,
            tables_sent: vec![],
            hardness: Hardness::Easy,
            rewrites: Vec::new(),
        }
    }

    #[test]
    fn summary_counts_accuracy_repairs_and_latency() {
        let predictions = vec![
            prediction(0, true, true, 1, 100),
            prediction(1, false, true, 1, 200),
            prediction(2, true, true, 2, 300),
            prediction(3, false, false, 4, 400),
        ];
        let summary = Summary::of(&predictions);
        assert_eq!(summary.overall.correct, 2);
        assert_eq!(summary.overall.valid, 3);
        assert_eq!(summary.needed_repair, 2);
        assert_eq!(summary.repaired_valid, 1);
        assert_eq!(summary.repaired_correct, 1);
        assert_eq!(summary.latency_p50_ms, 200);
        assert_eq!(summary.latency_p95_ms, 400);
        assert_eq!(summary.by_database["a"].correct, 2);
        assert_eq!(summary.by_database["b"].correct, 0);
        // 0 and 1 are the first questions on "a" and "b": only 2 and 3 are later ones.
        assert_eq!(summary.latency_p95_later_ms, 400);
        assert_eq!(summary.warmups, 0);
    }

    #[test]
    fn later_questions_and_warm_ups_are_counted_apart() {
        let mut predictions = vec![
            prediction(0, true, true, 1, 9_000),
            prediction(1, true, true, 1, 8_000),
            prediction(2, true, true, 1, 300),
            prediction(4, true, true, 1, 200),
        ];
        predictions[0].warmup_ms = Some(5_000);
        predictions[1].warmup_ms = Some(4_000);
        let summary = Summary::of(&predictions);
        assert_eq!(summary.latency_p95_ms, 9_000);
        assert_eq!(summary.latency_p95_later_ms, 300);
        assert_eq!((summary.warmups, summary.warmup_total_ms), (2, 9_000));
    }

    #[test]
    fn stratified_sample_is_proportional_and_ordered() {
        let mut items = Vec::new();
        for index in 0..60 {
            items.push(item(index, "big", Hardness::Easy));
        }
        for index in 60..80 {
            items.push(item(index, "small", Hardness::Hard));
        }
        let sample = stratified_sample(&items, 8);
        assert_eq!(sample.len(), 8);
        assert_eq!(sample.iter().filter(|i| i.db_id == "big").count(), 6);
        assert!(sample.windows(2).all(|w| w[0].index < w[1].index));
        assert_eq!(stratified_sample(&items, 8), sample, "deterministic");
    }

    #[test]
    fn stratified_sample_spans_every_database_when_it_can() {
        let mut items = Vec::new();
        for index in 0..90 {
            let level = if index % 3 == 0 {
                Hardness::Hard
            } else {
                Hardness::Easy
            };
            items.push(item(index, "big", level));
        }
        for (offset, db) in ["s1", "s2", "s3", "s4"].iter().enumerate() {
            for k in 0..3 {
                items.push(item(90 + offset * 3 + k, db, Hardness::Medium));
            }
        }
        let sample = stratified_sample(&items, 10);
        assert_eq!(sample.len(), 10);
        for db in ["s1", "s2", "s3", "s4"] {
            assert_eq!(sample.iter().filter(|i| i.db_id == db).count(), 1, "{db}");
        }
        let big: Vec<_> = sample.iter().filter(|i| i.db_id == "big").collect();
        assert_eq!(big.len(), 6);
        assert_eq!(
            big.iter().filter(|i| i.hardness == Hardness::Hard).count(),
            2
        );
    }

    #[test]
    fn apportion_is_exact_and_capped() {
        assert_eq!(apportion(&[3, 3, 4], 5), vec![2, 1, 2]);
        assert_eq!(apportion(&[1, 0, 9], 10), vec![1, 0, 9]);
        assert_eq!(apportion(&[], 0), Vec::<usize>::new());
    }

    #[test]
    fn resume_keeps_complete_lines_and_drops_a_cut_one() {
        let items: Vec<EvalItem> = (0..3).map(|i| item(i, "a", Hardness::Easy)).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pred.jsonl");
        let mut first = prediction(0, true, true, 1, 10);
        first.db_id = "a".into();
        let line = serde_json::to_string(&first).unwrap();
        std::fs::write(&path, format!("{line}\n{{\"index\": 1, \"db_")).unwrap();
        let state = read_resume(&path, &items).unwrap();
        assert_eq!(state.done, vec![first.clone()]);
        assert_eq!(state.valid_len, line.len() as u64 + 1);

        let mut stranger = first;
        stranger.question = "another question".into();
        let text = format!("{}\n", serde_json::to_string(&stranger).unwrap());
        std::fs::write(&path, text).unwrap();
        let error = read_resume(&path, &items).unwrap_err().to_string();
        assert!(error.contains("line 1"), "{error}");
    }
}
