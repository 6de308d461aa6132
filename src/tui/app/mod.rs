//! The Elm-style core of the terminal app: [`Model`] is all UI state, [`update`] is the
//! only place it changes (pure: no IO, no clocks, no threads), and the [`Effect`]s it
//! returns are carried out by the shell (`tui::shell`), whose workers answer with
//! [`Msg`]s. Replies for a request that is no longer the active one are dropped.

mod conversation;
pub mod grid;
mod history_view;
mod mouse;
mod msg;
pub mod starters;
mod training;
mod update;

pub use conversation::Conversation;
pub use grid::{ChartKind, ResultsState, SortOrder};
pub use history_view::HistoryState;
pub use msg::{
    Effect, ExportFormat, MouseAction, MouseInput, Msg, PipelineUpdate, RequestId, StartupEvent,
    TrainingUpdate, WorkerError,
};
pub use training::status_text as training_status;
pub use update::update;

use ratatui_textarea::TextArea;

use crate::core::db::exec::{Cell, QueryResult};
use crate::core::feedback::history::{Rating, RunId};
use crate::core::pipeline::follow_up::EarlierTurn;
use crate::core::pipeline::outcome::{Confidence, Timings};
use crate::core::retrieval::provider::PromptContext;
use crate::tui::config::TuiConfig;
use crate::tui::keymap::KeyContext;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Question,
    Schema,
    Sql,
    Results,
    Answer,
}

impl Pane {
    pub const ORDER: [Pane; 5] = [
        Pane::Question,
        Pane::Schema,
        Pane::Sql,
        Pane::Results,
        Pane::Answer,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Pane::Question => "Question",
            Pane::Schema => "Schema",
            Pane::Sql => "SQL",
            Pane::Results => "Results",
            Pane::Answer => "Answer",
        }
    }

    pub fn number(self) -> usize {
        Pane::ORDER.iter().position(|p| *p == self).unwrap_or(0) + 1
    }
}

/// Where the current run stands, as the status bar shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    Idle,
    Retrieving,
    Generating,
    Executing {
        attempt: u32,
    },
    Repairing {
        repair: u32,
        of: u32,
    },
    Answering,
    /// The user's own SQL is running.
    RunningSql,
    Done,
    Failed(String),
    Cancelled,
}

impl Stage {
    pub(crate) fn is_busy(&self) -> bool {
        matches!(
            self,
            Stage::Retrieving
                | Stage::Generating
                | Stage::Executing { .. }
                | Stage::Repairing { .. }
                | Stage::Answering
                | Stage::RunningSql
        )
    }

    pub fn label(&self) -> String {
        match self {
            Stage::Idle => "ready".into(),
            Stage::Retrieving => "retrieving".into(),
            Stage::Generating => "generating".into(),
            Stage::Executing { attempt } if *attempt > 1 => {
                format!("executing (attempt {attempt})")
            }
            Stage::Executing { .. } => "executing".into(),
            Stage::Repairing { repair, of } => format!("repairing {repair}/{of}"),
            Stage::Answering => "answering".into(),
            Stage::RunningSql => "running your SQL".into(),
            Stage::Done => "done".into(),
            Stage::Failed(_) => "failed".into(),
            Stage::Cancelled => "cancelled".into(),
        }
    }
}

/// The background evaluation of the schema prefix (start warm).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Warm {
    #[default]
    NotStarted,
    Running {
        since_ms: u64,
    },
    Finished {
        elapsed_ms: u64,
        stopped: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Startup {
    Loading { phase: String },
    Ready { model: String },
    Failed(String),
}

/// Fine-tuning as the status bar shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum Training {
    /// Nothing running; retraining is not due (or not known to be).
    Idle,
    /// Enough new corrections and thumbs-downs piled up: the status bar offers retraining.
    Due {
        new_feedback: u64,
        threshold: u64,
    },
    /// The retrain key was pressed once; pressing it again starts, Esc does not.
    Confirming {
        due: bool,
    },
    Running {
        phase: String,
        /// What the phase is doing, as `train run` reports it (progress within a phase).
        detail: String,
        step: usize,
        steps: usize,
        loss: Option<f64>,
        eta_s: Option<u64>,
    },
    Finished {
        id: String,
        passed: bool,
        summary: String,
    },
    Failed(String),
}

impl Training {
    pub fn is_running(&self) -> bool {
        matches!(self, Training::Running { .. })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Active {
    Ask(RequestId),
    Sql(RequestId),
    /// The shown SQL again with a higher row cap ("load more").
    More(RequestId),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptView {
    pub sql: String,
    pub error: Option<String>,
}

/// SQL the user wrote or edited, and what happened when it ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSql {
    pub sql: String,
    pub ran: Option<Result<(), String>>,
}

/// Everything shown about the current question.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunView {
    pub request: RequestId,
    pub question: String,
    /// The conversation's turns this question was asked after (a follow-up), oldest first.
    pub earlier: Vec<EarlierTurn>,
    /// The run it follows up, recorded as its parent.
    pub parent: Option<RunId>,
    pub context: Option<PromptContext>,
    pub attempts: Vec<AttemptView>,
    pub user_sql: Option<UserSql>,
    pub result: Option<QueryResult>,
    pub answer: String,
    pub timings: Option<Timings>,
    pub user_sql_ms: Option<u64>,
    pub error: Option<String>,
    pub run_id: Option<RunId>,
    pub rating: Option<Rating>,
    pub corrected: bool,
    /// How far the finished run's answer can be trusted (SQL pane title, status bar).
    pub confidence: Option<Confidence>,
}

impl RunView {
    /// The SQL the panes are about: the user's when there is one, else the last attempt's.
    pub(crate) fn current_sql(&self) -> Option<&str> {
        if let Some(user) = &self.user_sql {
            return Some(&user.sql);
        }
        self.attempts
            .last()
            .map(|a| a.sql.trim())
            .filter(|s| !s.is_empty())
    }

    /// SQL that produced the shown result, which may be saved as a correction.
    pub(crate) fn verified_sql(&self) -> Option<&str> {
        match &self.user_sql {
            Some(UserSql {
                sql,
                ran: Some(Ok(())),
            }) => Some(sql),
            Some(_) => None,
            None => self
                .attempts
                .last()
                .filter(|a| a.error.is_none() && self.result.is_some())
                .map(|a| a.sql.trim()),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scrolls {
    pub schema: u16,
    pub sql: u16,
    pub answer: u16,
    pub help: u16,
}

#[derive(Debug, Clone)]
pub enum Overlay {
    None,
    Help,
    History(HistoryState),
    Note {
        input: Box<TextArea<'static>>,
    },
    /// One result cell in full (text the grid cuts short); scrolled and closed like help.
    Cell {
        column: String,
        text: String,
    },
}

/// Questions asked before, for Up/Down recall in the input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recall {
    /// Oldest first.
    pub questions: Vec<String>,
    pub index: Option<usize>,
    pub draft: String,
}

impl Recall {
    pub(crate) fn remember(&mut self, question: &str) {
        self.questions.retain(|q| q != question);
        self.questions.push(question.to_string());
        self.index = None;
    }
}

pub struct Model {
    pub config: TuiConfig,
    pub database: String,
    pub max_repairs: u32,
    pub startup: Startup,
    pub schema_text: String,
    /// Tables in the schema, as the database reported them at start-up.
    pub schema_tables: usize,
    /// Words of the table names, for telling follow-ups from new topics.
    pub table_words: Vec<String>,
    pub conversation: Conversation,
    pub warm: Warm,
    /// Questions offered on an empty screen, from the schema's names.
    pub starters: Vec<String>,
    /// The starter the suggest key put in the input last.
    pub next_starter: usize,
    pub stage: Stage,
    pub stage_since_ms: u64,
    pub now_ms: u64,
    pub focus: Pane,
    pub zoomed: bool,
    pub overlay: Overlay,
    pub question: TextArea<'static>,
    pub editor: Option<TextArea<'static>>,
    pub run: RunView,
    pub results: ResultsState,
    pub scrolls: Scrolls,
    pub recall: Recall,
    pub active: Option<Active>,
    pub next_id: RequestId,
    /// A one-line message in the status bar ("copied", "exported to ...").
    pub flash: Option<String>,
    pub training: Training,
    /// New corrections and thumbs-downs that make retraining due (0: never offered).
    pub retrain_threshold: u64,
    /// Verified pairs on this database, once the store said (training needs a few).
    pub verified_pairs: Option<u64>,
    pub dirty: bool,
    pub quit: bool,
}

/// The request id of the history listing made at start-up for question recall.
pub const RECALL_LIST_ID: RequestId = 0;

impl Model {
    pub fn new(config: TuiConfig, database: impl Into<String>, max_repairs: u32) -> Self {
        Self {
            config,
            database: database.into(),
            max_repairs,
            startup: Startup::Loading {
                phase: "opening database".into(),
            },
            schema_text: String::new(),
            schema_tables: 0,
            table_words: Vec::new(),
            conversation: Conversation::default(),
            warm: Warm::NotStarted,
            starters: Vec::new(),
            next_starter: 0,
            stage: Stage::Idle,
            stage_since_ms: 0,
            now_ms: 0,
            focus: Pane::Question,
            zoomed: false,
            overlay: Overlay::None,
            question: new_question_input(),
            editor: None,
            run: RunView::default(),
            results: ResultsState::default(),
            scrolls: Scrolls::default(),
            recall: Recall::default(),
            active: None,
            next_id: RECALL_LIST_ID + 1,
            flash: None,
            training: Training::Idle,
            retrain_threshold: 0,
            verified_pairs: None,
            dirty: true,
            quit: false,
        }
    }

    /// Effects to run once at start-up.
    pub fn init(&self) -> Vec<Effect> {
        // The check also tells how many verified pairs there are, which the retrain key
        // needs even when the offer is off (threshold 0).
        vec![
            Effect::ListHistory { id: RECALL_LIST_ID },
            Effect::CheckRetraining {
                threshold: self.retrain_threshold,
            },
        ]
    }

    pub fn key_context(&self) -> KeyContext {
        match &self.overlay {
            Overlay::Help | Overlay::Cell { .. } => KeyContext::Help,
            Overlay::History(_) => KeyContext::History,
            Overlay::Note { .. } => KeyContext::Note,
            Overlay::None => match self.focus {
                Pane::Question => KeyContext::Question,
                Pane::Schema => KeyContext::Schema,
                Pane::Sql if self.editor.is_some() => KeyContext::Editor,
                Pane::Sql => KeyContext::Sql,
                Pane::Results if self.results.searching => KeyContext::Search,
                Pane::Results => KeyContext::Results,
                Pane::Answer => KeyContext::Answer,
            },
        }
    }

    pub fn question_text(&self) -> String {
        self.question.lines().join("\n")
    }

    /// The result row under the results cursor (after sort and search).
    pub fn selected_row(&self) -> Option<&Vec<Cell>> {
        let result = self.run.result.as_ref()?;
        let shown = grid::shown_rows(result, &self.results);
        result.rows.get(*shown.get(self.results.row)?)
    }

    /// The cell under the results cursor.
    pub(crate) fn selected_cell(&self) -> Option<&Cell> {
        self.selected_row()?.get(self.results.column)
    }

    pub fn busy(&self) -> bool {
        self.stage.is_busy() || matches!(self.startup, Startup::Loading { .. })
    }
}

pub(crate) fn new_question_input() -> TextArea<'static> {
    let mut input = TextArea::default();
    input.set_cursor_line_style(ratatui::style::Style::default());
    input.set_placeholder_text("Ask a question about the data, then press Enter");
    input.set_wrap_mode(ratatui_textarea::WrapMode::WordOrGlyph);
    input
}
