//! A column read from a table the query never joined: "exhibitions with attendance over
//! 100 or a ticket price below 10" comes out as `FROM exhibition_record WHERE Attendance >
//! 100 OR Ticket_Price < 10`, and SQLite answers "no such column: Ticket_Price". The
//! model's repairs tend to drop the condition or write the same query again. When exactly
//! one table outside the query holds that column, and exactly one key links it to a table
//! in the query, the schema settles it: the join is added and the column read through it.
//! When no one table can be joined so (several hold the column), a query over one table
//! is read instead from the one pair of key-linked tables that holds all its columns.
//!
//! Only failing SQL reaches this fix, so it can never change the result of a query that
//! ran; the rewritten query still goes through the join-key check like any other.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, Select, SelectItem, SetExpr, Statement, Visit, VisitMut, visit_expressions,
    visit_expressions_mut,
};

use crate::core::db::schema::{Schema, Table};
use crate::core::db::sql_ast::{
    for_each_select_mut, ident, parse_join, parse_single_query, tables_in_scope,
};
use crate::core::pipeline::repair::missing_column;
use crate::core::rewrite::simplify::question_words_naming;

/// A way to join `owner` to a table already in the query.
#[derive(Debug, Clone, PartialEq)]
struct Link {
    owner: String,
    owner_column: String,
    /// The in-scope table's name as the query uses it (alias or table name).
    scope_name: String,
    scope_column: String,
}

/// `failed_sql` with a join to the one table that holds the missing column named in
/// `error`; `None` when the error is another one, the query is not one plain SELECT, a
/// table in the query has the column already, or the owner or its link is ambiguous.
pub(crate) fn join_owning_table(
    error: &str,
    failed_sql: &str,
    schema: &Schema,
    question: &str,
) -> Option<String> {
    let (qualifier, column) = missing_column(error)?;
    let mut statement = parse_single_query(failed_sql)?;
    let Statement::Query(query) = &mut statement else {
        return None;
    };
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    if select.from.len() != 1 {
        return None;
    }
    let scope = tables_in_scope(select, schema);
    if scope.is_empty() || scope.iter().any(|(_, t)| t.column(&column).is_some()) {
        return None;
    }
    let in_scope = |name: &str| scope.iter().any(|(_, t)| t.name.eq_ignore_ascii_case(name));
    let named_owner = qualifier
        .as_deref()
        .and_then(|q| schema.table(q))
        .filter(|t| !in_scope(&t.name));
    let owners: Vec<&Table> = match named_owner {
        Some(table) => vec![table],
        None => tables_outside_holding(schema, &scope, &column),
    };
    let link = &the_one_link(&owners, &scope, &column, question)?;
    let used_names: Vec<String> = scope.iter().map(|(n, _)| n.to_lowercase()).collect();
    let alias = join_alias(
        qualifier.as_deref(),
        link,
        &used_names,
        named_owner.is_some(),
    );
    let join = join_for(link, &alias)?;
    select.from.first_mut()?.joins.push(join);
    let shared = columns_the_join_makes_ambiguous(&statement, &scope, schema.table(&link.owner)?);
    requalify(&mut statement, qualifier.as_deref(), &column, &alias);
    for (name, scope_name) in &shared {
        requalify(&mut statement, None, name, scope_name);
    }
    Some(format!("{statement:#}"))
}

/// [`join_owning_table`] for a bare column missing inside a subquery: `WHERE StuID NOT IN
/// (SELECT StuID FROM Has_Pet WHERE PetType = 'cat')` joins `Pets` to `Has_Pet` inside
/// the subquery. Only a SELECT over one FROM item with no query of its own nested in it
/// can be the one: its bare names can then only mean its own tables. `None` unless
/// exactly one such SELECT reads the column and exactly one key links one table holding
/// it to that SELECT's tables.
pub(crate) fn join_owning_table_in_subquery(
    error: &str,
    failed_sql: &str,
    schema: &Schema,
    question: &str,
) -> Option<String> {
    let (None, column) = missing_column(error)? else {
        return None;
    };
    let mut statement = parse_single_query(failed_sql)?;
    let mut candidates: Vec<(usize, Link)> = Vec::new();
    let mut position = 0;
    for_each_select_mut(&mut statement, |select| {
        if let Some(link) = owner_link_for_leaf(select, schema, &column, question) {
            candidates.push((position, link));
        }
        position += 1;
    });
    let [(target, link)] = candidates.as_slice() else {
        return None;
    };
    let mut done = false;
    let mut position = 0;
    for_each_select_mut(&mut statement, |select| {
        if position == *target {
            done = join_inside(select, schema, link, &column).is_some();
        }
        position += 1;
    });
    done.then(|| format!("{statement:#}"))
}

/// The one link from a table holding `column` to the tables of `select`, when `select`
/// reads `column` bare, holds no nested query and has one FROM item that lacks it.
fn owner_link_for_leaf(
    select: &Select,
    schema: &Schema,
    column: &str,
    question: &str,
) -> Option<Link> {
    if select.from.len() != 1 || nests_a_query(select) || !reads_bare(select, column) {
        return None;
    }
    let scope = tables_in_scope(select, schema);
    if scope.is_empty() || scope.iter().any(|(_, t)| t.column(column).is_some()) {
        return None;
    }
    let owners = tables_outside_holding(schema, &scope, column);
    the_one_link(&owners, &scope, column, question)
}

/// The tables outside `scope` that hold `column`, base tables before views.
fn tables_outside_holding<'s>(
    schema: &'s Schema,
    scope: &[(String, &Table)],
    column: &str,
) -> Vec<&'s Table> {
    let in_scope = |name: &str| scope.iter().any(|(_, t)| t.name.eq_ignore_ascii_case(name));
    base_tables_first(
        schema
            .tables
            .iter()
            .filter(|t| !in_scope(&t.name) && t.column(column).is_some())
            .collect(),
    )
}

/// The one key that links one of `owners` holding `column` to a table in `scope`, the
/// owners the question names first; `None` when there is none or several.
fn the_one_link(
    owners: &[&Table],
    scope: &[(String, &Table)],
    column: &str,
    question: &str,
) -> Option<Link> {
    let links: Vec<Link> = owners
        .iter()
        .filter(|owner| owner.column(column).is_some())
        .flat_map(|owner| links_to_scope(owner, scope))
        .collect();
    let links = owners_the_question_names(links, question);
    let [link] = links.as_slice() else {
        return None;
    };
    Some(link.clone())
}

/// Adds the join for `link` to `select` and points its bare `column`, and any bare name
/// the join would make ambiguous, at the right table.
fn join_inside(select: &mut Select, schema: &Schema, link: &Link, column: &str) -> Option<()> {
    let scope = tables_in_scope(select, schema);
    let owner = schema.table(&link.owner)?;
    let used_names: Vec<String> = scope.iter().map(|(n, _)| n.to_lowercase()).collect();
    let alias = join_alias(None, link, &used_names, false);
    let join = join_for(link, &alias)?;
    let (bare, _) = bare_names(&*select, select)?;
    let shared = names_the_join_makes_ambiguous(bare, &scope, owner);
    select.from.first_mut()?.joins.push(join);
    requalify(select, None, column, &alias);
    for (name, scope_name) in &shared {
        requalify(select, None, name, scope_name);
    }
    Some(())
}

/// Whether a query is nested anywhere in `select`.
fn nests_a_query(select: &Select) -> bool {
    let nested = visit_expressions(select, |expr| match expr {
        Expr::Subquery(_) | Expr::InSubquery { .. } | Expr::Exists { .. } => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    });
    nested.is_break()
        || select.from.iter().any(|from| {
            std::iter::once(&from.relation)
                .chain(from.joins.iter().map(|j| &j.relation))
                .any(|factor| matches!(factor, sqlparser::ast::TableFactor::Derived { .. }))
        })
}

/// Whether `select` reads `column` as a bare name.
fn reads_bare(select: &Select, column: &str) -> bool {
    visit_expressions(select, |expr| match expr {
        Expr::Identifier(id) if id.value.eq_ignore_ascii_case(column) => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

/// `failed_sql`, a plain query over one table that reads bare columns no single table holds
/// all of, over the one pair of tables linked by a key that holds them all: "each
/// customer's move in date, and the customer id and details" written `SELECT
/// date_moved_in, customer_id, customer_details FROM Residents` reads from `Customers JOIN
/// Customer_Events`. `None` when the error is not a missing bare column, the query joins,
/// nests or qualifies, a name is in no table, or no pair or several pairs hold them (the
/// pair that keeps the query's own table wins over the others), or a column both tables
/// of the pair hold is not the key that links them.
pub(crate) fn cover_with_linked_pair(
    error: &str,
    failed_sql: &str,
    schema: &Schema,
) -> Option<String> {
    let (None, _) = missing_column(error)? else {
        return None;
    };
    let mut statement = parse_single_query(failed_sql)?;
    let names = bare_names_of_one_table_query(&statement)?;
    let Statement::Query(query) = &mut statement else {
        return None;
    };
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    let scope = tables_in_scope(select, schema);
    let [(_, own)] = scope.as_slice() else {
        return None;
    };
    let own = own.name.clone();
    if !names
        .iter()
        .all(|name| schema.tables.iter().any(|t| t.column(name).is_some()))
    {
        return None;
    }
    let link = covering_link(schema, &names, &own)?;
    let first = schema.table(&link.scope_name)?;
    let joined = format!(
        "SELECT 1 FROM {} AS T1 JOIN {} AS T2 ON T2.{} = T1.{}",
        ident(&first.name),
        ident(&link.owner),
        ident(&link.owner_column),
        ident(&link.scope_column)
    );
    let Statement::Query(parsed) = parse_single_query(&joined)? else {
        return None;
    };
    let SetExpr::Select(parsed) = *parsed.body else {
        return None;
    };
    select.from = parsed.from;
    for column in &names {
        let alias = if first.column(column).is_some() {
            "T1"
        } else {
            "T2"
        };
        requalify(&mut statement, None, column, alias);
    }
    Some(format!("{statement:#}"))
}

/// The bare names a query over one table reads (output aliases aside); `None` when it
/// joins, nests a query (where a bare name may be an inner table's) or qualifies a name.
fn bare_names_of_one_table_query(statement: &Statement) -> Option<Vec<String>> {
    let Statement::Query(query) = statement else {
        return None;
    };
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    if query.with.is_some() || select.from.len() != 1 || !select.from[0].joins.is_empty() {
        return None;
    }
    let (names, qualified) = bare_names(statement, select)?;
    (!qualified).then_some(names)
}

/// The bare names a query reads, output aliases aside, once each, and whether it also
/// reads a qualified name; `None` when it nests a query, where a bare name may belong to
/// an inner scope.
fn bare_names<T: Visit>(node: &T, select: &Select) -> Option<(Vec<String>, bool)> {
    let mut names: Vec<String> = Vec::new();
    let mut qualified = false;
    let mut nested = false;
    let _ = visit_expressions(node, |expr| {
        match expr {
            Expr::Identifier(id) => names.push(id.value.clone()),
            Expr::CompoundIdentifier(_) => qualified = true,
            Expr::Subquery(_) | Expr::InSubquery { .. } | Expr::Exists { .. } => nested = true,
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    if nested {
        return None;
    }
    let aliases: Vec<String> = select
        .projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.to_lowercase()),
            _ => None,
        })
        .collect();
    names.retain(|name| !aliases.contains(&name.to_lowercase()));
    names.sort_by_key(|name| name.to_lowercase());
    names.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    Some((names, qualified))
}

/// The one link between two base tables that together hold every column of `columns`,
/// the pair with `own` (the query's table) preferred; its `scope_name` is the first
/// table. `None` when `own` holds them all, when no pair or several do, or when a column
/// both hold is not the key they are linked on.
fn covering_link(schema: &Schema, columns: &[String], own: &str) -> Option<Link> {
    let own_table = schema.table(own)?;
    if columns.is_empty() || columns.iter().all(|c| own_table.column(c).is_some()) {
        return None;
    }
    let tables: Vec<&Table> = schema.tables.iter().filter(|t| !t.is_view).collect();
    let mut pairs: Vec<Link> = Vec::new();
    for (index, first) in tables.iter().enumerate() {
        for second in &tables[index + 1..] {
            let covers = columns
                .iter()
                .all(|c| first.column(c).is_some() || second.column(c).is_some());
            if !covers {
                continue;
            }
            let links = links_to_scope(second, &[(first.name.clone(), *first)]);
            let [link] = links.as_slice() else {
                continue;
            };
            let shared_are_keys = columns
                .iter()
                .filter(|c| first.column(c).is_some() && second.column(c).is_some())
                .all(|c| {
                    link.owner_column.eq_ignore_ascii_case(c)
                        && link.scope_column.eq_ignore_ascii_case(c)
                });
            if shared_are_keys {
                pairs.push(link.clone());
            }
        }
    }
    let keeps_own = |link: &Link| {
        link.owner.eq_ignore_ascii_case(own) || link.scope_name.eq_ignore_ascii_case(own)
    };
    if pairs.iter().any(keeps_own) {
        pairs.retain(keeps_own);
    }
    let [link] = pairs.as_slice() else {
        return None;
    };
    Some(link.clone())
}

/// The bare column names the query reads from one table in scope that the joined `owner`
/// also has (the key it is joined on, most often), each with the scope name to qualify it
/// with: after the join SQLite would call them ambiguous, and before it they could only
/// mean that table's column. None when the query has a subquery, where a bare name may
/// belong to an inner scope, or the name is also an output column's alias.
fn columns_the_join_makes_ambiguous(
    statement: &Statement,
    scope: &[(String, &Table)],
    owner: &Table,
) -> Vec<(String, String)> {
    let Statement::Query(query) = statement else {
        return Vec::new();
    };
    let SetExpr::Select(select) = query.body.as_ref() else {
        return Vec::new();
    };
    let Some((bare, _)) = bare_names(statement, select) else {
        return Vec::new();
    };
    names_the_join_makes_ambiguous(bare, scope, owner)
}

/// Of the `bare` names, those the joined `owner` also has that exactly one table in
/// `scope` holds, each with that table's scope name.
fn names_the_join_makes_ambiguous(
    bare: Vec<String>,
    scope: &[(String, &Table)],
    owner: &Table,
) -> Vec<(String, String)> {
    bare.into_iter()
        .filter(|name| owner.column(name).is_some())
        .filter_map(|name| {
            let mut holders = scope.iter().filter(|(_, t)| t.column(&name).is_some());
            match (holders.next(), holders.next()) {
                (Some((scope_name, _)), None) => Some((name.clone(), scope_name.clone())),
                _ => None,
            }
        })
        .collect()
}

/// Among several tables that hold the column, the ones whose name the question uses most
/// ("the fault status of the faults recorded in the logs": `Fault_Log_Parts`, not
/// `Engineer_Visits`); all of them when the question names none.
fn owners_the_question_names(links: Vec<Link>, question: &str) -> Vec<Link> {
    let named = |link: &Link| question_words_naming(question, &link.owner);
    let most = links.iter().map(named).max().unwrap_or(0);
    if links.len() < 2 || most == 0 {
        return links;
    }
    links
        .into_iter()
        .filter(|link| named(link) == most)
        .collect()
}

/// The tables among `owners`, when any is one: a view's column is a copy of a table's
/// (Northwind's `Products by Category` beside `Products`), and the table is where it lives.
fn base_tables_first(owners: Vec<&Table>) -> Vec<&Table> {
    if owners.iter().any(|t| !t.is_view) {
        owners.into_iter().filter(|t| !t.is_view).collect()
    } else {
        owners
    }
}

/// The declared keys between `owner` and each table in scope, either direction; on a
/// database that declares none between them, a shared column that is the primary key of
/// one side.
fn links_to_scope(owner: &Table, scope: &[(String, &Table)]) -> Vec<Link> {
    let mut links = Vec::new();
    for (scope_name, table) in scope {
        let mut found: Vec<(String, String)> = Vec::new();
        for key in table
            .foreign_keys
            .iter()
            .filter(|k| k.to_table.eq_ignore_ascii_case(&owner.name))
        {
            let target = key_target(owner, &key.to_column);
            found.extend(target.map(|t| (t, key.from_column.clone())));
        }
        for key in owner
            .foreign_keys
            .iter()
            .filter(|k| k.to_table.eq_ignore_ascii_case(&table.name))
        {
            let target = key_target(table, &key.to_column);
            found.extend(target.map(|t| (key.from_column.clone(), t)));
        }
        if found.is_empty() {
            found.extend(shared_key(owner, table));
        }
        found.dedup();
        links.extend(found.into_iter().map(|(owner_column, scope_column)| Link {
            owner: owner.name.clone(),
            owner_column,
            scope_name: scope_name.clone(),
            scope_column,
        }));
    }
    links
}

/// The column a foreign key points at: named, or the target's single primary key.
fn key_target(table: &Table, to_column: &str) -> Option<String> {
    if to_column.is_empty() {
        table.single_primary_key().map(|key| key.name.clone())
    } else {
        Some(to_column.to_string())
    }
}

/// A column both tables have that is the single primary key of exactly one of them (a
/// key and its reference, `visitors.Tourist_ID` and `visits.Tourist_ID`; two tables'
/// own `id` keys are no link).
fn shared_key(owner: &Table, other: &Table) -> Option<(String, String)> {
    [owner.single_primary_key(), other.single_primary_key()]
        .into_iter()
        .flatten()
        .find_map(|key| {
            let a = owner.column(&key.name)?;
            let b = other.column(&key.name)?;
            (a.primary_key != b.primary_key).then(|| (a.name.clone(), b.name.clone()))
        })
}

/// The name the new join goes by: the qualifier the query already reads the column
/// through when it names no table in scope (`T3.x` with no `T3`), the owner's own name
/// when the query qualified the column with it, else a fresh `T<n>`.
fn join_alias(qualifier: Option<&str>, link: &Link, used: &[String], named: bool) -> String {
    if named {
        return link.owner.clone();
    }
    if let Some(q) = qualifier
        && !used.contains(&q.to_lowercase())
    {
        return q.to_string();
    }
    (1..)
        .map(|n| format!("T{n}"))
        .find(|name| !used.contains(&name.to_lowercase()))
        .unwrap_or_else(|| "joined".into())
}

fn join_for(link: &Link, alias: &str) -> Option<sqlparser::ast::Join> {
    parse_join(&format!(
        "{} AS {} ON {}.{} = {}.{}",
        ident(&link.owner),
        ident(alias),
        ident(alias),
        ident(&link.owner_column),
        ident(&link.scope_name),
        ident(&link.scope_column)
    ))
}

/// Points every bare reference to `column` (or every `qualifier.column`) in `node` at
/// `alias`.
fn requalify<T: VisitMut>(node: &mut T, qualifier: Option<&str>, column: &str, alias: &str) {
    let _ = visit_expressions_mut(node, |expr| {
        let hit = match (&*expr, qualifier) {
            (Expr::Identifier(id), None) => id.value.eq_ignore_ascii_case(column),
            (Expr::CompoundIdentifier(parts), Some(q)) => match parts.as_slice() {
                [first, last] => {
                    first.value.eq_ignore_ascii_case(q) && last.value.eq_ignore_ascii_case(column)
                }
                _ => false,
            },
            _ => false,
        };
        if hit {
            *expr = Expr::CompoundIdentifier(vec![ident(alias), ident(column)]);
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
            "CREATE TABLE exhibition(Exhibition_ID INTEGER PRIMARY KEY, Theme TEXT,
                 Ticket_Price REAL);
             CREATE TABLE exhibition_record(Exhibition_ID INTEGER REFERENCES exhibition,
                 Date TEXT, Attendance INTEGER);
             CREATE TABLE student(stu_num INTEGER PRIMARY KEY, stu_lname TEXT);
             CREATE TABLE enroll(class_code TEXT, stu_num INTEGER REFERENCES student,
                 grade TEXT);
             CREATE TABLE professor(emp_num INTEGER, dept TEXT);
             CREATE TABLE visitors(Tourist_ID INTEGER PRIMARY KEY, Tourist_Details TEXT);
             CREATE TABLE visits(Visit_ID INTEGER PRIMARY KEY, Tourist_ID INTEGER,
                 Visit_Date TEXT);
             CREATE TABLE shop(id INTEGER PRIMARY KEY, city TEXT);
             CREATE TABLE staff(id INTEGER PRIMARY KEY, name TEXT);
             CREATE TABLE Fault_Log(fault_log_entry_id INTEGER PRIMARY KEY,
                 fault_description TEXT);
             CREATE TABLE Engineer_Visits(engineer_visit_id INTEGER PRIMARY KEY,
                 fault_log_entry_id INTEGER REFERENCES Fault_Log, fault_status TEXT);
             CREATE TABLE Fault_Log_Parts(part_fault_id INTEGER,
                 fault_log_entry_id INTEGER REFERENCES Fault_Log, fault_status TEXT);",
        )
        .unwrap();
        introspect(&conn, ":memory:").unwrap()
    }

    fn fixed(error: &str, sql: &str) -> Option<String> {
        join_owning_table(error, sql, &schema(), "")
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    #[test]
    fn an_unjoined_column_is_read_through_the_key_to_its_table() {
        assert_eq!(
            fixed(
                "no such column: Ticket_Price",
                "SELECT COUNT(*) FROM exhibition_record WHERE Attendance > 100 OR Ticket_Price < 10"
            )
            .as_deref(),
            Some(
                "SELECT COUNT(*) FROM exhibition_record JOIN exhibition AS T1 ON \
                 T1.Exhibition_ID = exhibition_record.Exhibition_ID WHERE Attendance > 100 \
                 OR T1.Ticket_Price < 10"
            )
        );
    }

    fn customers_and_events() -> Schema {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE Customers(customer_id INTEGER PRIMARY KEY, customer_details TEXT);
             CREATE TABLE Residents(resident_id INTEGER, property_id INTEGER,
                 date_moved_in TEXT, other_details TEXT,
                 PRIMARY KEY (resident_id, property_id, date_moved_in));
             CREATE TABLE Customer_Events(Customer_Event_ID INTEGER PRIMARY KEY,
                 customer_id INTEGER REFERENCES Customers(customer_id), date_moved_in TEXT,
                 property_id INTEGER, resident_id INTEGER,
                 FOREIGN KEY (resident_id, property_id, date_moved_in)
                 REFERENCES Residents(resident_id, property_id, date_moved_in));
             CREATE TABLE Notes(note_id INTEGER PRIMARY KEY, date_moved_in TEXT,
                 other_details TEXT);",
        )
        .unwrap();
        introspect(&conn, ":memory:").unwrap()
    }

    #[test]
    fn columns_no_table_holds_together_are_read_from_the_linked_pair_that_does() {
        let schema = customers_and_events();
        let covered = |error: &str, sql: &str| {
            cover_with_linked_pair(error, sql, &schema)
                .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        };
        let sql = "SELECT date_moved_in, customer_id, customer_details FROM Residents";
        assert_eq!(
            covered("no such column: customer_id", sql).as_deref(),
            Some(
                "SELECT T2.date_moved_in, T1.customer_id, T1.customer_details FROM Customers \
                 AS T1 JOIN Customer_Events AS T2 ON T2.customer_id = T1.customer_id"
            )
        );
        // A name no table has, a qualified name, a nested query: not for the schema to settle.
        for sql in [
            "SELECT date_moved_in, customer_id, customer_name FROM Residents",
            "SELECT R.date_moved_in, customer_id FROM Residents AS R",
            "SELECT customer_id FROM Residents WHERE resident_id IN (SELECT 1)",
        ] {
            assert_eq!(covered("no such column: customer_id", sql), None, "{sql}");
        }
        // No linked pair holds them (`other_details` is on tables no single key links
        // to another): nothing to choose from.
        assert_eq!(
            covered("no such column: x", "SELECT other_details FROM Customers"),
            None
        );
    }

    #[test]
    fn a_view_that_copies_the_column_does_not_stand_beside_its_table() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE Categories(CategoryID INTEGER PRIMARY KEY, CategoryName TEXT);
             CREATE TABLE Products(ProductID INTEGER PRIMARY KEY, ProductName TEXT,
                 CategoryID INTEGER REFERENCES Categories, UnitsInStock INTEGER);
             CREATE VIEW \"Products by Category\" AS SELECT c.CategoryID, c.CategoryName,
                 p.ProductName, p.UnitsInStock FROM Categories c JOIN Products p
                 ON c.CategoryID = p.CategoryID;",
        )
        .unwrap();
        let schema = introspect(&conn, ":memory:").unwrap();
        let fixed = join_owning_table(
            "no such column: UnitsInStock",
            "SELECT CategoryName FROM Categories ORDER BY UnitsInStock DESC LIMIT 1",
            &schema,
            "Which category has the product with the most units in stock?",
        )
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "));
        assert_eq!(
            fixed.as_deref(),
            Some(
                "SELECT CategoryName FROM Categories JOIN Products AS T1 ON \
                 T1.CategoryID = Categories.CategoryID ORDER BY T1.UnitsInStock DESC LIMIT 1"
            )
        );
    }

    #[test]
    fn of_several_tables_holding_the_column_the_one_the_question_names_is_joined() {
        let sql = "SELECT fault_description, fault_status FROM Fault_Log";
        let error = "no such column: fault_status";
        assert_eq!(
            fixed(error, sql),
            None,
            "two owners and no question: ambiguous"
        );
        let question = "What are the fault descriptions and the fault status of all the \
                        faults recorded in the logs?";
        let joined = join_owning_table(error, sql, &schema(), question)
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "));
        assert_eq!(
            joined.as_deref(),
            Some(
                "SELECT fault_description, T1.fault_status FROM Fault_Log JOIN \
                 Fault_Log_Parts AS T1 ON T1.fault_log_entry_id = \
                 Fault_Log.fault_log_entry_id"
            )
        );
    }

    #[test]
    fn a_column_read_through_the_wrong_alias_gets_a_join_of_its_own() {
        assert_eq!(
            fixed(
                "no such column: T2.stu_lname",
                "SELECT DISTINCT T1.class_code FROM enroll AS T2 JOIN enroll AS T1 ON \
                 T1.class_code = T2.class_code WHERE T2.stu_lname = 'Smithson'"
            ),
            None,
            "two enroll tables in scope: two links, left to the model"
        );
        assert_eq!(
            fixed(
                "no such column: T2.stu_lname",
                "SELECT T2.grade FROM enroll AS T2 WHERE T2.stu_lname = 'Smithson'"
            )
            .as_deref(),
            Some(
                "SELECT T2.grade FROM enroll AS T2 JOIN student AS T1 ON T1.stu_num = \
                 T2.stu_num WHERE T1.stu_lname = 'Smithson'"
            )
        );
    }

    #[test]
    fn a_shared_primary_key_links_tables_that_declare_no_key() {
        assert_eq!(
            fixed(
                "no such column: Tourist_Details",
                "SELECT Visit_Date FROM visits WHERE Tourist_Details = 'Vincent'"
            )
            .as_deref(),
            Some(
                "SELECT Visit_Date FROM visits JOIN visitors AS T1 ON T1.Tourist_ID = \
                 visits.Tourist_ID WHERE T1.Tourist_Details = 'Vincent'"
            )
        );
    }

    #[test]
    fn a_key_both_tables_now_hold_is_read_from_the_table_it_meant() {
        let sql = "SELECT Exhibition_ID, COUNT(*) AS Exhibition_Count FROM exhibition_record \
                   WHERE Ticket_Price < 10 GROUP BY Exhibition_ID ORDER BY Exhibition_ID";
        let joined = fixed("no such column: Ticket_Price", sql).unwrap();
        assert_eq!(
            joined,
            "SELECT exhibition_record.Exhibition_ID, COUNT(*) AS Exhibition_Count FROM \
             exhibition_record JOIN exhibition AS T1 ON T1.Exhibition_ID = \
             exhibition_record.Exhibition_ID WHERE T1.Ticket_Price < 10 GROUP BY \
             exhibition_record.Exhibition_ID ORDER BY exhibition_record.Exhibition_ID"
        );
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE exhibition(Exhibition_ID INTEGER PRIMARY KEY, Ticket_Price REAL);
             CREATE TABLE exhibition_record(Exhibition_ID INTEGER, Attendance INTEGER);",
        )
        .unwrap();
        conn.prepare(&joined).expect("no name is ambiguous");

        // Under a subquery a bare name may be the inner query's: left as it was.
        let nested = fixed(
            "no such column: Ticket_Price",
            "SELECT Exhibition_ID FROM exhibition_record WHERE Ticket_Price < 10 AND \
             Attendance > (SELECT AVG(Attendance) FROM exhibition_record)",
        )
        .unwrap();
        assert!(nested.starts_with("SELECT Exhibition_ID FROM"), "{nested}");
    }

    #[test]
    fn ambiguous_or_unlinked_owners_are_left_to_the_model() {
        for (error, sql) in [
            // No table links professor to the owner of stu_lname.
            (
                "no such column: stu_lname",
                "SELECT dept FROM professor WHERE stu_lname = 'x'",
            ),
            // Two tables' own `id` keys are no link.
            (
                "no such column: city",
                "SELECT name FROM staff WHERE city = 'x'",
            ),
            // A column no table has.
            (
                "no such column: price",
                "SELECT * FROM visits WHERE price > 1",
            ),
            // A table in scope has it: fix_column_reference's case.
            (
                "no such column: T9.grade",
                "SELECT T9.grade FROM enroll AS T1",
            ),
            // Set operations are not rewritten.
            (
                "no such column: Ticket_Price",
                "SELECT 1 FROM exhibition_record WHERE Ticket_Price < 1 UNION SELECT 2",
            ),
            ("no such table: x", "SELECT 1 FROM x"),
        ] {
            assert_eq!(fixed(error, sql), None, "{sql}");
        }
    }

    fn pets() -> (rusqlite::Connection, Schema) {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE Student(StuID INTEGER PRIMARY KEY, Fname TEXT);
             CREATE TABLE Pets(PetID INTEGER PRIMARY KEY, PetType TEXT);
             CREATE TABLE Has_Pet(StuID INTEGER REFERENCES Student(StuID),
                 PetID INTEGER REFERENCES Pets(PetID));
             INSERT INTO Student VALUES (1, 'Ann'), (2, 'Bo'), (3, 'Cy');
             INSERT INTO Pets VALUES (10, 'cat'), (11, 'dog');
             INSERT INTO Has_Pet VALUES (1, 10), (2, 11);",
        )
        .unwrap();
        let schema = introspect(&conn, ":memory:").unwrap();
        (conn, schema)
    }

    #[test]
    fn a_column_missing_inside_a_subquery_is_joined_there() {
        let (conn, schema) = pets();
        let failed = "SELECT StuID FROM Student WHERE StuID NOT IN \
                      (SELECT StuID FROM Has_Pet WHERE PetType = 'cat')";
        let error = conn.prepare(failed).unwrap_err().to_string();
        assert_eq!(join_owning_table(&error, failed, &schema, ""), None);
        let fixed = join_owning_table_in_subquery(&error, failed, &schema, "").unwrap();
        assert_eq!(
            fixed.split_whitespace().collect::<Vec<_>>().join(" "),
            "SELECT StuID FROM Student WHERE StuID NOT IN (SELECT StuID FROM Has_Pet \
             JOIN Pets AS T1 ON T1.PetID = Has_Pet.PetID WHERE T1.PetType = 'cat')"
        );
        let ids: Vec<i64> = conn
            .prepare(&fixed)
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(ids, vec![2, 3]);
    }

    #[test]
    fn a_subquery_fix_needs_one_reading_select_and_a_bare_name() {
        let (conn, schema) = pets();
        for failed in [
            // two subqueries read the name: which one meant it is not settled
            "SELECT StuID FROM Student WHERE StuID IN (SELECT StuID FROM Has_Pet \
             WHERE PetType = 'cat') OR StuID IN (SELECT StuID FROM Has_Pet WHERE PetType = 'dog')",
            // qualified by an alias of no table: left to the other repairs
            "SELECT StuID FROM Student WHERE StuID IN (SELECT StuID FROM Has_Pet AS H \
             WHERE H.PetType = 'cat')",
        ] {
            let error = conn.prepare(failed).unwrap_err().to_string();
            assert_eq!(
                join_owning_table_in_subquery(&error, failed, &schema, ""),
                None,
                "{failed}"
            );
        }
    }
}
