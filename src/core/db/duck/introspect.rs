//! A DuckDB source's schema from DuckDB's own catalog functions (`duckdb_tables()`,
//! `duckdb_views()`, `duckdb_columns()`, `duckdb_constraints()`): tables and views in the
//! order they were created, columns with their declared types, primary and foreign keys,
//! row counts and the same sample values SQLite's introspection keeps.
//!
//! Sample values read at most [`SAMPLE_SCAN_ROWS`] rows per column, so a gigabyte CSV is
//! not read once per text column.

use std::collections::HashMap;

use duckdb::Connection;
use duckdb::params;

use super::{DuckDb, quote};
use crate::core::db::schema::{
    Column, DISTINCT_COUNT_CAP, ForeignKey, SAMPLE_MAX_CHARS, SAMPLE_VALUES, Schema, SchemaError,
    Table, is_textual,
};

/// How many rows of a table the sample values are drawn from.
const SAMPLE_SCAN_ROWS: u64 = 200_000;

/// A readable table or view, with what SQL needs to name it.
struct Relation {
    schema: String,
    name: String,
    is_view: bool,
}

impl Relation {
    /// `name`, or `schema.name` outside `main`.
    fn shown(&self) -> String {
        if self.schema == "main" {
            self.name.clone()
        } else {
            format!("{}.{}", self.schema, self.name)
        }
    }

    fn quoted(&self) -> String {
        format!("{}.{}", quote(&self.schema), quote(&self.name))
    }
}

/// The schema, and each table's name as SQL writes it.
pub(super) fn read_schema(db: &DuckDb) -> Result<(Schema, HashMap<String, String>), SchemaError> {
    let error = |e: duckdb::Error| SchemaError::DuckDb(super::duck_message(&e));
    let relations = relations(&db.conn).map_err(error)?;
    let mut schema = Schema::default();
    let mut quoted = HashMap::new();
    for relation in relations {
        let shown = relation.shown();
        let columns = read_columns(&db.conn, &relation).map_err(error)?;
        let row_count = match db.file_rows.get(&shown) {
            Some(rows) => Some(*rows),
            None => db
                .probe(|conn| {
                    conn.query_row(
                        &format!("SELECT count(*) FROM {}", relation.quoted()),
                        [],
                        |row| row.get::<_, i64>(0),
                    )
                })
                .map(|n| n.max(0) as u64),
        };
        let mut table = Table {
            foreign_keys: read_foreign_keys(&db.conn, &relation).map_err(error)?,
            name: shown,
            is_view: relation.is_view && !db.file_rows.contains_key(&relation.shown()),
            columns,
            row_count,
        };
        fill_sample_values(db, &relation.quoted(), &mut table);
        quoted.insert(table.name.clone(), relation.quoted());
        schema.tables.push(table);
    }
    Ok((schema, quoted))
}

fn relations(conn: &Connection) -> duckdb::Result<Vec<Relation>> {
    let mut statement = conn.prepare(
        "SELECT schema_name, table_name, false, table_oid FROM duckdb_tables() \
         WHERE NOT internal AND NOT temporary AND database_name = current_database() \
         UNION ALL \
         SELECT schema_name, view_name, true, view_oid FROM duckdb_views() \
         WHERE NOT internal AND NOT temporary AND database_name = current_database() \
         ORDER BY 4",
    )?;
    let rows = statement.query_map([], |row| {
        Ok(Relation {
            schema: row.get(0)?,
            name: row.get(1)?,
            is_view: row.get(2)?,
        })
    })?;
    rows.collect()
}

fn read_columns(conn: &Connection, relation: &Relation) -> duckdb::Result<Vec<Column>> {
    let keys = key_columns(conn, relation)?;
    let mut statement = conn.prepare(
        "SELECT column_name, data_type, NOT is_nullable FROM duckdb_columns() \
         WHERE database_name = current_database() AND schema_name = ? AND table_name = ? \
         ORDER BY column_index",
    )?;
    let rows = statement.query_map(params![relation.schema, relation.name], |row| {
        let name: String = row.get(0)?;
        Ok(Column {
            primary_key: keys.contains(&name),
            name,
            declared_type: row.get(1)?,
            not_null: row.get(2)?,
            sample_values: Vec::new(),
            distinct_values: None,
        })
    })?;
    rows.collect()
}

fn key_columns(conn: &Connection, relation: &Relation) -> duckdb::Result<Vec<String>> {
    let mut statement = conn.prepare(
        "SELECT unnest(constraint_column_names) FROM duckdb_constraints() \
         WHERE database_name = current_database() AND schema_name = ? AND table_name = ? \
           AND constraint_type = 'PRIMARY KEY'",
    )?;
    let rows = statement.query_map(params![relation.schema, relation.name], |row| row.get(0))?;
    rows.collect()
}

fn read_foreign_keys(conn: &Connection, relation: &Relation) -> duckdb::Result<Vec<ForeignKey>> {
    let mut statement = conn.prepare(
        "SELECT unnest(constraint_column_names), referenced_table, \
                unnest(referenced_column_names) \
         FROM duckdb_constraints() \
         WHERE database_name = current_database() AND schema_name = ? AND table_name = ? \
           AND constraint_type = 'FOREIGN KEY' ORDER BY constraint_index",
    )?;
    let rows = statement.query_map(params![relation.schema, relation.name], |row| {
        Ok(ForeignKey {
            from_column: row.get(0)?,
            to_table: row.get(1)?,
            to_column: row.get(2)?,
        })
    })?;
    rows.collect()
}

/// The most frequent short text values (ties in byte order, as SQLite sorts) and the
/// distinct count up to the cap, from the first [`SAMPLE_SCAN_ROWS`] rows.
fn fill_sample_values(db: &DuckDb, quoted_table: &str, table: &mut Table) {
    for column in table
        .columns
        .iter_mut()
        .filter(|c| is_textual(c) && !c.primary_key)
    {
        let q = quote(&column.name);
        let head = format!("(SELECT {q} AS v FROM {quoted_table} LIMIT {SAMPLE_SCAN_ROWS})");
        let samples = format!(
            "SELECT v::VARCHAR FROM {head} WHERE length(v::VARCHAR) BETWEEN 1 AND {SAMPLE_MAX_CHARS} \
             GROUP BY v ORDER BY count(*) DESC, v::VARCHAR LIMIT {SAMPLE_VALUES}"
        );
        column.sample_values = db.probe(|conn| strings(conn, &samples)).unwrap_or_default();
        let distinct = format!(
            "SELECT count(*) FROM (SELECT DISTINCT v FROM {head} \
             WHERE length(v::VARCHAR) > 0 LIMIT {DISTINCT_COUNT_CAP})"
        );
        column.distinct_values = db
            .probe(|conn| conn.query_row(&distinct, [], |row| row.get::<_, i64>(0)))
            .map(|n| n.max(0) as u64);
    }
}

/// Distinct text values of one column between 2 and `max_chars` characters (the value
/// index), from the first [`SAMPLE_SCAN_ROWS`] rows.
pub(super) fn text_values(
    db: &DuckDb,
    quoted_table: &str,
    column: &str,
    max_chars: usize,
    limit: usize,
) -> Vec<String> {
    let q = quote(column);
    let sql = format!(
        "SELECT DISTINCT v FROM (SELECT {q} AS v FROM {quoted_table} LIMIT {SAMPLE_SCAN_ROWS}) \
         WHERE typeof(v) = 'VARCHAR' AND length(v) BETWEEN 2 AND {max_chars} LIMIT {limit}"
    );
    db.probe(|conn| strings(conn, &sql)).unwrap_or_default()
}

fn strings(conn: &Connection, sql: &str) -> duckdb::Result<Vec<String>> {
    let mut statement = conn.prepare(sql)?;
    let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
    rows.collect()
}
