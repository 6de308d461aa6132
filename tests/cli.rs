//! The `nano-analyst` binary as a user runs it.

use std::process::{Command, Output};

use crate::support::{binary, chinook_path, model_lock, model_path};

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
    let list: serde_json::Value =
        serde_json::from_slice(&history.stdout).expect("a JSON list of corrections");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
}
