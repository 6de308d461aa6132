//! Hints for the repair turn: SQLite's error names what is wrong, these lines say what
//! exists instead, so a small model does not write the same query again.

use crate::core::guard::referenced_tables;
use crate::core::schema::Schema;

/// Lines to add after the database's error. Empty when there is nothing useful to add.
pub fn repair_hints(error: &str, failed_sql: &str, schema: &Schema) -> Vec<String> {
    let mut hints = Vec::new();
    if let Some(name) = error_subject(error, "no such table:") {
        let owners = tables_with_column(schema, &name);
        if !owners.is_empty() {
            hints.push(format!(
                "{name} is not a table; it is a column of {}.",
                owners.join(", ")
            ));
        }
        hints.push(format!(
            "The tables are: {}.",
            table_names(schema).join(", ")
        ));
    } else if let Some(name) = error_subject(error, "no such column:") {
        let column = name.rsplit('.').next().unwrap_or(&name).to_string();
        let owners = tables_with_column(schema, &column);
        if !owners.is_empty() {
            hints.push(format!("{column} is a column of {}.", owners.join(", ")));
        }
        for table in referenced_tables(failed_sql) {
            if let Some(table) = schema.table(&table) {
                let columns: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
                hints.push(format!(
                    "Columns of {}: {}.",
                    table.name,
                    columns.join(", ")
                ));
            }
        }
    } else if let Some(name) = error_subject(error, "ambiguous column name:") {
        hints.push(format!(
            "Qualify {name} with the alias of the table it should come from."
        ));
    } else if error.contains("misuse of aggregate") {
        hints.push("Filter on aggregates with HAVING, not WHERE.".into());
    }
    hints
}

/// The identifier after `marker` in an error ("no such column: T1.TrackId in SELECT ...").
fn error_subject(error: &str, marker: &str) -> Option<String> {
    let start = error.find(marker)? + marker.len();
    let subject: String = error[start..]
        .trim_start()
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    (!subject.is_empty()).then_some(subject)
}

fn tables_with_column(schema: &Schema, column: &str) -> Vec<String> {
    schema
        .tables
        .iter()
        .filter(|t| t.column(column).is_some())
        .map(|t| t.name.clone())
        .collect()
}

fn table_names(schema: &Schema) -> Vec<String> {
    schema.tables.iter().map(|t| t.name.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::schema::introspect;

    fn schema() -> Schema {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE Customer(CustomerId INTEGER PRIMARY KEY, Address TEXT, Country TEXT);
             CREATE TABLE Genre(GenreId INTEGER PRIMARY KEY, Name TEXT);
             CREATE TABLE Track(TrackId INTEGER PRIMARY KEY, GenreId INTEGER);",
        )
        .unwrap();
        introspect(&conn, ":memory:").unwrap()
    }

    #[test]
    fn a_missing_table_that_is_a_column_is_named() {
        let hints = repair_hints(
            "no such table: Address",
            "SELECT * FROM Customer JOIN Address",
            &schema(),
        );
        assert_eq!(
            hints,
            [
                "Address is not a table; it is a column of Customer.",
                "The tables are: Customer, Genre, Track."
            ]
        );
    }

    #[test]
    fn a_missing_column_lists_where_it_lives_and_what_is_in_scope() {
        let hints = repair_hints(
            "no such column: T1.TrackId in SELECT ... at offset 22",
            "SELECT count(T1.TrackId) FROM Genre AS T1 JOIN Track AS T2 ON 1",
            &schema(),
        );
        assert_eq!(
            hints,
            [
                "TrackId is a column of Track.",
                "Columns of Genre: GenreId, Name.",
                "Columns of Track: TrackId, GenreId."
            ]
        );
        assert!(repair_hints("syntax error", "SELEC", &schema()).is_empty());
    }
}

/// Quotes table and column names that contain spaces where the model wrote them bare
/// (`FROM Café Kunden`): SQLite would read the first word as the name and fail, and a small
/// model repeats the same text when shown the error.
pub fn quote_bare_names(sql: &str, schema: &Schema) -> String {
    let mut names: Vec<&str> = schema
        .tables
        .iter()
        .flat_map(|t| {
            std::iter::once(t.name.as_str()).chain(t.columns.iter().map(|c| c.name.as_str()))
        })
        .filter(|name| name.contains(char::is_whitespace))
        .collect();
    if names.is_empty() {
        return sql.to_string();
    }
    // Longest first, so "Order Line Item" wins over "Order Line".
    names.sort_by_key(|name| std::cmp::Reverse(name.len()));
    names.dedup();
    let mut out = String::with_capacity(sql.len() + 8);
    let mut quote: Option<char> = None;
    let mut rest = sql;
    while let Some(c) = rest.chars().next() {
        if let Some(open) = quote {
            let close = if open == '[' { ']' } else { open };
            if c == close {
                quote = None;
            }
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        if matches!(c, '\'' | '"' | '`' | '[') {
            quote = Some(c);
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let starts_word = !out.chars().next_back().is_some_and(is_identifier_char);
        let matched = starts_word
            .then(|| {
                names.iter().find(|name| {
                    rest.get(..name.len())
                        .is_some_and(|head| head.eq_ignore_ascii_case(name))
                        && !rest[name.len()..]
                            .chars()
                            .next()
                            .is_some_and(is_identifier_char)
                })
            })
            .flatten();
        if let Some(name) = matched {
            out.push_str(&crate::core::ident::quote_identifier(name));
            rest = &rest[name.len()..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

fn is_identifier_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

#[cfg(test)]
mod quoting_tests {
    use super::*;
    use crate::core::schema::{Column, Table};

    fn schema_with(tables: &[(&str, &[&str])]) -> Schema {
        Schema {
            tables: tables
                .iter()
                .map(|(name, columns)| Table {
                    name: name.to_string(),
                    columns: columns
                        .iter()
                        .map(|c| Column {
                            name: c.to_string(),
                            declared_type: "TEXT".into(),
                            primary_key: false,
                            not_null: false,
                            sample_values: Vec::new(),
                            distinct_values: None,
                        })
                        .collect(),
                    is_view: false,
                    foreign_keys: Vec::new(),
                    row_count: None,
                })
                .collect(),
        }
    }

    #[test]
    fn quotes_spaced_names_written_bare_and_leaves_the_rest() {
        let schema = schema_with(&[
            ("Café Kunden", &["Kunden Nr", "Stadt"]),
            ("Orders", &["Id"]),
        ]);
        assert_eq!(
            quote_bare_names(
                "SELECT COUNT(*) FROM Café Kunden WHERE Stadt = 'Café Kunden'",
                &schema
            ),
            "SELECT COUNT(*) FROM \"Café Kunden\" WHERE Stadt = 'Café Kunden'"
        );
        assert_eq!(
            quote_bare_names(
                "SELECT \"Kunden Nr\", kunden nr FROM \"Café Kunden\"",
                &schema
            ),
            "SELECT \"Kunden Nr\", \"Kunden Nr\" FROM \"Café Kunden\""
        );
        assert_eq!(
            quote_bare_names("SELECT Id FROM Orders", &schema),
            "SELECT Id FROM Orders"
        );
        assert_eq!(
            quote_bare_names("SELECT XCafé Kunden FROM t", &schema),
            "SELECT XCafé Kunden FROM t"
        );
    }
}
