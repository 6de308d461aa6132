//! What a file argument is, told by its first bytes before its name: a SQLite database
//! (always first, so a SQLite file works whatever it is called), a DuckDB database, a
//! Parquet file, a CSV or TSV file, or a folder of CSV/Parquet files, each a table named
//! after its file.
//!
//! Anything else is refused here in one line, before a database engine sees it. Files
//! whose contents no header identifies (a corrupt `.db`, an empty file) stay SQLite's, so
//! the messages about them are the ones SQLite files have always had.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::core::db::open::DbError;

/// The first 16 bytes of every SQLite database.
const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";
/// Bytes 8..12 of every DuckDB database file.
const DUCKDB_MAGIC: &[u8] = b"DUCK";
/// The first 4 bytes of every Parquet file.
const PARQUET_MAGIC: &[u8] = b"PAR1";
/// Extensions a SQLite file is commonly given; content no header identifies under one of
/// these names is left to SQLite, which says what is wrong with it.
const SQLITE_EXTENSIONS: &[&str] = &["db", "sqlite", "sqlite3", "db3", "s3db", "sl3"];
const DUCKDB_EXTENSIONS: &[&str] = &["duckdb", "ddb"];
/// How many unrecognised names a "no data files" message lists.
const LISTED_NAMES: usize = 3;

/// A DuckDB source: a database file, or CSV/Parquet files read in place through views.
#[derive(Debug, Clone)]
pub enum DuckTarget {
    Database(PathBuf),
    Files {
        /// The argument as given (the file, or the folder).
        shown: PathBuf,
        tables: Vec<DataFile>,
    },
}

impl DuckTarget {
    /// The file or folder the user named.
    pub fn path(&self) -> &Path {
        match self {
            Self::Database(path) => path,
            Self::Files { shown, .. } => shown,
        }
    }
}

/// One CSV or Parquet file and the table it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    pub table: String,
    /// Absolute, so the view reads it whatever the working directory.
    pub path: PathBuf,
    pub format: DataFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFormat {
    Csv,
    Tsv,
    Parquet,
}

/// What a path that is not a URL holds.
pub(crate) enum FileKind {
    Sqlite,
    DuckDb(DuckTarget),
}

/// Reads the path's kind from its header, its name, or (a folder) its files.
pub(crate) fn classify(path: &Path) -> Result<FileKind, DbError> {
    // Missing, unreadable and special files keep the messages the SQLite opener gives.
    let Ok(metadata) = std::fs::metadata(path) else {
        return Ok(FileKind::Sqlite);
    };
    if metadata.is_dir() {
        return folder(path).map(FileKind::DuckDb);
    }
    if !metadata.is_file() {
        return Ok(FileKind::Sqlite);
    }
    let Ok(head) = read_head(path) else {
        return Ok(FileKind::Sqlite);
    };
    if head.starts_with(SQLITE_MAGIC) {
        return Ok(FileKind::Sqlite);
    }
    if head.get(8..12) == Some(DUCKDB_MAGIC) {
        return Ok(FileKind::DuckDb(DuckTarget::Database(path.to_path_buf())));
    }
    let name = file_name(path);
    let format = data_format(&name).or_else(|| {
        head.starts_with(PARQUET_MAGIC)
            .then_some(DataFormat::Parquet)
    });
    if let Some(format) = format {
        if metadata.len() == 0 {
            return Err(DbError::BadDataFile {
                path: path.display().to_string(),
                reason: "the file is empty".into(),
            });
        }
        let file = DataFile {
            table: table_name(stem(&name)),
            path: absolute(path),
            format,
        };
        return Ok(FileKind::DuckDb(DuckTarget::Files {
            shown: path.to_path_buf(),
            tables: vec![file],
        }));
    }
    let extension = extension(&name);
    if DUCKDB_EXTENSIONS.contains(&extension.as_str()) {
        // DuckDB itself says what is wrong with a file that lacks its header.
        return Ok(FileKind::DuckDb(DuckTarget::Database(path.to_path_buf())));
    }
    if metadata.len() == 0
        || extension.is_empty()
        || SQLITE_EXTENSIONS.contains(&extension.as_str())
    {
        return Ok(FileKind::Sqlite);
    }
    Err(DbError::UnknownFileType(path.display().to_string()))
}

fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(16);
    std::fs::File::open(path)?.take(16).read_to_end(&mut head)?;
    Ok(head)
}

/// Each CSV/Parquet file directly in `dir` (hidden files and subfolders are skipped).
fn folder(dir: &Path) -> Result<DuckTarget, DbError> {
    let shown = dir.display().to_string();
    let entries = std::fs::read_dir(dir).map_err(|error| DbError::Open {
        path: shown.clone(),
        reason: error.to_string(),
    })?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(DbError::EmptyFolder(shown));
    }
    let mut tables: Vec<DataFile> = Vec::new();
    for name in &names {
        let path = dir.join(name);
        let Some(format) = data_format(name).filter(|_| path.is_file()) else {
            continue;
        };
        tables.push(DataFile {
            table: table_name(stem(name)),
            path: absolute(&path),
            format,
        });
    }
    if tables.is_empty() {
        let listed: Vec<&str> = names
            .iter()
            .take(LISTED_NAMES)
            .map(String::as_str)
            .collect();
        let more = names.len().saturating_sub(LISTED_NAMES);
        let found = if more > 0 {
            format!("{} and {more} more", listed.join(", "))
        } else {
            listed.join(", ")
        };
        return Err(DbError::NoDataFiles { path: shown, found });
    }
    refuse_clashes(&tables)?;
    Ok(DuckTarget::Files {
        shown: dir.to_path_buf(),
        tables,
    })
}

/// Two files that would make the same table (DuckDB compares names without case).
fn refuse_clashes(tables: &[DataFile]) -> Result<(), DbError> {
    let mut seen: HashMap<String, &DataFile> = HashMap::new();
    for file in tables {
        if let Some(first) = seen.insert(file.table.to_lowercase(), file) {
            return Err(DbError::TableNameClash {
                first: file_name(&first.path),
                second: file_name(&file.path),
                table: file.table.clone(),
            });
        }
    }
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The format a file name says, for the names read as data: `.csv`, `.tsv` (also
/// gzipped) and `.parquet`, in any case.
fn data_format(name: &str) -> Option<DataFormat> {
    let lower = name.to_lowercase();
    let plain = lower.strip_suffix(".gz").unwrap_or(&lower);
    if plain.ends_with(".csv") {
        Some(DataFormat::Csv)
    } else if plain.ends_with(".tsv") {
        Some(DataFormat::Tsv)
    } else if lower.ends_with(".parquet") {
        Some(DataFormat::Parquet)
    } else {
        None
    }
}

/// `sales.csv.gz` -> `sales`.
fn stem(name: &str) -> &str {
    let without_gz = if name.to_lowercase().ends_with(".gz") {
        &name[..name.len() - 3]
    } else {
        name
    };
    match without_gz.rfind('.') {
        Some(dot) if dot > 0 => &without_gz[..dot],
        _ => without_gz,
    }
}

fn extension(name: &str) -> String {
    match name.rfind('.') {
        Some(dot) if dot > 0 => name[dot + 1..].to_lowercase(),
        _ => String::new(),
    }
}

/// A file stem as a table name a model can write without quotes: letters, digits and
/// single underscores (`Sales 2024 (final)` -> `Sales_2024_final`), never starting with a
/// digit.
pub(crate) fn table_name(stem: &str) -> String {
    let mut name = String::with_capacity(stem.len());
    for c in stem.chars() {
        let c = if c.is_alphanumeric() { c } else { '_' };
        if !(c == '_' && (name.is_empty() || name.ends_with('_'))) {
            name.push(c);
        }
    }
    while name.ends_with('_') {
        name.pop();
    }
    if name.is_empty() {
        return "data".into();
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert_str(0, "t_");
    }
    name
}

fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stems_become_plain_table_names() {
        assert_eq!(table_name("Album"), "Album");
        assert_eq!(table_name("Sales 2024 (final)"), "Sales_2024_final");
        assert_eq!(table_name("2024-orders"), "t_2024_orders");
        assert_eq!(table_name("Café-Kunden"), "Café_Kunden");
        assert_eq!(table_name("---"), "data");
        assert_eq!(stem("sales.csv.gz"), "sales");
        assert_eq!(stem("a.b.parquet"), "a.b");
        assert_eq!(data_format("X.CSV"), Some(DataFormat::Csv));
        assert_eq!(data_format("x.tsv.gz"), Some(DataFormat::Tsv));
        assert_eq!(data_format("notes.txt"), None);
    }

    #[test]
    fn headers_decide_before_names() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = dir.path().join("data.csv");
        let conn = rusqlite::Connection::open(&sqlite).unwrap();
        conn.execute_batch("CREATE TABLE t(x)").unwrap();
        drop(conn);
        assert!(matches!(classify(&sqlite), Ok(FileKind::Sqlite)));
        let csv = dir.path().join("sales.csv");
        std::fs::write(&csv, "a,b\n1,2\n").unwrap();
        let Ok(FileKind::DuckDb(DuckTarget::Files { tables, .. })) = classify(&csv) else {
            panic!("not read as CSV");
        };
        assert_eq!(tables[0].table, "sales");
        let notes = dir.path().join("notes.txt");
        std::fs::write(&notes, "hello").unwrap();
        assert_eq!(
            classify(&notes).err().unwrap().to_string(),
            format!(
                "'{}' is not a database, CSV or Parquet file; give a SQLite or DuckDB \
                 database, a .csv, .tsv or .parquet file, or a folder of them",
                notes.display()
            )
        );
        let corrupt = dir.path().join("corrupt.db");
        std::fs::write(&corrupt, "not a database").unwrap();
        assert!(matches!(classify(&corrupt), Ok(FileKind::Sqlite)));
    }

    #[test]
    fn folders_list_their_data_files_and_refuse_clashes() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(classify(dir.path()), Err(DbError::EmptyFolder(_))));
        std::fs::write(dir.path().join("readme.md"), "x").unwrap();
        let message = classify(dir.path()).err().unwrap().to_string();
        assert!(
            message.ends_with("has no .csv, .tsv or .parquet files (found: readme.md)"),
            "{message}"
        );
        std::fs::write(dir.path().join("a-b.csv"), "x\n1\n").unwrap();
        std::fs::write(dir.path().join(".hidden.csv"), "x\n1\n").unwrap();
        let Ok(FileKind::DuckDb(DuckTarget::Files { tables, .. })) = classify(dir.path()) else {
            panic!("not a folder of tables");
        };
        assert_eq!(tables.len(), 1);
        assert_eq!(tables[0].table, "a_b");
        std::fs::write(dir.path().join("A_B.parquet"), "PAR1").unwrap();
        assert_eq!(
            classify(dir.path()).err().unwrap().to_string(),
            "'A_B.parquet' and 'a-b.csv' would both be the table 'a_b'; rename one of them"
        );
    }
}
