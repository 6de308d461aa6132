//! The history store, corrections, example memory and the retraining set.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use nano_analyst::core::db::exec::{Cell, QueryResult, ReadOnlyDb};
use nano_analyst::core::db::render::{RenderOptions, render_schema};
use nano_analyst::core::feedback::history::{
    DbScope, HistoryError, HistoryStatus, Rating, RunHistory,
};
use nano_analyst::core::feedback::memory::ExampleMemory;
use nano_analyst::core::feedback::store::{HistoryStore, LATEST_VERSION, PairSource, scope_of};
use nano_analyst::core::feedback::training::{
    ExportFormat, read_export, training_records, write_export,
};
use nano_analyst::core::model::{Completion, CompletionRequest, LanguageModel, LlmError, Role};
use nano_analyst::core::pipeline::PromptRecord;
use nano_analyst::core::pipeline::outcome::{Attempt, RunOutcome, Timings};
use nano_analyst::core::pipeline::prompt::{question_message, sql_reply, system_message};
use nano_analyst::core::pipeline::{PipelineConfig, run_question};
use nano_analyst::core::retrieval::provider::{ComposedContext, ContextMode, WholeSchemaContext};

use nano_analyst::session::retrieval::load_embedder;

use crate::support::{
    answers_like, binary, chinook_path, default_pipeline, describe, embed_model_path, engine,
    model_lock, model_path, run_sql,
};

pub(crate) fn chinook_scope() -> DbScope {
    scope_of(&ReadOnlyDb::open(&chinook_path()).unwrap()).unwrap()
}

/// A fresh history store holding `corrections` (question, SQL) for Chinook. The directory
/// is removed when the returned guard drops.
fn store_with_corrections(corrections: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf, DbScope) {
    let data = tempfile::tempdir().unwrap();
    let path = data.path().join("history.sqlite3");
    let scope = chinook_scope();
    let mut store = HistoryStore::open(&path).unwrap();
    for (question, sql) in corrections {
        store.add_correction(&scope, question, sql, None).unwrap();
    }
    (data, path, scope)
}

fn chinook_schema_text() -> String {
    let db = ReadOnlyDb::open(&chinook_path()).unwrap();
    render_schema(db.schema().unwrap(), None, RenderOptions::default())
}

/// A run as the pipeline reports it (data, not a model: these tests are about storage).
pub(crate) fn outcome(question: &str, sql: &str, rows: usize) -> RunOutcome {
    RunOutcome {
        question: question.into(),
        sql: Some(sql.into()),
        result: Some(QueryResult {
            columns: vec!["n".into(), "name".into()],
            rows: (0..rows)
                .map(|i| vec![Cell::Integer(i as i64), Cell::Text(format!("row {i}"))])
                .collect(),
            total_rows: Some(rows as u64),
            cut: None,
        }),
        answer: Some("An answer.".into()),
        attempts: vec![Attempt {
            sql: sql.into(),
            error: None,
        }],
        tables_sent: vec!["Album".into()],
        tables_used: vec!["Album".into()],
        context_mode: ContextMode::WholeSchema,
        timings: Timings {
            total_ms: 1234,
            ..Timings::default()
        },
        model: "test-model".into(),
        error: None,
        rewrites: Vec::new(),
        source: None,
        confidence: None,
        prompt: None,
    }
}

fn with_prompt(outcome: RunOutcome, prompt: &PromptRecord) -> RunOutcome {
    RunOutcome {
        prompt: Some(Box::new(prompt.clone())),
        ..outcome
    }
}

/// JSON Lines as one JSON array.
pub(crate) fn json_lines(text: &str) -> serde_json::Value {
    text.lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).expect("one JSON object per line")
        })
        .collect()
}

pub(crate) fn nano(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .env("NANO_ANALYST_DATA_DIR", data_dir)
        .env("NANO_ANALYST_MODEL", model_path())
        .env("NANO_ANALYST_CONFIG", data_dir.join("no-config.toml"))
        .output()
        .expect("the binary runs")
}

fn table_names(store: &HistoryStore) -> Vec<String> {
    let mut statement = store
        .connection()
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn store_migrates_from_empty_to_latest_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/history.sqlite3");
    let store = HistoryStore::open(&path).unwrap();
    assert_eq!(store.version().unwrap(), LATEST_VERSION);
    let mode: String = store
        .connection()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    for table in [
        "scopes",
        "runs",
        "attempts",
        "ratings",
        "pairs",
        "feedback_log",
        "prompts",
    ] {
        assert!(table_names(&store).contains(&table.to_string()), "{table}");
    }
    drop(store);
    // Opening again is a no-op.
    let again = HistoryStore::open(&path).unwrap();
    assert_eq!(again.version().unwrap(), LATEST_VERSION);
    assert_eq!(again.run_count().unwrap(), 0);
}

#[test]
fn follow_ups_are_recorded_in_a_thread_that_ask_follow_up_continues() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite3");
    let scope = chinook_scope();
    // A version-2 store (before threads) moves forward and keeps its runs.
    let old = HistoryStore::open_at_version(&path, 2).unwrap();
    drop(old);
    let mut store = HistoryStore::open(&path).unwrap();
    assert_eq!(store.version().unwrap(), LATEST_VERSION);
    assert!(store.last_thread(&scope, 2).unwrap().is_empty());
    let first = store
        .record(&scope, &outcome("Invoices per country", "SELECT 1", 1))
        .unwrap();
    let second = store
        .record_in_thread(
            &scope,
            &outcome("only the top 3", "SELECT 2", 1),
            Some(first),
        )
        .unwrap();
    let third = store
        .record_in_thread(
            &scope,
            &outcome("same for 2010", "SELECT 3", 1),
            Some(second),
        )
        .unwrap();
    assert_eq!(store.parent_of(third).unwrap(), Some(second));
    assert_eq!(store.parent_of(first).unwrap(), None);
    let thread = store.last_thread(&scope, 2).unwrap();
    let questions: Vec<(i64, &str)> = thread
        .iter()
        .map(|(id, turn)| (*id, turn.question.as_str()))
        .collect();
    assert_eq!(
        questions,
        [(second, "only the top 3"), (third, "same for 2010")]
    );
    // The history shows which run each one follows.
    let follows: Vec<(i64, Option<i64>)> = store
        .list(&scope, 10)
        .unwrap()
        .iter()
        .map(|entry| (entry.id, entry.follows))
        .collect();
    assert_eq!(
        follows,
        [(third, Some(second)), (second, Some(first)), (first, None)]
    );
    // A correction is what the next follow-up builds on.
    store.correct(third, "SELECT 4").unwrap();
    assert_eq!(store.last_thread(&scope, 1).unwrap()[0].1.sql, "SELECT 4");
}

#[test]
fn store_migrates_a_version_1_file_keeping_its_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite3");
    let scope = chinook_scope();
    let fixture = include_str!("fixtures/history-v1.sql")
        .replace("@CHINOOK@", &scope.path)
        .replace("@FINGERPRINT@", &scope.fingerprint);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&fixture).unwrap();
    }
    let mut store = HistoryStore::open(&path).unwrap();
    assert_eq!(store.version().unwrap(), LATEST_VERSION);
    let entries = store.list(&scope, 10).unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].question, "Which album sold best?");
    assert_eq!(entries[0].status, HistoryStatus::Failed);
    assert_eq!(entries[1].row_count, Some(1));
    let run = store.load_run(1).unwrap().unwrap();
    assert_eq!(run.answer.as_deref(), Some("There are 347 albums."));
    assert!(store.run_examples(1).unwrap().is_empty());
    // The new tables work on the old runs.
    store.rate(1, Rating::Up, Some("right")).unwrap();
    store.correct(2, "SELECT Title FROM Album LIMIT 1").unwrap();
    let entries = store.list(&scope, 10).unwrap();
    assert_eq!(entries[0].status, HistoryStatus::Corrected);
    assert_eq!(
        entries[0].sql.as_deref(),
        Some("SELECT Title FROM Album LIMIT 1")
    );
    assert_eq!(entries[1].rating, Some(Rating::Up));
    // Re-opening the corrected run shows the correction, not the model's SQL.
    assert_eq!(
        store.load_run(2).unwrap().unwrap().sql.as_deref(),
        Some("SELECT Title FROM Album LIMIT 1")
    );
    let sources: Vec<PairSource> = store
        .pairs(Some(&scope))
        .unwrap()
        .iter()
        .map(|p| p.source)
        .collect();
    assert_eq!(sources, vec![PairSource::ThumbsUp, PairSource::Correction]);

    // A store opened at version 1 by this build also moves forward on the next open.
    let old = dir.path().join("old.sqlite3");
    let v1 = HistoryStore::open_at_version(&old, 1).unwrap();
    assert_eq!(v1.version().unwrap(), 1);
    assert!(!table_names(&v1).contains(&"pairs".to_string()));
    drop(v1);
    assert_eq!(
        HistoryStore::open(&old).unwrap().version().unwrap(),
        LATEST_VERSION
    );
}

#[test]
fn a_store_from_a_newer_version_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite3");
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", LATEST_VERSION + 1)
        .unwrap();
    let error = HistoryStore::open(&path).err().unwrap().to_string();
    assert!(error.contains("newer nano-analyst"), "{error}");
}

/// Not a test on its own: the writer process `kill_during_a_write_loses_at_most_that_write`
/// starts and kills. Does nothing unless that test set the store path.
#[test]
#[ignore = "helper process for kill_during_a_write_loses_at_most_that_write"]
fn kill_child_writer() {
    let Some(path) = std::env::var_os("NANO_FEEDBACK_KILL_STORE") else {
        return;
    };
    let mut store = HistoryStore::open(Path::new(&path)).unwrap();
    let scope = chinook_scope();
    let prompt = PromptRecord {
        schema_text: "schema ".repeat(2000),
        ..PromptRecord::default()
    };
    for i in 0.. {
        let id = store
            .record(
                &scope,
                &with_prompt(outcome(&format!("question {i}"), "SELECT 1", 200), &prompt),
            )
            .unwrap();
        println!("committed {id}");
    }
}

#[test]
fn kill_during_a_write_loses_at_most_that_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite3");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "feedback::kill_child_writer",
            "--ignored",
            "--nocapture",
        ])
        .env("NANO_FEEDBACK_KILL_STORE", &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acknowledged: Vec<i64> = Vec::new();
    while acknowledged.len() < 40 {
        let line = lines.next().expect("the writer keeps writing").unwrap();
        if let Some(id) = line.strip_prefix("committed ") {
            acknowledged.push(id.parse().unwrap());
        }
    }
    // SIGKILL: no destructors, no rollback, whatever write is in flight is cut.
    child.kill().unwrap();
    child.wait().unwrap();
    for line in lines.map_while(Result::ok) {
        if let Some(id) = line.strip_prefix("committed ") {
            acknowledged.push(id.parse().unwrap());
        }
    }

    let store = HistoryStore::open(&path).unwrap();
    let check: String = store
        .connection()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let stored = store.run_count().unwrap();
    let acked = acknowledged.len() as i64;
    // Every acknowledged write survived; at most the one in flight is missing (it may also
    // have committed just before its acknowledgement was printed).
    assert!(
        stored == acked || stored == acked + 1,
        "stored {stored}, acknowledged {acked}"
    );
    let runs = store.list(&chinook_scope(), usize::MAX).unwrap();
    for id in &acknowledged {
        let run = runs
            .iter()
            .find(|r| r.id == *id)
            .expect("acknowledged run kept");
        // Whole runs only: the attempts written in the same transaction are there too.
        assert_eq!(store.load_run(run.id).unwrap().unwrap().attempts.len(), 1);
    }
    let orphans: i64 = store
        .connection()
        .query_row(
            "SELECT count(*) FROM attempts WHERE run_id NOT IN (SELECT id FROM runs)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0);
    println!("killed after {acked} acknowledged writes; {stored} runs stored, file intact");
}

#[test]
fn corrections_that_do_not_execute_read_only_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let db = chinook_path();
    let db = db.to_str().unwrap();
    for (sql, needle) in [
        ("SELECT Title FROM Albums", "no such table"),
        ("SELEC Title FROM Album", "refused"),
        ("DELETE FROM Album", "would change the database"),
        ("SELECT 1; DROP TABLE Album", "2 statements"),
        ("", "no SQL"),
    ] {
        let output = nano(
            data.path(),
            &[
                "correct",
                db,
                "--question",
                "What are the album titles?",
                "--sql",
                sql,
            ],
        );
        assert!(!output.status.success(), "{sql} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("the correction was refused"), "{stderr}");
        assert!(stderr.contains(needle), "{sql}: {stderr}");
    }
    let store = HistoryStore::open(&data.path().join("history.sqlite3")).unwrap();
    assert!(store.pairs(None).unwrap().is_empty());
    assert_eq!(store.retraining_status(10).unwrap().new_feedback, 0);

    // Through the trait (what the TUI calls), on a recorded run.
    let mut store = store;
    let run = store
        .record(
            &chinook_scope(),
            &outcome("What are the album titles?", "SELECT 1", 1),
        )
        .unwrap();
    match store.correct(run, "UPDATE Album SET Title = 'x'") {
        Err(HistoryError::CorrectionRefused(reason)) => {
            assert!(reason.contains("UPDATE"), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(store.pairs(None).unwrap().is_empty());

    // A correction that runs is kept, and says how many rows it returned.
    let output = nano(
        data.path(),
        &[
            "correct",
            db,
            "--question",
            "What are the album titles?",
            "--sql",
            "SELECT Title FROM Album",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("347 rows"));
}

#[test]
fn rate_history_and_corrections_commands_curate_what_is_learned() {
    let data = tempfile::tempdir().unwrap();
    let db = chinook_path();
    let db = db.to_str().unwrap();
    let scope = chinook_scope();
    let (good, bad) = {
        let mut store = HistoryStore::open(&data.path().join("history.sqlite3")).unwrap();
        (
            store
                .record(
                    &scope,
                    &outcome(
                        "How many albums are there?",
                        "SELECT count(*) FROM Album",
                        1,
                    ),
                )
                .unwrap(),
            store
                .record(
                    &scope,
                    &outcome(
                        "How many artists are there?",
                        "SELECT count(*) FROM Album",
                        1,
                    ),
                )
                .unwrap(),
        )
    };
    let ok = |output: Output| {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let good_s = good.to_string();
    let bad_s = bad.to_string();
    assert!(
        ok(nano(data.path(), &["rate", db, "--run", &good_s, "up"])).contains("verified example")
    );
    ok(nano(
        data.path(),
        &[
            "rate",
            db,
            "--run",
            &bad_s,
            "down",
            "--note",
            "counts albums",
        ],
    ));
    ok(nano(
        data.path(),
        &[
            "correct",
            db,
            "--run",
            &bad_s,
            "--sql",
            "SELECT count(*) FROM Artist",
        ],
    ));

    let history = json_lines(&ok(nano(
        data.path(),
        &["history", db, "--json", "--limit", "5"],
    )));
    assert_eq!(history[0]["id"], bad);
    assert_eq!(history[0]["status"], "corrected");
    assert_eq!(history[0]["sql"], "SELECT count(*) FROM Artist");
    assert_eq!(history[1]["rating"], "up");
    assert!(ok(nano(data.path(), &["history", db])).contains("How many artists are there?"));

    let list = json_lines(&ok(nano(
        data.path(),
        &["corrections", "list", db, "--json"],
    )));
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["source"], "thumbs_up");
    assert_eq!(list[1]["source"], "correction");
    let correction_id = list[1]["id"].as_i64().unwrap().to_string();
    assert!(
        ok(nano(data.path(), &["corrections", "show", &correction_id]))
            .contains("SELECT count(*) FROM Artist")
    );
    // Edits are checked like corrections.
    let refused = nano(
        data.path(),
        &[
            "corrections",
            "edit",
            &correction_id,
            "--sql",
            "DROP TABLE Artist",
        ],
    );
    assert!(!refused.status.success());
    ok(nano(
        data.path(),
        &[
            "corrections",
            "edit",
            &correction_id,
            "--question",
            "How many artists exist?",
        ],
    ));
    assert!(
        ok(nano(data.path(), &["corrections", "show", &correction_id]))
            .contains("How many artists exist?")
    );
    ok(nano(data.path(), &["corrections", "rm", &correction_id]));
    let after = json_lines(&ok(nano(data.path(), &["corrections", "list", "--json"])));
    assert_eq!(after.as_array().unwrap().len(), 1);
    let missing = nano(data.path(), &["corrections", "rm", &correction_id]);
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains(&format!("no verified pair with id {correction_id}"))
    );

    // The thumbs-down and the correction count towards retraining.
    let store = HistoryStore::open(&data.path().join("history.sqlite3")).unwrap();
    let status = store.retraining_status(2).unwrap();
    assert_eq!(status.new_feedback, 2);
    assert!(status.due);
    let mut store = store;
    store.mark_trained(Some("adapter-1")).unwrap();
    assert!(!store.retraining_status(2).unwrap().due);
}

#[test]
fn export_round_trips_in_every_format() {
    let data = tempfile::tempdir().unwrap();
    let scope = chinook_scope();
    let schema_text = chinook_schema_text();
    let mut store = HistoryStore::open(&data.path().join("history.sqlite3")).unwrap();
    let prompt = PromptRecord {
        schema_text: schema_text.clone(),
        ..PromptRecord::default()
    };
    let run = store
        .record(
            &scope,
            &with_prompt(
                outcome(
                    "How many albums are there?",
                    "SELECT count(*) FROM Album",
                    1,
                ),
                &prompt,
            ),
        )
        .unwrap();
    store.rate_run(run, Rating::Up, None).unwrap();
    let genres = store
        .add_correction(
            &scope,
            "List the names of all genres.",
            "SELECT Name FROM Genre;",
            Some(&schema_text),
        )
        .unwrap();
    // The same question again, corrected later: only the newest is exported.
    store
        .add_correction(
            &scope,
            "How many albums are there?",
            "SELECT count(AlbumId) FROM Album",
            Some(&schema_text),
        )
        .unwrap();
    store
        .add_synthetic(genres, "What are the genre names?")
        .unwrap();
    assert_eq!(
        store
            .add_synthetic(genres, "what are the GENRE names")
            .unwrap(),
        None
    );

    let (records, skipped) = training_records(store.pairs(None).unwrap(), true);
    assert_eq!(skipped, 0);
    assert_eq!(records.len(), 3);
    for format in [
        ExportFormat::Chat,
        ExportFormat::Alpaca,
        ExportFormat::Spider,
    ] {
        let out = data.path().join(format!("{format:?}.jsonl"));
        write_export(&records, format, &out).unwrap();
        let back = read_export(&out).unwrap();
        let mut got: Vec<(String, String, String)> = back
            .iter()
            .map(|p| (p.question.clone(), p.sql.clone(), p.provenance.clone()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                (
                    "How many albums are there?".into(),
                    "SELECT count(AlbumId) FROM Album".into(),
                    "human_correction".into()
                ),
                (
                    "List the names of all genres.".into(),
                    "SELECT Name FROM Genre".into(),
                    "human_correction".into()
                ),
                (
                    "What are the genre names?".into(),
                    "SELECT Name FROM Genre".into(),
                    "synthetic".into()
                ),
            ],
            "{format:?}"
        );
        assert!(back.iter().all(|p| p.database == scope.path));
    }
    // The chat lines are exactly the inference prompt: same system message, question turn
    // and reply shape as the pipeline sends.
    let chat = std::fs::read_to_string(data.path().join("Chat.jsonl")).unwrap();
    let first: serde_json::Value = chat
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|l| l["messages"][1]["content"] == "Question: How many albums are there?")
        .expect("the albums pair is exported");
    let messages = first["messages"].as_array().unwrap();
    let question = "How many albums are there?";
    let expected = [
        system_message(&schema_text),
        question_message(question, &[]),
        sql_reply("SELECT count(AlbumId) FROM Album"),
    ];
    for (message, want) in messages.iter().zip(&expected) {
        assert_eq!(message["role"], want.role.as_str());
        assert_eq!(message["content"], want.content.as_str());
    }
    assert_eq!(expected[0].role, Role::System);

    // The command writes the same file.
    drop(store);
    let out = data.path().join("cli.jsonl");
    let output = nano(
        data.path(),
        &[
            "train",
            "export",
            "--format",
            "chat",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), chat);
    assert!(String::from_utf8_lossy(&output.stdout).contains("wrote 3 examples"));
}

#[test]
fn example_memory_ranks_the_matching_pair_first_and_follows_the_store() {
    let data = tempfile::tempdir().unwrap();
    let path = data.path().join("history.sqlite3");
    let scope = chinook_scope();
    let mut store = HistoryStore::open(&path).unwrap();
    let mut memory = ExampleMemory::open(&path, scope.clone(), None).unwrap();
    assert!(memory.is_empty().unwrap());
    for (question, sql) in [
        ("How many albums are there?", "SELECT count(*) FROM Album"),
        (
            "Which artist has the most albums?",
            "SELECT ar.Name FROM Artist ar JOIN Album al ON al.ArtistId = ar.ArtistId GROUP BY ar.ArtistId ORDER BY count(*) DESC LIMIT 1",
        ),
        (
            "What is the least common media type in all tracks?",
            "SELECT m.Name FROM MediaType m JOIN Track t ON t.MediaTypeId = m.MediaTypeId GROUP BY m.MediaTypeId ORDER BY count(*) LIMIT 1",
        ),
        ("List the names of all genres.", "SELECT Name FROM Genre"),
    ] {
        store.add_correction(&scope, question, sql, None).unwrap();
    }
    // Another database's pairs are not shown.
    let other = DbScope {
        path: "/elsewhere.db".into(),
        fingerprint: "x".into(),
    };
    store
        .add_correction(
            &other,
            "Which media type is used by the fewest tracks?",
            "SELECT 1",
            None,
        )
        .unwrap();

    let hits = memory
        .search("Which media type is used by the fewest tracks?", 2)
        .unwrap();
    assert_eq!(
        hits[0].question,
        "What is the least common media type in all tracks?"
    );
    assert!(hits.iter().all(|p| p.scope == scope));
    let hits = memory
        .search("Who is the artist with the largest number of albums?", 1)
        .unwrap();
    assert_eq!(hits[0].question, "Which artist has the most albums?");
    // Removing a pair takes effect on the next search.
    store.remove_pair(hits[0].id).unwrap();
    let hits = memory
        .search("Who is the artist with the largest number of albums?", 1)
        .unwrap();
    assert_ne!(
        hits.first().map(|p| p.question.as_str()),
        Some("Which artist has the most albums?")
    );
}

/// Delegates to the real engine and keeps every request it was sent.
struct Recording<'a> {
    inner: &'a mut dyn LanguageModel,
    requests: Vec<CompletionRequest>,
}

impl LanguageModel for Recording<'_> {
    fn complete(
        &mut self,
        request: &CompletionRequest,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion, LlmError> {
        self.requests.push(request.clone());
        self.inner.complete(request, on_text)
    }
    fn model_id(&self) -> String {
        self.inner.model_id()
    }
    fn count_tokens(&self, text: &str) -> usize {
        self.inner.count_tokens(text)
    }
}

#[test]
fn example_memory_puts_the_corrected_pair_into_a_paraphrase_prompt() {
    let _turn = model_lock();
    let data = tempfile::tempdir().unwrap();
    let path = data.path().join("history.sqlite3");
    let db = ReadOnlyDb::open(&chinook_path()).unwrap();
    let scope = scope_of(&db).unwrap();
    let mut store = HistoryStore::open(&path).unwrap();
    let mut context = ComposedContext {
        schema: Box::new(WholeSchemaContext::new(db.schema().unwrap())),
        examples: Some(Box::new(
            ExampleMemory::open(&path, scope.clone(), None).unwrap(),
        )),
        examples_per_question: 3,
    };
    let config = PipelineConfig {
        answer: false,
        ..default_pipeline()
    };
    let mut engine = engine(None);
    let mut model = Recording {
        inner: &mut engine,
        requests: Vec::new(),
    };

    let question = "What is the least common media type in all tracks?";
    let gold = "SELECT T1.Name FROM MEDIATYPE AS T1 JOIN TRACK AS T2 ON T1.MediaTypeId = T2.MediaTypeId GROUP BY T2.MediaTypeId ORDER BY COUNT(*) ASC LIMIT 1";
    let first = run_question(
        &mut model,
        &db,
        &mut context,
        question,
        &config,
        &mut |_| {},
    )
    .unwrap();
    assert!(
        !model.requests[0].messages[1]
            .content
            .contains("answered correctly before")
    );
    let run = store.record_run(&scope, &first).unwrap();
    store.correct(run, gold).unwrap();

    model.requests.clear();
    let paraphrase = "Which media type is used by the fewest tracks?";
    let second = run_question(
        &mut model,
        &db,
        &mut context,
        paraphrase,
        &config,
        &mut |_| {},
    )
    .unwrap();
    // The corrected pair is an earlier turn of the conversation: its question, then its SQL
    // as the assistant's reply; the paraphrase is the last turn.
    let messages = &model.requests[0].messages;
    assert_eq!(messages.len(), 4, "{messages:?}");
    assert_eq!(messages[1], question_message(question, &[]));
    assert_eq!(messages[2], sql_reply(gold));
    assert_eq!(messages[3].role, Role::User);
    assert_eq!(messages[3].content, format!("Question: {paraphrase}"));
    let want = run_sql(&db, gold);
    let got = second.result.expect("the paraphrase is answered");
    assert!(
        answers_like(&want, &got, gold),
        "{:?}: {}",
        second.sql,
        describe(&got)
    );
}

#[derive(serde::Deserialize)]
struct ParaphraseCase {
    id: String,
    question: String,
    paraphrase: String,
    gold: String,
}

/// The example-memory measurement reported in the README. Run with
/// `flock /tmp/nano-model.lock cargo test --test tests paraphrase_ex -- --ignored --nocapture`.
#[test]
#[ignore = "several minutes with the real model; reproduces the README figure"]
fn paraphrase_ex_before_and_after_corrections() {
    let _turn = model_lock();
    let cases: Vec<ParaphraseCase> = include_str!("data/chinook_paraphrases.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let data = tempfile::tempdir().unwrap();
    let path = data.path().join("history.sqlite3");
    let db = ReadOnlyDb::open(&chinook_path()).unwrap();
    let scope = scope_of(&db).unwrap();
    let mut store = HistoryStore::open(&path).unwrap();
    // The example memory as the app runs it: BM25 and sentence vectors.
    let embedder = load_embedder(&embed_model_path(), 2).unwrap();
    let mut context = ComposedContext {
        schema: Box::new(WholeSchemaContext::new(db.schema().unwrap())),
        examples: Some(Box::new(
            ExampleMemory::open(&path, scope.clone(), Some(embedder)).unwrap(),
        )),
        examples_per_question: 3,
    };
    let config = PipelineConfig {
        answer: false,
        ..default_pipeline()
    };
    let mut engine = engine(None);
    let mut ask = |question: &str, gold_sql: &str, store: &mut HistoryStore| {
        let outcome = run_question(
            &mut engine,
            &db,
            &mut context,
            question,
            &config,
            &mut |_| {},
        )
        .unwrap();
        let gold = run_sql(&db, gold_sql);
        let right = outcome
            .result
            .as_ref()
            .is_some_and(|r| answers_like(&gold, r, gold_sql));
        let run = store.record_run(&scope, &outcome).unwrap();
        (right, run, outcome.sql.unwrap_or_default())
    };
    let started = std::time::Instant::now();
    let mut before = Vec::new();
    for case in &cases {
        before.push(ask(&case.paraphrase, &case.gold, &mut store).0);
    }
    let mut corrected = 0;
    let mut originals_right = 0;
    for case in &cases {
        let (right, run, sql) = ask(&case.question, &case.gold, &mut store);
        if right {
            originals_right += 1;
        } else {
            println!(
                "correcting {}: {} (model wrote: {sql})",
                case.id, case.question
            );
            store.correct(run, &case.gold).unwrap();
            corrected += 1;
        }
    }
    let mut after = Vec::new();
    for case in &cases {
        let (right, _, sql) = ask(&case.paraphrase, &case.gold, &mut store);
        if !right {
            println!("still wrong {}: {} -> {sql}", case.id, case.paraphrase);
        }
        after.push(right);
    }
    let n = cases.len();
    let count = |v: &[bool]| v.iter().filter(|r| **r).count();
    for (case, (b, a)) in cases.iter().zip(before.iter().zip(&after)) {
        println!(
            "{} before {} after {}  {}",
            case.id,
            u8::from(*b),
            u8::from(*a),
            case.paraphrase
        );
    }
    println!(
        "paraphrase EX before corrections: {}/{n} ({:.0}%); originals right: {originals_right}/{n}; \
         corrections submitted: {corrected}; paraphrase EX after: {}/{n} ({:.0}%); {:.0} s",
        count(&before),
        100.0 * count(&before) as f64 / n as f64,
        count(&after),
        100.0 * count(&after) as f64 / n as f64,
        started.elapsed().as_secs_f64()
    );
    assert!(count(&after) >= count(&before));
    // The feedback issue's target: at least 95% of the paraphrases right after corrections.
    assert!(
        count(&after) * 100 >= 95 * n,
        "paraphrase EX after corrections is below 95%"
    );
}

/// `ask` records the run; a correction made with `correct --run` is in the prompt of the
/// next `ask` of a paraphrase (read back from what the store recorded for that run).
#[test]
fn ask_records_runs_and_the_next_ask_sees_the_correction() {
    let _turn = model_lock();
    let data = tempfile::tempdir().unwrap();
    let db = chinook_path();
    let db = db.to_str().unwrap();
    let ask = |question: &str| -> serde_json::Value {
        let output = nano(data.path(), &["ask", db, question, "--json", "--no-answer"]);
        serde_json::from_str(String::from_utf8_lossy(&output.stdout).trim())
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)))
    };
    let first = ask("How many tracks are in the AAC audio file media type?");
    let run = first["run_id"].as_i64().expect("the run was recorded");
    assert_eq!(first["retraining"]["due"], false);
    let gold = "SELECT COUNT(*) FROM MEDIATYPE AS T1 JOIN TRACK AS T2 ON T1.MediaTypeId = T2.MediaTypeId WHERE T1.Name = \"AAC audio file\"";
    let output = nano(
        data.path(),
        &["correct", db, "--run", &run.to_string(), "--sql", gold],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let second = ask("Count the tracks whose media type is AAC audio file.");
    let second_run = second["run_id"].as_i64().unwrap();
    assert_eq!(second_run, run + 1);
    let store = HistoryStore::open(&data.path().join("history.sqlite3")).unwrap();
    let examples = store.run_examples(second_run).unwrap();
    assert_eq!(examples.len(), 1, "{examples:?}");
    assert_eq!(examples[0].sql, gold);
    assert_eq!(second["rows"], serde_json::json!([[11]]), "{second}");
}

/// Vectors from a lookup table: enough to show that a vector-only match (no word in common)
/// is found when an embedder is given, and not without one.
struct TableEmbedder(Vec<(&'static str, Vec<f32>)>);

impl nano_analyst::core::model::Embedder for TableEmbedder {
    fn dimensions(&self) -> usize {
        2
    }
    fn model_id(&self) -> String {
        "table".into()
    }
    fn embed(
        &mut self,
        texts: &[&str],
    ) -> Result<Vec<Vec<f32>>, nano_analyst::core::model::EmbedError> {
        Ok(texts
            .iter()
            .map(|t| {
                self.0
                    .iter()
                    .find(|(k, _)| k == t)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_else(|| vec![0.0, 1.0])
            })
            .collect())
    }
}

#[test]
fn example_memory_uses_vectors_when_an_embedder_is_given() {
    let (_data, path, scope) = store_with_corrections(&[
        ("Which customers spent the most?", "SELECT 1"),
        ("How many albums are there?", "SELECT 2"),
    ]);
    let question = "Top buyers by total purchases";
    let embedder = TableEmbedder(vec![
        ("Which customers spent the most?", vec![1.0, 0.0]),
        (question, vec![0.96, 0.28]),
    ]);
    let mut with = ExampleMemory::open(&path, scope.clone(), Some(Box::new(embedder))).unwrap();
    let mut without = ExampleMemory::open(&path, scope, None).unwrap();
    assert!(with.uses_vectors());
    let hits = with.search(question, 3).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].sql, "SELECT 1");
    assert!(without.search(question, 3).unwrap().is_empty());
}

/// With vectors, words in common are not enough: a pair far in meaning is left out.
#[test]
fn example_memory_with_vectors_leaves_out_a_pair_that_only_shares_words() {
    let near_words = "What are the first and last names of the employees who help Leonie?";
    let same_meaning = "First and last names of employees who live in Calgary";
    let (_data, path, scope) =
        store_with_corrections(&[(near_words, "SELECT 1"), (same_meaning, "SELECT 2")]);
    let question = "First and last names of the employees based in Calgary";
    let embedder = TableEmbedder(vec![
        (near_words, vec![0.5, 0.866]),
        (same_meaning, vec![0.95, 0.31]),
        (question, vec![1.0, 0.0]),
    ]);
    let mut memory = ExampleMemory::open(&path, scope.clone(), Some(Box::new(embedder))).unwrap();
    let hits = memory.search(question, 3).unwrap();
    let sqls: Vec<&str> = hits.iter().map(|p| p.sql.as_str()).collect();
    assert_eq!(sqls, vec!["SELECT 2"]);
    // Without vectors the shared words decide, and both are found.
    let mut words_only = ExampleMemory::open(&path, scope, None).unwrap();
    assert_eq!(words_only.search(question, 3).unwrap().len(), 2);
}

/// `train augment` with the real model: every paraphrase it keeps is labelled synthetic,
/// derived from the verified pair, and carries that pair's SQL.
#[test]
fn train_augment_keeps_only_checked_paraphrases() {
    let _turn = model_lock();
    let data = tempfile::tempdir().unwrap();
    let db = chinook_path();
    let db = db.to_str().unwrap();
    let sql = "SELECT count(*) FROM Album";
    let output = nano(
        data.path(),
        &[
            "correct",
            db,
            "--question",
            "How many albums are there?",
            "--sql",
            sql,
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = nano(data.path(), &["train", "augment", db, "--k", "2"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("paraphrases"), "{stdout}");
    let store = HistoryStore::open(&data.path().join("history.sqlite3")).unwrap();
    let pairs = store.pairs(None).unwrap();
    let synthetic: Vec<_> = pairs
        .iter()
        .filter(|p| p.source == PairSource::Synthetic)
        .collect();
    let kept: Vec<&str> = synthetic.iter().map(|p| p.question.as_str()).collect();
    println!("{stdout}{kept:?}");
    assert!(
        !synthetic.is_empty(),
        "a count question should survive paraphrasing: {stdout}"
    );
    for pair in synthetic {
        assert_eq!(pair.derived_from, Some(pairs[0].id));
        assert_eq!(pair.sql, sql);
        assert_ne!(pair.question, "How many albums are there?");
    }
    // Synthetic pairs are exported with their provenance, not shown as examples.
    let mut memory =
        ExampleMemory::open(&data.path().join("history.sqlite3"), chinook_scope(), None).unwrap();
    assert_eq!(memory.len().unwrap(), 1);
}

#[test]
fn example_memory_leaves_out_pairs_sharing_a_single_word() {
    let (_data, path, scope) = store_with_corrections(&[(
        "What city does the employee who helps the customer with postal code 70174 live in?",
        "SELECT 1",
    )]);
    let mut memory = ExampleMemory::open(&path, scope, None).unwrap();
    let unrelated = "Give me the first and last names of the employees based in Calgary.";
    assert!(memory.search(unrelated, 3).unwrap().is_empty());
    let paraphrase =
        "In which city does the support rep of the customer with postal code 70174 live?";
    assert_eq!(memory.search(paraphrase, 3).unwrap().len(), 1);
}
