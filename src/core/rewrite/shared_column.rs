//! A column both joined tables hold, read from the table the question does not name.
//!
//! "Campuses in Los Angeles county opened after 1950" comes out of a small model as
//! `Campuses AS T1 JOIN csu_fees AS T2 ON T1.Id = T2.Campus WHERE T1.County = 'Los Angeles'
//! AND T2.Year > 1950`: both tables have a `Year`, and the model took the year a fee applied
//! for the year the campus opened. "Founders of companies whose name starts with S" reads
//! `Products.Name` the same way. When a joined table is read only through columns that
//! the one table it joins to also has (its join columns aside), and the question uses no
//! word of its name, [`drop_join_for_shared_column`] reads those columns from that other
//! table and drops the join: the joined table added nothing the question asks about but a
//! second column of the same name, and its rows multiplied or filtered the answer.
//!
//! Only on a plain SELECT (no set operation, CTE or subquery) whose tables all join on
//! column equalities, when the joined table is a leaf (no other join reads it) and the
//! table it joins to is read outside the joins too.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, Join, JoinOperator, Select, SetExpr, Statement, TableFactor, Visit,
    VisitMut, visit_expressions, visit_expressions_mut,
};

use rusqlite::{Connection, OptionalExtension};

use crate::core::db::ident::quote_identifier;
use crate::core::db::ident::{lowercase_words, split_identifier};
use crate::core::db::schema::{Schema, Table};
use crate::core::db::sql_ast::{
    conjuncts, has_expression_subquery, ident, is_column, join_condition, parse_single_query,
    resolve_column_owner, tables_in_scope,
};
use crate::core::rewrite::simplify::{has_wildcard, singular};
use crate::core::rewrite::{Rewrite, RewriteInput};

/// The query with a joined table's shared columns read from the table it joins to and
/// that join dropped, pretty-printed; `None` when no join is only a second copy of names.
pub fn drop_join_for_shared_column(
    sql: &str,
    question: &str,
    schema: &Schema,
    conn: Option<&Connection>,
) -> Option<String> {
    let mut statement = parse_single_query(sql)?;
    if has_subquery(&statement) || has_wildcard(&mut statement) {
        return None;
    }
    let Statement::Query(query) = &statement else {
        return None;
    };
    if query.with.is_some() {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let [from] = select.from.as_slice() else {
        return None;
    };
    let tables = tables_in_scope(select, schema);
    if from.joins.is_empty() || tables.len() != from.joins.len() + 1 {
        return None;
    }
    if !from.joins.iter().all(is_inner_equality_join) {
        return None;
    }
    let outside_joins = without_join_conditions(&statement);
    let (join_index, joined, kept) = (0..from.joins.len()).find_map(|index| {
        let joined = &tables[index + 1];
        shared_only_join(index, &from.joins, &tables, &outside_joins, question)
            .map(|kept| (index, joined.0.clone(), kept))
    })?;
    let (kept_name, kept_table) = kept;
    if !kept_rows_match(select, &joined, (&kept_name, kept_table), &tables, conn)? {
        return None;
    }
    let Statement::Query(query) = &mut statement else {
        return None;
    };
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    select.from[0].joins.remove(join_index);
    read_from_kept(&mut statement, &joined, &kept_name, kept_table);
    Some(format!("{statement:#}"))
}

/// Whether every condition on the joined table, read from the kept table instead, still
/// matches some row of it: "pop tracks" filters `Genre.Name = 'Pop'`, which no track's
/// own `Name` holds, so the genre is what the question meant. `None` when a condition
/// cannot be checked (no SQLite connection, or it does not run).
fn kept_rows_match(
    select: &Select,
    joined: &str,
    (kept_name, kept_table): (&str, &Table),
    tables: &[(String, &Table)],
    conn: Option<&Connection>,
) -> Option<bool> {
    let conditions = select.selection.iter().flat_map(conjuncts);
    for condition in conditions {
        if columns_of(condition, joined, tables)?.is_empty() {
            continue;
        }
        let mut moved = condition.clone();
        read_from_kept(&mut moved, joined, kept_name, kept_table);
        let probe = format!(
            "SELECT 1 FROM {} AS {} WHERE {moved} LIMIT 1",
            quote_identifier(&kept_table.name),
            ident(kept_name)
        );
        let found = conn?
            .query_row(&probe, [], |_| Ok(()))
            .optional()
            .ok()?
            .is_some();
        if !found {
            return Some(false);
        }
    }
    Some(true)
}

/// Every `joined.column` in `node` read as `kept.column` (the kept table's spelling).
fn read_from_kept<T: VisitMut>(node: &mut T, joined: &str, kept_name: &str, kept_table: &Table) {
    let _ = visit_expressions_mut(node, |expr| {
        if let Expr::CompoundIdentifier(parts) = expr
            && parts.len() >= 2
            && parts[parts.len() - 2].value.eq_ignore_ascii_case(joined)
            && let Some(own) = kept_table.column(&parts[parts.len() - 1].value)
        {
            *parts = vec![ident(kept_name), ident(&own.name)];
        }
        ControlFlow::<()>::Continue(())
    });
}

/// The table (name in the query, schema table) the joined table of `joins[index]` should
/// give its columns back to, when that join is only a second copy of names.
fn shared_only_join<'s>(
    index: usize,
    joins: &[Join],
    tables: &[(String, &'s Table)],
    outside_joins: &Statement,
    question: &str,
) -> Option<(String, &'s Table)> {
    let (joined_name, joined_table) = &tables[index + 1];
    if names_table(question, &joined_table.name) {
        return None;
    }
    let on = join_condition(&joins[index])?;
    let on_owners = owners_in(on, tables)?;
    let kept_name = on_owners
        .iter()
        .find(|owner| !owner.eq_ignore_ascii_case(joined_name))?;
    if on_owners.len() != 2
        || on_owners
            .iter()
            .all(|o| !o.eq_ignore_ascii_case(joined_name))
    {
        return None;
    }
    let (kept_name, kept_table) = tables
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(kept_name))?;
    let other_joins_read_it = joins.iter().enumerate().any(|(other, join)| {
        other != index
            && join_condition(join)
                .and_then(|on| owners_in(on, tables))
                .is_none_or(|owners| owners.iter().any(|o| o.eq_ignore_ascii_case(joined_name)))
    });
    if other_joins_read_it {
        return None;
    }
    if !reads_alone_outside_joins(outside_joins, joined_name, tables)? {
        return None;
    }
    let join_columns = columns_of(on, joined_name, tables)?;
    let read = columns_of(outside_joins, joined_name, tables)?;
    let kept_is_read = !columns_of(outside_joins, kept_name, tables)?.is_empty();
    let all_shared = read.iter().all(|column| {
        kept_table.column(column).is_some()
            && !join_columns.iter().any(|j| j.eq_ignore_ascii_case(column))
    });
    (!read.is_empty() && kept_is_read && all_shared).then(|| (kept_name.clone(), *kept_table))
}

/// Whether the question uses a word of the table's name, or the start of one ("each
/// manufacture" names `manufacturers`): then the joined table is what it asks about.
fn names_table(question: &str, table: &str) -> bool {
    let words: Vec<String> = lowercase_words(question)
        .iter()
        .map(|w| singular(w))
        .collect();
    split_identifier(table)
        .iter()
        .map(|w| singular(w))
        .filter(|w| w.len() > 2)
        .any(|name| {
            words.iter().any(|word| {
                word == &name
                    || (word.len() >= 5
                        && (name.starts_with(word.as_str()) || word.starts_with(&name)))
            })
        })
}

/// Whether, outside the joins, the joined table's columns are only output or compared
/// with literals on their own: not grouped by (which table's rows form the groups is then
/// the question) and not compared with another table's column (a second join condition,
/// `T1.employee_id = T2.manager_id`). `None` when a column does not resolve.
fn reads_alone_outside_joins(
    outside_joins: &Statement,
    joined: &str,
    tables: &[(String, &Table)],
) -> Option<bool> {
    let Statement::Query(query) = outside_joins else {
        return None;
    };
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    if !columns_of(&select.group_by, joined, tables)?.is_empty() {
        return Some(false);
    }
    for condition in select
        .selection
        .iter()
        .chain(select.having.iter())
        .flat_map(conjuncts)
    {
        let owners = owners_in(condition, tables)?;
        if owners.len() > 1 && owners.iter().any(|o| o.eq_ignore_ascii_case(joined)) {
            return Some(false);
        }
    }
    Some(true)
}

/// The names (in the query) of the tables whose columns `node` reads, each once; `None`
/// when a column does not resolve to exactly one table in scope.
fn owners_in<T: Visit>(node: &T, tables: &[(String, &Table)]) -> Option<Vec<String>> {
    let mut owners: Vec<String> = Vec::new();
    let flow = visit_expressions(node, |expr| {
        if !is_column(expr) {
            return ControlFlow::Continue(());
        }
        match resolve_column_owner(expr, tables) {
            Some((owner, _, _)) => {
                if !owners.iter().any(|o| o.eq_ignore_ascii_case(owner)) {
                    owners.push(owner.to_string());
                }
                ControlFlow::Continue(())
            }
            None => ControlFlow::Break(()),
        }
    });
    flow.is_continue().then_some(owners)
}

/// The columns `node` reads from the table named `owner` in the query, schema spelling,
/// each once; `None` when a column does not resolve to exactly one table in scope.
fn columns_of<T: Visit>(node: &T, owner: &str, tables: &[(String, &Table)]) -> Option<Vec<String>> {
    let mut columns: Vec<String> = Vec::new();
    let flow = visit_expressions(node, |expr| {
        if !is_column(expr) {
            return ControlFlow::Continue(());
        }
        match resolve_column_owner(expr, tables) {
            Some((found, _, column)) => {
                if found.eq_ignore_ascii_case(owner)
                    && !columns.iter().any(|c| c.eq_ignore_ascii_case(&column))
                {
                    columns.push(column);
                }
                ControlFlow::Continue(())
            }
            None => ControlFlow::Break(()),
        }
    });
    flow.is_continue().then_some(columns)
}

/// The statement with every join's condition replaced by `TRUE`: what the query reads
/// outside its joins.
fn without_join_conditions(statement: &Statement) -> Statement {
    let mut copy = statement.clone();
    if let Statement::Query(query) = &mut copy
        && let SetExpr::Select(select) = query.body.as_mut()
    {
        for from in &mut select.from {
            for join in &mut from.joins {
                if let Some(on) = join_condition_mut(join) {
                    *on = Expr::Value(sqlparser::ast::Value::Boolean(true).into());
                }
            }
        }
    }
    copy
}

fn join_condition_mut(join: &mut Join) -> Option<&mut Expr> {
    use sqlparser::ast::JoinConstraint;
    match &mut join.join_operator {
        JoinOperator::Join(JoinConstraint::On(on))
        | JoinOperator::Inner(JoinConstraint::On(on)) => Some(on),
        _ => None,
    }
}

/// An inner join of a schema table on `a.x = b.y` conditions only.
fn is_inner_equality_join(join: &Join) -> bool {
    let inner = matches!(
        join.join_operator,
        JoinOperator::Join(_) | JoinOperator::Inner(_)
    );
    inner
        && matches!(join.relation, TableFactor::Table { .. })
        && join_condition(join).is_some_and(|on| {
            conjuncts(on).iter().all(|condition| {
                matches!(condition, Expr::BinaryOp { left, op: BinaryOperator::Eq, right }
                    if is_column(left) && is_column(right))
            })
        })
}

/// A nested query anywhere in the statement.
fn has_subquery(statement: &Statement) -> bool {
    let Statement::Query(query) = statement else {
        return true;
    };
    let nested = has_expression_subquery(statement);
    let SetExpr::Select(select) = query.body.as_ref() else {
        return true;
    };
    nested
        || select.from.iter().any(|from| {
            std::iter::once(&from.relation)
                .chain(from.joins.iter().map(|join| &join.relation))
                .any(|factor| !matches!(factor, TableFactor::Table { .. }))
        })
}

/// [`drop_join_for_shared_column`] as a step of the chain.
pub(crate) struct DropJoinForSharedColumn;

impl Rewrite for DropJoinForSharedColumn {
    fn name(&self) -> &'static str {
        "drop_join_for_shared_column"
    }

    fn apply(&self, sql: &str, input: &RewriteInput<'_>) -> Option<String> {
        drop_join_for_shared_column(sql, input.question, input.schema, input.conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::db::schema::introspect;

    fn database() -> rusqlite::Connection {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE Campuses(Id INTEGER PRIMARY KEY, Campus TEXT, County TEXT, Year INTEGER);
             CREATE TABLE csu_fees(Campus INTEGER REFERENCES Campuses(Id), Year INTEGER,
                 CampusFee INTEGER);
             CREATE TABLE Manufacturers(Code INTEGER PRIMARY KEY, Name TEXT, Founder TEXT);
             CREATE TABLE Products(Code INTEGER PRIMARY KEY, Name TEXT, Price INTEGER,
                 Manufacturer INTEGER REFERENCES Manufacturers(Code));
             INSERT INTO Campuses VALUES (1, 'Cal Poly', 'Los Angeles', 1961);
             INSERT INTO csu_fees VALUES (1, 1996, 1000);
             INSERT INTO Manufacturers VALUES (1, 'Sony', 'Andy'), (2, 'Hewlett', 'Bill');
             INSERT INTO Products VALUES (1, 'Speakers', 70, 2), (2, 'Sofa', 90, 1);",
        )
        .unwrap();
        conn
    }

    fn rewrite(sql: &str, question: &str) -> Option<String> {
        let conn = database();
        let schema = introspect(&conn, ":memory:").unwrap();
        drop_join_for_shared_column(sql, question, &schema, Some(&conn))
            .map(|sql| sql.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    #[test]
    fn a_year_both_tables_hold_is_read_from_the_campus() {
        let sql = "SELECT DISTINCT T1.Campus FROM Campuses AS T1 JOIN csu_fees AS T2 \
                   ON T1.Id = T2.Campus WHERE T1.County = 'Los Angeles' AND T2.Year > 1950";
        assert_eq!(
            rewrite(
                sql,
                "What campuses are located in Los Angeles county and opened after 1950?"
            )
            .as_deref(),
            Some(
                "SELECT DISTINCT T1.Campus FROM Campuses AS T1 WHERE T1.County = 'Los Angeles' \
                 AND T1.Year > 1950"
            )
        );
    }

    #[test]
    fn a_name_read_from_the_joined_table_moves_to_the_table_read_elsewhere() {
        let sql = "SELECT DISTINCT T1.Founder FROM Manufacturers AS T1 JOIN Products AS T2 \
                   ON T1.Code = T2.Manufacturer WHERE T2.Name LIKE 'S%'";
        let rewritten = rewrite(
            sql,
            "Who is the founders of companies whose first letter is S?",
        );
        assert_eq!(
            rewritten.as_deref(),
            Some("SELECT DISTINCT T1.Founder FROM Manufacturers AS T1 WHERE T1.Name LIKE 'S%'")
        );
    }

    #[test]
    fn a_joined_table_the_question_names_keeps_its_columns() {
        let sql = "SELECT DISTINCT T1.Founder FROM Manufacturers AS T1 JOIN Products AS T2 \
                   ON T1.Code = T2.Manufacturer WHERE T2.Name LIKE 'S%'";
        assert_eq!(
            rewrite(
                sql,
                "Founders of companies with a product whose name starts with S"
            ),
            None
        );
    }

    #[test]
    fn a_column_only_the_joined_table_holds_keeps_the_join() {
        let sql = "SELECT T1.Campus FROM Campuses AS T1 JOIN csu_fees AS T2 \
                   ON T1.Id = T2.Campus WHERE T2.Year = 2000 AND T2.CampusFee > 100";
        assert_eq!(rewrite(sql, "Campuses charging over 100 in 2000"), None);
    }

    #[test]
    fn a_join_that_is_all_the_query_reads_of_the_first_table_is_left_alone() {
        let sql = "SELECT T2.Name FROM Manufacturers AS T1 JOIN Products AS T2 \
                   ON T1.Code = T2.Manufacturer";
        assert_eq!(rewrite(sql, "List the names"), None);
        let sql = "SELECT T1.Name FROM Manufacturers AS T1 JOIN Products AS T2 \
                   ON T1.Code = T2.Manufacturer WHERE T2.Code IN (SELECT Code FROM Products)";
        assert_eq!(rewrite(sql, "List the names"), None);
    }

    #[test]
    fn a_grouped_or_compared_shared_column_keeps_the_join() {
        let grouped = "SELECT avg(T1.Price), T2.Name FROM Products AS T1 JOIN Manufacturers AS T2 \
                       ON T1.Manufacturer = T2.Code GROUP BY T2.Name";
        assert_eq!(
            rewrite(grouped, "Average prices, and each company's name"),
            None
        );
        let compared = "SELECT T1.Name FROM Products AS T1 JOIN Manufacturers AS T2 \
                        ON T1.Manufacturer = T2.Code WHERE T1.Code = T2.Code";
        assert_eq!(rewrite(compared, "Which ones are like that?"), None);
        let everything = "SELECT * FROM Campuses AS T1 JOIN csu_fees AS T2 ON T1.Id = T2.Campus \
                          WHERE T2.Year = 2000";
        assert_eq!(
            rewrite(everything, "All about campuses opened in 2000"),
            None
        );
    }

    #[test]
    fn a_value_only_the_joined_table_holds_keeps_the_join() {
        let sql = "SELECT T1.Founder FROM Manufacturers AS T1 JOIN Products AS T2 \
                   ON T1.Code = T2.Manufacturer WHERE T2.Name = 'Sofa'";
        assert_eq!(rewrite(sql, "Who founded the maker of the sofa?"), None);
        let conn = database();
        let schema = introspect(&conn, ":memory:").unwrap();
        let question = "Who is the founders of companies whose first letter is S?";
        let like = "SELECT T1.Founder FROM Manufacturers AS T1 JOIN Products AS T2 \
                    ON T1.Code = T2.Manufacturer WHERE T2.Name LIKE 'S%'";
        assert_eq!(
            drop_join_for_shared_column(like, question, &schema, None),
            None,
            "without a connection a condition cannot be checked"
        );
    }

    #[test]
    fn the_start_of_a_table_word_names_it() {
        assert!(names_table(
            "the average price from each manufacture",
            "Manufacturers"
        ));
        assert!(!names_table("founders of companies", "Products"));
    }
}
