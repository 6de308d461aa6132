//! Shared builders for the TUI tests: a model with the built-in config, key events,
//! scripted pipeline runs and results.

use std::fs::File;
use std::path::Path;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use nano_analyst::core::db::exec::{Cell, QueryResult};
use nano_analyst::core::pipeline::outcome::{Attempt, RunOutcome, Stage, Timings};
use nano_analyst::core::retrieval::provider::{ContextMode, PromptContext};
use nano_analyst::tui::app::{Effect, Model, Msg, PipelineUpdate, RequestId, update};
use nano_analyst::tui::config::TuiConfig;

pub fn model() -> Model {
    Model::new(TuiConfig::builtin(), "chinook.db", 3)
}

pub fn ready_model() -> Model {
    let mut model = model();
    update(
        &mut model,
        Msg::Startup(nano_analyst::tui::app::StartupEvent::SchemaRead {
            schema_text: SCHEMA.into(),
            tables: 3,
        }),
    );
    update(
        &mut model,
        Msg::Startup(nano_analyst::tui::app::StartupEvent::ModelReady {
            model: "qwen".into(),
        }),
    );
    model
}

pub const SCHEMA: &str = "Album(AlbumId INTEGER PK, Title TEXT, ArtistId INTEGER -> Artist)\n  e.g. 347 rows\nArtist(ArtistId INTEGER PK, Name TEXT)\nGenre(GenreId INTEGER PK, Name TEXT)\nTrack(TrackId INTEGER PK, Name TEXT, GenreId INTEGER -> Genre)";

pub fn key(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

pub fn ctrl(c: char) -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

pub fn alt(c: char) -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::ALT))
}

/// Sends each message, collecting every effect.
pub fn send(model: &mut Model, messages: impl IntoIterator<Item = Msg>) -> Vec<Effect> {
    messages
        .into_iter()
        .flat_map(|msg| update(model, msg))
        .collect()
}

pub fn type_text(model: &mut Model, text: &str) -> Vec<Effect> {
    send(model, text.chars().map(|c| key(KeyCode::Char(c))))
}

pub fn pipeline(id: RequestId, update: PipelineUpdate) -> Msg {
    Msg::Pipeline { id, update }
}

pub fn genre_counts() -> QueryResult {
    QueryResult {
        columns: vec!["Name".into(), "Tracks".into()],
        rows: [
            ("Rock", 1297),
            ("Latin", 579),
            ("Metal", 374),
            ("Alternative & Punk", 332),
            ("Jazz", 130),
            ("ロック", 12),
        ]
        .into_iter()
        .map(|(name, n)| vec![Cell::Text(name.into()), Cell::Integer(n)])
        .collect(),
        total_rows: Some(25),
        cut: None,
    }
}

pub const GOOD_SQL: &str = "SELECT g.Name, count(*) AS Tracks FROM Track t JOIN Genre g ON g.GenreId = t.GenreId GROUP BY g.Name ORDER BY Tracks DESC";
pub const BAD_SQL: &str = "SELECT Genre.Name, count(*) FROM Track GROUP BY Genre";

pub fn context() -> PromptContext {
    PromptContext {
        schema_text: SCHEMA.into(),
        tables_sent: vec![
            "Album".into(),
            "Artist".into(),
            "Genre".into(),
            "Track".into(),
        ],
        mode: ContextMode::WholeSchema,
        examples: Vec::new(),
        glossary: Vec::new(),
        reasons: Vec::new(),
    }
}

pub fn timings() -> Timings {
    Timings {
        retrieve_ms: 0,
        prompt_tokens: 900,
        cached_prompt_tokens: 880,
        ttft_ms: 420,
        generate_ms: 2100,
        execute_ms: 3,
        answer_ms: 1500,
        total_ms: 4100,
    }
}

pub fn outcome(question: &str) -> RunOutcome {
    RunOutcome {
        question: question.into(),
        sql: Some(GOOD_SQL.into()),
        result: Some(genre_counts()),
        answer: Some("Rock has the most tracks (1297), followed by Latin (579).".into()),
        attempts: vec![
            Attempt {
                sql: BAD_SQL.into(),
                error: Some("no such column: Genre.Name".into()),
            },
            Attempt {
                sql: GOOD_SQL.into(),
                error: None,
            },
        ],
        tables_sent: context().tables_sent,
        tables_used: vec!["Track".into(), "Genre".into()],
        context_mode: ContextMode::WholeSchema,
        timings: timings(),
        model: "qwen".into(),
        error: None,
        rewrites: Vec::new(),
        source: None,
        confidence: None,
        prompt: None,
    }
}

/// The events a run with one repair produces, up to (not including) the finish.
pub fn repaired_run_events(id: RequestId) -> Vec<Msg> {
    let mut events = vec![
        pipeline(id, PipelineUpdate::Stage(Stage::Retrieving)),
        pipeline(id, PipelineUpdate::Context(context())),
        pipeline(id, PipelineUpdate::Stage(Stage::Generating(1))),
    ];
    for piece in BAD_SQL.split_inclusive(' ') {
        events.push(pipeline(
            id,
            PipelineUpdate::SqlText {
                attempt: 1,
                text: piece.into(),
            },
        ));
    }
    events.push(pipeline(id, PipelineUpdate::Stage(Stage::Executing(1))));
    events.push(pipeline(
        id,
        PipelineUpdate::AttemptFailed {
            attempt: 1,
            sql: BAD_SQL.into(),
            error: "no such column: Genre.Name".into(),
        },
    ));
    events.push(pipeline(id, PipelineUpdate::Stage(Stage::Repairing(2))));
    for piece in GOOD_SQL.split_inclusive(' ') {
        events.push(pipeline(
            id,
            PipelineUpdate::SqlText {
                attempt: 2,
                text: piece.into(),
            },
        ));
    }
    events.push(pipeline(id, PipelineUpdate::Stage(Stage::Executing(2))));
    events.push(pipeline(id, PipelineUpdate::Executed(genre_counts())));
    events.push(pipeline(id, PipelineUpdate::Stage(Stage::Answering)));
    events.push(pipeline(
        id,
        PipelineUpdate::AnswerText("Rock has the most tracks".into()),
    ));
    events
}

/// Asks `question` on a ready model and returns the request id.
pub fn ask(model: &mut Model, question: &str) -> RequestId {
    type_text(model, question);
    let effects = send(model, [key(KeyCode::Enter)]);
    effects
        .iter()
        .find_map(|e| match e {
            Effect::Ask { id, .. } => Some(*id),
            _ => None,
        })
        .expect("Enter asks")
}

/// Holds `/tmp/nano-model.lock` (flock, like `flock(1)`) so real-model runs in other
/// processes take turns. Set NANO_MODEL_LOCK_HELD=1 when running under `flock` already.
pub fn model_file_lock() -> Option<File> {
    if std::env::var_os("NANO_MODEL_LOCK_HELD").is_some() {
        return None;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(Path::new("/tmp/nano-model.lock"))
        .ok()?;
    file.lock().ok()?;
    Some(file)
}

/// The app's shell with real workers over Chinook, an in-memory history and `loader` for
/// the model: what the event-loop tests drive.
pub fn chinook_shell(
    loader: nano_analyst::tui::workers::inference::Loader,
    tx: &std::sync::mpsc::Sender<Msg>,
) -> nano_analyst::tui::shell::Shell {
    use nano_analyst::core::db::exec::ExecLimits;
    use nano_analyst::core::feedback::history::DbScope;
    use nano_analyst::tui::memory_history::MemoryHistory;
    use nano_analyst::tui::workers::database::DbHandle;
    use nano_analyst::tui::workers::inference::InferenceHandle;
    use nano_analyst::tui::workers::store::StoreHandle;

    let scope = DbScope {
        path: "chinook".into(),
        fingerprint: "x".into(),
    };
    nano_analyst::tui::shell::Shell {
        inference: InferenceHandle::spawn(loader, tx.clone()),
        database: DbHandle::spawn(
            &crate::support::chinook_path(),
            ExecLimits::default(),
            tx.clone(),
        ),
        store: StoreHandle::spawn(Box::new(MemoryHistory::new()), scope, tx.clone()),
        out: tx.clone(),
        export_dir: std::env::temp_dir(),
        clipboard: Box::new(|_| Ok(())),
        editor: Box::new(|sql| Ok(sql.to_string())),
        training: None,
        training_handle: None,
    }
}
