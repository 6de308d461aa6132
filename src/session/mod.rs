//! The composition root: settings + flags -> one read-only database, one model, schema
//! retrieval and example memory; the [`Analyst`] that `ask`, `bench` and `train` ask and
//! record runs through (the TUI's workers build the same parts from [`QuestionContext`]).

pub mod ask_json;
pub mod engine;
pub mod finetune;
pub mod options;
pub mod retrieval;

use std::path::Path;

use crate::core::db::exec::ReadOnlyDb;
use crate::core::db::schema::Schema;
use crate::core::feedback::history::{DbScope, RetrainingStatus, RunId};
use crate::core::feedback::memory::ExampleMemory;
use crate::core::feedback::store::{HistoryStore, scope_of};
use crate::core::model::{Embedder, LanguageModel};
use crate::core::pipeline::follow_up::MAX_EARLIER_TURNS;
use crate::core::pipeline::{
    EarlierTurn, PipelineConfig, PipelineError, PipelineEvent, RunOutcome, run_follow_up,
};
use crate::core::retrieval::provider::{ComposedContext, ContextProvider, ExampleSource};
use crate::error::AppError;

pub use engine::ModelEngine;
pub use options::RuntimeOptions;

/// What every front end puts in front of a question: schema retrieval, then the most
/// similar verified pairs of this database (example memory).
pub struct QuestionContext {
    pub context: Box<dyn ContextProvider + Send>,
    /// Set when schema retrieval runs without vectors (shown to the user once).
    pub retrieval_note: Option<String>,
    /// The database's identity in the history store.
    pub scope: DbScope,
}

impl QuestionContext {
    pub fn open(
        db: &ReadOnlyDb,
        schema: &Schema,
        options: &RuntimeOptions,
        embedder: Option<Box<dyn Embedder + Send>>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self, AppError> {
        let retrieval = crate::session::retrieval::open_retrieval_with_progress(
            db, schema, options, true, progress,
        )?;
        let retrieval_note = retrieval.note.clone();
        // Example memory ranks by the same embedding model as retrieval when it loads; a
        // second context on a 46 MB model is cheap next to the SQL model.
        let embedder = embedder.or_else(|| {
            retrieval_note.is_none().then(|| {
                crate::session::retrieval::load_embedder(
                    &options.embed_model,
                    options.engine.threads,
                )
                .ok()
            })?
        });
        let scope = scope_of(db)?;
        let examples = if options.feedback.examples_per_question > 0 {
            let memory = ExampleMemory::open(&options.paths.history_db(), scope.clone(), embedder)?;
            Some(Box::new(memory) as Box<dyn ExampleSource + Send>)
        } else {
            None
        };
        let context = Box::new(ComposedContext {
            schema: Box::new(retrieval),
            examples,
            examples_per_question: options.feedback.examples_per_question,
        });
        Ok(Self {
            context,
            retrieval_note,
            scope,
        })
    }
}

/// One database and one model, ready for questions.
pub struct Analyst {
    pub db: ReadOnlyDb,
    pub schema: Schema,
    pub engine: ModelEngine,
    pub context: Box<dyn ContextProvider + Send>,
    pub pipeline: PipelineConfig,
    /// Set when schema retrieval runs without vectors (shown to the user once).
    pub retrieval_note: Option<String>,
    /// The database's identity in the history store.
    pub scope: DbScope,
    /// Where every run is recorded (`None` when `feedback.record_history` is off).
    pub history: Option<HistoryStore>,
    pub retrain_threshold: u64,
    last_run: Option<RunId>,
}

impl Analyst {
    /// Opens the database first (a bad path fails fast), then loads the model.
    pub fn open(database: &Path, options: &RuntimeOptions) -> Result<Self, AppError> {
        Self::open_with_embedder(database, options, None)
    }

    /// As [`open`](Self::open); example memory also ranks by `embedder`'s vectors.
    pub fn open_with_embedder(
        database: &Path,
        options: &RuntimeOptions,
        embedder: Option<Box<dyn Embedder + Send>>,
    ) -> Result<Self, AppError> {
        let db = ReadOnlyDb::open(database)?;
        let schema = db.askable_schema()?;
        let QuestionContext {
            context,
            retrieval_note,
            scope,
        } = QuestionContext::open(&db, &schema, options, embedder, &mut |_, _| {})?;
        let history = if options.feedback.record_history {
            Some(HistoryStore::open(&options.paths.history_db())?)
        } else {
            None
        };
        let engine = ModelEngine::load(options)?;
        Ok(Self {
            db,
            schema,
            engine,
            context,
            pipeline: options.pipeline.clone(),
            retrieval_note,
            scope,
            history,
            retrain_threshold: options.feedback.retrain_threshold,
            last_run: None,
        })
    }

    /// The id the last [`ask`](Self::ask) was recorded under.
    pub fn last_run(&self) -> Option<RunId> {
        self.last_run
    }

    /// Whether enough corrections and thumbs-downs piled up to retrain.
    pub fn retraining_status(&self) -> Option<RetrainingStatus> {
        let store = self.history.as_ref()?;
        match store.retraining_status(self.retrain_threshold) {
            Ok(status) => Some(status),
            Err(error) => {
                tracing::warn!("cannot read the retraining status: {error}");
                None
            }
        }
    }

    pub fn ask(
        &mut self,
        question: &str,
        on_event: &mut dyn FnMut(PipelineEvent<'_>),
    ) -> Result<RunOutcome, PipelineError> {
        self.ask_in_thread(question, &[], None, on_event)
    }

    /// Asks `question` as a follow-up of the last conversation recorded on this database
    /// (a question alone when there is none). Returns the outcome and the run it followed.
    pub fn ask_follow_up(
        &mut self,
        question: &str,
        on_event: &mut dyn FnMut(PipelineEvent<'_>),
    ) -> Result<(RunOutcome, Option<RunId>), PipelineError> {
        let thread = match self.history.as_ref() {
            Some(store) => store
                .last_thread(&self.scope, MAX_EARLIER_TURNS)
                .unwrap_or_else(|error| {
                    tracing::warn!("cannot read the last conversation: {error}");
                    Vec::new()
                }),
            None => Vec::new(),
        };
        let parent = thread.last().map(|(id, _)| *id);
        let earlier: Vec<EarlierTurn> = thread.into_iter().map(|(_, turn)| turn).collect();
        let outcome = self.ask_in_thread(question, &earlier, parent, on_event)?;
        Ok((outcome, parent))
    }

    fn ask_in_thread(
        &mut self,
        question: &str,
        earlier: &[EarlierTurn],
        parent: Option<RunId>,
        on_event: &mut dyn FnMut(PipelineEvent<'_>),
    ) -> Result<RunOutcome, PipelineError> {
        self.last_run = None;
        let outcome = run_follow_up(
            &mut self.engine,
            &self.db,
            self.context.as_mut(),
            question,
            earlier,
            &self.pipeline,
            on_event,
        )?;
        if let Some(store) = self.history.as_mut() {
            // A store failure must not cost the user the answer; it is logged.
            match store.record_in_thread(&self.scope, &outcome, parent) {
                Ok(id) => self.last_run = Some(id),
                Err(error) => tracing::warn!("the run was not recorded: {error}"),
            }
        }
        Ok(outcome)
    }

    pub fn model_id(&self) -> String {
        self.engine.model_id()
    }
}
