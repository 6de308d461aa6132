//! A join to a table the database does not have, whose columns a table already in the
//! query holds: "How many customers live in Germany?" comes out of a small model as
//! `FROM Customer AS T1 JOIN Address AS T2 ON T1.AddressId = T2.AddressId WHERE
//! T2.Country = 'Germany'`, and a repair turn writes the same join again. When every
//! column the query reads through the invented table belongs to exactly one table in
//! scope, the schema settles it: the join goes and those columns read from that table.

use sqlparser::ast::{
    Expr, Ident, ObjectName, Select, SetExpr, Statement, TableAlias, TableFactor,
    visit_expressions, visit_expressions_mut,
};
use std::ops::ControlFlow;

use crate::core::db::schema::Schema;
use crate::core::db::sql_ast::{parse_single_query, tables_in_scope};
use crate::core::pipeline::repair::{error_subject, unquote};

/// `failed_sql` without its join to the missing table named in `error`, its columns read
/// from the one table in scope that has each; `None` when the error is another one, the
/// query is not one plain SELECT, or any column has no single owner.
pub(crate) fn drop_invented_join(error: &str, failed_sql: &str, schema: &Schema) -> Option<String> {
    let missing = missing_table(error, schema)?;
    let mut statement = parse_single_query(failed_sql)?;
    let select = plain_select(&mut statement)?;
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

/// `failed_sql` with the missing table named in `error` replaced by the one schema table
/// not already in the query that holds every column read through it; `None` when no
/// column is read through it, or no table or several qualify.
pub(crate) fn replace_invented_table(
    error: &str,
    failed_sql: &str,
    schema: &Schema,
) -> Option<String> {
    let missing = missing_table(error, schema)?;
    let mut statement = parse_single_query(failed_sql)?;
    let select = plain_select(&mut statement)?;
    let [from] = select.from.as_slice() else {
        return None;
    };
    let in_scope: Vec<String> = tables_in_scope(select, schema)
        .into_iter()
        .map(|(_, table)| table.name.to_lowercase())
        .collect();
    let aliases: Vec<String> = std::iter::once(&from.relation)
        .chain(from.joins.iter().map(|join| &join.relation))
        .filter(|relation| names_table(relation, &missing))
        .map(|relation| match relation {
            TableFactor::Table {
                alias: Some(alias), ..
            } => alias.name.value.clone(),
            _ => missing.clone(),
        })
        .collect();
    let [alias] = aliases.as_slice() else {
        return None;
    };
    let read = columns_read_through(&statement, alias)?;
    let [replacement] = schema
        .tables
        .iter()
        .filter(|table| !in_scope.contains(&table.name.to_lowercase()))
        .filter(|table| read.iter().all(|column| table.column(column).is_some()))
        .collect::<Vec<_>>()[..]
    else {
        return None;
    };
    rename_table(plain_select(&mut statement)?, &missing, &replacement.name);
    Some(format!("{statement:#}"))
}

/// The table `error` says is missing, when the schema indeed has no such table.
fn missing_table(error: &str, schema: &Schema) -> Option<String> {
    let missing = unquote(&error_subject(error, "no such table:")?);
    schema.table(&missing).is_none().then_some(missing)
}

/// The statement's SELECT when it is one plain SELECT (no set operation).
fn plain_select(statement: &mut Statement) -> Option<&mut Select> {
    let Statement::Query(query) = statement else {
        return None;
    };
    match query.body.as_mut() {
        SetExpr::Select(select) => Some(select),
        _ => None,
    }
}

/// Points every FROM item naming `from` at `to`; one without an alias gets `from` as its
/// alias, so the columns qualified with the old name still resolve.
fn rename_table(select: &mut Select, from: &str, to: &str) {
    for relation in select.from.iter_mut().flat_map(|item| {
        std::iter::once(&mut item.relation).chain(item.joins.iter_mut().map(|j| &mut j.relation))
    }) {
        if let TableFactor::Table { name, alias, .. } = relation
            && names_table_name(name, from)
        {
            *name = ObjectName::from(vec![Ident::new(to)]);
            alias.get_or_insert_with(|| TableAlias {
                explicit: true,
                name: Ident::new(from),
                columns: Vec::new(),
                at: None,
            });
        }
    }
}

/// The columns read as `alias.column` anywhere in the statement (lower-cased); `None` when
/// there are none or the alias is read whole (`alias.*`).
fn columns_read_through(statement: &Statement, alias: &str) -> Option<Vec<String>> {
    let mut read: Vec<String> = Vec::new();
    let _ = visit_expressions(statement, |expr| {
        if let Expr::CompoundIdentifier(parts) = expr
            && let [qualifier, column] = parts.as_slice()
            && qualifier.value.eq_ignore_ascii_case(alias)
        {
            let column = column.value.to_lowercase();
            if !read.contains(&column) {
                read.push(column);
            }
        }
        ControlFlow::<()>::Continue(())
    });
    let whole = statement
        .to_string()
        .to_lowercase()
        .contains(&format!("{}.*", alias.to_lowercase()));
    (!read.is_empty() && !whole).then_some(read)
}

fn names_table_name(name: &ObjectName, table: &str) -> bool {
    name.0
        .last()
        .and_then(|part| part.as_ident())
        .is_some_and(|id| id.value.eq_ignore_ascii_case(table))
}

fn names_table(relation: &TableFactor, table: &str) -> bool {
    matches!(relation, TableFactor::Table { name, .. } if names_table_name(name, table))
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

    fn replaced(sql: &str) -> Option<String> {
        replace_invented_table("no such table: SupportRep", sql, &schema())
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    #[test]
    fn an_invented_table_becomes_the_one_table_holding_its_columns() {
        assert_eq!(
            replaced(
                "SELECT T1.City FROM Employee AS T1 JOIN SupportRep AS T2 \
                 ON T1.EmployeeId = T2.SupportRepId WHERE T2.Country = 'Canada'"
            )
            .as_deref(),
            Some(
                "SELECT T1.City FROM Employee AS T1 JOIN Customer AS T2 \
                 ON T1.EmployeeId = T2.SupportRepId WHERE T2.Country = 'Canada'"
            )
        );
        assert_eq!(
            replaced(
                "SELECT Employee.City FROM Employee JOIN SupportRep \
                 ON Employee.EmployeeId = SupportRep.SupportRepId"
            )
            .as_deref(),
            Some(
                "SELECT Employee.City FROM Employee JOIN Customer AS SupportRep \
                 ON Employee.EmployeeId = SupportRep.SupportRepId"
            )
        );
    }

    #[test]
    fn an_invented_table_stays_when_no_single_table_outside_the_query_fits() {
        for sql in [
            // Only tables already in the query hold these columns.
            "SELECT T1.City FROM Customer AS T1 JOIN Employee AS E ON T1.SupportRepId = \
             E.EmployeeId JOIN SupportRep AS T2 ON T2.EmployeeId = E.EmployeeId \
             WHERE T2.Country = 'Canada'",
            // Nothing holds Street.
            "SELECT T2.Street FROM Employee AS T1 JOIN SupportRep AS T2 \
             ON T1.EmployeeId = T2.SupportRepId",
            // Read whole.
            "SELECT T2.* FROM Employee AS T1 JOIN SupportRep AS T2 \
             ON T1.EmployeeId = T2.SupportRepId",
        ] {
            assert_eq!(replaced(sql), None, "{sql}");
        }
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
