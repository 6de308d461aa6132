//! The first line of the read-only defence: exactly one statement, and it must be a query.
//!
//! This check runs on the model's text before SQLite sees it, so the user gets a typed reason
//! ("refused: DELETE") instead of a driver error. It is not the only defence: the executor
//! opens the database read-only, sets `query_only` and installs an authorizer, so SQL that
//! this parser cannot read still cannot write.
//!
//! On PostgreSQL ([`check_read_only_for`]) the same rules hold with its parser, and more is
//! refused, since its SQL reaches further: a data-modifying `WITH`, row locks (`FOR
//! UPDATE`), and functions that touch server files, large objects, other connections,
//! settings, sequences or advisory locks ([`PG_REFUSED_FUNCTIONS`]). The server refuses
//! writes again in its `READ ONLY` transaction.
//!
//! On DuckDB the same holds, and the functions that read files or the system are refused
//! too ([`DUCKDB_REFUSED_FUNCTIONS`]), as is a file path where a table name goes (`FROM
//! 'x.csv'`): only the views a CSV or Parquet source was opened with read the user's
//! files. DuckDB refuses writes again (read-only database) and file access (external
//! access off, configuration locked).

use sqlparser::ast::{Query, SetExpr, Statement, Visit, Visitor};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::core::db::source::SqlDialect;

/// PostgreSQL functions a question never needs and that act outside the query: server
/// files, large objects, other servers, other sessions, settings, sequences, advisory
/// locks, SQL run from a string. A name ending in `*` is a prefix.
pub(crate) const PG_REFUSED_FUNCTIONS: &[&str] = &[
    "pg_read_*",
    "pg_ls_*",
    "pg_stat_file",
    "pg_file_*",
    "pg_current_logfile",
    "lo_*",
    "loread",
    "lowrite",
    "dblink*",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_switch_wal",
    "pg_promote",
    "pg_create_*",
    "pg_drop_replication_slot",
    "pg_logical_*",
    "pg_notify",
    "pg_advisory*",
    "pg_try_advisory*",
    "pg_import_system_collations",
    "set_config",
    "nextval",
    "setval",
    "query_to_xml*",
    "cursor_to_xml*",
    "txid_current",
    "pg_current_xact_id",
];

/// DuckDB functions that read files, other databases or the system, or change the
/// database; a question never needs them. A name ending in `*` is a prefix.
pub(crate) const DUCKDB_REFUSED_FUNCTIONS: &[&str] = &[
    "read_*",
    "parquet_*",
    "sniff_csv",
    "glob",
    "query",
    "query_table",
    "checkpoint",
    "force_checkpoint",
    "iceberg_*",
    "delta_scan",
    "st_read",
    "sqlite_*",
    "postgres_*",
    "mysql_*",
    "http_*",
    "duckdb_secrets",
    "which_secret",
    "load_aws_credentials",
    "getenv",
    "json_execute_serialized_sql",
    "nextval",
    "ducklake_*",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("the model produced no SQL")]
    Empty,
    #[error("refused: {count} statements; only a single query may run")]
    MultipleStatements { count: usize },
    #[error("refused: '{kind}' would change the database; only read-only queries may run")]
    NotReadOnly { kind: String },
    #[error(
        "refused: '{name}' acts outside the query (server files, sessions, settings or \
         locks); only plain read-only queries may run"
    )]
    SideEffect { name: String },
    /// A file named where a table goes (DuckDB would read it): the model can name the
    /// table instead.
    #[error("refused: {what} reads a file directly; query the tables of the database instead")]
    FileRead { what: String },
    /// Not a statement SQLite knows ("SELEC ..."): a typo, not an attempt to write.
    #[error("syntax error: '{word}' does not start a query (queries start with SELECT or WITH)")]
    Syntax { word: String },
}

/// What the guard concluded about a statement it let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardVerdict {
    /// Parsed as exactly one read-only query.
    Query,
    /// The parser could not read it (SQLite dialect gaps); SQLite's own read-only
    /// enforcement decides. Carries the parser's message for the log.
    Unparsed(String),
}

/// Checks one piece of SQL for SQLite. Returns the verdict, or why it must not run.
#[cfg(test)]
pub(crate) fn check_read_only(sql: &str) -> Result<GuardVerdict, GuardError> {
    check_read_only_for(sql, SqlDialect::Sqlite)
}

/// Checks one piece of SQL in `dialect`. Returns the verdict, or why it must not run.
pub(crate) fn check_read_only_for(
    sql: &str,
    dialect: SqlDialect,
) -> Result<GuardVerdict, GuardError> {
    let trimmed = sql.trim().trim_end_matches(';').trim();
    if trimmed.is_empty() {
        return Err(GuardError::Empty);
    }
    match dialect {
        SqlDialect::Postgres => refuse_functions(trimmed, dialect, PG_REFUSED_FUNCTIONS)?,
        SqlDialect::DuckDb => {
            refuse_functions(trimmed, dialect, DUCKDB_REFUSED_FUNCTIONS)?;
            refuse_file_paths(trimmed)?;
        }
        SqlDialect::Sqlite => {}
    }
    match Parser::parse_sql(dialect.parser().as_ref(), trimmed) {
        Ok(statements) => match statements.as_slice() {
            [] => Err(GuardError::Empty),
            [statement] if dialect != SqlDialect::Sqlite => {
                check_nested_statement(statement, trimmed)
            }
            [statement] => check_statement(statement, trimmed),
            many => Err(GuardError::MultipleStatements { count: many.len() }),
        },
        Err(error) => {
            // A parse failure must not let an obvious write slip through as "unparsed".
            let count = count_statements(trimmed);
            if count > 1 {
                return Err(GuardError::MultipleStatements { count });
            }
            let keyword = leading_keyword(trimmed);
            // DuckDB also reads `FROM t SELECT x` as a query.
            let duck_from = dialect == SqlDialect::DuckDb && keyword == "FROM";
            if !duck_from && !matches!(keyword.as_str(), "SELECT" | "WITH" | "VALUES" | "(") {
                return Err(if STATEMENT_KEYWORDS.contains(&keyword.as_str()) {
                    GuardError::NotReadOnly { kind: keyword }
                } else {
                    GuardError::Syntax { word: keyword }
                });
            }
            Ok(GuardVerdict::Unparsed(error.to_string()))
        }
    }
}

/// The words SQLite starts a statement other than a query with; any other first word is a
/// typo, refused as a syntax error rather than as a write.
const STATEMENT_KEYWORDS: &[&str] = &[
    "ALTER",
    "ANALYZE",
    "ATTACH",
    "BEGIN",
    "CALL",
    "CHECKPOINT",
    "COMMIT",
    "COPY",
    "CREATE",
    "DELETE",
    "DETACH",
    "DROP",
    "END",
    "EXPLAIN",
    "EXPORT",
    "FORCE",
    "IMPORT",
    "INSERT",
    "INSTALL",
    "LOAD",
    "PRAGMA",
    "REINDEX",
    "RELEASE",
    "REPLACE",
    "RESET",
    "ROLLBACK",
    "SAVEPOINT",
    "SET",
    "TRUNCATE",
    "UPDATE",
    "UPSERT",
    "VACUUM",
];

/// The tables a query reads, as written in it (CTE names excluded), in order of appearance.
pub(crate) fn referenced_tables(sql: &str) -> Vec<String> {
    let Ok(statements) = Parser::parse_sql(&SQLiteDialect {}, sql) else {
        return Vec::new();
    };
    let mut ctes: Vec<String> = Vec::new();
    let _ = sqlparser::ast::visit_statements(&statements, |statement| {
        if let Statement::Query(query) = statement
            && let Some(with) = &query.with
        {
            ctes.extend(
                with.cte_tables
                    .iter()
                    .map(|cte| cte.alias.name.value.to_lowercase()),
            );
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    let mut tables: Vec<String> = Vec::new();
    let _ = sqlparser::ast::visit_relations(&statements, |relation| {
        if let Some(name) = relation.0.last().and_then(|part| part.as_ident()) {
            let value = name.value.clone();
            let known = tables.iter().any(|t| t.eq_ignore_ascii_case(&value));
            if !known && !ctes.contains(&value.to_lowercase()) {
                tables.push(value);
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    tables
}

fn check_statement(statement: &Statement, sql: &str) -> Result<GuardVerdict, GuardError> {
    match statement {
        Statement::Query(query) if set_expr_is_read_only(&query.body) => Ok(GuardVerdict::Query),
        Statement::Query(_) => Err(GuardError::NotReadOnly {
            kind: "data-modifying WITH".into(),
        }),
        _ => Err(GuardError::NotReadOnly {
            kind: leading_keyword(sql),
        }),
    }
}

/// PostgreSQL and DuckDB: every query in the statement (CTEs and subqueries too) must read
/// only and lock nothing.
fn check_nested_statement(statement: &Statement, sql: &str) -> Result<GuardVerdict, GuardError> {
    check_statement(statement, sql)?;
    let mut queries = PgQueries(None);
    let _ = statement.visit(&mut queries);
    match queries.0 {
        Some(refused) => Err(refused),
        None => Ok(GuardVerdict::Query),
    }
}

/// Finds the first nested query that writes (`WITH d AS (DELETE ... RETURNING *)`) or
/// takes row locks (`FOR UPDATE`).
struct PgQueries(Option<GuardError>);

impl Visitor for PgQueries {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> std::ops::ControlFlow<()> {
        if !set_expr_is_read_only(&query.body) {
            self.0 = Some(GuardError::NotReadOnly {
                kind: "data-modifying WITH".into(),
            });
            return std::ops::ControlFlow::Break(());
        }
        if !query.locks.is_empty() {
            self.0 = Some(GuardError::NotReadOnly {
                kind: "FOR UPDATE/SHARE".into(),
            });
            return std::ops::ControlFlow::Break(());
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// Refuses a call of a `refused` name, found in the tokens (so outside string literals and
/// comments, quoted or not, and even in SQL the parser cannot read).
fn refuse_functions(sql: &str, dialect: SqlDialect, refused: &[&str]) -> Result<(), GuardError> {
    for pair in significant_tokens(sql, dialect).windows(2) {
        if let [Token::Word(word), Token::LParen] = pair
            && is_refused_function(&word.value, refused)
        {
            return Err(GuardError::SideEffect {
                name: format!("{}()", word.value),
            });
        }
    }
    Ok(())
}

/// DuckDB reads a file named where a table goes (`FROM 'sales.csv'`, `JOIN "x.parquet"`)
/// and runs a string as SQL through `query(...)`; only the source's own views may read
/// files, so a quoted string, or a name with a path or file extension, after FROM or JOIN
/// is refused.
fn refuse_file_paths(sql: &str) -> Result<(), GuardError> {
    for pair in significant_tokens(sql, SqlDialect::DuckDb).windows(2) {
        let [Token::Word(keyword), next] = pair else {
            continue;
        };
        if !matches!(keyword.keyword, Keyword::FROM | Keyword::JOIN) {
            continue;
        }
        let path = match next {
            Token::SingleQuotedString(text) => Some(text),
            Token::Word(word)
                if word.quote_style.is_some() && word.value.contains(['.', '/', '\\']) =>
            {
                Some(&word.value)
            }
            _ => None,
        };
        if let Some(path) = path {
            return Err(GuardError::FileRead {
                what: format!("FROM '{path}'"),
            });
        }
    }
    Ok(())
}

/// The tokens of `sql` other than whitespace; none when the tokenizer cannot read it (then
/// the parse cannot either, and decides).
fn significant_tokens(sql: &str, dialect: SqlDialect) -> Vec<Token> {
    let parser = dialect.parser();
    let Ok(tokens) = Tokenizer::new(parser.as_ref(), sql).tokenize() else {
        return Vec::new();
    };
    tokens
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect()
}

fn is_refused_function(name: &str, refused: &[&str]) -> bool {
    let name = name.to_ascii_lowercase();
    refused
        .iter()
        .any(|refused| match refused.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == *refused,
        })
}

fn set_expr_is_read_only(expr: &SetExpr) -> bool {
    match expr {
        SetExpr::Select(select) => select.into.is_none(),
        SetExpr::Query(query) => set_expr_is_read_only(&query.body),
        SetExpr::SetOperation { left, right, .. } => {
            set_expr_is_read_only(left) && set_expr_is_read_only(right)
        }
        SetExpr::Values(_) | SetExpr::Table(_) => true,
        _ => false,
    }
}

fn leading_keyword(sql: &str) -> String {
    let word: String = sql
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase();
    if word.is_empty() {
        sql.trim_start().chars().take(1).collect()
    } else {
        word
    }
}

/// Counts `;`-separated statements outside string literals, quoted names and comments.
fn count_statements(sql: &str) -> usize {
    let mut count = 0;
    let mut has_content = false;
    let mut chars = sql.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\'' | '"' | '`' => {
                has_content = true;
                for inner in chars.by_ref() {
                    if inner == ch {
                        break;
                    }
                }
            }
            '[' => {
                has_content = true;
                for inner in chars.by_ref() {
                    if inner == ']' {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                for inner in chars.by_ref() {
                    if inner == '\n' {
                        break;
                    }
                }
            }
            ';' => {
                if has_content {
                    count += 1;
                }
                has_content = false;
            }
            c if c.is_whitespace() => {}
            _ => has_content = true,
        }
    }
    count + usize::from(has_content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_single_queries() {
        for sql in [
            "SELECT 1",
            "select count(*) from Album;",
            "WITH t AS (SELECT 1 AS x) SELECT x FROM t",
            "SELECT a FROM t UNION SELECT b FROM u ORDER BY 1",
        ] {
            assert!(check_read_only(sql).is_ok(), "{sql}");
        }
    }

    #[test]
    fn a_misspelt_keyword_is_a_syntax_error_not_a_write() {
        assert_eq!(
            check_read_only("SELEC Name FROM Artist"),
            Err(GuardError::Syntax {
                word: "SELEC".into()
            })
        );
        assert_eq!(
            check_read_only("SELEC Name FROM Artist")
                .unwrap_err()
                .to_string(),
            "syntax error: 'SELEC' does not start a query (queries start with SELECT or WITH)"
        );
        assert_eq!(
            check_read_only("DELET FROM Artist WHERE 1 = ("),
            Err(GuardError::Syntax {
                word: "DELET".into()
            })
        );
        assert!(matches!(
            check_read_only("PRAGMA writable_schema = 1 ("),
            Err(GuardError::NotReadOnly { .. })
        ));
    }

    #[test]
    fn refuses_writes_and_multiple_statements() {
        let refused = [
            (
                "DELETE FROM Album",
                GuardError::NotReadOnly {
                    kind: "DELETE".into(),
                },
            ),
            (
                "DROP TABLE Album",
                GuardError::NotReadOnly {
                    kind: "DROP".into(),
                },
            ),
            (
                "ATTACH DATABASE 'x.db' AS x",
                GuardError::NotReadOnly {
                    kind: "ATTACH".into(),
                },
            ),
            (
                "PRAGMA query_only = 0",
                GuardError::NotReadOnly {
                    kind: "PRAGMA".into(),
                },
            ),
            (
                "SELECT 1; DELETE FROM Album",
                GuardError::MultipleStatements { count: 2 },
            ),
            ("  ;  ", GuardError::Empty),
        ];
        for (sql, expected) in refused {
            assert_eq!(check_read_only(sql), Err(expected), "{sql}");
        }
    }

    /// Every write or side effect the PostgreSQL guard must refuse before the server sees it
    /// (the same list runs against a real server with the guard bypassed, in
    /// `tests/postgres.rs`).
    pub(crate) const PG_REFUSED: &[&str] = &[
        "DELETE FROM \"Album\"",
        "INSERT INTO \"Genre\" (\"Name\") VALUES ('x')",
        "UPDATE \"Album\" SET \"Title\" = 'x'",
        "DROP TABLE \"Album\"",
        "TRUNCATE \"Album\"",
        "CREATE TABLE t (x int)",
        "ALTER TABLE \"Album\" ADD COLUMN x int",
        "GRANT SELECT ON \"Album\" TO PUBLIC",
        "COPY \"Album\" TO STDOUT",
        "COPY \"Album\" FROM '/tmp/x'",
        "COPY (SELECT 1) TO '/tmp/nano-analyst-copy'",
        "DO $$ BEGIN DELETE FROM \"Album\"; END $$",
        "CALL some_procedure()",
        "SET statement_timeout = 0",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
        "RESET ALL",
        "LISTEN channel",
        "NOTIFY channel, 'x'",
        "UNLISTEN *",
        "VACUUM \"Album\"",
        "LOCK TABLE \"Album\"",
        "PREPARE p AS DELETE FROM \"Album\"",
        "EXECUTE p",
        "EXPLAIN ANALYZE DELETE FROM \"Album\"",
        "BEGIN",
        "COMMIT",
        "WITH d AS (DELETE FROM \"Album\" RETURNING *) SELECT count(*) FROM d",
        "SELECT * FROM \"Album\" FOR UPDATE",
        "SELECT * INTO new_table FROM \"Album\"",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT pg_read_binary_file('/etc/passwd')",
        "SELECT * FROM pg_ls_dir('.')",
        "SELECT pg_stat_file('postgresql.conf')",
        "SELECT lo_import('/etc/passwd')",
        "SELECT lo_export(1, '/tmp/x')",
        "SELECT * FROM dblink('host=evil', 'SELECT 1') AS t(x int)",
        "SELECT pg_catalog.pg_read_file('pg_hba.conf')",
        "SELECT \"pg_read_file\"('x')",
        "SELECT set_config('statement_timeout', '0', false)",
        "SELECT nextval('seq')",
        "SELECT pg_advisory_lock(1)",
        "SELECT pg_terminate_backend(1)",
        "SELECT pg_notify('c', 'x')",
        "SELECT query_to_xml('DELETE FROM \"Album\"', true, true, '')",
        "SELECT 1; DELETE FROM \"Album\"",
    ];

    #[test]
    fn postgres_refuses_writes_side_effects_and_server_functions() {
        for sql in PG_REFUSED {
            assert!(
                check_read_only_for(sql, SqlDialect::Postgres).is_err(),
                "{sql} passed the PostgreSQL guard"
            );
        }
        assert_eq!(
            check_read_only_for("SELECT pg_read_file('/etc/passwd')", SqlDialect::Postgres)
                .unwrap_err()
                .to_string(),
            "refused: 'pg_read_file()' acts outside the query (server files, sessions, settings \
             or locks); only plain read-only queries may run"
        );
    }

    #[test]
    fn postgres_accepts_its_own_read_only_queries() {
        for sql in [
            "SELECT \"Name\" FROM \"Artist\" WHERE \"Name\" ILIKE '%ac%'",
            "SELECT EXTRACT(YEAR FROM \"InvoiceDate\") AS y, sum(\"Total\")::numeric(10,2) \
             FROM \"Invoice\" GROUP BY 1 ORDER BY 1",
            "SELECT date_trunc('month', d) - INTERVAL '30 days' FROM t",
            "WITH x AS (SELECT 1 AS a) SELECT a || 'b' FROM x",
            "SELECT 'pg_read_file(x)' AS text_not_a_call, lower(\"Name\") FROM \"Genre\"",
        ] {
            assert_eq!(
                check_read_only_for(sql, SqlDialect::Postgres),
                Ok(GuardVerdict::Query),
                "{sql}"
            );
        }
    }

    /// Every write, side effect and file read the DuckDB guard must refuse (a DuckDB
    /// source runs the same statements with the guard bypassed in `tests/duck_sources.rs`).
    const DUCKDB_REFUSED: &[&str] = &[
        "DELETE FROM Album",
        "INSERT INTO Genre VALUES (1, 'x')",
        "UPDATE Album SET Title = 'x'",
        "DROP TABLE Album",
        "CREATE TABLE t AS SELECT 1",
        "CREATE OR REPLACE VIEW Album AS SELECT 1",
        "ALTER TABLE Album RENAME TO a",
        "COPY Album TO '/tmp/x.csv'",
        "COPY (SELECT 1) TO '/tmp/x.parquet' (FORMAT parquet)",
        "COPY Album FROM '/tmp/x.csv'",
        "ATTACH '/tmp/x.duckdb' AS x",
        "DETACH x",
        "INSTALL httpfs",
        "LOAD httpfs",
        "FORCE INSTALL httpfs",
        "PRAGMA enable_profiling",
        "SET enable_external_access = true",
        "SET GLOBAL lock_configuration = false",
        "RESET ALL",
        "EXPORT DATABASE '/tmp/x'",
        "IMPORT DATABASE '/tmp/x'",
        "CALL checkpoint()",
        "CHECKPOINT",
        "USE other",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_csv_auto('/etc/passwd')",
        "SELECT * FROM read_parquet('x.parquet')",
        "SELECT * FROM parquet_scan('x.parquet')",
        "SELECT * FROM read_json('x.json')",
        "SELECT * FROM read_ndjson_objects('x.json')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT content FROM read_blob('/etc/passwd')",
        "SELECT * FROM glob('/home/*')",
        "SELECT * FROM sniff_csv('/etc/passwd')",
        "SELECT * FROM parquet_metadata('x.parquet')",
        "SELECT * FROM query('DELETE FROM Album')",
        "SELECT * FROM sqlite_scan('x.db', 't')",
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM 'data.csv'",
        "SELECT * FROM \"data.parquet\"",
        "SELECT a.* FROM Album a JOIN '/etc/passwd' p ON true",
        "SELECT nextval('seq')",
        "SELECT getenv('HOME')",
        "SELECT * FROM duckdb_secrets()",
        "WITH x AS (SELECT * FROM read_csv('/etc/passwd')) SELECT * FROM x",
        "SELECT 1; DELETE FROM Album",
    ];

    #[test]
    fn duckdb_refuses_writes_side_effects_and_file_reads() {
        for sql in DUCKDB_REFUSED {
            assert!(
                check_read_only_for(sql, SqlDialect::DuckDb).is_err(),
                "{sql} passed the DuckDB guard"
            );
        }
        assert_eq!(
            check_read_only_for("SELECT * FROM 'data.csv'", SqlDialect::DuckDb)
                .unwrap_err()
                .to_string(),
            "refused: FROM 'data.csv' reads a file directly; query the tables of the database \
             instead"
        );
    }

    #[test]
    fn duckdb_accepts_its_own_read_only_queries() {
        for sql in [
            "SELECT Name FROM Artist WHERE Name ILIKE '%ac%'",
            "SELECT year(InvoiceDate) AS y, round(sum(Total), 2) FROM Invoice GROUP BY ALL \
             ORDER BY ALL",
            "SELECT strftime(InvoiceDate, '%Y-%m') AS m, count(*) FROM Invoice GROUP BY 1",
            "SELECT InvoiceDate - INTERVAL 30 DAY FROM Invoice",
            "SELECT * EXCLUDE (Title) FROM Album",
            "WITH t AS (SELECT 1 AS x) SELECT x FROM t",
            "SELECT 'read_csv(x)' AS text_not_a_call, \"Media Type\".Name FROM \"Media Type\"",
            "FROM Album SELECT Title",
        ] {
            assert!(
                check_read_only_for(sql, SqlDialect::DuckDb).is_ok(),
                "{sql}: {:?}",
                check_read_only_for(sql, SqlDialect::DuckDb)
            );
        }
    }

    #[test]
    fn lists_referenced_tables_without_ctes() {
        let sql = "WITH top AS (SELECT ArtistId FROM Album) SELECT a.Name FROM Artist a \
                   JOIN top ON top.ArtistId = a.ArtistId JOIN \"Media Type\" m ON 1";
        assert_eq!(referenced_tables(sql), ["Album", "Artist", "Media Type"]);
    }

    #[test]
    fn counts_statements_outside_literals() {
        assert_eq!(count_statements("SELECT ';' FROM t"), 1);
        assert_eq!(count_statements("SELECT 1; SELECT 2;"), 2);
        assert_eq!(count_statements("SELECT 1 -- ; comment\n"), 1);
    }
}

#[cfg(test)]
#[path = "guard_fuzz.rs"]
mod fuzz;
