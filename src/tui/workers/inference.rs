//! The inference worker: owns the model, a read-only connection and the context provider on
//! one thread (llama.cpp's context is not `Sync` and borrows the model), loads them after
//! the UI is up, and runs `core::pipeline::run_question` for each question, streaming its
//! events to the UI. Only the newest queued question runs; cancelling sets the engine's
//! flag (stops at the next token or prompt chunk) and interrupts the running query.
//!
//! Start warm: once the model is loaded the worker evaluates the schema prefix (the
//! session's `warm` request) while the user types. A question asked meanwhile stops the
//! warm-up at its next prompt chunk and continues from what is already cached, so it never
//! waits longer than it would have without the warm-up.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;

use crate::core::db::exec::{QueryCanceller, ReadOnlyDb};
use crate::core::model::{Completion, CompletionRequest, LanguageModel, LlmError};
use crate::core::pipeline::{EarlierTurn, PipelineConfig, PipelineError, run_follow_up};
use crate::core::retrieval::provider::ContextProvider;
use crate::tui::app::{Msg, PipelineUpdate, RequestId, StartupEvent, WorkerError};

/// What the worker needs to answer questions, built on the worker thread.
pub struct Session {
    pub model: Box<dyn LanguageModel>,
    /// The model's cancel flag (`LlamaEngine::cancel_flag`).
    pub model_cancel: Arc<AtomicBool>,
    pub db: ReadOnlyDb,
    pub context: Box<dyn ContextProvider>,
    pub config: PipelineConfig,
    /// Evaluated after loading, unless a question is already waiting: the schema prefix,
    /// so the first question does not pay for it (`None`: nothing to warm, e.g. a remote
    /// server).
    pub warm: Option<CompletionRequest>,
}

/// One question for the worker: the conversation's earlier turns when it follows up.
struct AskRequest {
    id: RequestId,
    question: String,
    earlier: Vec<EarlierTurn>,
}

/// Builds the session on the worker thread, reporting progress through the callback.
pub type Loader = Box<dyn FnOnce(&dyn Fn(StartupEvent)) -> Result<Session, String> + Send>;

#[derive(Default)]
struct CancelState {
    /// Requests with an id up to this one are cancelled.
    cancelled_through: AtomicU64,
    model_flag: Mutex<Option<Arc<AtomicBool>>>,
    query: Mutex<Option<QueryCanceller>>,
    /// The schema prefix is being evaluated: a question stops it.
    warming: AtomicBool,
    /// Questions sent so far (a warm-up starts only when none is waiting).
    asked: AtomicU64,
}

impl CancelState {
    fn is_cancelled(&self, id: RequestId) -> bool {
        self.cancelled_through.load(Ordering::SeqCst) >= id
    }

    fn stop_model(&self) {
        if let Ok(flag) = self.model_flag.lock()
            && let Some(flag) = flag.as_ref()
        {
            flag.store(true, Ordering::SeqCst);
        }
    }
}

pub struct InferenceHandle {
    requests: Sender<AskRequest>,
    cancel: Arc<CancelState>,
}

impl InferenceHandle {
    /// Starts the worker; `load` runs first, on the worker thread.
    pub fn spawn(load: Loader, out: Sender<Msg>) -> Self {
        let (requests, inbox) = mpsc::channel();
        let cancel = Arc::new(CancelState::default());
        let state = Arc::clone(&cancel);
        let spawned = thread::Builder::new()
            .name("inference".into())
            .spawn(move || worker(load, inbox, out, state));
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start the inference thread");
        }
        Self { requests, cancel }
    }

    pub fn ask(&self, id: RequestId, question: String, earlier: Vec<EarlierTurn>) {
        self.cancel.asked.fetch_add(1, Ordering::SeqCst);
        let _ = self.requests.send(AskRequest {
            id,
            question,
            earlier,
        });
        // The question continues from whatever part of the prefix is already cached.
        if self.cancel.warming.load(Ordering::SeqCst) {
            self.cancel.stop_model();
        }
    }

    /// Stops request `id` (and any older one) at once.
    pub(crate) fn cancel(&self, id: RequestId) {
        self.cancel
            .cancelled_through
            .fetch_max(id, Ordering::SeqCst);
        self.cancel.stop_model();
        if let Ok(query) = self.cancel.query.lock()
            && let Some(query) = query.as_ref()
        {
            query.cancel();
        }
    }
}

fn worker(load: Loader, inbox: Receiver<AskRequest>, out: Sender<Msg>, cancel: Arc<CancelState>) {
    let report = |event: StartupEvent| {
        let _ = out.send(Msg::Startup(event));
    };
    let mut session = match load(&report) {
        Ok(session) => session,
        Err(error) => {
            let error = WorkerError::Startup(error);
            report(StartupEvent::Failed(error.clone()));
            // Answer every question with the load error so none waits forever.
            while let Ok(AskRequest { id, .. }) = inbox.recv() {
                let _ = out.send(Msg::Pipeline {
                    id,
                    update: PipelineUpdate::Finished(Err(error.clone())),
                });
            }
            return;
        }
    };
    if let Ok(mut flag) = cancel.model_flag.lock() {
        *flag = Some(Arc::clone(&session.model_cancel));
    }
    if let Ok(mut query) = cancel.query.lock() {
        *query = Some(session.db.canceller());
    }
    warm_up(&mut session, &cancel, &out);
    while let Ok(mut request) = inbox.recv() {
        // Newest wins: older questions still queued were replaced by the user.
        while let Ok(newer) = inbox.try_recv() {
            request = newer;
        }
        let id = request.id;
        if cancel.is_cancelled(id) {
            continue;
        }
        let result = run_one(&mut session, &cancel, &request, &out);
        if cancel.is_cancelled(id) {
            continue;
        }
        let update = match result {
            Ok(outcome) => PipelineUpdate::Finished(Ok(Box::new(outcome))),
            Err(error) => PipelineUpdate::Finished(Err(WorkerError::Pipeline(error.to_string()))),
        };
        let _ = out.send(Msg::Pipeline { id, update });
    }
}

/// Evaluates the session's warm-up request unless a question is already waiting; a
/// question arriving meanwhile stops it (see [`InferenceHandle::ask`]).
fn warm_up(session: &mut Session, cancel: &CancelState, out: &Sender<Msg>) {
    let Some(request) = session.warm.take() else {
        return;
    };
    if cancel.asked.load(Ordering::SeqCst) > 0 {
        return;
    }
    cancel.warming.store(true, Ordering::SeqCst);
    let _ = out.send(Msg::Startup(StartupEvent::Warming));
    let started = std::time::Instant::now();
    // A question sent between the check above and the engine clearing its flag is not
    // lost: it waits for the rest of the prefix, which it would have evaluated anyway.
    let result = session.model.complete(&request, &mut |_| {});
    cancel.warming.store(false, Ordering::SeqCst);
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let stopped = match result {
        Ok(_) => false,
        Err(LlmError::Cancelled) => true,
        Err(error) => {
            tracing::warn!(%error, "warming the prompt cache failed");
            true
        }
    };
    tracing::info!(elapsed_ms, stopped, "schema prefix warm-up");
    let _ = out.send(Msg::Startup(StartupEvent::Warmed {
        elapsed_ms,
        stopped,
    }));
}

fn run_one(
    session: &mut Session,
    cancel: &Arc<CancelState>,
    request: &AskRequest,
    out: &Sender<Msg>,
) -> Result<crate::core::pipeline::outcome::RunOutcome, PipelineError> {
    let id = request.id;
    let mut model = Cancellable {
        inner: session.model.as_mut(),
        flag: Arc::clone(&session.model_cancel),
        state: Arc::clone(cancel),
        id,
    };
    run_follow_up(
        &mut model,
        &session.db,
        session.context.as_mut(),
        &request.question,
        &request.earlier,
        &session.config,
        &mut |event| {
            if !cancel.is_cancelled(id) {
                let _ = out.send(Msg::Pipeline {
                    id,
                    update: PipelineUpdate::from_event(event),
                });
            }
        },
    )
}

/// Closes the gap between a cancel and the engine resetting its flag at the start of
/// each completion: a cancelled request never starts another completion, and every
/// streamed piece re-raises the flag.
struct Cancellable<'a> {
    inner: &'a mut dyn LanguageModel,
    flag: Arc<AtomicBool>,
    state: Arc<CancelState>,
    id: RequestId,
}

impl LanguageModel for Cancellable<'_> {
    fn complete(
        &mut self,
        request: &CompletionRequest,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion, LlmError> {
        if self.state.is_cancelled(self.id) {
            return Err(LlmError::Cancelled);
        }
        let state = Arc::clone(&self.state);
        let flag = Arc::clone(&self.flag);
        let id = self.id;
        let result = self.inner.complete(request, &mut |text| {
            if state.is_cancelled(id) {
                flag.store(true, Ordering::SeqCst);
            } else {
                on_text(text);
            }
        });
        if self.state.is_cancelled(self.id) {
            return Err(LlmError::Cancelled);
        }
        result
    }

    fn model_id(&self) -> String {
        self.inner.model_id()
    }

    fn count_tokens(&self, text: &str) -> usize {
        self.inner.count_tokens(text)
    }
}
