//! Whether an answer can be trusted: refusals of requests to change data, the sentence
//! checked against the rows, the source and confidence of each run, the guess marking of
//! a fallback answer, and (ignored, real model) the grounding figure on the 84 Chinook pairs.

use std::io::BufRead;
use std::path::Path;

use nano_analyst::core::db::exec::ReadOnlyDb;
use nano_analyst::core::model::{
    Completion, CompletionRequest, LanguageModel, LlmError, Sampling, StopReason,
};
use nano_analyst::core::pipeline::grounding::{template_answer, ungrounded_claims};
use nano_analyst::core::pipeline::outcome::{ConfidenceLevel, PipelineEvent, RunOutcome, Source};
use nano_analyst::core::pipeline::{PipelineConfig, run_question};
use nano_analyst::core::retrieval::provider::WholeSchemaContext;

use crate::support::{answers_like, chinook_path, default_pipeline, engine, model_lock, run_sql};

/// A model whose replies a closure writes: `(text, stop reason)` for each request.
struct Scripted<F: FnMut(&CompletionRequest) -> (String, StopReason)> {
    reply: F,
    calls: usize,
}

impl<F: FnMut(&CompletionRequest) -> (String, StopReason)> LanguageModel for Scripted<F> {
    fn complete(
        &mut self,
        request: &CompletionRequest,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion, LlmError> {
        self.calls += 1;
        let (text, stop_reason) = (self.reply)(request);
        on_text(&text);
        Ok(Completion {
            text,
            prompt_tokens: 0,
            cached_prompt_tokens: 0,
            generated_tokens: 0,
            time_to_first_token: Default::default(),
            elapsed: Default::default(),
            stop_reason,
            mean_logprob: None,
        })
    }
    fn model_id(&self) -> String {
        "scripted".into()
    }
    fn count_tokens(&self, text: &str) -> usize {
        text.len() / 4
    }
}

fn scripted<F: FnMut(&CompletionRequest) -> (String, StopReason)>(reply: F) -> Scripted<F> {
    Scripted { reply, calls: 0 }
}

fn is_sql_request(request: &CompletionRequest) -> bool {
    !request.assistant_prefix.is_empty()
}

fn ask(
    model: &mut dyn LanguageModel,
    question: &str,
    config: &PipelineConfig,
    on_event: &mut dyn FnMut(PipelineEvent<'_>),
) -> RunOutcome {
    let db = ReadOnlyDb::open(&chinook_path()).unwrap();
    let schema = db.introspect().expect("schema");
    let mut context = WholeSchemaContext::new(&schema);
    run_question(model, &db, &mut context, question, config, on_event).expect("pipeline runs")
}

#[test]
fn requests_to_change_data_are_refused_before_generation() {
    for (question, asks) in [
        ("Delete all customers from Canada", "delete rows"),
        ("Please update every track's price to 0.99", "change rows"),
        ("Add a customer named Ann Smith from Oslo", "add rows"),
        ("drop table Invoice", "change the database"),
    ] {
        let mut model = scripted(|_| panic!("a refused question reached the model"));
        let outcome = ask(&mut model, question, &default_pipeline(), &mut |_| {});
        assert_eq!(
            outcome.error.as_deref(),
            Some(format!("nano-analyst only reads; this question asks to {asks}").as_str()),
            "{question}"
        );
        assert!(outcome.sql.is_none() && outcome.attempts.is_empty());
    }
}

#[test]
fn questions_about_changes_are_answered() {
    for question in [
        "Which customers were updated last?",
        "tracks added in 2013",
        "List the invoices deleted by mistake",
    ] {
        let mut model = scripted(|request| {
            if is_sql_request(request) {
                ("count(*) AS n FROM Track".into(), StopReason::StopString)
            } else {
                ("There are 3503 tracks.".into(), StopReason::EndOfText)
            }
        });
        let outcome = ask(&mut model, question, &default_pipeline(), &mut |_| {});
        assert!(outcome.succeeded(), "{question}: {:?}", outcome.error);
        assert_eq!(outcome.source, Some(Source::FirstAttempt));
        let confidence = outcome.confidence.expect("a confidence");
        assert_eq!(confidence.level, ConfidenceLevel::High, "{confidence:?}");
    }
}

#[test]
fn the_query_has_one_space_after_the_opening() {
    // The model's first token after the forced "SELECT " starts with a space.
    let mut model = scripted(|request| {
        if is_sql_request(request) {
            (
                " Name FROM Artist WHERE ArtistId = 1".into(),
                StopReason::StopString,
            )
        } else {
            ("The artist is AC/DC.".into(), StopReason::EndOfText)
        }
    });
    let mut streamed = String::new();
    let outcome = ask(
        &mut model,
        "Who is artist 1?",
        &default_pipeline(),
        &mut |event| {
            if let PipelineEvent::SqlText { text, .. } = event {
                streamed.push_str(text);
            }
        },
    );
    assert_eq!(
        outcome.sql.as_deref(),
        Some("SELECT Name FROM Artist WHERE ArtistId = 1")
    );
    assert_eq!(streamed, "SELECT Name FROM Artist WHERE ArtistId = 1");
}

#[test]
fn a_sentence_the_rows_contradict_is_replaced_by_the_result_stated_plainly() {
    let question = "How many customers are there in each country?";
    let mut model = scripted(|request| {
        if is_sql_request(request) {
            (
                "Country, count(*) AS customers FROM Customer GROUP BY Country".into(),
                StopReason::StopString,
            )
        } else {
            (
                "There are 24 customers in total across 18 countries.".into(),
                StopReason::EndOfText,
            )
        }
    });
    let outcome = ask(&mut model, question, &default_pipeline(), &mut |_| {});
    // The first sentence, the retry, then the template.
    assert_eq!(model.calls, 3);
    assert_eq!(
        outcome.answer.as_deref(),
        Some("24 rows: Country, customers")
    );
    let confidence = outcome.confidence.expect("a confidence");
    assert_eq!(confidence.level, ConfidenceLevel::Medium);
    assert!(
        confidence.reasons[0].contains("stated values the rows do not hold"),
        "{confidence:?}"
    );
}

#[test]
fn a_grounded_retry_is_kept_and_a_cut_answer_ends_with_an_ellipsis() {
    let mut answers = vec![
        (
            "There are 347 albums, more than 34".to_string(),
            StopReason::MaxTokens,
        ),
        ("There are 350 albums.".to_string(), StopReason::EndOfText),
    ];
    let mut model = scripted(move |request| {
        if is_sql_request(request) {
            (
                "count(*) AS albums FROM Album".into(),
                StopReason::StopString,
            )
        } else {
            answers.pop().expect("at most two sentences")
        }
    });
    let outcome = ask(
        &mut model,
        "How many albums are there?",
        &default_pipeline(),
        &mut |_| {},
    );
    assert_eq!(
        outcome.answer.as_deref(),
        Some("There are 347 albums, more than…")
    );
}

#[test]
fn a_fallback_answer_is_marked_as_a_guess() {
    let config = default_pipeline();
    let samples = config.fallback_candidates;
    assert!(samples > 1, "the default config samples a fallback");
    let mut model = scripted(|request| match request.sampling {
        // Only the fallback's samples (seeded 104729 * k) write a query that runs.
        Sampling::Temperature { seed, .. } if seed % 104_729 == 0 => (
            "count(*) AS albums FROM Album".into(),
            StopReason::StopString,
        ),
        _ if is_sql_request(request) => (
            format!("no_such_function({})", request.messages.len()),
            StopReason::StopString,
        ),
        _ => ("There are 347 albums.".into(), StopReason::EndOfText),
    });
    let outcome = ask(
        &mut model,
        "How many albums are there?",
        &config,
        &mut |_| {},
    );
    assert!(outcome.succeeded(), "{:?}", outcome.error);
    assert_eq!(
        outcome.source,
        Some(Source::FallbackVote {
            agreed: samples,
            samples
        })
    );
    assert_eq!(
        outcome.answer.as_deref(),
        Some(
            format!("Guess ({samples} of {samples} samples agreed): There are 347 albums.")
                .as_str()
        )
    );
    assert_eq!(
        outcome.confidence.map(|c| c.level),
        Some(ConfidenceLevel::Low)
    );
}

/// One of the 84 Chinook pairs.
#[derive(serde::Deserialize)]
struct Pair {
    question: String,
    query: String,
}

/// The measure: on the 84 Chinook pairs with the default settings, how many
/// answered runs have a sentence that states only what the rows hold, how many of the model's
/// first sentences already did, and how many needed the retry or the template. Minutes.
/// `cargo test --test tests trust::grounding_on_the_chinook_pairs -- --ignored --nocapture`
#[test]
#[ignore]
fn grounding_on_the_chinook_pairs() {
    let _turn = model_lock();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/chinook/spider_train_pairs.jsonl");
    let file = std::fs::File::open(&path).expect("the Chinook pairs");
    let pairs: Vec<Pair> = std::io::BufReader::new(file)
        .lines()
        .map(|line| serde_json::from_str(&line.unwrap()).unwrap())
        .collect();
    let db = ReadOnlyDb::open(&chinook_path()).unwrap();
    let schema = db.introspect().expect("schema");
    let config = default_pipeline();
    let mut engine = engine(None);
    let mut tally = Tally::default();
    for pair in &pairs {
        let mut context = WholeSchemaContext::new(&schema);
        let mut first = String::new();
        let outcome = run_question(
            &mut engine,
            &db,
            &mut context,
            &pair.question,
            &config,
            &mut |e| {
                if let PipelineEvent::AnswerText(text) = e {
                    first.push_str(text);
                }
            },
        )
        .expect("pipeline runs");
        let gold = run_sql(&db, &pair.query);
        tally.add(pair, &outcome, first.trim(), &gold, config.answer_rows);
    }
    tally.report(pairs.len());
    assert_eq!(
        tally.ungrounded, 0,
        "every shown sentence states only what its rows hold"
    );
}

#[derive(Default)]
struct Tally {
    answered: usize,
    rows_right: usize,
    grounded: usize,
    ungrounded: usize,
    first_grounded: usize,
    retried: usize,
    templated: usize,
    right_sentences: usize,
    single: usize,
    single_first_grounded: usize,
    by_confidence: [(usize, usize); 3],
}

impl Tally {
    fn add(
        &mut self,
        pair: &Pair,
        outcome: &RunOutcome,
        first: &str,
        gold: &nano_analyst::core::db::exec::QueryResult,
        shown: usize,
    ) {
        let (Some(result), Some(answer)) = (&outcome.result, &outcome.answer) else {
            return;
        };
        self.answered += 1;
        let right = answers_like(gold, result, &pair.query);
        self.rows_right += usize::from(right);
        let answer = answer
            .split_once("samples agreed): ")
            .map_or(answer.as_str(), |(_, rest)| rest);
        let claims = ungrounded_claims(answer, &pair.question, result, shown);
        if claims.is_empty() {
            self.grounded += 1;
            self.right_sentences += usize::from(right);
        } else {
            self.ungrounded += 1;
            println!("UNGROUNDED {:?}: {answer:?} {claims:?}", pair.question);
        }
        let first_ok = ungrounded_claims(first, &pair.question, result, shown).is_empty();
        self.first_grounded += usize::from(first_ok);
        if answer == template_answer(result) && !first_ok {
            self.templated += 1;
            println!("TEMPLATE {:?}: first {first:?}", pair.question);
        } else if !first_ok {
            self.retried += 1;
            println!(
                "RETRIED {:?}: first {first:?} then {answer:?}",
                pair.question
            );
        }
        if result.columns.len() == 1 && result.rows.len() == 1 {
            self.single += 1;
            self.single_first_grounded += usize::from(first_ok);
        }
        if let Some(confidence) = &outcome.confidence {
            let slot = &mut self.by_confidence[confidence.level as usize];
            slot.0 += 1;
            slot.1 += usize::from(right);
        }
    }

    fn report(&self, pairs: usize) {
        println!(
            "pairs {pairs}; answered {}; rows right {}; shown sentences grounded {}/{}; \
             right sentences (grounded, rows right) {}/{}; model's first sentence grounded {}/{}; \
             fixed by the retry {}; replaced by the template {}; single values: model's first \
             sentence grounded {}/{} (the template always is)",
            self.answered,
            self.rows_right,
            self.grounded,
            self.answered,
            self.right_sentences,
            self.rows_right,
            self.first_grounded,
            self.answered,
            self.retried,
            self.templated,
            self.single_first_grounded,
            self.single,
        );
        for (level, (runs, right)) in ["low", "medium", "high"].iter().zip(self.by_confidence) {
            println!("confidence {level}: {runs} runs, rows right {right}");
        }
    }
}

/// Captures what the pipeline logs while `run` runs.
fn logged(run: impl FnOnce()) -> String {
    use std::sync::{Arc, Mutex};
    #[derive(Clone)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Shared(Arc::new(Mutex::new(Vec::new())));
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    tracing::subscriber::with_default(subscriber, run);
    let bytes = buffer.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn the_log_holds_each_question_its_attempts_and_timings() {
    let log = logged(|| {
        let mut model = scripted(|request| {
            if !is_sql_request(request) {
                ("There are 347 albums.".into(), StopReason::EndOfText)
            } else if request
                .messages
                .last()
                .is_some_and(|m| !m.content.contains("failed"))
            {
                ("Titel FROM Album".into(), StopReason::StopString)
            } else {
                ("count(*) FROM Album".into(), StopReason::StopString)
            }
        });
        ask(
            &mut model,
            "How many albums are there?",
            &default_pipeline(),
            &mut |_| {},
        );
    });
    for needle in [
        "question: context retrieved",
        "How many albums are there?",
        "attempt failed",
        "no such column: Titel",
        "attempt ran",
        "answered",
        "total_ms=",
        "confidence=",
    ] {
        assert!(log.contains(needle), "{needle} not in the log:\n{log}");
    }
}

mod cli {
    use crate::feedback::{json_lines, nano, outcome};
    use crate::support::chinook_path;
    use nano_analyst::core::feedback::store::HistoryStore;

    fn stderr(output: &std::process::Output) -> String {
        String::from_utf8_lossy(&output.stderr)
            .trim_end()
            .to_string()
    }

    fn stdout(output: &std::process::Output) -> String {
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    #[test]
    fn a_missing_config_named_with_the_flag_is_a_one_line_error() {
        let data = tempfile::tempdir().unwrap();
        let missing = data.path().join("missing.toml");
        let output = nano(
            data.path(),
            &["--config", missing.to_str().unwrap(), "paths"],
        );
        assert!(!output.status.success());
        let error = stderr(&output);
        assert_eq!(error.lines().count(), 1, "{error}");
        assert!(
            error.contains(&format!(
                "config file '{}' does not exist",
                missing.display()
            )),
            "{error}"
        );
    }

    #[test]
    fn paths_lists_each_place_and_whether_it_exists() {
        let data = tempfile::tempdir().unwrap();
        let output = nano(data.path(), &["paths"]);
        assert!(output.status.success(), "{}", stderr(&output));
        let text = stdout(&output);
        let config = data.path().join("no-config.toml");
        assert!(
            text.contains(&format!(
                "config file  {}  (missing: the built-in defaults apply)",
                config.display()
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("data dir     {}  (exists)", data.path().display())),
            "{text}"
        );
        for name in ["log file", "model dir", "model ", "history"] {
            assert!(text.lines().any(|l| l.starts_with(name)), "{name}: {text}");
        }
    }

    #[test]
    fn completions_are_printed_for_bash_zsh_and_fish() {
        let data = tempfile::tempdir().unwrap();
        for (shell, marker) in [
            ("bash", "complete -F"),
            ("zsh", "#compdef nano-analyst"),
            ("fish", "complete -c nano-analyst"),
        ] {
            let output = nano(data.path(), &["completions", shell]);
            assert!(output.status.success(), "{shell}: {}", stderr(&output));
            let script = stdout(&output);
            assert!(script.contains(marker), "{shell}: {script}");
            assert!(
                script.contains("paths"),
                "{shell} completes the subcommands"
            );
        }
    }

    #[test]
    fn a_misspelt_correction_is_a_syntax_error_and_refusals_say_refused_once() {
        let data = tempfile::tempdir().unwrap();
        let db = chinook_path();
        let correct = |sql: &str| {
            let args = [
                "correct",
                db.to_str().unwrap(),
                "--question",
                "Albums?",
                "--sql",
                sql,
            ];
            stderr(&nano(data.path(), &args))
        };
        let error = correct("SELEC Title FROM Album");
        assert!(error.contains("syntax error: 'SELEC'"), "{error}");
        assert!(!error.contains("would change the database"), "{error}");
        let error = correct("DELETE FROM Album");
        assert!(
            error.contains("the correction was refused: 'DELETE' would change the database"),
            "{error}"
        );
        assert!(!error.contains("refused: refused"), "{error}");
    }

    #[test]
    fn history_shows_the_corrected_sqls_row_count_as_json_lines() {
        let data = tempfile::tempdir().unwrap();
        let db = chinook_path();
        let db = db.to_str().unwrap();
        let run = {
            let mut store = HistoryStore::open(&data.path().join("history.sqlite3")).unwrap();
            let scope = crate::feedback::chinook_scope();
            store
                .record(
                    &scope,
                    &outcome("List the genres", "SELECT Name FROM Genre LIMIT 5", 5),
                )
                .unwrap()
        };
        let run = run.to_string();
        let corrected = nano(
            data.path(),
            &[
                "correct",
                db,
                "--run",
                &run,
                "--sql",
                "SELECT Name FROM Genre",
            ],
        );
        assert!(corrected.status.success(), "{}", stderr(&corrected));
        let text = stdout(&nano(data.path(), &["history", db]));
        assert!(
            text.contains("corrected") && text.contains("25 rows"),
            "{text}"
        );
        let lines = stdout(&nano(data.path(), &["history", db, "--json"]));
        assert_eq!(lines.lines().count(), 1, "one run, one line: {lines}");
        let history = json_lines(&lines);
        assert_eq!(history[0]["row_count"], 25);
        assert_eq!(history[0]["sql"], "SELECT Name FROM Genre");
    }
}
