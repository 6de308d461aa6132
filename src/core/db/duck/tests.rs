//! CSV, TSV and Parquet files opened in place, and DuckDB's own lock-down: what a query
//! can no longer reach when the guard is bypassed.

use std::path::Path;

use crate::core::db::exec::{Cell, ExecError, ExecLimits, ReadOnlyDb};
use crate::core::db::source::SqlDialect;

fn write_parquet(path: &Path, sql: &str) {
    let conn = duckdb::Connection::open_in_memory().unwrap();
    conn.execute_batch(&format!(
        "COPY ({sql}) TO '{}' (FORMAT parquet)",
        path.display()
    ))
    .unwrap();
}

fn scalar(db: &ReadOnlyDb, sql: &str) -> Cell {
    db.execute(sql, ExecLimits::default())
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .rows[0][0]
        .clone()
}

#[test]
fn a_folder_of_csv_tsv_and_parquet_files_is_a_database() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sales 2024.csv"),
        "id,country,total\n1,Canada,2.5\n2,USA,4\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("regions.tsv"),
        "country\tregion\nCanada\tAmericas\n",
    )
    .unwrap();
    write_parquet(
        &dir.path().join("rates.parquet"),
        "SELECT 'CAD' AS code, 0.73 AS rate",
    );
    std::fs::write(dir.path().join("notes.md"), "not a table").unwrap();
    let db = ReadOnlyDb::open(dir.path()).unwrap();
    assert_eq!(db.dialect(), SqlDialect::DuckDb);
    let schema = db.askable_schema().unwrap();
    let names: Vec<&str> = schema.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["rates", "regions", "sales_2024"]);
    let sales = schema.table("sales_2024").unwrap();
    assert_eq!(sales.row_count, Some(2));
    assert_eq!(sales.column("total").unwrap().declared_type, "DOUBLE");
    assert_eq!(
        sales.column("country").unwrap().sample_values,
        ["Canada", "USA"]
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT r.region FROM sales_2024 s JOIN regions r USING (country)"
        ),
        Cell::Text("Americas".into())
    );
    assert_eq!(scalar(&db, "SELECT rate FROM rates"), Cell::Real(0.73));
}

#[test]
fn a_csv_whose_types_change_late_is_read_with_types_from_the_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("code,amount\n");
    for i in 0..30_000 {
        text.push_str(&format!("{i},{i}\n"));
    }
    text.push_str("X-1,7\n");
    let path = dir.path().join("codes.csv");
    std::fs::write(&path, text).unwrap();
    let db = ReadOnlyDb::open(&path).unwrap();
    let schema = db.askable_schema().unwrap();
    let codes = schema.table("codes").unwrap();
    assert_eq!(codes.row_count, Some(30_001));
    assert_eq!(codes.column("code").unwrap().declared_type, "VARCHAR");
    assert_eq!(codes.column("amount").unwrap().declared_type, "BIGINT");
}

#[test]
fn the_session_cannot_reach_other_files_settings_or_extensions() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("people.csv");
    std::fs::write(&csv, "name\nAda\n").unwrap();
    let other = dir.path().join("other.csv");
    std::fs::write(&other, "secret\n42\n").unwrap();
    let before = std::fs::read(&csv).unwrap();
    let db = ReadOnlyDb::open(&csv).unwrap();
    let refused = [
        format!("SELECT * FROM read_csv('{}')", other.display()),
        format!("SELECT * FROM '{}'", other.display()),
        "SELECT * FROM read_text('/etc/hostname')".to_string(),
        format!("COPY people TO '{}' (USE_TMP_FILE false)", csv.display()),
        format!("COPY people TO '{}/copy.csv'", dir.path().display()),
        "SET enable_external_access = true".to_string(),
        "SET lock_configuration = false".to_string(),
        "INSTALL httpfs".to_string(),
        "LOAD json".to_string(),
        "ATTACH ':memory:' AS scratch".to_string(),
        "CREATE TABLE t AS SELECT 1".to_string(),
        "DROP VIEW people".to_string(),
        "SELECT 1; DROP VIEW people".to_string(),
    ];
    for sql in &refused {
        let outcome = db.execute(sql, ExecLimits::default());
        assert!(outcome.is_err(), "DuckDB ran: {sql}: {outcome:?}");
    }
    for (setting, value) in [
        ("enable_external_access", "false"),
        ("lock_configuration", "true"),
        ("autoload_known_extensions", "false"),
        ("autoinstall_known_extensions", "false"),
    ] {
        let shown = scalar(
            &db,
            &format!("SELECT current_setting('{setting}')::VARCHAR"),
        );
        assert_eq!(shown, Cell::Text(value.into()), "{setting}");
    }
    assert_eq!(scalar(&db, "SELECT count(*) FROM people"), Cell::Integer(1));
    drop(db);
    assert_eq!(std::fs::read(&csv).unwrap(), before);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["other.csv", "people.csv"]);
}

#[test]
fn a_multi_statement_string_never_reaches_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    std::fs::write(&csv, "x\n1\n").unwrap();
    let db = ReadOnlyDb::open(&csv).unwrap();
    assert_eq!(
        db.execute("SELECT 1; SELECT 2", ExecLimits::default()),
        Err(ExecError::NotReadOnly(
            "only one statement may run at a time".into()
        ))
    );
    // A semicolon inside a string is not a second statement.
    assert_eq!(
        scalar(&db, "SELECT ';' || x::VARCHAR FROM t"),
        Cell::Text(";1".into())
    );
}

#[test]
fn a_ragged_or_mis_encoded_csv_is_refused_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let ragged = dir.path().join("ragged.csv");
    std::fs::write(&ragged, "a,b\n1,2\n3,4,5\n6,7\n").unwrap();
    let error = ReadOnlyDb::open(&ragged).err().unwrap().to_string();
    assert_eq!(
        error,
        format!(
            "cannot read '{}': line 3: Expected Number of Columns: 2 Found: 3",
            ragged.display()
        )
    );
    let latin1 = dir.path().join("latin1.csv");
    std::fs::write(&latin1, b"name,city\nJos\xe9,M\xfcnchen\n".as_slice()).unwrap();
    let error = ReadOnlyDb::open(&latin1).err().unwrap().to_string();
    assert!(error.contains("This file is not utf-8 encoded"), "{error}");
    assert!(!error.contains('\n'), "{error}");
}
