//! Names with spaces quoted where the model wrote them bare (`FROM Café Kunden`); on
//! PostgreSQL also names with capitals (`FROM Album` -> `FROM "Album"`), which it would
//! otherwise fold to lower case and not find.

use crate::core::db::ident::{is_identifier_char, quote_identifier};
use crate::core::db::schema::Schema;
use crate::core::db::source::SqlDialect;
use crate::core::rewrite::{Rewrite, RewriteInput};

/// Quotes bare names with spaces; only the spelling changes, so it runs on every query.
pub(crate) struct QuoteNames;

impl Rewrite for QuoteNames {
    fn name(&self) -> &'static str {
        "quote_names"
    }

    fn apply(&self, sql: &str, input: &RewriteInput<'_>) -> Option<String> {
        let mut quoted = quote_bare_names(sql, input.schema);
        if input.dialect == SqlDialect::Postgres {
            quoted = quote_mixed_case_names(&quoted, input.schema);
        }
        (quoted != sql).then_some(quoted)
    }

    fn changes_meaning(&self) -> bool {
        false
    }
}

/// Quotes table and column names that contain spaces where the model wrote them bare
/// (`FROM Café Kunden`): SQLite would read the first word as the name and fail, and a small
/// model repeats the same text when shown the error.
pub(crate) fn quote_bare_names(sql: &str, schema: &Schema) -> String {
    let mut names: Vec<&str> = schema
        .tables
        .iter()
        .flat_map(|t| {
            std::iter::once(t.name.as_str()).chain(t.columns.iter().map(|c| c.name.as_str()))
        })
        .filter(|name| name.contains(char::is_whitespace))
        .collect();
    if names.is_empty() {
        return sql.to_string();
    }
    // Longest first, so "Order Line Item" wins over "Order Line".
    names.sort_by_key(|name| std::cmp::Reverse(name.len()));
    names.dedup();
    let mut out = String::with_capacity(sql.len() + 8);
    let mut quote: Option<char> = None;
    let mut rest = sql;
    while let Some(c) = rest.chars().next() {
        if let Some(open) = quote {
            let close = if open == '[' { ']' } else { open };
            if c == close {
                quote = None;
            }
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        if matches!(c, '\'' | '"' | '`' | '[') {
            quote = Some(c);
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let starts_word = !out.chars().next_back().is_some_and(is_identifier_char);
        let matched = starts_word
            .then(|| {
                names.iter().find(|name| {
                    rest.get(..name.len())
                        .is_some_and(|head| head.eq_ignore_ascii_case(name))
                        && !rest[name.len()..]
                            .chars()
                            .next()
                            .is_some_and(is_identifier_char)
                })
            })
            .flatten();
        if let Some(name) = matched {
            out.push_str(&quote_identifier(name));
            rest = &rest[name.len()..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// PostgreSQL folds a bare name to lower case, so `Album` finds no table named `"Album"`.
/// Quotes each bare word that is a table or column name with an upper-case letter, spelled
/// as the schema spells it; a word right before `(` (a function) or that is a SQL keyword
/// (unless written after a `.`) stays as written.
pub(crate) fn quote_mixed_case_names(sql: &str, schema: &Schema) -> String {
    let names: Vec<&str> = schema
        .tables
        .iter()
        .flat_map(|t| {
            std::iter::once(t.name.as_str()).chain(t.columns.iter().map(|c| c.name.as_str()))
        })
        .filter(|name| name.chars().any(char::is_uppercase))
        .collect();
    if names.is_empty() {
        return sql.to_string();
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut chars = sql.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if matches!(c, '\'' | '"') {
            out.push(c);
            for (_, inner) in chars.by_ref() {
                out.push(inner);
                if inner == c {
                    break;
                }
            }
            continue;
        }
        if !(c.is_alphabetic() || c == '_')
            || out.chars().next_back().is_some_and(is_identifier_char)
        {
            out.push(c);
            continue;
        }
        let mut end = start + c.len_utf8();
        while let Some(&(at, next)) = chars.peek() {
            if !is_identifier_char(next) {
                break;
            }
            end = at + next.len_utf8();
            chars.next();
        }
        let word = &sql[start..end];
        let after_dot = out.trim_end().ends_with('.');
        let before_paren = sql[end..].trim_start().starts_with('(');
        let next = sql[end..].trim_start();
        let keyword = !after_dot && is_keyword_here(word, next);
        match names.iter().find(|name| name.eq_ignore_ascii_case(word)) {
            Some(name) if !before_paren && !keyword => out.push_str(&quote_identifier(name)),
            _ => out.push_str(word),
        }
    }
    out
}

/// PostgreSQL's reserved words (a bare one is never a name), a date part inside
/// `EXTRACT(YEAR FROM d)` and a typed literal (`DATE '2020-01-01'`).
fn is_keyword_here(word: &str, next: &str) -> bool {
    const RESERVED: &[&str] = &[
        "ALL",
        "AND",
        "ANY",
        "AS",
        "ASC",
        "BETWEEN",
        "BY",
        "CASE",
        "CAST",
        "CROSS",
        "DESC",
        "DISTINCT",
        "ELSE",
        "END",
        "EXCEPT",
        "FALSE",
        "FETCH",
        "FOR",
        "FROM",
        "FULL",
        "GROUP",
        "HAVING",
        "ILIKE",
        "IN",
        "INNER",
        "INTERSECT",
        "IS",
        "JOIN",
        "LATERAL",
        "LEFT",
        "LIKE",
        "LIMIT",
        "NATURAL",
        "NOT",
        "NULL",
        "OFFSET",
        "ON",
        "ONLY",
        "OR",
        "ORDER",
        "OUTER",
        "RIGHT",
        "SELECT",
        "SOME",
        "TABLE",
        "THEN",
        "TO",
        "TRUE",
        "UNION",
        "USER",
        "USING",
        "WHEN",
        "WHERE",
        "WINDOW",
        "WITH",
    ];
    const DATE_PARTS: &[&str] = &[
        "CENTURY", "DAY", "DECADE", "DOW", "DOY", "EPOCH", "HOUR", "ISODOW", "MINUTE", "MONTH",
        "QUARTER", "SECOND", "WEEK", "YEAR",
    ];
    const TYPED_LITERALS: &[&str] = &["DATE", "INTERVAL", "TIME", "TIMESTAMP"];
    let upper = word.to_ascii_uppercase();
    let next_word: String = next
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase();
    RESERVED.contains(&upper.as_str())
        || (DATE_PARTS.contains(&upper.as_str()) && next_word == "FROM")
        || (TYPED_LITERALS.contains(&upper.as_str()) && next.starts_with('\''))
}

#[cfg(test)]
mod quoting_tests {
    use super::*;
    use crate::core::db::schema::{Column, Table};

    fn schema_with(tables: &[(&str, &[&str])]) -> Schema {
        Schema {
            tables: tables
                .iter()
                .map(|(name, columns)| Table {
                    name: name.to_string(),
                    columns: columns
                        .iter()
                        .map(|c| Column {
                            name: c.to_string(),
                            declared_type: "TEXT".into(),
                            primary_key: false,
                            not_null: false,
                            sample_values: Vec::new(),
                            distinct_values: None,
                        })
                        .collect(),
                    is_view: false,
                    foreign_keys: Vec::new(),
                    row_count: None,
                })
                .collect(),
            broken: Vec::new(),
        }
    }

    #[test]
    fn postgres_quotes_mixed_case_names_but_not_functions_keywords_or_literals() {
        let schema = schema_with(&[("Album", &["Title", "Year", "lower_case"]), ("t", &["x"])]);
        assert_eq!(
            quote_mixed_case_names(
                "SELECT a.Title, title, lower_case, Year, EXTRACT(YEAR FROM d), count(*) \
                 FROM album AS a WHERE a.Year > 1 AND Title = 'Title' AND \"Title\" IS NOT NULL",
                &schema
            ),
            "SELECT a.\"Title\", \"Title\", lower_case, \"Year\", EXTRACT(YEAR FROM d), count(*) \
             FROM \"Album\" AS a WHERE a.\"Year\" > 1 AND \"Title\" = 'Title' AND \"Title\" IS NOT NULL"
        );
    }

    #[test]
    fn quotes_spaced_names_written_bare_and_leaves_the_rest() {
        let schema = schema_with(&[
            ("Café Kunden", &["Kunden Nr", "Stadt"]),
            ("Orders", &["Id"]),
        ]);
        assert_eq!(
            quote_bare_names(
                "SELECT COUNT(*) FROM Café Kunden WHERE Stadt = 'Café Kunden'",
                &schema
            ),
            "SELECT COUNT(*) FROM \"Café Kunden\" WHERE Stadt = 'Café Kunden'"
        );
        assert_eq!(
            quote_bare_names(
                "SELECT \"Kunden Nr\", kunden nr FROM \"Café Kunden\"",
                &schema
            ),
            "SELECT \"Kunden Nr\", \"Kunden Nr\" FROM \"Café Kunden\""
        );
        assert_eq!(
            quote_bare_names("SELECT Id FROM Orders", &schema),
            "SELECT Id FROM Orders"
        );
        assert_eq!(
            quote_bare_names("SELECT XCafé Kunden FROM t", &schema),
            "SELECT XCafé Kunden FROM t"
        );
    }
}
