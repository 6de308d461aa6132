//! Filters on yes/no columns: added where the question names the column and the query
//! forgot it, dropped where the query has one the question never names.
//!
//! "How many official languages does Afghanistan have?" over `countrylanguage(Language,
//! IsOfficial)`: a small model counts every language and never reads `IsOfficial`, whose
//! values are `'T'` and `'F'`. When the question uses the word a flag column is named after
//! (`IsOfficial` -> "official", `is_active` -> "active"), the query reads that column's
//! table but never the column, and the column holds exactly the two values of a yes/no
//! pair, [`filter_named_flags`] adds `column = <yes>` to every SELECT that reads the table.
//!
//! Only columns named `Is...`/`Has...` count as flags: a `Result` column with values T/F is
//! not something "the results" in a question asks to filter on. A question that negates the
//! word ("unofficial", "not official", "non-official") is left to the model.
//!
//! The opposite mistake is as common: `IsOfficial = 'T'` added to "which countries speak
//! both English and French", which never says "official". [`drop_unnamed_flag_filters`]
//! drops such a filter from the WHERE it is ANDed into.

use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;
use sqlparser::ast::{BinaryOperator, Expr, Ident, Select, Value};

use crate::core::db::ident::{lowercase_words, quote_identifier, split_identifier};
use crate::core::db::schema::{Schema, Table};
use crate::core::db::sql_ast::{
    and_condition, conjunction, conjuncts, for_each_select_mut, parse_single_query,
    referenced_column_names, resolve_column, tables_in_scope,
};
use crate::core::rewrite::{Rewrite, RewriteInput};

/// Words that make a column a flag when its name starts with them.
const FLAG_PREFIXES: [&str; 2] = ["is", "has"];

/// Yes/no value pairs, the "yes" first (compared ignoring case).
const YES_NO_PAIRS: [(&str, &str); 5] = [
    ("t", "f"),
    ("y", "n"),
    ("yes", "no"),
    ("true", "false"),
    ("1", "0"),
];

/// The query with the flag filters the question asks for, pretty-printed; `None` when
/// there is nothing to add.
pub(crate) fn filter_named_flags(
    sql: &str,
    question: &str,
    schema: &Schema,
    conn: &Connection,
) -> Option<String> {
    let question_words = lowercase_words(question);
    let mut statement = parse_single_query(sql)?;
    let used_columns = referenced_column_names(&statement);
    let mut added = 0;
    for_each_select_mut(&mut statement, |select| {
        let tables = tables_in_scope(select, schema);
        let mut filters = Vec::new();
        for (used_as, table) in &tables {
            let same_table = tables
                .iter()
                .filter(|(_, other)| other.name == table.name)
                .count();
            if same_table > 1 {
                continue;
            }
            for column in &table.columns {
                let Some(flag_words) = flag_words(&column.name) else {
                    continue;
                };
                let named = flag_words.iter().all(|w| question_words.contains(w));
                if !named
                    || negated(question, &flag_words)
                    || used_columns
                        .iter()
                        .any(|used| used.eq_ignore_ascii_case(&column.name))
                {
                    continue;
                }
                if let Some(yes) = yes_value(conn, table, &column.name) {
                    filters.push(flag_filter(used_as, &column.name, yes));
                }
            }
        }
        for filter in filters {
            add_filter(select, filter);
            added += 1;
        }
    });
    (added > 0).then(|| format!("{statement:#}"))
}

/// The query without the filters on yes/no columns the question never names,
/// pretty-printed; `None` when there is none to drop.
///
/// "How many countries speak both English and Dutch?": a small model adds
/// `IsOfficial = 'T'` out of habit, and the answer counts only official languages. A filter
/// `flag = value` in a WHERE's AND chain goes when no word of the question starts with a
/// word of the flag's name ("official", "officially"); a question that names it keeps it.
pub(crate) fn drop_unnamed_flag_filters(
    sql: &str,
    question: &str,
    schema: &Schema,
    conn: &Connection,
) -> Option<String> {
    let question_words = lowercase_words(question);
    // A word holding the flag's word names it, negated or not: "female" for `is_male`,
    // "inactive" for `is_active`, "unofficially" for `IsOfficial`. The filter is the
    // model's reading of that word, right or wrong, not an unasked one.
    let named = |flag_words: &[String]| {
        flag_words.iter().any(|flag| {
            question_words.iter().any(|word| {
                word.starts_with(flag.as_str()) || (flag.len() >= 4 && word.contains(flag.as_str()))
            })
        })
    };
    let mut statement = parse_single_query(sql)?;
    let mut dropped = 0;
    for_each_select_mut(&mut statement, |select| {
        let tables = tables_in_scope(select, schema);
        let Some(selection) = select.selection.take() else {
            return;
        };
        let mut kept = Vec::new();
        for condition in conjuncts(&selection) {
            let unnamed_flag = flag_equality(condition, &tables).is_some_and(|(table, column)| {
                flag_words(&column).is_some_and(|words| !named(&words))
                    && yes_value(conn, table, &column).is_some()
            });
            if unnamed_flag {
                dropped += 1;
            } else {
                kept.push(condition.clone());
            }
        }
        select.selection = conjunction(kept);
    });
    (dropped > 0).then(|| format!("{statement:#}"))
}

/// The table and column of `column = literal` (either way round).
fn flag_equality<'s>(
    condition: &Expr,
    tables: &[(String, &'s Table)],
) -> Option<(&'s Table, String)> {
    let Expr::BinaryOp {
        left,
        op: BinaryOperator::Eq,
        right,
    } = condition
    else {
        return None;
    };
    let column = match (left.as_ref(), right.as_ref()) {
        (Expr::Value(_), column) | (column, Expr::Value(_)) => column,
        _ => return None,
    };
    resolve_column(column, tables)
}

fn add_filter(select: &mut Select, filter: Expr) {
    select.selection = Some(and_condition(select.selection.take(), filter));
}

fn flag_filter(used_as: &str, column: &str, yes: Value) -> Expr {
    Expr::BinaryOp {
        left: Box::new(Expr::CompoundIdentifier(vec![
            Ident::new(used_as),
            Ident::new(column),
        ])),
        op: BinaryOperator::Eq,
        right: Box::new(Expr::value(yes)),
    }
}

/// The words after the flag prefix (`IsOfficial` -> `["official"]`), lowercase; `None`
/// when the name is not a flag's.
fn flag_words(column: &str) -> Option<Vec<String>> {
    let words = split_identifier(column);
    let (first, rest) = words.split_first()?;
    (FLAG_PREFIXES.contains(&first.as_str()) && !rest.is_empty()).then(|| rest.to_vec())
}

/// "unofficial", "non-official", "not official": the question wants the other value.
fn negated(question: &str, flag_words: &[String]) -> bool {
    let question = question.to_lowercase();
    let Some(first) = flag_words.first() else {
        return false;
    };
    ["un", "non-", "non ", "not "]
        .iter()
        .any(|negation| question.contains(&format!("{negation}{first}")))
}

/// The "yes" value of a column holding exactly one yes/no pair, as a literal of the type
/// the column stores it in.
fn yes_value(conn: &Connection, table: &Table, column: &str) -> Option<Value> {
    let sql = format!(
        "SELECT DISTINCT {col} FROM {from} WHERE {col} IS NOT NULL LIMIT 3",
        col = quote_identifier(column),
        from = quote_identifier(&table.name)
    );
    let values: Vec<SqlValue> = conn
        .prepare(&sql)
        .and_then(|mut statement| statement.query_map([], |row| row.get(0))?.collect())
        .ok()?;
    let [first, second] = values.as_slice() else {
        return None;
    };
    let as_text = |value: &SqlValue| match value {
        SqlValue::Text(text) => Some(text.to_lowercase()),
        SqlValue::Integer(number) => Some(number.to_string()),
        _ => None,
    };
    let (a, b) = (as_text(first)?, as_text(second)?);
    let (yes_text, _) = YES_NO_PAIRS
        .iter()
        .find(|(yes, no)| (a == *yes && b == *no) || (a == *no && b == *yes))?;
    let yes = if a == *yes_text { first } else { second };
    match yes {
        SqlValue::Text(text) => Some(Value::SingleQuotedString(text.clone())),
        SqlValue::Integer(number) => Some(Value::Number(number.to_string(), false)),
        _ => None,
    }
}

/// [`filter_named_flags`] as a step of the chain.
pub(crate) struct FilterNamedFlags;

impl Rewrite for FilterNamedFlags {
    fn name(&self) -> &'static str {
        "filter_named_flags"
    }

    fn apply(&self, sql: &str, input: &RewriteInput<'_>) -> Option<String> {
        filter_named_flags(sql, input.question, input.schema, input.conn?)
    }
}

/// [`drop_unnamed_flag_filters`] as a step of the chain.
pub(crate) struct DropUnnamedFlags;

impl Rewrite for DropUnnamedFlags {
    fn name(&self) -> &'static str {
        "drop_unnamed_flags"
    }

    fn apply(&self, sql: &str, input: &RewriteInput<'_>) -> Option<String> {
        drop_unnamed_flag_filters(sql, input.question, input.schema, input.conn?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::db::schema::introspect;

    fn world() -> (Connection, Schema) {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE country (Code TEXT PRIMARY KEY, Name TEXT);
             INSERT INTO country VALUES ('AFG', 'Afghanistan'), ('NLD', 'Netherlands');
             CREATE TABLE countrylanguage (CountryCode TEXT, Language TEXT, IsOfficial TEXT,
                                           Percentage REAL);
             INSERT INTO countrylanguage VALUES ('AFG', 'Pashtu', 'T', 52.4),
                                                ('AFG', 'Uzbek', 'F', 8.8),
                                                ('NLD', 'Dutch', 'T', 95.6);
             CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT, is_active INTEGER,
                                    result TEXT);
             INSERT INTO customer VALUES (1, 'a', 1, 'T'), (2, 'b', 0, 'F');",
        )
        .unwrap();
        let schema = introspect(&conn, ":memory:").unwrap();
        (conn, schema)
    }

    type Rewrite = fn(&str, &str, &Schema, &Connection) -> Option<String>;

    /// The rewrite's output on one line.
    fn rewritten(rewrite: Rewrite, sql: &str, question: &str) -> Option<String> {
        let (conn, schema) = world();
        rewrite(sql, question, &schema, &conn)
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    fn filtered(sql: &str, question: &str) -> Option<String> {
        rewritten(filter_named_flags, sql, question)
    }

    #[test]
    fn a_flag_the_question_names_is_filtered_on_its_yes_value() {
        assert_eq!(
            filtered(
                "SELECT COUNT(*) FROM country AS T1 JOIN countrylanguage AS T2 \
                 ON T1.Code = T2.CountryCode WHERE T1.Name = 'Afghanistan'",
                "How many official languages does Afghanistan have?"
            )
            .as_deref(),
            Some(
                "SELECT COUNT(*) FROM country AS T1 JOIN countrylanguage AS T2 \
                 ON T1.Code = T2.CountryCode WHERE T1.Name = 'Afghanistan' \
                 AND T2.IsOfficial = 'T'"
            )
        );
        // an integer flag, no WHERE yet, and an OR kept together
        assert_eq!(
            filtered("SELECT name FROM customer", "Which customers are active?").as_deref(),
            Some("SELECT name FROM customer WHERE customer.is_active = 1")
        );
        assert_eq!(
            filtered(
                "SELECT name FROM customer WHERE id = 1 OR id = 2",
                "active customers 1 or 2"
            )
            .as_deref(),
            Some("SELECT name FROM customer WHERE (id = 1 OR id = 2) AND customer.is_active = 1")
        );
    }

    #[test]
    fn the_filter_goes_into_the_subquery_that_reads_the_table() {
        assert_eq!(
            filtered(
                "SELECT AVG(Code) FROM country WHERE Code NOT IN \
                 (SELECT CountryCode FROM countrylanguage WHERE Language = 'English')",
                "Average in countries where English is not the official language"
            )
            .as_deref(),
            Some(
                "SELECT AVG(Code) FROM country WHERE Code NOT IN \
                 (SELECT CountryCode FROM countrylanguage WHERE Language = 'English' \
                 AND countrylanguage.IsOfficial = 'T')"
            )
        );
    }

    #[test]
    fn flags_already_used_unnamed_negated_or_not_flags_are_left_alone() {
        for (sql, question) in [
            (
                "SELECT Language FROM countrylanguage WHERE IsOfficial = 'F'",
                "Which languages are official?",
            ),
            (
                "SELECT Language FROM countrylanguage",
                "Which languages are spoken?",
            ),
            (
                "SELECT Language FROM countrylanguage",
                "Which languages are unofficial?",
            ),
            (
                "SELECT Language FROM countrylanguage",
                "Which languages are not official?",
            ),
            // `result` holds T/F but is not named like a flag
            (
                "SELECT name FROM customer",
                "What is each customer's result?",
            ),
            ("not sql", "official"),
        ] {
            assert_eq!(filtered(sql, question), None, "{sql} / {question}");
        }
    }

    fn unflagged(sql: &str, question: &str) -> Option<String> {
        rewritten(drop_unnamed_flag_filters, sql, question)
    }

    #[test]
    fn a_flag_filter_the_question_never_names_is_dropped() {
        assert_eq!(
            unflagged(
                "SELECT T1.Name FROM country AS T1 JOIN countrylanguage AS T2 \
                 ON T1.Code = T2.CountryCode WHERE T2.Language = 'English' AND \
                 T2.IsOfficial = 'T' INTERSECT SELECT T1.Name FROM country AS T1 JOIN \
                 countrylanguage AS T2 ON T1.Code = T2.CountryCode WHERE 'T' = T2.IsOfficial \
                 AND T2.Language = 'French'",
                "Give the names of nations that speak both English and French."
            )
            .as_deref(),
            Some(
                "SELECT T1.Name FROM country AS T1 JOIN countrylanguage AS T2 \
                 ON T1.Code = T2.CountryCode WHERE T2.Language = 'English' INTERSECT \
                 SELECT T1.Name FROM country AS T1 JOIN countrylanguage AS T2 \
                 ON T1.Code = T2.CountryCode WHERE T2.Language = 'French'"
            )
        );
        // the only condition, inside a subquery, and an integer flag
        assert_eq!(
            unflagged(
                "SELECT Code FROM country WHERE Code NOT IN (SELECT CountryCode FROM \
                 countrylanguage WHERE IsOfficial = 'F')",
                "Which countries have no languages?"
            )
            .as_deref(),
            Some(
                "SELECT Code FROM country WHERE Code NOT IN \
                 (SELECT CountryCode FROM countrylanguage)"
            )
        );
        assert_eq!(
            unflagged(
                "SELECT name FROM customer WHERE is_active = 1 AND id > 0",
                "List the customers"
            )
            .as_deref(),
            Some("SELECT name FROM customer WHERE id > 0")
        );
    }

    #[test]
    fn flag_filters_the_question_names_or_that_are_not_flags_stay() {
        for question in ["List the inactive customers", "Customers who are inactive"] {
            assert_eq!(
                unflagged("SELECT name FROM customer WHERE is_active = 0", question),
                None,
                "{question}"
            );
        }
        for (sql, question) in [
            (
                "SELECT Language FROM countrylanguage WHERE IsOfficial = 'T'",
                "Which languages are official?",
            ),
            (
                "SELECT Language FROM countrylanguage WHERE IsOfficial = 'T'",
                "Which languages are spoken officially?",
            ),
            (
                "SELECT Language FROM countrylanguage WHERE IsOfficial = 'F'",
                "Which languages are not official?",
            ),
            // an OR is the model's own choice of rows, not a habit
            (
                "SELECT Language FROM countrylanguage WHERE IsOfficial = 'T' OR Percentage > 50",
                "Which languages are spoken by most people?",
            ),
            (
                "SELECT name FROM customer WHERE result = 'T'",
                "List the customers",
            ),
        ] {
            assert_eq!(unflagged(sql, question), None, "{sql} / {question}");
        }
    }

    #[test]
    fn names_split_into_words() {
        assert_eq!(split_identifier("IsOfficial"), ["is", "official"]);
        assert_eq!(split_identifier("is_active"), ["is", "active"]);
        assert_eq!(split_identifier("HAS_PET"), ["has", "pet"]);
        assert_eq!(flag_words("Result"), None);
        assert_eq!(flag_words("Is"), None);
    }
}
