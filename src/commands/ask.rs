//! `nano-analyst ask DB "QUESTION" [--json] [--no-answer]`.

use crate::cli::AskArgs;
use crate::commands::feedback::retraining_note;
use crate::commands::text_table;
use crate::core::pipeline::outcome::{Confidence, PipelineEvent};
use crate::error::AppError;
pub use crate::session::ask_json::AskJson;
use crate::session::{Analyst, RuntimeOptions};

/// Returns whether the question was answered (the exit code follows it).
pub fn run(args: &AskArgs, options: &mut RuntimeOptions) -> Result<bool, AppError> {
    if args.question.trim().is_empty() {
        return Err(AppError::Usage("the question is empty".into()));
    }
    if args.no_answer {
        options.pipeline.answer = false;
    }
    let mut analyst = Analyst::open(&args.database, options)?;
    if let Some(note) = &analyst.retrieval_note {
        crate::errln!("nano-analyst: {note}");
    }
    let stream_answer = !args.json;
    let mut sql_so_far = String::new();
    let mut sql_attempt = 0;
    let mut on_event = |event: PipelineEvent<'_>| {
        if !stream_answer {
            return;
        }
        match event {
            PipelineEvent::SqlText { attempt, text } => {
                if attempt != sql_attempt {
                    sql_attempt = attempt;
                    sql_so_far.clear();
                }
                sql_so_far.push_str(text);
            }
            PipelineEvent::SqlRestarted { .. } => sql_so_far.clear(),
            PipelineEvent::AttemptFailed { attempt, error, .. } => {
                crate::outln!("attempt {attempt} failed: {error}");
            }
            PipelineEvent::Executed(result) => {
                crate::outln!("{}\n", sql_so_far.trim());
                crate::out!("{}", text_table::render(result, 50));
                crate::outln!("({})\n", result.row_summary());
            }
            // The answer is printed once checked against the rows (below), not streamed:
            // a sentence that states what the rows do not hold is replaced.
            _ => {}
        }
    };
    let (outcome, follows) = if args.follow_up {
        analyst.ask_follow_up(&args.question, &mut on_event)?
    } else {
        (analyst.ask(&args.question, &mut on_event)?, None)
    };
    if args.follow_up && follows.is_none() {
        crate::errln!("nano-analyst: no earlier question on this database; asked on its own");
    }
    let retraining = analyst.retraining_status();
    if args.json {
        let mut json = AskJson::from_outcome(&outcome);
        json.run_id = analyst.last_run();
        json.follows = follows;
        json.retraining = retraining;
        let json = serde_json::to_string(&json).map_err(AppError::json("the result"))?;
        crate::outln!("{json}");
    } else {
        if let Some(answer) = &outcome.answer {
            crate::outln!("{answer}");
        }
        if let Some(confidence) = &outcome.confidence {
            crate::outln!("{}", confidence_line(confidence));
        }
        if let Some(run) = analyst.last_run() {
            let db = args.database.display();
            crate::outln!(
                "(run {run}: nano-analyst rate {db} --run {run} up|down, or correct {db} --run {run} --sql \"...\")"
            );
        }
        if let Some(note) = retraining.as_ref().and_then(retraining_note) {
            crate::errln!("note: {note}");
        }
    }
    if let Some(error) = &outcome.error {
        if !args.json {
            // A refusal already speaks as the app ("nano-analyst only reads; ...").
            if error.starts_with("nano-analyst ") {
                crate::errln!("{error}");
            } else {
                crate::errln!("nano-analyst: {error}");
            }
        }
        return Ok(false);
    }
    Ok(true)
}

/// "confidence: medium (answered by repair attempt 2)".
pub(crate) fn confidence_line(confidence: &Confidence) -> String {
    let mut line = format!("confidence: {}", confidence.level.label());
    if !confidence.reasons.is_empty() {
        line.push_str(&format!(" ({})", confidence.reasons.join("; ")));
    }
    line
}
