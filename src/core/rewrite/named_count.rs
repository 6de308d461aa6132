//! "How many orders were placed by customers from France?" counted over the customers.
//!
//! A small model often counts the rows of the table the question filters on instead of
//! the rows it counts: `SELECT COUNT(*) FROM Customers WHERE Country = 'France'`; or,
//! asked which employee handled the most orders, it counts the rows of an
//! `EmployeeTerritories` join the question never mentions. When the question counts the
//! rows of exactly one table that references the query's table through a foreign key,
//! [`count_named_table`] counts that table's rows: joined in when the query reads its one
//! table alone, or put in place of the joined table when nothing but the join reads it.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Join,
    JoinOperator, Select, SelectItem, SetExpr, Statement, visit_expressions, visit_expressions_mut,
};

use crate::core::db::ident::{lowercase_words, split_identifier};
use crate::core::db::schema::{Schema, Table};
use crate::core::db::sql_ast::{
    has_expression_subquery, join_condition, parse_single_query, schema_table,
};
use crate::core::rewrite::counted_rows::{
    counted_table, counted_words, counts_rows_only, join_on_link, pin_bare_columns,
};
use crate::core::rewrite::simplify::{is_count, question_words_naming, singular};
use crate::core::rewrite::{Rewrite, RewriteInput};

/// The query counting the rows of the table the question counts, pretty-printed; `None`
/// when the query is not a count of one table (or of one table and a join nothing else
/// reads), or the question counts no one table that references it, or counts its rows.
pub fn count_named_table(sql: &str, question: &str, schema: &Schema) -> Option<String> {
    let mut statement = parse_single_query(sql)?;
    if has_expression_subquery(&statement) || !counts_rows_only(&statement) {
        return None;
    }
    count_all_joined_rows(&mut statement, schema);
    let plan = plan(&statement, question, schema)?;
    pin_bare_columns(&mut statement, plan.table, &plan.reference);
    let Statement::Query(query) = &mut statement else {
        return None;
    };
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    let joins = &mut select.from.first_mut()?.joins;
    joins.clear();
    joins.push(plan.join);
    Some(format!("{statement:#}"))
}

/// `COUNT(T2.TerritoryID)` of the one joined table becomes `COUNT(*)`: a count of its
/// rows, which is what the plan replaces, not a read of its values.
fn count_all_joined_rows(statement: &mut Statement, schema: &Schema) {
    let Statement::Query(query) = &*statement else {
        return;
    };
    let SetExpr::Select(select) = query.body.as_ref() else {
        return;
    };
    let Some([join]) = select.from.first().map(|from| from.joins.as_slice()) else {
        return;
    };
    let Some((joined_reference, joined)) = schema_table(&join.relation, schema) else {
        return;
    };
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::Function(function) = expr
            && is_count(function)
            && let FunctionArguments::List(list) = &mut function.args
            && let [FunctionArg::Unnamed(FunctionArgExpr::Expr(argument))] = list.args.as_slice()
            && reads_joined(argument, &joined_reference, joined)
        {
            list.args = vec![FunctionArg::Unnamed(FunctionArgExpr::Wildcard)];
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Whether a column reference names the joined table's column: by its name in the query,
/// or bare when the joined table has such a column.
fn reads_joined(expr: &Expr, joined_reference: &str, joined: &Table) -> bool {
    match expr {
        Expr::Identifier(name) => joined.column(&name.value).is_some(),
        Expr::CompoundIdentifier(_) => {
            qualifier(expr).is_some_and(|q| q.eq_ignore_ascii_case(joined_reference))
        }
        _ => false,
    }
}

/// The first table (as the query names it) and the join of the counted table that
/// becomes the query's only join.
struct Plan<'s> {
    reference: String,
    table: &'s Table,
    join: Join,
}

fn plan<'s>(statement: &Statement, question: &str, schema: &'s Schema) -> Option<Plan<'s>> {
    let Statement::Query(query) = statement else {
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
    let (reference, table) = schema_table(&from.relation, schema)?;
    // "How many allergies have type animal?" counts the rows of `Allergy_type`: a counted
    // word anywhere in the first table's name means its own rows are counted.
    let counted_words = counted_words(question);
    if name_words(&table.name)
        .iter()
        .any(|word| counted_words.contains(word))
    {
        return None;
    }
    let (counted, link) = counted_table(question, table, schema)?;
    if counted.name.eq_ignore_ascii_case(&reference) {
        return None;
    }
    let counts_what_it_should = match from.joins.as_slice() {
        [] => is_plain_count(select) && question_words_naming(question, &table.name) > 0,
        [join] => {
            reads_join_only_in_its_condition(statement, join, &reference, table, schema)
                && !question_names_own_words(question, join, table, schema)
                && !joins_table(join, &counted.name)
        }
        _ => false,
    };
    if !counts_what_it_should {
        return None;
    }
    let join = join_on_link(counted, link, &reference, table)?;
    Some(Plan {
        reference,
        table,
        join,
    })
}

/// The words of a table's name, singular.
fn name_words(name: &str) -> Vec<String> {
    split_identifier(name).iter().map(|w| singular(w)).collect()
}

/// An ungrouped query whose every output is a count: `SELECT COUNT(*) FROM t WHERE ...`.
fn is_plain_count(select: &Select) -> bool {
    let grouped = match &select.group_by {
        GroupByExpr::Expressions(expressions, _) => !expressions.is_empty(),
        GroupByExpr::All(_) => true,
    };
    !grouped
        && select.having.is_none()
        && !select.projection.is_empty()
        && select.projection.iter().all(|item| {
            let expr = match item {
                SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => expr,
                _ => return false,
            };
            matches!(expr, Expr::Function(function) if is_count(function))
        })
}

fn joins_table(join: &Join, name: &str) -> bool {
    matches!(&join.relation, sqlparser::ast::TableFactor::Table { name: joined, .. }
        if joined.0.last().and_then(|part| part.as_ident())
            .is_some_and(|part| part.value.eq_ignore_ascii_case(name)))
}

/// Whether the join is an inner join of a table that references the first one through a
/// foreign key, on one column equality, and no other part of the query reads the joined
/// table: its rows are only there to be counted.
fn reads_join_only_in_its_condition(
    statement: &Statement,
    join: &Join,
    reference: &str,
    table: &Table,
    schema: &Schema,
) -> bool {
    if !matches!(
        join.join_operator,
        JoinOperator::Join(_) | JoinOperator::Inner(_)
    ) {
        return false;
    }
    let Some((joined_reference, joined)) = schema_table(&join.relation, schema) else {
        return false;
    };
    let references_first = joined
        .foreign_keys
        .iter()
        .any(|fk| fk.to_table.eq_ignore_ascii_case(&table.name));
    let Some(Expr::BinaryOp {
        left,
        op: BinaryOperator::Eq,
        right,
    }) = join_condition(join)
    else {
        return false;
    };
    let qualifiers = [qualifier(left), qualifier(right)];
    let links_the_two = qualifiers
        .iter()
        .flatten()
        .any(|q| q.eq_ignore_ascii_case(reference))
        && qualifiers
            .iter()
            .flatten()
            .any(|q| q.eq_ignore_ascii_case(&joined_reference));
    if !references_first || !links_the_two {
        return false;
    }
    // The join's own condition reads the joined table once, qualified; a bare name is
    // never the condition's.
    let mut reads = 0;
    let _ = visit_expressions(statement, |expr| {
        if reads_joined(expr, &joined_reference, joined) {
            reads += if matches!(expr, Expr::Identifier(_)) {
                2
            } else {
                1
            };
        }
        ControlFlow::<()>::Continue(())
    });
    reads == 1
}

/// The table name (or alias) before the column's name: `T2` of `T2.Name`.
fn qualifier(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
            Some(parts[parts.len() - 2].value.as_str())
        }
        _ => None,
    }
}

/// Whether the question uses a word of the joined table's name that the first table's
/// name lacks ("territories" of `EmployeeTerritories` next to `Employees`): then the
/// question may well mean the joined rows.
fn question_names_own_words(question: &str, join: &Join, table: &Table, schema: &Schema) -> bool {
    let Some((_, joined)) = schema_table(&join.relation, schema) else {
        return true;
    };
    let first = name_words(&table.name);
    let asked: Vec<String> = lowercase_words(question)
        .iter()
        .map(|w| singular(w))
        .collect();
    name_words(&joined.name)
        .into_iter()
        .filter(|word| word.len() > 2 && !first.contains(word))
        .any(|word| asked.contains(&word))
}

/// [`count_named_table`] as a step of the chain.
pub(crate) struct CountNamedTable;

impl Rewrite for CountNamedTable {
    fn name(&self) -> &'static str {
        "count_named_table"
    }

    fn apply(&self, sql: &str, input: &RewriteInput<'_>) -> Option<String> {
        count_named_table(sql, input.question, input.schema)
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
            "CREATE TABLE Customers (CustomerID TEXT PRIMARY KEY, CompanyName TEXT,
                 Country TEXT);
             CREATE TABLE Employees (EmployeeID INTEGER PRIMARY KEY, LastName TEXT);
             CREATE TABLE EmployeeTerritories (EmployeeID INTEGER
                 REFERENCES Employees(EmployeeID), TerritoryID TEXT);
             CREATE TABLE Orders (OrderID INTEGER PRIMARY KEY,
                 CustomerID TEXT REFERENCES Customers(CustomerID),
                 EmployeeID INTEGER REFERENCES Employees(EmployeeID), Country TEXT);
             INSERT INTO Customers VALUES ('A', 'Alfa', 'France'), ('B', 'Beta', 'France'),
                 ('C', 'Gamma', 'Spain');
             INSERT INTO Employees VALUES (1, 'Davolio'), (2, 'Fuller');
             INSERT INTO EmployeeTerritories VALUES (1, 't1'), (1, 't2'), (1, 't3'),
                 (2, 't4');
             INSERT INTO Orders VALUES (1, 'A', 2, 'France'), (2, 'A', 2, 'France'),
                 (3, 'B', 2, 'France'), (4, 'C', 1, 'Spain');",
        )
        .unwrap();
        conn
    }

    fn rewrite(sql: &str, question: &str) -> Option<String> {
        let conn = database();
        let schema = introspect(&conn, ":memory:").unwrap();
        count_named_table(sql, question, &schema)
    }

    fn first_value(sql: &str) -> String {
        let conn = database();
        conn.query_row(sql, [], |row| row.get::<_, rusqlite::types::Value>(0))
            .map(|value| format!("{value:?}"))
            .unwrap()
    }

    #[test]
    fn a_count_of_the_filtered_table_counts_the_rows_the_question_counts() {
        let rewritten = rewrite(
            "SELECT COUNT(*) FROM Customers WHERE Country = 'France'",
            "How many orders were placed by customers from France?",
        )
        .unwrap();
        assert_eq!(
            first_value(&rewritten),
            first_value(
                "SELECT count(*) FROM Orders AS T1 JOIN Customers AS T2 \
                 ON T1.CustomerID = T2.CustomerID WHERE T2.Country = 'France'"
            ),
            "{rewritten}"
        );
    }

    #[test]
    fn a_join_nothing_reads_gives_way_to_the_table_the_question_counts() {
        let rewritten = rewrite(
            "SELECT E.LastName FROM Employees AS E JOIN EmployeeTerritories AS ET \
             ON E.EmployeeID = ET.EmployeeID GROUP BY E.EmployeeID ORDER BY COUNT(*) DESC \
             LIMIT 1",
            "Which employee handled the most orders? Give the last name.",
        )
        .unwrap();
        assert_eq!(first_value(&rewritten), "Text(\"Fuller\")", "{rewritten}");
    }

    #[test]
    fn a_count_of_a_joined_column_is_a_count_of_its_rows() {
        let rewritten = rewrite(
            "SELECT T1.LastName FROM Employees AS T1 JOIN EmployeeTerritories AS T2 \
             ON T1.EmployeeID = T2.EmployeeID GROUP BY T1.EmployeeID \
             ORDER BY COUNT(T2.TerritoryID) DESC LIMIT 1",
            "Which employee handled the most orders? Give the last name.",
        )
        .unwrap();
        assert_eq!(first_value(&rewritten), "Text(\"Fuller\")", "{rewritten}");
    }

    #[test]
    fn a_question_counting_the_queried_rows_or_naming_the_join_leaves_the_query() {
        let own = "SELECT COUNT(*) FROM Customers WHERE Country = 'France'";
        assert_eq!(
            rewrite(own, "How many customers from France placed orders?"),
            None
        );
        let named = "SELECT E.LastName, COUNT(*) FROM Employees AS E JOIN \
                     EmployeeTerritories AS ET ON E.EmployeeID = ET.EmployeeID \
                     GROUP BY E.EmployeeID";
        assert_eq!(
            rewrite(named, "How many orders and territories has each employee?"),
            None
        );
    }

    #[test]
    fn a_join_the_query_reads_or_an_unnamed_first_table_stays() {
        let read = "SELECT ET.TerritoryID, COUNT(*) FROM Employees AS E JOIN \
                    EmployeeTerritories AS ET ON E.EmployeeID = ET.EmployeeID \
                    GROUP BY ET.TerritoryID";
        assert_eq!(
            rewrite(read, "Which employee handled the most orders?"),
            None
        );
        let unnamed = "SELECT COUNT(*) FROM Customers WHERE Country = 'France'";
        assert_eq!(rewrite(unnamed, "How many orders went to France?"), None);
        let own_word = "SELECT COUNT(*) FROM Employees";
        assert_eq!(
            rewrite(own_word, "How many employee orders are there?"),
            None,
            "a counted word of the queried table's name counts its rows"
        );
        let distinct = "SELECT COUNT(DISTINCT Country) FROM Customers";
        assert_eq!(rewrite(distinct, "How many orders have customers?"), None);
    }
}
