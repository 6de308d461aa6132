//! The fine-tuning workflow behind `train run`: verified pairs in, a gated model version out.
//!
//! 1. Pairs come from the history store (or a Spider-format file) and are split in a
//!    training half and a held-out half (`core::finetune::split_pairs`).
//! 2. The base model is converted to F32 once and kept in the cache (keyed by its SHA-256),
//!    since llama.cpp trains only F32 tensors; the base file is never written.
//! 3. The last layers train on one example per window; the trained tensors are written into
//!    a copy of the F32 file, which is re-quantized to Q4_K_M as a new version in
//!    `<data dir>/models/versions/` and then deleted.
//! 4. Base and candidate are evaluated with the `eval` harness on the held-out half and on
//!    the fixed general set; the candidate becomes the active model only if held-out EX
//!    rises and general EX does not fall by more than a point.
//!
//! `Plan::prepare` stops before anything costs disk space or much time, so a front end can
//! show the plan and ask first; `Plan::execute` does the rest. Every intermediate file is
//! removed when a step fails or the run is interrupted; the version is registered as soon
//! as its model file exists, so an interrupted evaluation leaves a `candidate` that
//! `train accept --force` can still use. Progress goes through `FinetuneProgress`, so this
//! module knows nothing of bars or JSON lines.

mod general_set;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::core::db::exec::ReadOnlyDb;
use crate::core::db::schema::Schema;
use crate::core::eval::Prediction;
use crate::core::eval::harness::{DbSource, EvalJob};
use crate::core::feedback::store::{HistoryStore, scope_of};
use crate::core::feedback::training::training_records;
use crate::core::finetune::registry::{
    BaseModel, GateReport, ModelVersion, PairCounts, Registry, Timings, TrainSettings,
    VersionStatus,
};
use crate::core::finetune::{
    Comparison, FinetunePair, GateDecision, Score, Split, TokenizedExample, TrainingEvent, Window,
    epoch_order, example_for, gate, pack_windows, split_pairs, window_for,
};
use crate::error::AppError;
use crate::llm::checkpoint::{ensure_free_space, human_bytes, write_error, write_patched_copy};
use crate::llm::engine::LlamaEngine;
use crate::llm::gguf::{GGUF_TYPE_F32, GgufIndex};
use crate::llm::train::{
    QuantType, TrainableModel, Trainer, TrainerConfig, WINDOW_GRANULE, quantize,
};
use crate::session::RuntimeOptions;
use general_set::GeneralSet;

use crate::core::finetune::MIN_TRAINING_PAIRS as MIN_PAIRS;

fn invalid(text: impl Into<String>) -> AppError {
    AppError::Training(text.into())
}

/// Where the workflow reports to. A trait rather than the command's reporter, so that
/// `session` does not depend on `commands`: the command draws bars or writes JSON lines.
pub(crate) trait FinetuneProgress {
    /// A step of the workflow begins (ends any step bar).
    fn phase(&mut self, phase: &str, detail: &str);
    /// A line for people.
    fn note(&mut self, text: &str);
    /// Training begins: `steps` [`TrainingEvent::Step`]s follow.
    fn start_steps(&mut self, steps: usize);
    fn step(&mut self, event: TrainingEvent);
    /// One gate evaluation of `questions` questions begins.
    fn eval_started(&mut self, questions: usize);
    /// `predictions` are the evaluation's answers so far, the last one on `db_id`.
    fn eval_answered(&mut self, predictions: &[Prediction], db_id: &str);
    fn eval_finished(&mut self);
}

/// Where the pairs come from.
pub(crate) enum PairSource {
    /// A Spider-format file of pairs about one database.
    File { pairs: PathBuf, db: PathBuf },
    /// The history store's verified pairs, of one database or (`None`) of every database.
    Store { database: Option<PathBuf> },
}

/// The workflow's inputs; the front end has checked their ranges.
pub(crate) struct FinetuneRequest {
    pub pairs: PairSource,
    pub epochs: u32,
    pub layers: u32,
    pub learning_rate: f32,
    /// The largest window in tokens (a multiple of [`WINDOW_GRANULE`]).
    pub max_window: u32,
    /// Train on prompt positions too instead of the base model's own predictions.
    pub learn_prompt: bool,
    /// Questions of the general set the gate evaluates (0: none).
    pub general: usize,
    /// Skip the general set when held-out EX did not rise.
    pub quick_gate: bool,
    /// Delete the cached F32 base afterwards.
    pub no_cache: bool,
}

/// The training examples laid out in windows.
pub(crate) struct Prepared {
    pub window: u32,
    /// Examples packed into the windows.
    pub examples: usize,
    pub windows: Vec<Window>,
    pub longest: usize,
    pub too_long: usize,
}

/// What a run will do, known before it costs disk space or time.
pub(crate) struct Plan {
    pub request: FinetuneRequest,
    pub split: Split,
    pub prepared: Prepared,
    pub base_path: PathBuf,
    /// The size of the base model's F32 copy.
    pub f32_bytes: u64,
    already_f32: bool,
    base_size: u64,
    /// Where the pairs came from, as the registry records it.
    source: String,
    from_store: bool,
    versions_dir: PathBuf,
    cache_dir: PathBuf,
    registry: Registry,
    id: String,
    /// The run's start, for the registry's total time.
    started: Instant,
}

/// A version trained, registered and judged by the gate.
pub(crate) struct Trained {
    pub version: ModelVersion,
    /// The quantized model file.
    pub path: PathBuf,
    pub held_out: Comparison,
    pub general: Comparison,
    pub decision: GateDecision,
}

/// The F32 model training starts from.
struct F32Base {
    path: PathBuf,
    sha256: String,
    dequantize_s: f64,
}

/// What training produced: the trained layers written into an F32 copy, and its figures.
struct TrainedLayers {
    candidate_f32: PathBuf,
    trained_parameters: u64,
    loss_curve: Vec<f64>,
    epoch_losses: Vec<f64>,
    predict_s: f64,
    train_s: f64,
    save_s: f64,
    tokens_per_s: f64,
    peak_rss_bytes: Option<u64>,
}

/// The new version's quantized model.
struct VersionFile {
    /// Relative to the versions directory.
    file: String,
    path: PathBuf,
    quantize_s: f64,
}

impl Plan {
    /// Collects and splits the pairs and tokenises the training half.
    pub fn prepare(
        request: FinetuneRequest,
        options: &RuntimeOptions,
        progress: &mut dyn FinetuneProgress,
    ) -> Result<Self, AppError> {
        let started = Instant::now();
        let (pairs, source, from_store) = collect_pairs(&request.pairs, options)?;
        let split = split_in_halves(pairs)?;
        let versions_dir = options.paths.versions_dir();
        let cache_dir = options.paths.finetune_cache_dir();
        let base_path = base_model_path(options, &versions_dir);
        let base_index = GgufIndex::read(&base_path)?;
        let already_f32 = base_index
            .tensors
            .iter()
            .all(|t| t.ggml_type == GGUF_TYPE_F32);
        progress.phase(
            "tokenize",
            &format!("{} training examples", split.train.len()),
        );
        let prepared = prepare_windows(&split.train, &base_path, options, request.max_window)?;
        let f32_bytes = base_index.parameter_count() * 4;
        let base_size = file_size(&base_path);
        let registry = Registry::load(&versions_dir)?;
        let id = registry.next_id();
        Ok(Self {
            request,
            split,
            prepared,
            base_path,
            f32_bytes,
            already_f32,
            base_size,
            source,
            from_store,
            versions_dir,
            cache_dir,
            registry,
            id,
            started,
        })
    }

    /// Training steps over every epoch.
    pub fn steps(&self) -> usize {
        self.prepared.windows.len() * self.request.epochs as usize
    }

    /// Trains, saves and quantizes a version, registers it, and lets the gate decide whether
    /// it becomes the active model.
    pub fn execute(
        mut self,
        options: &RuntimeOptions,
        progress: &mut dyn FinetuneProgress,
    ) -> Result<Trained, AppError> {
        let cache_dir = &self.cache_dir;
        std::fs::create_dir_all(cache_dir)
            .map_err(|e| AppError::from(write_error(cache_dir, &e)))?;
        let _one_at_a_time = lock_training(cache_dir)?;
        remove_stale_intermediates(cache_dir);
        let mut scratch = Scratch(Vec::new());
        let stop = Arc::new(AtomicBool::new(false));
        register_interrupt(&stop)?;

        let base = self.f32_base(options, &mut scratch, progress)?;
        check_stop(&stop)?;
        let layers = self.train_and_save(&base.path, options, &mut scratch, progress, &stop)?;
        check_stop(&stop)?;
        // The intermediates go as soon as the version file exists.
        let file = self.quantize_version(&layers.candidate_f32, options, scratch, progress)?;
        let version = self.new_version(base, layers, &file);
        self.record_candidate(&version, options)?;
        self.judge(version, file.path, options, progress, &stop)
    }

    /// The F32 base: the base model itself when it is F32, else its cached conversion.
    fn f32_base(
        &self,
        options: &RuntimeOptions,
        scratch: &mut Scratch,
        progress: &mut dyn FinetuneProgress,
    ) -> Result<F32Base, AppError> {
        let (base_path, cache_dir) = (&self.base_path, &self.cache_dir);
        progress.phase("hash", &format!("'{}'", base_path.display()));
        let sha256 = sha256_file(base_path)?;
        let started = Instant::now();
        let path = if self.already_f32 {
            base_path.clone()
        } else {
            let cached = cache_dir.join(format!("{}.f32.gguf", &sha256[..16]));
            if !cached.is_file() {
                ensure_free_space(cache_dir, self.f32_bytes * 2 + self.base_size + (1 << 30))?;
                progress.phase(
                    "dequantize",
                    &format!(
                        "converting the base model to F32 ({})",
                        human_bytes(self.f32_bytes)
                    ),
                );
                let partial = scratch.add(cached.with_extension("partial"));
                quantize(base_path, &partial, QuantType::F32, options.engine.threads)?;
                std::fs::rename(&partial, &cached)
                    .map_err(|e| AppError::from(write_error(&cached, &e)))?;
                scratch.keep(&partial);
            }
            if self.request.no_cache {
                scratch.add(cached.clone());
            }
            cached
        };
        let dequantize_s = started.elapsed().as_secs_f64();
        ensure_free_space(cache_dir, self.f32_bytes + self.base_size + (512 << 20))?;
        Ok(F32Base {
            path,
            sha256,
            dequantize_s,
        })
    }

    /// Trains the last layers and writes them into a copy of the F32 file.
    fn train_and_save(
        &self,
        f32_path: &Path,
        options: &RuntimeOptions,
        scratch: &mut Scratch,
        progress: &mut dyn FinetuneProgress,
        stop: &AtomicBool,
    ) -> Result<TrainedLayers, AppError> {
        let (request, prepared) = (&self.request, &self.prepared);
        progress.phase(
            "train",
            &format!(
                "{} examples in {} windows of {} tokens, {} epochs, last {} layers, lr {}",
                prepared.examples,
                prepared.windows.len(),
                prepared.window,
                request.epochs,
                request.layers,
                request.learning_rate
            ),
        );
        let mut model = TrainableModel::load(f32_path)?;
        let config = TrainerConfig::new(
            prepared.window,
            request.layers,
            request.learning_rate,
            options.engine.threads,
        );
        let predict_started = Instant::now();
        let labels = self.window_labels(&model, options, progress, stop)?;
        let predict_s = predict_started.elapsed().as_secs_f64();
        let train_started = Instant::now();
        let mut trainer = model.trainer(&config)?;
        let trained_parameters = trainer.trained_parameters();
        tracing::info!(tensors = ?trainer.trained_tensor_names(), trained_parameters, "training");
        let (loss_curve, epoch_losses) =
            self.run_epochs(&mut trainer, &labels, train_started, progress, stop)?;
        let train_s = train_started.elapsed().as_secs_f64();
        let tokens = loss_curve.len() * prepared.window as usize;
        let tokens_per_s = tokens as f64 / train_s.max(1e-9);
        let peak_rss_bytes = peak_rss();

        progress.phase(
            "save",
            "writing the trained layers into a copy of the F32 model",
        );
        let save_started = Instant::now();
        let candidate_f32 = scratch.add(self.cache_dir.join(format!("{}.f32.gguf", self.id)));
        write_patched_copy(f32_path, &candidate_f32, |patch| {
            trainer.for_each_trained_tensor(patch)
        })?;
        drop(trainer);
        drop(model);
        Ok(TrainedLayers {
            candidate_f32,
            trained_parameters,
            loss_curve,
            epoch_losses,
            predict_s,
            train_s,
            save_s: save_started.elapsed().as_secs_f64(),
            tokens_per_s,
            peak_rss_bytes,
        })
    }

    /// Each window's labels. Unless `learn_prompt`, prompt positions are labelled with the
    /// base model's own greedy prediction (one forward pass per window), so only the replies
    /// teach: `Window::labels` says why llama.cpp's loss needs this instead of a mask.
    fn window_labels(
        &self,
        model: &TrainableModel,
        options: &RuntimeOptions,
        progress: &mut dyn FinetuneProgress,
        stop: &AtomicBool,
    ) -> Result<Vec<Vec<i32>>, AppError> {
        let prepared = &self.prepared;
        if self.request.learn_prompt {
            return Ok(prepared.windows.iter().map(|w| w.labels(None)).collect());
        }
        let reply_labels: usize = prepared.windows.iter().map(Window::reply_labels).sum();
        progress.phase(
            "predict",
            &format!(
                "the base model's own predictions for the prompt positions of {} windows ({} \
                 of {} labels are reply tokens)",
                prepared.windows.len(),
                reply_labels,
                prepared.windows.len() * prepared.window as usize
            ),
        );
        let started = Instant::now();
        let mut labels = Vec::with_capacity(prepared.windows.len());
        let total = prepared.windows.len();
        for (done, window) in prepared.windows.iter().enumerate() {
            check_stop(stop)?;
            if done > 0 {
                let left_s = started.elapsed().as_secs_f64() / done as f64 * (total - done) as f64;
                progress.phase(
                    "predict",
                    &format!("window {}/{total}, about {:.0} s left", done + 1, left_s),
                );
            }
            let inputs = &window.tokens[..window.tokens.len() - 1];
            let predicted = model.greedy_predictions(inputs, options.engine.threads)?;
            labels.push(window.labels(Some(&predicted)));
        }
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            windows = prepared.windows.len(),
            "prompt positions labelled with the base model's predictions"
        );
        Ok(labels)
    }

    /// The training loop: the loss of every step and the mean loss of every epoch.
    fn run_epochs(
        &self,
        trainer: &mut Trainer<'_>,
        labels: &[Vec<i32>],
        started: Instant,
        progress: &mut dyn FinetuneProgress,
        stop: &AtomicBool,
    ) -> Result<(Vec<f64>, Vec<f64>), AppError> {
        let (epochs, windows) = (self.request.epochs, &self.prepared.windows);
        let steps = self.steps();
        let mut loss_curve = Vec::with_capacity(steps);
        let mut epoch_losses = Vec::new();
        progress.start_steps(steps);
        let mut step = 0usize;
        for epoch in 0..epochs {
            let mut sum = 0.0;
            for &index in &epoch_order(windows.len(), epoch) {
                check_stop(stop)?;
                let loss =
                    trainer.train_step_with_labels(&windows[index].tokens, &labels[index])?;
                sum += loss;
                loss_curve.push(loss);
                step += 1;
                let elapsed = started.elapsed().as_secs_f64();
                let tokens_per_s =
                    (step * self.prepared.window as usize) as f64 / elapsed.max(1e-9);
                let eta_s = (elapsed / step as f64 * (steps - step) as f64).round() as u64;
                progress.step(TrainingEvent::Step {
                    epoch: epoch + 1,
                    epochs,
                    step,
                    steps,
                    loss,
                    tokens_per_s,
                    eta_s,
                });
            }
            let mean = sum / windows.len().max(1) as f64;
            epoch_losses.push(mean);
            progress.note(&format!("epoch {}: mean loss {mean:.4}", epoch + 1));
        }
        Ok((loss_curve, epoch_losses))
    }

    /// Quantizes the trained F32 copy to Q4_K_M in the version's directory. Takes `scratch`
    /// to delete the intermediates once the version file exists.
    fn quantize_version(
        &self,
        candidate_f32: &Path,
        options: &RuntimeOptions,
        mut scratch: Scratch,
        progress: &mut dyn FinetuneProgress,
    ) -> Result<VersionFile, AppError> {
        let (id, versions_dir) = (&self.id, &self.versions_dir);
        progress.phase("quantize", "to Q4_K_M");
        let started = Instant::now();
        let base_name = self
            .base_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model.gguf".into());
        let file = format!("{id}/{id}-{base_name}");
        let path = versions_dir.join(&file);
        let version_dir = versions_dir.join(id);
        std::fs::create_dir_all(&version_dir)
            .map_err(|e| AppError::from(write_error(&version_dir, &e)))?;
        ensure_free_space(versions_dir, self.base_size + (256 << 20))?;
        let partial = scratch.add(path.with_extension("partial"));
        quantize(
            candidate_f32,
            &partial,
            QuantType::Q4KM,
            options.engine.threads,
        )?;
        std::fs::rename(&partial, &path).map_err(|e| AppError::from(write_error(&path, &e)))?;
        scratch.keep(&partial);
        drop(scratch);
        Ok(VersionFile {
            file,
            path,
            quantize_s: started.elapsed().as_secs_f64(),
        })
    }

    /// The registry entry of the new version, a candidate until the gate has spoken.
    fn new_version(
        &self,
        base: F32Base,
        layers: TrainedLayers,
        file: &VersionFile,
    ) -> ModelVersion {
        ModelVersion {
            id: self.id.clone(),
            file: file.file.clone(),
            base: BaseModel {
                path: self.base_path.display().to_string(),
                sha256: base.sha256,
                size: self.base_size,
            },
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            pairs: PairCounts {
                source: self.source.clone(),
                train: self.split.train.len(),
                held_out: self.split.held_out.len(),
                too_long: self.prepared.too_long,
            },
            settings: TrainSettings {
                epochs: self.request.epochs,
                layers: self.request.layers,
                learning_rate: self.request.learning_rate,
                window: self.prepared.window,
                trained_parameters: layers.trained_parameters,
                learn_prompt: self.request.learn_prompt,
            },
            loss_curve: layers.loss_curve,
            epoch_losses: layers.epoch_losses,
            timings: Timings {
                dequantize_s: base.dequantize_s,
                predict_s: layers.predict_s,
                train_s: layers.train_s,
                save_s: layers.save_s,
                quantize_s: file.quantize_s,
                eval_s: 0.0,
                total_s: self.started.elapsed().as_secs_f64(),
                tokens_per_s: layers.tokens_per_s,
            },
            peak_rss_bytes: layers.peak_rss_bytes,
            eval: None,
            status: VersionStatus::Candidate,
        }
    }

    fn record_candidate(
        &mut self,
        version: &ModelVersion,
        options: &RuntimeOptions,
    ) -> Result<(), AppError> {
        self.registry.upsert(version.clone());
        self.registry.save(&self.versions_dir)?;
        if self.from_store {
            // The feedback is used: the "retraining due" count restarts whatever the gate says.
            HistoryStore::open(&options.paths.history_db())?.mark_trained(Some(&self.id))?;
        }
        Ok(())
    }

    /// Evaluates base and candidate, records the gate's decision, and makes the candidate
    /// the active model when it passed.
    fn judge(
        &self,
        mut version: ModelVersion,
        path: PathBuf,
        options: &RuntimeOptions,
        progress: &mut dyn FinetuneProgress,
        stop: &AtomicBool,
    ) -> Result<Trained, AppError> {
        let started = Instant::now();
        let eval_dir = self.versions_dir.join(&self.id).join("eval");
        let gate_run = Gate {
            options,
            request: &self.request,
            eval_dir: &eval_dir,
            cache_dir: &self.cache_dir,
            stop,
        };
        let (held_out, general) =
            gate_run.evaluate_both(&self.split.held_out, &self.base_path, &path, progress)?;
        let decision = gate(held_out, general);
        version.timings.eval_s = started.elapsed().as_secs_f64();
        version.timings.total_s = self.started.elapsed().as_secs_f64();
        version.eval = Some(GateReport {
            held_out,
            general,
            decision: decision.clone(),
        });
        version.status = if decision.passed {
            VersionStatus::Accepted
        } else {
            VersionStatus::Rejected
        };
        let mut registry = Registry::load(&self.versions_dir)?;
        registry.upsert(version.clone());
        if decision.passed {
            registry.accept(&self.versions_dir, Some(&self.id), false)?;
        }
        registry.save(&self.versions_dir)?;
        Ok(Trained {
            version,
            path,
            held_out,
            general,
            decision,
        })
    }
}

/// Files deleted when dropped (intermediates of a failed or finished run).
struct Scratch(Vec<PathBuf>);

impl Scratch {
    fn add(&mut self, path: PathBuf) -> PathBuf {
        self.0.push(path.clone());
        path
    }
    fn keep(&mut self, path: &Path) {
        self.0.retain(|p| p != path);
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for path in &self.0 {
            if path.exists() {
                match std::fs::remove_file(path) {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), "removed an intermediate file")
                    }
                    Err(error) => {
                        tracing::warn!(%error, path = %path.display(), "cannot remove an intermediate file");
                    }
                }
            }
        }
    }
}

/// The model training starts from: `--model`, or the configured or default model. When that
/// resolved to an active fine-tuned version, its own base (versions do not stack).
fn base_model_path(options: &RuntimeOptions, versions_dir: &Path) -> PathBuf {
    let path = options.engine.model_path.clone();
    if path.starts_with(versions_dir)
        && let Ok(registry) = Registry::load(versions_dir)
        && let Some(version) = registry
            .versions
            .iter()
            .find(|v| versions_dir.join(&v.file) == path)
    {
        return PathBuf::from(&version.base.path);
    }
    path
}

/// The pairs, where they came from (for the registry), and whether from the history store.
fn collect_pairs(
    source: &PairSource,
    options: &RuntimeOptions,
) -> Result<(Vec<FinetunePair>, String, bool), AppError> {
    let database = match source {
        PairSource::File { pairs: file, db } => {
            ReadOnlyDb::open(db)?;
            let items = crate::core::eval::load_dataset(file, "")?;
            let pairs = items
                .into_iter()
                .map(|item| FinetunePair {
                    question: item.question,
                    sql: item.gold_sql,
                    database: db.clone(),
                })
                .collect();
            return Ok((pairs, file.display().to_string(), false));
        }
        PairSource::Store { database } => database,
    };
    let store = HistoryStore::open(&options.paths.history_db())?;
    let scope = match database {
        Some(path) => Some(scope_of(&ReadOnlyDb::open(path)?)?),
        None => None,
    };
    let (records, skipped) = training_records(store.pairs(scope.as_ref())?, true);
    if skipped > 0 {
        tracing::info!(
            skipped,
            "pairs whose database is gone or changed were left out"
        );
    }
    let pairs = records
        .into_iter()
        .filter(|r| Path::new(&r.database).is_file())
        .map(|r| FinetunePair {
            question: r.question,
            sql: r.sql,
            database: PathBuf::from(r.database),
        })
        .collect();
    Ok((pairs, "history store".into(), true))
}

fn split_in_halves(pairs: Vec<FinetunePair>) -> Result<Split, AppError> {
    if pairs.len() < MIN_PAIRS {
        return Err(invalid(format!(
            "only {} verified pairs: at least {MIN_PAIRS} are needed to train on half and judge \
             on the other half (correct or rate more answers, or pass --pairs FILE --db DB)",
            pairs.len()
        )));
    }
    let split = split_pairs(pairs);
    if split.train.is_empty() || split.held_out.is_empty() {
        return Err(invalid(format!(
            "the pairs cannot be split: {} would train and {} be held out (pairs with the same \
             SQL stay on one side; add pairs with other queries)",
            split.train.len(),
            split.held_out.len()
        )));
    }
    Ok(split)
}

/// Tokenises every training example exactly as the engine builds prompts (the base model's
/// vocabulary and chat template, loaded without weights) and lays each out in a window.
fn prepare_windows(
    train: &[FinetunePair],
    base_path: &Path,
    options: &RuntimeOptions,
    max_window: u32,
) -> Result<Prepared, AppError> {
    use llama_cpp_2::model::LlamaModel;
    use llama_cpp_2::model::params::LlamaModelParams;

    crate::llm::engine::check_chat_model(base_path)?;
    let backend = crate::llm::engine::backend()?;
    let params = LlamaModelParams::default().with_vocab_only(true);
    let vocab_model = LlamaModel::load_from_file(backend, base_path, &params).map_err(|e| {
        crate::core::model::LlmError::Load {
            path: base_path.display().to_string(),
            reason: e.to_string(),
        }
    })?;
    let template = vocab_model.chat_template(None).ok();
    let mut schemas: BTreeMap<PathBuf, Schema> = BTreeMap::new();
    let mut token_lists = Vec::with_capacity(train.len());
    for pair in train {
        if !schemas.contains_key(&pair.database) {
            let schema = ReadOnlyDb::open(&pair.database)?.introspect()?;
            schemas.insert(pair.database.clone(), schema);
        }
        let Some(schema) = schemas.get(&pair.database) else {
            continue;
        };
        let example = example_for(pair, schema, options.render, &options.pipeline.sql_opening);
        let (tokens, reply_start) = crate::llm::engine::training_tokens(
            &vocab_model,
            template.as_ref(),
            &example.messages,
            &example.assistant_prefix,
        )?;
        token_lists.push(TokenizedExample {
            tokens: tokens.into_iter().map(|t| t.0).collect(),
            reply_start,
        });
    }
    let longest = token_lists
        .iter()
        .map(|e| e.tokens.len())
        .max()
        .unwrap_or(0);
    let window = window_for(longest, WINDOW_GRANULE, max_window);
    let (windows, too_long) = pack_windows(&token_lists, window as usize);
    if windows.is_empty() {
        return Err(invalid(format!(
            "no training example fits a {max_window}-token window (the longest has {longest} \
             tokens); raise --window"
        )));
    }
    Ok(Prepared {
        window,
        examples: token_lists.len() - too_long,
        too_long,
        windows,
        longest,
    })
}

/// Ctrl-C (or SIGTERM) stops the run at the next step, removing intermediate files; a
/// second one exits at once.
fn register_interrupt(stop: &Arc<AtomicBool>) -> Result<(), AppError> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let failed = |e: std::io::Error| invalid(format!("cannot handle Ctrl-C: {e}"));
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(stop))
            .map_err(failed)?;
        signal_hook::flag::register(signal, Arc::clone(stop)).map_err(failed)?;
    }
    Ok(())
}

/// One training run per data directory: the lock is held until the returned file closes.
fn lock_training(cache_dir: &Path) -> Result<std::fs::File, AppError> {
    let path = cache_dir.join("train.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| AppError::from(write_error(&path, &e)))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(invalid(format!(
            "another training run is using '{}'; wait for it to finish",
            cache_dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(AppError::from(write_error(&path, &e))),
    }
}

/// Candidate copies and partial files left by a run that was killed (the cached F32 bases,
/// named by their hash, stay).
fn remove_stale_intermediates(cache_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(cache_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let candidate = name.starts_with('v') && name.ends_with(".f32.gguf");
        if candidate || name.ends_with(".partial") {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => tracing::info!(%name, "removed a file left by an interrupted run"),
                Err(error) => tracing::warn!(%error, %name, "cannot remove a stale file"),
            }
        }
    }
}

fn check_stop(stop: &AtomicBool) -> Result<(), AppError> {
    if stop.load(Ordering::SeqCst) {
        Err(invalid(
            "training interrupted; intermediate files were removed",
        ))
    } else {
        Ok(())
    }
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn sha256_file(path: &Path) -> Result<String, AppError> {
    let failed = |e: std::io::Error| invalid(format!("cannot read '{}': {e}", path.display()));
    let mut file = std::fs::File::open(path).map_err(failed)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer).map_err(failed)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The process's peak resident memory (Linux `VmHWM`).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The held-out pairs as Spider-format files, one per database.
fn write_held_out_sets(
    held_out: &[FinetunePair],
    eval_dir: &Path,
) -> Result<Vec<(PathBuf, PathBuf, usize)>, AppError> {
    let mut by_db: BTreeMap<&Path, Vec<&FinetunePair>> = BTreeMap::new();
    for pair in held_out {
        by_db.entry(pair.database.as_path()).or_default().push(pair);
    }
    let mut sets = Vec::new();
    for (number, (db, pairs)) in by_db.iter().enumerate() {
        let dataset = eval_dir.join(format!("held-out-{number}.jsonl"));
        let mut text = String::new();
        for pair in pairs {
            let line = serde_json::json!({"question": pair.question, "query": pair.sql});
            text.push_str(&line.to_string());
            text.push('\n');
        }
        std::fs::write(&dataset, text).map_err(|e| AppError::from(write_error(&dataset, &e)))?;
        sets.push((dataset, db.to_path_buf(), pairs.len()));
    }
    Ok(sets)
}

/// What the gate's evaluations share.
struct Gate<'a> {
    options: &'a RuntimeOptions,
    request: &'a FinetuneRequest,
    eval_dir: &'a Path,
    cache_dir: &'a Path,
    stop: &'a AtomicBool,
}

impl Gate<'_> {
    /// Held-out and general EX of `base` and `candidate`.
    fn evaluate_both(
        &self,
        held_out: &[FinetunePair],
        base: &Path,
        candidate: &Path,
        progress: &mut dyn FinetuneProgress,
    ) -> Result<(Comparison, Comparison), AppError> {
        let eval_dir = self.eval_dir;
        std::fs::create_dir_all(eval_dir).map_err(|e| AppError::from(write_error(eval_dir, &e)))?;
        let held_out_sets = write_held_out_sets(held_out, eval_dir)?;
        // One model in memory at a time: each is loaded for its evaluations and freed after.
        let mut held = Comparison::default();
        let mut engine = self.load(base)?;
        held.base = self.held_out(&mut engine, "base", &held_out_sets, progress)?;
        drop(engine);
        let mut engine = self.load(candidate)?;
        held.candidate = self.held_out(&mut engine, "candidate", &held_out_sets, progress)?;

        let mut general = Comparison::default();
        // Without a held-out gain the general set cannot change the verdict; --quick-gate
        // saves its two evaluations then, at the price of a report without general figures.
        let held_out_rose = held.candidate.percent() > held.base.percent();
        let skip_general = self.request.quick_gate && !held_out_rose;
        if skip_general {
            progress.note(&format!(
                "held-out EX did not rise ({held}); the general set is not evaluated \
                 (--quick-gate)"
            ));
        }
        if self.request.general > 0 && !skip_general {
            let set = general_set::materialize(&self.cache_dir.join("general-set"))?;
            general.candidate = self.general(&mut engine, "candidate", &set, progress)?;
            drop(engine);
            general.base = self.general(&mut self.load(base)?, "base", &set, progress)?;
        }
        Ok((held, general))
    }

    fn load(&self, model: &Path) -> Result<LlamaEngine, AppError> {
        let mut config = self.options.engine.clone();
        config.model_path = model.to_path_buf();
        config.lora = None;
        let engine = LlamaEngine::load(config)?;
        signal_hook::flag::register(signal_hook::consts::SIGINT, engine.cancel_flag())
            .map_err(|e| invalid(format!("cannot handle Ctrl-C: {e}")))?;
        Ok(engine)
    }

    fn held_out(
        &self,
        engine: &mut LlamaEngine,
        role: &str,
        sets: &[(PathBuf, PathBuf, usize)],
        progress: &mut dyn FinetuneProgress,
    ) -> Result<Score, AppError> {
        let mut total = Score::default();
        for (number, (dataset, db, questions)) in sets.iter().enumerate() {
            check_stop(self.stop)?;
            progress.phase(
                "eval",
                &format!(
                    "{role} model on {questions} held-out questions ({})",
                    db.display()
                ),
            );
            let out = self
                .eval_dir
                .join(format!("held-out-{number}-{role}.jsonl"));
            let source = DbSource::File(db.clone());
            let score = self.score(engine, dataset, source, None, &out, progress)?;
            total = total.plus(score);
        }
        Ok(total)
    }

    /// The first `request.general` questions of the general set.
    fn general(
        &self,
        engine: &mut LlamaEngine,
        role: &str,
        set: &GeneralSet,
        progress: &mut dyn FinetuneProgress,
    ) -> Result<Score, AppError> {
        let questions = self.request.general.min(general_set::SIZE);
        check_stop(self.stop)?;
        progress.phase(
            "eval",
            &format!("{role} model on {questions} general questions"),
        );
        let out = self.eval_dir.join(format!("general-{role}.jsonl"));
        let source = DbSource::Dir(set.db_dir.clone());
        let limit = Some(self.request.general);
        self.score(engine, &set.dataset, source, limit, &out, progress)
    }

    fn score(
        &self,
        engine: &mut LlamaEngine,
        dataset: &Path,
        source: DbSource,
        limit: Option<usize>,
        out: &Path,
        progress: &mut dyn FinetuneProgress,
    ) -> Result<Score, AppError> {
        let mut items = crate::core::eval::load_dataset(dataset, &source.default_db_id())?;
        items.truncate(limit.unwrap_or(usize::MAX));
        let mut pipeline = self.options.pipeline.clone();
        pipeline.answer = false;
        let job = EvalJob {
            items,
            source,
            gold_db: None,
            out: out.to_path_buf(),
            report: out.with_extension("md"),
            resume: false,
            overwrite: true,
            pipeline,
            render: self.options.render,
            config_name: crate::core::model::LanguageModel::model_id(engine),
            dataset: dataset.display().to_string(),
            command: "nano-analyst train run (gate)".into(),
            config: String::new(),
            warm: false,
        };
        let mut prepared = job.prepare()?;
        progress.eval_started(job.items.len());
        prepared.answer(engine, self.stop, &mut |predictions, db_id| {
            progress.eval_answered(predictions, db_id);
        })?;
        progress.eval_finished();
        let outcome = prepared.finish()?;
        if !outcome.finished {
            return Err(invalid(
                "evaluation interrupted; the version stays a candidate (train accept --force uses it)",
            ));
        }
        Ok(Score {
            correct: outcome.summary.overall.correct,
            total: outcome.summary.overall.questions,
        })
    }
}
