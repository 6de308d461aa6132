//! The model worker: one OS thread owns the model (a llama.cpp context is neither `Send`
//! nor shareable) and every served database's retrieval, and runs one job at a time from a
//! bounded queue. Handlers wait on the job's reply channel.
//!
//! Invariants:
//! - A job whose client went away (its [`JobTicket`] dropped), or whose deadline passed,
//!   stops at the next token: the ticket sets the job's flag and, when that job is the one
//!   running, the engine's own cancel flag. A job cancelled while queued never starts.
//! - Only answered runs are recorded in the history store, each exactly once.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;

use crate::core::db::exec::ReadOnlyDb;
use crate::core::feedback::history::DbScope;
use crate::core::feedback::store::HistoryStore;
use crate::core::model::{Completion, CompletionRequest, LanguageModel, LlmError};
use crate::core::pipeline::outcome::{PipelineEvent, Stage};
use crate::core::pipeline::{PipelineConfig, PipelineError, run_question};
use crate::core::retrieval::provider::ContextProvider;
use crate::error::AppError;
use crate::session::ask_json::AskJson;
use crate::session::{ModelEngine, QuestionContext, RuntimeOptions};

/// What a handler asks the worker for.
pub enum JobKind {
    Ask {
        database: String,
        question: String,
        /// Overrides `pipeline.answer` (whether to write the natural-language answer).
        answer: Option<bool>,
    },
    Chat(CompletionRequest),
}

/// What the worker sends back while and after running a job; `Asked`, `Chatted` and
/// `Failed` end it.
#[derive(Debug)]
pub enum Reply {
    Stage(Stage),
    SqlText { attempt: u32, text: String },
    SqlRestarted { attempt: u32 },
    AttemptFailed { attempt: u32, error: String },
    AnswerText(String),
    Asked(serde_json::Value),
    ChatText(String),
    Chatted(Completion),
    Failed(JobError),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("the request took longer than the server's limit of {0} s")]
    Timeout(u64),
    #[error("the request was cancelled")]
    Cancelled,
    #[error("the server is shutting down; ask again when it is back")]
    ShuttingDown,
    #[error("{0}")]
    Failed(String),
}

pub struct Job {
    pub kind: JobKind,
    id: u64,
    /// Set by the handler's [`JobTicket`].
    cancelled: Arc<AtomicBool>,
    pub deadline: Instant,
    pub timeout_secs: u64,
    pub replies: UnboundedSender<Reply>,
}

/// Which job runs now, and the engine's cancel flag to stop it with.
pub struct Running {
    current: Mutex<u64>,
    engine_cancel: Arc<AtomicBool>,
    /// Set by a stop signal: the job running finishes, queued ones are refused.
    stopping: AtomicBool,
}

impl Running {
    fn cancel_if_running(&self, job: u64) {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if *current == job {
            self.engine_cancel.store(true, Ordering::SeqCst);
        }
    }

    fn set(&self, job: u64) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = job;
    }
}

/// A handler's hold on its job: dropping it (the client disconnected, the handler's future
/// was dropped) cancels the job.
pub struct JobTicket {
    id: u64,
    cancelled: Arc<AtomicBool>,
    running: Arc<Running>,
}

impl JobTicket {
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.running.cancel_if_running(self.id);
    }
}

impl Drop for JobTicket {
    /// After the job ended this only sets a flag nobody reads.
    fn drop(&mut self) {
        self.cancel();
    }
}

impl Job {
    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}

/// The handlers' side of the worker: a bounded queue.
#[derive(Clone)]
pub struct WorkerHandle {
    queue: SyncSender<Job>,
    running: Arc<Running>,
    next_id: Arc<AtomicU64>,
    pub model_id: String,
    /// The served databases' names, sorted (a map's keys).
    pub databases: Vec<String>,
}

/// Why a job was not queued.
pub enum Refused {
    Full,
    Stopped,
}

impl WorkerHandle {
    /// Lets the job running finish and refuses the queued ones and any new one (503).
    pub fn stop(&self) {
        self.running.stopping.store(true, Ordering::SeqCst);
    }

    /// A ticket for a new job: the handler keeps it, dropping it cancels.
    pub fn ticket(&self) -> JobTicket {
        JobTicket {
            id: self.next_id.fetch_add(1, Ordering::SeqCst),
            cancelled: Arc::new(AtomicBool::new(false)),
            running: Arc::clone(&self.running),
        }
    }

    /// Queues a job without waiting; a full queue refuses it at once.
    pub fn submit(
        &self,
        kind: JobKind,
        ticket: &JobTicket,
        timeout_secs: u64,
        replies: UnboundedSender<Reply>,
    ) -> Result<(), Refused> {
        let job = Job {
            kind,
            id: ticket.id,
            cancelled: Arc::clone(&ticket.cancelled),
            deadline: Instant::now() + std::time::Duration::from_secs(timeout_secs),
            timeout_secs,
            replies,
        };
        self.queue.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => Refused::Full,
            TrySendError::Disconnected(_) => Refused::Stopped,
        })
    }
}

/// One served database: its connection, retrieval and identity in the history store.
struct Served {
    db: ReadOnlyDb,
    context: Box<dyn ContextProvider + Send>,
    scope: DbScope,
}

struct ModelWorker {
    engine: ModelEngine,
    databases: BTreeMap<String, Served>,
    history: Option<HistoryStore>,
    pipeline: PipelineConfig,
    running: Arc<Running>,
}

/// Opens every database and loads the model on a new thread; returns once they are ready
/// (or with the first error).
pub fn start(
    databases: &BTreeMap<String, PathBuf>,
    options: &RuntimeOptions,
    queue: usize,
) -> Result<WorkerHandle, AppError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (queue_tx, queue_rx) = std::sync::mpsc::sync_channel::<Job>(queue);
    let names: Vec<String> = databases.keys().cloned().collect();
    let databases = databases.clone();
    let options = options.clone();
    std::thread::Builder::new()
        .name("model-worker".into())
        .spawn(move || match ModelWorker::open(&databases, &options) {
            Ok(worker) => {
                let model_id = worker.engine.model_id();
                let _ = ready_tx.send(Ok((model_id, Arc::clone(&worker.running))));
                worker.serve(queue_rx);
            }
            Err(error) => {
                let _ = ready_tx.send(Err(error));
            }
        })
        .map_err(|source| AppError::Io {
            action: "cannot start the model thread".into(),
            source,
        })?;
    let (model_id, running) = ready_rx.recv().map_err(|_| {
        AppError::Usage("the model thread stopped while loading (see the log)".into())
    })??;
    Ok(WorkerHandle {
        queue: queue_tx,
        running,
        next_id: Arc::new(AtomicU64::new(1)),
        model_id,
        databases: names,
    })
}

impl ModelWorker {
    fn open(
        databases: &BTreeMap<String, PathBuf>,
        options: &RuntimeOptions,
    ) -> Result<Self, AppError> {
        let mut served = BTreeMap::new();
        for (name, path) in databases {
            let db = ReadOnlyDb::open(path)?;
            let schema = db.askable_schema()?;
            let QuestionContext { context, scope, .. } =
                QuestionContext::open(&db, &schema, options, None, &mut |_, _| {})?;
            served.insert(name.clone(), Served { db, context, scope });
        }
        let history = if options.feedback.record_history {
            Some(HistoryStore::open(&options.paths.history_db())?)
        } else {
            None
        };
        let engine = ModelEngine::load(options)?;
        let running = Arc::new(Running {
            current: Mutex::new(0),
            engine_cancel: engine.cancel_flag(),
            stopping: AtomicBool::new(false),
        });
        Ok(Self {
            engine,
            databases: served,
            history,
            pipeline: options.pipeline.clone(),
            running,
        })
    }

    fn serve(mut self, queue: Receiver<Job>) {
        while let Ok(job) = queue.recv() {
            let reply = if job.is_cancelled() {
                Reply::Failed(JobError::Cancelled)
            } else if self.running.stopping.load(Ordering::SeqCst) {
                Reply::Failed(JobError::ShuttingDown)
            } else if Instant::now() >= job.deadline {
                Reply::Failed(JobError::Timeout(job.timeout_secs))
            } else {
                self.running.set(job.id);
                let reply = self.run(&job);
                self.running.set(0);
                reply
            };
            let _ = job.replies.send(reply);
        }
    }

    fn run(&mut self, job: &Job) -> Reply {
        let engine_cancel = self.engine.cancel_flag();
        // Also called between the model's calls, whose start clears the engine's flag.
        let stop_if_unwanted = || {
            let late = Instant::now() >= job.deadline;
            if late || job.is_cancelled() {
                engine_cancel.store(true, Ordering::SeqCst);
            }
        };
        let result = match &job.kind {
            JobKind::Ask {
                database,
                question,
                answer,
            } => self.ask(database, question, *answer, job, &stop_if_unwanted),
            JobKind::Chat(request) => {
                let replies = job.replies.clone();
                self.engine
                    .complete(request, &mut |text| {
                        stop_if_unwanted();
                        let _ = replies.send(Reply::ChatText(text.to_string()));
                    })
                    .map(Reply::Chatted)
                    .map_err(PipelineError::from)
            }
        };
        match result {
            Ok(reply) => reply,
            Err(_) if Instant::now() >= job.deadline => {
                Reply::Failed(JobError::Timeout(job.timeout_secs))
            }
            Err(_) if job.is_cancelled() => Reply::Failed(JobError::Cancelled),
            Err(error) => Reply::Failed(JobError::Failed(error.to_string())),
        }
    }

    fn ask(
        &mut self,
        database: &str,
        question: &str,
        answer: Option<bool>,
        job: &Job,
        stop_if_unwanted: &dyn Fn(),
    ) -> Result<Reply, PipelineError> {
        let Some(served) = self.databases.get_mut(database) else {
            return Ok(Reply::Failed(JobError::Failed(format!(
                "no database named '{database}'"
            ))));
        };
        let mut pipeline = self.pipeline.clone();
        if let Some(answer) = answer {
            pipeline.answer = answer;
        }
        let replies = &job.replies;
        let outcome = run_question(
            &mut self.engine,
            &served.db,
            served.context.as_mut(),
            question,
            &pipeline,
            &mut |event| {
                stop_if_unwanted();
                if let Some(reply) = event_reply(event) {
                    let _ = replies.send(reply);
                }
            },
        )?;
        let run_id = self.history.as_mut().and_then(|store| {
            // A store failure must not cost the client the answer; it is logged.
            store
                .record(&served.scope, &outcome)
                .map_err(|error| tracing::warn!("the run was not recorded: {error}"))
                .ok()
        });
        let mut json = AskJson::from_outcome(&outcome);
        json.run_id = run_id;
        let value = serde_json::to_value(&json)
            .map_err(|e| PipelineError::Llm(LlmError::Inference(e.to_string())))?;
        Ok(Reply::Asked(value))
    }
}

/// The pipeline events a streaming client sees (the prompt context stays on the server).
fn event_reply(event: PipelineEvent<'_>) -> Option<Reply> {
    Some(match event {
        PipelineEvent::Stage(stage) => Reply::Stage(stage),
        PipelineEvent::SqlText { attempt, text } => Reply::SqlText {
            attempt,
            text: text.to_string(),
        },
        PipelineEvent::SqlRestarted { attempt } => Reply::SqlRestarted { attempt },
        PipelineEvent::AttemptFailed { attempt, error, .. } => Reply::AttemptFailed {
            attempt,
            error: error.to_string(),
        },
        PipelineEvent::AnswerText(text) => Reply::AnswerText(text.to_string()),
        PipelineEvent::Context(_) | PipelineEvent::Executed(_) => return None,
    })
}
