//! A DuckDB source, read-only in depth: a DuckDB database file, or CSV/Parquet files read
//! in place through views (types inferred by DuckDB, nothing copied), behind the same
//! [`super::exec::ReadOnlyDb`] as SQLite and PostgreSQL.
//!
//! The views live in a small catalog database in a private temporary folder, written once
//! and then opened like a user's DuckDB file: `READ_ONLY`, so DuckDB refuses every write.
//! Every session is then locked down: external access off (only the user's own files,
//! by exact path, stay readable, through the views), extensions neither installed nor
//! loaded, DuckDB's spill files in the private folder, and the configuration locked so no
//! query can undo any of it. The guard ([`super::guard`]) refuses writes, side effects
//! and file-reading functions before this; these hold when it is bypassed.

pub mod files;

mod cells;
mod introspect;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use duckdb::{AccessMode, Config, Connection};

use crate::core::db::exec::{COUNT_BEYOND_CAP, ExecError, ExecLimits, Kept, QueryResult};
use crate::core::db::limits::Watchdog;
use crate::core::db::open::DbError;
use crate::core::db::schema::{Schema, SchemaError};
use files::{DataFile, DataFormat, DuckTarget};

/// The most memory DuckDB may use before it spills to the private folder.
const MEMORY_LIMIT: &str = "2GB";
/// The longest reason a bad data file is refused with.
const REASON_CHARS: usize = 200;
/// How long one introspection query (a row count, a column's samples) may take.
const INTROSPECTION_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct DuckDb {
    /// Declared first so that its thread is joined before the connection closes.
    watchdog: Watchdog,
    conn: Connection,
    cancelled: Arc<AtomicBool>,
    interrupt: Arc<duckdb::InterruptHandle>,
    /// Each file's table and its rows, counted when the file was checked at open.
    file_rows: HashMap<String, u64>,
    /// Each table's name as shown (`Album`, `sales.orders`) -> as SQL writes it.
    quoted_names: Mutex<HashMap<String, String>>,
    /// The view catalog and spill files; declared last, so removed after the connection
    /// closes.
    _scratch: tempfile::TempDir,
}

/// Cancels the query running on a [`DuckDb`] from another thread.
#[derive(Clone)]
pub struct DuckCanceller {
    cancelled: Arc<AtomicBool>,
    interrupt: Arc<duckdb::InterruptHandle>,
}

impl DuckCanceller {
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.interrupt.interrupt();
    }
}

impl DuckDb {
    pub(crate) fn open(target: &DuckTarget) -> Result<Self, DbError> {
        let shown = target.path().display().to_string();
        let scratch = tempfile::Builder::new()
            .prefix("nano-analyst-duckdb-")
            .tempdir()
            .map_err(|error| DbError::Open {
                path: shown.clone(),
                reason: format!("cannot create a temporary folder: {error}"),
            })?;
        let (conn, file_rows) = match target {
            DuckTarget::Database(path) => (open_database(path, scratch.path())?, HashMap::new()),
            DuckTarget::Files { tables, .. } => open_files(tables, scratch.path())?,
        };
        let interrupt = conn.interrupt_handle();
        Ok(Self {
            watchdog: Watchdog::start(Arc::clone(&interrupt)),
            conn,
            cancelled: Arc::new(AtomicBool::new(false)),
            interrupt,
            file_rows,
            quoted_names: Mutex::new(HashMap::new()),
            _scratch: scratch,
        })
    }

    pub(crate) fn canceller(&self) -> DuckCanceller {
        DuckCanceller {
            cancelled: Arc::clone(&self.cancelled),
            interrupt: Arc::clone(&self.interrupt),
        }
    }

    /// Runs one query, stopped at `limits.timeout`; rows stream from DuckDB, so a result
    /// past the caps is counted, never held.
    pub(crate) fn execute(&self, sql: &str, limits: ExecLimits) -> Result<QueryResult, ExecError> {
        self.cancelled.store(false, Ordering::SeqCst);
        let sql = single_statement(sql)?;
        // Only a query parses as a subquery, so DuckDB itself refuses COPY, ATTACH, SET and
        // every other statement here, whatever the guard let through. (COPY TO the user's
        // own file would otherwise pass: the file must stay readable, and DuckDB's file
        // permissions do not tell reading from writing.)
        let wrapped = format!("SELECT * FROM (\n{sql}\n) AS nano_analyst_query");
        let started = Instant::now();
        let result = self
            .watchdog
            .run(limits.timeout, || self.run(&wrapped, limits));
        match result {
            Ok(outcome) => outcome,
            Err(error) => Err(self.classify(&error, started, limits)),
        }
    }

    /// The result; the inner error is a refusal found while reading it (a value too big).
    fn run(
        &self,
        sql: &str,
        limits: ExecLimits,
    ) -> Result<Result<QueryResult, ExecError>, duckdb::Error> {
        let mut statement = self.conn.prepare(sql)?;
        let stream = statement.stream_arrow([])?;
        let columns: Vec<String> = stream
            .get_schema()
            .fields()
            .iter()
            .map(|field| field.name().clone())
            .collect();
        let mut kept = Kept::new(columns.len(), limits);
        let mut seen: u64 = 0;
        for batch in stream {
            let batch = batch?;
            for index in 0..batch.num_rows() {
                if kept.cut.is_some() {
                    seen += (batch.num_rows() - index) as u64;
                    break;
                }
                seen += 1;
                match cells::row(&batch, index, limits.byte_limit) {
                    Ok(cells) => kept.offer_cells(cells),
                    Err(refused) => return Ok(Err(refused)),
                }
            }
            if seen > (kept.rows.len() as u64).saturating_add(COUNT_BEYOND_CAP) {
                return Ok(Ok(kept.into_result(columns, None)));
            }
        }
        Ok(Ok(kept.into_result(columns, Some(seen))))
    }

    fn classify(&self, error: &duckdb::Error, started: Instant, limits: ExecLimits) -> ExecError {
        let message = duck_message(error);
        if message.contains("Interrupted") {
            let cancelled = self.cancelled.load(Ordering::SeqCst);
            let timed_out = self.watchdog.fired() || started.elapsed() >= limits.timeout;
            return if cancelled || !timed_out {
                ExecError::Cancelled
            } else {
                ExecError::Timeout(limits.timeout)
            };
        }
        if is_refusal(&message) {
            return ExecError::NotReadOnly(message);
        }
        ExecError::Sqlite(message)
    }

    pub(crate) fn introspect(&self) -> Result<Schema, SchemaError> {
        let (schema, quoted) = introspect::read_schema(self)?;
        *self
            .quoted_names
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = quoted;
        Ok(schema)
    }

    /// Distinct text values of one column of a table introspection read (the value index).
    pub(crate) fn text_values(
        &self,
        table: &str,
        column: &str,
        max_chars: usize,
        limit: usize,
    ) -> Vec<String> {
        let quoted_names = self
            .quoted_names
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(quoted_table) = quoted_names.get(table).cloned() else {
            return Vec::new();
        };
        drop(quoted_names);
        introspect::text_values(self, &quoted_table, column, max_chars, limit)
    }

    /// Runs an introspection query under its own time limit; `None` when it fails.
    fn probe<T>(&self, query: impl FnOnce(&Connection) -> duckdb::Result<T>) -> Option<T> {
        let outcome = self
            .watchdog
            .run(INTROSPECTION_TIMEOUT, || query(&self.conn));
        outcome
            .map_err(|error| tracing::debug!("introspection query failed: {error}"))
            .ok()
    }
}

/// Refuses SQL with more than one statement before DuckDB sees it: DuckDB's Rust driver
/// runs every statement but the last when it prepares the last.
fn single_statement(sql: &str) -> Result<&str, ExecError> {
    let trimmed = sql.trim().trim_end_matches(';').trim_end();
    let dialect = sqlparser::dialect::DuckDbDialect {};
    let tokens = sqlparser::tokenizer::Tokenizer::new(&dialect, trimmed)
        .tokenize()
        .map_err(|error| ExecError::Sqlite(error.to_string()))?;
    if tokens
        .iter()
        .any(|token| matches!(token, sqlparser::tokenizer::Token::SemiColon))
    {
        return Err(ExecError::NotReadOnly(
            "only one statement may run at a time".into(),
        ));
    }
    Ok(trimmed)
}

/// DuckDB's refusals of writes, settings and file access.
fn is_refusal(message: &str) -> bool {
    message.contains("read-only mode")
        || message.starts_with("Permission Error")
        || message.contains("lock_configuration")
        || message.contains("external access")
}

/// DuckDB's message on one line, without the caret diagram it appends.
fn duck_message(error: &duckdb::Error) -> String {
    let text = duck_raw(error);
    let first_part = text.split("\n\n").next().unwrap_or_default();
    one_line(first_part)
}

/// DuckDB's message as it wrote it, over several lines.
fn duck_raw(error: &duckdb::Error) -> String {
    match error {
        duckdb::Error::DuckDBFailure(_, Some(message)) => message.clone(),
        other => other.to_string(),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Settings every session starts with: nothing installed or loaded, spills in `scratch`.
fn config(scratch: &Path, mode: AccessMode) -> duckdb::Result<Config> {
    Config::default()
        .access_mode(mode)?
        .enable_autoload_extension(false)?
        .max_memory(MEMORY_LIMIT)?
        .with("allow_community_extensions", "false")?
        .with("temp_directory", spill_dir(scratch).to_string_lossy())
}

fn spill_dir(scratch: &Path) -> PathBuf {
    scratch.join("spill")
}

/// External access off, only `files` (and DuckDB's own spill folder in `scratch`)
/// reachable; `lock` also freezes every setting.
fn restrict(
    conn: &Connection,
    files: &[PathBuf],
    scratch: &Path,
    lock: bool,
) -> duckdb::Result<()> {
    let listed: Vec<String> = files
        .iter()
        .map(|p| sql_string(&p.to_string_lossy()))
        .collect();
    let spill = sql_string(&format!("{}/", spill_dir(scratch).display()));
    let mut sql = format!("SET allowed_directories = [{spill}];");
    if !listed.is_empty() {
        sql.push_str(&format!("SET allowed_paths = [{}];", listed.join(", ")));
    }
    sql.push_str("SET enable_external_access = false;");
    if lock {
        sql.push_str("SET lock_configuration = true;");
    }
    conn.execute_batch(&sql)
}

fn sql_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn open_database(path: &Path, scratch: &Path) -> Result<Connection, DbError> {
    let failed = |error: duckdb::Error| DbError::DuckDb {
        path: path.display().to_string(),
        reason: duck_message(&error),
    };
    let conn =
        Connection::open_with_flags(path, config(scratch, AccessMode::ReadOnly).map_err(failed)?)
            .map_err(failed)?;
    restrict(&conn, &[], scratch, true).map_err(failed)?;
    Ok(conn)
}

/// Writes the catalog of views over `tables` (each file checked by reading it whole), then
/// opens it read-only. Returns the connection and each table's row count.
fn open_files(
    tables: &[DataFile],
    scratch: &Path,
) -> Result<(Connection, HashMap<String, u64>), DbError> {
    let catalog = scratch.join("views.duckdb");
    let paths: Vec<PathBuf> = tables.iter().map(|t| t.path.clone()).collect();
    let internal = |error: duckdb::Error| DbError::Open {
        path: catalog.display().to_string(),
        reason: duck_message(&error),
    };
    let mut rows = HashMap::new();
    {
        let builder = Connection::open_with_flags(
            &catalog,
            config(scratch, AccessMode::ReadWrite).map_err(internal)?,
        )
        .map_err(internal)?;
        restrict(&builder, &paths, scratch, false).map_err(internal)?;
        for table in tables {
            rows.insert(table.table.clone(), create_view(&builder, table)?);
        }
    }
    let conn = Connection::open_with_flags(
        &catalog,
        config(scratch, AccessMode::ReadOnly).map_err(internal)?,
    )
    .map_err(internal)?;
    restrict(&conn, &paths, scratch, true).map_err(internal)?;
    Ok((conn, rows))
}

/// A view reading `file` in place, checked by reading every value once (a ragged row, a
/// bad encoding or a value that does not fit the inferred type fails here, not at the
/// first question). Returns the file's rows.
fn create_view(conn: &Connection, file: &DataFile) -> Result<u64, DbError> {
    let bad = |error: &duckdb::Error| DbError::BadDataFile {
        path: file.path.display().to_string(),
        reason: data_file_reason(&duck_raw(error)),
    };
    let name = quote(&file.table);
    let define = |options: ReadOptions| {
        conn.execute_batch(&format!(
            "CREATE OR REPLACE VIEW {name} AS SELECT * FROM {}",
            reader(file, options)
        ))
    };
    let stamp = FileStamp::of(&file.path);
    if let Some(checked) = stamp.as_ref().and_then(FileStamp::checked) {
        define(checked.options).map_err(|error| bad(&error))?;
        return Ok(checked.rows);
    }
    let mut options = ReadOptions::default();
    define(options).map_err(|error| bad(&error))?;
    if file.format == DataFormat::Csv && view_width(conn, &file.table) == Some(1) {
        // DuckDB's sniffer falls back to one column when rows disagree on their number of
        // fields; find the first ragged row to name it.
        options.delimiter = header_delimiter(&file.path);
        if let Some(reason) = options.delimiter.and_then(|d| ragged_row(&file.path, d)) {
            return Err(DbError::BadDataFile {
                path: file.path.display().to_string(),
                reason,
            });
        }
    }
    let check = |options: ReadOptions| {
        define(options)?;
        conn.query_row(
            &format!("SELECT count(*), count(COLUMNS(*)) FROM {name}"),
            [],
            |row| row.get::<_, i64>(0),
        )
    };
    let count = match check(options) {
        // The sampled types do not hold further down: infer them from the whole file.
        Err(error)
            if file.format != DataFormat::Parquet
                && duck_message(&error).starts_with("Conversion Error") =>
        {
            options.whole_file = true;
            check(options)
        }
        other => other,
    };
    let rows = count
        .map(|n| n.max(0) as u64)
        .map_err(|error| bad(&error))?;
    if let Some(stamp) = stamp {
        stamp.remember(Checked { rows, options });
    }
    Ok(rows)
}

/// How a CSV is read beyond DuckDB's sniffing.
#[derive(Clone, Copy, Default)]
struct ReadOptions {
    /// Infer types from every row instead of a sample.
    whole_file: bool,
    delimiter: Option<char>,
}

fn view_width(conn: &Connection, table: &str) -> Option<i64> {
    conn.query_row(
        "SELECT count(*) FROM duckdb_columns() WHERE table_name = ?",
        [table],
        |row| row.get(0),
    )
    .ok()
}

/// The delimiter the first line of a CSV uses most (`,`, `;`, tab or `|`), if any.
fn header_delimiter(path: &Path) -> Option<char> {
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| {
            std::io::Read::read_to_end(&mut std::io::Read::take(file, 65_536), &mut head)
        })
        .ok()?;
    let text = String::from_utf8_lossy(&head);
    let line = text.lines().next()?;
    [',', ';', '\t', '|']
        .into_iter()
        .map(|d| (line.matches(d).count(), d))
        .filter(|(count, _)| *count > 0)
        .max_by_key(|(count, _)| *count)
        .map(|(_, d)| d)
}

/// The first row whose number of fields differs from the header's, in DuckDB's words.
fn ragged_row(path: &Path, delimiter: char) -> Option<String> {
    let delimiter = u8::try_from(delimiter).ok()?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .from_path(path)
        .ok()?;
    for record in reader.byte_records() {
        if let Err(error) = record
            && let csv::ErrorKind::UnequalLengths {
                pos: Some(pos),
                expected_len,
                len,
            } = error.kind()
        {
            return Some(format!(
                "line {}: Expected Number of Columns: {expected_len} Found: {len}",
                pos.line()
            ));
        }
    }
    None
}

/// What the pass over a file found.
#[derive(Clone, Copy)]
struct Checked {
    rows: u64,
    options: ReadOptions,
}

/// A file as it was when checked: the app opens a source twice (the history scope, then
/// the session), and a gigabyte CSV is read whole once per process, not twice.
#[derive(Clone, PartialEq, Eq, Hash)]
struct FileStamp {
    path: PathBuf,
    len: u64,
    modified: std::time::SystemTime,
}

static CHECKED: Mutex<Option<HashMap<FileStamp, Checked>>> = Mutex::new(None);

impl FileStamp {
    fn of(path: &Path) -> Option<Self> {
        let metadata = std::fs::metadata(path).ok()?;
        Some(Self {
            path: path.to_path_buf(),
            len: metadata.len(),
            modified: metadata.modified().ok()?,
        })
    }

    fn checked(&self) -> Option<Checked> {
        let cache = CHECKED.lock().unwrap_or_else(PoisonError::into_inner);
        cache.as_ref()?.get(self).copied()
    }

    fn remember(self, checked: Checked) {
        let mut cache = CHECKED.lock().unwrap_or_else(PoisonError::into_inner);
        cache.get_or_insert_with(HashMap::new).insert(self, checked);
    }
}

/// The table function that reads `file` with `options`.
fn reader(file: &DataFile, options: ReadOptions) -> String {
    let path = sql_string(&file.path.to_string_lossy());
    let delimiter = match (file.format, options.delimiter) {
        (DataFormat::Tsv, _) | (_, Some('\t')) => ", delim = '\\t'".to_string(),
        (_, Some(d)) => format!(", delim = {}", sql_string(&d.to_string())),
        (_, None) => String::new(),
    };
    let sample = if options.whole_file {
        ", sample_size = -1"
    } else {
        ""
    };
    match file.format {
        DataFormat::Csv | DataFormat::Tsv => format!("read_csv({path}{delimiter}{sample})"),
        DataFormat::Parquet => format!("read_parquet({path})"),
    }
}

/// DuckDB's CSV error in one line: where and what went wrong ("line 3: Expected Number of
/// Columns: 2 Found: 3"), without the line's text (the user's data) or DuckDB's advice.
fn data_file_reason(raw: &str) -> String {
    let head = raw.split("\n\n").next().unwrap_or(raw);
    let head = head.strip_prefix("Invalid Input Error: ").unwrap_or(head);
    let mut lines = head
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("Original Line"));
    let first = lines.next().unwrap_or_default();
    let first = match first.strip_prefix("CSV Error on Line: ") {
        Some(number) => format!("line {number}"),
        None => first.to_string(),
    };
    let rest: Vec<&str> = lines.collect();
    let reason = if rest.is_empty() {
        first
    } else {
        format!("{first}: {}", rest.join(" "))
    };
    let reason = one_line(&reason);
    match reason.char_indices().nth(REASON_CHARS) {
        Some((cut, _)) => format!("{}...", &reason[..cut]),
        None => reason,
    }
}
