//! Chinook as DuckDB sources, built from `sample_dbs/chinook.db` in a temporary folder: a
//! folder of CSV files (one per table, as an export would leave them) and a DuckDB
//! database file with the same tables, types and declared keys.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::types::ValueRef;

use super::chinook_path;

/// One Chinook table as SQLite declares it.
struct SqliteTable {
    name: String,
    /// (name, declared type, not null)
    columns: Vec<(String, String, bool)>,
    primary_key: Vec<String>,
    /// (from column, to table, to column)
    foreign_keys: Vec<(String, String, String)>,
}

/// Writes `DIR/<Table>.csv` for each Chinook table (a header row, NULL as an empty field).
pub fn write_csv_folder(dir: &Path) {
    let sqlite = open_chinook();
    for table in sqlite_tables(&sqlite) {
        let mut writer = csv::Writer::from_path(dir.join(format!("{}.csv", table.name))).unwrap();
        let names: Vec<&str> = table.columns.iter().map(|c| c.0.as_str()).collect();
        writer.write_record(&names).unwrap();
        let mut statement = sqlite
            .prepare(&format!("SELECT * FROM \"{}\"", table.name))
            .unwrap();
        let mut rows = statement.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            let fields: Vec<String> = (0..names.len())
                .map(|i| match row.get_ref(i).unwrap() {
                    ValueRef::Null => String::new(),
                    ValueRef::Integer(v) => v.to_string(),
                    ValueRef::Real(v) => v.to_string(),
                    ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    ValueRef::Blob(b) => String::from_utf8_lossy(b).into_owned(),
                })
                .collect();
            writer.write_record(&fields).unwrap();
        }
        writer.flush().unwrap();
    }
}

/// Writes `path`, a DuckDB database with Chinook's tables, keys and rows (loaded from the
/// CSV folder `csv_dir`, written first by [`write_csv_folder`]). Tables are created so
/// that each one's referenced tables exist first.
pub fn write_duckdb_file(path: &Path, csv_dir: &Path) {
    let sqlite = open_chinook();
    let mut pending = sqlite_tables(&sqlite);
    let duck = duckdb::Connection::open(path).unwrap();
    let mut created: Vec<String> = Vec::new();
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .position(|t| {
                t.foreign_keys
                    .iter()
                    .all(|fk| fk.1 == t.name || created.contains(&fk.1))
            })
            .expect("no cycle of foreign keys");
        let table = pending.remove(ready);
        duck.execute_batch(&create_table(&table)).unwrap();
        let csv = csv_dir.join(format!("{}.csv", table.name));
        duck.execute_batch(&format!(
            "INSERT INTO \"{}\" SELECT * FROM read_csv('{}')",
            table.name,
            csv.display()
        ))
        .unwrap();
        created.push(table.name);
    }
    duck.execute_batch("CHECKPOINT").unwrap();
}

fn create_table(table: &SqliteTable) -> String {
    let mut parts: Vec<String> = table
        .columns
        .iter()
        .map(|(name, declared, not_null)| {
            let null = if *not_null { " NOT NULL" } else { "" };
            format!("\"{name}\" {}{null}", duck_type(declared))
        })
        .collect();
    let quoted = |names: &[String]| -> String {
        names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    parts.push(format!("PRIMARY KEY ({})", quoted(&table.primary_key)));
    // DuckDB keys one constraint per referenced table: group the columns.
    let mut by_target: BTreeMap<&str, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for (from, to_table, to) in &table.foreign_keys {
        // DuckDB does not support a table referencing itself.
        if *to_table == table.name {
            continue;
        }
        let entry = by_target.entry(to_table).or_default();
        entry.0.push(from.clone());
        entry.1.push(to.clone());
    }
    for (target, (from, to)) in by_target {
        parts.push(format!(
            "FOREIGN KEY ({}) REFERENCES \"{target}\" ({})",
            quoted(&from),
            quoted(&to)
        ));
    }
    format!("CREATE TABLE \"{}\" ({})", table.name, parts.join(", "))
}

fn duck_type(declared: &str) -> String {
    let upper = declared.to_ascii_uppercase();
    if upper.starts_with("NUMERIC") {
        upper.replace("NUMERIC", "DECIMAL")
    } else if upper.contains("CHAR") {
        "VARCHAR".into()
    } else if upper == "DATETIME" {
        "TIMESTAMP".into()
    } else {
        upper
    }
}

fn sqlite_tables(conn: &rusqlite::Connection) -> Vec<SqliteTable> {
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    names
        .into_iter()
        .map(|name| {
            let mut columns = Vec::new();
            let mut primary_key = Vec::new();
            let mut info = conn
                .prepare("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1) ORDER BY cid")
                .unwrap();
            let mut rows = info.query([&name]).unwrap();
            let mut keyed = Vec::new();
            while let Some(row) = rows.next().unwrap() {
                let column: String = row.get(0).unwrap();
                let pk: i64 = row.get(3).unwrap();
                if pk > 0 {
                    keyed.push((pk, column.clone()));
                }
                columns.push((column, row.get(1).unwrap(), row.get::<_, i64>(2).unwrap() != 0));
            }
            keyed.sort();
            primary_key.extend(keyed.into_iter().map(|(_, c)| c));
            let foreign_keys = conn
                .prepare("SELECT \"from\", \"table\", \"to\" FROM pragma_foreign_key_list(?1) ORDER BY id, seq")
                .unwrap()
                .query_map([&name], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            SqliteTable {
                name,
                columns,
                primary_key,
                foreign_keys,
            }
        })
        .collect()
}

/// Every file under `dir` with its bytes, to show that nothing was written or added.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let bytes = if path.is_file() {
                std::fs::read(&path).unwrap()
            } else {
                Vec::new()
            };
            (path, bytes)
        })
        .collect()
}

fn open_chinook() -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(
        chinook_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap()
}
