//! Messages into the pure update function and the effects it asks the shell to perform.
//! Result messages are named in the past tense; every worker reply carries the
//! [`RequestId`] it answers so stale replies can be dropped.

use std::path::PathBuf;

use crossterm::event::KeyEvent;

use crate::core::db::exec::QueryResult;
use crate::core::feedback::history::RetrainingStatus;
use crate::core::feedback::history::{HistoryEntry, Rating, RunId};
use crate::core::finetune::TrainingEvent;
use crate::core::pipeline::follow_up::EarlierTurn;
use crate::core::pipeline::outcome::{PipelineEvent, RunOutcome, Stage};
use crate::core::retrieval::provider::PromptContext;

pub type RequestId = u64;

/// Why a worker's request failed, named by the worker that failed; the message is what the
/// user sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkerError {
    /// The model or the database could not be loaded at start-up.
    #[error("{0}")]
    Startup(String),
    #[error("{0}")]
    Pipeline(String),
    /// The user's own SQL did not run.
    #[error("{0}")]
    Query(String),
    #[error("{0}")]
    History(String),
    #[error("{0}")]
    Export(String),
    #[error("{0}")]
    Clipboard(String),
    #[error("{0}")]
    Editor(String),
    #[error("{0}")]
    Training(String),
}

/// An owned copy of a [`PipelineEvent`], sent from the inference worker.
#[derive(Debug, Clone, PartialEq)]
pub enum PipelineUpdate {
    Stage(Stage),
    Context(PromptContext),
    SqlText {
        attempt: u32,
        text: String,
    },
    SqlRestarted {
        attempt: u32,
    },
    AttemptFailed {
        attempt: u32,
        sql: String,
        error: String,
    },
    Executed(QueryResult),
    AnswerText(String),
    /// The run ended: its outcome, or why it could not run.
    Finished(Result<Box<RunOutcome>, WorkerError>),
}

impl PipelineUpdate {
    pub(crate) fn from_event(event: PipelineEvent<'_>) -> Self {
        match event {
            PipelineEvent::Stage(stage) => Self::Stage(stage),
            PipelineEvent::Context(context) => Self::Context(context.clone()),
            PipelineEvent::SqlText { attempt, text } => Self::SqlText {
                attempt,
                text: text.to_string(),
            },
            PipelineEvent::SqlRestarted { attempt } => Self::SqlRestarted { attempt },
            PipelineEvent::AttemptFailed {
                attempt,
                sql,
                error,
            } => Self::AttemptFailed {
                attempt,
                sql: sql.to_string(),
                error: error.to_string(),
            },
            PipelineEvent::Executed(result) => Self::Executed(result.clone()),
            PipelineEvent::AnswerText(text) => Self::AnswerText(text.to_string()),
        }
    }
}

/// Progress of opening the database and loading the model.
#[derive(Debug, Clone, PartialEq)]
pub enum StartupEvent {
    /// The schema is known: what the Schema pane shows before any question.
    SchemaRead {
        schema_text: String,
        tables: usize,
    },
    /// A step of the start-up is under way ("loading model", "preparing schema prompt").
    Phase(String),
    ModelReady {
        model: String,
    },
    /// The worker began evaluating the schema prefix in the background.
    Warming,
    /// The warm-up ended: done, or `stopped` early by a question (which continues from it).
    Warmed {
        elapsed_ms: u64,
        stopped: bool,
    },
    Failed(WorkerError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Json,
}

impl ExportFormat {
    pub(crate) fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Json => "json",
        }
    }
}

/// What the mouse did, where, on a screen of what size (the panes' places follow from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MouseInput {
    pub action: MouseAction,
    pub column: u16,
    pub row: u16,
    pub width: u16,
    pub height: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MouseAction {
    ScrollUp,
    ScrollDown,
    Click,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    Key(KeyEvent),
    /// The wheel or a click: acts on the pane under the pointer, never on the typed text.
    Mouse(MouseInput),
    Paste(String),
    Resized,
    /// Milliseconds since the app started; drives spinners and elapsed times.
    Tick(u64),
    Startup(StartupEvent),
    Pipeline {
        id: RequestId,
        update: PipelineUpdate,
    },
    SqlRan {
        id: RequestId,
        result: Result<QueryResult, WorkerError>,
        elapsed_ms: u64,
    },
    RunRecorded {
        id: RequestId,
        run: Result<RunId, WorkerError>,
    },
    HistoryListed {
        id: RequestId,
        entries: Result<Vec<HistoryEntry>, WorkerError>,
    },
    RunLoaded {
        run: RunId,
        outcome: Result<Option<Box<RunOutcome>>, WorkerError>,
    },
    /// A rating or correction was written (or failed to be).
    Stored(Result<String, WorkerError>),
    EditorClosed(Result<String, WorkerError>),
    Exported(Result<PathBuf, WorkerError>),
    Copied(Result<usize, WorkerError>),
    /// How much new feedback piled up since the last training (`None`: the store does not
    /// track it).
    RetrainingChecked(Result<Option<RetrainingStatus>, WorkerError>),
    /// From the background training process.
    Training(TrainingUpdate),
    /// SIGTERM, SIGHUP or an outside SIGINT arrived: quit the way the quit key does, so
    /// the terminal is given back.
    Signalled,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TrainingUpdate {
    /// A progress line of `train run --progress json`.
    Event(TrainingEvent),
    /// The process exited: cleanly, or with the reason (its last error line).
    Ended(Result<(), WorkerError>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Ask {
        id: RequestId,
        question: String,
        /// The conversation's earlier turns when this is a follow-up (oldest first).
        earlier: Vec<EarlierTurn>,
    },
    CancelAsk {
        id: RequestId,
    },
    RunSql {
        id: RequestId,
        sql: String,
    },
    CancelSql {
        id: RequestId,
    },
    /// The shown SQL again, keeping up to `row_limit` rows.
    LoadMore {
        id: RequestId,
        sql: String,
        row_limit: usize,
    },
    RecordRun {
        id: RequestId,
        outcome: Box<RunOutcome>,
        /// The run this one follows up (its thread).
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
    ListHistory {
        id: RequestId,
    },
    LoadRun {
        run: RunId,
    },
    Copy(String),
    Export {
        format: ExportFormat,
        result: Box<QueryResult>,
        name: String,
    },
    OpenEditor {
        sql: String,
    },
    /// Ask the store how much feedback is new since the last training.
    CheckRetraining {
        threshold: u64,
    },
    /// Start `train run` on this database as a background process.
    StartTraining,
    Quit,
}
