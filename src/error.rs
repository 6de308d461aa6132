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
    #[error("{0}")]
    Invalid(String),
}
