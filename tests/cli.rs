//! The `nano-analyst` binary as a user runs it.

use std::process::{Command, Output};

use crate::support::{binary, chinook_path, embed_model_path, model_lock, model_path};

fn nano(data_dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .env("NANO_ANALYST_DATA_DIR", data_dir)
        .env("NANO_ANALYST_MODEL", model_path())
        .env("NANO_ANALYST_CONFIG", data_dir.join("no-config.toml"))
        .output()
        .expect("the binary runs")
}

fn one_line_error(output: &Output) -> String {
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    stderr.trim_end().to_string()
}

#[test]
fn ask_json_answers_with_the_documented_fields() {
    let _turn = model_lock();
    let data = tempfile::tempdir().unwrap();
    let db = chinook_path();
    let output = nano(
        data.path(),
        &[
            "ask",
            db.to_str().unwrap(),
            "How many albums are there?",
            "--json",
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(json["rows"], serde_json::json!([[347]]));
    assert_eq!(json["row_count"], 1);
    assert_eq!(json["truncated"], false);
    assert!(
        json["sql"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("count")
    );
    assert_eq!(json["tables_used"], serde_json::json!(["Album"]));
    let answer = json["answer"].as_str().unwrap();
    assert!(answer.contains("347"), "{answer}");
    for field in [
        "retrieve_ms",
        "prompt_tokens",
        "cached_prompt_tokens",
        "ttft_ms",
        "generate_ms",
        "execute_ms",
        "answer_ms",
        "total_ms",
    ] {
        assert!(
            json["timings"][field].is_u64(),
            "timings.{field}: {}",
            json["timings"]
        );
    }
    assert_eq!(json["attempts"].as_array().unwrap().len(), 1);
    // The rewrites and checks that fired: none needed on this plain count.
    assert!(json["rewrites"].is_array(), "{json}");
    assert_eq!(json["model"], "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf");
    assert!(
        data.path()
            .join("logs")
            .read_dir()
            .unwrap()
            .next()
            .is_some(),
        "a log file is written"
    );
    // Where the query came from and how sure the run is (see `AskJson`).
    assert_eq!(json["source"]["kind"], "first_attempt", "{json}");
    assert!(
        ["high", "medium", "low"].contains(&json["confidence"]["level"].as_str().unwrap()),
        "{json}"
    );
    assert!(json["confidence"]["reasons"].is_array(), "{json}");
    let logprob = json["confidence"]["sql_logprob"]
        .as_f64()
        .expect("the local engine's");
    assert!((-10.0..=0.0).contains(&logprob), "{logprob}");
    assert!(!json["sql"].as_str().unwrap().contains("  "), "{json}");
    // The log holds the question, not only llama.cpp's loader lines.
    let logs: String = data
        .path()
        .join("logs")
        .read_dir()
        .unwrap()
        .filter_map(Result::ok)
        .map(|entry| std::fs::read_to_string(entry.path()).unwrap_or_default())
        .collect();
    assert!(logs.contains("How many albums are there?"), "{logs}");
    assert!(logs.contains("total_ms="), "{logs}");
}

#[test]
fn bad_inputs_give_one_line_errors() {
    let data = tempfile::tempdir().unwrap();
    let missing = one_line_error(&nano(
        data.path(),
        &["ask", "/no/such.db", "How many albums?"],
    ));
    assert_eq!(missing, "nano-analyst: database not found: '/no/such.db'");

    let corrupt = data.path().join("corrupt.db");
    std::fs::write(&corrupt, vec![7u8; 4096]).unwrap();
    let error = one_line_error(&nano(
        data.path(),
        &["ask", corrupt.to_str().unwrap(), "How many albums?"],
    ));
    assert!(error.contains("is not a SQLite database"), "{error}");

    let fake_model = data.path().join("model.gguf");
    std::fs::write(&fake_model, "definitely not weights").unwrap();
    let db = chinook_path();
    let error = one_line_error(&nano(
        data.path(),
        &[
            "ask",
            db.to_str().unwrap(),
            "How many albums?",
            "--model",
            fake_model.to_str().unwrap(),
        ],
    ));
    assert_eq!(
        error,
        format!(
            "nano-analyst: '{}' is not a GGUF model file",
            fake_model.display()
        )
    );

    let error = one_line_error(&nano(data.path(), &["ask", db.to_str().unwrap(), "  "]));
    assert_eq!(error, "nano-analyst: the question is empty");
}

#[test]
fn model_files_of_the_wrong_kind_are_refused_in_one_line() {
    use nano_analyst::llm::embedder::LlamaEmbedder;
    use nano_analyst::llm::gguf::{ModelKind, model_kind};

    // The real files: the chat model carries its template, the embedder is a BERT.
    let started = std::time::Instant::now();
    let chat = model_kind(&model_path()).unwrap();
    let read_in = started.elapsed();
    assert_eq!(
        chat,
        ModelKind::Chat {
            arch: "qwen2".into(),
            chat_template: true
        }
    );
    println!("{}: metadata read in {read_in:?}", model_path().display());
    assert!(read_in.as_millis() < 2_000, "metadata read in {read_in:?}");
    let embedder = embed_model_path();
    assert_eq!(
        model_kind(&embedder).unwrap(),
        ModelKind::Embedding {
            arch: "bert".into()
        }
    );

    // The embedder as --model ended in a GGML_ASSERT (exit 134) inside llama.cpp.
    let data = tempfile::tempdir().unwrap();
    let db = chinook_path();
    let output = nano(
        data.path(),
        &[
            "ask",
            db.to_str().unwrap(),
            "How many albums?",
            "--model",
            embedder.to_str().unwrap(),
            "--embed-model",
            embedder.to_str().unwrap(),
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        one_line_error(&output),
        format!(
            "nano-analyst: '{}' is an embedding model (bert); --model needs a chat model such \
             as Qwen2.5-Coder",
            embedder.display()
        )
    );

    let error = LlamaEmbedder::load(&model_path(), 1).err().unwrap();
    assert_eq!(
        error.to_string(),
        format!(
            "'{}' is a chat model (qwen2); --embed-model needs a sentence-embedding model such \
             as all-MiniLM-L6-v2",
            model_path().display()
        )
    );
}

#[test]
fn the_app_without_a_terminal_says_so_in_one_line() {
    let data = tempfile::tempdir().unwrap();
    let db = chinook_path();
    // stdin from /dev/null and stdout to a pipe, as in a script: ratatui used to panic.
    let output = Command::new(binary())
        .arg(&db)
        .env("NANO_ANALYST_DATA_DIR", data.path())
        .env("NANO_ANALYST_CONFIG", data.path().join("no-config.toml"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        one_line_error(&output),
        "nano-analyst: the app needs a terminal (stdin and stdout must be a TTY); use \
         `nano-analyst ask DB QUESTION` in scripts"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn names_with_terminal_escapes_are_printed_as_visible_text() {
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("hostile.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE \"album\u{1b}]0;pwned\u{7}\" (\"title\u{1b}]52;c;aGk=\u{7}\" TEXT, \
         \"year\u{9b}2J\" INTEGER);",
    )
    .unwrap();
    drop(conn);
    for json in [false, true] {
        let mut args = vec!["schema", db.to_str().unwrap(), "album titles"];
        if json {
            args.push("--json");
        }
        let output = nano(data.path(), &args);
        assert!(output.status.success(), "{output:?}");
        let stdout = String::from_utf8(output.stdout).unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        for text in [&stdout, &stderr] {
            assert!(
                !text.contains('\u{1b}') && !text.contains('\u{9b}'),
                "{text}"
            );
        }
        assert!(stdout.contains("album\\u001b]0;pwned\\u0007"), "{stdout}");
        if json {
            let value: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            let first = &value["tables"][0]["name"];
            assert_eq!(first, "album\u{1b}]0;pwned\u{7}", "{value}");
        }
    }
}

/// `schema` as a user runs it from `dir`, with a throwaway data directory.
fn schema_in(dir: &std::path::Path, database: &str) -> Output {
    Command::new(binary())
        .current_dir(dir)
        .args(["schema", database, "How many rows?"])
        .env("NANO_ANALYST_DATA_DIR", dir.join(".data"))
        .env("NANO_ANALYST_CONFIG", dir.join("no-config.toml"))
        .output()
        .expect("the binary runs")
}

fn write_db(path: &std::path::Path, sql: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(sql).unwrap();
}

#[test]
fn awkward_databases_open_or_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path();
    let run = |name: &str| schema_in(here, name);

    // A view over a dropped table is left out, with its reason; the rest is usable.
    write_db(
        &here.join("broken.db"),
        "CREATE TABLE old(a); CREATE TABLE Album(Title TEXT); CREATE VIEW v AS SELECT a FROM old;
         DROP TABLE old;",
    );
    let output = run("broken.db");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("Album"), "{stdout}");
    assert!(
        stdout.contains("left out: v (broken view: no such table: main.old)"),
        "{stdout}"
    );

    // A file named like a URI is that file, not the file the URI would name.
    std::fs::copy(chinook_path(), here.join("file:chinook.db")).unwrap();
    write_db(&here.join("chinook.db"), "CREATE TABLE Decoy(x);");
    let stdout = String::from_utf8_lossy(&run("file:chinook.db").stdout).into_owned();
    assert!(stdout.contains("PlaylistTrack"), "{stdout}");
    assert!(!stdout.contains("Decoy"), "{stdout}");

    write_db(&here.join("empty.db"), "CREATE TABLE t(x); DROP TABLE t;");
    assert_eq!(
        one_line_error(&run("empty.db")),
        "nano-analyst: the database 'empty.db' has no tables"
    );
    // A folder is a source of CSV and Parquet files (docs/sources.md).
    std::fs::create_dir(here.join("folder.db")).unwrap();
    assert_eq!(
        one_line_error(&run("folder.db")),
        "nano-analyst: the folder 'folder.db' is empty; put .csv, .tsv or .parquet files in it"
    );
    assert_eq!(
        one_line_error(&run("/dev/null")),
        "nano-analyst: '/dev/null' is not a regular file (a character device), not a database file"
    );
    std::fs::write(here.join("notes.db"), "plain text, no database here").unwrap();
    assert_eq!(
        one_line_error(&run("notes.db")),
        "nano-analyst: 'notes.db' is not a SQLite database"
    );

    // Another program in the middle of a write (this test process holds the lock).
    write_db(&here.join("busy.db"), "CREATE TABLE t(x);");
    let writer = rusqlite::Connection::open(here.join("busy.db")).unwrap();
    writer
        .execute_batch("BEGIN EXCLUSIVE; INSERT INTO t VALUES (1);")
        .unwrap();
    assert_eq!(
        one_line_error(&run("busy.db")),
        "nano-analyst: another program is writing to the database 'busy.db'; try again"
    );
    drop(writer);
}

#[test]
fn a_hot_journal_is_named_and_left_for_its_writer() {
    let dir = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.db");
    write_db(
        &path,
        "CREATE TABLE t(x);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
         INSERT INTO t SELECT printf('%0200d', i) FROM n;",
    );
    // A cache too small for the change: the journal is synced and pages are written
    // before the commit, which is what a crash mid-write leaves behind.
    let writer = rusqlite::Connection::open(&path).unwrap();
    writer
        .execute_batch("PRAGMA cache_size = 2; BEGIN; UPDATE t SET x = x || 'changed';")
        .unwrap();
    std::fs::copy(&path, crashed.path().join("x.db")).unwrap();
    std::fs::copy(
        dir.path().join("x.db-journal"),
        crashed.path().join("x.db-journal"),
    )
    .unwrap();
    drop(writer);
    assert_eq!(
        one_line_error(&schema_in(crashed.path(), "x.db")),
        "nano-analyst: the database 'x.db' has an unfinished write (hot journal \
         'x.db-journal'); open it once with sqlite3 or the program that wrote it to recover"
    );
    assert!(crashed.path().join("x.db-journal").exists());
}

#[test]
fn ask_refuses_a_database_without_tables_before_loading_the_model() {
    let data = tempfile::tempdir().unwrap();
    let empty = data.path().join("empty.db");
    write_db(&empty, "CREATE TABLE t(x); DROP TABLE t;");
    let error = one_line_error(&nano(
        data.path(),
        &["ask", empty.to_str().unwrap(), "How many albums?"],
    ));
    assert_eq!(
        error,
        format!(
            "nano-analyst: the database '{}' has no tables",
            empty.display()
        )
    );
}

#[test]
fn limit_settings_out_of_range_are_refused_without_a_panic() {
    let data = tempfile::tempdir().unwrap();
    let db = chinook_path();
    let correct = |flag: &str| {
        nano(
            data.path(),
            &[
                flag,
                "correct",
                db.to_str().unwrap(),
                "--question",
                "How many albums?",
                "--sql",
                "SELECT count(*) FROM Album",
            ],
        )
    };
    for (flag, expected) in [
        (
            "--timeout=1e20",
            "nano-analyst: --timeout 100000000000000000000: the timeout must be between 0.001 \
             and 86400 seconds, not 100000000000000000000",
        ),
        (
            "--timeout=-1",
            "nano-analyst: --timeout -1: the timeout must be between 0.001 and 86400 seconds, \
             not -1",
        ),
        (
            "--timeout=NaN",
            "nano-analyst: --timeout NaN: the timeout must be between 0.001 and 86400 seconds, \
             not NaN",
        ),
        (
            "--timeout=inf",
            "nano-analyst: --timeout inf: the timeout must be between 0.001 and 86400 seconds, \
             not inf",
        ),
        (
            "--timeout=0",
            "nano-analyst: --timeout 0: the timeout must be between 0.001 and 86400 seconds, \
             not 0",
        ),
        (
            "--byte-limit-mib=0",
            "nano-analyst: --byte-limit-mib 0: the byte limit must be between 1 and 1024 MiB, \
             not 0",
        ),
        (
            "--byte-limit-mib=4096",
            "nano-analyst: --byte-limit-mib 4096: the byte limit must be between 1 and 1024 \
             MiB, not 4096",
        ),
    ] {
        assert_eq!(one_line_error(&correct(flag)), expected, "{flag}");
    }
    // Numbers clap cannot parse are usage errors (exit 2), not panics.
    for flag in [
        "--byte-limit-mib=-1",
        "--byte-limit-mib=1e30",
        "--row-limit=99999999999999999999999",
        "--timeout=soon",
    ] {
        let output = correct(flag);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flag}: {stderr}");
        assert!(stderr.contains("invalid value"), "{flag}: {stderr}");
    }
    // The largest row limit is simply no row cap (the byte limit still holds).
    let output = correct("--row-limit=18446744073709551615");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let config = data.path().join("config.toml");
    std::fs::write(&config, "[pipeline]\ntimeout_secs = 1e20\n").unwrap();
    let output = Command::new(binary())
        .args(["--config", config.to_str().unwrap(), "correct"])
        .args([db.to_str().unwrap(), "--question", "q", "--sql", "SELECT 1"])
        .env("NANO_ANALYST_DATA_DIR", data.path())
        .output()
        .unwrap();
    let error = one_line_error(&output);
    assert!(
        error.ends_with(
            "pipeline.timeout_secs: the timeout must be between 0.001 and 86400 seconds, \
             not 100000000000000000000"
        ),
        "{error}"
    );
}

#[test]
fn results_too_big_or_too_slow_are_stopped_and_not_recorded() {
    let data = tempfile::tempdir().unwrap();
    let db = chinook_path();
    let correct = |sql: &str, extra: &[&str]| {
        let mut args = extra.to_vec();
        args.extend([
            "correct",
            db.to_str().unwrap(),
            "--question",
            "q",
            "--sql",
            sql,
        ]);
        let started = std::time::Instant::now();
        (nano(data.path(), &args), started.elapsed())
    };
    // 25 rows of 1 GB each: before the length limit, the process aborted on allocation.
    let (output, _) = correct("SELECT zeroblob(1000000000) FROM Genre", &[]);
    let error = one_line_error(&output);
    assert!(
        error.contains("a value in the result is larger than the 64.0 MiB limit"),
        "{error}"
    );
    let (output, _) = correct("SELECT zeroblob(40000000) FROM Genre", &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("returned 1 of 25 rows (byte limit)"),
        "{stdout}"
    );

    // Each row is one expensive call and few VM operations: the progress handler alone
    // let this run 29 s under --timeout 2, and the correction was recorded.
    let slow = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 200) \
                SELECT length(randomblob(50000000)) FROM n";
    let (output, elapsed) = correct(slow, &["--timeout", "1"]);
    let error = one_line_error(&output);
    assert!(error.contains("the correction was refused"), "{error}");
    assert!(error.contains("ran longer than 1s"), "{error}");
    // The query stops within a second of its limit; the rest is the process starting.
    assert!(elapsed < std::time::Duration::from_secs(4), "{elapsed:?}");
    let history = nano(
        data.path(),
        &["corrections", "list", db.to_str().unwrap(), "--json"],
    );
    let list = crate::feedback::json_lines(&String::from_utf8_lossy(&history.stdout));
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
}

/// `eval-paraphrases` on a data set without paraphrases, and over an earlier output, says
/// so in one line before loading the model.
#[test]
fn eval_paraphrases_refuses_data_without_paraphrase_groups() {
    let data = tempfile::tempdir().unwrap();
    let dataset = data.path().join("pairs.jsonl");
    std::fs::write(
        &dataset,
        "{\"db_id\": \"a\", \"question\": \"How many?\", \"query\": \"SELECT count(*) FROM t\"}\n\
         {\"db_id\": \"a\", \"question\": \"Names?\", \"query\": \"SELECT name FROM t\"}\n",
    )
    .unwrap();
    let dataset = dataset.to_str().unwrap();
    let dir = data.path().to_str().unwrap();
    let args = [
        "eval-paraphrases",
        "--dataset",
        dataset,
        "--db-dir",
        dir,
        "--part",
        "all",
    ];
    let output = nano(data.path(), &args);
    assert!(!output.status.success());
    assert!(
        one_line_error(&output).contains("written with two different questions"),
        "{}",
        one_line_error(&output)
    );
}
