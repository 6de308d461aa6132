//! "What is the most expensive product? Give its name." answered with the price beside it.
//!
//! A small model finds the row with the largest value as `SELECT ProductName,
//! MAX(UnitPrice) FROM Products`: SQLite returns the name from the row holding the
//! maximum, so the name is right, but the answer has a column the question never asked
//! for. When the question picks a row of the shown table with a superlative ("the most
//! expensive product", "the oldest employee") and never names the aggregated column,
//! [`order_by_extremum`] returns the shown columns of that row:
//! `SELECT ProductName FROM Products ORDER BY UnitPrice DESC LIMIT 1`.

use sqlparser::ast::{
    Distinct, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, SelectItem,
    SetExpr, Statement,
};

use crate::core::db::ident::{lowercase_words, split_identifier};
use crate::core::db::schema::{Schema, Table};
use crate::core::db::sql_ast::{
    has_expression_subquery, is_column, parse_single_query, resolve_column, tables_in_scope,
};
use crate::core::rewrite::simplify::singular;
use crate::core::rewrite::{Rewrite, RewriteInput};

/// Words that pick one row by a value besides those ending in "-est"; "most" and "least"
/// with the adjective after them.
const SUPERLATIVES: [&str; 4] = ["most", "least", "maximum", "minimum"];

/// The query returning the shown columns of the row with the largest (or smallest)
/// value, pretty-printed; `None` unless it is `SELECT <columns of one table>, MAX(col)`
/// (or `MIN`) with no grouping, sorting or limit, the question picks a row of that table
/// with a superlative, and no word of the aggregated column's name is in the question.
pub fn order_by_extremum(sql: &str, question: &str, schema: &Schema) -> Option<String> {
    let mut statement = parse_single_query(sql)?;
    if has_expression_subquery(&statement) {
        return None;
    }
    let Statement::Query(query) = &mut statement else {
        return None;
    };
    if query.with.is_some() || query.order_by.is_some() || query.limit_clause.is_some() {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    let grouped = !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty());
    if grouped || select.having.is_some() || matches!(select.distinct, Some(Distinct::On(_))) {
        return None;
    }
    let tables = tables_in_scope(select, schema);
    let (position, descending, column) = one_extremum(&select.projection)?;
    let shown = shown_table(&select.projection, position, &tables)?;
    let (_, aggregated) = resolve_column(&column, &tables)?;
    let words: Vec<String> = lowercase_words(question)
        .iter()
        .map(|w| singular(w))
        .collect();
    if names_column(&words, &aggregated) || !picks_a_row_of(&words, shown) {
        return None;
    }
    select.projection.remove(position);
    let direction = if descending { "DESC" } else { "ASC" };
    let text = format!("{statement} ORDER BY {column} {direction} LIMIT 1");
    Some(format!("{:#}", parse_single_query(&text)?))
}

/// The position of the one `MAX(column)` or `MIN(column)` output item, whether it is a
/// maximum, and its column; `None` unless there is exactly one and nothing else
/// aggregates.
fn one_extremum(projection: &[SelectItem]) -> Option<(usize, bool, Expr)> {
    let mut found = None;
    for (position, item) in projection.iter().enumerate() {
        let SelectItem::UnnamedExpr(Expr::Function(function)) = item else {
            continue;
        };
        let name = function.name.to_string().to_ascii_lowercase();
        let descending = match name.as_str() {
            "max" => true,
            "min" => false,
            _ => return None,
        };
        let FunctionArguments::List(list) = &function.args else {
            return None;
        };
        let [FunctionArg::Unnamed(FunctionArgExpr::Expr(column))] = list.args.as_slice() else {
            return None;
        };
        if found.is_some() || list.duplicate_treatment.is_some() || !is_column(column) {
            return None;
        }
        found = Some((position, descending, column.clone()));
    }
    found
}

/// The one table every other output item is a plain column of.
fn shown_table<'s>(
    projection: &[SelectItem],
    skipped: usize,
    tables: &[(String, &'s Table)],
) -> Option<&'s Table> {
    let mut shown: Option<&Table> = None;
    for (position, item) in projection.iter().enumerate() {
        if position == skipped {
            continue;
        }
        let SelectItem::UnnamedExpr(column) = item else {
            return None;
        };
        let (table, _) = resolve_column(column, tables)?;
        if shown.is_some_and(|seen| !seen.name.eq_ignore_ascii_case(&table.name)) {
            return None;
        }
        shown = Some(table);
    }
    shown
}

/// Whether a word of the column's name (longer than two letters) is in the question.
fn names_column(words: &[String], column: &str) -> bool {
    split_identifier(column)
        .iter()
        .map(|word| singular(word))
        .filter(|word| word.len() > 2)
        .any(|word| words.contains(&word))
}

/// Whether a superlative picks a row of `table`: the word its name ends in follows a
/// superlative ("oldest employee"), at most one word between ("the most expensive
/// product").
fn picks_a_row_of(words: &[String], table: &Table) -> bool {
    let Some(head) = split_identifier(&table.name).last().map(|w| singular(w)) else {
        return false;
    };
    let superlative = |word: &String| {
        SUPERLATIVES.contains(&word.as_str()) || (word.len() > 4 && word.ends_with("est"))
    };
    words.iter().enumerate().any(|(index, word)| {
        *word == head
            && (index >= 1 && superlative(&words[index - 1])
                || index >= 2 && superlative(&words[index - 2]))
    })
}

/// [`order_by_extremum`] as a step of the chain.
pub(crate) struct OrderByExtremum;

impl Rewrite for OrderByExtremum {
    fn name(&self) -> &'static str {
        "order_by_extremum"
    }

    fn apply(&self, sql: &str, input: &RewriteInput<'_>) -> Option<String> {
        order_by_extremum(sql, input.question, input.schema)
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;
    use crate::core::db::schema::introspect;

    fn database() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE Products (ProductID INTEGER PRIMARY KEY, ProductName TEXT,
                 UnitPrice REAL);
             CREATE TABLE Employees (EmployeeID INTEGER PRIMARY KEY, LastName TEXT,
                 BirthDate TEXT, Age INTEGER);
             INSERT INTO Products VALUES (1, 'Chai', 18), (2, 'Cote de Blaye', 263.5),
                 (3, 'Tofu', 23.25);
             INSERT INTO Employees VALUES (1, 'Davolio', '1948-12-08', 76),
                 (2, 'Fuller', '1952-02-19', 72);",
        )
        .unwrap();
        conn
    }

    fn rewrite(sql: &str, question: &str) -> Option<String> {
        let conn = database();
        let schema = introspect(&conn, ":memory:").unwrap();
        order_by_extremum(sql, question, &schema)
    }

    fn rows(sql: &str) -> Vec<Vec<String>> {
        let conn = database();
        let mut statement = conn.prepare(sql).unwrap();
        let width = statement.column_count();
        statement
            .query_map([], |row| {
                (0..width)
                    .map(|i| {
                        row.get::<_, rusqlite::types::Value>(i)
                            .map(|v| format!("{v:?}"))
                    })
                    .collect()
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn the_row_a_superlative_picks_is_returned_without_the_value() {
        let rewritten = rewrite(
            "SELECT ProductName, MAX(UnitPrice) FROM Products",
            "What is the most expensive product? Give its name.",
        )
        .expect("the maximum picks the row");
        assert!(rewritten.contains("ORDER BY UnitPrice DESC"));
        assert_eq!(
            rows(&rewritten),
            vec![vec!["Text(\"Cote de Blaye\")".to_string()]]
        );
        let youngest = rewrite(
            "SELECT LastName, MIN(Age) FROM Employees",
            "Who is the youngest employee?",
        )
        .expect("the minimum picks the row");
        assert_eq!(rows(&youngest), vec![vec!["Text(\"Fuller\")".to_string()]]);
    }

    #[test]
    fn a_named_value_or_a_question_about_another_table_keeps_the_aggregate() {
        assert_eq!(
            rewrite(
                "SELECT ProductName, MAX(UnitPrice) FROM Products",
                "What is the name and price of the most expensive product?",
            ),
            None
        );
        assert_eq!(
            rewrite(
                "SELECT LastName, MAX(Age) FROM Employees",
                "What is the highest rating for the oldest product?",
            ),
            None
        );
        assert_eq!(
            rewrite(
                "SELECT LastName, MAX(Age) FROM Employees GROUP BY LastName",
                "Who is the oldest employee?",
            ),
            None
        );
    }
}
