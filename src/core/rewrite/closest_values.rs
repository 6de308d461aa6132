//! A query that ran and found nothing because it filters on a text no row holds
//! (`Country = 'US'` where the column holds `USA`, `State = 'NY'` where it holds `New
//! York`): the closest values of that column go back to the model, which picks one or keeps
//! its query.
//!
//! Not a rewrite: a value that is merely close may not be what the question means (an empty
//! answer can be the right one: nobody lives in Calgary), so the model decides with the
//! question in front of it, and a query it writes again is answered as it stands.

use rusqlite::{Connection, OptionalExtension, params};
use sqlparser::ast::{Expr, SelectItem, SetExpr, Statement, Value};
use strsim::normalized_damerau_levenshtein;

use crate::core::db::exec::{Cell, QueryResult};
use crate::core::db::ident::quote_identifier;
use crate::core::db::schema::Schema;
use crate::core::db::sql_ast::{parse_single_query, resolve_column};
use crate::core::rewrite::ground::searchable;
use crate::core::rewrite::text_filters::for_each_text_filter;

/// Distinct values read from one column to search for the closest.
const MAX_VALUES_SEARCHED: usize = 10_000;
/// Closest values offered per filter.
const MAX_OFFERED: usize = 3;
/// Below this spelling similarity (0-1) a value is not offered on spelling alone.
const MIN_SIMILARITY: f64 = 0.75;

/// One filter whose text no row holds, and the column's values closest to it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UnheldValue {
    /// `Table.column`, as the schema spells it.
    pub(crate) column: String,
    pub(crate) text: String,
    pub(crate) closest: Vec<String>,
}

/// No rows, or one row of zeros and NULLs (`COUNT(*)` = 0, `SUM` of nothing).
pub(crate) fn looks_empty(result: &QueryResult) -> bool {
    match result.rows.as_slice() {
        [] => true,
        [row] => row.iter().all(|cell| {
            matches!(cell, Cell::Null | Cell::Integer(0))
                || matches!(cell, Cell::Real(v) if *v == 0.0)
        }),
        _ => false,
    }
}

/// The text filters of `sql` that no row holds and that have close values.
pub(crate) fn unheld_values(sql: &str, schema: &Schema, conn: &Connection) -> Vec<UnheldValue> {
    let Some(Statement::Query(mut query)) = parse_single_query(sql) else {
        return Vec::new();
    };
    let mut found: Vec<UnheldValue> = Vec::new();
    for_each_text_filter(&mut query, schema, &mut |filter, tables| {
        let Expr::BinaryOp { left, right, .. } = filter else {
            return;
        };
        let Expr::Value(value) = right.as_ref() else {
            return;
        };
        let Value::SingleQuotedString(text) = &value.value else {
            return;
        };
        let Some((table, column)) = resolve_column(left, tables) else {
            return;
        };
        if !searchable(table) {
            return;
        }
        let from = quote_identifier(&table.name);
        let col = quote_identifier(&column);
        let held = conn
            .query_row(
                &format!("SELECT 1 FROM {from} WHERE {col} = ?1 LIMIT 1"),
                params![text],
                |_| Ok(()),
            )
            .optional();
        if !matches!(held, Ok(None)) {
            return;
        }
        let values = distinct_texts(conn, &from, &col);
        let closest = closest_values(text, &values);
        let name = format!("{}.{column}", table.name);
        if !closest.is_empty() && !found.iter().any(|f| f.column == name && f.text == *text) {
            found.push(UnheldValue {
                column: name,
                text: text.clone(),
                closest,
            });
        }
    });
    found
}

fn distinct_texts(conn: &Connection, from: &str, col: &str) -> Vec<String> {
    let sql = format!(
        "SELECT DISTINCT {col} FROM {from} WHERE typeof({col}) = 'text' LIMIT {MAX_VALUES_SEARCHED}"
    );
    conn.prepare(&sql)
        .and_then(|mut statement| {
            statement
                .query_map([], |row| row.get::<_, String>(0))?
                .collect()
        })
        .unwrap_or_default()
}

/// How close a value is to the text the query asked for: the kind of match first, then
/// spelling similarity. `None` when it is not close at all.
fn closeness(text: &str, value: &str) -> Option<(u8, f64)> {
    let wanted = letters_and_digits(text);
    let have = letters_and_digits(value);
    if wanted.is_empty() || have.is_empty() {
        return None;
    }
    let similarity = normalized_damerau_levenshtein(&wanted, &have);
    let kind = if wanted == have {
        // Spaces, punctuation or case: 'Aberdeen ' for 'Aberdeen', 'e-mail' for 'email'.
        0
    } else if wanted.chars().count() >= 2
        && (have.starts_with(&wanted) || initials(value) == wanted)
    {
        // A prefix or an abbreviation: 'US' for 'USA', 'NY' for 'New York'.
        1
    } else if has_all_words(value, text) || has_all_words(text, value) {
        2
    } else if similarity >= MIN_SIMILARITY {
        3
    } else {
        return None;
    };
    Some((kind, similarity))
}

/// The column's values closest to `text`, best first, at most [`MAX_OFFERED`].
pub(crate) fn closest_values(text: &str, values: &[String]) -> Vec<String> {
    let mut scored: Vec<(u8, f64, &String)> = values
        .iter()
        .filter(|value| value.as_str() != text)
        .filter_map(|value| closeness(text, value).map(|(kind, sim)| (kind, sim, value)))
        .collect();
    scored.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(b.1.total_cmp(&a.1))
            .then_with(|| a.2.cmp(b.2))
    });
    scored
        .into_iter()
        .take(MAX_OFFERED)
        .map(|(_, _, value)| value.clone())
        .collect()
}

fn letters_and_digits(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The first letter of each word, lowercased: "New York" -> "ny".
fn initials(text: &str) -> String {
    text.split(|c: char| !c.is_alphanumeric())
        .filter_map(|word| word.chars().next())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Every word of `part` (at least one, of 3+ characters) is a word of `whole`.
fn has_all_words(whole: &str, part: &str) -> bool {
    let words = |s: &str| -> Vec<String> {
        s.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    let whole = words(whole);
    let part = words(part);
    !part.is_empty()
        && part.iter().all(|w| w.chars().count() >= 3)
        && part.len() < whole.len()
        && part.iter().all(|w| whole.contains(w))
}

/// Whether `sql` selects only numbers (`SELECT 0 FROM flights WHERE ...`): told that no
/// row holds its text, a small model often answers "nothing" that way instead of writing
/// its query again, so the reply means the query that found nothing stands.
pub(crate) fn selects_only_constants(sql: &str) -> bool {
    let Some(Statement::Query(query)) = parse_single_query(sql) else {
        return false;
    };
    let SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    !select.projection.is_empty()
        && select.projection.iter().all(|item| match item {
            SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => {
                is_number(expr)
            }
            _ => false,
        })
}

/// `0`, `1.5`, `-1`.
fn is_number(expr: &Expr) -> bool {
    match expr {
        Expr::Value(value) => matches!(value.value, Value::Number(..)),
        Expr::UnaryOp { expr, .. } => is_number(expr),
        _ => false,
    }
}

/// The repair request: what no row holds and what the column holds instead.
pub(crate) fn unheld_message(unheld: &[UnheldValue]) -> String {
    let mut message = String::from("The query ran but found no rows.");
    for value in unheld {
        let closest: Vec<String> = value
            .closest
            .iter()
            .map(|v| format!("'{}'", v.replace('\'', "''")))
            .collect();
        message.push_str(&format!(
            " No row has {} = '{}'; the closest values of {} are {}.",
            value.column,
            value.text.replace('\'', "''"),
            value.column,
            closest.join(", ")
        ));
    }
    message.push_str(
        " If the question means one of them, write the query with it; if no row should \
         match, write the same query again.",
    );
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn a_query_of_numbers_alone_selects_only_constants() {
        for sql in [
            "SELECT 0 FROM flights WHERE SourceAirport = 'APG'",
            "SELECT   1 FROM list AS T1 JOIN teachers AS T2 ON T1.c = T2.c",
            "SELECT -1, 0 AS n FROM t",
            "SELECT 0",
        ] {
            assert!(selects_only_constants(sql), "{sql}");
        }
        for sql in [
            "SELECT COUNT(*) FROM flights WHERE SourceAirport = 'APG'",
            "SELECT 0, Name FROM t",
            "SELECT 'none' FROM t",
            "SELECT 0 FROM a UNION SELECT 1 FROM b",
            "not sql",
        ] {
            assert!(!selects_only_constants(sql), "{sql}");
        }
    }

    #[test]
    fn an_abbreviation_or_a_prefix_finds_the_full_value() {
        let countries = strings(&["USA", "United Kingdom", "Germany", "Canada", "Brazil"]);
        assert_eq!(closest_values("US", &countries)[0], "USA");
        assert_eq!(closest_values("UK", &countries), vec!["United Kingdom"]);
        let states = strings(&["New York", "New Jersey", "Nevada", "California"]);
        assert_eq!(closest_values("NY", &states)[0], "New York");
    }

    #[test]
    fn spacing_case_and_a_misspelling_are_close_and_unrelated_values_are_not() {
        let cities = strings(&["Aberdeen ", "Abilene", "Calgary", "Edmonton"]);
        assert_eq!(closest_values("aberdeen", &cities)[0], "Aberdeen ");
        let regions = strings(&["Caribbean", "Central Africa", "Eastern Asia"]);
        assert_eq!(closest_values("Carribean", &regions), vec!["Caribbean"]);
        let customers = strings(&["Stuttgart", "Montréal", "Oslo", "Prague"]);
        assert!(closest_values("Calgary", &customers).is_empty());
        assert!(closest_values("Rock", &strings(&["Jazz", "Blues", "Pop"])).is_empty());
    }

    #[test]
    fn words_of_a_longer_value_are_offered() {
        let genres = strings(&["Rock", "Rock And Roll", "Heavy Metal", "Metal"]);
        let offered = closest_values("Heavy", &genres);
        assert_eq!(offered, vec!["Heavy Metal"]);
    }

    #[test]
    fn only_an_empty_looking_result_counts_as_nothing_found() {
        let result = |rows: Vec<Vec<Cell>>| QueryResult {
            columns: vec!["n".into()],
            total_rows: Some(rows.len() as u64),
            rows,
            cut: None,
        };
        assert!(looks_empty(&result(vec![])));
        assert!(looks_empty(&result(vec![vec![Cell::Integer(0)]])));
        assert!(looks_empty(&result(vec![vec![Cell::Null]])));
        assert!(!looks_empty(&result(vec![vec![Cell::Integer(3)]])));
        assert!(!looks_empty(&result(vec![
            vec![Cell::Null],
            vec![Cell::Null]
        ])));
    }

    #[test]
    fn finds_the_unheld_country_on_chinook() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_dbs/chinook.db");
        let db = crate::core::db::exec::ReadOnlyDb::open(&path).expect("chinook opens");
        let schema = db.schema().expect("schema");
        let found = unheld_values(
            "SELECT COUNT(*) FROM Customer WHERE Country = 'US' AND City = 'Calgary'",
            schema,
            db.connection().expect("a SQLite connection"),
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].column, "Customer.Country");
        assert_eq!(found[0].closest[0], "USA");
        // Under NOT IN an unheld value is no reason for an empty answer.
        let negated = unheld_values(
            "SELECT Name FROM Artist WHERE ArtistId NOT IN \
             (SELECT ArtistId FROM Album WHERE Title = 'Bog')",
            schema,
            db.connection().expect("a SQLite connection"),
        );
        assert!(negated.is_empty(), "{negated:?}");
        let message = unheld_message(&found);
        assert!(message.contains("Customer.Country = 'US'"), "{message}");
        assert!(message.contains("'USA'"), "{message}");
    }
}
