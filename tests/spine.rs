//! The pipeline with the real default model on Chinook.

use std::path::Path;

use nano_analyst::core::db::exec::{Cell, ReadOnlyDb};
use nano_analyst::core::model::{
    Completion, CompletionRequest, LanguageModel, LlmError, Sampling, StopReason,
};
use nano_analyst::core::pipeline::extract::SQL_FENCE_OPEN;
use nano_analyst::core::pipeline::outcome::{PipelineEvent, RunOutcome, Source, Stage};
use nano_analyst::core::pipeline::{PipelineConfig, run_question};
use nano_analyst::core::retrieval::provider::WholeSchemaContext;
use nano_analyst::core::rewrite::RewriteSettings;

use crate::support::{
    answers_like, chinook_path, default_pipeline, describe, engine, model_lock, run_sql, sha256_of,
};

fn ask(model: &mut dyn LanguageModel, db: &ReadOnlyDb, question: &str) -> RunOutcome {
    let config = PipelineConfig {
        answer: false,
        ..default_pipeline()
    };
    ask_with(model, db, question, &config)
}

fn ask_with(
    model: &mut dyn LanguageModel,
    db: &ReadOnlyDb,
    question: &str,
    config: &PipelineConfig,
) -> RunOutcome {
    let schema = db.introspect().expect("schema");
    let mut context = WholeSchemaContext::new(&schema);
    run_question(model, db, &mut context, question, config, &mut |_| {}).expect("pipeline runs")
}

/// A scripted reply as the model would write it: the continuation of the assistant prefix
/// the pipeline already put in its mouth (the SQL fence and the configured opening).
fn continuation<'r>(request: &CompletionRequest, reply: &'r str) -> &'r str {
    let opening = request
        .assistant_prefix
        .strip_prefix(SQL_FENCE_OPEN)
        .unwrap_or(&request.assistant_prefix);
    reply.strip_prefix(opening).unwrap_or(reply)
}

#[test]
fn answers_chinook_questions_of_varied_shape() {
    let _turn = model_lock();
    let db = ReadOnlyDb::open(&chinook_path()).unwrap();
    let mut engine = engine(None);
    let cases = [
        ("How many albums are there?", "SELECT count(*) FROM Album"),
        (
            "Which customers live in Brazil? Give their first and last names.",
            "SELECT FirstName, LastName FROM Customer WHERE Country = 'Brazil'",
        ),
        (
            "List the names of the tracks on the album 'Balls to the Wall'.",
            "SELECT t.Name FROM Track t JOIN Album a ON a.AlbumId = t.AlbumId WHERE a.Title = 'Balls to the Wall'",
        ),
        (
            "How many tracks does each genre have? Show the genre name and the number of tracks.",
            "SELECT g.Name, count(*) FROM Track t JOIN Genre g ON g.GenreId = t.GenreId GROUP BY g.Name",
        ),
        (
            "What are the names of the 5 longest tracks?",
            "SELECT Name FROM Track ORDER BY Milliseconds DESC LIMIT 5",
        ),
        (
            "What is the total amount invoiced to customers in Germany?",
            "SELECT sum(Total) FROM Invoice WHERE BillingCountry = 'Germany'",
        ),
    ];
    let mut failures = Vec::new();
    for (question, gold_sql) in cases {
        let outcome = ask(&mut engine, &db, question);
        let gold = run_sql(&db, gold_sql);
        match &outcome.result {
            Some(result) if answers_like(&gold, result, gold_sql) => {}
            Some(result) => failures.push(format!(
                "{question}\n  sql: {:?}\n  got {}\n  want {}",
                outcome.sql,
                describe(result),
                describe(&gold)
            )),
            None => failures.push(format!(
                "{question}: {:?} ({:?})",
                outcome.error, outcome.attempts
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "wrong answers:\n{}",
        failures.join("\n")
    );
}

/// Writes a broken query first, then lets the real model take over (it sees the error).
struct FailsFirst<'a> {
    inner: &'a mut dyn LanguageModel,
    calls: usize,
}

impl LanguageModel for FailsFirst<'_> {
    fn complete(
        &mut self,
        request: &CompletionRequest,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion, LlmError> {
        self.calls += 1;
        if self.calls == 1 {
            let text =
                continuation(request, "SELECT Titel FROM Albums WHERE ArtistId = 1\n").to_string();
            on_text(&text);
            return Ok(scripted(text));
        }
        self.inner.complete(request, on_text)
    }
    fn model_id(&self) -> String {
        self.inner.model_id()
    }
    fn count_tokens(&self, text: &str) -> usize {
        self.inner.count_tokens(text)
    }
}

fn scripted(text: String) -> Completion {
    Completion {
        text,
        prompt_tokens: 0,
        cached_prompt_tokens: 0,
        generated_tokens: 0,
        time_to_first_token: Default::default(),
        elapsed: Default::default(),
        stop_reason: StopReason::StopString,
        mean_logprob: None,
    }
}

#[test]
fn repairs_a_failing_first_attempt_with_the_real_model() {
    let _turn = model_lock();
    let db = ReadOnlyDb::open(&chinook_path()).unwrap();
    let mut engine = engine(None);
    let mut model = FailsFirst {
        inner: &mut engine,
        calls: 0,
    };
    let question = "What are the titles of the albums by the artist with ArtistId 1?";
    let outcome = ask(&mut model, &db, question);
    assert_eq!(
        outcome.attempts[0].sql,
        "SELECT Titel FROM Albums WHERE ArtistId = 1"
    );
    let first_error = outcome.attempts[0].error.as_deref().unwrap_or_default();
    assert!(
        first_error.contains("no such table: Albums"),
        "{first_error}"
    );
    assert!(outcome.attempts.len() >= 2, "{:?}", outcome.attempts);
    let gold_sql = "SELECT Title FROM Album WHERE ArtistId = 1";
    let gold = run_sql(&db, gold_sql);
    let result = outcome
        .result
        .as_ref()
        .unwrap_or_else(|| panic!("not repaired: {:?}", outcome.attempts));
    assert!(
        answers_like(&gold, result, gold_sql),
        "{}",
        describe(result)
    );
    assert!(outcome.attempts.last().unwrap().error.is_none());
}

/// A scripted model: the function picks the whole reply to each request.
struct Replies<F>(F);

impl<F: FnMut(&CompletionRequest) -> &'static str> LanguageModel for Replies<F> {
    fn complete(
        &mut self,
        request: &CompletionRequest,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion, LlmError> {
        let text = continuation(request, (self.0)(request));
        on_text(text);
        Ok(scripted(text.to_string()))
    }
    fn model_id(&self) -> String {
        "scripted".into()
    }
    fn count_tokens(&self, text: &str) -> usize {
        text.len() / 4
    }
}

/// A model that always answers with the same text.
fn says(reply: &'static str) -> Replies<impl FnMut(&CompletionRequest) -> &'static str> {
    Replies(move |_: &CompletionRequest| reply)
}

#[test]
fn refuses_writing_sql_and_leaves_the_database_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("chinook.db");
    std::fs::copy(chinook_path(), &copy).unwrap();
    let before = sha256_of(&copy);
    let db = ReadOnlyDb::open(&copy).unwrap();
    for (reply, refusal) in [
        (
            "DELETE FROM Album\n```",
            "'DELETE' would change the database",
        ),
        ("DROP TABLE Track;\n```", "'DROP' would change the database"),
        (
            "ATTACH DATABASE 'other.db' AS other\n```",
            "'ATTACH' would change the database",
        ),
        ("SELECT 1; DELETE FROM Album;\n```", "2 statements"),
        (
            "UPDATE Track SET Name = 'x'\n```",
            "'UPDATE' would change the database",
        ),
    ] {
        // No opening: the model writes the whole statement, as with `sql_opening = ""`.
        let config = PipelineConfig {
            answer: false,
            sql_opening: String::new(),
            ..default_pipeline()
        };
        // A read question: the write comes from the model, so the guard is what refuses it.
        let outcome = ask_with(&mut says(reply), &db, "What is in the albums?", &config);
        let error = outcome.error.unwrap_or_default();
        assert!(error.contains(refusal), "{reply}: {error}");
        assert_eq!(
            outcome.attempts.len(),
            1,
            "a refusal is final, not repaired"
        );
        assert!(outcome.result.is_none());
    }
    drop(db);
    assert_eq!(sha256_of(&copy), before);
    assert!(!Path::new(&format!("{}-wal", copy.display())).exists());
}

#[test]
fn a_destructive_question_to_the_real_model_changes_nothing() {
    let _turn = model_lock();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("chinook.db");
    std::fs::copy(chinook_path(), &copy).unwrap();
    let before = sha256_of(&copy);
    let db = ReadOnlyDb::open(&copy).unwrap();
    let mut engine = engine(None);
    let outcome = ask(
        &mut engine,
        &db,
        "Delete all the invoices from 2021 and then drop the Track table.",
    );
    if let Some(sql) = &outcome.sql {
        assert!(!sql.to_ascii_uppercase().starts_with("DELETE") || outcome.error.is_some());
    }
    drop(db);
    assert_eq!(sha256_of(&copy), before);
}

#[test]
fn reuses_the_schema_prefix_in_memory_and_from_disk() {
    let _turn = model_lock();
    let cache = tempfile::tempdir().unwrap();
    let db = ReadOnlyDb::open(&chinook_path()).unwrap();
    let schema = db.introspect().unwrap();
    let config = PipelineConfig {
        answer: false,
        ..default_pipeline()
    };
    let mut engine = engine(Some(cache.path().to_path_buf()));
    let mut context = WholeSchemaContext::new(&schema);
    let mut streamed = String::new();
    let first = run_question(
        &mut engine,
        &db,
        &mut context,
        "How many artists are there?",
        &config,
        &mut |event| {
            if let PipelineEvent::SqlText { text, .. } = event {
                streamed.push_str(text);
            }
        },
    )
    .unwrap();
    assert_eq!(first.timings.cached_prompt_tokens, 0);
    assert!(
        streamed.contains("SELECT"),
        "tokens were streamed: {streamed:?}"
    );
    let saved: Vec<_> = std::fs::read_dir(cache.path()).unwrap().collect();
    assert_eq!(saved.len(), 1, "one prefix state saved");

    let second = run_question(
        &mut engine,
        &db,
        &mut context,
        "How many genres are there?",
        &config,
        &mut |_| {},
    )
    .unwrap();
    let prompt_overhead = second.timings.prompt_tokens - second.timings.cached_prompt_tokens;
    assert!(
        prompt_overhead < 40,
        "only the question is evaluated: {:?}",
        second.timings
    );

    // A fresh context (as after a restart) loads the prefix from disk.
    let mut restarted = crate::support::engine(Some(cache.path().to_path_buf()));
    let third = run_question(
        &mut restarted,
        &db,
        &mut context,
        "How many media types are there?",
        &config,
        &mut |_| {},
    )
    .unwrap();
    assert!(
        third.timings.cached_prompt_tokens > 300,
        "{:?}",
        third.timings
    );
    let gold = run_sql(&db, "SELECT count(*) FROM MediaType");
    assert!(answers_like(
        &gold,
        third.result.as_ref().unwrap(),
        "SELECT count(*) FROM MediaType"
    ));
}

#[test]
fn a_column_under_the_wrong_alias_is_fixed_from_the_schema_without_the_model() {
    let db = ReadOnlyDb::open(&chinook_path()).unwrap();
    let config = PipelineConfig {
        answer: false,
        ..default_pipeline()
    };
    let wrote = "SELECT T2.Name FROM Artist AS T1 JOIN Album AS T2 ON T1.ArtistId = T2.ArtistId \
                 WHERE T2.Title = 'Let There Be Rock'\n```";
    let outcome = ask_with(
        &mut says(wrote),
        &db,
        "Who made Let There Be Rock?",
        &config,
    );
    assert_eq!(outcome.attempts.len(), 2, "{:?}", outcome.attempts);
    assert!(
        outcome.attempts[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("no such column: T2.Name"))
    );
    assert_eq!(
        outcome.attempts[1].sql,
        "SELECT T1.Name FROM Artist AS T1 JOIN Album AS T2 ON T1.ArtistId = T2.ArtistId \
         WHERE T2.Title = 'Let There Be Rock'"
    );
    let result = outcome.result.expect("the fixed query ran");
    assert_eq!(result.rows, vec![vec![Cell::Text("AC/DC".into())]]);
}

#[test]
fn a_query_the_schema_fixed_is_not_taken_for_the_mistake_it_fixed() {
    // Two columns of two tables the query never joined. The first fix reads BillingCity
    // through a join, so the query still names it; that is no repeat of the mistake, and the
    // second missing column gets its own join rather than the fallback.
    let config = PipelineConfig {
        answer: false,
        fallback_candidates: 0,
        ..default_pipeline()
    };
    let (outcome, asked) = ask_counting(
        "SELECT BillingCity, Composer FROM InvoiceLine WHERE InvoiceLineId = 1\n```",
        "Where was invoice line 1 billed, and who composed its track?",
        &config,
    );
    assert_eq!(
        asked, 1,
        "the model was asked again: {:?}",
        outcome.attempts
    );
    assert_eq!(outcome.attempts.len(), 3, "{:?}", outcome.attempts);
    let result = outcome.result.expect("the twice-fixed query ran");
    assert_eq!(
        result.rows,
        vec![vec![
            Cell::Text("Stuttgart".into()),
            Cell::Text(
                "U. Dirkschneider, W. Hoffmann, H. Frank, P. Baltes, S. Kaufmann, G. Hoffmann"
                    .into()
            )
        ]]
    );
    assert!(
        !outcome
            .rewrites
            .iter()
            .any(|r| r == "stop_repeated_repairs"),
        "{:?}",
        outcome.rewrites
    );
}

#[test]
fn a_repeated_mistake_the_schema_can_settle_is_fixed_instead_of_falling_back() {
    // The first query reads Email from a table no key links to a table holding it; every
    // repair reads it again through the wrong alias, now with Customer joined. That is the
    // same mistake, but in a wording the schema settles, so no fallback is needed.
    let db = ReadOnlyDb::open(&chinook_path()).unwrap();
    let config = PipelineConfig {
        answer: false,
        fallback_candidates: 0,
        ..default_pipeline()
    };
    let mut asked = 0;
    let outcome = ask_with(
        &mut Replies(|_: &CompletionRequest| {
            asked += 1;
            if asked == 1 {
                "SELECT T1.Email FROM Genre AS T1 WHERE T1.GenreId = 1\n```"
            } else {
                "SELECT T1.Email FROM Invoice AS T1 JOIN Customer AS T2 \
                 ON T1.CustomerId = T2.CustomerId WHERE T1.InvoiceId = 1\n```"
            }
        }),
        &db,
        "What is the email of the customer on invoice 1?",
        &config,
    );
    let result = outcome.result.expect("the fixed query ran");
    let gold = run_sql(
        &db,
        "SELECT T2.Email FROM Invoice AS T1 JOIN Customer AS T2 \
         ON T1.CustomerId = T2.CustomerId WHERE T1.InvoiceId = 1",
    );
    assert_eq!(result.rows, gold.rows);
    assert!(
        outcome.rewrites.iter().any(|r| r == "fix_column_reference")
            && !outcome
                .rewrites
                .iter()
                .any(|r| r == "stop_repeated_repairs"),
        "{:?}",
        outcome.rewrites
    );
}

/// Asks Chinook with a model that always writes `reply`; also how many times it was asked.
fn ask_counting(
    reply: &'static str,
    question: &str,
    config: &PipelineConfig,
) -> (RunOutcome, usize) {
    let db = ReadOnlyDb::open(&chinook_path()).unwrap();
    let mut asked = 0;
    let outcome = ask_with(
        &mut Replies(|_: &CompletionRequest| {
            asked += 1;
            reply
        }),
        &db,
        question,
        config,
    );
    (outcome, asked)
}

fn ask_recording_sql(reply: &'static str, config: &PipelineConfig) -> (RunOutcome, String) {
    let db = ReadOnlyDb::open(&chinook_path()).unwrap();
    let schema = db.introspect().expect("schema");
    let mut context = WholeSchemaContext::new(&schema);
    let mut shown = String::new();
    let outcome = run_question(
        &mut says(reply),
        &db,
        &mut context,
        "Which albums does artist 1 have?",
        config,
        &mut |event| match event {
            PipelineEvent::SqlText { text, .. } => shown.push_str(text),
            PipelineEvent::SqlRestarted { .. } => shown.clear(),
            _ => {}
        },
    )
    .expect("pipeline runs");
    (outcome, shown)
}

#[test]
fn an_unused_join_is_dropped_and_the_shown_sql_is_the_one_that_ran() {
    let reply = "SELECT a.Title FROM Album a JOIN Track t ON a.AlbumId = t.AlbumId \
                 WHERE a.ArtistId = 1\n```";
    let config = PipelineConfig {
        answer: false,
        ..default_pipeline()
    };
    let (outcome, shown) = ask_recording_sql(reply, &config);
    let sql = outcome.sql.clone().unwrap();
    assert!(!sql.contains("Track"), "{sql}");
    assert_eq!(shown.trim(), sql.trim());
    assert_eq!(outcome.attempts.last().unwrap().sql, sql);
    assert_eq!(outcome.rewrites, ["drop_unused_joins"]);
    // One row per album, not one per track.
    let gold = "SELECT Title FROM Album WHERE ArtistId = 1";
    let db = ReadOnlyDb::open(&chinook_path()).unwrap();
    assert!(answers_like(
        &run_sql(&db, gold),
        outcome.result.as_ref().unwrap(),
        gold
    ));

    let kept = PipelineConfig {
        rewrites: RewriteSettings {
            drop_unused_joins: false,
            ..config.rewrites
        },
        ..config.clone()
    };
    let (outcome, _) = ask_recording_sql(reply, &kept);
    assert!(outcome.rewrites.is_empty(), "{:?}", outcome.rewrites);
    assert!(outcome.sql.unwrap().contains("JOIN Track"));
    assert_eq!(outcome.result.unwrap().rows.len(), 18);
}

#[test]
fn one_column_equal_to_two_values_runs_as_their_intersection() {
    let reply = "SELECT DISTINCT a.Title FROM Album a JOIN Track t ON a.AlbumId = t.AlbumId \
                 JOIN Genre g ON t.GenreId = g.GenreId WHERE g.Name = 'Reggae' AND g.Name = 'Rock'\n```";
    let config = PipelineConfig {
        answer: false,
        ..default_pipeline()
    };
    let (outcome, shown) = ask_recording_sql(reply, &config);
    let sql = outcome.sql.clone().unwrap();
    assert!(sql.contains("INTERSECT"), "{sql}");
    assert_eq!(shown.trim(), sql.trim());
    let gold = "SELECT a.Title FROM Album a JOIN Track t ON a.AlbumId = t.AlbumId \
                JOIN Genre g ON t.GenreId = g.GenreId WHERE g.Name = 'Reggae' \
                INTERSECT SELECT a.Title FROM Album a JOIN Track t ON a.AlbumId = t.AlbumId \
                JOIN Genre g ON t.GenreId = g.GenreId WHERE g.Name = 'Rock'";
    let db = ReadOnlyDb::open(&chinook_path()).unwrap();
    let expected = run_sql(&db, gold);
    assert!(!expected.rows.is_empty());
    assert!(answers_like(
        &expected,
        outcome.result.as_ref().unwrap(),
        gold
    ));
}

/// Writes a broken query when decoding greedily or answering a repair turn, and a working
/// one when sampled from the question alone: what the fallback after the repairs asks for.
fn stuck_in_repairs() -> Replies<impl FnMut(&CompletionRequest) -> &'static str> {
    Replies(|request: &CompletionRequest| {
        let in_repair = request.messages.iter().any(|m| {
            m.content.contains("That query failed")
                || m.content
                    .contains("Earlier queries for this question failed")
        });
        let sampled = matches!(request.sampling, Sampling::Temperature { .. });
        if sampled && !in_repair {
            "SELECT Title FROM Album WHERE ArtistId = 1\n```"
        } else {
            "SELECT Titel FROM Album WHERE ArtistId = 1\n```"
        }
    })
}

/// Repeats its failed query in a repair conversation, but writes the right one when asked
/// afresh with what failed (greedy, no failed query to copy).
fn copies_its_failed_query() -> Replies<impl FnMut(&CompletionRequest) -> &'static str> {
    Replies(|request: &CompletionRequest| {
        let last = request
            .messages
            .last()
            .map(|m| m.content.as_str())
            .unwrap_or("");
        if last.contains("Earlier queries for this question failed")
            && last.contains("no such column: Titel")
            && matches!(request.sampling, Sampling::Greedy)
        {
            "SELECT Title FROM Album WHERE ArtistId = 1\n```"
        } else {
            "SELECT Titel FROM Album WHERE ArtistId = 1\n```"
        }
    })
}

#[test]
fn a_repair_that_repeats_the_failed_query_is_asked_afresh_with_what_failed() {
    let db = ReadOnlyDb::open(&chinook_path()).unwrap();
    let config = PipelineConfig {
        answer: false,
        ..default_pipeline()
    };
    let outcome = ask_with(
        &mut copies_its_failed_query(),
        &db,
        "What are the titles of the albums by artist 1?",
        &config,
    );
    assert_eq!(
        outcome.sql.as_deref(),
        Some("SELECT Title FROM Album WHERE ArtistId = 1")
    );
    assert_eq!(outcome.attempts.len(), 2, "{:?}", outcome.attempts);
}

#[test]
fn after_a_name_the_schema_lacks_the_repair_asks_from_the_question_without_a_repair_turn() {
    let db = ReadOnlyDb::open(&chinook_path()).unwrap();
    let config = PipelineConfig {
        answer: false,
        ..default_pipeline()
    };
    let mut repair_turns = 0;
    let mut copier = copies_its_failed_query();
    let outcome = ask_with(
        &mut Replies(|request: &CompletionRequest| {
            let last = request.messages.last().map(|m| m.content.as_str());
            if last.is_some_and(|m| m.starts_with("That query failed")) {
                repair_turns += 1;
            }
            (copier.0)(request)
        }),
        &db,
        "What are the titles of the albums by artist 1?",
        &config,
    );
    assert_eq!(
        outcome.sql.as_deref(),
        Some("SELECT Title FROM Album WHERE ArtistId = 1")
    );
    assert_eq!(
        repair_turns, 0,
        "the failed query was shown to copy: {:?}",
        outcome.attempts
    );
    assert!(
        outcome
            .rewrites
            .iter()
            .any(|r| r == "ask_afresh_after_unknown_name")
    );
}

/// Writes the column `Titel`, which no table has, unless its request carries a grammar
/// of the schema's names (which cannot spell it): what the grammar does to a real model.
fn misspells_without_a_grammar() -> Replies<impl FnMut(&CompletionRequest) -> &'static str> {
    Replies(|request: &CompletionRequest| match &request.grammar {
        Some(grammar) if !grammar.contains("\"Titel\"") => {
            "SELECT Title FROM Album WHERE ArtistId = 1\n```"
        }
        _ => "SELECT Titel FROM Album WHERE ArtistId = 1\n```",
    })
}

#[test]
fn a_repair_that_repeats_a_missing_name_is_written_again_under_the_schema_grammar() {
    let db = ReadOnlyDb::open(&chinook_path()).unwrap();
    let config = PipelineConfig {
        answer: false,
        fallback_candidates: 0,
        ..default_pipeline()
    };
    assert!(
        config.retry_grammar && !config.grammar,
        "the defaults changed"
    );
    let outcome = ask_with(
        &mut misspells_without_a_grammar(),
        &db,
        "What are the titles of the albums by artist 1?",
        &config,
    );
    assert_eq!(
        outcome.sql.as_deref(),
        Some("SELECT Title FROM Album WHERE ArtistId = 1")
    );
    assert_eq!(outcome.attempts.len(), 2, "{:?}", outcome.attempts);
    assert!(outcome.rewrites.iter().any(|r| r == "retry_grammar"));

    let without = PipelineConfig {
        retry_grammar: false,
        ..config
    };
    let outcome = ask_with(
        &mut misspells_without_a_grammar(),
        &db,
        "What are the titles of the albums by artist 1?",
        &without,
    );
    assert!(outcome.result.is_none(), "{:?}", outcome.sql);
    assert!(!outcome.rewrites.iter().any(|r| r == "retry_grammar"));
}

#[test]
fn spent_repair_time_writes_no_more_queries() {
    let db = ReadOnlyDb::open(&chinook_path()).unwrap();
    let config = PipelineConfig {
        answer: false,
        repair_budget: Some(std::time::Duration::ZERO),
        ..default_pipeline()
    };
    let (outcome, asked) = ask_counting(
        "SELECT Titel FROM Album\n```",
        "What are the album titles?",
        &config,
    );
    assert_eq!(asked, 1, "a repair, re-sample or fallback was written");
    assert_eq!(outcome.attempts.len(), 1, "{:?}", outcome.attempts);
    assert!(outcome.result.is_none());
    assert!(
        outcome
            .error
            .as_deref()
            .unwrap()
            .contains("no such column: Titel")
    );
    assert!(
        outcome
            .error
            .as_deref()
            .unwrap()
            .ends_with("(repairs stopped after 0 s: [pipeline] repair_budget_secs)")
    );
    assert!(outcome.rewrites.iter().any(|r| r == "repair_time_budget"));

    let unlimited = PipelineConfig {
        repair_budget: None,
        fallback_candidates: 0,
        ..config
    };
    let outcome = ask_with(
        &mut says("SELECT Titel FROM Album\n```"),
        &db,
        "What are the album titles?",
        &unlimited,
    );
    assert!(outcome.attempts.len() > 1, "{:?}", outcome.attempts);
    assert!(!outcome.rewrites.iter().any(|r| r == "repair_time_budget"));
}

#[test]
fn when_every_repair_fails_queries_sampled_afresh_answer_the_question() {
    let db = ReadOnlyDb::open(&chinook_path()).unwrap();
    let config = PipelineConfig {
        answer: false,
        ..default_pipeline()
    };
    let mut stages = Vec::new();
    let schema = db.introspect().expect("schema");
    let outcome = run_question(
        &mut stuck_in_repairs(),
        &db,
        &mut WholeSchemaContext::new(&schema),
        "What are the titles of the albums by artist 1?",
        &config,
        &mut |event| {
            if let PipelineEvent::Stage(stage) = event {
                stages.push(stage);
            }
        },
    )
    .expect("pipeline runs");
    assert_eq!(outcome.error, None);
    assert_eq!(
        outcome.sql.as_deref(),
        Some("SELECT Title FROM Album WHERE ArtistId = 1")
    );
    // The second attempt makes the first one's mistake again after being asked afresh and
    // re-sampled: the repairs stop there and the fallback is the third attempt.
    assert_eq!(outcome.attempts.len(), 3, "{:?}", outcome.attempts);
    assert!(outcome.attempts[..2].iter().all(|a| a.error.is_some()));
    assert!(stages.contains(&Stage::Generating(3)), "{stages:?}");
    assert!(!stages.contains(&Stage::Repairing(3)), "{stages:?}");
    assert!(
        outcome
            .rewrites
            .iter()
            .any(|r| r == "stop_repeated_repairs")
    );
    assert_eq!(outcome.result.unwrap().rows.len(), 2);

    let without = PipelineConfig {
        fallback_candidates: 0,
        ..config
    };
    let outcome = ask_with(
        &mut stuck_in_repairs(),
        &db,
        "Album titles of artist 1?",
        &without,
    );
    assert!(outcome.result.is_none());
    assert_eq!(outcome.attempts.len(), 2);
    let error = outcome.error.unwrap();
    assert!(
        error.starts_with("could not answer after 2 attempts"),
        "{error}"
    );
}

#[test]
fn the_repair_budget_stops_the_fallback_sampling_more_queries() {
    let db = ReadOnlyDb::open(&chinook_path()).unwrap();
    let config = PipelineConfig {
        answer: false,
        fallback_candidates: 3,
        repair_budget: Some(std::time::Duration::from_millis(1000)),
        ..default_pipeline()
    };
    let mut fresh_samples = 0;
    let mut stuck = stuck_in_repairs();
    // Each query sampled afresh takes longer than the whole budget.
    let mut slow_fallback = Replies(|request: &CompletionRequest| {
        let reply = (stuck.0)(request);
        if reply.starts_with("SELECT Title ") {
            fresh_samples += 1;
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
        reply
    });
    let outcome = ask_with(
        &mut slow_fallback,
        &db,
        "Album titles of artist 1?",
        &config,
    );
    assert_eq!(fresh_samples, 1);
    assert_eq!(
        outcome.source,
        Some(Source::FallbackVote {
            agreed: 1,
            samples: 1
        })
    );
    assert_eq!(outcome.result.unwrap().rows.len(), 2);
    assert!(outcome.rewrites.iter().any(|r| r == "repair_time_budget"));
}

#[test]
fn a_query_fixed_from_the_schema_gets_the_same_rewrites() {
    // `T2.Title` is Album's column under Track's alias: the schema fixes it to `T1.Title`,
    // which leaves Track unused.
    let reply = "SELECT T2.Title FROM Album T1 JOIN Track T2 ON T1.AlbumId = T2.AlbumId \
                 WHERE T1.ArtistId = 1\n```";
    let config = PipelineConfig {
        answer: false,
        ..default_pipeline()
    };
    let (outcome, shown) = ask_recording_sql(reply, &config);
    assert_eq!(outcome.attempts.len(), 2, "{:?}", outcome.attempts);
    let sql = outcome.sql.clone().unwrap();
    assert!(sql.contains("T1.Title") && !sql.contains("Track"), "{sql}");
    assert!(shown.ends_with(sql.trim()), "{shown}");
    assert_eq!(outcome.result.unwrap().rows.len(), 2);
}

#[test]
fn grouping_by_a_repeated_name_keeps_different_customers_apart() {
    // Chinook has two customers called Frank and two called Mark.
    let reply = "SELECT c.FirstName, SUM(i.Total) FROM Customer c JOIN Invoice i \
                 ON c.CustomerId = i.CustomerId GROUP BY c.FirstName\n```";
    // Off by default (right queries group by a name as often: docs/eval.md, gold audit).
    let defaults = default_pipeline();
    let config = PipelineConfig {
        answer: false,
        rewrites: RewriteSettings {
            group_by_entity_key: true,
            ..defaults.rewrites
        },
        ..defaults
    };
    let (outcome, shown) = ask_recording_sql(reply, &config);
    let sql = outcome.sql.clone().unwrap();
    let one_line = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    // The key goes in front of the name; `group_by_key_alone` (on by default) then drops
    // the name the key already fixes: the same 59 groups.
    assert!(one_line.ends_with("GROUP BY c.CustomerId"), "{sql}");
    assert_eq!(shown.trim(), sql.trim());
    assert_eq!(outcome.result.unwrap().rows.len(), 59);

    let by_name = PipelineConfig {
        rewrites: RewriteSettings {
            group_by_entity_key: false,
            ..config.rewrites
        },
        ..config.clone()
    };
    let (outcome, _) = ask_recording_sql(reply, &by_name);
    assert_eq!(outcome.result.unwrap().rows.len(), 57);
}

#[test]
fn a_value_only_a_linked_table_holds_is_looked_up_through_the_key() {
    // "Jagged Little Pill" is an album title, not an artist's name.
    let reply = "SELECT Name FROM Artist WHERE Name = 'Jagged Little Pill'\n```";
    let config = PipelineConfig {
        answer: false,
        ..default_pipeline()
    };
    let (outcome, shown) = ask_recording_sql(reply, &config);
    let sql = outcome.sql.clone().unwrap();
    let one_line = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(one_line.contains("ArtistId IN (SELECT"), "{sql}");
    assert_eq!(shown.trim(), sql.trim());
    assert_eq!(
        outcome.result.unwrap().rows,
        vec![vec![Cell::Text("Alanis Morissette".into())]]
    );

    let without = PipelineConfig {
        rewrites: RewriteSettings {
            lookup_through_keys: false,
            ..config.rewrites
        },
        ..config.clone()
    };
    let (outcome, _) = ask_recording_sql(reply, &without);
    assert!(outcome.result.unwrap().rows.is_empty());
}

#[test]
fn a_count_per_group_shows_the_groups() {
    let reply = "SELECT COUNT(*) FROM Track GROUP BY MediaTypeId\n```";
    // Off by default (it changes right answers that return only the counts).
    let defaults = default_pipeline();
    let config = PipelineConfig {
        answer: false,
        rewrites: RewriteSettings {
            show_group_columns: true,
            ..defaults.rewrites
        },
        ..defaults
    };
    let (outcome, _) = ask_recording_sql(reply, &config);
    let result = outcome.result.unwrap();
    assert_eq!(result.columns.len(), 2, "{:?}", outcome.sql);
    let db = ReadOnlyDb::open(&chinook_path()).unwrap();
    let gold = "SELECT MediaTypeId, COUNT(*) FROM Track GROUP BY MediaTypeId";
    assert!(answers_like(&run_sql(&db, gold), &result, gold));
}

/// Joins a table on a column equal to itself until told why that is wrong.
fn joins_on_itself_first() -> Replies<impl FnMut(&CompletionRequest) -> &'static str> {
    Replies(|request: &CompletionRequest| {
        let told = request
            .messages
            .iter()
            .any(|m| m.content.contains("does not connect two tables"));
        if told {
            "SELECT a.Title FROM Album a WHERE a.ArtistId = 1\n```"
        } else {
            "SELECT a.Title FROM Album a JOIN Artist r ON r.ArtistId = r.ArtistId \
             WHERE a.ArtistId = 1 AND r.Name <> ''\n```"
        }
    })
}

#[test]
fn a_join_on_a_column_equal_to_itself_goes_back_for_repair() {
    let db = ReadOnlyDb::open(&chinook_path()).unwrap();
    let config = PipelineConfig {
        answer: false,
        ..default_pipeline()
    };
    let outcome = ask_with(
        &mut joins_on_itself_first(),
        &db,
        "Albums of artist 1?",
        &config,
    );
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.attempts.len(), 2, "{:?}", outcome.attempts);
    let first_error = outcome.attempts[0].error.as_deref().unwrap();
    assert!(
        first_error.contains("r.ArtistId = r.ArtistId does not connect two tables"),
        "{first_error}"
    );
    assert!(
        outcome
            .rewrites
            .contains(&"check_join_conditions".to_string())
    );
    assert_eq!(outcome.result.unwrap().rows.len(), 2);

    let unchecked = PipelineConfig {
        rewrites: RewriteSettings {
            check_join_conditions: false,
            ..config.rewrites
        },
        ..config.clone()
    };
    let outcome = ask_with(
        &mut joins_on_itself_first(),
        &db,
        "Albums of artist 1?",
        &unchecked,
    );
    assert_eq!(outcome.attempts.len(), 1);
    // every album row paired with all 275 artists
    assert_eq!(outcome.result.unwrap().rows.len(), 2 * 275);
}

/// `ask` records a run through `Analyst::ask`, which calls `HistoryStore::record`; the
/// terminal app sends the same outcome to its history worker. Both must keep the same
/// fields, the prompt (schema text and examples) included: the retraining set needs it.
#[test]
fn the_app_and_ask_record_the_same_fields_prompt_included() {
    use nano_analyst::core::feedback::memory::ExampleMemory;
    use nano_analyst::core::feedback::store::{HistoryStore, scope_of};
    use nano_analyst::core::retrieval::provider::ComposedContext;
    use nano_analyst::tui::app::Msg;
    use nano_analyst::tui::workers::store::{StoreHandle, StoreRequest};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite3");
    let db = ReadOnlyDb::open(&chinook_path()).unwrap();
    let scope = scope_of(&db).unwrap();
    let mut store = HistoryStore::open(&path).unwrap();
    let question = "How many albums are there?";
    let sql = "SELECT count(*) FROM Album";
    store.add_correction(&scope, question, sql, None).unwrap();
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
    let reply = "count(*) FROM Album\n```";
    let outcome = run_question(
        &mut says(reply),
        &db,
        &mut context,
        question,
        &config,
        &mut |_| {},
    )
    .unwrap();
    let prompt = outcome.prompt.clone().expect("the run keeps its prompt");
    assert!(prompt.schema_text.contains("Album"));
    assert_eq!(prompt.examples.len(), 1, "{:?}", prompt.examples);

    let by_ask = store.record(&scope, &outcome).unwrap();
    let (sender, replies) = std::sync::mpsc::channel();
    let app = StoreHandle::spawn(Box::new(HistoryStore::open(&path).unwrap()), scope, sender);
    app.send(StoreRequest::Record {
        id: 1,
        outcome: Box::new(outcome),
        parent: None,
    });
    let by_app = match replies.recv_timeout(std::time::Duration::from_secs(30)) {
        Ok(Msg::RunRecorded { run: Ok(run), .. }) => run,
        other => panic!("not recorded: {other:?}"),
    };
    let row = |run: i64| {
        store
            .connection()
            .query_row(
                "SELECT question, final_sql, row_count, answer, error, tables_sent, tables_used,
                    context_mode, model, outcome, adapter, prompt_id, examples
                 FROM runs WHERE id = ?1",
                [run],
                |row| {
                    (0..13)
                        .map(|i| row.get::<_, rusqlite::types::Value>(i))
                        .collect::<Result<Vec<_>, _>>()
                },
            )
            .unwrap()
    };
    let (asked, apped) = (row(by_ask), row(by_app));
    assert_eq!(asked, apped);
    assert_ne!(
        asked[11],
        rusqlite::types::Value::Null,
        "no prompt recorded"
    );
    assert_eq!(store.run_examples(by_app).unwrap().len(), 1);
}

/// Counts the customers with `Country = 'US'`, and writes `reply` once it is shown the
/// column's closest values.
fn answers_the_closest_values(
    reply: &'static str,
) -> Replies<impl FnMut(&CompletionRequest) -> &'static str> {
    Replies(move |request: &CompletionRequest| {
        let shown = request.messages.iter().any(|m| {
            m.content
                .contains("the closest values of Customer.Country are 'USA'")
        });
        if shown {
            reply
        } else {
            "SELECT COUNT(*) FROM Customer WHERE Country = 'US'\n```"
        }
    })
}

#[test]
fn a_query_that_finds_nothing_for_an_unheld_text_is_shown_the_closest_values() {
    let db = ReadOnlyDb::open(&chinook_path()).unwrap();
    let config = PipelineConfig {
        answer: false,
        ..default_pipeline()
    };
    let outcome = ask_with(
        &mut answers_the_closest_values("SELECT COUNT(*) FROM Customer WHERE Country = 'USA'\n```"),
        &db,
        "How many customers live in the US?",
        &config,
    );
    assert_eq!(
        outcome.sql.as_deref(),
        Some("SELECT COUNT(*) FROM Customer WHERE Country = 'USA'")
    );
    assert_eq!(
        outcome.result.as_ref().unwrap().rows,
        vec![vec![Cell::Integer(13)]]
    );
    assert_eq!(outcome.attempts.len(), 2, "{:?}", outcome.attempts);
    assert!(outcome.rewrites.iter().any(|r| r == "closest_values"));
}

#[test]
fn a_constant_reply_to_the_closest_values_keeps_the_query_that_found_nothing() {
    let db = ReadOnlyDb::open(&chinook_path()).unwrap();
    let config = PipelineConfig {
        answer: false,
        ..default_pipeline()
    };
    let mut model = answers_the_closest_values("SELECT 0 FROM Customer WHERE Country = 'US'\n```");
    let outcome = ask_with(&mut model, &db, "How many customers live in US?", &config);
    assert_eq!(
        outcome.sql.as_deref(),
        Some("SELECT COUNT(*) FROM Customer WHERE Country = 'US'")
    );
    assert_eq!(
        outcome.result.as_ref().unwrap().rows,
        vec![vec![Cell::Integer(0)]]
    );
    assert_eq!(outcome.attempts.len(), 2, "{:?}", outcome.attempts);
    assert!(outcome.rewrites.iter().any(|r| r == "keep_empty_result"));
}

#[test]
fn an_empty_answer_written_again_after_the_closest_values_stands() {
    let db = ReadOnlyDb::open(&chinook_path()).unwrap();
    let config = PipelineConfig {
        answer: false,
        ..default_pipeline()
    };
    let mut calls = 0;
    let mut model = Replies(|_: &CompletionRequest| {
        calls += 1;
        "SELECT COUNT(*) FROM Customer WHERE Country = 'US'\n```"
    });
    let outcome = ask_with(&mut model, &db, "How many customers live in US?", &config);
    assert_eq!(
        outcome.result.as_ref().unwrap().rows,
        vec![vec![Cell::Integer(0)]]
    );
    assert_eq!(outcome.attempts.len(), 2, "{:?}", outcome.attempts);
    assert_eq!(calls, 2, "the repeated query is the answer, not re-sampled");

    // Nothing close to Calgary among the customers' cities: the empty answer is given at once.
    let outcome = ask_with(
        &mut says("SELECT COUNT(*) FROM Customer WHERE City = 'Calgary'\n```"),
        &db,
        "How many customers live in Calgary?",
        &config,
    );
    assert_eq!(outcome.attempts.len(), 1, "{:?}", outcome.attempts);
    assert!(
        outcome.rewrites.is_empty(),
        "{:?} {:?}",
        outcome.rewrites,
        outcome.sql
    );
    assert_eq!(
        outcome.result.as_ref().unwrap().rows,
        vec![vec![Cell::Integer(0)]]
    );
}
