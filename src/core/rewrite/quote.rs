//! Names with spaces quoted where the model wrote them bare (`FROM Café Kunden`).

use crate::core::db::ident::{is_identifier_char, quote_identifier};
use crate::core::db::schema::Schema;
use crate::core::rewrite::{Rewrite, RewriteInput};

/// Quotes bare names with spaces; only the spelling changes, so it runs on every query.
pub(crate) struct QuoteNames;

impl Rewrite for QuoteNames {
    fn name(&self) -> &'static str {
        "quote_names"
    }

    fn apply(&self, sql: &str, input: &RewriteInput<'_>) -> Option<String> {
        let quoted = quote_bare_names(sql, input.schema);
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
