//! The error every front end reports: one variant per subsystem boundary, each with its own
//! typed error; `main` turns it into one line for the user.

use crate::config::ConfigError;
use crate::core::db::exec::DbError;
use crate::core::db::schema::SchemaError;
use crate::core::feedback::memory::MemoryError;
use crate::core::feedback::store::StoreError;
use crate::core::model::LlmError;
use crate::core::pipeline::PipelineError;

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
    Registry(#[from] crate::core::finetune::registry::RegistryError),
    #[error(transparent)]
    Eval(#[from] crate::core::eval::EvalError),
    #[error(transparent)]
    Export(#[from] crate::core::feedback::training::TrainingError),
    /// A flag, argument or setting the user gave is not usable; the message says which.
    #[error("{0}")]
    Usage(String),
    /// A result could not be written as JSON.
    #[error("cannot encode {what} as JSON: {source}")]
    Json {
        what: &'static str,
        source: serde_json::Error,
    },
    /// A file or system resource the command needs failed.
    #[error("{action}: {source}")]
    Io {
        action: String,
        source: std::io::Error,
    },
    /// The terminal app's own settings (keymap, theme) are invalid.
    #[error("{0}")]
    TuiConfig(String),
    /// Why `train run` stopped (interrupted, refused, a step failed).
    #[error("{0}")]
    Training(String),
}

impl AppError {
    pub fn json(what: &'static str) -> impl FnOnce(serde_json::Error) -> Self {
        move |source| AppError::Json { what, source }
    }

    pub fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let action = action.into();
        move |source| AppError::Io { action, source }
    }
}
