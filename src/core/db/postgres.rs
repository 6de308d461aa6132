//! A PostgreSQL database, read-only in depth: the session starts with
//! `default_transaction_read_only` on, every query runs alone in a `READ ONLY` transaction
//! that is rolled back, with `statement_timeout` set (through a query, so the transaction
//! has its snapshot and cannot be switched to read-write), and a cancel is sent to the
//! server. The guard ([`super::guard`]) refuses writes and side effects before this.
//!
//! Values keep the storage classes SQLite would give them: integers and booleans are
//! `Integer`, floating and `numeric` values `Real` (read as `float8`), text-like values
//! `Text`, `bytea` a `Blob`; every other type (dates, intervals, json, arrays) is read as
//! the server's own text for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{ToSql, Type};
use postgres::{Client, Row, Transaction};

use crate::core::db::exec::{COUNT_BEYOND_CAP, Cell, ExecError, ExecLimits, Kept, QueryResult};
use crate::core::db::open::DbError;
use crate::core::db::pg_tls::{self, PgConnector};
use crate::core::db::schema::{
    BrokenObject, Column, DISTINCT_COUNT_CAP, ForeignKey, SAMPLE_MAX_CHARS, SAMPLE_VALUES, Schema,
    SchemaError, Table, is_textual,
};
use crate::core::db::source::PgTarget;

/// How long one introspection query (a row count, a column's samples) may take.
const INTROSPECTION_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct PgDb {
    client: Mutex<Client>,
    /// Each table's name as shown (`Album`, `sales.orders`) -> as SQL writes it.
    quoted_names: Mutex<HashMap<String, String>>,
    cancel: postgres::CancelToken,
    cancelled: Arc<AtomicBool>,
    target: PgTarget,
    tls: PgConnector,
}

/// Cancels the query running on a [`PgDb`] from another thread, on the server.
#[derive(Clone)]
pub struct PgCanceller {
    cancel: postgres::CancelToken,
    cancelled: Arc<AtomicBool>,
    /// The cancel goes over a new connection, with the same TLS as the query's.
    tls: PgConnector,
}

impl PgCanceller {
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        if let Err(error) = self.cancel.cancel_query(self.tls.clone()) {
            tracing::warn!("could not send the cancel to the PostgreSQL server: {error}");
        }
    }
}

impl PgDb {
    pub(crate) fn connect(target: &PgTarget) -> Result<Self, DbError> {
        let mut config = target.config.clone();
        let options = match config.get_options() {
            Some(options) => format!("{options} -c default_transaction_read_only=on"),
            None => "-c default_transaction_read_only=on".to_string(),
        };
        config.options(&options);
        let tls = pg_tls::connector(&target.tls).map_err(|reason| DbError::Tls {
            server: target.server(),
            mode: target.tls.mode.to_string(),
            reason,
        })?;
        let client = config
            .connect(tls.clone())
            .map_err(|error| connect_error(&error, target))?;
        Ok(Self {
            cancel: client.cancel_token(),
            client: Mutex::new(client),
            quoted_names: Mutex::new(HashMap::new()),
            cancelled: Arc::new(AtomicBool::new(false)),
            target: target.clone(),
            tls,
        })
    }

    pub(crate) fn canceller(&self) -> PgCanceller {
        PgCanceller {
            cancel: self.cancel.clone(),
            cancelled: Arc::clone(&self.cancelled),
            tls: self.tls.clone(),
        }
    }

    /// Runs one query in its own read-only transaction, rolled back afterwards.
    pub(crate) fn execute(&self, sql: &str, limits: ExecLimits) -> Result<QueryResult, ExecError> {
        self.cancelled.store(false, Ordering::SeqCst);
        let mut client = self.client.lock().unwrap_or_else(PoisonError::into_inner);
        let classify = |error: postgres::Error| self.classify(&error, limits);
        let mut tx = read_only_transaction(&mut client, limits.timeout).map_err(classify)?;
        let result = run_query(&mut tx, sql, limits)
            .map_err(classify)
            .and_then(|r| r);
        // Nothing is kept either way; a failed rollback only means the connection is gone.
        let _ = tx.rollback();
        // A session-level advisory lock outlives the rollback; a query the guard missed must
        // not leave one held on the connection.
        let _ = client.batch_execute("SELECT pg_advisory_unlock_all()");
        result
    }

    fn classify(&self, error: &postgres::Error, limits: ExecLimits) -> ExecError {
        let Some(db_error) = error.as_db_error() else {
            if error.is_closed() {
                return ExecError::Sqlite(format!(
                    "the connection to the PostgreSQL server at '{}' was lost",
                    self.target.server()
                ));
            }
            return ExecError::Sqlite(one_line(&error.to_string()));
        };
        let code = db_error.code();
        if *code == SqlState::QUERY_CANCELED {
            return if self.cancelled.load(Ordering::SeqCst) {
                ExecError::Cancelled
            } else {
                ExecError::Timeout(limits.timeout)
            };
        }
        let message = one_line(db_error.message());
        if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
            return ExecError::NotReadOnly(message);
        }
        if *code == SqlState::OUT_OF_MEMORY || *code == SqlState::PROGRAM_LIMIT_EXCEEDED {
            return ExecError::ValueTooBig(limits.byte_limit);
        }
        ExecError::Sqlite(message)
    }

    pub(crate) fn introspect(&self) -> Result<Schema, SchemaError> {
        let mut client = self.client.lock().unwrap_or_else(PoisonError::into_inner);
        let error = |e: postgres::Error| SchemaError::Postgres(pg_message(&e));
        let mut tx = read_only_transaction(&mut client, INTROSPECTION_TIMEOUT).map_err(error)?;
        let read = read_schema(&mut tx, self.target.user()).map_err(error);
        let _ = tx.rollback();
        let (schema, quoted) = read?;
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
        let q = quote(column);
        let sql = format!(
            "SELECT DISTINCT {q}::text FROM {quoted_table} \
             WHERE pg_typeof({q}) IN ('text'::regtype, 'character varying'::regtype, \
                                     'character'::regtype) \
               AND length({q}::text) BETWEEN 2 AND {max_chars} LIMIT {limit}"
        );
        let mut client = self.client.lock().unwrap_or_else(PoisonError::into_inner);
        let Ok(mut tx) = read_only_transaction(&mut client, INTROSPECTION_TIMEOUT) else {
            return Vec::new();
        };
        let values = guarded(&mut tx, &sql)
            .map(|rows| rows.iter().map(|row| row.get::<_, String>(0)).collect())
            .unwrap_or_default();
        let _ = tx.rollback();
        values
    }
}

fn read_only_transaction(
    client: &mut Client,
    timeout: Duration,
) -> Result<Transaction<'_>, postgres::Error> {
    let mut tx = client.build_transaction().read_only(true).start()?;
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128).to_string();
    tx.query_one("SELECT set_config('statement_timeout', $1, true)", &[&ms])?;
    Ok(tx)
}

/// The query's result; the inner error is a refusal before it ran.
fn run_query(
    tx: &mut Transaction<'_>,
    sql: &str,
    limits: ExecLimits,
) -> Result<Result<QueryResult, ExecError>, postgres::Error> {
    let trimmed = sql.trim().trim_end_matches(';');
    let statement = tx.prepare(trimmed)?;
    // The server's own description of the statement: one that returns no columns is not a
    // query (COPY to a file, DO, CALL, SET, LISTEN...). Some of those a read-only
    // transaction allows (a superuser's COPY TO a server file), so it never runs.
    if statement.columns().is_empty() {
        return Ok(Err(ExecError::NotReadOnly(
            "the statement returns no rows, so it is not a query; only queries may run".into(),
        )));
    }
    let columns: Vec<String> = statement
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let statement = match wrap_unread_types(trimmed, statement.columns()) {
        Some(wrapped) => tx.prepare(&wrapped)?,
        None => statement,
    };
    let mut rows = tx.query_raw(&statement, std::iter::empty::<&dyn ToSql>())?;
    let mut kept = Kept::new(columns.len(), limits);
    let mut seen: u64 = 0;
    while let Some(row) = rows.next()? {
        seen += 1;
        if kept.cut.is_none() {
            kept.offer_cells(row_cells(&row)?);
        } else if seen > (kept.rows.len() as u64).saturating_add(COUNT_BEYOND_CAP) {
            return Ok(Ok(kept.into_result(columns, None)));
        }
    }
    Ok(Ok(kept.into_result(columns, Some(seen))))
}

/// Whether a column of this type is read as it is (else it is cast, see [`wrap_unread_types`]).
fn read_natively(ty: &Type) -> bool {
    [
        Type::BOOL,
        Type::INT2,
        Type::INT4,
        Type::INT8,
        Type::OID,
        Type::FLOAT4,
        Type::FLOAT8,
        Type::TEXT,
        Type::VARCHAR,
        Type::BPCHAR,
        Type::NAME,
        Type::UNKNOWN,
        Type::BYTEA,
    ]
    .contains(ty)
}

/// The query wrapped so that every column this client cannot decode comes back as text
/// (`numeric` as `float8`): `SELECT q.c1, q.c2::text FROM (query) AS q(c1, c2)`. The alias
/// list renames by position, so duplicate or unnamed columns are fine; the original names
/// are kept by the caller. `None` when every column is read natively.
fn wrap_unread_types(sql: &str, columns: &[postgres::Column]) -> Option<String> {
    if columns.iter().all(|c| read_natively(c.type_())) {
        return None;
    }
    let aliases: Vec<String> = (1..=columns.len()).map(|i| format!("c{i}")).collect();
    let select: Vec<String> = columns
        .iter()
        .zip(&aliases)
        .map(|(column, alias)| match column.type_() {
            ty if read_natively(ty) => format!("q.{alias}"),
            &Type::NUMERIC => format!("q.{alias}::float8"),
            _ => format!("q.{alias}::text"),
        })
        .collect();
    Some(format!(
        "SELECT {} FROM (\n{sql}\n) AS q({})",
        select.join(", "),
        aliases.join(", ")
    ))
}

fn row_cells(row: &Row) -> Result<Vec<Cell>, postgres::Error> {
    (0..row.len())
        .map(|index| {
            let ty = row.columns()[index].type_().clone();
            let cell = match ty {
                Type::BOOL => row
                    .try_get::<_, Option<bool>>(index)?
                    .map(|v| Cell::Integer(v.into())),
                Type::INT2 => row
                    .try_get::<_, Option<i16>>(index)?
                    .map(|v| Cell::Integer(v.into())),
                Type::INT4 => row
                    .try_get::<_, Option<i32>>(index)?
                    .map(|v| Cell::Integer(v.into())),
                Type::INT8 => row.try_get::<_, Option<i64>>(index)?.map(Cell::Integer),
                Type::OID => row
                    .try_get::<_, Option<u32>>(index)?
                    .map(|v| Cell::Integer(v.into())),
                Type::FLOAT4 => row
                    .try_get::<_, Option<f32>>(index)?
                    .map(|v| Cell::Real(v.into())),
                Type::FLOAT8 => row.try_get::<_, Option<f64>>(index)?.map(Cell::Real),
                Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(index)?.map(Cell::Blob),
                _ => row.try_get::<_, Option<String>>(index)?.map(Cell::Text),
            };
            Ok(cell.unwrap_or(Cell::Null))
        })
        .collect()
}

/// A readable table or view, with what SQL needs to name it.
struct Relation {
    oid: u32,
    /// `name`, or `schema.name` outside `public`.
    shown: String,
    /// `"schema"."name"`.
    quoted: String,
    is_view: bool,
    readable: bool,
}

/// The schema, and each table's name as SQL writes it.
fn read_schema(
    tx: &mut Transaction<'_>,
    user: &str,
) -> Result<(Schema, HashMap<String, String>), postgres::Error> {
    let relations: Vec<Relation> = tx
        .query(
            "SELECT c.oid, n.nspname, c.relname, c.relkind IN ('v', 'm'), \
                    has_table_privilege(c.oid, 'SELECT') \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') AND NOT c.relispartition \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname NOT LIKE 'pg\\_%' \
             ORDER BY c.oid",
            &[],
        )?
        .iter()
        .map(|row| {
            let schema: String = row.get(1);
            let name: String = row.get(2);
            Relation {
                oid: row.get(0),
                shown: qualified_name(&schema, &name),
                quoted: format!("{}.{}", quote(&schema), quote(&name)),
                is_view: row.get(3),
                readable: row.get(4),
            }
        })
        .collect();
    let mut schema = Schema::default();
    let mut quoted = HashMap::new();
    for relation in relations {
        if !relation.readable {
            schema.broken.push(BrokenObject {
                name: relation.shown,
                is_view: relation.is_view,
                error: format!("user '{user}' has no SELECT permission on it"),
            });
            continue;
        }
        let mut table = Table {
            columns: read_columns(tx, relation.oid)?,
            foreign_keys: read_foreign_keys(tx, relation.oid)?,
            row_count: guarded(tx, &format!("SELECT count(*) FROM {}", relation.quoted))
                .and_then(|rows| rows.first().map(|row| row.get::<_, i64>(0).max(0) as u64)),
            name: relation.shown,
            is_view: relation.is_view,
        };
        fill_sample_values(tx, &relation.quoted, &mut table);
        quoted.insert(table.name.clone(), relation.quoted);
        schema.tables.push(table);
    }
    Ok((schema, quoted))
}

fn qualified_name(schema: &str, name: &str) -> String {
    if schema == "public" {
        name.to_string()
    } else {
        format!("{schema}.{name}")
    }
}

fn quote(name: &str) -> String {
    crate::core::db::ident::quote_identifier(name)
}

fn read_columns(tx: &mut Transaction<'_>, oid: u32) -> Result<Vec<Column>, postgres::Error> {
    let rows = tx.query(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = a.attrelid \
                        AND k.contype = 'p' AND a.attnum = ANY (k.conkey)) \
         FROM pg_attribute a \
         WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        &[&oid],
    )?;
    Ok(rows
        .iter()
        .map(|row| Column {
            name: row.get(0),
            declared_type: row.get(1),
            not_null: row.get(2),
            primary_key: row.get(3),
            sample_values: Vec::new(),
            distinct_values: None,
        })
        .collect())
}

fn read_foreign_keys(
    tx: &mut Transaction<'_>,
    oid: u32,
) -> Result<Vec<ForeignKey>, postgres::Error> {
    let rows = tx.query(
        "SELECT a.attname, fn.nspname, fc.relname, fa.attname \
         FROM pg_constraint k \
         CROSS JOIN LATERAL unnest(k.conkey, k.confkey) WITH ORDINALITY AS u(src, dst, i) \
         JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.src \
         JOIN pg_class fc ON fc.oid = k.confrelid \
         JOIN pg_namespace fn ON fn.oid = fc.relnamespace \
         JOIN pg_attribute fa ON fa.attrelid = k.confrelid AND fa.attnum = u.dst \
         WHERE k.conrelid = $1 AND k.contype = 'f' ORDER BY k.oid, u.i",
        &[&oid],
    )?;
    Ok(rows
        .iter()
        .map(|row| ForeignKey {
            from_column: row.get(0),
            to_table: qualified_name(row.get(1), row.get(2)),
            to_column: row.get(3),
        })
        .collect())
}

/// Runs an introspection query in a savepoint, so one that fails or times out (a huge
/// table, a view over something unreadable) costs only its own value.
fn guarded(tx: &mut Transaction<'_>, sql: &str) -> Option<Vec<Row>> {
    let mut savepoint = tx.transaction().ok()?;
    match savepoint.query(sql, &[]) {
        Ok(rows) => {
            let _ = savepoint.commit();
            Some(rows)
        }
        Err(error) => {
            tracing::debug!("introspection query failed: {}", pg_message(&error));
            let _ = savepoint.rollback();
            None
        }
    }
}

/// The same samples SQLite's introspection keeps: the most frequent short text values
/// (ties in byte order, as SQLite sorts), and the distinct count up to the cap.
fn fill_sample_values(tx: &mut Transaction<'_>, quoted_table: &str, table: &mut Table) {
    for column in table
        .columns
        .iter_mut()
        .filter(|c| is_textual(c) && !c.primary_key)
    {
        let q = quote(&column.name);
        let samples = format!(
            "SELECT {q}::text FROM {quoted_table} \
             WHERE length({q}::text) BETWEEN 1 AND {SAMPLE_MAX_CHARS} \
             GROUP BY {q} ORDER BY count(*) DESC, {q}::text COLLATE \"C\" LIMIT {SAMPLE_VALUES}"
        );
        column.sample_values = guarded(tx, &samples)
            .map(|rows| rows.iter().map(|row| row.get::<_, String>(0)).collect())
            .unwrap_or_default();
        let distinct = format!(
            "SELECT count(*) FROM (SELECT DISTINCT {q} FROM {quoted_table} \
             WHERE length({q}::text) > 0 LIMIT {DISTINCT_COUNT_CAP}) d"
        );
        column.distinct_values = guarded(tx, &distinct)
            .and_then(|rows| rows.first().map(|row| row.get::<_, i64>(0).max(0) as u64));
    }
}

/// The server's message on one line (its detail and hint follow when there are any).
fn pg_message(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db_error) => one_line(db_error.message()),
        None => one_line(&error.to_string()),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Why connecting failed, in words that say what to do.
fn connect_error(error: &postgres::Error, target: &PgTarget) -> DbError {
    let url = target.display().to_string();
    let Some(db_error) = error.as_db_error() else {
        let text = error_chain(error);
        if let Some(reason) = tls_failure(&text) {
            return DbError::Tls {
                server: target.server(),
                mode: target.tls.mode.to_string(),
                reason,
            };
        }
        if text.contains("password missing") {
            return DbError::AuthFailed {
                url,
                user: target.user().to_string(),
                reason: "the server asks for a password and none was given".into(),
            };
        }
        return DbError::Unreachable {
            server: target.server(),
            reason: text,
        };
    };
    let code = db_error.code();
    let reason = one_line(db_error.message());
    if *code == SqlState::INVALID_PASSWORD || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
    {
        let reason = if target.has_password() {
            reason
        } else {
            format!("{reason} (no password was given)")
        };
        return DbError::AuthFailed {
            url,
            user: target.user().to_string(),
            reason,
        };
    }
    DbError::Postgres { url, reason }
}

/// A failed TLS handshake, said plainly: the postgres crate reports it as an I/O error.
fn tls_failure(text: &str) -> Option<String> {
    if text.contains("server does not support TLS") {
        return Some("the server does not accept TLS connections".into());
    }
    let (_, detail) = text.split_once("error performing TLS handshake")?;
    let detail = detail.trim_start_matches(':').trim();
    let hint = if detail.contains("UnknownIssuer") {
        "; the server's certificate is not signed by the root certificate (sslrootcert)"
    } else if detail.contains("not valid for name") {
        "; connect with a host name the certificate names, or use sslmode=verify-ca"
    } else {
        ""
    };
    Some(format!("the TLS handshake failed: {detail}{hint}"))
}

/// The error and its causes on one line ("error connecting to server: Connection refused").
fn error_chain(error: &postgres::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    one_line(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_only_columns_it_cannot_read() {
        let sql = "SELECT 1";
        assert_eq!(wrap_unread_types(sql, &[]), None);
    }

    #[test]
    fn names_outside_public_are_qualified() {
        assert_eq!(qualified_name("public", "Album"), "Album");
        assert_eq!(qualified_name("sales", "orders"), "sales.orders");
        assert_eq!(one_line("a\n  b"), "a b");
    }
}
