//! The shell around the pure core: turns [`Effect`]s into worker requests and runs the
//! event loop (messages in, `update`, draw only when dirty). Generic over the ratatui
//! backend so tests drive it headless with `TestBackend`.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::Backend;

use crate::tui::app::{Effect, Model, Msg, Stage, WorkerError, update};
use crate::tui::view::view;
use crate::tui::workers::database::DbHandle;
use crate::tui::workers::export;
use crate::tui::workers::inference::InferenceHandle;
use crate::tui::workers::store::{StoreHandle, StoreRequest};
use crate::tui::workers::training::{TrainingHandle, TrainingLauncher};

/// While something runs, the clock ticks this often (spinners, elapsed times).
const BUSY_TICK: Duration = Duration::from_millis(100);
const IDLE_TICK: Duration = Duration::from_secs(1);
/// Most messages folded into one frame (tokens arrive faster than frames).
const MAX_BATCH: usize = 1024;

/// Copies text to the clipboard (OSC 52 in the terminal; captured in tests).
pub(crate) type Clipboard = Box<dyn FnMut(&str) -> Result<(), String>>;
/// Hands the terminal to `$EDITOR` with the SQL and returns the edited text.
pub(crate) type ExternalEditor = Box<dyn FnMut(&str) -> Result<String, String>>;

pub struct Shell {
    pub inference: InferenceHandle,
    pub database: DbHandle,
    pub store: StoreHandle,
    pub out: Sender<Msg>,
    pub export_dir: PathBuf,
    pub clipboard: Clipboard,
    pub editor: ExternalEditor,
    /// Starts background fine-tuning (`None`: not available, e.g. in tests).
    pub training: Option<TrainingLauncher>,
    /// The running training process, stopped when the app quits.
    pub training_handle: Option<TrainingHandle>,
}

impl Shell {
    /// Carries out one effect. Returns whether the screen must be redrawn from scratch
    /// (after the terminal was handed to an editor).
    pub(crate) fn dispatch(&mut self, effect: Effect) -> bool {
        match effect {
            Effect::Ask {
                id,
                question,
                earlier,
            } => self.inference.ask(id, question, earlier),
            Effect::CancelAsk { id } => self.inference.cancel(id),
            Effect::RunSql { id, sql } => self.database.run(id, sql),
            Effect::LoadMore { id, sql, row_limit } => {
                self.database.run_with_rows(id, sql, row_limit)
            }
            Effect::CancelSql { .. } => self.database.cancel(),
            Effect::RecordRun {
                id,
                outcome,
                parent,
            } => self.store.send(StoreRequest::Record {
                id,
                outcome,
                parent,
            }),
            Effect::Rate { run, rating, note } => {
                self.store.send(StoreRequest::Rate { run, rating, note })
            }
            Effect::Correct { run, sql } => self.store.send(StoreRequest::Correct { run, sql }),
            Effect::ListHistory { id } => self.store.send(StoreRequest::List { id }),
            Effect::LoadRun { run } => self.store.send(StoreRequest::Load { run }),
            Effect::Copy(text) => {
                let chars = text.chars().count();
                let _ = self.out.send(Msg::Copied(
                    (self.clipboard)(&text)
                        .map(|()| chars)
                        .map_err(WorkerError::Clipboard),
                ));
            }
            Effect::Export {
                format,
                result,
                name,
            } => export::spawn(format, *result, &name, &self.export_dir, self.out.clone()),
            Effect::OpenEditor { sql } => {
                let edited = (self.editor)(&sql);
                let _ = self
                    .out
                    .send(Msg::EditorClosed(edited.map_err(WorkerError::Editor)));
                return true;
            }
            Effect::CheckRetraining { threshold } => {
                self.store.send(StoreRequest::Retraining { threshold })
            }
            Effect::StartTraining => {
                let started = match self.training.as_mut() {
                    Some(launch) => launch(self.out.clone()),
                    None => Err("training is not available here".into()),
                };
                match started {
                    Ok(handle) => self.training_handle = Some(handle),
                    Err(error) => {
                        let _ =
                            self.out
                                .send(Msg::Training(crate::tui::app::TrainingUpdate::Ended(Err(
                                    WorkerError::Training(error),
                                ))));
                    }
                }
            }
            Effect::Quit => {
                if let Some(handle) = &self.training_handle {
                    handle.interrupt();
                }
            }
        }
        false
    }
}

/// What one drawn frame took, for the latency benchmark and logs.
#[derive(Debug, Clone, Copy)]
pub struct FrameStats {
    pub drawn_at: Instant,
    pub draw_time: Duration,
    /// Key presses handled since the previous frame.
    pub keys: usize,
    pub messages: usize,
    /// Whether the model was streaming tokens (SQL or answer) when the frame was drawn.
    pub streaming: bool,
    /// Whether anything was running (start-up included).
    pub busy: bool,
}

/// Runs until the model asks to quit or every sender is gone.
pub fn run_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    model: &mut Model,
    shell: &mut Shell,
    inbox: &Receiver<Msg>,
    on_frame: &mut dyn FnMut(FrameStats),
) -> Result<(), B::Error> {
    let started = Instant::now();
    let mut last_tick = Instant::now();
    for effect in model.init() {
        shell.dispatch(effect);
    }
    let mut batch = Vec::new();
    let (mut keys, mut messages) = (0, 0);
    loop {
        if model.dirty {
            let before = Instant::now();
            terminal.draw(|frame| view(model, frame))?;
            model.dirty = false;
            on_frame(FrameStats {
                drawn_at: Instant::now(),
                draw_time: before.elapsed(),
                keys,
                messages,
                busy: model.busy(),
                streaming: matches!(
                    model.stage,
                    Stage::Generating | Stage::Repairing { .. } | Stage::Answering
                ),
            });
            (keys, messages) = (0, 0);
        }
        if model.quit {
            return Ok(());
        }
        let wait = if model.busy() { BUSY_TICK } else { IDLE_TICK };
        match inbox.recv_timeout(wait) {
            Ok(msg) => batch.push(msg),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
        while batch.len() < MAX_BATCH {
            match inbox.try_recv() {
                Ok(msg) => batch.push(msg),
                Err(_) => break,
            }
        }
        if last_tick.elapsed() >= BUSY_TICK || batch.is_empty() {
            last_tick = Instant::now();
            let now = started.elapsed().as_millis() as u64;
            update(model, Msg::Tick(now));
        }
        for msg in batch.drain(..) {
            messages += 1;
            keys += usize::from(matches!(msg, Msg::Key(_)));
            for effect in update(model, msg) {
                if shell.dispatch(effect) {
                    terminal.clear()?;
                    model.dirty = true;
                }
            }
        }
    }
}
