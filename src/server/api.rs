//! The analyst's endpoints: ask (JSON, or server-sent events), correct, rate, history, the
//! database list and the health check. Correct, rate and history do not wait for the
//! model: they run on tokio's blocking pool with their own store connection.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::core::db::exec::ReadOnlyDb;
use crate::core::feedback::history::Rating;
use crate::core::feedback::store::{HistoryStore, StoreError, verify_sql, whole_schema_text};
use crate::server::http::{ApiError, json_body};
use crate::server::worker::{JobKind, JobTicket, Refused, Reply};
use crate::server::{AppState, ServedDb};

/// The longest question accepted, in characters.
const MAX_QUESTION_CHARS: usize = 2000;
/// The most history entries one request returns.
const MAX_HISTORY: usize = 1000;

pub async fn healthz(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({"status": "ok", "model": state.worker.model_id}))
}

pub async fn databases(State(state): State<Arc<AppState>>) -> Json<Value> {
    let names: Vec<Value> = state
        .worker
        .databases
        .iter()
        .map(|name| json!({"name": name}))
        .collect();
    Json(json!({"databases": names}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AskRequest {
    pub database: String,
    pub question: String,
    /// Server-sent events for the stages and tokens, the result last.
    #[serde(default)]
    pub stream: bool,
    /// Whether to write the natural-language answer (default: the server's setting).
    pub answer: Option<bool>,
}

pub async fn ask(
    State(state): State<Arc<AppState>>,
    body: Result<Json<AskRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let request = json_body(body)?;
    served(&state, &request.database)?;
    let question = request.question.trim();
    if question.is_empty() {
        return Err(ApiError::bad_request("the question is empty"));
    }
    if question.chars().count() > MAX_QUESTION_CHARS {
        return Err(ApiError::bad_request(format!(
            "the question is longer than {MAX_QUESTION_CHARS} characters"
        )));
    }
    let kind = JobKind::Ask {
        database: request.database.clone(),
        question: question.to_string(),
        answer: request.answer,
    };
    let (ticket, replies) = submit(&state, kind)?;
    if request.stream {
        return Ok(event_stream(replies, ticket, ask_events).into_response());
    }
    match final_reply(replies, &ticket, state.config.request_timeout).await? {
        Reply::Asked(value) => Ok(Json(value).into_response()),
        other => Err(ApiError::internal(format!("unexpected reply {other:?}"))),
    }
}

/// Queues a job; the ticket cancels it when dropped.
pub fn submit(
    state: &AppState,
    kind: JobKind,
) -> Result<(JobTicket, UnboundedReceiver<Reply>), ApiError> {
    let (tx, rx) = unbounded_channel();
    let ticket = state.worker.ticket();
    let timeout = state.config.request_timeout.as_secs().max(1);
    state
        .worker
        .submit(kind, &ticket, timeout, tx)
        .map_err(|refused| match refused {
            Refused::Full => ApiError::busy(),
            Refused::Stopped => ApiError::internal("the model worker has stopped; see the log"),
        })?;
    Ok((ticket, rx))
}

/// Waits for a job's last reply, skipping what is streamed before it. The worker enforces
/// the deadline; the extra time here only guards against a worker that never answers.
pub async fn final_reply(
    mut replies: UnboundedReceiver<Reply>,
    ticket: &JobTicket,
    timeout: Duration,
) -> Result<Reply, ApiError> {
    let wait = async {
        while let Some(reply) = replies.recv().await {
            match reply {
                Reply::Failed(error) => return Err(ApiError::from(error)),
                Reply::Asked(_) | Reply::Chatted(_) => return Ok(reply),
                _ => {}
            }
        }
        Err(ApiError::internal(
            "the model worker stopped mid-request; see the log",
        ))
    };
    match tokio::time::timeout(timeout + Duration::from_secs(10), wait).await {
        Ok(result) => result,
        Err(_) => {
            ticket.cancel();
            Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!("no answer within {} s", timeout.as_secs()),
            ))
        }
    }
}

/// Events for a job's replies until its last; the stream owns the ticket, so a client that
/// disconnects (the body is dropped) cancels the job.
pub fn event_stream<F>(
    replies: UnboundedReceiver<Reply>,
    ticket: JobTicket,
    to_events: F,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>>
where
    F: FnMut(Reply) -> (Vec<Event>, bool) + Send + 'static,
{
    let state = EventState {
        replies,
        _ticket: ticket,
        pending: VecDeque::new(),
        finished: false,
        to_events,
    };
    let stream = futures_util::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(event) = state.pending.pop_front() {
                return Some((Ok(event), state));
            }
            if state.finished {
                return None;
            }
            match state.replies.recv().await {
                Some(reply) => {
                    let (events, last) = (state.to_events)(reply);
                    state.pending.extend(events);
                    state.finished = last;
                }
                None => {
                    let error = ApiError::internal("the model worker stopped mid-request");
                    state.pending.push_back(error_event(&error));
                    state.finished = true;
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

struct EventState<F> {
    replies: UnboundedReceiver<Reply>,
    /// Held for its drop: the client went away when the stream is dropped unfinished.
    _ticket: JobTicket,
    pending: VecDeque<Event>,
    finished: bool,
    to_events: F,
}

/// An `error` event with the error's JSON.
pub fn error_event(error: &ApiError) -> Event {
    Event::default()
        .event("error")
        .data(error.body().to_string())
}

fn data_event(name: &str, data: &Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

/// An ask's stream: `stage`, `sql`, `sql_restarted`, `attempt_failed`, `answer`, then
/// `result` (the JSON of `ask --json`) or `error`.
fn ask_events(reply: Reply) -> (Vec<Event>, bool) {
    let (event, last) = match reply {
        Reply::Stage(stage) => (
            data_event("stage", &serde_json::to_value(stage).unwrap_or(Value::Null)),
            false,
        ),
        Reply::SqlText { attempt, text } => (
            data_event("sql", &json!({"attempt": attempt, "text": text})),
            false,
        ),
        Reply::SqlRestarted { attempt } => (
            data_event("sql_restarted", &json!({"attempt": attempt})),
            false,
        ),
        Reply::AttemptFailed { attempt, error } => (
            data_event(
                "attempt_failed",
                &json!({"attempt": attempt, "error": error}),
            ),
            false,
        ),
        Reply::AnswerText(text) => (data_event("answer", &json!({"text": text})), false),
        Reply::Asked(value) => (data_event("result", &value), true),
        Reply::Failed(error) => (error_event(&ApiError::from(error)), true),
        Reply::ChatText(_) | Reply::Chatted(_) => return (Vec::new(), false),
    };
    (vec![event], last)
}

/// The served database called `name`, or 404.
fn served<'a>(state: &'a AppState, name: &str) -> Result<&'a ServedDb, ApiError> {
    state.databases.get(name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no database named '{name}' on this server; GET /v1/databases lists them"),
        )
    })
}

fn store_error(error: StoreError) -> ApiError {
    match error {
        StoreError::UnknownRun(_) | StoreError::UnknownPair(_) => {
            ApiError::new(StatusCode::NOT_FOUND, error.to_string())
        }
        StoreError::CorrectionRefused(_) => ApiError::bad_request(error.to_string()),
        other => ApiError::internal(other.to_string()),
    }
}

/// Runs blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(format!("the request failed: {e}")))?
}

fn open_store(state: &AppState) -> Result<HistoryStore, ApiError> {
    HistoryStore::open(&state.options.paths.history_db()).map_err(store_error)
}

/// Checks that `run` was asked on `db` (a run id names a run of any database).
fn check_run_scope(store: &HistoryStore, run: i64, db: &ServedDb) -> Result<(), ApiError> {
    let asked_on = store.run_scope(run).map_err(store_error)?;
    if asked_on.path != db.scope.path {
        return Err(ApiError::bad_request(format!(
            "run {run} was not asked on this database"
        )));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    pub database: String,
    pub limit: Option<usize>,
}

pub async fn history(
    State(state): State<Arc<AppState>>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let db = served(&state, &query.database)?.clone();
    let limit = query.limit.unwrap_or(20).min(MAX_HISTORY);
    blocking(move || {
        let store = open_store(&state)?;
        let entries = store.entries(&db.scope, limit).map_err(store_error)?;
        Ok(Json(json!({"database": query.database, "runs": entries})))
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrectRequest {
    pub database: String,
    pub sql: String,
    /// The recorded run this corrects (its question is the one answered).
    pub run_id: Option<i64>,
    /// The question the SQL answers, when it corrects no run.
    pub question: Option<String>,
}

pub async fn correct(
    State(state): State<Arc<AppState>>,
    body: Result<Json<CorrectRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let request = json_body(body)?;
    let db = served(&state, &request.database)?.clone();
    blocking(move || correct_blocking(&state, &db, request)).await
}

fn correct_blocking(
    state: &AppState,
    served: &ServedDb,
    request: CorrectRequest,
) -> Result<Json<Value>, ApiError> {
    let mut store = open_store(state)?;
    let question = match (request.run_id, &request.question) {
        (Some(run), None) => {
            check_run_scope(&store, run, served)?;
            store
                .outcome(run)
                .map_err(store_error)?
                .map(|o| o.question)
                .ok_or_else(|| store_error(StoreError::UnknownRun(run)))?
        }
        (None, Some(question)) if !question.trim().is_empty() => question.clone(),
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give question or run_id, not both (a run already has its question)",
            ));
        }
        _ => {
            return Err(ApiError::bad_request(
                "say which question the SQL answers: question or run_id",
            ));
        }
    };
    let db = ReadOnlyDb::open(&served.path).map_err(|e| ApiError::internal(e.to_string()))?;
    let result =
        verify_sql(&db, &request.sql, state.options.pipeline.limits).map_err(store_error)?;
    let id = match request.run_id {
        Some(run) => store.correct_run(run, &request.sql),
        None => store.add_correction(
            &served.scope,
            &question,
            &request.sql,
            whole_schema_text(&db).as_deref(),
        ),
    }
    .map_err(store_error)?;
    Ok(Json(json!({
        "correction_id": id,
        "question": question.trim(),
        "rows": result.row_summary(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateRequest {
    pub database: String,
    pub run_id: i64,
    pub rating: Rating,
    pub note: Option<String>,
}

pub async fn rate(
    State(state): State<Arc<AppState>>,
    body: Result<Json<RateRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let request = json_body(body)?;
    let db = served(&state, &request.database)?.clone();
    blocking(move || {
        let mut store = open_store(&state)?;
        check_run_scope(&store, request.run_id, &db)?;
        store
            .rate_run(request.run_id, request.rating, request.note.as_deref())
            .map_err(store_error)?;
        Ok(Json(
            json!({"run_id": request.run_id, "rating": request.rating}),
        ))
    })
    .await
}
