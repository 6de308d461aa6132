//! The terminal app (`nano-analyst DB`): five panes over one question's run, streaming
//! from the model, with inline correction and a history view.
//!
//! `app` is the pure core (`update(model, msg) -> effects`), `view` draws it, `workers`
//! own the blocking resources, `shell` connects them. This module sets up the terminal
//! and the real workers.

pub mod app;
pub mod clipboard;
pub mod config;
pub mod keymap;
pub mod memory_history;
pub mod shell;
pub mod view;
pub mod workers;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc::{self, Sender};
use std::thread;
use std::time::Duration;

use crossterm::event::{self, Event, KeyEventKind, MouseEventKind};

use crate::core::db::exec::ReadOnlyDb;
use crate::core::db::render::{RenderOptions, render_schema};
use crate::core::feedback::history::{DbScope, RunHistory};
use crate::core::feedback::store::HistoryStore;
use crate::core::model::LanguageModel;
use crate::core::retrieval::provider::ContextProvider;
use crate::error::AppError;
use crate::paths::AppPaths;
use crate::session::retrieval::index_progress_text;
use crate::session::{ModelEngine, QuestionContext, RuntimeOptions};
use crate::tui::app::{Model, Msg, StartupEvent};
use crate::tui::config::TuiConfig;
use crate::tui::shell::{Shell, run_loop};
use crate::tui::workers::database::DbHandle;
use crate::tui::workers::inference::{InferenceHandle, Loader, Session};
use crate::tui::workers::store::StoreHandle;
use crate::tui::workers::training::{TrainingCommand, process_launcher};

/// The run history the app records into: the same store as `ask`, `history` and `correct`.
pub(crate) fn open_history(paths: &AppPaths) -> Result<Box<dyn RunHistory + Send>, AppError> {
    Ok(Box::new(HistoryStore::open(&paths.history_db())?))
}

/// Identifies the database in the history: canonical path and schema fingerprint.
pub(crate) fn db_scope(path: &Path) -> Result<DbScope, AppError> {
    let db = ReadOnlyDb::open(path)?;
    // Refused here, before the terminal is taken, like every other open error.
    let fingerprint = db.askable_schema()?.fingerprint();
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    Ok(DbScope {
        path: path.display().to_string(),
        fingerprint,
    })
}

/// The loader the real app uses: database, then the model; the schema prompt's KV cache is
/// warmed by the worker afterwards (`Session::warm`), while the user types.
pub(crate) fn llama_loader(database: PathBuf, options: RuntimeOptions) -> Loader {
    Box::new(move |report: &dyn Fn(StartupEvent)| {
        let db = ReadOnlyDb::open(&database).map_err(|e| e.to_string())?;
        let schema = db.askable_schema().map_err(|e| e.to_string())?;
        let mut schema_text = render_schema(&schema, None, RenderOptions::default());
        for broken in &schema.broken {
            schema_text.push_str(&format!("-- left out: {broken}\n"));
        }
        report(StartupEvent::SchemaRead {
            schema_text,
            tables: schema.tables.len(),
        });
        report(StartupEvent::Phase("indexing the schema".into()));
        let mut progress = |embedded: usize, total: usize| {
            report(StartupEvent::Phase(index_progress_text(embedded, total)));
        };
        let question_context = QuestionContext::open(&db, &schema, &options, None, &mut progress)
            .map_err(|e| e.to_string())?;
        if let Some(note) = &question_context.retrieval_note {
            tracing::info!("{note}");
        }
        let mut context: Box<dyn ContextProvider> = question_context.context;
        let phase = if options.remote.is_some() {
            "connecting to the model server"
        } else {
            "loading the model"
        };
        report(StartupEvent::Phase(phase.into()));
        let engine = ModelEngine::load(&options).map_err(|e| e.to_string())?;
        let warm = (!engine.is_remote()).then(|| warm_request(context.as_mut(), db.dialect()));
        let model_id = engine.model_id();
        let model_cancel = engine.cancel_flag();
        report(StartupEvent::ModelReady { model: model_id });
        Ok(Session {
            model: Box::new(engine),
            model_cancel,
            db,
            context,
            config: options.pipeline.clone(),
            warm,
        })
    })
}

pub use crate::core::pipeline::prompt::warm_request;

/// Why the app stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The user quit.
    Quit,
    /// A signal asked it to (its number); the terminal was given back first.
    Signalled(i32),
}

/// The one line the app prints when it has no terminal to draw on.
pub const NEEDS_TERMINAL: &str = "the app needs a terminal (stdin and stdout must be a TTY); \
     use `nano-analyst ask DB QUESTION` in scripts";

/// Opens the terminal app on `database`.
pub fn run(database: &Path, options: &RuntimeOptions) -> Result<Ended, AppError> {
    // ratatui panics when it cannot put a missing terminal in raw mode.
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        return Err(AppError::Usage(NEEDS_TERMINAL.into()));
    }
    let settings = crate::config::Settings::load(options.paths.config_file.as_deref())?;
    let source = options
        .paths
        .config_file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "config".into());
    let config = TuiConfig::from_settings(&settings, &source).map_err(AppError::TuiConfig)?;
    let scope = db_scope(database)?;
    let history = open_history(&options.paths)?;

    let (tx, rx) = mpsc::channel::<Msg>();
    let export_dir = config
        .export_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("."));
    let mouse = config.mouse;
    let label = database
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| database.display().to_string());
    let mut model = Model::new(config, label, options.pipeline.max_repairs);
    model.retrain_threshold = options.feedback.retrain_threshold;

    let paused = Arc::new(AtomicBool::new(false));
    let mut shell = Shell {
        inference: InferenceHandle::spawn(
            llama_loader(database.to_path_buf(), options.clone()),
            tx.clone(),
        ),
        database: DbHandle::spawn(database, options.pipeline.limits, tx.clone()),
        store: StoreHandle::spawn(history, scope, tx.clone()),
        out: tx.clone(),
        export_dir,
        clipboard: Box::new(clipboard::copy_to_terminal),
        editor: external_editor(Arc::clone(&paused), mouse),
        training: training_command(database, options).map(process_launcher),
        training_handle: None,
    };

    let mut terminal = ratatui::init();
    let _ = crossterm::execute!(std::io::stdout(), event::EnableBracketedPaste);
    if mouse {
        let _ = crossterm::execute!(std::io::stdout(), event::EnableMouseCapture);
    }
    let caught = Arc::new(AtomicI32::new(0));
    let signals = forward_signals(tx.clone(), Arc::clone(&paused), Arc::clone(&caught), mouse);
    spawn_input(tx, Arc::clone(&paused));
    let result = run_loop(&mut terminal, &mut model, &mut shell, &rx, &mut |stats| {
        if stats.draw_time > Duration::from_millis(30) {
            tracing::debug!(?stats, "slow frame");
        }
    });
    restore_terminal(mouse);
    if let Some(signals) = signals {
        signals.close();
    }
    // Stop a question still running so the process exits without waiting for it.
    if let Some(app::Active::Ask(id)) = model.active {
        shell.inference.cancel(id);
    }
    shell.store.finish();
    result.map_err(AppError::io("terminal error"))?;
    Ok(match caught.load(Ordering::SeqCst) {
        0 => Ended::Quit,
        signal => Ended::Signalled(signal),
    })
}

/// Leaves the alternate screen, shows the cursor, ends raw mode, mouse capture and
/// bracketed paste.
fn restore_terminal(mouse: bool) {
    if mouse {
        let _ = crossterm::execute!(std::io::stdout(), event::DisableMouseCapture);
    }
    let _ = crossterm::execute!(std::io::stdout(), event::DisableBracketedPaste);
    ratatui::restore();
}

/// Turns SIGTERM, SIGHUP and an outside SIGINT (Ctrl-C in raw mode is a key, not a signal)
/// into [`Msg::Signalled`], so the loop quits and the terminal is restored on the normal
/// path. A second signal while that quit is under way restores it here and exits at once.
/// SIGINT is ignored while `$EDITOR` owns the terminal: Ctrl-C there is the editor's.
fn forward_signals(
    tx: Sender<Msg>,
    paused: Arc<AtomicBool>,
    caught: Arc<AtomicI32>,
    mouse: bool,
) -> Option<signal_hook::iterator::Handle> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGHUP, SIGINT]) {
        Ok(signals) => signals,
        Err(error) => {
            tracing::warn!(%error, "cannot watch for termination signals");
            return None;
        }
    };
    let handle = signals.handle();
    let spawned = thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if signal == SIGINT && paused.load(Ordering::SeqCst) {
                    continue;
                }
                if caught.swap(signal, Ordering::SeqCst) != 0 {
                    restore_terminal(mouse);
                    std::process::exit(128 + signal);
                }
                tracing::info!(signal, "quitting on a signal");
                let _ = tx.send(Msg::Signalled);
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start the signal thread");
        return None;
    }
    Some(handle)
}

/// `train run` on this database with this app's data directory, config, model and threads.
fn training_command(database: &Path, options: &RuntimeOptions) -> Option<TrainingCommand> {
    let program = std::env::current_exe().ok()?;
    let mut args: Vec<String> = vec![
        "--data-dir".into(),
        options.paths.data_dir.display().to_string(),
        "--model".into(),
        options.engine.model_path.display().to_string(),
        "--threads".into(),
        options.engine.threads.to_string(),
    ];
    if let Some(config) = &options.paths.config_file {
        args.push("--config".into());
        args.push(config.display().to_string());
    }
    args.extend([
        "train".into(),
        "run".into(),
        database.display().to_string(),
        "--yes".into(),
        "--progress".into(),
        "json".into(),
    ]);
    Some(TrainingCommand { program, args })
}

/// Reads terminal events on their own thread; paused while `$EDITOR` owns the terminal.
fn spawn_input(tx: Sender<Msg>, paused: Arc<AtomicBool>) {
    let spawned = thread::Builder::new().name("input".into()).spawn(move || {
        loop {
            if paused.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(20));
                continue;
            }
            match event::poll(Duration::from_millis(50)) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(_) => return,
            }
            let msg = match event::read() {
                Ok(Event::Key(key)) if key.kind != KeyEventKind::Release => Msg::Key(key),
                Ok(Event::Paste(text)) => Msg::Paste(text),
                Ok(Event::Resize(..)) => Msg::Resized,
                Ok(Event::Mouse(mouse)) => {
                    let action = match mouse.kind {
                        MouseEventKind::ScrollUp => app::MouseAction::ScrollUp,
                        MouseEventKind::ScrollDown => app::MouseAction::ScrollDown,
                        MouseEventKind::Down(event::MouseButton::Left) => app::MouseAction::Click,
                        _ => continue,
                    };
                    let (width, height) = crossterm::terminal::size().unwrap_or((80, 24));
                    Msg::Mouse(app::MouseInput {
                        action,
                        column: mouse.column,
                        row: mouse.row,
                        width,
                        height,
                    })
                }
                Ok(_) => continue,
                Err(_) => return,
            };
            if tx.send(msg).is_err() {
                return;
            }
        }
    });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the input thread");
    }
}

/// Suspends the UI, edits the SQL in `$VISUAL`/`$EDITOR` (default `vi`), resumes.
fn external_editor(paused: Arc<AtomicBool>, mouse: bool) -> shell::ExternalEditor {
    Box::new(move |sql: &str| {
        paused.store(true, Ordering::SeqCst);
        // Let the input thread finish its current poll before the editor reads the keys.
        thread::sleep(Duration::from_millis(80));
        let result = edit_in_editor(sql);
        let mut stdout = std::io::stdout();
        let _ = crossterm::terminal::enable_raw_mode();
        let _ = crossterm::execute!(
            stdout,
            crossterm::terminal::EnterAlternateScreen,
            event::EnableBracketedPaste
        );
        if mouse {
            let _ = crossterm::execute!(stdout, event::EnableMouseCapture);
        }
        let _ = stdout.flush();
        paused.store(false, Ordering::SeqCst);
        result
    })
}

fn edit_in_editor(sql: &str) -> Result<String, String> {
    let file = tempfile::Builder::new()
        .prefix("nano-analyst-")
        .suffix(".sql")
        .tempfile()
        .map_err(|e| format!("cannot create a temporary file: {e}"))?;
    std::fs::write(file.path(), sql).map_err(|e| e.to_string())?;
    ratatui::restore();
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    let mut parts = editor.split_whitespace();
    let program = parts.next().unwrap_or("vi");
    let status = std::process::Command::new(program)
        .args(parts)
        .arg(file.path())
        .status()
        .map_err(|e| format!("cannot start '{editor}': {e}"))?;
    if !status.success() {
        return Err(format!("'{editor}' exited with {status}"));
    }
    std::fs::read_to_string(file.path()).map_err(|e| e.to_string())
}
