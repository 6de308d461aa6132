//! Several `nano-analyst` processes writing one history store at once, as a user does
//! with the app open and a `correct` or `rate` in another shell. Each writer is the real
//! binary; threads only start them together and collect their exit status.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Barrier;
use std::thread;

use nano_analyst::core::feedback::store::HistoryStore;

use crate::feedback::{chinook_scope, outcome};
use crate::support::{binary, chinook_path};

const PROCESSES: usize = 4;
const WRITES: usize = 50;

fn nano(data_dir: &Path, args: &[String]) -> Output {
    Command::new(binary())
        .args(args)
        .env("NANO_ANALYST_DATA_DIR", data_dir)
        .env("NANO_ANALYST_CONFIG", data_dir.join("no-config.toml"))
        // No model is loaded by these commands; a path that does not exist proves it.
        .env("NANO_ANALYST_MODEL", data_dir.join("no-model.gguf"))
        .output()
        .expect("the binary runs")
}

/// Runs `commands(p)` one after another in each of `PROCESSES` writers started together;
/// returns every failed call as "args: stderr".
fn in_parallel(
    data_dir: &Path,
    commands: impl Fn(usize) -> Vec<Vec<String>> + Sync,
) -> Vec<String> {
    let start = Barrier::new(PROCESSES);
    thread::scope(|scope| {
        let workers: Vec<_> = (0..PROCESSES)
            .map(|p| {
                let (start, commands) = (&start, &commands);
                scope.spawn(move || {
                    start.wait();
                    let mut failures = Vec::new();
                    for args in commands(p) {
                        let output = nano(data_dir, &args);
                        if !output.status.success() {
                            failures.push(format!(
                                "{}: {}",
                                args.join(" "),
                                String::from_utf8_lossy(&output.stderr).trim()
                            ));
                        }
                    }
                    failures
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a writer thread"))
            .collect()
    })
}

fn correct_args(question: &str, sql: &str) -> Vec<String> {
    let db = chinook_path().display().to_string();
    ["correct", &db, "--question", question, "--sql", sql]
        .map(String::from)
        .to_vec()
}

fn count(store: &HistoryStore, sql: &str) -> i64 {
    store.connection().query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn four_processes_creating_one_store_at_once_all_migrate_it() {
    // A new store each round: the race is in creating it (WAL switch, migrations).
    let mut failures = Vec::new();
    for round in 0..10 {
        let data = tempfile::tempdir().unwrap();
        let failed = in_parallel(data.path(), |p| {
            vec![correct_args(&format!("question {round}-{p}"), "SELECT 1")]
        });
        let store = HistoryStore::open(&data.path().join("history.sqlite3")).unwrap();
        let stored = count(&store, "SELECT count(*) FROM pairs");
        assert_eq!(stored + failed.len() as i64, PROCESSES as i64);
        failures.extend(failed);
    }
    assert_eq!(
        failures,
        Vec::<String>::new(),
        "{} of 40 failed",
        failures.len()
    );
}

#[test]
fn four_processes_correcting_at_once_lose_no_write() {
    let data = tempfile::tempdir().unwrap();
    let failures = in_parallel(data.path(), |p| {
        (0..WRITES)
            .map(|i| correct_args(&format!("question {p}-{i}"), &format!("SELECT {i}")))
            .collect()
    });
    assert_eq!(failures, Vec::<String>::new());
    let store = HistoryStore::open(&data.path().join("history.sqlite3")).unwrap();
    let total = (PROCESSES * WRITES) as i64;
    assert_eq!(count(&store, "SELECT count(*) FROM pairs"), total);
    assert_eq!(count(&store, "SELECT count(*) FROM feedback_log"), total);
    assert_eq!(
        count(
            &store,
            "SELECT value FROM meta WHERE key = 'pairs_revision'"
        ),
        total
    );
}

#[test]
fn four_processes_rating_at_once_lose_no_rating() {
    let data = tempfile::tempdir().unwrap();
    let runs: Vec<i64> = {
        let mut store = HistoryStore::open(&data.path().join("history.sqlite3")).unwrap();
        let scope = chinook_scope();
        (0..PROCESSES * WRITES)
            .map(|i| {
                let asked = outcome(&format!("question {i}"), "SELECT count(*) FROM Album", 1);
                store.record(&scope, &asked).unwrap()
            })
            .collect()
    };
    let db = chinook_path().display().to_string();
    // Each writer rates its own runs, up and down in turn: a rating reads the run, then
    // writes, which is where a deferred transaction lost the race.
    let failures = in_parallel(data.path(), |p| {
        runs[p * WRITES..(p + 1) * WRITES]
            .iter()
            .enumerate()
            .map(|(i, run)| {
                let rating = if i % 2 == 0 { "up" } else { "down" };
                ["rate", &db, "--run", &run.to_string(), rating]
                    .map(String::from)
                    .to_vec()
            })
            .collect()
    });
    assert_eq!(failures, Vec::<String>::new());
    let store = HistoryStore::open(&data.path().join("history.sqlite3")).unwrap();
    let total = (PROCESSES * WRITES) as i64;
    assert_eq!(count(&store, "SELECT count(*) FROM ratings"), total);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM pairs WHERE source = 'thumbs_up'"
        ),
        total / 2
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM feedback_log"),
        total / 2
    );
}

#[test]
fn a_rating_made_just_before_quitting_waits_for_the_lock_and_is_kept() {
    use nano_analyst::core::feedback::history::Rating;
    use nano_analyst::tui::workers::store::{StoreHandle, StoreRequest};

    let data = tempfile::tempdir().unwrap();
    let path = data.path().join("history.sqlite3");
    let mut store = HistoryStore::open(&path).unwrap();
    let scope = chinook_scope();
    let run = store
        .record(&scope, &outcome("question", "SELECT 1", 1))
        .unwrap();
    // Another process (`correct` in a second shell) holds the write lock for a moment.
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let (out, _replies) = std::sync::mpsc::channel();
    let app = StoreHandle::spawn(Box::new(HistoryStore::open(&path).unwrap()), scope, out);
    app.send(StoreRequest::Rate {
        run,
        rating: Rating::Up,
        note: None,
    });
    let release = thread::spawn(move || {
        thread::sleep(std::time::Duration::from_millis(500));
        other.execute_batch("COMMIT").unwrap();
    });
    // What the app does on quit: it returns once the rating is written.
    app.finish();
    release.join().unwrap();
    assert_eq!(count(&store, "SELECT count(*) FROM ratings"), 1);
}
