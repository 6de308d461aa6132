//! Fine-tuned model versions: `<data dir>/models/versions/registry.json` lists every
//! version `train run` made (its base, training settings, loss curve, time, memory and
//! evaluation numbers) and which one is active. Model files live beside it, one directory
//! per version; the base model is never touched.
//!
//! Invariants:
//! - The registry file is replaced atomically (a temp file renamed over it).
//! - `active` names a version whose file exists, or nothing (the base model); `history`
//!   holds the previously active ones, so `rollback` walks back one step at a time and
//!   ends at the base model.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::core::finetune::{Comparison, GateDecision};

pub(crate) const REGISTRY_FILE: &str = "registry.json";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read '{path}': {reason}")]
    Read { path: String, reason: String },
    #[error("cannot write '{path}': {reason}")]
    Write { path: String, reason: String },
    #[error("no model version '{0}' (see `nano-analyst train status`)")]
    UnknownVersion(String),
    #[error("no model versions yet: run `nano-analyst train run` first")]
    Empty,
    #[error("version '{id}' did not pass the gate ({reason}); pass --force to use it anyway")]
    Rejected { id: String, reason: String },
    #[error("the file of version '{id}' is missing: '{path}'")]
    MissingFile { id: String, path: String },
    #[error("already on the base model: nothing to roll back")]
    NothingToRollBack,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum VersionStatus {
    /// Trained, not yet evaluated (or the evaluation was interrupted).
    Candidate,
    /// Passed the gate or was accepted by hand; it is or was active.
    Accepted,
    /// Did not pass the gate.
    Rejected,
    /// Was active, then rolled back.
    RolledBack,
}

impl VersionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionStatus::Candidate => "candidate",
            VersionStatus::Accepted => "accepted",
            VersionStatus::Rejected => "rejected",
            VersionStatus::RolledBack => "rolled back",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BaseModel {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub(crate) struct PairCounts {
    /// Where the pairs came from: "history store" or a file.
    pub source: String,
    pub train: usize,
    pub held_out: usize,
    /// Training pairs left out because they did not fit the window.
    #[serde(default)]
    pub too_long: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TrainSettings {
    pub epochs: u32,
    pub layers: u32,
    pub learning_rate: f32,
    pub window: u32,
    pub trained_parameters: u64,
    /// Prompt positions learned their text (true) or the base model's own predictions.
    #[serde(default = "learned_prompt_before_this_field")]
    pub learn_prompt: bool,
}

/// Versions registered before the field existed learned every position.
fn learned_prompt_before_this_field() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Timings {
    pub dequantize_s: f64,
    /// The base model's predictions for the prompt positions (0 with `--learn-prompt`).
    #[serde(default)]
    pub predict_s: f64,
    pub train_s: f64,
    pub save_s: f64,
    pub quantize_s: f64,
    pub eval_s: f64,
    pub total_s: f64,
    /// Window tokens (padding included) per second of training.
    pub tokens_per_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct GateReport {
    pub held_out: Comparison,
    pub general: Comparison,
    pub decision: GateDecision,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ModelVersion {
    pub id: String,
    /// The model file, relative to the versions directory.
    pub file: String,
    pub base: BaseModel,
    /// Seconds since the Unix epoch.
    pub created: u64,
    pub pairs: PairCounts,
    pub settings: TrainSettings,
    /// The training loss of every step, in order.
    pub loss_curve: Vec<f64>,
    /// Mean training loss per epoch.
    pub epoch_losses: Vec<f64>,
    pub timings: Timings,
    pub peak_rss_bytes: Option<u64>,
    pub eval: Option<GateReport>,
    pub status: VersionStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub(crate) struct Registry {
    /// The version in use (`None`: the base model).
    pub active: Option<String>,
    /// Previously active versions, oldest first (`None` entries: the base model).
    #[serde(default)]
    pub history: Vec<Option<String>>,
    #[serde(default)]
    pub versions: Vec<ModelVersion>,
}

impl Registry {
    /// Reads `<dir>/registry.json`; a missing file is an empty registry.
    pub fn load(dir: &Path) -> Result<Self, RegistryError> {
        let path = dir.join(REGISTRY_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(RegistryError::Read {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                });
            }
        };
        serde_json::from_str(&text).map_err(|e| RegistryError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    pub fn save(&self, dir: &Path) -> Result<(), RegistryError> {
        let path = dir.join(REGISTRY_FILE);
        let failed = |reason: String| RegistryError::Write {
            path: path.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| failed(e.to_string()))?;
        let text = serde_json::to_string_pretty(self).map_err(|e| failed(e.to_string()))?;
        let mut file = tempfile::NamedTempFile::new_in(dir).map_err(|e| failed(e.to_string()))?;
        std::io::Write::write_all(&mut file, text.as_bytes()).map_err(|e| failed(e.to_string()))?;
        file.persist(&path).map_err(|e| failed(e.to_string()))?;
        Ok(())
    }

    /// The id the next version gets: `v1`, `v2`, ...
    pub(crate) fn next_id(&self) -> String {
        let highest = self
            .versions
            .iter()
            .filter_map(|v| v.id.strip_prefix('v')?.parse::<u32>().ok())
            .max()
            .unwrap_or(0);
        format!("v{}", highest + 1)
    }

    pub fn version(&self, id: &str) -> Option<&ModelVersion> {
        self.versions.iter().find(|v| v.id == id)
    }

    fn version_mut(&mut self, id: &str) -> Result<&mut ModelVersion, RegistryError> {
        self.versions
            .iter_mut()
            .find(|v| v.id == id)
            .ok_or_else(|| RegistryError::UnknownVersion(id.to_string()))
    }

    /// Adds or replaces a version (by id).
    pub(crate) fn upsert(&mut self, version: ModelVersion) {
        match self.versions.iter_mut().find(|v| v.id == version.id) {
            Some(existing) => *existing = version,
            None => self.versions.push(version),
        }
    }

    /// Makes version `id` (default: the newest) the active model. A version the gate
    /// rejected needs `force`.
    pub fn accept(
        &mut self,
        dir: &Path,
        id: Option<&str>,
        force: bool,
    ) -> Result<&ModelVersion, RegistryError> {
        let id = match id {
            Some(id) => id.to_string(),
            None => self.versions.last().ok_or(RegistryError::Empty)?.id.clone(),
        };
        let version = self.version_mut(&id)?;
        let file = dir.join(&version.file);
        if !file.is_file() {
            return Err(RegistryError::MissingFile {
                id,
                path: file.display().to_string(),
            });
        }
        if version.status == VersionStatus::Rejected && !force {
            let reason = version
                .eval
                .as_ref()
                .map(|e| e.decision.reason.clone())
                .unwrap_or_default();
            return Err(RegistryError::Rejected { id, reason });
        }
        version.status = VersionStatus::Accepted;
        if self.active.as_deref() != Some(id.as_str()) {
            let previous = self.active.replace(id.clone());
            self.history.push(previous);
        }
        self.version(&id).ok_or(RegistryError::UnknownVersion(id))
    }

    /// Goes back to the previously active model (a version or the base). Returns the id now
    /// active, `None` for the base model.
    pub fn rollback(&mut self) -> Result<Option<String>, RegistryError> {
        let leaving = self.active.take().ok_or(RegistryError::NothingToRollBack)?;
        if let Ok(version) = self.version_mut(&leaving) {
            version.status = VersionStatus::RolledBack;
        }
        // Skip entries whose version is gone or is the one being left.
        while let Some(previous) = self.history.pop() {
            match previous {
                None => return Ok(None),
                Some(id) if id != leaving && self.version(&id).is_some() => {
                    self.active = Some(id.clone());
                    return Ok(Some(id));
                }
                Some(_) => continue,
            }
        }
        Ok(None)
    }

    /// The active version's model file, when there is one and it exists.
    pub(crate) fn active_file(&self, dir: &Path) -> Option<(String, PathBuf)> {
        let id = self.active.as_ref()?;
        let version = self.version(id)?;
        let path = dir.join(&version.file);
        path.is_file().then(|| (id.clone(), path))
    }
}

/// The model to use when none was named on the command line: the active fine-tuned version
/// when it was trained from `configured` (the configured or default model), else
/// `configured` itself.
pub(crate) fn resolve_model(versions_dir: &Path, configured: &Path) -> PathBuf {
    let registry = match Registry::load(versions_dir) {
        Ok(registry) => registry,
        Err(error) => {
            tracing::warn!("ignoring the model registry: {error}");
            return configured.to_path_buf();
        }
    };
    let Some((id, path)) = registry.active_file(versions_dir) else {
        return configured.to_path_buf();
    };
    let same_base = registry.version(&id).is_some_and(|v| {
        let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        canonical(Path::new(&v.base.path)) == canonical(configured)
    });
    if same_base {
        path
    } else {
        tracing::warn!(
            "the active fine-tuned version {id} was trained from another model than '{}'; using that model",
            configured.display()
        );
        configured.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::finetune::Score;

    pub(crate) fn version(id: &str, status: VersionStatus) -> ModelVersion {
        ModelVersion {
            id: id.into(),
            file: format!("{id}/model.gguf"),
            base: BaseModel {
                path: "/models/base.gguf".into(),
                sha256: "00".into(),
                size: 1,
            },
            created: 0,
            pairs: PairCounts::default(),
            settings: TrainSettings {
                epochs: 1,
                layers: 2,
                learning_rate: 1e-4,
                window: 512,
                trained_parameters: 0,
                learn_prompt: false,
            },
            loss_curve: vec![1.0, 0.5],
            epoch_losses: vec![0.75],
            timings: Timings::default(),
            peak_rss_bytes: None,
            eval: Some(GateReport {
                held_out: Comparison {
                    base: Score {
                        correct: 1,
                        total: 2,
                    },
                    candidate: Score {
                        correct: 2,
                        total: 2,
                    },
                },
                general: Comparison::default(),
                decision: GateDecision {
                    passed: status != VersionStatus::Rejected,
                    reason: "because".into(),
                },
            }),
            status,
        }
    }

    fn registry_with_files(dir: &Path, versions: &[(&str, VersionStatus)]) -> Registry {
        let mut registry = Registry::default();
        for (id, status) in versions {
            let v = version(id, *status);
            std::fs::create_dir_all(dir.join(id)).unwrap();
            std::fs::write(dir.join(&v.file), b"GGUF").unwrap();
            registry.upsert(v);
        }
        registry
    }

    #[test]
    fn accept_and_rollback_walk_the_history() {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = registry_with_files(
            dir.path(),
            &[
                ("v1", VersionStatus::Accepted),
                ("v2", VersionStatus::Candidate),
                ("v3", VersionStatus::Rejected),
            ],
        );
        assert_eq!(registry.next_id(), "v4");
        registry.accept(dir.path(), Some("v1"), false).unwrap();
        registry.accept(dir.path(), None, true).unwrap();
        assert_eq!(registry.active.as_deref(), Some("v3"));
        assert!(matches!(
            registry.clone().accept(dir.path(), Some("v9"), false),
            Err(RegistryError::UnknownVersion(_))
        ));
        registry.save(dir.path()).unwrap();
        let mut registry = Registry::load(dir.path()).unwrap();
        assert_eq!(registry.rollback().unwrap().as_deref(), Some("v1"));
        assert_eq!(
            registry.version("v3").unwrap().status,
            VersionStatus::RolledBack
        );
        assert_eq!(registry.rollback().unwrap(), None);
        assert!(matches!(
            registry.rollback(),
            Err(RegistryError::NothingToRollBack)
        ));
    }

    #[test]
    fn rejected_versions_need_force() {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = registry_with_files(dir.path(), &[("v1", VersionStatus::Rejected)]);
        let error = registry.accept(dir.path(), Some("v1"), false).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("did not pass the gate (because)")
        );
        assert!(registry.active.is_none());
    }

    #[test]
    fn the_active_version_replaces_only_its_own_base() {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = registry_with_files(dir.path(), &[("v1", VersionStatus::Accepted)]);
        let base = dir.path().join("base.gguf");
        std::fs::write(&base, b"GGUF").unwrap();
        registry.versions[0].base.path = base.display().to_string();
        registry.accept(dir.path(), Some("v1"), false).unwrap();
        registry.save(dir.path()).unwrap();
        assert_eq!(
            resolve_model(dir.path(), &base),
            dir.path().join("v1/model.gguf")
        );
        let other = dir.path().join("other.gguf");
        assert_eq!(resolve_model(dir.path(), &other), other);
        assert_eq!(resolve_model(&dir.path().join("none"), &other), other);
    }
}
