//! Start warm, with a scripted model whose prompt evaluation takes time chunk by chunk and
//! keeps what it evaluated (as llama.cpp's KV cache does): the worker warms the schema
//! prefix while the user types; a question asked meanwhile stops the warm-up and
//! continues from what is cached; a question asked once it finished waits for no prefix.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use nano_analyst::core::db::exec::ReadOnlyDb;
use nano_analyst::core::model::{
    ChatMessage, Completion, CompletionRequest, LanguageModel, LlmError, Role, Sampling, StopReason,
};
use nano_analyst::core::retrieval::provider::WholeSchemaContext;
use nano_analyst::tui::app::{Msg, PipelineUpdate, StartupEvent};
use nano_analyst::tui::workers::inference::{InferenceHandle, Loader, Session};

use crate::support::{chinook_path, default_pipeline};

const CHUNK: Duration = Duration::from_millis(100);
/// The schema prefix: 3 s of prompt evaluation.
const PREFIX_CHUNKS: usize = 30;
/// What the warm-up request costs after the prefix (its stand-in question and one token).
const WARM_TAIL_CHUNKS: usize = 10;

struct Prefixed {
    flag: Arc<AtomicBool>,
    cached: Arc<AtomicUsize>,
}

impl Prefixed {
    fn evaluate(&self, chunks: usize) -> Result<(), LlmError> {
        for _ in 0..chunks {
            if self.flag.load(Ordering::SeqCst) {
                return Err(LlmError::Cancelled);
            }
            thread::sleep(CHUNK);
        }
        Ok(())
    }
}

impl LanguageModel for Prefixed {
    fn complete(
        &mut self,
        request: &CompletionRequest,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion, LlmError> {
        // The engine clears its flag when a request starts.
        self.flag.store(false, Ordering::SeqCst);
        let started = Instant::now();
        while self.cached.load(Ordering::SeqCst) < PREFIX_CHUNKS {
            self.evaluate(1)?;
            self.cached.fetch_add(1, Ordering::SeqCst);
        }
        let text = if request.max_tokens == 1 {
            self.evaluate(WARM_TAIL_CHUNKS)?;
            String::new()
        } else if request.assistant_prefix.contains("sql") {
            on_text("Name FROM Genre");
            "Name FROM Genre".to_string()
        } else {
            on_text("There are 25 genres.");
            "There are 25 genres.".to_string()
        };
        Ok(Completion {
            generated_tokens: 3,
            text,
            prompt_tokens: 10,
            cached_prompt_tokens: 0,
            time_to_first_token: started.elapsed(),
            elapsed: started.elapsed(),
            stop_reason: StopReason::StopString,
            mean_logprob: None,
        })
    }

    fn model_id(&self) -> String {
        "prefixed".into()
    }

    fn count_tokens(&self, text: &str) -> usize {
        text.len() / 4
    }
}

fn warm_request() -> CompletionRequest {
    CompletionRequest {
        messages: vec![ChatMessage::new(Role::System, "schema".to_string())],
        assistant_prefix: String::new(),
        max_tokens: 1,
        stop: Vec::new(),
        sampling: Sampling::Greedy,
        grammar: None,
    }
}

fn loader() -> Loader {
    Box::new(|report: &dyn Fn(StartupEvent)| {
        let db = ReadOnlyDb::open(&chinook_path()).map_err(|e| e.to_string())?;
        let schema = db.introspect().map_err(|e| e.to_string())?;
        let flag = Arc::new(AtomicBool::new(false));
        report(StartupEvent::ModelReady {
            model: "prefixed".into(),
        });
        Ok(Session {
            model: Box::new(Prefixed {
                flag: Arc::clone(&flag),
                cached: Arc::default(),
            }),
            model_cancel: flag,
            db,
            context: Box::new(WholeSchemaContext::new(&schema)),
            config: default_pipeline(),
            warm: Some(warm_request()),
        })
    })
}

/// Waits for the first message `wanted` accepts; returns it.
fn wait_for(rx: &Receiver<Msg>, wanted: impl Fn(&Msg) -> bool) -> Msg {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(msg) if wanted(&msg) => return msg,
            Ok(_) => {}
            Err(error) => panic!("no such message: {error}"),
        }
    }
}

/// The model's first SQL token (the pipeline writes the forced opening itself).
fn first_sql(msg: &Msg) -> bool {
    matches!(
        msg,
        Msg::Pipeline {
            update: PipelineUpdate::SqlText { text, .. },
            ..
        } if text.contains("FROM")
    )
}

#[test]
fn a_question_asked_during_the_warm_up_continues_from_the_cached_prefix() {
    let (tx, rx) = mpsc::channel();
    let handle = InferenceHandle::spawn(loader(), tx);
    wait_for(&rx, |m| matches!(m, Msg::Startup(StartupEvent::Warming)));
    thread::sleep(CHUNK * (PREFIX_CHUNKS as u32) / 2);
    let asked = Instant::now();
    handle.ask(1, "List the genres".into(), Vec::new());
    let warmed = wait_for(&rx, |m| {
        matches!(m, Msg::Startup(StartupEvent::Warmed { .. }))
    });
    assert!(
        matches!(
            warmed,
            Msg::Startup(StartupEvent::Warmed { stopped: true, .. })
        ),
        "{warmed:?}"
    );
    wait_for(&rx, first_sql);
    let waited = asked.elapsed();
    // Half the prefix was cached: the question pays for the other half only, never for
    // the whole prefix or the warm-up's own tail.
    let cold = CHUNK * (PREFIX_CHUNKS as u32);
    eprintln!("asked mid-warm-up: first SQL token after {waited:?} (cold prefix {cold:?})");
    assert!(waited < cold, "{waited:?}");
    assert!(
        waited >= cold / 3,
        "the rest of the prefix was evaluated: {waited:?}"
    );
}

#[test]
fn a_question_asked_after_the_warm_up_waits_for_no_prefix() {
    let (tx, rx) = mpsc::channel();
    let handle = InferenceHandle::spawn(loader(), tx);
    let warmed = wait_for(&rx, |m| {
        matches!(m, Msg::Startup(StartupEvent::Warmed { .. }))
    });
    assert!(
        matches!(
            warmed,
            Msg::Startup(StartupEvent::Warmed { stopped: false, .. })
        ),
        "{warmed:?}"
    );
    let asked = Instant::now();
    handle.ask(1, "List the genres".into(), Vec::new());
    wait_for(&rx, first_sql);
    let waited = asked.elapsed();
    eprintln!("asked after the warm-up: first SQL token after {waited:?}");
    assert!(waited < CHUNK * 5, "{waited:?}");
}

#[test]
fn a_question_already_waiting_skips_the_warm_up() {
    let (tx, rx) = mpsc::channel();
    let handle = InferenceHandle::spawn(loader(), tx);
    handle.ask(1, "List the genres".into(), Vec::new());
    let first = wait_for(&rx, |m| {
        first_sql(m) || matches!(m, Msg::Startup(StartupEvent::Warming))
    });
    assert!(first_sql(&first), "{first:?}");
}
