//! Where the app keeps its state. Everything lives under one data directory (overridable
//! with `--data-dir` or `NANO_ANALYST_DATA_DIR`) so tests and users can isolate it.

use std::path::{Path, PathBuf};

/// The default model's file name inside `<data>/models/`, as scripts/fetch-model.sh writes it.
pub const DEFAULT_MODEL_FILE: &str = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPaths {
    pub data_dir: PathBuf,
    pub config_file: Option<PathBuf>,
}

impl AppPaths {
    /// Resolves the directories: explicit flag, then environment, then platform defaults.
    pub fn resolve(data_dir: Option<&Path>, config_file: Option<&Path>) -> Self {
        let project = directories::ProjectDirs::from("", "", "nano-analyst");
        let data_dir = data_dir
            .map(Path::to_path_buf)
            .or_else(|| project.as_ref().map(|p| p.data_dir().to_path_buf()))
            .unwrap_or_else(|| PathBuf::from(".nano-analyst"));
        let config_file = config_file
            .map(Path::to_path_buf)
            .or_else(|| project.as_ref().map(|p| p.config_dir().join("config.toml")));
        Self {
            data_dir,
            config_file,
        }
    }

    pub fn default_model(&self) -> PathBuf {
        self.data_dir.join("models").join(DEFAULT_MODEL_FILE)
    }

    /// Fine-tuned model versions and their registry (see `core::finetune::registry`).
    pub fn versions_dir(&self) -> PathBuf {
        self.data_dir.join("models").join("versions")
    }

    /// The F32 copy of a base model that training starts from, and other fine-tuning
    /// intermediates.
    pub fn finetune_cache_dir(&self) -> PathBuf {
        self.data_dir.join("cache").join("finetune")
    }

    pub fn prefix_cache_dir(&self) -> PathBuf {
        self.data_dir.join("cache").join("prefix")
    }

    pub fn log_dir(&self) -> PathBuf {
        self.data_dir.join("logs")
    }

    /// The app's own store: run history, ratings, corrections (see `core::feedback::store`).
    pub fn history_db(&self) -> PathBuf {
        self.data_dir.join("history.sqlite3")
    }
}
