//! The evaluation loop over a loaded model: questions in dataset order (the questions of
//! one database follow each other and reuse its cached schema prefix), one prediction
//! appended and flushed as soon as it is scored, so an interrupted run can be resumed.
//!
//! Front ends (`eval`, `train run`'s gate) call [`EvalJob::prepare`], load a model only
//! when something is left to answer, [`Prepared::answer`] with it, then
//! [`Prepared::finish`] for the summary and the report.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::core::db::exec::ReadOnlyDb;
use crate::core::db::render::RenderOptions;
use crate::core::eval::report::{RunInfo, markdown_report};
use crate::core::eval::score::{Verdict, score_prediction};
use crate::core::eval::{EvalError, EvalItem, Prediction, Summary, read_resume};
use crate::core::model::{LanguageModel, LlmError};
use crate::core::pipeline::prompt::warm_request;
use crate::core::pipeline::{PipelineConfig, PipelineError, run_question};
use crate::core::retrieval::provider::WholeSchemaContext;

/// Where each question's database lives.
#[derive(Debug, Clone)]
pub enum DbSource {
    /// `DIR/<db_id>/<db_id>.sqlite`, as Spider lays them out.
    Dir(PathBuf),
    /// One file for every question.
    File(PathBuf),
}

impl DbSource {
    /// The database id of questions that name none: the one file's stem.
    pub(crate) fn default_db_id(&self) -> String {
        match self {
            DbSource::File(path) => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            DbSource::Dir(_) => String::new(),
        }
    }

    pub fn path_for(&self, db_id: &str) -> PathBuf {
        match self {
            DbSource::Dir(dir) => dir.join(db_id).join(format!("{db_id}.sqlite")),
            DbSource::File(path) => path.clone(),
        }
    }
}

/// One evaluation: which questions, on which databases, written where.
#[derive(Debug, Clone)]
pub(crate) struct EvalJob {
    pub items: Vec<EvalItem>,
    pub source: DbSource,
    /// Where the gold queries run, when not on the question's own database.
    pub gold_db: Option<PathBuf>,
    /// The predictions file (JSON lines).
    pub out: PathBuf,
    /// The Markdown report.
    pub report: PathBuf,
    /// Continue a predictions file instead of starting a new one.
    pub resume: bool,
    /// Replace a predictions file that already has lines.
    pub overwrite: bool,
    pub pipeline: PipelineConfig,
    pub render: RenderOptions,
    /// Named in the report.
    pub config_name: String,
    pub dataset: String,
    pub command: String,
    /// The config file the settings came from, as the report names it.
    pub config: String,
    /// Evaluate each database's schema prefix before its first question, as the app does
    /// while the user types, so every question's latency is a warm one.
    pub warm: bool,
}

/// A job whose earlier predictions are read and whose output file is open.
pub(crate) struct Prepared<'a> {
    job: &'a EvalJob,
    file: File,
    predictions: Vec<Prediction>,
    model_id: Option<String>,
}

/// What an evaluation produced, before anything is printed.
pub struct EvalRun {
    pub summary: Summary,
    /// Every selected question was answered (not stopped).
    pub finished: bool,
    pub answered: usize,
    pub selected: usize,
    pub report_path: PathBuf,
}

impl EvalJob {
    /// Checks that every database is there (before minutes go into loading a model) and
    /// opens the predictions file, reading what a resumed run already answered.
    pub fn prepare(&self) -> Result<Prepared<'_>, EvalError> {
        let mut checked = HashSet::new();
        for item in &self.items {
            let path = self.source.path_for(&item.db_id);
            // A folder of CSV files and a postgres:// URL are databases too.
            let missing = !path.exists() && !path.to_string_lossy().contains("://");
            if checked.insert(item.db_id.as_str()) && missing {
                return Err(EvalError::MissingDatabase {
                    db_id: item.db_id.clone(),
                    path: path.display().to_string(),
                });
            }
        }
        let resume = if self.resume {
            read_resume(&self.out, &self.items)?
        } else {
            if !self.overwrite && std::fs::metadata(&self.out).is_ok_and(|m| m.len() > 0) {
                return Err(EvalError::OutputExists(self.out.display().to_string()));
            }
            Default::default()
        };
        let file = open_output(&self.out, self.resume.then_some(resume.valid_len))?;
        Ok(Prepared {
            job: self,
            file,
            predictions: resume.done,
            model_id: None,
        })
    }
}

impl Prepared<'_> {
    /// The questions not answered yet.
    pub(crate) fn remaining(&self) -> usize {
        self.job.items.len() - self.predictions.len()
    }

    pub fn predictions(&self) -> &[Prediction] {
        &self.predictions
    }

    /// Answers the remaining questions with `model`, appending each prediction; stops
    /// early (without error) when `stop` is set or the model is cancelled.
    /// `on_prediction` sees every prediction so far and the database just used.
    pub fn answer(
        &mut self,
        model: &mut dyn LanguageModel,
        stop: &AtomicBool,
        on_prediction: &mut dyn FnMut(&[Prediction], &str),
    ) -> Result<(), EvalError> {
        self.model_id = Some(model.model_id());
        let done: HashSet<usize> = self.predictions.iter().map(|p| p.index).collect();
        let job = self.job;
        let todo = job.items.iter().filter(|i| !done.contains(&i.index));
        let gold_db = match &job.gold_db {
            Some(path) => Some(ReadOnlyDb::open(path).map_err(|e| EvalError::Database {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?),
            None => None,
        };
        let mut open_db: Option<(String, ReadOnlyDb, WholeSchemaContext)> = None;
        let mut warmup_ms = None;
        for item in todo {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            if open_db.as_ref().is_none_or(|(id, _, _)| *id != item.db_id) {
                let path = job.source.path_for(&item.db_id);
                let failed = |reason: String| EvalError::Database {
                    path: path.display().to_string(),
                    reason,
                };
                let db = ReadOnlyDb::open(&path).map_err(|e| failed(e.to_string()))?;
                let schema = db.askable_schema().map_err(|e| failed(e.to_string()))?;
                let mut context = WholeSchemaContext::with_options(&schema, job.render);
                if job.warm {
                    warmup_ms = Some(warm_up(model, &mut context, &db)?);
                }
                open_db = Some((item.db_id.clone(), db, context));
            }
            let Some((_, db, context)) = open_db.as_mut() else {
                continue;
            };
            let gold_db = gold_db.as_ref().unwrap_or(db);
            let prediction = match predict(model, (db, gold_db), context, item, &job.pipeline) {
                Ok(prediction) => Prediction {
                    warmup_ms: warmup_ms.take(),
                    ..prediction
                },
                Err(PipelineError::Cancelled | PipelineError::Llm(LlmError::Cancelled)) => break,
                Err(PipelineError::Llm(error)) => return Err(EvalError::Model(error.to_string())),
            };
            append(&mut self.file, &job.out, &prediction)?;
            self.predictions.push(prediction);
            on_prediction(&self.predictions, &item.db_id);
        }
        Ok(())
    }

    /// The summary of every prediction, with the report written next to them.
    pub fn finish(mut self) -> Result<EvalRun, EvalError> {
        let job = self.job;
        self.predictions.sort_by_key(|p| p.index);
        let summary = Summary::of(&self.predictions);
        let info = RunInfo {
            config_name: job.config_name.clone(),
            dataset: job.dataset.clone(),
            model: self.model_id.unwrap_or_else(|| "(not loaded)".into()),
            command: job.command.clone(),
            build: env!("NANO_ANALYST_COMMIT").to_string(),
            config: job.config.clone(),
        };
        std::fs::write(&job.report, markdown_report(&summary, &info)).map_err(|e| {
            EvalError::Write {
                path: job.report.display().to_string(),
                reason: e.to_string(),
            }
        })?;
        Ok(EvalRun {
            finished: self.predictions.len() == job.items.len(),
            answered: self.predictions.len(),
            selected: job.items.len(),
            summary,
            report_path: job.report.clone(),
        })
    }
}

/// Evaluates `db`'s schema prefix with the request the app warms it with; its time in ms.
fn warm_up(
    model: &mut dyn LanguageModel,
    context: &mut WholeSchemaContext,
    db: &ReadOnlyDb,
) -> Result<u64, EvalError> {
    let started = Instant::now();
    model
        .complete(&warm_request(context, db.dialect()), &mut |_| {})
        .map_err(|error| EvalError::Model(error.to_string()))?;
    Ok(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX))
}

/// Runs one question on `db` and scores it with the gold query run on `gold_db` (the same
/// database unless the data is a copy). Pipeline failures (no valid SQL) are predictions
/// too.
pub fn predict(
    model: &mut dyn LanguageModel,
    (db, gold_db): (&ReadOnlyDb, &ReadOnlyDb),
    context: &mut WholeSchemaContext,
    item: &EvalItem,
    pipeline: &PipelineConfig,
) -> Result<Prediction, PipelineError> {
    let started = Instant::now();
    let outcome = run_question(model, db, context, &item.question, pipeline, &mut |_| {})?;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let valid = outcome.succeeded();
    let (correct, error) = match (&outcome.sql, valid) {
        (Some(sql), true) => {
            let verdict = score_prediction(
                (db, gold_db),
                &item.gold_sql,
                sql,
                outcome.result.as_ref(),
                pipeline.limits.timeout,
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
        rewrites: outcome.rewrites.clone(),
        warmup_ms: None,
    })
}

fn open_output(path: &Path, resume_at: Option<u64>) -> Result<File, EvalError> {
    let failed = |e: std::io::Error| EvalError::Write {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
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
        None => File::create(path).map_err(failed),
    }
}

fn append(file: &mut File, path: &Path, prediction: &Prediction) -> Result<(), EvalError> {
    let failed = |reason: String| EvalError::Write {
        path: path.display().to_string(),
        reason,
    };
    let mut line = serde_json::to_string(prediction).map_err(|e| failed(e.to_string()))?;
    line.push('\n');
    file.write_all(line.as_bytes())
        .and_then(|()| file.flush())
        .map_err(|e| failed(e.to_string()))
}
