//! The history worker: the one ordered writer of the run history. Owns the
//! [`RunHistory`] implementation and the database scope; answers listings and loads.

use std::sync::mpsc::{self, Sender};
use std::thread::{self, JoinHandle};

use crate::core::feedback::history::{
    DbScope, HistoryError, Rating, RetrainingStatus, RunHistory, RunId,
};
use crate::core::pipeline::outcome::RunOutcome;
use crate::tui::app::{Msg, RequestId, WorkerError};

/// Runs listed for the history view and question recall.
const LIST_LIMIT: usize = 500;

pub enum StoreRequest {
    Record {
        id: RequestId,
        outcome: Box<RunOutcome>,
        /// The run it follows up.
        parent: Option<RunId>,
    },
    Rate {
        run: RunId,
        rating: Rating,
        note: Option<String>,
    },
    Correct {
        run: RunId,
        sql: String,
    },
    List {
        id: RequestId,
    },
    Load {
        run: RunId,
    },
    Retraining {
        threshold: u64,
    },
}

pub struct StoreHandle {
    requests: Sender<StoreRequest>,
    worker: Option<JoinHandle<()>>,
}

impl StoreHandle {
    pub fn spawn(
        mut history: Box<dyn RunHistory + Send>,
        scope: DbScope,
        out: Sender<Msg>,
    ) -> Self {
        let (requests, inbox) = mpsc::channel::<StoreRequest>();
        let spawned = thread::Builder::new()
            .name("history".into())
            .spawn(move || {
                while let Ok(request) = inbox.recv() {
                    let msg = handle(history.as_mut(), &scope, request);
                    if out.send(msg).is_err() {
                        break;
                    }
                }
            });
        let worker = spawned
            .map_err(|error| tracing::error!(%error, "cannot start the history thread"))
            .ok();
        Self { requests, worker }
    }

    pub fn send(&self, request: StoreRequest) {
        let _ = self.requests.send(request);
    }

    /// Waits until every request already sent is written: a rating made just before
    /// quitting would otherwise die with the process while it waits for the store's lock.
    pub fn finish(self) {
        let Self { requests, worker } = self;
        drop(requests);
        if let Some(worker) = worker {
            let _ = worker.join();
        }
    }
}

fn handle(history: &mut dyn RunHistory, scope: &DbScope, request: StoreRequest) -> Msg {
    match request {
        StoreRequest::Record {
            id,
            outcome,
            parent,
        } => Msg::RunRecorded {
            id,
            run: history
                .record_follow_up(scope, &outcome, parent)
                .map_err(|e| WorkerError::History(e.to_string())),
        },
        StoreRequest::Rate { run, rating, note } => Msg::Stored(
            history
                .rate(run, rating, note.as_deref())
                .map(|()| match rating {
                    Rating::Up => "saved: thumbs up".to_string(),
                    Rating::Down => "saved: thumbs down".to_string(),
                })
                .map_err(|e| WorkerError::History(e.to_string())),
        ),
        StoreRequest::Correct { run, sql } => Msg::Stored(
            history
                .correct(run, &sql)
                .map(|()| "saved as the correct SQL for this question".to_string())
                .map_err(|e| WorkerError::History(e.to_string())),
        ),
        StoreRequest::List { id } => Msg::HistoryListed {
            id,
            entries: history
                .list(scope, LIST_LIMIT)
                .map_err(|e| WorkerError::History(e.to_string())),
        },
        StoreRequest::Load { run } => Msg::RunLoaded {
            run,
            outcome: history
                .load_run(run)
                .map(|loaded| loaded.map(Box::new))
                .map_err(|e| WorkerError::History(e.to_string())),
        },
        StoreRequest::Retraining { threshold } => Msg::RetrainingChecked(
            retraining(history, scope, threshold).map_err(|e| WorkerError::History(e.to_string())),
        ),
    }
}

/// The retraining status with the verified pairs on this database filled in.
fn retraining(
    history: &dyn RunHistory,
    scope: &DbScope,
    threshold: u64,
) -> Result<Option<RetrainingStatus>, HistoryError> {
    let Some(mut status) = history.retraining_status(threshold)? else {
        return Ok(None);
    };
    status.verified_pairs = history.verified_pairs(scope)?;
    Ok(Some(status))
}
