//! A foreign key's column named on the table it points at: "the support rep ids of
//! employees serving 10 or more customers" comes out as `SELECT FirstName, SupportRepId
//! FROM Employee WHERE SupportRepId IN (SELECT SupportRepId FROM Customer ...)`, and
//! SQLite answers "no such column: SupportRepId". `Customer.SupportRepId` references
//! `Employee.EmployeeId`, so on `Employee` the value the query means is `EmployeeId`: the
//! key the foreign key holds. The other fixes move the name to a table that has it
//! (`T2.SupportRepId`) or join that table in, which turns a join written
//! `ON T1.SupportRepId = T2.SupportRepId` into a column compared with itself, or repeats
//! every employee once per customer.
//!
//! Only when exactly one key is meant: the schema declares foreign keys named like the
//! missing column that all point at one column of the table the query reads it from, and
//! that column has another name (a same-named key is the other fixes' case). Only failing
//! SQL reaches this fix, so it can never change the result of a query that ran.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, Ident, Select, SelectItem, SetExpr, Statement, VisitMut, visit_expressions_mut,
};

use crate::core::db::schema::{Schema, Table};
use crate::core::db::sql_ast::{for_each_select_mut, ident, parse_single_query, tables_in_scope};
use crate::core::pipeline::repair::missing_column;

/// `failed_sql` with the missing column named in `error` read as the key its foreign key
/// references, on the table that key belongs to; `None` when the error is another one or
/// the schema does not settle it.
pub(crate) fn name_referenced_key(
    error: &str,
    failed_sql: &str,
    schema: &Schema,
) -> Option<String> {
    let (qualifier, column) = missing_column(error)?;
    let mut statement = parse_single_query(failed_sql)?;
    let before = format!("{statement:#}");
    match qualifier {
        Some(qualifier) => rename_qualified(&mut statement, schema, &qualifier, &column),
        None => rename_bare(&mut statement, schema, &column),
    }
    let after = format!("{statement:#}");
    (after != before).then_some(after)
}

/// The column `column` means on `table`: the one column of `table` that every foreign key
/// named `column` references, when it is named otherwise.
fn referenced_key(schema: &Schema, table: &Table, column: &str) -> Option<String> {
    if table.column(column).is_some() {
        return None;
    }
    let mut targets: Vec<String> = schema
        .tables
        .iter()
        .flat_map(|owner| &owner.foreign_keys)
        .filter(|key| {
            key.from_column.eq_ignore_ascii_case(column)
                && key.to_table.eq_ignore_ascii_case(&table.name)
        })
        .filter_map(|key| {
            if key.to_column.is_empty() {
                table.single_primary_key().map(|c| c.name.clone())
            } else {
                table.column(&key.to_column).map(|c| c.name.clone())
            }
        })
        .collect();
    targets.sort_by_key(|name| name.to_lowercase());
    targets.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    match targets.as_slice() {
        [target] if !target.eq_ignore_ascii_case(column) => Some(target.clone()),
        _ => None,
    }
}

/// `qualifier.column` -> `qualifier.key` everywhere, when `qualifier` names one table in
/// every SELECT that defines it.
fn rename_qualified(statement: &mut Statement, schema: &Schema, qualifier: &str, column: &str) {
    let mut tables: Vec<&Table> = Vec::new();
    for_each_select_mut(statement, |select| {
        for (name, table) in tables_in_scope(select, schema) {
            if name.eq_ignore_ascii_case(qualifier) && !tables.iter().any(|t| t.name == table.name)
            {
                tables.push(table);
            }
        }
    });
    let [table] = tables.as_slice() else {
        return;
    };
    let Some(key) = referenced_key(schema, table, column) else {
        return;
    };
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::CompoundIdentifier(parts) = expr
            && let [first, last] = parts.as_mut_slice()
            && first.value.eq_ignore_ascii_case(qualifier)
            && last.value.eq_ignore_ascii_case(column)
        {
            *last = ident(&key);
        }
        ControlFlow::<()>::Continue(())
    });
}

/// A bare `column` -> `key` in each SELECT whose tables lack `column` and hold one table
/// it means a key of; a SELECT that has the column keeps its own (a subquery over the
/// table with the foreign key reads it as written).
fn rename_bare(statement: &mut Statement, schema: &Schema, column: &str) {
    // Hidden first, so that renaming an outer SELECT, which reaches into its subqueries
    // (there a reference to the column can only mean the outer table), leaves alone the
    // subqueries that read the column from a table of their own.
    for_each_select_mut(statement, |select| {
        if tables_in_scope(select, schema)
            .iter()
            .any(|(_, table)| table.column(column).is_some())
        {
            visit_bare(select, column, |id| id.value.insert(0, HIDDEN));
        }
    });
    let mut outermost = true;
    let mut outermost_key = None;
    for_each_select_mut(statement, |select| {
        if let Some(key) = meant_key(select, schema, column) {
            alias_shown_column(select, column);
            visit_bare(select, column, |id| *id = ident(&key));
            if outermost {
                outermost_key = Some(key);
            }
        }
        outermost = false;
    });
    if let (Some(key), Statement::Query(query)) = (&outermost_key, &mut *statement)
        && let SetExpr::Select(_) = query.body.as_ref()
        && let Some(order_by) = query.order_by.as_mut()
    {
        // ORDER BY belongs to the query, not its SELECT; an output alias of the same name
        // (the one `alias_shown_column` adds) would resolve there too, to the same value.
        visit_bare(order_by, column, |id| *id = ident(key));
    }
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::Identifier(id) = expr
            && let Some(original) = id.value.strip_prefix(HIDDEN)
        {
            id.value = original.to_string();
        }
        ControlFlow::<()>::Continue(())
    });
}

/// The key a bare `column` means in `select`: none of its tables has the column, and
/// exactly one is referenced by foreign keys of that name.
fn meant_key(select: &Select, schema: &Schema, column: &str) -> Option<String> {
    let scope = tables_in_scope(select, schema);
    if scope
        .iter()
        .any(|(_, table)| table.column(column).is_some())
    {
        return None;
    }
    let keys: Vec<String> = scope
        .iter()
        .filter_map(|(_, table)| referenced_key(schema, table, column))
        .collect();
    match keys.as_slice() {
        [key] => Some(key.clone()),
        _ => None,
    }
}

/// Marks a name as out of reach of the renaming; no identifier starts with it.
const HIDDEN: char = '\u{1}';

/// `SELECT SupportRepId` shows the key under the name the question used:
/// `EmployeeId AS SupportRepId`.
fn alias_shown_column(select: &mut Select, column: &str) {
    for item in &mut select.projection {
        if let SelectItem::UnnamedExpr(Expr::Identifier(id)) = item
            && id.value.eq_ignore_ascii_case(column)
        {
            *item = SelectItem::ExprWithAlias {
                expr: Expr::Identifier(id.clone()),
                alias: ident(&id.value),
            };
        }
    }
}

/// Calls `change` on every bare `column` under `node` (subqueries included).
fn visit_bare<T: VisitMut>(node: &mut T, column: &str, mut change: impl FnMut(&mut Ident)) {
    let _ = visit_expressions_mut(node, |expr| {
        if let Expr::Identifier(id) = expr
            && id.value.eq_ignore_ascii_case(column)
        {
            change(id);
        }
        ControlFlow::<()>::Continue(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::db::schema::introspect;

    fn schema() -> Schema {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE Employee(EmployeeId INTEGER PRIMARY KEY, FirstName TEXT, City TEXT);
             CREATE TABLE Customer(CustomerId INTEGER PRIMARY KEY, FirstName TEXT,
                 SupportRepId INTEGER REFERENCES Employee(EmployeeId));
             CREATE TABLE game(id INTEGER PRIMARY KEY, season INTEGER);
             CREATE TABLE injury_accident(id INTEGER PRIMARY KEY,
                 game_id INTEGER REFERENCES game);
             CREATE TABLE Genre(GenreId INTEGER PRIMARY KEY, Name TEXT);
             CREATE TABLE Track(TrackId INTEGER PRIMARY KEY, GenreId INTEGER REFERENCES Genre);",
        )
        .unwrap();
        introspect(&conn, ":memory:").unwrap()
    }

    fn fixed(error: &str, sql: &str) -> Option<String> {
        name_referenced_key(error, sql, &schema())
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    #[test]
    fn a_foreign_key_named_on_the_table_it_references_reads_that_tables_key() {
        let sql = "SELECT FirstName, SupportRepId FROM Employee WHERE SupportRepId IN \
                   (SELECT SupportRepId FROM Customer GROUP BY SupportRepId HAVING COUNT(*) >= 10)";
        assert_eq!(
            fixed("no such column: SupportRepId in SELECT", sql).as_deref(),
            Some(
                "SELECT FirstName, EmployeeId AS SupportRepId FROM Employee WHERE EmployeeId IN \
                 (SELECT SupportRepId FROM Customer GROUP BY SupportRepId HAVING COUNT(*) >= 10)"
            )
        );
        let sql =
            "SELECT count(*) FROM game WHERE game_id NOT IN (SELECT game_id FROM injury_accident)";
        assert_eq!(
            fixed("no such column: game_id", sql).as_deref(),
            Some("SELECT count(*) FROM game WHERE id NOT IN (SELECT game_id FROM injury_accident)")
        );
    }

    #[test]
    fn the_sort_follows_the_renamed_column_and_a_scope_with_the_column_keeps_it() {
        let sql = "SELECT FirstName, SupportRepId FROM Employee ORDER BY SupportRepId";
        assert_eq!(
            fixed("no such column: SupportRepId", sql).as_deref(),
            Some("SELECT FirstName, EmployeeId AS SupportRepId FROM Employee ORDER BY EmployeeId")
        );
        // Under an outer query over the customers, the subquery's bare name is the outer
        // row's column (SQLite reads it so): nothing to rename.
        let sql = "SELECT FirstName FROM Customer WHERE SupportRepId IN \
                   (SELECT SupportRepId FROM Employee WHERE City = 'Calgary') \
                   ORDER BY SupportRepId";
        assert_eq!(fixed("no such column: SupportRepId", sql), None);
    }

    #[test]
    fn a_qualified_foreign_key_reads_the_key_of_the_aliased_table() {
        let sql = "SELECT T1.City FROM Employee AS T1 JOIN Customer AS T2 \
                   ON T1.SupportRepId = T2.SupportRepId WHERE T2.CustomerId = 3";
        assert_eq!(
            fixed("no such column: T1.SupportRepId", sql).as_deref(),
            Some(
                "SELECT T1.City FROM Employee AS T1 JOIN Customer AS T2 \
                 ON T1.EmployeeId = T2.SupportRepId WHERE T2.CustomerId = 3"
            )
        );
    }

    #[test]
    fn other_missing_columns_are_left_to_the_other_fixes() {
        // The key has the foreign key's own name: the alias is what is wrong.
        let sql = "SELECT T1.Name FROM Genre AS T1 JOIN Track AS T2 ON T1.TrackId = T2.TrackId";
        assert_eq!(fixed("no such column: T1.TrackId", sql), None);
        let sql = "SELECT T2.Name FROM Track AS T1 JOIN Genre AS T2 ON T2.GenreId = T1.GenreId";
        assert_eq!(fixed("no such column: T2.Name", sql), None);
        // A table with the column is in scope: not a key named on the referenced table.
        let sql = "SELECT SupportRepId FROM Customer JOIN Employee ON 1";
        assert_eq!(fixed("no such column: SupportRepId", sql), None);
        // Nothing references the table under that name.
        let sql = "SELECT season_id FROM game";
        assert_eq!(fixed("no such column: season_id", sql), None);
        assert_eq!(
            fixed("no such table: Address", "SELECT 1 FROM Address"),
            None
        );
    }
}
