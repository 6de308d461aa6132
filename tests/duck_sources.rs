//! DuckDB sources through the same interface as SQLite: Chinook as a folder of CSV files
//! and as a DuckDB database file (`support::duck`), introspection, the guard and DuckDB's
//! own refusals, limits and cancel, bad input in one line, and a few real-model questions.
//! After each, the user's files are byte-identical and nothing new sits beside them.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use nano_analyst::core::db::compare::results_match;
use nano_analyst::core::db::exec::{Cut, ExecError, ExecLimits, ReadOnlyDb};
use nano_analyst::core::db::schema::{Schema, Table};
use nano_analyst::core::db::source::SqlDialect;

use crate::support::duck::{snapshot, write_csv_folder, write_duckdb_file};
use crate::support::{app_command, chinook_path, model_lock, run_sql};

/// Chinook as CSV files in `dir/csv` and as `dir/chinook.duckdb`.
fn chinook_sources(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let csv = dir.join("csv");
    std::fs::create_dir(&csv).unwrap();
    write_csv_folder(&csv);
    let file_dir = dir.join("file");
    std::fs::create_dir(&file_dir).unwrap();
    let file = file_dir.join("chinook.duckdb");
    write_duckdb_file(&file, &csv);
    (csv, file)
}

fn open(path: &Path) -> ReadOnlyDb {
    ReadOnlyDb::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn nano(data_dir: &Path, args: &[&str]) -> Output {
    app_command(data_dir)
        .args(args)
        .output()
        .expect("the binary runs")
}

fn one_line_error(output: &Output) -> String {
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    stderr.trim_end().to_string()
}

fn sorted_names(schema: &Schema) -> Vec<String> {
    let mut names: Vec<String> = schema.tables.iter().map(|t| t.name.clone()).collect();
    names.sort();
    names
}

fn primary_key(table: &Table) -> Vec<String> {
    table
        .columns
        .iter()
        .filter(|c| c.primary_key)
        .map(|c| c.name.clone())
        .collect()
}

/// SQL that reads the same on SQLite and DuckDB, compared result for result.
const SHARED_QUERIES: &[&str] = &[
    "SELECT count(*) FROM Album",
    "SELECT Name, Milliseconds, UnitPrice FROM Track ORDER BY TrackId LIMIT 20",
    "SELECT g.Name, count(*) FROM Track t JOIN Genre g ON g.GenreId = t.GenreId \
     GROUP BY g.Name ORDER BY 2 DESC, 1",
    "SELECT BillingCountry, round(sum(Total), 2) FROM Invoice GROUP BY 1 ORDER BY 2 DESC, 1",
    "SELECT InvoiceDate FROM Invoice ORDER BY InvoiceId LIMIT 3",
];

fn assert_results_match_sqlite(db: &ReadOnlyDb) {
    let sqlite = ReadOnlyDb::open(&chinook_path()).unwrap();
    for sql in SHARED_QUERIES {
        let (duck, lite) = (run_sql(db, sql), run_sql(&sqlite, sql));
        assert!(
            results_match(&lite, &duck, true),
            "{sql}\nduckdb: {duck:?}\nsqlite: {lite:?}"
        );
    }
}

#[test]
fn duckdb_csv_folder_reads_chinook_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, _) = chinook_sources(dir.path());
    let before = snapshot(&csv);
    {
        let db = open(&csv);
        assert_eq!(db.dialect(), SqlDialect::DuckDb);
        assert_eq!(db.path(), csv.as_path());
        let sqlite = ReadOnlyDb::open(&chinook_path()).unwrap();
        let (schema, lite) = (db.askable_schema().unwrap(), sqlite.schema().unwrap());
        assert_eq!(sorted_names(&schema), sorted_names(lite));
        for table in &schema.tables {
            let lite_table = lite.table(&table.name).unwrap();
            assert_eq!(table.row_count, lite_table.row_count, "{}", table.name);
            assert!(!table.is_view, "{} is a table to the user", table.name);
            assert_eq!(table.columns.len(), lite_table.columns.len());
        }
        let track = schema.table("Track").unwrap();
        assert_eq!(track.column("TrackId").unwrap().declared_type, "BIGINT");
        assert_eq!(track.column("Name").unwrap().declared_type, "VARCHAR");
        let genre = schema.table("Genre").unwrap();
        assert_eq!(genre.column("Name").unwrap().sample_values.len(), 3);
        assert_results_match_sqlite(&db);
    }
    assert_eq!(snapshot(&csv), before, "the CSV folder changed");
}

#[test]
fn duckdb_file_has_chinook_keys_and_results() {
    let dir = tempfile::tempdir().unwrap();
    let (_, file) = chinook_sources(dir.path());
    let folder = file.parent().unwrap().to_path_buf();
    let before = snapshot(&folder);
    {
        let db = open(&file);
        assert_eq!(db.dialect(), SqlDialect::DuckDb);
        let sqlite = ReadOnlyDb::open(&chinook_path()).unwrap();
        let (schema, lite) = (db.askable_schema().unwrap(), sqlite.schema().unwrap());
        assert_eq!(sorted_names(&schema), sorted_names(lite));
        for table in &schema.tables {
            let lite_table = lite.table(&table.name).unwrap();
            assert_eq!(table.row_count, lite_table.row_count, "{}", table.name);
            assert_eq!(
                primary_key(table),
                primary_key(lite_table),
                "{}",
                table.name
            );
            // DuckDB has no key from a table to itself (Employee.ReportsTo).
            let outward = |t: &Table| {
                t.foreign_keys
                    .iter()
                    .filter(|fk| fk.to_table != t.name)
                    .count()
            };
            assert_eq!(outward(table), outward(lite_table), "{}", table.name);
        }
        let fingerprint = schema.fingerprint();
        assert_eq!(
            open(&file).askable_schema().unwrap().fingerprint(),
            fingerprint
        );
        assert_results_match_sqlite(&db);
    }
    assert_eq!(
        snapshot(&folder),
        before,
        "the DuckDB file or its folder changed"
    );
}

/// Statements the guard refuses and that DuckDB refuses again when the guard is bypassed.
const REFUSED_BY_ENGINE: &[&str] = &[
    "DELETE FROM Album",
    "INSERT INTO Genre VALUES (999, 'x')",
    "UPDATE Album SET Title = 'x'",
    "DROP TABLE Album",
    "DROP VIEW Album",
    "CREATE TABLE t AS SELECT 1 AS x",
    "CREATE VIEW v AS SELECT 1 AS x",
    "ALTER TABLE Album ADD COLUMN x INTEGER",
    "CREATE SEQUENCE s",
    "SET enable_external_access = true",
    "SET lock_configuration = false",
    "RESET lock_configuration",
    "SET allowed_paths = ['/etc/hostname']",
    "PRAGMA enable_profiling",
    "INSTALL httpfs",
    "LOAD httpfs",
    "ATTACH '/tmp/nano-analyst-attached.duckdb' AS other",
    "EXPORT DATABASE '/tmp/nano-analyst-export'",
    "IMPORT DATABASE '/tmp/nano-analyst-export'",
    "COPY (SELECT 1) TO '/tmp/nano-analyst-copy.csv'",
    "SELECT * FROM read_csv('/etc/hostname')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM read_blob('/etc/hostname')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM '/etc/hostname'",
    "SELECT * FROM sniff_csv('/etc/hostname')",
    "SELECT 1; DELETE FROM Album",
    "CHECKPOINT",
];

/// Refused by the guard; harmless when it is bypassed (nothing of the user's can change).
const HARMLESS_WHEN_BYPASSED: &[&str] = &[
    "CREATE TEMP TABLE scratch AS SELECT 1 AS x",
    "CALL pragma_version()",
    "PRAGMA database_list",
    "DESCRIBE Album",
    "SUMMARIZE Genre",
];

fn assert_guard_and_engine_refuse(db: &ReadOnlyDb, user_file: &Path) {
    for sql in REFUSED_BY_ENGINE.iter().chain(HARMLESS_WHEN_BYPASSED) {
        assert!(db.check(sql).is_err(), "the guard let through: {sql}");
    }
    let guarded_copy = format!("COPY Album TO '{}'", user_file.display());
    assert!(db.check(&guarded_copy).is_err());
    // Copying over the user's own file: the one path DuckDB may read must not be written.
    for sql in REFUSED_BY_ENGINE
        .iter()
        .map(|s| s.to_string())
        .chain([guarded_copy])
    {
        let outcome = db.execute(&sql, ExecLimits::default());
        assert!(outcome.is_err(), "DuckDB ran: {sql}: {outcome:?}");
    }
    for sql in HARMLESS_WHEN_BYPASSED {
        let _ = db.execute(sql, ExecLimits::default());
    }
    let count = run_sql(db, "SELECT count(*) FROM Album");
    assert_eq!(count.rows[0][0].to_string(), "347");
    for made in [
        "/tmp/nano-analyst-attached.duckdb",
        "/tmp/nano-analyst-export",
        "/tmp/nano-analyst-copy.csv",
    ] {
        assert!(!Path::new(made).exists(), "{made} was written");
    }
    // The guard's message names what it refused.
    assert_eq!(
        db.check("SELECT * FROM read_csv('/etc/hostname')")
            .unwrap_err()
            .to_string(),
        "refused: 'read_csv()' acts outside the query (server files, sessions, settings or \
         locks); only plain read-only queries may run"
    );
}

#[test]
fn duckdb_guard_refuses_writes_and_duckdb_refuses_them_again() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, file) = chinook_sources(dir.path());
    let (csv_before, file_before) = (snapshot(&csv), snapshot(file.parent().unwrap()));
    assert_guard_and_engine_refuse(&open(&csv), &csv.join("Album.csv"));
    assert_guard_and_engine_refuse(&open(&file), &file);
    assert_eq!(snapshot(&csv), csv_before, "the CSV folder changed");
    assert_eq!(
        snapshot(file.parent().unwrap()),
        file_before,
        "the DuckDB folder changed"
    );
    // DuckDB's own read-only queries pass the guard.
    let db = open(&csv);
    for sql in [
        "SELECT year(InvoiceDate) AS y, sum(Total) FROM Invoice GROUP BY 1 ORDER BY 1",
        "SELECT Name FROM Artist WHERE Name ILIKE '%ac%'",
        "SELECT strftime(InvoiceDate, '%Y-%m') FROM Invoice LIMIT 2",
        "SELECT InvoiceDate - INTERVAL 30 DAY FROM Invoice LIMIT 1",
    ] {
        assert!(db.check(sql).is_ok(), "{sql}");
        assert!(db.execute(sql, ExecLimits::default()).is_ok(), "{sql}");
    }
}

#[test]
fn duckdb_time_limit_cancel_and_caps_hold() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("csv");
    std::fs::create_dir(&csv).unwrap();
    write_csv_folder(&csv);
    let db = open(&csv);
    let slow = "SELECT sum(a.range * b.range) FROM range(100000000) a, range(1000) b";
    let limits = ExecLimits {
        timeout: Duration::from_millis(300),
        ..ExecLimits::default()
    };
    let started = Instant::now();
    assert_eq!(
        db.execute(slow, limits),
        Err(ExecError::Timeout(limits.timeout))
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let canceller = db.canceller();
    let cancel = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        canceller.cancel();
    });
    let started = Instant::now();
    assert_eq!(
        db.execute(slow, ExecLimits::default()),
        Err(ExecError::Cancelled)
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    cancel.join().unwrap();
    let capped = db
        .execute(
            "SELECT TrackId FROM Track",
            ExecLimits {
                row_limit: 10,
                ..ExecLimits::default()
            },
        )
        .unwrap();
    assert_eq!((capped.rows.len(), capped.total_rows), (10, Some(3503)));
    let budget = ExecLimits {
        byte_limit: 10_000,
        ..ExecLimits::default()
    };
    let cut = db
        .execute("SELECT repeat('x', 3000) FROM Track", budget)
        .unwrap();
    assert_eq!((cut.rows.len(), cut.total_rows), (3, Some(3503)));
    assert_eq!(cut.cut, Some(Cut::ByteLimit));
    assert_eq!(
        db.execute("SELECT repeat('x', 20000)", budget),
        Err(ExecError::ValueTooBig(10_000))
    );
}

#[test]
fn duckdb_bad_input_gets_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name);
    std::fs::write(at("ragged.csv"), "a,b\n1,2\n3,4,5\n6,7\n").unwrap();
    std::fs::write(
        at("latin1.csv"),
        b"name,city\nJos\xe9,M\xfcnchen\n".as_slice(),
    )
    .unwrap();
    std::fs::create_dir(at("empty")).unwrap();
    std::fs::create_dir(at("notes")).unwrap();
    std::fs::write(at("notes/readme.md"), "hello").unwrap();
    std::fs::write(at("notes.txt"), "just some notes").unwrap();
    std::fs::write(at("picture.png"), b"\x89PNG\r\n\x1a\n0000000000".as_slice()).unwrap();
    std::fs::write(at("corrupt.duckdb"), "this is not a DuckDB database").unwrap();
    let cases = [
        ("ragged.csv", "cannot read '"),
        ("latin1.csv", "cannot read '"),
        ("empty", "is empty; put .csv, .tsv or .parquet files in it"),
        (
            "notes",
            "has no .csv, .tsv or .parquet files (found: readme.md)",
        ),
        ("notes.txt", "is not a database, CSV or Parquet file"),
        ("picture.png", "is not a database, CSV or Parquet file"),
        ("missing.csv", "not found"),
        ("corrupt.duckdb", "cannot open the DuckDB database '"),
    ];
    let before = snapshot(dir.path());
    for (name, expected) in cases {
        let path = at(name).display().to_string();
        let error = one_line_error(&nano(data.path(), &["schema", &path, "albums"]));
        assert!(error.contains(expected), "{name}: {error}");
        eprintln!("{name}: {error}");
    }
    assert_eq!(snapshot(dir.path()), before, "bad input was written to");
    let ragged = ReadOnlyDb::open(&at("ragged.csv"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        ragged.contains("line 3") || ragged.contains("Line: 3"),
        "{ragged}"
    );
}

#[test]
fn duckdb_ask_answers_chinook_questions_with_the_real_model() {
    let _turn = model_lock();
    let dir = tempfile::tempdir().unwrap();
    let (csv, file) = chinook_sources(dir.path());
    let (csv_before, file_before) = (snapshot(&csv), snapshot(file.parent().unwrap()));
    let data = tempfile::tempdir().unwrap();
    let asks = [
        (
            &csv,
            "How many albums are there?",
            serde_json::json!([[347]]),
        ),
        (
            &csv,
            "How many tracks are there?",
            serde_json::json!([[3503]]),
        ),
        (
            &file,
            "How many albums are there?",
            serde_json::json!([[347]]),
        ),
    ];
    for (source, question, rows) in asks {
        let source = source.display().to_string();
        let output = nano(data.path(), &["ask", &source, question, "--json"]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stdout}\n{stderr}");
        let json: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
        assert_eq!(json["rows"], rows, "{source}: {question}: {stdout}");
    }
    // The history names each source by its path.
    let history = nano(data.path(), &["history", &csv.display().to_string()]);
    let listed = String::from_utf8_lossy(&history.stdout);
    assert!(history.status.success(), "{listed}");
    assert!(listed.contains("How many tracks"), "{listed}");
    let store = rusqlite::Connection::open(data.path().join("history.sqlite3")).unwrap();
    let scopes: Vec<String> = store
        .prepare("SELECT path FROM scopes ORDER BY path")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap().display().to_string();
    assert!(scopes.contains(&canonical(&csv)), "{scopes:?}");
    assert!(scopes.contains(&canonical(&file)), "{scopes:?}");
    assert_eq!(snapshot(&csv), csv_before, "the CSV folder changed");
    assert_eq!(
        snapshot(file.parent().unwrap()),
        file_before,
        "the DuckDB folder changed"
    );
}
