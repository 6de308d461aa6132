//! Grouping by an entity's key when the query groups by its name.
//!
//! "Names of high schoolers and how many friends each has" comes out of a small model as
//! `... JOIN Friend ... GROUP BY H.name`: two students called Jordan become one row with
//! both their friends. When a joined query groups by columns of one table, one of them is a
//! name, the table has a one-column primary key, and the grouped values really repeat in
//! the table, [`group_by_entity_key`] adds the key in front of the GROUP BY. The output
//! columns do not change; only rows that merged different entities split.
//!
//! When the grouped values are unique in the table the groups are the same either way, so
//! nothing is rewritten (adding the key there would only reorder tied rows). Grouping by a
//! category such as a city or a year is left alone: "flights per city" means by value.
//!
//! The other way round, `GROUP BY T.id, T.type, T.details` names columns the key already
//! fixes: [`group_by_key_alone`] groups by the key alone. The groups and their values are
//! the same; rows tied on the sort key come out in key order instead of in the order of the
//! first grouped text, which is how the question's "the organisation with the most staff"
//! is usually meant when two organisations tie.

use rusqlite::{Connection, OptionalExtension};
use sqlparser::ast::{Expr, GroupByExpr, Ident, Select};

use crate::core::db::ident::quote_identifier;
use crate::core::db::schema::{Schema, Table};
use crate::core::db::sql_ast::{
    for_each_select_mut, parse_single_query, resolve_column_owner, tables_in_scope,
};
use crate::core::rewrite::ground::searchable;
use crate::core::rewrite::{Rewrite, RewriteInput};

/// The query grouped by the named entity's key, pretty-printed; `None` when no GROUP BY
/// merges different rows of a table by name.
pub fn group_by_entity_key(sql: &str, schema: &Schema, conn: &Connection) -> Option<String> {
    let mut statement = parse_single_query(sql)?;
    let mut changed = 0;
    for_each_select_mut(&mut statement, |select| {
        if let Some(key) = entity_key_for(select, schema, conn)
            && let GroupByExpr::Expressions(expressions, _) = &mut select.group_by
        {
            expressions.insert(0, key);
            changed += 1;
        }
    });
    (changed > 0).then(|| format!("{statement:#}"))
}

/// `alias.key` to group by first, when the select groups a joined table's rows by name.
fn entity_key_for(select: &Select, schema: &Schema, conn: &Connection) -> Option<Expr> {
    let GroupByExpr::Expressions(grouped, _) = &select.group_by else {
        return None;
    };
    if grouped.is_empty() {
        return None;
    }
    let tables = tables_in_scope(select, schema);
    if tables.len() < 2 {
        return None;
    }
    let mut owner: Option<(&str, &Table)> = None;
    let mut columns = Vec::new();
    for expr in grouped {
        let (used_as, table, column) = resolve_column_owner(expr, &tables)?;
        match owner {
            Some((seen, _)) if !seen.eq_ignore_ascii_case(used_as) => return None,
            _ => owner = Some((used_as, table)),
        }
        columns.push(column);
    }
    let (used_as, table) = owner?;
    if !columns
        .iter()
        .any(|column| column.to_lowercase().contains("name"))
    {
        return None;
    }
    let key = table.single_primary_key()?.name.as_str();
    if columns
        .iter()
        .any(|column| column.eq_ignore_ascii_case(key))
    {
        return None;
    }
    if !values_repeat(conn, table, &columns) {
        return None;
    }
    Some(Expr::CompoundIdentifier(vec![
        Ident::new(used_as),
        Ident::new(key),
    ]))
}

/// Whether two rows of the table share the values of `columns`.
fn values_repeat(conn: &Connection, table: &Table, columns: &[String]) -> bool {
    if !searchable(table) {
        return false;
    }
    let grouped: Vec<String> = columns.iter().map(|c| quote_identifier(c)).collect();
    let sql = format!(
        "SELECT 1 FROM {} GROUP BY {} HAVING COUNT(*) > 1 LIMIT 1",
        quote_identifier(&table.name),
        grouped.join(", ")
    );
    conn.query_row(&sql, [], |_| Ok(()))
        .optional()
        .ok()
        .flatten()
        .is_some()
}

/// The query with every GROUP BY that lists a table's one-column primary key and other
/// columns of the same table row grouped by the key alone; `None` when none does.
pub fn group_by_key_alone(sql: &str, schema: &Schema, conn: Option<&Connection>) -> Option<String> {
    let mut statement = parse_single_query(sql)?;
    let mut changed = 0;
    for_each_select_mut(&mut statement, |select| {
        let redundant = columns_the_key_fixes(select, schema, conn);
        if redundant.is_empty() {
            return;
        }
        if let GroupByExpr::Expressions(expressions, _) = &mut select.group_by {
            let mut position = 0;
            expressions.retain(|_| {
                position += 1;
                !redundant.contains(&(position - 1))
            });
            changed += 1;
        }
    });
    (changed > 0).then(|| format!("{statement:#}"))
}

/// Positions in the GROUP BY of plain columns of a table row whose primary key is grouped
/// too. A key SQLite lets hold NULL (a non-integer key without NOT NULL) counts only when
/// no row holds NULL, since rows with a NULL key form one group whatever their other
/// columns say.
fn columns_the_key_fixes(
    select: &Select,
    schema: &Schema,
    conn: Option<&Connection>,
) -> Vec<usize> {
    let GroupByExpr::Expressions(grouped, modifiers) = &select.group_by else {
        return Vec::new();
    };
    // WITH ROLLUP / CUBE make subtotals per grouped column: dropping one drops its rows.
    if grouped.len() < 2 || !modifiers.is_empty() {
        return Vec::new();
    }
    let tables = tables_in_scope(select, schema);
    let owners: Vec<Option<(&str, &Table, String)>> = grouped
        .iter()
        .map(|expr| resolve_column_owner(expr, &tables))
        .collect();
    let is_key = |table: &Table, column: &str| {
        table
            .single_primary_key()
            .is_some_and(|key| key.name.eq_ignore_ascii_case(column))
    };
    let grouped_keys: Vec<(&str, &Table)> = owners
        .iter()
        .flatten()
        .filter(|(_, table, column)| is_key(table, column))
        .map(|(used_as, table, _)| (*used_as, *table))
        .collect();
    let keyed = |keys: &[(&str, &Table)], used_as: &str| {
        keys.iter()
            .any(|(name, _)| name.eq_ignore_ascii_case(used_as))
    };
    let redundant: Vec<(usize, &str)> = owners
        .iter()
        .enumerate()
        .filter_map(|(position, owner)| {
            let (used_as, table, column) = owner.as_ref()?;
            (!is_key(table, column) && keyed(&grouped_keys, used_as))
                .then_some((position, *used_as))
        })
        .collect();
    if redundant.is_empty() {
        return Vec::new();
    }
    // The data is probed only once there is something to drop.
    let safe_keys: Vec<(&str, &Table)> = grouped_keys
        .into_iter()
        .filter(|(_, table)| key_never_null(table, conn))
        .collect();
    redundant
        .into_iter()
        .filter(|(_, used_as)| keyed(&safe_keys, used_as))
        .map(|(position, _)| position)
        .collect()
}

/// Whether the table's primary key holds no NULL: declared so (NOT NULL, or the INTEGER
/// key SQLite keeps as the row id), or checked in the data. Other backends never allow a
/// NULL key, so without a SQLite connection the key counts.
fn key_never_null(table: &Table, conn: Option<&Connection>) -> bool {
    let Some(key) = table.single_primary_key() else {
        return false;
    };
    if key.not_null || key.declared_type.trim().eq_ignore_ascii_case("INTEGER") {
        return true;
    }
    let Some(conn) = conn else {
        return true;
    };
    let sql = format!(
        "SELECT 1 FROM {} WHERE {} IS NULL LIMIT 1",
        quote_identifier(&table.name),
        quote_identifier(&key.name)
    );
    matches!(conn.query_row(&sql, [], |_| Ok(())).optional(), Ok(None))
}

/// [`group_by_key_alone`] as a step of the chain.
pub(crate) struct GroupByKeyAlone;

impl Rewrite for GroupByKeyAlone {
    fn name(&self) -> &'static str {
        "group_by_key_alone"
    }

    fn apply(&self, sql: &str, input: &RewriteInput<'_>) -> Option<String> {
        group_by_key_alone(sql, input.schema, input.conn)
    }
}

/// [`group_by_entity_key`] as a step of the chain.
pub(crate) struct GroupByEntityKey;

impl Rewrite for GroupByEntityKey {
    fn name(&self) -> &'static str {
        "group_by_entity_key"
    }

    fn apply(&self, sql: &str, input: &RewriteInput<'_>) -> Option<String> {
        group_by_entity_key(sql, input.schema, input.conn?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::db::schema::introspect;

    fn school() -> (Connection, Schema) {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE Highschooler (ID INTEGER PRIMARY KEY, name TEXT, grade INTEGER);
             INSERT INTO Highschooler VALUES (1, 'Jordan', 9), (2, 'Jordan', 10), (3, 'Kyle', 9);
             CREATE TABLE Friend (student_id INTEGER, friend_id INTEGER);
             INSERT INTO Friend VALUES (1, 3), (2, 3), (3, 1);
             CREATE TABLE airline (uid INTEGER PRIMARY KEY, Airline TEXT, City TEXT);
             INSERT INTO airline VALUES (1, 'A', 'X'), (2, 'B', 'X');
             CREATE TABLE flight (airline INTEGER, no INTEGER);
             INSERT INTO flight VALUES (1, 10), (2, 20);",
        )
        .unwrap();
        let schema = introspect(&conn, ":memory:").unwrap();
        (conn, schema)
    }

    fn keyed(sql: &str) -> Option<String> {
        let (conn, schema) = school();
        group_by_entity_key(sql, &schema, &conn)
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    #[test]
    fn grouping_by_a_repeated_name_groups_by_the_key_first() {
        assert_eq!(
            keyed(
                "SELECT H.name, COUNT(*) FROM Highschooler AS H JOIN Friend AS F \
                 ON H.ID = F.student_id GROUP BY H.name"
            )
            .as_deref(),
            Some(
                "SELECT H.name, COUNT(*) FROM Highschooler AS H JOIN Friend AS F \
                 ON H.ID = F.student_id GROUP BY H.ID, H.name"
            )
        );
        // unqualified names resolve to their table
        assert_eq!(
            keyed(
                "SELECT name FROM Highschooler JOIN Friend ON ID = student_id \
                 GROUP BY name HAVING COUNT(*) >= 2"
            )
            .as_deref(),
            Some(
                "SELECT name FROM Highschooler JOIN Friend ON ID = student_id \
                 GROUP BY Highschooler.ID, name HAVING COUNT(*) >= 2"
            )
        );
    }

    #[test]
    fn unique_names_categories_single_tables_and_keyed_groups_are_left_alone() {
        for sql in [
            // airline names are unique: the same groups either way
            "SELECT a.Airline FROM airline AS a JOIN flight AS f ON a.uid = f.airline \
             GROUP BY a.Airline ORDER BY COUNT(*) DESC LIMIT 1",
            // a city is a category, not an entity's name
            "SELECT a.City, COUNT(*) FROM airline AS a JOIN flight AS f ON a.uid = f.airline \
             GROUP BY a.City",
            // one table: "how many students have each name" means by value
            "SELECT name, COUNT(*) FROM Highschooler GROUP BY name",
            "SELECT H.name FROM Highschooler AS H JOIN Friend AS F ON H.ID = F.student_id \
             GROUP BY H.ID, H.name",
            // columns of two tables
            "SELECT H.name FROM Highschooler AS H JOIN Friend AS F ON H.ID = F.student_id \
             GROUP BY H.name, F.friend_id",
            "not sql",
        ] {
            assert_eq!(keyed(sql), None, "{sql}");
        }
    }

    fn key_alone(sql: &str) -> Option<String> {
        let (conn, schema) = school();
        group_by_key_alone(sql, &schema, Some(&conn))
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    #[test]
    fn columns_the_grouped_key_fixes_leave_the_group_by() {
        assert_eq!(
            key_alone(
                "SELECT H.name, H.grade FROM Highschooler AS H JOIN Friend AS F \
                 ON H.ID = F.student_id GROUP BY H.grade, H.ID, H.name \
                 ORDER BY COUNT(*) DESC LIMIT 1"
            )
            .as_deref(),
            Some(
                "SELECT H.name, H.grade FROM Highschooler AS H JOIN Friend AS F \
                 ON H.ID = F.student_id GROUP BY H.ID ORDER BY COUNT(*) DESC LIMIT 1"
            )
        );
        // a column of another table stays; an unqualified key resolves to its table
        assert_eq!(
            key_alone(
                "SELECT name, friend_id FROM Highschooler JOIN Friend ON ID = student_id \
                 GROUP BY ID, name, friend_id"
            )
            .as_deref(),
            Some(
                "SELECT name, friend_id FROM Highschooler JOIN Friend ON ID = student_id \
                 GROUP BY ID, friend_id"
            )
        );
    }

    #[test]
    fn the_same_groups_come_out_in_key_order() {
        let (conn, schema) = school();
        let sql = "SELECT H.name, H.ID FROM Highschooler AS H JOIN Friend AS F \
                   ON H.ID = F.friend_id GROUP BY H.name, H.ID";
        let rewritten = group_by_key_alone(sql, &schema, Some(&conn)).unwrap();
        let rows = |sql: &str| -> Vec<(String, i64)> {
            let mut statement = conn.prepare(sql).unwrap();
            statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let mut before = rows(sql);
        let after = rows(&rewritten);
        assert_eq!(
            after,
            vec![("Jordan".to_string(), 1), ("Kyle".to_string(), 3)]
        );
        before.sort_by_key(|(_, id)| *id);
        assert_eq!(before, after);
    }

    #[test]
    fn groups_without_the_key_or_with_a_key_that_holds_null_are_left_alone() {
        for sql in [
            "SELECT H.name FROM Highschooler AS H JOIN Friend AS F ON H.ID = F.student_id \
             GROUP BY H.name, H.grade",
            "SELECT H.name FROM Highschooler AS H GROUP BY H.ID",
            // the key of another alias of the same table fixes nothing of this one
            "SELECT A.name FROM Highschooler AS A JOIN Friend AS F ON A.ID = F.student_id \
             JOIN Highschooler AS B ON B.ID = F.friend_id GROUP BY B.ID, A.name",
            "not sql",
        ] {
            assert_eq!(key_alone(sql), None, "{sql}");
        }
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE tag (code TEXT PRIMARY KEY, label TEXT);
             INSERT INTO tag VALUES (NULL, 'a'), (NULL, 'b'), ('x', 'c');",
        )
        .unwrap();
        let schema = introspect(&conn, ":memory:").unwrap();
        let sql = "SELECT label FROM tag GROUP BY code, label";
        assert_eq!(group_by_key_alone(sql, &schema, Some(&conn)), None);
        conn.execute_batch("DELETE FROM tag WHERE code IS NULL")
            .unwrap();
        assert!(group_by_key_alone(sql, &schema, Some(&conn)).is_some());
    }
}
