//! `nano-analyst eval` end to end with the real model on a few Chinook questions: Spider's
//! layout and JSON list, the predictions file, the report, Ctrl-C and `--resume`.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{app_command, chinook_path, model_lock};

fn succeeded(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[test]
fn eval_scores_spider_layout_and_writes_a_report() {
    let _turn = model_lock();
    let dir = tempfile::tempdir().unwrap();
    // Spider's layout: DIR/<db_id>/<db_id>.sqlite and a JSON list with parsed-SQL extras.
    let db_dir = dir.path().join("database/chinook_1");
    std::fs::create_dir_all(&db_dir).unwrap();
    std::fs::copy(chinook_path(), db_dir.join("chinook_1.sqlite")).unwrap();
    let dataset = dir.path().join("dev.json");
    std::fs::write(
        &dataset,
        serde_json::json!([
            {"db_id": "chinook_1", "question": "How many albums are there?",
             "query": "SELECT count(*) FROM ALBUM", "query_toks": []},
            {"db_id": "chinook_1", "question": "What are the names of the 5 longest tracks, longest first?",
             "query": "SELECT Name FROM TRACK ORDER BY Milliseconds DESC LIMIT 5"},
        ])
        .to_string(),
    )
    .unwrap();
    let out = dir.path().join("pred.jsonl");
    let output = app_command(dir.path())
        .args(["eval", "--dataset", dataset.to_str().unwrap()])
        .args(["--db-dir", dir.path().join("database").to_str().unwrap()])
        .args([
            "--out",
            out.to_str().unwrap(),
            "--config-name",
            "ci",
            "--warm",
        ])
        .output()
        .unwrap();
    let stdout = succeeded(&output);

    let predictions = lines(&out);
    assert_eq!(predictions.len(), 2);
    for (index, prediction) in predictions.iter().enumerate() {
        assert_eq!(prediction["index"], index);
        assert_eq!(prediction["db_id"], "chinook_1");
        for field in ["question", "gold_sql", "predicted_sql"] {
            assert!(prediction[field].is_string(), "{field}: {prediction}");
        }
        for field in ["attempts", "latency_ms", "prompt_tokens"] {
            assert!(
                prediction[field].as_u64().unwrap() > 0,
                "{field}: {prediction}"
            );
        }
        assert_eq!(prediction["valid"], true, "{prediction}");
        assert_eq!(prediction["correct"], true, "{prediction}");
        assert!(prediction["error"].is_null());
        assert_eq!(prediction["tables_sent"].as_array().unwrap().len(), 11);
    }
    // `--warm`: the schema prefix was evaluated before the database's first question.
    assert!(predictions[0]["warmup_ms"].as_u64().unwrap() > 0);
    assert!(predictions[1].get("warmup_ms").is_none());
    assert_eq!(predictions[0]["hardness"], "easy");
    assert_eq!(predictions[1]["hardness"], "medium");
    assert!(stdout.contains("EX 100.0% | valid 100.0%"), "{stdout}");

    let report = std::fs::read_to_string(out.with_extension("md")).unwrap();
    assert!(report.starts_with("# Evaluation: ci"), "{report}");
    assert!(
        report.contains("| execution accuracy | **100.0%** (2/2) |"),
        "{report}"
    );
    assert!(
        report.contains("| chinook_1 | 2 | 100.0% | 100.0% |"),
        "{report}"
    );
    assert!(
        report.contains(
            "| schema prefixes warmed before a database's first question (not in latency) | 1 ("
        ),
        "{report}"
    );

    // A finished file is not overwritten by accident.
    let again = app_command(dir.path())
        .args(["eval", "--dataset", dataset.to_str().unwrap()])
        .args(["--db-dir", dir.path().join("database").to_str().unwrap()])
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
}

#[test]
fn ctrl_c_leaves_a_file_that_resume_completes() {
    let _turn = model_lock();
    let dir = tempfile::tempdir().unwrap();
    let dataset = dir.path().join("pairs.jsonl");
    let pairs = [
        ("How many albums are there?", "SELECT count(*) FROM ALBUM"),
        ("How many artists are there?", "SELECT count(*) FROM ARTIST"),
        (
            "List the names of all music genres.",
            "SELECT Name FROM GENRE",
        ),
        (
            "How many media types are there?",
            "SELECT count(*) FROM MEDIATYPE",
        ),
    ];
    let text: String = pairs
        .iter()
        .map(|(q, sql)| format!("{}\n", serde_json::json!({"question": q, "query": sql})))
        .collect();
    std::fs::write(&dataset, text).unwrap();
    let out = dir.path().join("pred.jsonl");
    let run = |extra: &[&str]| {
        let mut command = app_command(dir.path());
        command
            .args(["eval", "--dataset", dataset.to_str().unwrap()])
            .args(["--db", chinook_path().to_str().unwrap()])
            .args(["--out", out.to_str().unwrap()])
            .args(extra);
        command
    };

    let mut child = run(&[])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::fs::read_to_string(&out).map_or(0, |t| t.lines().count()) < 1 {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no prediction written"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(exit.success(), "Ctrl-C ends cleanly: {exit:?} {stdout}");
    let interrupted = lines(&out);
    assert!(
        (1..4).contains(&interrupted.len()),
        "{} predictions",
        interrupted.len()
    );
    assert!(stdout.contains("with --resume to continue"), "{stdout}");

    let stdout = succeeded(&run(&["--resume"]).output().unwrap());
    let finished = lines(&out);
    assert_eq!(finished.len(), 4, "{stdout}");
    assert_eq!(
        finished[..interrupted.len()],
        interrupted[..],
        "earlier lines kept"
    );
    let indices: Vec<u64> = finished
        .iter()
        .map(|p| p["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indices, vec![0, 1, 2, 3], "dataset order");
    assert!(finished.iter().all(|p| p["db_id"] == "chinook"));
    assert!(!stdout.contains("--resume"), "{stdout}");
}

/// The gold audit's fast subset: the default rewrite chain leaves the result of every
/// known-correct query as it was (on Chinook's Spider pairs and the general set's 100
/// dev questions).
#[test]
fn the_default_rewrites_change_no_gold_result() {
    use nano_analyst::core::db::exec::ReadOnlyDb;
    use nano_analyst::core::eval::harness::DbSource;
    use nano_analyst::core::eval::load_dataset;
    use nano_analyst::core::rewrite::audit::Auditor;

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let pipeline = crate::support::default_pipeline();
    let auditor = Auditor::new(&pipeline.rewrites, pipeline.limits.timeout);
    let sets = [
        (
            root.join("../shared/data/chinook/spider_train_pairs.jsonl"),
            DbSource::File(root.join("sample_dbs/chinook.db")),
        ),
        (
            root.join("assets/general-set.json"),
            DbSource::Dir(root.join("sample_dbs/spider")),
        ),
    ];
    let mut audited = 0;
    for (dataset, source) in sets {
        let items = load_dataset(&dataset, "chinook").unwrap();
        for item in items {
            let db = ReadOnlyDb::open(&source.path_for(&item.db_id)).unwrap();
            let line = auditor.audit(&db, &item.db_id, &item.question, &item.gold_sql);
            assert_eq!(line.gold_error, None, "{}", item.gold_sql);
            assert!(!line.changed && line.sent_back_by.is_none(), "{line:#?}");
            audited += 1;
        }
    }
    assert_eq!(audited, 184);
}
