//! The first line of the read-only defence: exactly one statement, and it must be a query.
//!
//! This check runs on the model's text before SQLite sees it, so the user gets a typed reason
//! ("refused: DELETE") instead of a driver error. It is not the only defence: the executor
//! opens the database read-only, sets `query_only` and installs an authorizer, so SQL that
//! this parser cannot read still cannot write.

use sqlparser::ast::{SetExpr, Statement};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::Parser;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum GuardError {
    #[error("the model produced no SQL")]
    Empty,
    #[error("refused: {count} statements; only a single query may run")]
    MultipleStatements { count: usize },
    #[error("refused: '{kind}' would change the database; only read-only queries may run")]
    NotReadOnly { kind: String },
    /// Not a statement SQLite knows ("SELEC ..."): a typo, not an attempt to write.
    #[error("syntax error: '{word}' does not start a query (queries start with SELECT or WITH)")]
    Syntax { word: String },
}

/// What the guard concluded about a statement it let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GuardVerdict {
    /// Parsed as exactly one read-only query.
    Query,
    /// The parser could not read it (SQLite dialect gaps); SQLite's own read-only
    /// enforcement decides. Carries the parser's message for the log.
    Unparsed(String),
}

/// Checks one piece of SQL. Returns the verdict, or why it must not run.
pub(crate) fn check_read_only(sql: &str) -> Result<GuardVerdict, GuardError> {
    let trimmed = sql.trim().trim_end_matches(';').trim();
    if trimmed.is_empty() {
        return Err(GuardError::Empty);
    }
    match Parser::parse_sql(&SQLiteDialect {}, trimmed) {
        Ok(statements) => match statements.as_slice() {
            [] => Err(GuardError::Empty),
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
            if !matches!(keyword.as_str(), "SELECT" | "WITH" | "VALUES" | "(") {
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
    "COMMIT",
    "CREATE",
    "DELETE",
    "DETACH",
    "DROP",
    "END",
    "EXPLAIN",
    "INSERT",
    "PRAGMA",
    "REINDEX",
    "RELEASE",
    "REPLACE",
    "ROLLBACK",
    "SAVEPOINT",
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
