//! Read-only execution of one query with a time limit and a row cap.
//!
//! Read-only is enforced by SQLite itself, three ways, so it holds even for SQL the guard
//! could not parse: the file is opened `SQLITE_OPEN_READ_ONLY`, `PRAGMA query_only` is on,
//! and an authorizer denies every write, schema change, ATTACH, PRAGMA other than the
//! read-only introspection ones, and extension loading. A prepared statement must also
//! report itself read-only before it is stepped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::ValueRef;
use serde::{Deserialize, Serialize};

pub use crate::core::db::open::DbError;
use crate::core::db::open::{BUSY_TIMEOUT, WalSidecars, open_read_only};
use crate::core::db::schema::{Schema, SchemaError, introspect};

/// Pragmas that only read the schema; everything else is denied.
const READ_ONLY_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "table_list",
    "foreign_key_list",
    "index_list",
    "index_info",
    "index_xinfo",
];
/// How many rows past the cap are counted to report "N of M" before giving up on M.
const COUNT_BEYOND_CAP: u64 = 1_000_000;
/// SQLite calls the progress handler every this many virtual-machine instructions.
const PROGRESS_INTERVAL: i32 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    #[error("the query ran longer than {0:?} and was stopped")]
    Timeout(Duration),
    #[error("the query was cancelled")]
    Cancelled,
    #[error("refused by the read-only database: {0}")]
    NotReadOnly(String),
    #[error("{0}")]
    Sqlite(String),
}

impl ExecError {
    /// Whether showing this error to the model could lead to a better query.
    pub(crate) fn is_repairable(&self) -> bool {
        matches!(
            self,
            Self::Sqlite(_) | Self::NotReadOnly(_) | Self::Timeout(_)
        )
    }
}

/// One result cell, keeping SQLite's storage class (the evaluator compares by it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Cell {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cell::Null => f.write_str("NULL"),
            Cell::Integer(value) => write!(f, "{value}"),
            Cell::Real(value) => write!(f, "{value}"),
            Cell::Text(value) => f.write_str(value),
            Cell::Blob(bytes) => write!(f, "<{} bytes>", bytes.len()),
        }
    }
}

impl From<ValueRef<'_>> for Cell {
    fn from(value: ValueRef<'_>) -> Self {
        match value {
            ValueRef::Null => Cell::Null,
            ValueRef::Integer(v) => Cell::Integer(v),
            ValueRef::Real(v) => Cell::Real(v),
            ValueRef::Text(bytes) => Cell::Text(String::from_utf8_lossy(bytes).into_owned()),
            ValueRef::Blob(bytes) => Cell::Blob(bytes.to_vec()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    pub columns: Vec<String>,
    /// At most `row_limit` rows.
    pub rows: Vec<Vec<Cell>>,
    /// Every row the query produced, when it was counted to the end.
    pub total_rows: Option<u64>,
}

impl QueryResult {
    pub fn truncated(&self) -> bool {
        self.total_rows != Some(self.rows.len() as u64)
    }

    /// "12 rows", "100 of 3503 rows" or "100 rows (truncated)".
    pub(crate) fn row_summary(&self) -> String {
        match self.total_rows {
            Some(total) if total == self.rows.len() as u64 => {
                format!("{total} row{}", if total == 1 { "" } else { "s" })
            }
            Some(total) => format!("{} of {total} rows", self.rows.len()),
            None => format!("{} rows (truncated)", self.rows.len()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExecLimits {
    pub row_limit: usize,
    pub timeout: Duration,
}

impl Default for ExecLimits {
    fn default() -> Self {
        Self {
            row_limit: 1000,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Cancels the query running on a [`ReadOnlyDb`] from another thread.
#[derive(Clone)]
pub(crate) struct QueryCanceller {
    cancelled: Arc<AtomicBool>,
    interrupt: Arc<rusqlite::InterruptHandle>,
}

impl QueryCanceller {
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.interrupt.interrupt();
    }
}

/// A user database opened so that nothing can modify it.
pub struct ReadOnlyDb {
    conn: Connection,
    path: PathBuf,
    /// Milliseconds since the epoch after which the running query is interrupted; 0 = none.
    deadline_ms: Arc<AtomicU64>,
    cancelled: Arc<AtomicBool>,
    interrupt: Arc<rusqlite::InterruptHandle>,
    schema: std::sync::OnceLock<Schema>,
    /// Declared after `conn`, so it runs once the connection is closed.
    _sidecars: WalSidecars,
}

impl ReadOnlyDb {
    /// Opens `path` read-only; a file that cannot be read says why (see [`DbError`]).
    pub fn open(path: &Path) -> Result<Self, DbError> {
        Self::open_with_busy_timeout(path, BUSY_TIMEOUT)
    }

    pub(crate) fn open_with_busy_timeout(
        path: &Path,
        busy_timeout: Duration,
    ) -> Result<Self, DbError> {
        let shown = path.display().to_string();
        let open_error = |e: rusqlite::Error| DbError::Open {
            path: shown.clone(),
            reason: e.to_string(),
        };
        let (mut conn, sidecars) = open_read_only(path, busy_timeout)?;
        conn.authorizer(Some(authorize_read_only))
            .map_err(open_error)?;
        let deadline_ms = Arc::new(AtomicU64::new(0));
        let cancelled = Arc::new(AtomicBool::new(false));
        let handler_deadline = Arc::clone(&deadline_ms);
        let handler_cancelled = Arc::clone(&cancelled);
        conn.progress_handler(
            PROGRESS_INTERVAL,
            Some(move || {
                let deadline = handler_deadline.load(Ordering::Relaxed);
                handler_cancelled.load(Ordering::Relaxed) || (deadline != 0 && now_ms() > deadline)
            }),
        )
        .map_err(open_error)?;
        let interrupt = Arc::new(conn.get_interrupt_handle());
        Ok(Self {
            conn,
            path: path.to_path_buf(),
            deadline_ms,
            cancelled,
            interrupt,
            schema: std::sync::OnceLock::new(),
            _sidecars: sidecars,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub(crate) fn canceller(&self) -> QueryCanceller {
        QueryCanceller {
            cancelled: Arc::clone(&self.cancelled),
            interrupt: Arc::clone(&self.interrupt),
        }
    }

    pub fn introspect(&self) -> Result<Schema, SchemaError> {
        self.schema().cloned()
    }

    /// The schema, read once per connection (the database is opened read-only, so it
    /// cannot change under us except by another process, which a restart picks up).
    pub fn schema(&self) -> Result<&Schema, SchemaError> {
        if let Some(schema) = self.schema.get() {
            return Ok(schema);
        }
        let schema = introspect(&self.conn, &self.path.display().to_string())?;
        Ok(self.schema.get_or_init(|| schema))
    }

    /// Runs one read-only query, keeping at most `limits.row_limit` rows.
    pub fn execute(&self, sql: &str, limits: ExecLimits) -> Result<QueryResult, ExecError> {
        self.cancelled.store(false, Ordering::SeqCst);
        let timeout_ms = u64::try_from(limits.timeout.as_millis()).unwrap_or(u64::MAX);
        self.deadline_ms
            .store(now_ms().saturating_add(timeout_ms), Ordering::SeqCst);
        let started = Instant::now();
        let result = self.execute_inner(sql, limits);
        self.deadline_ms.store(0, Ordering::SeqCst);
        result.map_err(|error| self.classify(error, started, limits.timeout))
    }

    fn execute_inner(&self, sql: &str, limits: ExecLimits) -> Result<QueryResult, rusqlite::Error> {
        let mut statement = self.conn.prepare(sql)?;
        if !statement.readonly() {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_AUTH),
                Some("statement is not read-only".into()),
            ));
        }
        let columns: Vec<String> = statement.column_names().map(String::from).collect();
        let width = columns.len();
        let mut rows_iter = statement.query([])?;
        let mut rows = Vec::new();
        let mut seen: u64 = 0;
        let cap = limits.row_limit as u64;
        while let Some(row) = rows_iter.next()? {
            seen += 1;
            if seen <= cap {
                let mut cells = Vec::with_capacity(width);
                for index in 0..width {
                    cells.push(Cell::from(row.get_ref(index)?));
                }
                rows.push(cells);
            } else if seen > cap + COUNT_BEYOND_CAP {
                return Ok(QueryResult {
                    columns,
                    rows,
                    total_rows: None,
                });
            }
        }
        Ok(QueryResult {
            columns,
            rows,
            total_rows: Some(seen),
        })
    }

    fn classify(&self, error: rusqlite::Error, started: Instant, timeout: Duration) -> ExecError {
        let code = error.sqlite_error_code();
        if code == Some(rusqlite::ErrorCode::OperationInterrupted) {
            if self.cancelled.load(Ordering::SeqCst) || started.elapsed() < timeout {
                return ExecError::Cancelled;
            }
            return ExecError::Timeout(timeout);
        }
        let message = match &error {
            rusqlite::Error::SqliteFailure(_, Some(message)) => message.clone(),
            rusqlite::Error::MultipleStatement => "only one statement may run at a time".into(),
            other => other.to_string(),
        };
        match code {
            Some(rusqlite::ErrorCode::AuthorizationForStatementDenied)
            | Some(rusqlite::ErrorCode::ReadOnly) => ExecError::NotReadOnly(message),
            _ if matches!(error, rusqlite::Error::MultipleStatement) => {
                ExecError::NotReadOnly(message)
            }
            // The authorizer's denials surface as a generic error with this wording.
            _ if message.starts_with("not authorized") => ExecError::NotReadOnly(message),
            _ => ExecError::Sqlite(message),
        }
    }
}

fn authorize_read_only(context: AuthContext<'_>) -> Authorization {
    match context.action {
        AuthAction::Select | AuthAction::Read { .. } | AuthAction::Recursive => {
            Authorization::Allow
        }
        AuthAction::Function { function_name } => {
            if function_name.eq_ignore_ascii_case("load_extension") {
                Authorization::Deny
            } else {
                Authorization::Allow
            }
        }
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } => {
            let known = READ_ONLY_PRAGMAS
                .iter()
                .any(|p| p.eq_ignore_ascii_case(pragma_name));
            // Introspection pragmas take a table name as their argument, never a new value.
            if known && pragma_value.is_none_or(|v| !v.contains('=')) {
                Authorization::Allow
            } else {
                Authorization::Deny
            }
        }
        _ => Authorization::Deny,
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chinook() -> ReadOnlyDb {
        ReadOnlyDb::open(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/sample_dbs/chinook.db"
        )))
        .unwrap()
    }

    #[test]
    fn caps_rows_and_reports_total() {
        let db = chinook();
        let limits = ExecLimits {
            row_limit: 10,
            ..ExecLimits::default()
        };
        let result = db
            .execute("SELECT TrackId, Name FROM Track", limits)
            .unwrap();
        assert_eq!(result.rows.len(), 10);
        assert_eq!(result.total_rows, Some(3503));
        assert_eq!(result.row_summary(), "10 of 3503 rows");
        assert_eq!(result.columns, ["TrackId", "Name"]);
        assert_eq!(result.rows[0][0], Cell::Integer(1));
    }

    #[test]
    fn sqlite_itself_refuses_writes() {
        let db = chinook();
        for sql in [
            "DELETE FROM Album",
            "INSERT INTO Genre(Name) VALUES ('x')",
            "DROP TABLE Album",
            "ATTACH DATABASE ':memory:' AS other",
            "PRAGMA query_only = 0",
            "SELECT load_extension('x')",
            "CREATE TEMP TABLE t(x)",
        ] {
            let error = db.execute(sql, ExecLimits::default()).unwrap_err();
            assert!(
                matches!(error, ExecError::NotReadOnly(_)),
                "{sql}: {error:?}"
            );
        }
        assert!(matches!(
            db.execute("SELECT 1; SELECT 2", ExecLimits::default()),
            Err(ExecError::NotReadOnly(_))
        ));
    }

    #[test]
    fn stops_a_query_at_its_time_limit() {
        let db = chinook();
        let limits = ExecLimits {
            row_limit: 10,
            timeout: Duration::from_millis(200),
        };
        let slow = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) \
                    SELECT count(*) FROM n";
        assert_eq!(
            db.execute(slow, limits),
            Err(ExecError::Timeout(limits.timeout))
        );
        // The connection stays usable afterwards.
        assert!(db.execute("SELECT 1", limits).is_ok());
    }

    #[test]
    fn reports_missing_and_corrupt_files() {
        let missing = ReadOnlyDb::open(Path::new("/nonexistent/x.db"))
            .err()
            .unwrap();
        assert_eq!(
            missing.to_string(),
            "database not found: '/nonexistent/x.db'"
        );
        let dir = tempfile::tempdir().unwrap();
        let bogus = dir.path().join("bogus.db");
        std::fs::write(&bogus, b"this is not a database at all, just some text").unwrap();
        let error = ReadOnlyDb::open(&bogus).err().unwrap().to_string();
        assert!(error.contains("is not a SQLite database"), "{error}");
    }
}
