//! Joins that follow the schema: an equality between columns of two tables in a join's
//! `ON` must match a declared foreign key (either direction) or compare same-named columns.
//! `Customer JOIN InvoiceLine ON CustomerId = InvoiceId` runs and returns rows, but pairs
//! unrelated keys; such a query goes back for repair with the columns that do link the two
//! tables, or the table that bridges them.
//!
//! On a database that declares no foreign key at all, only same-named columns pass; a
//! table that takes part in no declared key is not judged (its keys are unknown).
//!
//! Schemas leave keys out (`Student.Advisor` holds faculty ids with no `REFERENCES`), so an
//! equality no declaration covers still passes when the data shows a key: one column's
//! values are unique and every value of the other is among them. A join of unrelated keys
//! fails that (`InvoiceLine.InvoiceId` runs past the last `CustomerId`); one whose values
//! happen to fit a small key range passes, which costs a missed alarm, never a right query.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension};
use sqlparser::ast::{BinaryOperator, Expr, Select};

use crate::core::db::ident::quote_identifier;
use crate::core::db::schema::{Schema, Table};
use crate::core::db::sql_ast::{
    conjuncts, for_each_select_mut, join_condition, parse_single_query, schema_table,
};
use crate::core::rewrite::ground::searchable;
use crate::core::rewrite::{Check, RewriteInput};

/// Sends a join on two unrelated columns back for repair.
pub struct JoinKeys;

impl Check for JoinKeys {
    fn name(&self) -> &'static str {
        "check_join_keys"
    }

    fn check(&self, sql: &str, input: &RewriteInput<'_>) -> Option<String> {
        let conn = input.conn?;
        let off = off_key_join_unless(sql, input.schema, &|a, b| {
            data_links(conn, input.schema, a, b)
        })?;
        Some(format!(
            "the join condition {} pairs {}.{} with {}.{}, which are not linked by a key; {}",
            off.condition,
            off.left.0,
            off.left.1,
            off.right.0,
            off.right.1,
            links_between(input.schema, &off.left.0, &off.right.0)
        ))
    }
}

/// A join equality that follows no key: the condition as written and its two columns.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct OffKey {
    pub(crate) condition: String,
    pub(crate) left: (String, String),
    pub(crate) right: (String, String),
}

/// Two columns, each as `(table, column)`, that something other than a declaration links.
type LinkedOtherwise<'a> = dyn Fn(&(String, String), &(String, String)) -> bool + 'a;

/// The first join equality in `sql` that links two tables by columns no key connects,
/// passing every equality that `linked_otherwise` (the data) links.
fn off_key_join_unless(
    sql: &str,
    schema: &Schema,
    linked_otherwise: &LinkedOtherwise<'_>,
) -> Option<OffKey> {
    let mut statement = parse_single_query(sql)?;
    let mut found = None;
    for_each_select_mut(&mut statement, |select| {
        if found.is_none() {
            found = off_key_in(select, schema, linked_otherwise);
        }
    });
    found
}

fn off_key_in(
    select: &Select,
    schema: &Schema,
    linked_otherwise: &LinkedOtherwise<'_>,
) -> Option<OffKey> {
    let mut in_scope: HashMap<String, &Table> = HashMap::new();
    for from in &select.from {
        let factors = std::iter::once(&from.relation).chain(from.joins.iter().map(|j| &j.relation));
        for factor in factors {
            let (used_as, table) = schema_table(factor, schema)?;
            in_scope.insert(used_as.to_lowercase(), table);
        }
    }
    let declares_keys = schema.tables.iter().any(|t| !t.foreign_keys.is_empty());
    for join in select.from.iter().flat_map(|from| &from.joins) {
        let Some(on) = join_condition(join) else {
            continue;
        };
        for condition in conjuncts(on) {
            let Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } = condition
            else {
                continue;
            };
            let (Some(a), Some(b)) = (resolve(left, &in_scope), resolve(right, &in_scope)) else {
                continue;
            };
            if a.0.name.eq_ignore_ascii_case(&b.0.name) || linked(schema, &a, &b, declares_keys) {
                continue;
            }
            let (left, right) = ((a.0.name.clone(), a.1), (b.0.name.clone(), b.1));
            if linked_otherwise(&left, &right) {
                continue;
            }
            return Some(OffKey {
                condition: condition.to_string(),
                left,
                right,
            });
        }
    }
    None
}

/// The table and column (as the schema spells it) a column reference reads.
fn resolve<'s>(expr: &Expr, in_scope: &HashMap<String, &'s Table>) -> Option<(&'s Table, String)> {
    let (qualifier, column) = match expr {
        Expr::CompoundIdentifier(parts) if parts.len() == 2 => {
            (Some(parts[0].value.to_lowercase()), parts[1].value.as_str())
        }
        Expr::Identifier(ident) => (None, ident.value.as_str()),
        _ => return None,
    };
    let table = match qualifier {
        Some(qualifier) => *in_scope.get(&qualifier)?,
        None => {
            let mut holders = in_scope.values().filter(|t| t.column(column).is_some());
            let only = *holders.next()?;
            if holders.next().is_some() {
                return None;
            }
            only
        }
    };
    Some((table, table.column(column)?.name.clone()))
}

/// Same-named columns, or a declared key between them. A table that takes part in no
/// declared key (neither declares one nor is named by one) has keys the schema does not
/// say, so a join to it is not judged when the database declares keys elsewhere.
fn linked(schema: &Schema, a: &(&Table, String), b: &(&Table, String), declares: bool) -> bool {
    if a.1.eq_ignore_ascii_case(&b.1) {
        return true;
    }
    if declares && !(has_declared_keys(schema, a.0) && has_declared_keys(schema, b.0)) {
        return true;
    }
    key_from(a, b) || key_from(b, a)
}

fn has_declared_keys(schema: &Schema, table: &Table) -> bool {
    !table.foreign_keys.is_empty()
        || schema.tables.iter().any(|other| {
            other
                .foreign_keys
                .iter()
                .any(|fk| fk.to_table.eq_ignore_ascii_case(&table.name))
        })
}

fn key_from(from: &(&Table, String), to: &(&Table, String)) -> bool {
    from.0.foreign_keys.iter().any(|fk| {
        fk.from_column.eq_ignore_ascii_case(&from.1)
            && fk.to_table.eq_ignore_ascii_case(&to.0.name)
            && (fk.to_column.eq_ignore_ascii_case(&to.1)
                || (fk.to_column.is_empty()
                    && to
                        .0
                        .single_primary_key()
                        .is_some_and(|pk| pk.name.eq_ignore_ascii_case(&to.1))))
    })
}

/// Whether the data shows a key between the two columns: one side unique, every non-null
/// value of the other among its values. A table too big to scan (or not counted) and an
/// error (a view that fails) count as linked, so the check never blocks a query on a guess
/// and never scans a large table while the user waits.
pub(crate) fn data_links(
    conn: &Connection,
    schema: &Schema,
    a: &(String, String),
    b: &(String, String),
) -> bool {
    let scannable = |name: &str| schema.table(name).is_some_and(searchable);
    if !(scannable(&a.0) && scannable(&b.0)) {
        return true;
    }
    included_in_key(conn, b, a).unwrap_or(true) || included_in_key(conn, a, b).unwrap_or(true)
}

fn included_in_key(
    conn: &Connection,
    from: &(String, String),
    key: &(String, String),
) -> rusqlite::Result<bool> {
    let (from_table, from_column) = (quote_identifier(&from.0), quote_identifier(&from.1));
    let (key_table, key_column) = (quote_identifier(&key.0), quote_identifier(&key.1));
    let sql = format!(
        "SELECT (SELECT COUNT({key_column}) = COUNT(DISTINCT {key_column}) FROM {key_table}) \
           AND EXISTS (SELECT 1 FROM {from_table} WHERE {from_column} IS NOT NULL) \
           AND NOT EXISTS (SELECT 1 FROM {from_table} WHERE {from_column} IS NOT NULL \
             AND {from_column} NOT IN (SELECT {key_column} FROM {key_table} \
               WHERE {key_column} IS NOT NULL))"
    );
    let linked: Option<bool> = conn.query_row(&sql, [], |row| row.get(0)).optional()?;
    Ok(linked.unwrap_or(false))
}

/// What the repair prompt says links `a` and `b`: their key columns, or a table between.
fn links_between(schema: &Schema, a: &str, b: &str) -> String {
    let direct = key_pairs(schema, a, b);
    if !direct.is_empty() {
        return format!("join them on {}", direct.join(" or "));
    }
    for middle in &schema.tables {
        let (first, second) = (
            key_pairs(schema, a, &middle.name),
            key_pairs(schema, &middle.name, b),
        );
        if let (Some(first), Some(second)) = (first.first(), second.first()) {
            return format!(
                "they are linked through {}: {first} and {second}",
                middle.name
            );
        }
    }
    format!("no key links {a} and {b}; leave out a table the question does not need")
}

/// `a.x = b.y` for every declared key between tables `a` and `b`, either direction.
fn key_pairs(schema: &Schema, a: &str, b: &str) -> Vec<String> {
    key_links(schema, a, b)
        .iter()
        .map(|link| {
            format!(
                "{}.{} = {}.{}",
                link.from.0, link.from.1, link.to.0, link.to.1
            )
        })
        .collect()
}

/// A declared key: the referencing `(table, column)` and the referenced one, as the
/// schema spells them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyLink {
    pub(crate) from: (String, String),
    pub(crate) to: (String, String),
}

impl KeyLink {
    /// The column this link reads on `table`.
    pub(crate) fn column_of(&self, table: &str) -> Option<&str> {
        if self.from.0.eq_ignore_ascii_case(table) {
            Some(&self.from.1)
        } else if self.to.0.eq_ignore_ascii_case(table) {
            Some(&self.to.1)
        } else {
            None
        }
    }
}

/// Every declared key between tables `a` and `b`, either direction.
pub(crate) fn key_links(schema: &Schema, a: &str, b: &str) -> Vec<KeyLink> {
    let mut links = Vec::new();
    for (from, to) in [(a, b), (b, a)] {
        let (Some(from_table), Some(to_table)) = (schema.table(from), schema.table(to)) else {
            continue;
        };
        for fk in &from_table.foreign_keys {
            if !fk.to_table.eq_ignore_ascii_case(&to_table.name) {
                continue;
            }
            let to_column = if fk.to_column.is_empty() {
                to_table
                    .single_primary_key()
                    .map(|pk| pk.name.clone())
                    .unwrap_or_default()
            } else {
                fk.to_column.clone()
            };
            links.push(KeyLink {
                from: (from_table.name.clone(), fk.from_column.clone()),
                to: (to_table.name.clone(), to_column),
            });
        }
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::db::schema::introspect;
    use rusqlite::Connection;

    /// The first off-key equality by the declarations alone.
    fn off_key_join(sql: &str, schema: &Schema) -> Option<OffKey> {
        off_key_join_unless(sql, schema, &|_, _| false)
    }

    fn shop() -> Schema {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE Customer (CustomerId INTEGER PRIMARY KEY, Name TEXT, Country TEXT);
             CREATE TABLE Invoice (InvoiceId INTEGER PRIMARY KEY,
                 CustomerId INTEGER REFERENCES Customer(CustomerId), Total REAL);
             CREATE TABLE InvoiceLine (InvoiceLineId INTEGER PRIMARY KEY,
                 InvoiceId INTEGER REFERENCES Invoice(InvoiceId), UnitPrice REAL);
             CREATE TABLE Note (NoteId INTEGER PRIMARY KEY, About INTEGER);",
        )
        .unwrap();
        introspect(&conn, ":memory:").unwrap()
    }

    #[test]
    fn a_join_of_unrelated_keys_is_found_with_the_path_that_links_the_tables() {
        let schema = shop();
        let sql = "SELECT c.Name, SUM(l.UnitPrice) FROM Customer c JOIN InvoiceLine l \
                   ON CustomerId = InvoiceId GROUP BY c.CustomerId";
        let off = off_key_join(sql, &schema).unwrap();
        assert_eq!(off.left, ("Customer".to_string(), "CustomerId".to_string()));
        assert_eq!(
            off.right,
            ("InvoiceLine".to_string(), "InvoiceId".to_string())
        );
        assert_eq!(
            links_between(&schema, "Customer", "InvoiceLine"),
            "they are linked through Invoice: Invoice.CustomerId = Customer.CustomerId and \
             InvoiceLine.InvoiceId = Invoice.InvoiceId"
        );
    }

    #[test]
    fn key_joins_same_named_columns_and_tables_without_declared_keys_pass() {
        let schema = shop();
        for sql in [
            "SELECT * FROM Customer c JOIN Invoice i ON i.CustomerId = c.CustomerId",
            "SELECT * FROM Invoice i JOIN InvoiceLine l ON l.InvoiceId = i.InvoiceId \
             JOIN Customer c ON c.CustomerId = i.CustomerId",
            "SELECT * FROM Customer c JOIN Invoice i ON c.CustomerId = i.CustomerId AND i.Total > 1",
            "SELECT * FROM Customer c JOIN Note n ON n.About = c.CustomerId",
        ] {
            assert_eq!(off_key_join(sql, &schema), None, "{sql}");
        }
    }

    #[test]
    fn data_shows_an_undeclared_key_but_not_a_join_of_unrelated_keys() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE Faculty (FacId INTEGER PRIMARY KEY, Name TEXT);
             CREATE TABLE Student (StuId INTEGER PRIMARY KEY, Advisor INTEGER);
             CREATE TABLE Course (CourseId INTEGER PRIMARY KEY, Code TEXT);
             INSERT INTO Faculty VALUES (10, 'Ada'), (11, 'Alan'), (12, 'Grace');
             INSERT INTO Student VALUES (1, 10), (2, 12), (3, NULL), (4, 10);
             INSERT INTO Course VALUES (1, 'A'), (2, 'B'), (3, 'C'), (4, 'D'), (5, 'E');",
        )
        .unwrap();
        let schema = introspect(&conn, ":memory:").unwrap();
        let column = |t: &str, c: &str| (t.to_string(), c.to_string());
        assert!(data_links(
            &conn,
            &schema,
            &column("Faculty", "FacId"),
            &column("Student", "Advisor")
        ));
        assert!(!data_links(
            &conn,
            &schema,
            &column("Student", "Advisor"),
            &column("Course", "CourseId")
        ));
        assert!(!data_links(
            &conn,
            &schema,
            &column("Faculty", "FacId"),
            &column("Course", "CourseId")
        ));
    }

    /// On the real Chinook database the join checks send a join of unrelated keys back with
    /// the path that links the tables, and pass the key joins a right query uses.
    #[test]
    fn the_join_checks_refuse_a_join_of_unrelated_keys_on_chinook() {
        use crate::core::db::exec::ReadOnlyDb;
        use crate::core::rewrite::{RewriteChain, RewriteSettings};

        let settings = RewriteSettings {
            check_join_conditions: true,
            check_join_keys: true,
            ..RewriteSettings::none()
        };
        let chain = RewriteChain::from_settings(&settings);
        let chinook =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_dbs/chinook.db");
        let db = ReadOnlyDb::open(&chinook).unwrap();
        let input = RewriteInput {
            question: "Which 5 customers spent the most, and which country are they from?",
            schema: db.schema().unwrap(),
            conn: db.connection(),
            dialect: db.dialect(),
        };
        let wrong = "SELECT T1.FirstName, T1.Country, SUM(T2.UnitPrice * T2.Quantity) AS Spent \
                     FROM Customer AS T1 JOIN InvoiceLine AS T2 ON T1.CustomerId = T2.InvoiceId \
                     GROUP BY T1.CustomerId ORDER BY Spent DESC LIMIT 5";
        let (name, message) = chain
            .check(wrong, &input)
            .expect("the wrong join is refused");
        assert_eq!(name, "check_join_keys");
        assert!(message.contains("linked through Invoice"), "{message}");
        let right = "SELECT c.FirstName, c.Country, SUM(il.UnitPrice * il.Quantity) AS Spent \
                     FROM Customer c JOIN Invoice i ON c.CustomerId = i.CustomerId \
                     JOIN InvoiceLine il ON i.InvoiceId = il.InvoiceId \
                     JOIN Employee e ON c.SupportRepId = e.EmployeeId \
                     GROUP BY c.CustomerId ORDER BY Spent DESC LIMIT 5";
        assert_eq!(chain.check(right, &input), None);
    }
}
