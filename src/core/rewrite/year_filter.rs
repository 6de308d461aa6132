//! "Employees hired after 1993" compared as text, or as a number.
//!
//! A small model writes `WHERE HireDate > '1993'` (or `> 1993`) on a column of ISO dates.
//! Compared as text, '1993-05-03' > '1993' holds, so 1993 counts as after 1993; and a
//! column declared `DATE` has numeric affinity in SQLite, so '1993' becomes the number 1993
//! and every text date is greater than any number. When every value of the column is an
//! ISO date, [`compare_year_of_date`] compares the year of the date instead:
//! `strftime('%Y', HireDate) > '1993'`.

use std::collections::HashMap;
use std::ops::ControlFlow;

use rusqlite::Connection;
use sqlparser::ast::{Expr, Value, visit_expressions_mut};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::Parser;

use crate::core::db::ident::quote_identifier;
use crate::core::db::schema::{Schema, Table};
use crate::core::db::sql_ast::{
    for_each_select_mut, is_comparison, parse_single_query, resolve_column, tables_in_scope,
};
use crate::core::rewrite::{Rewrite, RewriteInput};

/// The query with each comparison of an ISO-date column with a bare year made a
/// comparison of the date's year, pretty-printed; `None` when there is none.
pub fn compare_year_of_date(sql: &str, schema: &Schema, conn: &Connection) -> Option<String> {
    let mut statement = parse_single_query(sql)?;
    let mut dates = DateColumns {
        conn,
        known: HashMap::new(),
    };
    let mut changed = false;
    for_each_select_mut(&mut statement, |select| {
        let tables = tables_in_scope(select, schema);
        let mut compare_year = |expr: &mut Expr| {
            if let Some(column) = year_comparison(expr)
                && let Some((table, name)) = resolve_column(column, &tables)
                && dates.holds_only_dates(table, &name)
            {
                year_of(expr);
                changed = true;
            }
            ControlFlow::<()>::Continue(())
        };
        if let Some(condition) = select.selection.as_mut() {
            let _ = visit_expressions_mut(condition, &mut compare_year);
        }
        if let Some(condition) = select.having.as_mut() {
            let _ = visit_expressions_mut(condition, &mut compare_year);
        }
    });
    changed.then(|| format!("{statement:#}"))
}

/// The column of `column <op> year`, `year <op> column` or `column BETWEEN year AND year`.
fn year_comparison(expr: &Expr) -> Option<&Expr> {
    match expr {
        Expr::BinaryOp { left, op, right } if is_comparison(op) => {
            match (left.as_ref(), right.as_ref()) {
                (column @ (Expr::Identifier(_) | Expr::CompoundIdentifier(_)), year)
                | (year, column @ (Expr::Identifier(_) | Expr::CompoundIdentifier(_)))
                    if bare_year(year).is_some() =>
                {
                    Some(column)
                }
                _ => None,
            }
        }
        Expr::Between {
            expr: column,
            low,
            high,
            ..
        } if matches!(
            column.as_ref(),
            Expr::Identifier(_) | Expr::CompoundIdentifier(_)
        ) && bare_year(low).is_some()
            && bare_year(high).is_some() =>
        {
            Some(column)
        }
        _ => None,
    }
}

/// A year written alone: `1993` or `'1993'` (1000 to 2999).
fn bare_year(expr: &Expr) -> Option<String> {
    let Expr::Value(value) = expr else {
        return None;
    };
    let text = match &value.value {
        Value::Number(number, _) => number.as_str(),
        Value::SingleQuotedString(text) => text.as_str(),
        _ => return None,
    };
    let year = text.len() == 4
        && text.chars().all(|c| c.is_ascii_digit())
        && matches!(text.as_bytes()[0], b'1' | b'2');
    year.then(|| text.to_string())
}

/// Rewrites a comparison [`year_comparison`] found: the column becomes
/// `strftime('%Y', column)` and each year a quoted year.
fn year_of(expr: &mut Expr) {
    let swap = |side: &mut Expr| {
        if let Some(year) = bare_year(side) {
            *side = Expr::value(Value::SingleQuotedString(year));
        } else if matches!(side, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
            *side = strftime_year(side.clone());
        }
    };
    match expr {
        Expr::BinaryOp { left, right, .. } => {
            swap(left);
            swap(right);
        }
        Expr::Between {
            expr, low, high, ..
        } => {
            swap(expr);
            swap(low);
            swap(high);
        }
        _ => {}
    }
}

fn strftime_year(column: Expr) -> Expr {
    let text = format!("strftime('%Y', {column})");
    Parser::new(&SQLiteDialect {})
        .try_with_sql(&text)
        .and_then(|mut parser| parser.parse_expr())
        .unwrap_or(column)
}

/// Which columns hold nothing but ISO dates (`YYYY-MM-DD`, a time allowed after), probed
/// once each.
struct DateColumns<'c> {
    conn: &'c Connection,
    known: HashMap<(String, String), bool>,
}

impl DateColumns<'_> {
    fn holds_only_dates(&mut self, table: &Table, column: &str) -> bool {
        let key = (table.name.clone(), column.to_string());
        if let Some(&known) = self.known.get(&key) {
            return known;
        }
        let probe = format!(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE typeof({column}) = 'text' AND {column} \
             GLOB '[12][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]*') FROM {table} \
             WHERE {column} IS NOT NULL",
            column = quote_identifier(column),
            table = quote_identifier(&table.name),
        );
        let dates = self
            .conn
            .query_row(&probe, [], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
            })
            .is_ok_and(|(values, dates)| values > 0 && values == dates);
        self.known.insert(key, dates);
        dates
    }
}

/// [`compare_year_of_date`] as a step of the chain; it reads the data, so it runs only
/// where the query is SQLite's.
pub(crate) struct CompareYearOfDate;

impl Rewrite for CompareYearOfDate {
    fn name(&self) -> &'static str {
        "compare_year_of_date"
    }

    fn apply(&self, sql: &str, input: &RewriteInput<'_>) -> Option<String> {
        compare_year_of_date(sql, input.schema, input.conn?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::db::schema::introspect;

    fn database() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE Employees (EmployeeID INTEGER PRIMARY KEY, HireDate DATE,
                 Founded INTEGER, Note TEXT);
             INSERT INTO Employees VALUES (1, '1992-05-01', 1992, 'a'),
                 (2, '1993-10-17', 1993, 'b'), (3, '1994-01-02 00:00:00', 1994, NULL),
                 (4, NULL, NULL, '1995');",
        )
        .unwrap();
        conn
    }

    fn rewrite(sql: &str) -> Option<String> {
        let conn = database();
        let schema = introspect(&conn, ":memory:").unwrap();
        compare_year_of_date(sql, &schema, &conn)
    }

    fn count(sql: &str) -> i64 {
        database().query_row(sql, [], |row| row.get(0)).unwrap()
    }

    #[test]
    fn a_date_compared_with_a_year_compares_its_year() {
        let sql = "SELECT COUNT(*) FROM Employees WHERE HireDate > '1993'";
        assert_eq!(count(sql), 3, "numeric affinity: every date beats 1993");
        let rewritten = rewrite(sql).expect("the year is compared");
        assert!(rewritten.contains("strftime('%Y', HireDate) > '1993'"));
        assert_eq!(count(&rewritten), 1);
        let number = rewrite("SELECT COUNT(*) FROM Employees AS e WHERE 1993 <= e.HireDate")
            .expect("a number is a year too");
        assert_eq!(count(&number), 2);
        let between =
            rewrite("SELECT COUNT(*) FROM Employees WHERE HireDate BETWEEN 1992 AND 1993")
                .expect("both ends are years");
        assert_eq!(count(&between), 2);
    }

    #[test]
    fn years_stored_as_numbers_full_dates_and_other_text_stay() {
        assert_eq!(
            rewrite("SELECT COUNT(*) FROM Employees WHERE Founded > 1993"),
            None
        );
        assert_eq!(
            rewrite("SELECT COUNT(*) FROM Employees WHERE HireDate > '1993-06-01'"),
            None
        );
        assert_eq!(
            rewrite("SELECT COUNT(*) FROM Employees WHERE Note = '1995'"),
            None
        );
    }
}
