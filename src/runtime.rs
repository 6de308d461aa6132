//! Puts the pieces together for one database: the read-only connection, its schema, the
//! model engine, the context provider and the pipeline settings. `ask`, `bench`, `eval` and
//! the TUI's worker all drive questions through an [`Analyst`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::GlobalArgs;
use crate::config::{ConfigError, FeedbackSettings, Settings};
use crate::core::embed::Embedder;
use crate::core::exec::{DbError, ExecLimits, ReadOnlyDb};
use crate::core::history::{DbScope, RunId};
use crate::core::llm_api::{LanguageModel, LlmError};
use crate::core::memory::{ExampleMemory, MemoryError};
use crate::core::pipeline::{
    ComposedContext, ContextProvider, PipelineConfig, PipelineError, PipelineEvent, RunOutcome,
    run_question,
};
use crate::core::schema::{Schema, SchemaError};
use crate::core::schema_render::RenderOptions;
use crate::core::store::{HistoryStore, PromptRecord, RetrainingStatus, StoreError, scope_of};
use crate::llm::engine::{EngineConfig, LlamaEngine, default_threads};
use crate::paths::AppPaths;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Retrieval(#[from] crate::core::retrieval::RetrievalError),
    #[error(transparent)]
    Glossary(#[from] crate::core::retrieval::GlossaryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error(transparent)]
    Train(#[from] crate::llm::train::TrainError),
    #[error(transparent)]
    Checkpoint(#[from] crate::llm::checkpoint::CheckpointError),
    #[error(transparent)]
    Registry(#[from] crate::core::model_registry::RegistryError),
    #[error("{0}")]
    Invalid(String),
}

/// Resolved settings for a run: config file + environment + flags.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    pub paths: AppPaths,
    pub engine: EngineConfig,
    pub pipeline: PipelineConfig,
    /// The embedding model for schema retrieval (may be missing: BM25 alone then).
    pub embed_model: PathBuf,
    pub glossary: Option<PathBuf>,
    pub retrieval: crate::core::retrieval::RetrievalOptions,
    pub render: RenderOptions,
    pub feedback: FeedbackSettings,
}

impl RuntimeOptions {
    pub fn resolve(global: &GlobalArgs) -> Result<Self, AppError> {
        let paths = AppPaths::resolve(global.data_dir.as_deref(), global.config.as_deref());
        let settings = Settings::load(paths.config_file.as_deref())?;
        // An explicit --model (or NANO_ANALYST_MODEL) wins; otherwise the active fine-tuned
        // version of the configured (or default) model, when there is one.
        let model_path: PathBuf = global.model.clone().unwrap_or_else(|| {
            let configured = settings
                .model_path()
                .unwrap_or_else(|| paths.default_model());
            crate::core::model_registry::resolve_model(&paths.versions_dir(), &configured)
        });
        let mut engine = EngineConfig::new(model_path);
        if let Some(path) = &global.lora {
            let scale = global.lora_scale.unwrap_or(1.0);
            if !scale.is_finite() {
                return Err(AppError::Invalid(format!(
                    "--lora-scale {scale} must be a number"
                )));
            }
            engine.lora = Some(crate::llm::engine::LoraConfig {
                path: path.clone(),
                scale,
            });
        } else if global.lora_scale.is_some() {
            return Err(AppError::Invalid(
                "--lora-scale needs --lora PATH (a GGUF LoRA adapter)".into(),
            ));
        }
        let threads = global.threads.unwrap_or(settings.model.threads);
        engine.threads = if threads == 0 {
            default_threads()
        } else {
            i32::try_from(threads).unwrap_or(i32::MAX)
        };
        engine.gpu_layers = global.gpu_layers.unwrap_or(settings.model.gpu_layers);
        engine.context_tokens = global.context.unwrap_or(settings.model.context_tokens);
        if engine.context_tokens < 512 {
            return Err(AppError::Invalid(format!(
                "--context {} is too small (at least 512)",
                engine.context_tokens
            )));
        }
        engine.prefix_cache_dir = Some(paths.prefix_cache_dir());

        let timeout = global.timeout.unwrap_or(settings.pipeline.timeout_secs);
        if !(timeout > 0.0 && timeout.is_finite()) {
            return Err(AppError::Invalid(format!(
                "--timeout {timeout} must be a positive number of seconds"
            )));
        }
        let row_limit = global.row_limit.unwrap_or(settings.pipeline.row_limit);
        if row_limit == 0 {
            return Err(AppError::Invalid("--row-limit must be at least 1".into()));
        }
        let pipeline = PipelineConfig {
            max_repairs: global.max_repairs.unwrap_or(settings.pipeline.max_repairs),
            limits: ExecLimits {
                row_limit,
                timeout: Duration::from_secs_f64(timeout),
            },
            answer: settings.pipeline.answer,
            answer_rows: settings.pipeline.answer_rows,
            sql_opening: settings.pipeline.sql_opening.clone(),
            candidates: settings.pipeline.candidates,
            candidate_temperature: settings.pipeline.candidate_temperature,
            grammar: settings.pipeline.grammar,
            drop_unused_joins: settings.pipeline.drop_unused_joins,
            intersect_both_values: settings.pipeline.intersect_both_values,
            ground_literals: settings.pipeline.ground_literals,
            filter_named_flags: settings.pipeline.filter_named_flags,
            drop_unnamed_flags: settings.pipeline.drop_unnamed_flags,
            lookup_through_keys: settings.pipeline.lookup_through_keys,
            group_by_entity_key: settings.pipeline.group_by_entity_key,
            show_group_columns: settings.pipeline.show_group_columns,
            check_join_conditions: settings.pipeline.check_join_conditions,
            fallback_candidates: settings.pipeline.fallback_candidates,
            ..PipelineConfig::default()
        };
        let embed_model = global
            .embed_model
            .clone()
            .or_else(|| {
                let configured = &settings.retrieval.embed_model;
                (!configured.is_empty()).then(|| PathBuf::from(configured))
            })
            .unwrap_or_else(|| crate::llm::embedder::default_embed_model(&paths.data_dir));
        let render = RenderOptions {
            sample_values: settings.schema.sample_values,
            categorical_max_distinct: settings.schema.categorical_max_distinct,
            row_counts: settings.schema.row_counts,
        };
        let retrieval = crate::core::retrieval::RetrievalOptions {
            render,
            ..crate::schema_search::retrieval_options(&settings.retrieval, engine.context_tokens)
        };
        Ok(Self {
            paths,
            engine,
            pipeline,
            embed_model,
            glossary: global.glossary.clone(),
            retrieval,
            render,
            feedback: settings.feedback,
        })
    }
}

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
    ) -> Result<Self, AppError> {
        let retrieval = crate::schema_search::open_retrieval(db, schema, options, true)?;
        let retrieval_note = retrieval.note.clone();
        // Example memory ranks by the same embedding model as retrieval when it loads; a
        // second context on a 46 MB model is cheap next to the SQL model.
        let embedder = embedder.or_else(|| {
            retrieval_note.is_none().then(|| {
                crate::schema_search::load_embedder(&options.embed_model, options.engine.threads)
                    .ok()
            })?
        });
        let scope = scope_of(db)?;
        let examples = if options.feedback.examples_per_question > 0 {
            let memory = ExampleMemory::open(&options.paths.history_db(), scope.clone(), embedder)?;
            Some(Box::new(memory) as Box<dyn crate::core::pipeline::ExampleSource + Send>)
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
    pub engine: LlamaEngine,
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
        let schema = db.introspect()?;
        let QuestionContext {
            context,
            retrieval_note,
            scope,
        } = QuestionContext::open(&db, &schema, options, embedder)?;
        let history = if options.feedback.record_history {
            Some(HistoryStore::open(&options.paths.history_db())?)
        } else {
            None
        };
        let engine = LlamaEngine::load(options.engine.clone())?;
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
        self.last_run = None;
        let mut prompt = PromptRecord::default();
        let outcome = run_question(
            &mut self.engine,
            &self.db,
            self.context.as_mut(),
            question,
            &self.pipeline,
            &mut |event| {
                if let PipelineEvent::Context(context) = event {
                    prompt.schema_text = context.schema_text.clone();
                    prompt.examples = context.examples.clone();
                }
                on_event(event);
            },
        )?;
        if let Some(store) = self.history.as_mut() {
            // A store failure must not cost the user the answer; it is logged.
            match store.record(&self.scope, &outcome, Some(&prompt)) {
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
