//! `correct`, `rate`, `history` and `corrections list|show|rm|edit`: the feedback the
//! history store keeps. None of these loads the model.

use std::path::Path;
use std::process::ExitCode;

use serde::Serialize;

use crate::cli::{CorrectArgs, CorrectionsCommand, HistoryArgs, RateArgs, RatingArg};
use crate::core::db::exec::ReadOnlyDb;
use crate::core::feedback::history::{DbScope, HistoryStatus, Rating, RetrainingStatus, utc_time};
use crate::core::feedback::store::{
    HistoryStore, PairSource, StoreError, VerifiedPair, scope_of, verify_sql, whole_schema_text,
};
use crate::error::AppError;
use crate::session::RuntimeOptions;

fn open_store(options: &RuntimeOptions) -> Result<HistoryStore, AppError> {
    Ok(HistoryStore::open(&options.paths.history_db())?)
}

fn open_db(database: &Path) -> Result<(ReadOnlyDb, DbScope), AppError> {
    let db = ReadOnlyDb::open(database)?;
    let scope = scope_of(&db)?;
    Ok((db, scope))
}

/// Checks that run `run` was asked on the database at `scope.path`.
fn check_run_scope(store: &HistoryStore, run: i64, scope: &DbScope) -> Result<(), AppError> {
    let asked_on = store.run_scope(run)?;
    if asked_on.path != scope.path {
        return Err(AppError::Usage(format!(
            "run {run} was asked on '{}', not on '{}'",
            asked_on.path, scope.path
        )));
    }
    Ok(())
}

/// The line `ask`, `correct` and `rate` print when retraining is due.
pub fn retraining_note(status: &RetrainingStatus) -> Option<String> {
    status.due.then(|| {
        format!(
            "retraining is due: {} new corrections and thumbs-downs since the last training \
             (threshold {}); fine-tune on them with `nano-analyst train run DB` (Ctrl-T in the app)",
            status.new_feedback, status.threshold
        )
    })
}

fn print_retraining_note(store: &HistoryStore, options: &RuntimeOptions) {
    if let Ok(status) = store.retraining_status(options.feedback.retrain_threshold)
        && let Some(note) = retraining_note(&status)
    {
        crate::errln!("note: {note}");
    }
}

pub fn correct(args: &CorrectArgs, options: &RuntimeOptions) -> Result<ExitCode, AppError> {
    let (db, scope) = open_db(&args.database)?;
    let mut store = open_store(options)?;
    let question = match (args.run, &args.question) {
        (Some(run), None) => {
            check_run_scope(&store, run, &scope)?;
            store
                .outcome(run)?
                .map(|o| o.question)
                .ok_or(StoreError::UnknownRun(run))?
        }
        (None, Some(question)) if !question.trim().is_empty() => question.clone(),
        (Some(_), Some(_)) => {
            return Err(AppError::Usage(
                "give --question or --run, not both (a run already has its question)".into(),
            ));
        }
        _ => {
            return Err(AppError::Usage(
                "say which question the SQL answers: --question TEXT or --run ID".into(),
            ));
        }
    };
    let result = verify_sql(&db, &args.sql, options.pipeline.limits)?;
    let id = match args.run {
        Some(run) => store.correct_run(run, &args.sql)?,
        None => store.add_correction(
            &scope,
            &question,
            &args.sql,
            whole_schema_text(&db).as_deref(),
        )?,
    };
    crate::outln!(
        "recorded correction #{id} for \"{}\" (the SQL returned {}); similar questions will \
         see it as an example",
        question.trim(),
        result.row_summary()
    );
    print_retraining_note(&store, options);
    Ok(ExitCode::SUCCESS)
}

pub fn rate(args: &RateArgs, options: &RuntimeOptions) -> Result<ExitCode, AppError> {
    let (_db, scope) = open_db(&args.database)?;
    let mut store = open_store(options)?;
    check_run_scope(&store, args.run, &scope)?;
    let rating = match args.rating {
        RatingArg::Up => Rating::Up,
        RatingArg::Down => Rating::Down,
    };
    store.rate_run(args.run, rating, args.note.as_deref())?;
    match rating {
        Rating::Up => {
            let verified = store
                .pairs(None)?
                .iter()
                .any(|p| p.run_id == Some(args.run) && p.source == PairSource::ThumbsUp);
            if verified {
                crate::outln!(
                    "run {} rated up: its SQL is now a verified example",
                    args.run
                );
            } else {
                crate::outln!(
                    "run {} rated up (it has no answer, so nothing was stored as verified)",
                    args.run
                );
            }
        }
        Rating::Down => crate::outln!(
            "run {} rated down; record the right SQL with: nano-analyst correct {} --run {} --sql \"...\"",
            args.run,
            args.database.display(),
            args.run
        ),
    }
    print_retraining_note(&store, options);
    Ok(ExitCode::SUCCESS)
}

pub fn history(args: &HistoryArgs, options: &RuntimeOptions) -> Result<ExitCode, AppError> {
    let (db, scope) = open_db(&args.database)?;
    let store = open_store(options)?;
    let mut entries = store.entries(&scope, args.limit)?;
    for entry in &mut entries {
        if entry.status == HistoryStatus::Corrected {
            // The stored count is the run's own query's; the corrected SQL is what is shown.
            entry.row_count = entry
                .sql
                .as_deref()
                .and_then(|sql| db.execute(sql, options.pipeline.limits).ok())
                .and_then(|result| result.total_rows);
        }
    }
    if args.json {
        // JSON Lines, as the help says: one run per line.
        for entry in &entries {
            let json = serde_json::to_string(entry).map_err(AppError::json("the history"))?;
            crate::outln!("{json}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if entries.is_empty() {
        crate::outln!("no questions asked on '{}' yet", scope.path);
    }
    for entry in &entries {
        let status = match entry.status {
            HistoryStatus::Ok => "ok",
            HistoryStatus::Failed => "failed",
            HistoryStatus::Corrected => "corrected",
            HistoryStatus::Rated => match entry.rating {
                Some(Rating::Up) => "rated up",
                _ => "rated down",
            },
        };
        let rows = entry
            .row_count
            .map(|n| format!("{n} rows"))
            .unwrap_or_else(|| "-".into());
        let thread = entry
            .follows
            .map(|parent| format!("  (follows #{parent})"))
            .unwrap_or_default();
        crate::outln!(
            "#{:<5} {}  {:<10} {:>9}  {}{thread}",
            entry.id,
            utc_time(entry.asked_at),
            status,
            rows,
            entry.question
        );
        if let Some(sql) = &entry.sql {
            crate::outln!("       {}", one_line(sql));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A pair as `corrections list --json` prints it (without the long schema text).
#[derive(Serialize)]
struct PairJson<'a> {
    id: i64,
    source: PairSource,
    database: &'a str,
    question: &'a str,
    sql: &'a str,
    run_id: Option<i64>,
    derived_from: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl<'a> From<&'a VerifiedPair> for PairJson<'a> {
    fn from(pair: &'a VerifiedPair) -> Self {
        Self {
            id: pair.id,
            source: pair.source,
            database: &pair.scope.path,
            question: &pair.question,
            sql: &pair.sql,
            run_id: pair.run_id,
            derived_from: pair.derived_from,
            created_at: pair.created_at,
            updated_at: pair.updated_at,
        }
    }
}

pub fn corrections(
    command: &CorrectionsCommand,
    options: &RuntimeOptions,
) -> Result<ExitCode, AppError> {
    let mut store = open_store(options)?;
    match command {
        CorrectionsCommand::List { database, json } => {
            let scope = match database {
                Some(path) => Some(open_db(path)?.1),
                None => None,
            };
            let pairs = store.pairs(scope.as_ref())?;
            if *json {
                for pair in &pairs {
                    let text = serde_json::to_string(&PairJson::from(pair))
                        .map_err(AppError::json("the pairs"))?;
                    crate::outln!("{text}");
                }
            } else if pairs.is_empty() {
                crate::outln!("nothing learned yet: no corrections or thumbs-ups");
            } else {
                for pair in &pairs {
                    crate::outln!(
                        "#{:<5} {:<10} {:<12} {}\n       {}",
                        pair.id,
                        source_label(pair.source),
                        db_name(&pair.scope.path),
                        pair.question,
                        one_line(&pair.sql)
                    );
                }
            }
        }
        CorrectionsCommand::Show { id } => {
            let pair = store.pair(*id)?;
            crate::outln!("pair      #{}", pair.id);
            crate::outln!("source    {}", source_label(pair.source));
            crate::outln!("database  {}", pair.scope.path);
            crate::outln!("question  {}", pair.question);
            crate::outln!("sql       {}", pair.sql);
            if let Some(run) = pair.run_id {
                crate::outln!("run       #{run}");
            }
            if let Some(parent) = pair.derived_from {
                crate::outln!("from      #{parent} (paraphrase)");
            }
            crate::outln!("created   {}", utc_time(pair.created_at));
            crate::outln!("updated   {}", utc_time(pair.updated_at));
        }
        CorrectionsCommand::Rm { id } => {
            store.remove_pair(*id)?;
            crate::outln!("removed #{id}; it will no longer be shown as an example or exported");
        }
        CorrectionsCommand::Edit { id, question, sql } => {
            if question.is_none() && sql.is_none() {
                return Err(AppError::Usage(
                    "nothing to change: give --question and/or --sql".into(),
                ));
            }
            if question.as_deref().is_some_and(|q| q.trim().is_empty()) {
                return Err(AppError::Usage("the question is empty".into()));
            }
            let pair = store.pair(*id)?;
            if let Some(sql) = sql {
                let db = ReadOnlyDb::open(Path::new(&pair.scope.path)).map_err(|e| {
                    StoreError::CorrectionRefused(format!("cannot check it on the database: {e}"))
                })?;
                verify_sql(&db, sql, options.pipeline.limits)?;
            }
            store.edit_pair(*id, question.as_deref(), sql.as_deref())?;
            crate::outln!("updated #{id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn source_label(source: PairSource) -> &'static str {
    match source {
        PairSource::Correction => "correction",
        PairSource::ThumbsUp => "thumbs-up",
        PairSource::Synthetic => "synthetic",
    }
}

fn db_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string())
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
