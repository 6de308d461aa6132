//! Checks the text values a generated query filters on against the database.
//!
//! A small model writes `Region = 'Asia'` when Asia is a continent, or `'Jetblue Airways'`
//! for `JetBlue Airways`; either filter matches nothing, so the answer is silently empty or
//! zero. For `column = 'text'` where the text does not occur in that column:
//! - one value of the column equal to it ignoring case replaces it;
//! - otherwise, when exactly one other column of the same table holds the text, that
//!   column replaces the filtered one;
//! - otherwise, when no column of that table holds it and exactly one column of another
//!   table the same SELECT reads does (or, of several, exactly one with the filtered
//!   column's name), the filter moves there: `city.Name = 'Anguilla'` over `city JOIN
//!   country` -> `country.Name = 'Anguilla'`;
//! - otherwise, when exactly one table linked to the filtered one by a declared foreign key
//!   (either way) holds the text, the filter looks it up through the key: `country.Name =
//!   'Kabul'`, where Kabul is a city, -> `country.Code IN (SELECT CountryCode FROM city
//!   WHERE Name = 'Kabul')`.
//!
//! Anything looser (trimmed spaces, spelling distance, prefixes) was measured and not kept:
//! see docs/eval.md.

use rusqlite::{Connection, OptionalExtension, params};
use sqlparser::ast::{Expr, Ident, Query, Statement, Value};

use crate::core::db::ident::quote_identifier;
use crate::core::db::schema::{Schema, Table};
use crate::core::db::sql_ast::{parse_single_query, resolve_column};
use crate::core::rewrite::text_filters::for_each_text_filter;
use crate::core::rewrite::{Rewrite, RewriteInput};

/// Tables with more rows than this are not searched: each check may scan the table.
const MAX_ROWS_SEARCHED: u64 = 1_000_000;

/// The query with its unmatched text filters grounded, pretty-printed; `None` when every
/// filter already matches (or nothing could be grounded).
pub(crate) fn ground_literals(
    sql: &str,
    schema: &Schema,
    conn: &Connection,
    look_up_through_keys: bool,
) -> Option<String> {
    let mut statement = parse_single_query(sql)?;
    let mut grounder = Grounder {
        schema,
        conn,
        look_up_through_keys,
        changed: 0,
    };
    if let Statement::Query(query) = &mut statement {
        for_each_text_filter(query, schema, &mut |filter, tables| {
            grounder.ground_filter(filter, tables);
        });
    }
    (grounder.changed > 0).then(|| format!("{statement:#}"))
}

struct Grounder<'a> {
    schema: &'a Schema,
    conn: &'a Connection,
    look_up_through_keys: bool,
    changed: usize,
}

impl Grounder<'_> {
    /// Grounds one `column = 'text'` filter (`expr` is the whole comparison, replaced by a
    /// lookup when the text is found through a key).
    fn ground_filter(&mut self, expr: &mut Expr, tables: &[(String, &Table)]) {
        let Expr::BinaryOp { left, right, .. } = expr else {
            return;
        };
        let Expr::Value(value) = right.as_mut() else {
            return;
        };
        let Value::SingleQuotedString(text) = &mut value.value else {
            return;
        };
        let Some((table, column)) = resolve_column(left, tables) else {
            return;
        };
        match self.grounding(tables, table, &column, text) {
            Some(Grounding::Value(found)) => *text = found,
            Some(Grounding::Column(other)) => rename_column(left, &other),
            Some(Grounding::OtherTable { used_as, column }) => {
                **left = Expr::CompoundIdentifier(vec![Ident::new(used_as), Ident::new(column)]);
            }
            Some(Grounding::Lookup { column, lookup }) => {
                let mut key = left.as_ref().clone();
                rename_column(&mut key, &column);
                *expr = Expr::InSubquery {
                    expr: Box::new(key),
                    subquery: lookup,
                    negated: false,
                };
            }
            None => return,
        }
        self.changed += 1;
    }

    fn grounding(
        &self,
        tables: &[(String, &Table)],
        table: &Table,
        column: &str,
        text: &str,
    ) -> Option<Grounding> {
        if !searchable(table) {
            return None;
        }
        let from = quote_identifier(&table.name);
        let holds = |column: &str| -> bool {
            let sql = format!(
                "SELECT 1 FROM {from} WHERE {} = ?1 LIMIT 1",
                quote_identifier(column)
            );
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
            col = quote_identifier(column)
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
        let mut others = column_names(table);
        others.retain(|name| !name.eq_ignore_ascii_case(column));
        match self.columns_holding(table, &others, text).as_slice() {
            [other] => return Some(Grounding::Column((*other).to_string())),
            [] => {}
            _ => return None,
        }
        // `city.Name = 'Anguilla'` where Anguilla is the joined country's name.
        let mut holders: Vec<(&str, &str)> = Vec::new();
        for (used_as, other_table) in tables {
            if other_table.name == table.name || !searchable(other_table) {
                continue;
            }
            for found in self.columns_holding(other_table, &column_names(other_table), text) {
                holders.push((used_as.as_str(), found));
            }
        }
        if holders.is_empty() {
            if !self.look_up_through_keys {
                return None;
            }
            return self.lookup_through_key(table, column, text);
        }
        if holders.len() > 1 {
            // `Name` and `LocalName` both hold 'Anguilla': the filtered column's namesake.
            holders.retain(|(_, found)| found.eq_ignore_ascii_case(column));
        }
        match holders.as_slice() {
            [(used_as, found)] => Some(Grounding::OtherTable {
                used_as: (*used_as).to_string(),
                column: (*found).to_string(),
            }),
            _ => None,
        }
    }

    /// The one table linked to `table` by a foreign key that holds `text`, as a lookup of
    /// the linked key. Of two links to one table (`SourceAirport`, `DestAirport`), the one
    /// through the filtered column; a text that is the linked key itself is no lookup.
    fn lookup_through_key(&self, table: &Table, column: &str, text: &str) -> Option<Grounding> {
        let links = key_links(self.schema, table);
        let mut found: Vec<(&KeyLink, &str)> = Vec::new();
        for link in links.iter().filter(|link| searchable(link.other)) {
            let mut holders = self.columns_holding(link.other, &column_names(link.other), text);
            if holders.len() > 1 {
                holders.retain(|holder| holder.eq_ignore_ascii_case(column));
            }
            found.extend(holders.into_iter().map(|holder| (link, holder)));
        }
        if found.len() > 1 {
            found.retain(|(link, _)| link.own_column.eq_ignore_ascii_case(column));
        }
        let [(link, holder)] = found.as_slice() else {
            return None;
        };
        if holder.eq_ignore_ascii_case(&link.their_column) {
            return None;
        }
        // `Customer.City = 'Calgary'` found in `Employee.City`: the customer's own city is
        // what was asked, and none is Calgary; the support rep's city is another question.
        // A name is different: a country named 'Kabul' is the country of the city Kabul.
        if holder.eq_ignore_ascii_case(column) && !names_the_row(column) {
            return None;
        }
        let lookup = format!(
            "SELECT {} FROM {} WHERE {} = '{}'",
            quote_identifier(&link.their_column),
            quote_identifier(&link.other.name),
            quote_identifier(holder),
            text.replace('\'', "''")
        );
        let Statement::Query(lookup) = parse_single_query(&lookup)? else {
            return None;
        };
        Some(Grounding::Lookup {
            column: link.own_column.clone(),
            lookup,
        })
    }

    /// Which of `columns` hold `text` somewhere in the table, in one scan rather than one
    /// per column: on a wide table the difference is seconds.
    fn columns_holding<'c>(&self, table: &Table, columns: &[&'c str], text: &str) -> Vec<&'c str> {
        if columns.is_empty() {
            return Vec::new();
        }
        let checks: Vec<String> = columns
            .iter()
            .map(|name| format!("COALESCE(MAX({} = ?1), 0)", quote_identifier(name)))
            .collect();
        let sql = format!(
            "SELECT {} FROM {}",
            checks.join(", "),
            quote_identifier(&table.name)
        );
        let found: Vec<bool> = self
            .conn
            .query_row(&sql, params![text], |row| {
                (0..columns.len())
                    .map(|index| row.get::<_, i64>(index).map(|hit| hit != 0))
                    .collect()
            })
            .unwrap_or_default();
        columns
            .iter()
            .zip(found)
            .filter_map(|(name, hit)| hit.then_some(*name))
            .collect()
    }
}

/// Whether a table is small enough to scan for a value (row counted, at most
/// a million rows).
pub(crate) fn searchable(table: &Table) -> bool {
    table
        .row_count
        .is_some_and(|rows| rows <= MAX_ROWS_SEARCHED)
}

enum Grounding {
    Value(String),
    Column(String),
    /// A column of another table the same SELECT reads, under the name it goes by there.
    OtherTable {
        used_as: String,
        column: String,
    },
    /// `column IN (lookup)`: the filter looked up through a foreign key.
    Lookup {
        column: String,
        lookup: Box<Query>,
    },
}

/// A column that names its row (`Name`, `Title`) rather than describing it (`City`): the
/// same text in another table's namesake column then names a related row.
fn names_the_row(column: &str) -> bool {
    ["name", "title"].contains(&column.to_ascii_lowercase().as_str())
}

/// Every column name of the table, in order.
fn column_names(table: &Table) -> Vec<&str> {
    table.columns.iter().map(|c| c.name.as_str()).collect()
}

/// One declared single-column foreign key seen from `table`: its own column and the
/// other table's column it pairs with.
struct KeyLink<'s> {
    own_column: String,
    other: &'s Table,
    their_column: String,
}

/// The keys `table` declares and the keys other tables declare into it; a key that names
/// no column points at the referenced table's one-column primary key.
fn key_links<'s>(schema: &'s Schema, table: &Table) -> Vec<KeyLink<'s>> {
    let target_column = |to_table: &Table, to_column: &str| {
        if to_column.is_empty() {
            to_table.single_primary_key().map(|key| key.name.clone())
        } else {
            Some(to_column.to_string())
        }
    };
    let mut links = Vec::new();
    for key in &table.foreign_keys {
        let Some(target) = schema.table(&key.to_table) else {
            continue;
        };
        if target.name == table.name {
            continue;
        }
        if let Some(their_column) = target_column(target, &key.to_column) {
            links.push(KeyLink {
                own_column: key.from_column.clone(),
                other: target,
                their_column,
            });
        }
    }
    for other in &schema.tables {
        if other.name == table.name {
            continue;
        }
        for key in &other.foreign_keys {
            if !key.to_table.eq_ignore_ascii_case(&table.name) {
                continue;
            }
            if let Some(own_column) = target_column(table, &key.to_column) {
                links.push(KeyLink {
                    own_column,
                    other,
                    their_column: key.from_column.clone(),
                });
            }
        }
    }
    links
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

/// [`ground_literals`] as a step of the chain.
pub(crate) struct GroundLiterals {
    /// Look a value up through a foreign key when only a linked table holds it.
    pub lookup_through_keys: bool,
}

impl GroundLiterals {
    pub(crate) const NAME: &'static str = "ground_literals";
}

impl Rewrite for GroundLiterals {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn apply(&self, sql: &str, input: &RewriteInput<'_>) -> Option<String> {
        ground_literals(sql, input.schema, input.conn?, self.lookup_through_keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::db::schema::introspect;

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
        ground_literals(sql, &schema, &conn, true)
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    #[test]
    fn filters_under_a_negation_are_left_as_written() {
        for sql in [
            "SELECT Name FROM country WHERE Code NOT IN \
             (SELECT Code FROM country WHERE Continent = 'asia')",
            "SELECT Name FROM country EXCEPT SELECT Name FROM country WHERE Continent = 'asia'",
            "SELECT Name FROM country AS c WHERE NOT EXISTS \
             (SELECT 1 FROM country AS d WHERE d.Continent = 'asia' AND d.Code = c.Code)",
        ] {
            assert_eq!(grounded(sql), None, "{sql}");
        }
        assert_eq!(
            grounded("SELECT Name FROM country WHERE Code IN (SELECT Code FROM country WHERE Continent = 'asia')"),
            Some("SELECT Name FROM country WHERE Code IN (SELECT Code FROM country WHERE Continent = 'Asia')".to_string())
        );
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
    fn a_value_of_a_joined_table_moves_the_filter_to_it() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE country (Code TEXT PRIMARY KEY, Name TEXT, LocalName TEXT);
             INSERT INTO country VALUES ('AIA', 'Anguilla', 'Anguilla');
             CREATE TABLE city (ID INTEGER PRIMARY KEY, Name TEXT, CountryCode TEXT);
             INSERT INTO city VALUES (1, 'The Valley', 'AIA');",
        )
        .unwrap();
        let schema = introspect(&conn, ":memory:").unwrap();
        let grounded = ground_literals(
            "SELECT T2.Code FROM city AS T1 JOIN country AS T2 ON T1.CountryCode = T2.Code \
             WHERE T1.Name = 'Anguilla'",
            &schema,
            &conn,
            true,
        )
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "));
        assert_eq!(
            grounded.as_deref(),
            Some(
                "SELECT T2.Code FROM city AS T1 JOIN country AS T2 ON T1.CountryCode = T2.Code \
                 WHERE T2.Name = 'Anguilla'"
            )
        );
        // a value no table in scope holds stays where it is
        assert_eq!(
            ground_literals(
                "SELECT T2.Code FROM city AS T1 JOIN country AS T2 ON T1.CountryCode = T2.Code \
                 WHERE T1.Name = 'Atlantis'",
                &schema,
                &conn,
                true,
            ),
            None
        );
    }

    #[test]
    fn a_value_of_a_linked_table_is_looked_up_through_the_key() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE country (Code TEXT PRIMARY KEY, Name TEXT, Region TEXT);
             INSERT INTO country VALUES ('AFG', 'Afghanistan', 'Southern and Central Asia'),
                                        ('ABW', 'Aruba', 'Caribbean');
             CREATE TABLE city (ID INTEGER PRIMARY KEY, Name TEXT,
                                CountryCode TEXT REFERENCES country(Code));
             INSERT INTO city VALUES (1, 'Kabul', 'AFG'), (2, 'Oranjestad', 'ABW');
             CREATE TABLE airport (Code TEXT PRIMARY KEY, City TEXT);
             INSERT INTO airport VALUES ('KBL', 'Kabul'), ('AUA', 'Oranjestad'), ('ZZZ', 'Nowhere');
             CREATE TABLE flight (No INTEGER, Source TEXT REFERENCES airport(Code),
                                  Dest TEXT REFERENCES airport);
             INSERT INTO flight VALUES (1, 'KBL', 'AUA');",
        )
        .unwrap();
        let schema = introspect(&conn, ":memory:").unwrap();
        let grounded = |sql: &str| {
            ground_literals(sql, &schema, &conn, true)
                .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        };
        // the filtered table is the one referenced
        assert_eq!(
            grounded("SELECT Region FROM country WHERE Name = 'Kabul'").as_deref(),
            Some(
                "SELECT Region FROM country WHERE Code IN \
                 (SELECT \"CountryCode\" FROM \"city\" WHERE \"Name\" = 'Kabul')"
            )
        );
        // the filtered table references the holder
        assert_eq!(
            grounded("SELECT COUNT(*) FROM city AS T1 WHERE T1.Name = 'Aruba'").as_deref(),
            Some(
                "SELECT COUNT(*) FROM city AS T1 WHERE T1.CountryCode IN \
                 (SELECT \"Code\" FROM \"country\" WHERE \"Name\" = 'Aruba')"
            )
        );
        // of two keys into one table, the one that is filtered; an implicit target column
        assert_eq!(
            grounded("SELECT No FROM flight WHERE Dest = 'Oranjestad'").as_deref(),
            Some(
                "SELECT No FROM flight WHERE Dest IN \
                 (SELECT \"Code\" FROM \"airport\" WHERE \"City\" = 'Oranjestad')"
            )
        );
        for sql in [
            // two keys, neither filtered
            "SELECT No FROM flight WHERE No = 'Kabul'",
            // the value is the linked key itself: a lookup would change nothing
            "SELECT No FROM flight WHERE Source = 'ZZZ'",
            // no linked table holds it
            "SELECT Region FROM country WHERE Name = 'Atlantis'",
        ] {
            assert_eq!(grounded(sql), None, "{sql}");
        }
    }

    /// "How many customers live in Calgary?": none do (the answer is 0), though the
    /// support rep a customer's key points at does. The customer's own city was asked.
    #[test]
    fn a_describing_column_is_not_looked_up_in_its_namesake_through_a_key() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE Employee (EmployeeId INTEGER PRIMARY KEY, City TEXT);
             INSERT INTO Employee VALUES (1, 'Calgary'), (2, 'Lethbridge');
             CREATE TABLE Customer (CustomerId INTEGER PRIMARY KEY, City TEXT,
                                    SupportRepId INTEGER REFERENCES Employee(EmployeeId));
             INSERT INTO Customer VALUES (1, 'Oslo', 1), (2, 'Prague', 2);",
        )
        .unwrap();
        let schema = introspect(&conn, ":memory:").unwrap();
        assert_eq!(
            ground_literals(
                "SELECT COUNT(*) FROM Customer WHERE City = 'Calgary'",
                &schema,
                &conn,
                true
            ),
            None
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
