//! Puts the pieces together for one database: the read-only connection, its schema, the
//! model engine, the context provider and the pipeline settings. `ask`, `bench`, `eval` and
//! the TUI's worker all drive questions through an [`Analyst`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::GlobalArgs;
use crate::config::{ConfigError, Settings};
use crate::core::exec::{DbError, ExecLimits, ReadOnlyDb};
use crate::core::llm_api::{LanguageModel, LlmError};
use crate::core::pipeline::{
    ContextProvider, PipelineConfig, PipelineError, PipelineEvent, RunOutcome, run_question,
};
use crate::core::schema::{Schema, SchemaError};
use crate::core::schema_render::RenderOptions;
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
}

impl RuntimeOptions {
    pub fn resolve(global: &GlobalArgs) -> Result<Self, AppError> {
        let paths = AppPaths::resolve(global.data_dir.as_deref(), global.config.as_deref());
        let settings = Settings::load(paths.config_file.as_deref())?;
        let model_path: PathBuf = global
            .model
            .clone()
            .or_else(|| settings.model_path())
            .unwrap_or_else(|| paths.default_model());
        let mut engine = EngineConfig::new(model_path);
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
}

impl Analyst {
    /// Opens the database first (a bad path fails fast), then loads the model.
    pub fn open(database: &Path, options: &RuntimeOptions) -> Result<Self, AppError> {
        let db = ReadOnlyDb::open(database)?;
        let schema = db.introspect()?;
        let retrieval = crate::schema_search::open_retrieval(&db, &schema, options, true)?;
        let retrieval_note = retrieval.note.clone();
        let engine = LlamaEngine::load(options.engine.clone())?;
        let context: Box<dyn ContextProvider + Send> = Box::new(retrieval);
        Ok(Self {
            db,
            schema,
            engine,
            context,
            pipeline: options.pipeline.clone(),
            retrieval_note,
        })
    }

    pub fn ask(
        &mut self,
        question: &str,
        on_event: &mut dyn FnMut(PipelineEvent<'_>),
    ) -> Result<RunOutcome, PipelineError> {
        run_question(
            &mut self.engine,
            &self.db,
            self.context.as_mut(),
            question,
            &self.pipeline,
            on_event,
        )
    }

    pub fn model_id(&self) -> String {
        self.engine.model_id()
    }
}
