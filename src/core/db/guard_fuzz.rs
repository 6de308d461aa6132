//! Property tests for the read-only defence: random and mutated SQL never panics the guard,
//! and nothing that writes gets through. (The SQL extraction has its own, in `extract.rs`.)
//!
//! Two oracles judge the guard. SQLite itself: a statement the guard calls a query must
//! compile to a read-only program (`sqlite3_stmt_readonly`) on a writable copy of the
//! schema. And the file: every mutated statement the guard lets through is run by
//! [`ReadOnlyDb`], and the database file must be byte-identical afterwards.

use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;

use super::{GuardVerdict, check_read_only};
use crate::core::db::exec::{ExecLimits, ReadOnlyDb};

const SCHEMA: &str = "CREATE TABLE Artist(ArtistId INTEGER PRIMARY KEY, Name TEXT);
    CREATE TABLE Album(AlbumId INTEGER PRIMARY KEY, Title TEXT, ArtistId INTEGER REFERENCES Artist);
    INSERT INTO Artist VALUES (1, 'AC/DC'), (2, 'Accept');
    INSERT INTO Album VALUES (1, 'For Those About To Rock', 1), (2, 'Balls to the Wall', 2);";

/// Statements the mutations start from: reads, and every kind of write the guard refuses.
const SEEDS: &[&str] = &[
    "SELECT * FROM Album",
    "SELECT count(*) FROM Album JOIN Artist ON Album.ArtistId = Artist.ArtistId",
    "WITH a AS (SELECT 1 AS x) SELECT x FROM a",
    "VALUES (1), (2)",
    "SELECT Title FROM Album UNION SELECT Name FROM Artist",
    "DELETE FROM Album",
    "INSERT INTO Artist(Name) VALUES ('x')",
    "INSERT INTO Artist SELECT * FROM Artist",
    "REPLACE INTO Artist VALUES (1, 'y')",
    "UPDATE Album SET Title = 'x'",
    "DROP TABLE Album",
    "CREATE TABLE t(x)",
    "CREATE TEMP TRIGGER tr AFTER INSERT ON Album BEGIN DELETE FROM Artist; END",
    "ALTER TABLE Album RENAME TO Old",
    "ATTACH DATABASE 'other.db' AS other",
    "VACUUM INTO 'copy.db'",
    "PRAGMA query_only = 0",
    "PRAGMA journal_mode = DELETE",
    "WITH d AS (SELECT 1) DELETE FROM Album",
    "WITH d AS (SELECT 1) INSERT INTO Artist(Name) SELECT 'z' FROM d",
    "INSERT INTO Artist(ArtistId, Name) VALUES (1, 'x') ON CONFLICT DO UPDATE SET Name = 'y'",
    "DELETE FROM Album RETURNING *",
    "SELECT load_extension('evil')",
    "BEGIN; DELETE FROM Album; COMMIT",
    "SELECT 1; DROP TABLE Album",
    "ANALYZE",
    "REINDEX",
    "SAVEPOINT s",
];

/// Pieces the mutations splice in: keywords that start writes, statement separators,
/// comment and quote openers that change how the rest is read.
const TOKENS: &[&str] = &[
    ";",
    "; ",
    "--",
    "--\n",
    "/*",
    "*/",
    "'",
    "\"",
    "`",
    "[",
    "]",
    "(",
    ")",
    "\n",
    "\0",
    "\u{feff}",
    " ",
    "SELECT",
    "DELETE FROM Album",
    "INSERT INTO Artist VALUES(9,'q')",
    "UPDATE Artist SET Name='q'",
    "DROP TABLE Artist",
    "ATTACH 'x.db' AS y",
    "VACUUM",
    "PRAGMA writable_schema=1",
    "WITH",
    "AS",
    "RETURNING *",
    "CREATE VIEW v AS",
    "EXPLAIN",
    "INTO",
    "UNION",
    "VALUES(1)",
    "FROM Album",
    "*",
    "=",
    "1",
    "x",
    "BEGIN",
    "END",
];

#[derive(Debug, Clone)]
enum Mutation {
    Insert { at: usize, token: usize },
    Delete { at: usize, len: usize },
    Byte { at: usize, byte: u8 },
    Append { seed: usize },
    Case { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, token)| Mutation::Insert { at, token }),
        (any::<usize>(), 1usize..12).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), 0x20u8..0x7f).prop_map(|(at, byte)| Mutation::Byte { at, byte }),
        (0..SEEDS.len()).prop_map(|seed| Mutation::Append { seed }),
        any::<usize>().prop_map(|at| Mutation::Case { at }),
    ]
}

/// The nearest char boundary at or before `at % (len + 1)`.
fn boundary(text: &str, at: usize) -> usize {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(mut text: String, mutation: &Mutation) -> String {
    match *mutation {
        Mutation::Insert { at, token } => text.insert_str(boundary(&text, at), TOKENS[token]),
        Mutation::Delete { at, len } => {
            let start = boundary(&text, at);
            let end = boundary(&text, start.saturating_add(len).min(text.len()));
            text.replace_range(start..end.max(start), "");
        }
        Mutation::Byte { at, byte } => text.insert(boundary(&text, at), char::from(byte)),
        Mutation::Append { seed } => {
            text.push(' ');
            text.push_str(SEEDS[seed]);
        }
        Mutation::Case { at } => {
            let at = boundary(&text, at);
            let (head, tail) = text.split_at(at);
            text = format!("{head}{}", tail.to_lowercase());
        }
    }
    text
}

fn mutated_sql() -> impl Strategy<Value = String> {
    (0..SEEDS.len(), prop::collection::vec(mutation(), 0..6))
        .prop_map(|(seed, mutations)| mutations.iter().fold(SEEDS[seed].to_string(), apply))
}

fn any_sql() -> impl Strategy<Value = String> {
    prop_oneof![3 => mutated_sql(), 1 => "\\PC{0,120}", 1 => "[ -~\n]{0,120}"]
}

/// Whether SQLite compiles `sql` to a program that writes, on a writable copy.
fn sqlite_says_it_writes(conn: &rusqlite::Connection, sql: &str) -> bool {
    match conn.prepare(sql) {
        Ok(statement) => !statement.readonly(),
        // A tail after the first statement: a second statement the guard should have seen.
        Err(rusqlite::Error::MultipleStatement) => true,
        Err(_) => false,
    }
}

fn writable_copy() -> rusqlite::Connection {
    let conn = rusqlite::Connection::open_in_memory().expect("in-memory database");
    conn.execute_batch(SCHEMA).expect("schema");
    conn
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn the_guard_never_lets_sqlite_compile_a_write(sql in any_sql()) {
        let conn = writable_copy();
        if let Ok(GuardVerdict::Query) = check_read_only(&sql) {
            let trimmed = sql.trim().trim_end_matches(';').trim();
            prop_assert!(!sqlite_says_it_writes(&conn, trimmed), "guard passed a write: {sql:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn nothing_the_guard_passes_changes_the_file(statements in prop::collection::vec(any_sql(), 1..8)) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("fuzz.db");
        rusqlite::Connection::open(&path)
            .and_then(|conn| conn.execute_batch(SCHEMA))
            .expect("fixture");
        let before = std::fs::read(&path).expect("read fixture");
        let db = ReadOnlyDb::open(Path::new(&path)).expect("open read-only");
        let limits = ExecLimits { timeout: Duration::from_millis(200), ..ExecLimits::default() };
        for sql in &statements {
            if check_read_only(sql).is_ok() {
                let _ = db.execute(sql, limits);
            }
            // The executor alone must hold too, as if the guard had been bypassed.
            let _ = db.execute(sql, limits);
        }
        drop(db);
        prop_assert_eq!(std::fs::read(&path).expect("read back"), before);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        prop_assert!(names.iter().all(|n| n.starts_with("fuzz.db")), "new files: {names:?}");
    }
}
