//! Read-only execution of one query with a time limit, a row cap and a byte budget, on
//! any backend: [`ReadOnlyDb`] is a SQLite file (the default), a PostgreSQL database
//! ([`super::postgres`], read-only by its own transaction rules) or a DuckDB source
//! ([`super::duck`]: a read-only DuckDB file, or views over CSV/Parquet files); the
//! pipeline sees one type.
//!
//! On SQLite, read-only is enforced by SQLite itself, three ways, so it holds even for SQL the guard
//! could not parse: the file is opened `SQLITE_OPEN_READ_ONLY`, `PRAGMA query_only` is on,
//! and an authorizer denies every write, schema change, ATTACH, PRAGMA other than the
//! read-only introspection ones, and extension loading. A prepared statement must also
//! report itself read-only before it is stepped.
//!
//! What a query may cost is bounded too (see [`limits`]): a watchdog interrupts it at its
//! deadline, SQLite refuses any value longer than the byte budget, and rows stop being
//! kept once the cells kept reach the budget (the rest are still counted, as past the row
//! cap).

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use rusqlite::Row;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::ValueRef;
use serde::{Deserialize, Serialize};

use crate::core::db::duck::{DuckCanceller, DuckDb};
use crate::core::db::guard::{GuardError, GuardVerdict, check_read_only_for};
use crate::core::db::limits::{self, Watchdog, human_size, install_limits};
pub use crate::core::db::open::DbError;
use crate::core::db::open::{BUSY_TIMEOUT, WalSidecars, open_read_only};
use crate::core::db::postgres::{PgCanceller, PgDb};
use crate::core::db::schema::{Schema, SchemaError, introspect};
use crate::core::db::source::{Source, SqlDialect};

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
pub(crate) const COUNT_BEYOND_CAP: u64 = 1_000_000;
/// SQLite calls the progress handler every this many virtual-machine instructions. The
/// watchdog thread is what enforces the deadline; this is the fallback when it could not
/// start, and the cheap check that makes a cancel land promptly.
const PROGRESS_INTERVAL: i32 = 1_000;
/// The result budget when none is configured (`pipeline.byte_limit_mib`).
pub const DEFAULT_BYTE_LIMIT: usize = 64 << 20;
/// Text longer than this many characters is shown cut, with its length.
const LONG_TEXT_CHARS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    #[error("the query ran longer than {0:?} and was stopped")]
    Timeout(Duration),
    #[error("the query was cancelled")]
    Cancelled,
    #[error("refused by the read-only database: {0}")]
    NotReadOnly(String),
    #[error(
        "a value in the result is larger than the {} limit; select a part of it \
         (substr, length) instead",
        human_size(*.0 as u64)
    )]
    ValueTooBig(usize),
    #[error(
        "the query needed more memory than SQLite's {} limit and was stopped",
        human_size(*.0 as u64)
    )]
    OutOfMemory(i64),
    /// Another program held a write lock past the busy timeout: no query can fix that.
    #[error("another program is writing to the database; try again")]
    Locked,
    #[error("{0}")]
    Sqlite(String),
}

impl ExecError {
    /// Whether showing this error to the model could lead to a better query.
    pub(crate) fn is_repairable(&self) -> bool {
        matches!(
            self,
            Self::Sqlite(_)
                | Self::NotReadOnly(_)
                | Self::Timeout(_)
                | Self::ValueTooBig(_)
                | Self::OutOfMemory(_)
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
            Cell::Blob(bytes) => write!(f, "<blob {}>", human_size(bytes.len() as u64)),
        }
    }
}

impl Cell {
    /// The cell as a result table shows it: text longer than `max_chars` cut to its start
    /// (with its length in characters when it is long: `… (12,345 chars)`), a blob as its
    /// size (`<blob 1.0 MiB>`). The full value stays in the cell for JSON and export.
    pub fn preview(&self, max_chars: usize) -> Cow<'_, str> {
        let Cell::Text(text) = self else {
            return Cow::Owned(self.to_string());
        };
        let max_chars = max_chars.max(1);
        if text.len() <= max_chars || text.chars().nth(max_chars).is_none() {
            return Cow::Borrowed(text);
        }
        let total = text.chars().count();
        let suffix = if total > LONG_TEXT_CHARS {
            format!("… ({} chars)", thousands(total as u64))
        } else {
            "…".to_string()
        };
        let keep = max_chars
            .saturating_sub(suffix.chars().count())
            .max(max_chars.min(8));
        let start: String = text.chars().take(keep).collect();
        Cow::Owned(format!("{start}{suffix}"))
    }

    /// Bytes this cell takes in memory once kept (what the result budget counts).
    fn kept_size(value: &ValueRef<'_>) -> usize {
        let payload = match value {
            ValueRef::Text(bytes) | ValueRef::Blob(bytes) => bytes.len(),
            _ => 0,
        };
        std::mem::size_of::<Cell>() + payload
    }

    /// As [`kept_size`](Self::kept_size), for a cell already read.
    fn size(&self) -> usize {
        let payload = match self {
            Cell::Text(text) => text.len(),
            Cell::Blob(bytes) => bytes.len(),
            _ => 0,
        };
        std::mem::size_of::<Cell>() + payload
    }
}

/// "12,345".
fn thousands(n: u64) -> String {
    group_thousands(&n.to_string())
}

/// "1234567.5" -> "1,234,567.5"; anything else unchanged.
pub fn group_thousands(number: &str) -> String {
    let (sign, unsigned) = match number.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", number),
    };
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    if !whole.bytes().all(|b| b.is_ascii_digit()) || whole.is_empty() {
        return number.to_string();
    }
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    match fraction {
        Some(fraction) => format!("{sign}{grouped}.{fraction}"),
        None => format!("{sign}{grouped}"),
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
    /// At most `row_limit` rows, and at most `byte_limit` bytes of them.
    pub rows: Vec<Vec<Cell>>,
    /// Every row the query produced, when it was counted to the end.
    pub total_rows: Option<u64>,
    /// Why rows stopped being kept, when they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut: Option<Cut>,
}

/// The limit that stopped a result from keeping more rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cut {
    RowLimit,
    ByteLimit,
}

impl QueryResult {
    pub fn truncated(&self) -> bool {
        self.cut.is_some() || self.total_rows != Some(self.rows.len() as u64)
    }

    /// "12 rows", "100 of 3503 rows", "100 rows (truncated)", "3 of 20 rows (byte limit)"
    /// or "3 rows (byte limit)".
    pub(crate) fn row_summary(&self) -> String {
        let kept = self.rows.len();
        match (self.total_rows, self.cut) {
            (Some(total), Some(Cut::ByteLimit)) => format!("{kept} of {total} rows (byte limit)"),
            (None, Some(Cut::ByteLimit)) => format!("{kept} rows (byte limit)"),
            (Some(total), _) if total == kept as u64 => {
                format!("{total} row{}", if total == 1 { "" } else { "s" })
            }
            (Some(total), _) => format!("{kept} of {total} rows"),
            (None, _) => format!("{kept} rows (truncated)"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExecLimits {
    pub row_limit: usize,
    pub timeout: Duration,
    /// Bytes of cells a result keeps; also the longest string or blob SQLite may build.
    pub byte_limit: usize,
}

impl Default for ExecLimits {
    fn default() -> Self {
        Self {
            row_limit: 1000,
            timeout: Duration::from_secs(10),
            byte_limit: DEFAULT_BYTE_LIMIT,
        }
    }
}

/// Cancels the query running on a [`ReadOnlyDb`] from another thread.
#[derive(Clone)]
pub enum QueryCanceller {
    Sqlite {
        cancelled: Arc<AtomicBool>,
        interrupt: Arc<rusqlite::InterruptHandle>,
    },
    Postgres(PgCanceller),
    DuckDb(DuckCanceller),
}

impl QueryCanceller {
    pub fn cancel(&self) {
        match self {
            Self::Sqlite {
                cancelled,
                interrupt,
            } => {
                cancelled.store(true, Ordering::SeqCst);
                interrupt.interrupt();
            }
            Self::Postgres(canceller) => canceller.cancel(),
            Self::DuckDb(canceller) => canceller.cancel(),
        }
    }
}

/// A user database opened so that nothing can modify it.
pub struct ReadOnlyDb {
    backend: Backend,
    /// The file or folder, or the PostgreSQL URL without its password.
    path: PathBuf,
    schema: std::sync::OnceLock<Schema>,
}

// One per open database, never moved in a hot path: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Backend {
    Sqlite(SqliteDb),
    Postgres(PgDb),
    DuckDb(DuckDb),
}

struct SqliteDb {
    /// Declared first so that its thread is joined before the connection closes.
    watchdog: Watchdog,
    conn: Connection,
    /// Milliseconds since the epoch after which the running query is interrupted; 0 = none.
    deadline_ms: Arc<AtomicU64>,
    cancelled: Arc<AtomicBool>,
    interrupt: Arc<rusqlite::InterruptHandle>,
    /// Declared after `conn`, so it runs once the connection is closed.
    _sidecars: WalSidecars,
}

impl ReadOnlyDb {
    /// Opens a SQLite file read-only, connects to the `postgres://` URL `path` holds, or
    /// opens a DuckDB file, CSV/Parquet file or folder of them read-only; a database that
    /// cannot be opened says why (see [`DbError`]).
    pub fn open(path: &Path) -> Result<Self, DbError> {
        match Source::parse(path)? {
            Source::Sqlite(path) => Self::open_with_busy_timeout(&path, BUSY_TIMEOUT),
            Source::Postgres(target) => Ok(Self {
                path: PathBuf::from(target.display()),
                backend: Backend::Postgres(PgDb::connect(&target)?),
                schema: std::sync::OnceLock::new(),
            }),
            Source::DuckDb(target) => Ok(Self {
                path: target.path().to_path_buf(),
                backend: Backend::DuckDb(DuckDb::open(&target)?),
                schema: std::sync::OnceLock::new(),
            }),
        }
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
        install_limits(&conn, DEFAULT_BYTE_LIMIT).map_err(open_error)?;
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
        let sqlite = SqliteDb {
            watchdog: Watchdog::start(conn.get_interrupt_handle()),
            conn,
            deadline_ms,
            cancelled,
            interrupt,
            _sidecars: sidecars,
        };
        Ok(Self {
            backend: Backend::Sqlite(sqlite),
            path: path.to_path_buf(),
            schema: std::sync::OnceLock::new(),
        })
    }

    /// The file, or the PostgreSQL URL without its password (what history records).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The SQLite connection, for the rewrites and retrieval steps that probe the data
    /// with SQLite's SQL; `None` on other backends, where those steps are skipped.
    pub fn connection(&self) -> Option<&Connection> {
        match &self.backend {
            Backend::Sqlite(sqlite) => Some(&sqlite.conn),
            Backend::Postgres(_) | Backend::DuckDb(_) => None,
        }
    }

    pub fn dialect(&self) -> SqlDialect {
        match &self.backend {
            Backend::Sqlite(_) => SqlDialect::Sqlite,
            Backend::Postgres(_) => SqlDialect::Postgres,
            Backend::DuckDb(_) => SqlDialect::DuckDb,
        }
    }

    /// Distinct text values of one column, between 2 and `max_chars` characters, at most
    /// `limit` (the value index). SQLite's are read through [`connection`](Self::connection).
    pub fn text_values(
        &self,
        table: &str,
        column: &str,
        max_chars: usize,
        limit: usize,
    ) -> Vec<String> {
        match &self.backend {
            Backend::Sqlite(_) => Vec::new(),
            Backend::Postgres(pg) => pg.text_values(table, column, max_chars, limit),
            Backend::DuckDb(duck) => duck.text_values(table, column, max_chars, limit),
        }
    }

    /// The guard in this database's dialect.
    pub fn check(&self, sql: &str) -> Result<GuardVerdict, GuardError> {
        check_read_only_for(sql, self.dialect())
    }

    pub fn canceller(&self) -> QueryCanceller {
        match &self.backend {
            Backend::Sqlite(sqlite) => QueryCanceller::Sqlite {
                cancelled: Arc::clone(&sqlite.cancelled),
                interrupt: Arc::clone(&sqlite.interrupt),
            },
            Backend::Postgres(pg) => QueryCanceller::Postgres(pg.canceller()),
            Backend::DuckDb(duck) => QueryCanceller::DuckDb(duck.canceller()),
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
        let schema = match &self.backend {
            Backend::Sqlite(sqlite) => introspect(&sqlite.conn, &self.path.display().to_string())?,
            Backend::Postgres(pg) => pg.introspect()?,
            Backend::DuckDb(duck) => duck.introspect()?,
        };
        Ok(self.schema.get_or_init(|| schema))
    }

    /// Runs one read-only query, keeping at most `limits.row_limit` rows and
    /// `limits.byte_limit` bytes of them; it is stopped at `limits.timeout`.
    pub fn execute(&self, sql: &str, limits: ExecLimits) -> Result<QueryResult, ExecError> {
        match &self.backend {
            Backend::Sqlite(sqlite) => sqlite.execute(sql, limits),
            Backend::Postgres(pg) => pg.execute(sql, limits),
            Backend::DuckDb(duck) => duck.execute(sql, limits),
        }
    }
}

impl SqliteDb {
    /// A watchdog stops the query at `limits.timeout`.
    fn execute(&self, sql: &str, limits: ExecLimits) -> Result<QueryResult, ExecError> {
        self.cancelled.store(false, Ordering::SeqCst);
        limits::set_value_limit(&self.conn, limits.byte_limit)
            .map_err(|error| self.classify(error, Instant::now(), limits))?;
        let timeout_ms = u64::try_from(limits.timeout.as_millis()).unwrap_or(u64::MAX);
        self.deadline_ms
            .store(now_ms().saturating_add(timeout_ms), Ordering::SeqCst);
        let started = Instant::now();
        let result = self
            .watchdog
            .run(limits.timeout, || self.execute_inner(sql, limits));
        self.deadline_ms.store(0, Ordering::SeqCst);
        result.map_err(|error| self.classify(error, started, limits))
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
        let mut rows_iter = statement.query([])?;
        let mut kept = Kept::new(columns.len(), limits);
        let mut seen: u64 = 0;
        while let Some(row) = rows_iter.next()? {
            seen += 1;
            if kept.cut.is_none() {
                kept.offer(row)?;
            } else if seen > (kept.rows.len() as u64).saturating_add(COUNT_BEYOND_CAP) {
                return Ok(kept.into_result(columns, None));
            }
        }
        Ok(kept.into_result(columns, Some(seen)))
    }

    fn classify(&self, error: rusqlite::Error, started: Instant, limits: ExecLimits) -> ExecError {
        let code = error.sqlite_error_code();
        if code == Some(rusqlite::ErrorCode::OperationInterrupted) {
            let cancelled = self.cancelled.load(Ordering::SeqCst);
            let timed_out = self.watchdog.fired();
            if cancelled || !(timed_out || started.elapsed() >= limits.timeout) {
                return ExecError::Cancelled;
            }
            return ExecError::Timeout(limits.timeout);
        }
        match code {
            Some(rusqlite::ErrorCode::TooBig) => return ExecError::ValueTooBig(limits.byte_limit),
            Some(rusqlite::ErrorCode::OutOfMemory) => {
                return ExecError::OutOfMemory(limits::heap_limit());
            }
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                return ExecError::Locked;
            }
            _ => {}
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

/// The rows a result keeps while it is read: up to the row cap and the byte budget.
pub(crate) struct Kept {
    width: usize,
    row_limit: usize,
    bytes_left: usize,
    pub(crate) rows: Vec<Vec<Cell>>,
    pub(crate) cut: Option<Cut>,
}

impl Kept {
    pub(crate) fn new(width: usize, limits: ExecLimits) -> Self {
        Self {
            width,
            row_limit: limits.row_limit,
            bytes_left: limits.byte_limit,
            rows: Vec::new(),
            cut: None,
        }
    }

    /// Keeps `row` if it fits under both limits; otherwise records which one it broke and
    /// keeps nothing more. The size is measured before anything is copied.
    fn offer(&mut self, row: &Row<'_>) -> Result<(), rusqlite::Error> {
        if self.rows.len() >= self.row_limit {
            self.cut = Some(Cut::RowLimit);
            return Ok(());
        }
        let mut size = std::mem::size_of::<Vec<Cell>>();
        for index in 0..self.width {
            size = size.saturating_add(Cell::kept_size(&row.get_ref(index)?));
            if size > self.bytes_left {
                self.cut = Some(Cut::ByteLimit);
                return Ok(());
            }
        }
        self.bytes_left -= size;
        let mut cells = Vec::with_capacity(self.width);
        for index in 0..self.width {
            cells.push(Cell::from(row.get_ref(index)?));
        }
        self.rows.push(cells);
        Ok(())
    }

    /// As [`offer`](Self::offer), for a row whose cells were read already (PostgreSQL sends
    /// each row whole).
    pub(crate) fn offer_cells(&mut self, cells: Vec<Cell>) {
        if self.rows.len() >= self.row_limit {
            self.cut = Some(Cut::RowLimit);
            return;
        }
        let size = cells
            .iter()
            .fold(std::mem::size_of::<Vec<Cell>>(), |size, cell| {
                size.saturating_add(cell.size())
            });
        if size > self.bytes_left {
            self.cut = Some(Cut::ByteLimit);
            return;
        }
        self.bytes_left -= size;
        self.rows.push(cells);
    }

    pub(crate) fn into_result(self, columns: Vec<String>, total_rows: Option<u64>) -> QueryResult {
        QueryResult {
            columns,
            rows: self.rows,
            total_rows,
            cut: self.cut,
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
            ..ExecLimits::default()
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
    fn stops_keeping_rows_at_the_byte_limit_and_says_so() {
        let db = chinook();
        let limits = ExecLimits {
            byte_limit: 10_000,
            ..ExecLimits::default()
        };
        let result = db
            .execute("SELECT randomblob(3000) FROM Track", limits)
            .unwrap();
        assert_eq!(result.rows.len(), 3);
        assert_eq!(result.total_rows, Some(3503));
        assert_eq!(result.cut, Some(Cut::ByteLimit));
        assert!(result.truncated());
        assert_eq!(result.row_summary(), "3 of 3503 rows (byte limit)");
        let uncounted = QueryResult {
            total_rows: None,
            ..result
        };
        assert_eq!(uncounted.row_summary(), "3 rows (byte limit)");
        let capped = db
            .execute("SELECT TrackId FROM Track", ExecLimits::default())
            .unwrap();
        assert_eq!(capped.cut, Some(Cut::RowLimit));
        assert_eq!(capped.row_summary(), "1000 of 3503 rows");
    }

    #[test]
    fn a_gigabyte_value_is_refused_by_sqlite_not_allocated() {
        let db = chinook();
        // Genre has 25 rows; before the length limit this allocated 1 GB per row.
        let error = db
            .execute(
                "SELECT zeroblob(1000000000) FROM Genre",
                ExecLimits::default(),
            )
            .unwrap_err();
        assert_eq!(error, ExecError::ValueTooBig(DEFAULT_BYTE_LIMIT));
        assert_eq!(
            error.to_string(),
            "a value in the result is larger than the 64.0 MiB limit; select a part of it \
             (substr, length) instead"
        );
        assert!(error.is_repairable());
        // Values under the limit are kept until the budget is spent.
        let result = db
            .execute(
                "SELECT zeroblob(40000000) FROM Genre",
                ExecLimits::default(),
            )
            .unwrap();
        assert_eq!(result.row_summary(), "1 of 25 rows (byte limit)");
        // A smaller budget lowers what SQLite accepts on the same connection.
        let small = ExecLimits {
            byte_limit: 1 << 20,
            ..ExecLimits::default()
        };
        assert_eq!(
            db.execute("SELECT zeroblob(2000000)", small),
            Err(ExecError::ValueTooBig(1 << 20))
        );
        assert!(
            db.execute("SELECT zeroblob(2000000)", ExecLimits::default())
                .is_ok()
        );
    }

    #[test]
    fn stops_a_slow_per_row_query_within_a_second_of_its_limit() {
        let db = chinook();
        let limits = ExecLimits {
            timeout: Duration::from_millis(500),
            ..ExecLimits::default()
        };
        // A few virtual-machine operations per row, each row tens of milliseconds: the
        // progress handler alone saw its first check only after the query had finished.
        let slow = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 100) \
                    SELECT length(randomblob(20000000)) FROM n";
        let started = Instant::now();
        assert_eq!(
            db.execute(slow, limits),
            Err(ExecError::Timeout(limits.timeout))
        );
        let elapsed = started.elapsed();
        assert!(
            elapsed < limits.timeout + Duration::from_secs(1),
            "{elapsed:?}"
        );
        // The interrupt does not carry over to the next query.
        assert_eq!(db.execute("SELECT 1", limits).unwrap().rows.len(), 1);
    }

    #[test]
    fn previews_cut_long_text_and_size_blobs() {
        assert_eq!(Cell::Text("short".into()).preview(40), "short");
        assert!(matches!(
            Cell::Text("short".into()).preview(40),
            Cow::Borrowed(_)
        ));
        let medium = Cell::Text("abcdefghij".repeat(5));
        assert_eq!(
            medium.preview(20),
            format!("{}…", &"abcdefghij".repeat(2)[..19])
        );
        let long = Cell::Text("é".repeat(1234));
        assert_eq!(
            long.preview(40),
            format!("{}… (1,234 chars)", "é".repeat(25))
        );
        assert_eq!(Cell::Blob(vec![0; 1536]).preview(40), "<blob 1.5 KiB>");
        assert_eq!(Cell::Blob(vec![0; 16]).to_string(), "<blob 16 B>");
        assert_eq!(Cell::Integer(7).preview(1), "7");
        assert_eq!(thousands(1_234_567), "1,234,567");
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
