//! "How many customers placed no order in 1998?" that can only answer zero.
//!
//! A small model writes the rows with no match as `LEFT JOIN Orders AS o ON ... WHERE
//! o.OrderID IS NULL AND strftime('%Y', o.OrderDate) = '1998'`: the key is NULL exactly
//! on the rows the join found nothing for, where the year test is NULL too, so no row
//! passes. The filter describes which rows must be missing; [`filter_unmatched_in_join`]
//! moves it into the join's `ON`, where it picks the rows the join looks for.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, Join, JoinConstraint, JoinOperator, SetExpr, Statement, visit_expressions,
};

use crate::core::db::schema::{Schema, Table};
use crate::core::db::sql_ast::{
    and_condition, conjunction, conjuncts, has_expression_subquery, is_comparison,
    parse_single_query, resolve_column_owner, schema_table, tables_in_scope,
};
use crate::core::rewrite::{Rewrite, RewriteInput};

/// The query with the left-joined table's filters moved into its join, pretty-printed;
/// `None` unless the `WHERE` both asks for that table's missing rows (its join key or
/// primary key `IS NULL`) and filters its columns with a test NULL fails.
pub fn filter_unmatched_in_join(sql: &str, schema: &Schema) -> Option<String> {
    let mut statement = parse_single_query(sql)?;
    if has_expression_subquery(&statement) {
        return None;
    }
    let Statement::Query(query) = &mut statement else {
        return None;
    };
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    let tables = tables_in_scope(select, schema);
    let [from] = select.from.as_mut_slice() else {
        return None;
    };
    let condition = select.selection.as_ref()?;
    let terms: Vec<Expr> = conjuncts(condition).into_iter().cloned().collect();
    let (index, reference) = from.joins.iter().enumerate().find_map(|(index, join)| {
        let (reference, table) = left_joined_table(join, schema)?;
        let keys = unmatched_keys(join, &reference, table, &tables);
        let asks_missing = terms
            .iter()
            .any(|term| tests_missing_key(term, &reference, &keys, &tables));
        let filters = terms
            .iter()
            .any(|term| filters_only(term, &reference, &tables));
        (asks_missing && filters).then_some((index, reference))
    })?;
    let (moved, kept): (Vec<Expr>, Vec<Expr>) = terms
        .into_iter()
        .partition(|term| filters_only(term, &reference, &tables));
    let join = &mut from.joins[index];
    let (JoinOperator::Left(JoinConstraint::On(on))
    | JoinOperator::LeftOuter(JoinConstraint::On(on))) = &mut join.join_operator
    else {
        return None;
    };
    *on = moved
        .into_iter()
        .fold(on.clone(), |all, term| and_condition(Some(all), term));
    select.selection = conjunction(kept);
    Some(format!("{statement:#}"))
}

/// The table a `LEFT JOIN ... ON` reads, under the name its columns use.
fn left_joined_table<'s>(join: &Join, schema: &'s Schema) -> Option<(String, &'s Table)> {
    match &join.join_operator {
        JoinOperator::Left(JoinConstraint::On(_))
        | JoinOperator::LeftOuter(JoinConstraint::On(_)) => schema_table(&join.relation, schema),
        _ => None,
    }
}

/// The joined table's columns that are NULL only on the rows the join found nothing for:
/// those its `ON` compares for equality, and its one primary key.
fn unmatched_keys(
    join: &Join,
    reference: &str,
    table: &Table,
    tables: &[(String, &Table)],
) -> Vec<String> {
    let mut keys: Vec<String> = table
        .single_primary_key()
        .map(|key| key.name.clone())
        .into_iter()
        .collect();
    let (JoinOperator::Left(JoinConstraint::On(on))
    | JoinOperator::LeftOuter(JoinConstraint::On(on))) = &join.join_operator
    else {
        return keys;
    };
    for term in conjuncts(on) {
        if let Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } = term
        {
            for side in [left, right] {
                if let Some((owner, _, column)) = resolve_column_owner(side, tables)
                    && owner.eq_ignore_ascii_case(reference)
                {
                    keys.push(column);
                }
            }
        }
    }
    keys
}

/// `reference.key IS NULL` for one of the unmatched keys.
fn tests_missing_key(
    term: &Expr,
    reference: &str,
    keys: &[String],
    tables: &[(String, &Table)],
) -> bool {
    let Expr::IsNull(column) = term else {
        return false;
    };
    resolve_column_owner(column, tables).is_some_and(|(owner, _, column)| {
        owner.eq_ignore_ascii_case(reference)
            && keys.iter().any(|key| key.eq_ignore_ascii_case(&column))
    })
}

/// Whether a condition reads only the joined table's columns, at least one, with a test
/// that a NULL column fails (a comparison, `LIKE`, `BETWEEN` or `IN` list, over values
/// and functions that pass NULL on): on an unmatched row it can never hold.
fn filters_only(term: &Expr, reference: &str, tables: &[(String, &Table)]) -> bool {
    let rejects_null = match term {
        Expr::BinaryOp { op, .. } => is_comparison(op),
        Expr::Like { .. } | Expr::ILike { .. } | Expr::Between { .. } | Expr::InList { .. } => true,
        _ => false,
    };
    if !rejects_null {
        return false;
    }
    let mut columns = 0;
    let only_joined = visit_expressions(term, |expr| {
        if matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
            match resolve_column_owner(expr, tables) {
                Some((owner, _, _)) if owner.eq_ignore_ascii_case(reference) => columns += 1,
                _ => return ControlFlow::Break(()),
            }
        }
        if passes_null_by(expr) {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    only_joined.is_continue() && columns > 0
}

/// Expressions that can turn a NULL into a value, or that are tests of their own.
fn passes_null_by(expr: &Expr) -> bool {
    match expr {
        Expr::IsNull(_)
        | Expr::IsNotNull(_)
        | Expr::IsDistinctFrom(..)
        | Expr::IsNotDistinctFrom(..)
        | Expr::Case { .. }
        | Expr::BinaryOp {
            op: BinaryOperator::Or,
            ..
        } => true,
        Expr::Function(function) => {
            let name = function.name.to_string().to_ascii_lowercase();
            [
                "coalesce",
                "ifnull",
                "nullif",
                "iif",
                "max",
                "min",
                "count",
                "sum",
                "avg",
                "total",
                "group_concat",
            ]
            .contains(&name.as_str())
        }
        _ => false,
    }
}

/// [`filter_unmatched_in_join`] as a step of the chain.
pub(crate) struct FilterUnmatchedInJoin;

impl Rewrite for FilterUnmatchedInJoin {
    fn name(&self) -> &'static str {
        "filter_unmatched_in_join"
    }

    fn apply(&self, sql: &str, input: &RewriteInput<'_>) -> Option<String> {
        filter_unmatched_in_join(sql, input.schema)
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
            "CREATE TABLE Customers (CustomerID TEXT PRIMARY KEY, CompanyName TEXT);
             CREATE TABLE Orders (OrderID INTEGER PRIMARY KEY,
                 CustomerID TEXT REFERENCES Customers(CustomerID), OrderDate TEXT,
                 ShippedDate TEXT);
             INSERT INTO Customers VALUES ('A', 'Alfa'), ('B', 'Beta'), ('C', 'Gamma');
             INSERT INTO Orders VALUES (1, 'A', '1997-03-01', NULL),
                 (2, 'A', '1998-01-05', '1998-01-09'), (3, 'B', '1997-07-01', NULL);",
        )
        .unwrap();
        conn
    }

    fn rewrite(sql: &str) -> Option<String> {
        let conn = database();
        let schema = introspect(&conn, ":memory:").unwrap();
        filter_unmatched_in_join(sql, &schema)
    }

    fn count(sql: &str) -> i64 {
        database().query_row(sql, [], |row| row.get(0)).unwrap()
    }

    #[test]
    fn a_filter_on_the_missing_rows_moves_into_the_join() {
        let sql = "SELECT COUNT(*) FROM Customers AS c LEFT JOIN Orders AS o \
                   ON c.CustomerID = o.CustomerID \
                   WHERE o.OrderID IS NULL AND strftime('%Y', o.OrderDate) = '1998'";
        assert_eq!(count(sql), 0);
        let rewritten = rewrite(sql).expect("the year filter moves into the join");
        let flat = rewritten.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains("AND strftime('%Y', o.OrderDate) = '1998' WHERE o.OrderID IS NULL"));
        assert_eq!(count(&rewritten), 2);
    }

    #[test]
    fn a_join_key_test_with_bare_columns_counts_too() {
        let sql = "SELECT CompanyName FROM Customers LEFT JOIN Orders \
                   ON Customers.CustomerID = Orders.CustomerID \
                   WHERE Orders.CustomerID IS NULL AND OrderDate LIKE '1997%'";
        let rewritten = rewrite(sql).expect("the date filter moves into the join");
        assert_eq!(count(&format!("SELECT COUNT(*) FROM ({rewritten})")), 1);
    }

    #[test]
    fn a_test_of_a_column_that_may_be_null_or_of_both_tables_stays() {
        let nullable = "SELECT COUNT(*) FROM Customers AS c LEFT JOIN Orders AS o \
                        ON c.CustomerID = o.CustomerID \
                        WHERE o.ShippedDate IS NULL AND o.OrderDate > '1997'";
        assert_eq!(rewrite(nullable), None);
        let both = "SELECT COUNT(*) FROM Customers AS c LEFT JOIN Orders AS o \
                    ON c.CustomerID = o.CustomerID \
                    WHERE o.OrderID IS NULL AND c.CompanyName <> o.OrderDate";
        assert_eq!(rewrite(both), None);
        let kept = "SELECT COUNT(*) FROM Customers AS c LEFT JOIN Orders AS o \
                    ON c.CustomerID = o.CustomerID \
                    WHERE o.OrderID IS NULL AND coalesce(o.OrderDate, '1998') = '1998'";
        assert_eq!(rewrite(kept), None);
    }

    #[test]
    fn an_inner_join_or_a_missing_row_test_alone_is_left_alone() {
        let inner = "SELECT COUNT(*) FROM Customers AS c JOIN Orders AS o \
                     ON c.CustomerID = o.CustomerID WHERE o.OrderDate > '1997'";
        assert_eq!(rewrite(inner), None);
        let alone = "SELECT COUNT(*) FROM Customers AS c LEFT JOIN Orders AS o \
                     ON c.CustomerID = o.CustomerID WHERE o.OrderID IS NULL";
        assert_eq!(rewrite(alone), None);
    }
}
