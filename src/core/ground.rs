//! Checks the text values a generated query filters on against the database.
//!
//! A small model writes `Region = 'Asia'` when Asia is a continent, or `'Jetblue Airways'`
//! for `JetBlue Airways`; either filter matches nothing, so the answer is silently empty or
//! zero. For `column = 'text'` where the text does not occur in that column:
//! - one value of the column equal to it ignoring case replaces it;
//! - otherwise, when exactly one other column of the same table holds the text, that
//!   column replaces the filtered one.
//!
//! Anything looser (trimmed spaces, spelling distance, prefixes) was measured and not kept:
//! see docs/eval.md.

use rusqlite::{Connection, OptionalExtension, params};
use sqlparser::ast::{BinaryOperator, Expr, Ident, Select, TableFactor, Value};

use crate::core::schema::{Schema, Table};
use crate::core::sql_ast::{for_each_select_mut, parse_single_query};

/// Tables with more rows than this are not searched: each check may scan the table.
const MAX_ROWS_SEARCHED: u64 = 1_000_000;

/// The query with its unmatched text filters grounded, pretty-printed; `None` when every
/// filter already matches (or nothing could be grounded).
pub fn ground_literals(sql: &str, schema: &Schema, conn: &Connection) -> Option<String> {
    let mut statement = parse_single_query(sql)?;
    let mut grounder = Grounder {
        schema,
        conn,
        changed: 0,
    };
    for_each_select_mut(&mut statement, |select| grounder.ground_select(select));
    (grounder.changed > 0).then(|| format!("{statement:#}"))
}

struct Grounder<'a> {
    schema: &'a Schema,
    conn: &'a Connection,
    changed: usize,
}

impl Grounder<'_> {
    fn ground_select(&mut self, select: &mut Select) {
        let tables = tables_in_scope(select, self.schema);
        if let Some(selection) = select.selection.as_mut() {
            self.ground_condition(selection, &tables);
        }
    }

    /// Only the AND/OR skeleton of the condition: a subquery is its own scope, visited as a
    /// SELECT of its own with its own tables.
    fn ground_condition(&mut self, expr: &mut Expr, tables: &[(String, &Table)]) {
        match expr {
            Expr::Nested(inner) => self.ground_condition(inner, tables),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And | BinaryOperator::Or,
                right,
            } => {
                self.ground_condition(left, tables);
                self.ground_condition(right, tables);
            }
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } => {
                let Expr::Value(value) = right.as_mut() else {
                    return;
                };
                let Value::SingleQuotedString(text) = &mut value.value else {
                    return;
                };
                let Some((table, column)) = resolve_column(left, tables) else {
                    return;
                };
                match self.grounding(table, &column, text) {
                    Some(Grounding::Value(found)) => *text = found,
                    Some(Grounding::Column(other)) => rename_column(left, &other),
                    None => return,
                }
                self.changed += 1;
            }
            _ => {}
        }
    }

    fn grounding(&self, table: &Table, column: &str, text: &str) -> Option<Grounding> {
        if table.row_count.is_none_or(|rows| rows > MAX_ROWS_SEARCHED) {
            return None;
        }
        let from = quote(&table.name);
        let holds = |column: &str| -> bool {
            let sql = format!("SELECT 1 FROM {from} WHERE {} = ?1 LIMIT 1", quote(column));
            self.conn
                .query_row(&sql, params![text], |_| Ok(()))
                .optional()
                .ok()
                .flatten()
                .is_some()
        };
        if holds(column) {
            return None;
        }
        let sql = format!(
            "SELECT DISTINCT {col} FROM {from} WHERE {col} = ?1 COLLATE NOCASE LIMIT 2",
            col = quote(column)
        );
        let same_but_case: Vec<String> = self
            .conn
            .prepare(&sql)
            .and_then(|mut statement| {
                statement
                    .query_map(params![text], |row| row.get::<_, String>(0))?
                    .collect()
            })
            .unwrap_or_default();
        if let [found] = same_but_case.as_slice() {
            return Some(Grounding::Value(found.clone()));
        }
        // One scan for every other column, not one per column: on a wide table the
        // difference is seconds.
        let others: Vec<&str> = table
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .filter(|name| !name.eq_ignore_ascii_case(column))
            .collect();
        if others.is_empty() {
            return None;
        }
        let checks: Vec<String> = others
            .iter()
            .map(|name| format!("COALESCE(MAX({} = ?1), 0)", quote(name)))
            .collect();
        let sql = format!("SELECT {} FROM {from}", checks.join(", "));
        let found: Vec<bool> = self
            .conn
            .query_row(&sql, params![text], |row| {
                (0..others.len())
                    .map(|index| row.get::<_, i64>(index).map(|hit| hit != 0))
                    .collect()
            })
            .unwrap_or_default();
        let holders: Vec<&str> = others
            .iter()
            .zip(found)
            .filter_map(|(name, hit)| hit.then_some(*name))
            .collect();
        match holders.as_slice() {
            [other] => Some(Grounding::Column((*other).to_string())),
            _ => None,
        }
    }
}

enum Grounding {
    Value(String),
    Column(String),
}

/// The tables a select reads, under the name its columns use (alias, else table name).
fn tables_in_scope<'s>(select: &Select, schema: &'s Schema) -> Vec<(String, &'s Table)> {
    let mut tables = Vec::new();
    for from in &select.from {
        let factors = std::iter::once(&from.relation).chain(from.joins.iter().map(|j| &j.relation));
        for factor in factors {
            let TableFactor::Table { name, alias, .. } = factor else {
                continue;
            };
            let Some(ident) = name.0.last().and_then(|part| part.as_ident()) else {
                continue;
            };
            if let Some(table) = schema.table(&ident.value) {
                let used_as = alias.as_ref().map_or(&ident.value, |a| &a.name.value);
                tables.push((used_as.to_lowercase(), table));
            }
        }
    }
    tables
}

/// The table and the schema's spelling of the column an expression names, when exactly
/// one table in scope has it.
fn resolve_column<'s>(expr: &Expr, tables: &[(String, &'s Table)]) -> Option<(&'s Table, String)> {
    let (qualifier, name) = match expr {
        Expr::Identifier(ident) => (None, &ident.value),
        Expr::CompoundIdentifier(parts) if parts.len() >= 2 => (
            Some(parts[parts.len() - 2].value.to_lowercase()),
            &parts[parts.len() - 1].value,
        ),
        _ => return None,
    };
    let mut owners = tables.iter().filter(|(used_as, table)| {
        qualifier.as_ref().is_none_or(|q| q == used_as) && table.column(name).is_some()
    });
    let (_, table) = owners.next()?;
    if owners.next().is_some() {
        return None;
    }
    let column = table.column(name)?.name.clone();
    Some((table, column))
}

fn rename_column(expr: &mut Expr, column: &str) {
    match expr {
        Expr::Identifier(ident) => *ident = Ident::new(column),
        Expr::CompoundIdentifier(parts) => {
            if let Some(last) = parts.last_mut() {
                *last = Ident::new(column);
            }
        }
        _ => {}
    }
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::schema::introspect;

    fn world() -> (Connection, Schema) {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE country (Code TEXT PRIMARY KEY, Name TEXT, Continent TEXT, Region TEXT);
             INSERT INTO country VALUES ('AFG', 'Afghanistan', 'Asia', 'Southern and Central Asia'),
                                        ('NLD', 'Netherlands', 'Europe', 'Western Europe');
             CREATE TABLE airline (uid INTEGER, Airline TEXT);
             INSERT INTO airline VALUES (1, 'JetBlue Airways');",
        )
        .unwrap();
        let schema = introspect(&conn, ":memory:").unwrap();
        (conn, schema)
    }

    fn grounded(sql: &str) -> Option<String> {
        let (conn, schema) = world();
        ground_literals(sql, &schema, &conn)
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    #[test]
    fn a_value_in_the_wrong_case_takes_the_databases_spelling() {
        assert_eq!(
            grounded("SELECT uid FROM airline WHERE Airline = 'Jetblue Airways'").as_deref(),
            Some("SELECT uid FROM airline WHERE Airline = 'JetBlue Airways'")
        );
    }

    #[test]
    fn a_value_of_another_column_moves_the_filter_there() {
        assert_eq!(
            grounded("SELECT COUNT(*) FROM country AS T1 WHERE T1.Region = 'Asia'").as_deref(),
            Some("SELECT COUNT(*) FROM country AS T1 WHERE T1.Continent = 'Asia'")
        );
        assert_eq!(
            grounded(
                "SELECT Name FROM country WHERE Code IN \
                 (SELECT Code FROM country WHERE Region = 'Europe' OR Name = 'x')"
            )
            .as_deref(),
            Some(
                "SELECT Name FROM country WHERE Code IN \
                 (SELECT Code FROM country WHERE Continent = 'Europe' OR Name = 'x')"
            )
        );
    }

    #[test]
    fn matching_unknown_or_ambiguous_values_are_left_alone() {
        for sql in [
            "SELECT Name FROM country WHERE Continent = 'Asia'",
            // in no column: the honest answer is empty
            "SELECT Name FROM country WHERE Continent = 'Atlantis'",
            // no looser matching than case
            "SELECT Name FROM country WHERE Continent = 'Asia '",
            "SELECT Name FROM country WHERE Region = 'Western'",
            // not an equality with a text literal
            "SELECT Name FROM country WHERE Region LIKE 'Asia'",
            "SELECT Name FROM country WHERE Code = 1",
            "not sql",
        ] {
            assert_eq!(grounded(sql), None, "{sql}");
        }
    }
}
