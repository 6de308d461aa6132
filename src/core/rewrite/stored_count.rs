//! "The manufacturer with the most number of shops" when the table stores that number.
//!
//! A small model counts rows for every "the most number of ...": `manufacturer JOIN
//! furniture_manufacte ... GROUP BY Manufacturer_ID ORDER BY COUNT(*) DESC LIMIT 1` counts
//! furniture, though `manufacturer.Num_of_Shops` holds the number the question asks for and
//! no table holds shops. When the question asks for the most (or least) "number of" a
//! thing no table is named for, the query groups and sorts by a `COUNT`, everything it
//! returns, groups by and filters on is one table's, and that table has exactly one
//! numeric column named for the thing (not a key), [`order_by_stored_count`] sorts by the
//! column's sum over each group instead (the column itself when the group is one row) and
//! drops the joins, which only fed the count.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, GroupByExpr, OrderByKind, Select, SelectItem, SetExpr, Statement, TableFactor,
    TableWithJoins, visit_expressions,
};

use crate::core::db::ident::{lowercase_words, split_identifier};
use crate::core::db::schema::{Column, Schema, Table};
use crate::core::db::sql_ast::{
    any_function, ident, is_column, parse_single_query, resolve_column_owner, schema_table,
    tables_in_scope,
};
use crate::core::rewrite::simplify::{is_count, singular};
use crate::core::rewrite::{Rewrite, RewriteInput};

/// Words that ask for the most or the least of a number ("the greatest number of years").
const EXTREMES: [&str; 10] = [
    "most", "greatest", "largest", "highest", "biggest", "least", "fewest", "smallest", "lowest",
    "minimum",
];

/// The query sorted by the stored number instead of a count, pretty-printed; `None` when
/// the question or the query is not that shape.
pub fn order_by_stored_count(sql: &str, question: &str, schema: &Schema) -> Option<String> {
    let noun = counted_thing(question)?;
    if schema
        .tables
        .iter()
        .any(|t| name_words(&t.name).contains(&noun))
    {
        return None;
    }
    let mut statement = parse_single_query(sql)?;
    let Statement::Query(query) = &mut statement else {
        return None;
    };
    if query.with.is_some() || query.order_by.is_none() {
        return None;
    }
    let Some(OrderByKind::Expressions(order)) = query.order_by.as_mut().map(|o| &mut o.kind) else {
        return None;
    };
    let [sort] = order.as_mut_slice() else {
        return None;
    };
    if !matches!(&sort.expr, Expr::Function(function) if is_count(function)) {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    let (owner, table) = only_table_read(select, schema)?;
    let column = stored_number(table, &noun)?;
    let kept = kept_relation(select, &owner, schema)?;
    sort.expr = sum_of(&owner, column)?;
    select.from = vec![TableWithJoins {
        relation: kept,
        joins: Vec::new(),
    }];
    Some(format!("{statement:#}"))
}

/// The singular noun after "the most number of" (or another extreme); `None` unless the
/// question asks that exactly once.
fn counted_thing(question: &str) -> Option<String> {
    let words = lowercase_words(question);
    let mut found = words
        .windows(4)
        .filter(|w| EXTREMES.contains(&w[0].as_str()) && w[1] == "number" && w[2] == "of")
        .map(|w| singular(&w[3]));
    let noun = found.next()?;
    found.next().is_none().then_some(noun)
}

/// The one table (its name in the query) every column outside the joins and the sort
/// belongs to: output, WHERE and GROUP BY; `None` without a GROUP BY, with HAVING or
/// DISTINCT, or when a column does not resolve to one table.
fn only_table_read<'s>(select: &Select, schema: &'s Schema) -> Option<(String, &'s Table)> {
    let GroupByExpr::Expressions(grouped, _) = &select.group_by else {
        return None;
    };
    if grouped.is_empty() || select.having.is_some() || select.distinct.is_some() {
        return None;
    }
    let tables = tables_in_scope(select, schema);
    let items = select.from.iter().map(|f| 1 + f.joins.len()).sum::<usize>();
    if select.from.len() != 1 || tables.len() != items {
        return None;
    }
    if any_function(&select.projection, |_| true) {
        return None;
    }
    let mut owners: Vec<(&str, &Table)> = Vec::new();
    let mut resolved = true;
    let mut note = |expr: &Expr| {
        if !is_column(expr) {
            return ControlFlow::<()>::Continue(());
        }
        match resolve_column_owner(expr, &tables) {
            Some((name, table, _)) if !owners.iter().any(|(seen, _)| *seen == name) => {
                owners.push((name, table));
            }
            Some(_) => {}
            None => resolved = false,
        }
        ControlFlow::Continue(())
    };
    let _ = visit_expressions(&select.projection, &mut note);
    let _ = visit_expressions(&select.selection, &mut note);
    let _ = visit_expressions(grouped, &mut note);
    match owners.as_slice() {
        [(name, table)] if resolved => Some((name.to_string(), *table)),
        _ => None,
    }
}

/// The table's one numeric column named for `noun` that is not a key.
fn stored_number<'t>(table: &'t Table, noun: &str) -> Option<&'t Column> {
    let keys: Vec<&str> = table
        .foreign_keys
        .iter()
        .map(|fk| fk.from_column.as_str())
        .collect();
    let mut named = table.columns.iter().filter(|column| {
        !column.primary_key
            && !keys.iter().any(|k| k.eq_ignore_ascii_case(&column.name))
            && is_numeric(column)
            && name_words(&column.name).iter().any(|w| w == noun)
    });
    let column = named.next()?;
    named.next().is_none().then_some(column)
}

fn is_numeric(column: &Column) -> bool {
    let declared = column.declared_type.to_ascii_uppercase();
    ["INT", "REAL", "NUM", "FLOA", "DOUB", "DEC"]
        .iter()
        .any(|kind| declared.contains(kind))
}

/// The words of an identifier, lowercase and singular.
fn name_words(name: &str) -> Vec<String> {
    split_identifier(name).iter().map(|w| singular(w)).collect()
}

/// The FROM item of the table the query goes by as `owner`.
fn kept_relation(select: &Select, owner: &str, schema: &Schema) -> Option<TableFactor> {
    let from = select.from.first()?;
    std::iter::once(&from.relation)
        .chain(from.joins.iter().map(|join| &join.relation))
        .find(|factor| {
            schema_table(factor, schema).is_some_and(|(name, _)| name.eq_ignore_ascii_case(owner))
        })
        .cloned()
}

/// `SUM(owner.column)`.
fn sum_of(owner: &str, column: &Column) -> Option<Expr> {
    let text = format!("SUM({}.{})", ident(owner), ident(&column.name));
    let Statement::Query(query) = parse_single_query(&format!("SELECT {text}"))? else {
        return None;
    };
    let SetExpr::Select(select) = *query.body else {
        return None;
    };
    match select.projection.into_iter().next()? {
        SelectItem::UnnamedExpr(expr) => Some(expr),
        _ => None,
    }
}

/// [`order_by_stored_count`] as a step of the chain.
pub(crate) struct OrderByStoredCount;

impl Rewrite for OrderByStoredCount {
    fn name(&self) -> &'static str {
        "order_by_stored_count"
    }

    fn apply(&self, sql: &str, input: &RewriteInput<'_>) -> Option<String> {
        order_by_stored_count(sql, input.question, input.schema)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::db::schema::introspect;

    fn furniture() -> Schema {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE manufacturer(Manufacturer_ID INTEGER PRIMARY KEY, Open_Year REAL,
                 Name TEXT, Num_of_Factories INTEGER, Num_of_Shops INTEGER);
             CREATE TABLE furniture(Furniture_ID INTEGER PRIMARY KEY, Name TEXT);
             CREATE TABLE furniture_manufacte(Manufacturer_ID INTEGER
                 REFERENCES manufacturer(Manufacturer_ID), Furniture_ID INTEGER
                 REFERENCES furniture(Furniture_ID), Price_in_Dollar REAL);",
        )
        .unwrap();
        introspect(&conn, ":memory:").unwrap()
    }

    fn rewrite(sql: &str, question: &str) -> Option<String> {
        order_by_stored_count(sql, question, &furniture())
            .map(|sql| sql.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    const COUNTED: &str = "SELECT m.Name, m.Open_Year FROM manufacturer m JOIN \
        furniture_manufacte f ON m.Manufacturer_ID = f.Manufacturer_ID \
        GROUP BY m.Manufacturer_ID ORDER BY COUNT(f.Furniture_ID) DESC LIMIT 1";

    #[test]
    fn the_most_number_of_a_stored_thing_sorts_by_its_column() {
        assert_eq!(
            rewrite(
                COUNTED,
                "Which manufacturer has the most number of shops? List its name and year."
            )
            .as_deref(),
            Some(
                "SELECT m.Name, m.Open_Year FROM manufacturer m GROUP BY m.Manufacturer_ID \
                 ORDER BY SUM(m.Num_of_Shops) DESC LIMIT 1"
            )
        );
    }

    #[test]
    fn a_thing_a_table_holds_is_counted() {
        let question = "Which manufacturer makes the most number of furnitures?";
        assert_eq!(rewrite(COUNTED, question), None);
        // No column is named for orders: the count stays.
        let question = "Which manufacturer has the most number of orders?";
        assert_eq!(rewrite(COUNTED, question), None);
        assert_eq!(
            rewrite(COUNTED, "Which manufacturer has the most shops?"),
            None
        );
    }

    #[test]
    fn a_query_that_reads_the_joined_table_keeps_its_count() {
        let sql = "SELECT m.Name, MAX(f.Price_in_Dollar) FROM manufacturer m JOIN \
                   furniture_manufacte f ON m.Manufacturer_ID = f.Manufacturer_ID \
                   GROUP BY m.Manufacturer_ID ORDER BY COUNT(*) DESC LIMIT 1";
        assert_eq!(
            rewrite(sql, "The most number of shops and the top price?"),
            None
        );
    }
}
