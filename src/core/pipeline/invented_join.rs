//! A join to a table the database does not have, whose columns a table already in the
//! query holds: "How many customers live in Germany?" comes out of a small model as
//! `FROM Customer AS T1 JOIN Address AS T2 ON T1.AddressId = T2.AddressId WHERE
//! T2.Country = 'Germany'`, and a repair turn writes the same join again. When every
//! column the query reads through the invented table belongs to exactly one table in
//! scope, the schema settles it: the join goes and those columns read from that table.

use sqlparser::ast::{Expr, Ident, SetExpr, Statement, TableFactor, visit_expressions_mut};
use std::ops::ControlFlow;

use crate::core::db::schema::Schema;
use crate::core::db::sql_ast::{parse_single_query, tables_in_scope};
use crate::core::pipeline::repair::{error_subject, unquote};

/// `failed_sql` without its join to the missing table named in `error`, its columns read
/// from the one table in scope that has each; `None` when the error is another one, the
/// query is not one plain SELECT, or any column has no single owner.
pub(crate) fn drop_invented_join(error: &str, failed_sql: &str, schema: &Schema) -> Option<String> {
    let missing = unquote(&error_subject(error, "no such table:")?);
    if schema.table(&missing).is_some() {
        return None;
    }
    let mut statement = parse_single_query(failed_sql)?;
    let Statement::Query(query) = &mut statement else {
        return None;
    };
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    let [from] = select.from.as_mut_slice() else {
        return None;
    };
    let position = from
        .joins
        .iter()
        .position(|join| names_table(&join.relation, &missing))?;
    let removed = from.joins.remove(position);
    let alias = match &removed.relation {
        TableFactor::Table {
            alias: Some(alias), ..
        } => alias.name.value.clone(),
        _ => missing.clone(),
    };
    if from
        .joins
        .iter()
        .any(|join| names_table(&join.relation, &missing))
        || names_table(&from.relation, &missing)
    {
        return None;
    }
    let owners: Vec<(String, Vec<String>)> = tables_in_scope(select, schema)
        .into_iter()
        .map(|(used_as, table)| {
            let columns = table
                .columns
                .iter()
                .map(|c| c.name.to_lowercase())
                .collect();
            (used_as, columns)
        })
        .collect();
    let mut unresolved = false;
    let _ = visit_expressions_mut(&mut statement, |expr| {
        if let Expr::CompoundIdentifier(parts) = expr
            && let [qualifier, column] = parts.as_slice()
            && qualifier.value.eq_ignore_ascii_case(&alias)
        {
            let wanted = column.value.to_lowercase();
            let holders: Vec<&String> = owners
                .iter()
                .filter(|(_, columns)| columns.contains(&wanted))
                .map(|(used_as, _)| used_as)
                .collect();
            match holders.as_slice() {
                [owner] => {
                    *expr = Expr::CompoundIdentifier(vec![Ident::new(*owner), column.clone()])
                }
                _ => unresolved = true,
            }
        }
        ControlFlow::<()>::Continue(())
    });
    if unresolved || mentions(&statement, &alias) {
        return None;
    }
    Some(format!("{statement:#}"))
}

fn names_table(relation: &TableFactor, table: &str) -> bool {
    matches!(relation, TableFactor::Table { name, .. }
        if name.0.last().and_then(|part| part.as_ident()).is_some_and(|id| id.value.eq_ignore_ascii_case(table)))
}

/// Whether anything is still read through `alias` (`alias.*`, or a form not rewritten).
fn mentions(statement: &Statement, alias: &str) -> bool {
    let text = statement.to_string().to_lowercase();
    let wanted = format!("{}.", alias.to_lowercase());
    text.match_indices(&wanted).any(|(at, _)| {
        !text[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::db::schema::introspect;

    fn schema() -> Schema {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE Customer(CustomerId INTEGER PRIMARY KEY, City TEXT, Country TEXT,
                 SupportRepId INTEGER);
             CREATE TABLE Employee(EmployeeId INTEGER PRIMARY KEY, City TEXT, Country TEXT);",
        )
        .unwrap();
        introspect(&conn, ":memory:").unwrap()
    }

    fn fixed(sql: &str) -> Option<String> {
        drop_invented_join("no such table: Address", sql, &schema())
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    #[test]
    fn an_invented_join_goes_and_its_columns_read_from_their_table() {
        assert_eq!(
            fixed(
                "SELECT COUNT(T1.CustomerId) FROM Customer AS T1 INNER JOIN Address AS T2 \
                 ON T1.AddressId = T2.AddressId WHERE T2.Country = 'Germany' ORDER BY T2.City"
            )
            .as_deref(),
            Some(
                "SELECT COUNT(T1.CustomerId) FROM Customer AS T1 WHERE T1.Country = 'Germany' \
                 ORDER BY T1.City"
            )
        );
    }

    #[test]
    fn columns_no_table_or_two_tables_hold_are_left_to_the_model() {
        for sql in [
            "SELECT T2.Street FROM Customer AS T1 JOIN Address AS T2 ON T1.AddressId = T2.Id",
            "SELECT T3.Country FROM Customer AS T1 JOIN Employee AS E ON T1.SupportRepId = \
             E.EmployeeId JOIN Address AS T3 ON T3.Id = T1.AddressId",
            "SELECT T2.* FROM Customer AS T1 JOIN Address AS T2 ON T1.AddressId = T2.Id",
            "SELECT Country FROM Address",
        ] {
            assert_eq!(fixed(sql), None, "{sql}");
        }
    }
}
