//! The database worker: a second read-only connection to the user's database, for SQL the
//! user edited or wrote. Checked by the read-only guard, run with the pipeline's limits,
//! cancellable through SQLite's interrupt. Only the newest queued query runs.

use std::path::Path;
use std::sync::mpsc::{self, Sender};
use std::thread;
use std::time::Instant;

use crate::core::db::exec::{ExecLimits, QueryCanceller, ReadOnlyDb};
use crate::core::db::guard::GuardVerdict;
use crate::tui::app::{Msg, RequestId, WorkerError};

/// A query for the worker, with a row cap other than the configured one ("load more").
type Request = (RequestId, String, Option<usize>);

pub struct DbHandle {
    requests: Sender<Request>,
    canceller: Option<QueryCanceller>,
}

impl DbHandle {
    pub fn spawn(path: &Path, limits: ExecLimits, out: Sender<Msg>) -> Self {
        let (requests, inbox) = mpsc::channel::<Request>();
        let db = ReadOnlyDb::open(path);
        let canceller = db.as_ref().ok().map(ReadOnlyDb::canceller);
        let open_error = db.as_ref().err().map(ToString::to_string);
        let spawned = thread::Builder::new()
            .name("database".into())
            .spawn(move || {
                let db = db.ok();
                while let Ok(mut request) = inbox.recv() {
                    while let Ok(newer) = inbox.try_recv() {
                        request = newer;
                    }
                    let (id, sql, rows) = request;
                    let limits = ExecLimits {
                        row_limit: rows.unwrap_or(limits.row_limit),
                        ..limits
                    };
                    let started = Instant::now();
                    let checked = db.as_ref().map(|db| db.check(&sql));
                    let result = match (&db, checked.unwrap_or(Ok(GuardVerdict::Query))) {
                        (None, _) => Err(open_error.clone().unwrap_or_default()),
                        (_, Err(refused)) => Err(refused.to_string()),
                        (Some(db), Ok(_)) => db.execute(&sql, limits).map_err(|e| e.to_string()),
                    }
                    .map_err(WorkerError::Query);
                    let elapsed_ms = started.elapsed().as_millis() as u64;
                    let _ = out.send(Msg::SqlRan {
                        id,
                        result,
                        elapsed_ms,
                    });
                }
            });
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start the database thread");
        }
        Self {
            requests,
            canceller,
        }
    }

    pub fn run(&self, id: RequestId, sql: String) {
        let _ = self.requests.send((id, sql, None));
    }

    /// Runs `sql` keeping up to `row_limit` rows (the byte limit still holds).
    pub fn run_with_rows(&self, id: RequestId, sql: String, row_limit: usize) {
        let _ = self.requests.send((id, sql, Some(row_limit)));
    }

    pub(crate) fn cancel(&self) {
        if let Some(canceller) = &self.canceller {
            canceller.cancel();
        }
    }
}
