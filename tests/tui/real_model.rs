//! With the real model, through the inference worker the app uses (no terminal): a
//! follow-up reuses the previous query's shape, and the time from Enter to the first SQL
//! token with and without the start-warm prefix evaluation.

use std::path::Path;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use nano_analyst::core::db::exec::ReadOnlyDb;
use nano_analyst::core::pipeline::EarlierTurn;
use nano_analyst::core::pipeline::outcome::RunOutcome;
use nano_analyst::core::retrieval::provider::WholeSchemaContext;
use nano_analyst::tui::app::{Msg, PipelineUpdate, StartupEvent};
use nano_analyst::tui::warm_request;
use nano_analyst::tui::workers::inference::{InferenceHandle, Loader, Session};

use super::fixtures::model_file_lock;
use crate::support::{chinook_path, default_pipeline, engine, model_lock};

/// The real engine over Chinook's whole schema; `warm` says whether the worker evaluates
/// the schema prefix while nobody asks. `cache` is the prefix cache directory.
fn loader(warm: bool, cache: &Path) -> Loader {
    let cache = cache.to_path_buf();
    Box::new(move |report: &dyn Fn(StartupEvent)| {
        let db = ReadOnlyDb::open(&chinook_path()).map_err(|e| e.to_string())?;
        let schema = db.introspect().map_err(|e| e.to_string())?;
        let engine = engine(Some(cache));
        let model_cancel = engine.cancel_flag();
        let mut context = WholeSchemaContext::new(&schema);
        let warm = warm.then(|| warm_request(&mut context, db.dialect()));
        report(StartupEvent::ModelReady {
            model: "real".into(),
        });
        Ok(Session {
            model: Box::new(engine),
            model_cancel,
            db,
            context: Box::new(context),
            config: default_pipeline(),
            warm,
        })
    })
}

/// Collects one question's messages: the time to the model's first SQL token and the
/// outcome.
fn answer(rx: &Receiver<Msg>, asked: Instant) -> (Duration, RunOutcome) {
    let mut first_token = None;
    loop {
        match rx.recv_timeout(Duration::from_secs(600)) {
            Ok(Msg::Pipeline {
                update: PipelineUpdate::SqlText { text, .. },
                ..
            }) if first_token.is_none() && text.trim() != "SELECT" => {
                first_token = Some(asked.elapsed())
            }
            Ok(Msg::Pipeline {
                update: PipelineUpdate::Finished(outcome),
                ..
            }) => {
                let outcome = *outcome.expect("the question runs");
                return (first_token.unwrap_or_default(), outcome);
            }
            Ok(_) => {}
            Err(error) => panic!("no answer: {error}"),
        }
    }
}

fn wait_for(rx: &Receiver<Msg>, wanted: impl Fn(&Msg) -> bool) {
    loop {
        match rx.recv_timeout(Duration::from_secs(600)) {
            Ok(msg) if wanted(&msg) => return,
            Ok(_) => {}
            Err(error) => panic!("never came: {error}"),
        }
    }
}

#[test]
fn a_follow_up_reuses_the_previous_query_with_the_real_model() {
    let _turn = model_lock();
    let _file_lock = model_file_lock();
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tui-prefix-cache");
    let (tx, rx) = mpsc::channel();
    let handle = InferenceHandle::spawn(loader(false, &cache), tx);
    let first = "What was the total invoice amount in 2023?";
    handle.ask(1, first.into(), Vec::new());
    let (_, outcome) = answer(&rx, Instant::now());
    let sql = outcome.sql.clone().expect("the first question is answered");
    assert!(sql.contains("2023"), "{sql}");
    let earlier = vec![EarlierTurn {
        question: first.into(),
        sql: sql.clone(),
    }];
    handle.ask(2, "same for 2024".into(), earlier);
    let (_, follow_up) = answer(&rx, Instant::now());
    let follow_sql = follow_up.sql.clone().expect("the follow-up is answered");
    eprintln!("first:     {sql}\nfollow-up: {follow_sql}");
    assert!(follow_sql.contains("2024"), "{follow_sql}");
    let shape = |sql: &str| {
        sql.to_lowercase()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(
        shape(&follow_sql).contains("sum(") && shape(&follow_sql).contains("invoice"),
        "the same kind of query: {follow_sql}"
    );
    let value = follow_up.result.expect("rows").rows[0][0].to_string();
    assert!(value.starts_with("477.53"), "{value}");
}

/// The figure in the report: Enter to the first SQL token on a fresh prefix cache, asked
/// 30 s after start, with and without the warm-up. Minutes; run with
/// `cargo test --test tests tui::real_model::enter_to_first -- --ignored --nocapture`.
#[test]
#[ignore]
fn enter_to_first_sql_token_with_and_without_the_warm_up() {
    let _turn = model_lock();
    let _file_lock = model_file_lock();
    for warm in [false, true] {
        let cache = tempfile::tempdir().expect("a fresh prefix cache");
        let (tx, rx) = mpsc::channel();
        let started = Instant::now();
        let handle = InferenceHandle::spawn(loader(warm, cache.path()), tx);
        wait_for(&rx, |m| {
            matches!(m, Msg::Startup(StartupEvent::ModelReady { .. }))
        });
        let ready = started.elapsed();
        // The user types for 30 s after start.
        std::thread::sleep(Duration::from_secs(30).saturating_sub(ready));
        let asked = Instant::now();
        handle.ask(1, "How many albums are there?".into(), Vec::new());
        let (first_token, outcome) = answer(&rx, asked);
        eprintln!(
            "warm start {warm}: model ready after {ready:?}; Enter to first SQL token \
             {first_token:?}; prompt tokens {} (cached {})",
            outcome.timings.prompt_tokens, outcome.timings.cached_prompt_tokens
        );
    }
}
