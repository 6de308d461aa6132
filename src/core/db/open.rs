//! Opening a user database read-only, and saying truthfully why one cannot be opened.
//!
//! The file is checked before SQLite sees it (missing, a directory, a device, empty,
//! unreadable), SQLite's own refusals are told apart (locked by a writer, a hot journal,
//! corrupt, not SQLite at all), and the name is always read as a path, never as a URI.
//! A write-ahead-log database leaves no `-wal`/`-shm` files behind that this process
//! created: see [`WalSidecars`].

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::core::db::exec::ReadOnlyDb;
use crate::core::db::schema::{Schema, SchemaError};

/// How long a read waits for another program's write to finish before giving up.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database not found: '{0}'")]
    NotFound(String),
    #[error("'{0}' is a directory, not a database file")]
    Directory(String),
    #[error("'{path}' is not a regular file ({kind}), not a database file")]
    NotAFile { path: String, kind: &'static str },
    #[error("'{0}' is an empty file (0 bytes), not a SQLite database")]
    Empty(String),
    #[error("permission denied: cannot read '{0}'")]
    PermissionDenied(String),
    #[error("'{0}' is not a SQLite database")]
    NotADatabase(String),
    #[error("the database '{path}' is corrupt: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("another program is writing to the database '{0}'; try again")]
    Locked(String),
    #[error(
        "the database '{path}' has an unfinished write (hot journal '{journal}'); open it once \
         with sqlite3 or the program that wrote it to recover"
    )]
    HotJournal { path: String, journal: String },
    #[error("cannot open database '{path}': {reason}")]
    Open { path: String, reason: String },
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("unknown database scheme '{scheme}': {hint}")]
    UnknownScheme { scheme: String, hint: &'static str },
    #[error("invalid PostgreSQL URL '{url}': {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot reach the PostgreSQL server at '{server}' ({reason}); is it running there?")]
    Unreachable { server: String, reason: String },
    #[error(
        "the PostgreSQL server refused user '{user}' for '{url}': {reason}; check the password \
         (PGPASSWORD, ~/.pgpass, or the prompt in a terminal)"
    )]
    AuthFailed {
        url: String,
        user: String,
        reason: String,
    },
    #[error("no TLS connection to the PostgreSQL server at '{server}' (sslmode={mode}): {reason}")]
    Tls {
        server: String,
        mode: String,
        reason: String,
    },
    #[error("PostgreSQL refused '{url}': {reason}")]
    Postgres { url: String, reason: String },
    #[error(
        "'{0}' is not a database, CSV or Parquet file; give a SQLite or DuckDB database, a \
         .csv, .tsv or .parquet file, or a folder of them"
    )]
    UnknownFileType(String),
    #[error("the folder '{0}' is empty; put .csv, .tsv or .parquet files in it")]
    EmptyFolder(String),
    #[error("the folder '{path}' has no .csv, .tsv or .parquet files (found: {found})")]
    NoDataFiles { path: String, found: String },
    #[error("'{first}' and '{second}' would both be the table '{table}'; rename one of them")]
    TableNameClash {
        first: String,
        second: String,
        table: String,
    },
    #[error("cannot read '{path}': {reason}")]
    BadDataFile { path: String, reason: String },
    #[error("cannot open the DuckDB database '{path}': {reason}")]
    DuckDb { path: String, reason: String },
}

/// Opens `path` read-only with `query_only` on and the schema header read, so a file that
/// cannot be read fails here rather than at the first question.
pub(crate) fn open_read_only(
    path: &Path,
    busy_timeout: Duration,
) -> Result<(Connection, WalSidecars), DbError> {
    let shown = path.display().to_string();
    check_file(path, &shown)?;
    // Before SQLite opens the file, which is when it may create the sidecar files.
    let sidecars = WalSidecars::register(path);
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let classify = |error: rusqlite::Error| classify_sqlite(&error, path);
    let conn = Connection::open_with_flags(sqlite_path(path), flags).map_err(classify)?;
    conn.busy_timeout(busy_timeout).map_err(classify)?;
    conn.execute_batch("PRAGMA query_only = ON;")
        .map_err(classify)?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
        .map_err(classify)?;
    Ok((conn, sidecars))
}

impl ReadOnlyDb {
    /// The schema a question is asked against: refused when no table can be read (a model
    /// shown none invents them, attempt after attempt); tables and views SQLite cannot read
    /// are left out and logged.
    pub fn askable_schema(&self) -> Result<Schema, SchemaError> {
        let schema = self.introspect()?;
        schema.ensure_has_tables(&self.path().display().to_string())?;
        for broken in &schema.broken {
            tracing::warn!("left out of the prompt: {broken}");
        }
        Ok(schema)
    }
}

/// The name SQLite is given. This SQLite is built with URI filenames on, so a relative
/// name such as `file:chinook.db` would be parsed as a URI naming `chinook.db`; a name
/// that starts with `./` or `/` is always a plain path.
pub(crate) fn sqlite_path(path: &Path) -> PathBuf {
    match path.components().next() {
        Some(Component::Normal(_)) => Path::new(".").join(path),
        _ => path.to_path_buf(),
    }
}

/// What the file system says about `path` before SQLite is asked.
fn check_file(path: &Path, shown: &str) -> Result<(), DbError> {
    let metadata = std::fs::metadata(path).map_err(|error| io_error(&error, shown))?;
    if metadata.is_dir() {
        return Err(DbError::Directory(shown.to_string()));
    }
    if !metadata.is_file() {
        return Err(DbError::NotAFile {
            path: shown.to_string(),
            kind: special_file_kind(&metadata),
        });
    }
    if metadata.len() == 0 {
        return Err(DbError::Empty(shown.to_string()));
    }
    // Read access is checked by opening: mode bits do not tell (root, ACLs).
    std::fs::File::open(path).map_err(|error| io_error(&error, shown))?;
    Ok(())
}

fn io_error(error: &std::io::Error, shown: &str) -> DbError {
    match error.kind() {
        std::io::ErrorKind::NotFound => DbError::NotFound(shown.to_string()),
        std::io::ErrorKind::PermissionDenied => DbError::PermissionDenied(shown.to_string()),
        _ => DbError::Open {
            path: shown.to_string(),
            reason: error.to_string(),
        },
    }
}

#[cfg(unix)]
fn special_file_kind(metadata: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let kind = metadata.file_type();
    if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_fifo() {
        "a named pipe"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_file_kind(_: &std::fs::Metadata) -> &'static str {
    "a special file"
}

/// SQLite's refusal in words that say what happened and what to do.
fn classify_sqlite(error: &rusqlite::Error, path: &Path) -> DbError {
    let shown = path.display().to_string();
    let rusqlite::Error::SqliteFailure(failure, message) = error else {
        return DbError::Open {
            path: shown,
            reason: error.to_string(),
        };
    };
    if failure.extended_code == rusqlite::ffi::SQLITE_READONLY_ROLLBACK {
        return DbError::HotJournal {
            journal: sidecar(path, "-journal").display().to_string(),
            path: shown,
        };
    }
    match failure.code {
        ErrorCode::NotADatabase => DbError::NotADatabase(shown),
        ErrorCode::DatabaseCorrupt => DbError::Corrupt {
            path: shown,
            reason: message.clone().unwrap_or_else(|| error.to_string()),
        },
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => DbError::Locked(shown),
        ErrorCode::PermissionDenied => DbError::PermissionDenied(shown),
        _ => DbError::Open {
            path: shown,
            reason: error.to_string(),
        },
    }
}

/// `x.db` -> `x.db-wal` (SQLite appends the suffix to the name as given).
pub(crate) fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// How many open databases of this process share one file, and whether the first of them
/// found no `-wal`/`-shm` there (so those files, if they appear, are this process's doing).
struct Registered {
    open: usize,
    created_here: bool,
}

static REGISTRY: Mutex<Option<HashMap<PathBuf, Registered>>> = Mutex::new(None);

/// Removes the `-wal` and `-shm` files a read-only open of a WAL database created.
///
/// A read-only connection cannot take the exclusive lock SQLite needs before it deletes
/// them, so they stay behind. When the last database of this process on the file closes
/// and the files were not there before, a second connection (read-write, `query_only`,
/// reading nothing but the schema header) is opened and closed, which is when SQLite itself
/// deletes them: only if it gets the exclusive lock (no other connection, in any process,
/// has the database open) and only after checkpointing the log. The log is empty (checked
/// right before), so the checkpoint writes nothing to the database file.
pub(crate) struct WalSidecars {
    key: Option<PathBuf>,
    path: PathBuf,
}

impl WalSidecars {
    fn register(path: &Path) -> Self {
        let key = std::fs::canonicalize(path).ok();
        if let Some(key) = &key {
            let mut registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
            let entry = registry
                .get_or_insert_with(HashMap::new)
                .entry(key.clone())
                .or_insert_with(|| Registered {
                    open: 0,
                    created_here: !sidecar(path, "-wal").exists()
                        && !sidecar(path, "-shm").exists(),
                });
            entry.open += 1;
        }
        Self {
            key,
            path: path.to_path_buf(),
        }
    }

    /// Whether this was the last open database of the process on the file and the
    /// sidecar files did not exist when the first one opened.
    fn last_and_created_here(&self) -> bool {
        let Some(key) = &self.key else {
            return false;
        };
        let mut registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(map) = registry.as_mut() else {
            return false;
        };
        let Some(entry) = map.get_mut(key) else {
            return false;
        };
        entry.open = entry.open.saturating_sub(1);
        if entry.open > 0 {
            return false;
        }
        let created_here = entry.created_here;
        map.remove(key);
        created_here
    }

    fn remove_if_unused(&self) -> Result<(), rusqlite::Error> {
        let wal = sidecar(&self.path, "-wal");
        if !log_is_empty(&wal) || !is_wal_database(&self.path) {
            return Ok(());
        }
        // A rollback journal next to it would be rolled back by a read-write open.
        if sidecar(&self.path, "-journal").exists() {
            return Ok(());
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let closer = Connection::open_with_flags(sqlite_path(&self.path), flags)?;
        closer.execute_batch("PRAGMA query_only = ON;")?;
        closer.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
        if !log_is_empty(&wal) {
            // Another program wrote meanwhile; its log is its own to checkpoint.
            closer.set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                true,
            )?;
        }
        closer.close().map_err(|(_, error)| error)
    }
}

impl Drop for WalSidecars {
    fn drop(&mut self) {
        if !self.last_and_created_here() {
            return;
        }
        if let Err(error) = self.remove_if_unused() {
            tracing::debug!(%error, path = %self.path.display(), "left the -wal/-shm files");
        }
    }
}

fn log_is_empty(wal: &Path) -> bool {
    std::fs::metadata(wal).is_ok_and(|m| m.len() == 0)
}

/// Bytes 18 and 19 of the header are 2 in a write-ahead-log database.
fn is_wal_database(path: &Path) -> bool {
    use std::io::Read;
    let mut header = [0u8; 20];
    std::fs::File::open(path)
        .and_then(|mut file| file.read_exact(&mut header))
        .is_ok_and(|()| header[18] == 2 && header[19] == 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::db::exec::{ExecLimits, ReadOnlyDb};

    fn chinook() -> PathBuf {
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/sample_dbs/chinook.db"
        ))
    }

    fn open_error(path: &Path) -> String {
        match ReadOnlyDb::open_with_busy_timeout(path, Duration::from_millis(100)) {
            Ok(_) => panic!("{} opened", path.display()),
            Err(error) => error.to_string(),
        }
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A database in rollback-journal mode with one table of three rows.
    fn rollback_db(dir: &Path) -> PathBuf {
        let path = dir.join("x.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = DELETE; CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3);",
        )
        .unwrap();
        path
    }

    #[test]
    fn names_are_paths_never_uris() {
        assert_eq!(
            sqlite_path(Path::new("file:x.db")),
            Path::new("./file:x.db")
        );
        assert_eq!(sqlite_path(Path::new("a/b.db")), Path::new("./a/b.db"));
        assert_eq!(
            sqlite_path(Path::new("/t/file:x.db")),
            Path::new("/t/file:x.db")
        );
        assert_eq!(sqlite_path(Path::new("../x.db")), Path::new("../x.db"));
        // An absolute name holding URI syntax opens that very file.
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("file:x.db?mode=rwc");
        std::fs::copy(chinook(), &odd).unwrap();
        let db = ReadOnlyDb::open(&odd).unwrap();
        assert_eq!(db.schema().unwrap().tables.len(), 11);
    }

    #[test]
    fn says_what_a_path_is_when_it_is_not_a_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let shown = dir.path().display();
        assert_eq!(
            open_error(dir.path()),
            format!("'{shown}' is a directory, not a database file")
        );
        assert_eq!(
            open_error(Path::new("/dev/null")),
            "'/dev/null' is not a regular file (a character device), not a database file"
        );
        assert_eq!(
            open_error(&dir.path().join("missing.db")),
            format!("database not found: '{shown}/missing.db'")
        );
        let empty = dir.path().join("empty.db");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(
            open_error(&empty),
            format!("'{shown}/empty.db' is an empty file (0 bytes), not a SQLite database")
        );
    }

    #[test]
    fn says_permission_denied() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.db");
        std::fs::copy(chinook(), &path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
        // Root reads it anyway; then there is nothing to deny.
        if std::fs::File::open(&path).is_ok() {
            return;
        }
        assert_eq!(
            open_error(&path),
            format!("permission denied: cannot read '{}'", path.display())
        );
    }

    #[test]
    fn tells_not_sqlite_from_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.db");
        std::fs::write(&text, "this is not a database at all, just some text").unwrap();
        assert_eq!(
            open_error(&text),
            format!("'{}' is not a SQLite database", text.display())
        );
        // A valid header over garbage pages.
        let mut bytes = std::fs::read(chinook()).unwrap();
        for (i, byte) in bytes.iter_mut().enumerate().skip(100) {
            *byte = (i * 7 % 251) as u8;
        }
        let corrupt = dir.path().join("corrupt.db");
        std::fs::write(&corrupt, bytes).unwrap();
        assert_eq!(
            open_error(&corrupt),
            format!(
                "the database '{}' is corrupt: database disk image is malformed",
                corrupt.display()
            )
        );
    }

    #[test]
    fn a_writer_holding_the_lock_is_named_and_a_brief_write_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = rollback_db(dir.path());
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch("BEGIN EXCLUSIVE; UPDATE t SET x = x + 1;")
            .unwrap();
        assert_eq!(
            open_error(&path),
            format!(
                "another program is writing to the database '{}'; try again",
                path.display()
            )
        );
        // The write ends 300 ms later, within the busy timeout: the open waits for it.
        let committer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            writer.execute_batch("COMMIT;").unwrap();
        });
        let db = ReadOnlyDb::open(&path).unwrap();
        committer.join().unwrap();
        let sum = db
            .execute("SELECT sum(x) FROM t", ExecLimits::default())
            .unwrap();
        assert_eq!(sum.rows[0][0], crate::core::db::exec::Cell::Integer(9));
    }

    #[test]
    fn a_query_blocked_by_a_writer_is_not_sent_for_repair() {
        let dir = tempfile::tempdir().unwrap();
        let path = rollback_db(dir.path());
        let db = ReadOnlyDb::open_with_busy_timeout(&path, Duration::from_millis(100)).unwrap();
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch("BEGIN EXCLUSIVE; UPDATE t SET x = x + 1;")
            .unwrap();
        let error = db
            .execute("SELECT sum(x) FROM t", ExecLimits::default())
            .unwrap_err();
        assert_eq!(error, crate::core::db::exec::ExecError::Locked);
        assert!(!error.is_repairable());
        writer.execute_batch("ROLLBACK;").unwrap();
        assert!(
            db.execute("SELECT sum(x) FROM t", ExecLimits::default())
                .is_ok()
        );
    }

    #[test]
    fn a_hot_journal_is_named_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = rollback_db(dir.path());
        let writer = Connection::open(&path).unwrap();
        // A cache too small for the change makes SQLite sync the journal and write pages
        // into the database before the commit, the state a crash mid-write leaves.
        writer
            .execute_batch(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
                 INSERT INTO t SELECT printf('%0200d', i) FROM n;
                 PRAGMA cache_size = 2; BEGIN; UPDATE t SET x = x || 'changed';",
            )
            .unwrap();
        // What a crash mid-write leaves: the database and its journal, no lock held.
        let crashed = tempfile::tempdir().unwrap();
        let copy = crashed.path().join("x.db");
        std::fs::copy(&path, &copy).unwrap();
        std::fs::copy(sidecar(&path, "-journal"), sidecar(&copy, "-journal")).unwrap();
        drop(writer);
        let before = std::fs::read(&copy).unwrap();
        assert_eq!(
            open_error(&copy),
            format!(
                "the database '{}' has an unfinished write (hot journal '{}-journal'); open it \
                 once with sqlite3 or the program that wrote it to recover",
                copy.display(),
                copy.display()
            )
        );
        assert_eq!(
            std::fs::read(&copy).unwrap(),
            before,
            "the database is untouched"
        );
        assert_eq!(listing(crashed.path()), ["x.db", "x.db-journal"]);
    }

    /// A database in write-ahead-log mode whose writer has closed (and removed its files).
    fn wal_db(dir: &Path) -> PathBuf {
        let path = dir.join("w.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1), (2);",
        )
        .unwrap();
        drop(conn);
        assert_eq!(listing(dir), ["w.db"]);
        path
    }

    #[test]
    fn a_wal_database_is_left_as_it_was_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = wal_db(dir.path());
        let before = std::fs::read(&path).unwrap();
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        let first = ReadOnlyDb::open(&path).unwrap();
        let second = ReadOnlyDb::open(&path).unwrap();
        let count = "SELECT count(*) FROM t";
        first.execute(count, ExecLimits::default()).unwrap();
        second.execute(count, ExecLimits::default()).unwrap();
        assert_eq!(listing(dir.path()), ["w.db", "w.db-shm", "w.db-wal"]);
        drop(first);
        // The second connection still reads through them.
        assert_eq!(listing(dir.path()), ["w.db", "w.db-shm", "w.db-wal"]);
        second.execute(count, ExecLimits::default()).unwrap();
        drop(second);
        assert_eq!(listing(dir.path()), ["w.db"]);
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            modified
        );
    }

    #[test]
    fn wal_files_of_another_program_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = wal_db(dir.path());
        // A writer that is still open: its files are its own, before and after.
        let writer = Connection::open(&path).unwrap();
        writer.execute_batch("INSERT INTO t VALUES (3);").unwrap();
        let db = ReadOnlyDb::open(&path).unwrap();
        db.execute("SELECT count(*) FROM t", ExecLimits::default())
            .unwrap();
        drop(db);
        assert_eq!(listing(dir.path()), ["w.db", "w.db-shm", "w.db-wal"]);
        // Opened while nobody had them, then a writer arrives: still in use, so kept.
        drop(writer);
        assert_eq!(listing(dir.path()), ["w.db"]);
        let db = ReadOnlyDb::open(&path).unwrap();
        let writer = Connection::open(&path).unwrap();
        writer.execute_batch("INSERT INTO t VALUES (4);").unwrap();
        drop(db);
        assert_eq!(listing(dir.path()), ["w.db", "w.db-shm", "w.db-wal"]);
        let rows = writer
            .query_row("SELECT count(*) FROM t", [], |row| row.get::<_, i64>(0))
            .unwrap();
        assert_eq!(rows, 4);
    }
}
