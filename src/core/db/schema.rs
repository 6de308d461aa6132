//! Database introspection: tables, columns, keys, row counts and sample values.
//!
//! Works on any SQLite connection; the caller decides how it was opened (the app always
//! opens user databases read-only). Names are kept exactly as the database spells them.

use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::core::db::ident::quote_identifier;

/// How many distinct sample values to keep per text column.
pub(crate) const SAMPLE_VALUES: usize = 3;
/// Sample values longer than this are not useful to the model and cost tokens.
pub(crate) const SAMPLE_MAX_CHARS: usize = 40;
/// Distinct values are counted up to this many; past it a column is not categorical.
pub(crate) const DISTINCT_COUNT_CAP: u64 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("'{path}' is not a SQLite database (or it is corrupt): {reason}")]
    NotADatabase { path: String, reason: String },
    #[error("could not read the schema: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("could not read the schema from PostgreSQL: {0}")]
    Postgres(String),
    #[error("could not read the schema from DuckDB: {0}")]
    DuckDb(String),
    /// Nothing to ask about: a model given no tables invents them, attempt after attempt.
    #[error("the database '{path}' has no tables{}", broken_suffix(.broken))]
    NoTables {
        path: String,
        broken: Vec<BrokenObject>,
    },
}

fn broken_suffix(broken: &[BrokenObject]) -> String {
    if broken.is_empty() {
        return String::new();
    }
    let listed: Vec<String> = broken.iter().map(ToString::to_string).collect();
    format!(" it can read; left out: {}", listed.join(", "))
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// The tables and views that can be read; the prompt and retrieval see only these.
    pub tables: Vec<Table>,
    /// Tables and views SQLite cannot read (a view over a dropped table, a virtual table
    /// whose module is missing), listed so the user learns why they are left out.
    #[serde(default)]
    pub broken: Vec<BrokenObject>,
}

/// A table or view whose columns SQLite cannot read, with SQLite's reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokenObject {
    pub name: String,
    pub is_view: bool,
    pub error: String,
}

impl std::fmt::Display for BrokenObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.is_view { "view" } else { "table" };
        write!(f, "{} (broken {kind}: {})", self.name, self.error)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub name: String,
    pub is_view: bool,
    pub columns: Vec<Column>,
    pub foreign_keys: Vec<ForeignKey>,
    /// `None` when counting was skipped or failed (huge tables, broken views).
    pub row_count: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub declared_type: String,
    pub primary_key: bool,
    pub not_null: bool,
    pub sample_values: Vec<String>,
    /// Distinct non-empty text values, counted up to [`DISTINCT_COUNT_CAP`] (`None` for
    /// columns that are not textual or could not be counted).
    #[serde(default)]
    pub distinct_values: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForeignKey {
    pub from_column: String,
    pub to_table: String,
    /// Empty when the key references the target's primary key implicitly.
    pub to_column: String,
}

impl Schema {
    /// Refuses a database with no readable table: `path` names it in the message.
    pub fn ensure_has_tables(&self, path: &str) -> Result<(), SchemaError> {
        if self.tables.is_empty() {
            return Err(SchemaError::NoTables {
                path: path.to_string(),
                broken: self.broken.clone(),
            });
        }
        Ok(())
    }

    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// A stable hash of the structure (not the data): changes when a table or column does.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        for table in &self.tables {
            hasher.update(table.name.as_bytes());
            hasher.update([0, u8::from(table.is_view)]);
            for column in &table.columns {
                hasher.update(column.name.as_bytes());
                hasher.update([1]);
                hasher.update(column.declared_type.as_bytes());
                hasher.update([u8::from(column.primary_key), u8::from(column.not_null)]);
            }
            for fk in &table.foreign_keys {
                hasher.update(fk.from_column.as_bytes());
                hasher.update([2]);
                hasher.update(fk.to_table.as_bytes());
                hasher.update([3]);
                hasher.update(fk.to_column.as_bytes());
            }
            hasher.update([4]);
        }
        hex::encode(&hasher.finalize()[..16])
    }
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// The primary key when it is one column.
    pub(crate) fn single_primary_key(&self) -> Option<&Column> {
        let mut keys = self.columns.iter().filter(|c| c.primary_key);
        let key = keys.next()?;
        keys.next().is_none().then_some(key)
    }
}

/// Reads the whole schema. `path` is only used in error messages.
pub fn introspect(conn: &Connection, path: &str) -> Result<Schema, SchemaError> {
    let mut statement = conn
        .prepare(
            "SELECT name, type FROM sqlite_master \
             WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY rowid",
        )
        .map_err(|e| classify_open_error(e, path))?;
    let entries: Vec<(String, String)> = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .map_err(|e| classify_open_error(e, path))?
        .collect::<Result<_, _>>()
        .map_err(|e| classify_open_error(e, path))?;

    let mut schema = Schema::default();
    for (name, kind) in entries {
        let is_view = kind == "view";
        // One object SQLite cannot compile (a view over a dropped table) must not cost the
        // user the rest of the database: it is set aside with SQLite's reason.
        let read = read_columns(conn, &name)
            .and_then(|columns| Ok((columns, read_foreign_keys(conn, &name)?)));
        let (columns, foreign_keys) = match read {
            Ok(read) => read,
            Err(error) if is_about_the_object(&error) => {
                schema.broken.push(BrokenObject {
                    name,
                    is_view,
                    error: sqlite_message(&error),
                });
                continue;
            }
            Err(error) => return Err(error),
        };
        let row_count = count_rows(conn, &name);
        let mut table = Table {
            name,
            is_view,
            columns,
            foreign_keys,
            row_count,
        };
        fill_sample_values(conn, &mut table);
        schema.tables.push(table);
    }
    Ok(schema)
}

/// SQLite's plain SQLITE_ERROR ("no such table", "no such module") is about the object
/// being compiled; a busy, corrupt or unreadable file is about the whole database.
fn is_about_the_object(error: &SchemaError) -> bool {
    matches!(
        error,
        SchemaError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code & 0xff == rusqlite::ffi::SQLITE_ERROR
    )
}

/// SQLite's own wording ("no such table: main.old"), without rusqlite's wrapping.
fn sqlite_message(error: &SchemaError) -> String {
    match error {
        SchemaError::Sqlite(rusqlite::Error::SqliteFailure(_, Some(message))) => message.clone(),
        other => other.to_string(),
    }
}

fn classify_open_error(error: rusqlite::Error, path: &str) -> SchemaError {
    match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) | Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
            SchemaError::NotADatabase {
                path: path.to_string(),
                reason: error.to_string(),
            }
        }
        _ => SchemaError::Sqlite(error),
    }
}

fn read_columns(conn: &Connection, table: &str) -> Result<Vec<Column>, SchemaError> {
    let mut statement =
        conn.prepare("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1)")?;
    let columns = statement
        .query_map([table], |row| {
            Ok(Column {
                name: row.get(0)?,
                declared_type: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
                not_null: row.get::<_, i64>(2)? != 0,
                primary_key: row.get::<_, i64>(3)? != 0,
                sample_values: Vec::new(),
                distinct_values: None,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(columns)
}

fn read_foreign_keys(conn: &Connection, table: &str) -> Result<Vec<ForeignKey>, SchemaError> {
    let mut statement =
        conn.prepare("SELECT \"from\", \"table\", \"to\" FROM pragma_foreign_key_list(?1)")?;
    let keys = statement
        .query_map([table], |row| {
            Ok(ForeignKey {
                from_column: row.get(0)?,
                to_table: row.get(1)?,
                to_column: row.get::<_, Option<String>>(2)?.unwrap_or_default(),
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(keys)
}

fn count_rows(conn: &Connection, table: &str) -> Option<u64> {
    let sql = format!("SELECT count(*) FROM {}", quote_identifier(table));
    conn.query_row(&sql, [], |row| row.get::<_, i64>(0))
        .ok()
        .map(|n| n.max(0) as u64)
}

pub(crate) fn is_textual(column: &Column) -> bool {
    let declared = column.declared_type.to_ascii_uppercase();
    declared.is_empty()
        || declared.contains("CHAR")
        || declared.contains("TEXT")
        || declared.contains("CLOB")
        || declared.contains("STRING")
}

fn fill_sample_values(conn: &Connection, table: &mut Table) {
    let quoted_table = quote_identifier(&table.name);
    for column in table
        .columns
        .iter_mut()
        .filter(|c| is_textual(c) && !c.primary_key)
    {
        let quoted = quote_identifier(&column.name);
        // Most frequent values first: they are the ones questions mention.
        let sql = format!(
            "SELECT {quoted} FROM {quoted_table} WHERE typeof({quoted}) = 'text' \
             AND length({quoted}) BETWEEN 1 AND {SAMPLE_MAX_CHARS} \
             GROUP BY {quoted} ORDER BY count(*) DESC, {quoted} LIMIT {SAMPLE_VALUES}"
        );
        let Ok(mut statement) = conn.prepare(&sql) else {
            continue;
        };
        let values: Vec<String> = statement
            .query_map([], |row| row.get::<_, String>(0))
            .map(|rows| rows.filter_map(Result::ok).collect())
            .unwrap_or_default();
        column.sample_values = values;
        let count_sql = format!(
            "SELECT count(*) FROM (SELECT DISTINCT {quoted} FROM {quoted_table} \
             WHERE typeof({quoted}) = 'text' AND length({quoted}) > 0 LIMIT {DISTINCT_COUNT_CAP})"
        );
        column.distinct_values = conn
            .query_row(&count_sql, [], |row| row.get::<_, i64>(0))
            .ok()
            .map(|n| n.max(0) as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chinook() -> Connection {
        Connection::open_with_flags(
            concat!(env!("CARGO_MANIFEST_DIR"), "/sample_dbs/chinook.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap()
    }

    #[test]
    fn introspects_chinook_tables_keys_and_counts() {
        let schema = introspect(&chinook(), "chinook.db").unwrap();
        assert_eq!(schema.tables.len(), 11);
        let track = schema.table("track").unwrap();
        assert_eq!(track.row_count, Some(3503));
        assert!(track.column("TrackId").unwrap().primary_key);
        assert!(
            track
                .foreign_keys
                .iter()
                .any(|fk| fk.from_column == "AlbumId" && fk.to_table == "Album")
        );
        let genre = schema.table("Genre").unwrap();
        assert_eq!(genre.column("Name").unwrap().sample_values.len(), 3);
    }

    #[test]
    fn sets_broken_objects_aside_and_reads_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "CREATE TABLE old(a); CREATE TABLE t(x TEXT); INSERT INTO t VALUES ('hi');
                 CREATE VIEW v AS SELECT a FROM old; CREATE VIEW w AS SELECT * FROM v;
                 CREATE VIEW fine AS SELECT x FROM t; DROP TABLE old;
                 PRAGMA writable_schema = ON;
                 INSERT INTO sqlite_master VALUES
                     ('table', 'vt', 'vt', 0, 'CREATE VIRTUAL TABLE vt USING nosuchmod(a)');",
            )
            .unwrap();
        drop(writer);
        let conn =
            Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let schema = introspect(&conn, "broken.db").unwrap();
        let names: Vec<&str> = schema.tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["t", "fine"]);
        let broken: Vec<String> = schema.broken.iter().map(ToString::to_string).collect();
        assert_eq!(
            broken,
            [
                "v (broken view: no such table: main.old)",
                "w (broken view: no such table: main.old)",
                "vt (broken table: no such module: nosuchmod)",
            ]
        );
        assert!(schema.ensure_has_tables("broken.db").is_ok());
    }

    #[test]
    fn a_database_without_tables_is_refused_by_name() {
        let conn = Connection::open_in_memory().unwrap();
        let schema = introspect(&conn, ":memory:").unwrap();
        assert_eq!(
            schema.ensure_has_tables("x.db").unwrap_err().to_string(),
            "the database 'x.db' has no tables"
        );
        conn.execute_batch(
            "CREATE TABLE old(a); CREATE VIEW v AS SELECT a FROM old; DROP TABLE old;",
        )
        .unwrap();
        let schema = introspect(&conn, ":memory:").unwrap();
        assert_eq!(
            schema.ensure_has_tables("x.db").unwrap_err().to_string(),
            "the database 'x.db' has no tables it can read; left out: \
             v (broken view: no such table: main.old)"
        );
    }

    #[test]
    fn fingerprint_changes_with_structure_only() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE a(x INTEGER PRIMARY KEY, y TEXT);")
            .unwrap();
        let before = introspect(&conn, ":memory:").unwrap().fingerprint();
        conn.execute_batch("INSERT INTO a(y) VALUES ('hello');")
            .unwrap();
        assert_eq!(introspect(&conn, ":memory:").unwrap().fingerprint(), before);
        conn.execute_batch("ALTER TABLE a ADD COLUMN z REAL;")
            .unwrap();
        assert_ne!(introspect(&conn, ":memory:").unwrap().fingerprint(), before);
    }
}
