//! `train run`: verified pairs in, a gated model version out.
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
//! Every intermediate file is removed when a step fails or the run is interrupted; the
//! version is registered as soon as its model file exists, so an interrupted evaluation
//! leaves a `candidate` that `train accept --force` can still use.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::cli::{ProgressMode, TrainRunArgs};
use crate::commands::general_set;
use crate::commands::train_progress::{ProgressEvent, Reporter};
use crate::core::db::exec::ReadOnlyDb;
use crate::core::db::schema::Schema;
use crate::core::eval::harness::{DbSource, EvalJob};
use crate::core::feedback::store::{HistoryStore, scope_of};
use crate::core::feedback::training::training_records;
use crate::core::finetune::registry::{
    BaseModel, GateReport, ModelVersion, PairCounts, Registry, Timings, TrainSettings,
    VersionStatus,
};
use crate::core::finetune::{
    Comparison, FinetunePair, Score, Split, TokenizedExample, Window, epoch_order, example_for,
    gate, pack_windows, split_pairs, window_for,
};
use crate::error::AppError;
use crate::llm::checkpoint::{ensure_free_space, human_bytes, write_error, write_patched_copy};
use crate::llm::engine::LlamaEngine;
use crate::llm::gguf::{GGUF_TYPE_F32, GgufIndex};
use crate::llm::train::{QuantType, TrainableModel, TrainerConfig, WINDOW_GRANULE, quantize};
use crate::session::RuntimeOptions;

/// Fewer verified pairs than this cannot be split into halves worth training and judging.
const MIN_PAIRS: usize = 4;

fn invalid(text: impl Into<String>) -> AppError {
    AppError::Invalid(text.into())
}

pub fn run(args: &TrainRunArgs, options: &mut RuntimeOptions) -> Result<ExitCode, AppError> {
    let mut reporter = Reporter::new(args.progress);
    match run_inner(args, options, &mut reporter) {
        Ok(code) => Ok(code),
        Err(error) => {
            reporter.finish_bar();
            reporter.emit(&ProgressEvent::Error {
                message: error.to_string(),
            });
            Err(error)
        }
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

fn run_inner(
    args: &TrainRunArgs,
    options: &mut RuntimeOptions,
    reporter: &mut Reporter,
) -> Result<ExitCode, AppError> {
    let started = Instant::now();
    validate_args(args, options)?;
    let (pairs, source, from_store) = collect_pairs(args, options)?;
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
    let versions_dir = options.paths.versions_dir();
    let cache_dir = options.paths.finetune_cache_dir();
    let base_path = base_model_path(options, &versions_dir);
    let base_index = GgufIndex::read(&base_path)?;
    let already_f32 = base_index
        .tensors
        .iter()
        .all(|t| t.ggml_type == GGUF_TYPE_F32);

    reporter.phase(
        "tokenize",
        &format!("{} training examples", split.train.len()),
    );
    let prepared = prepare_windows(&split.train, &base_path, options, args.window)?;
    let steps = prepared.windows.len() * args.epochs as usize;

    let f32_bytes = base_index.parameter_count() * 4;
    let base_size = file_size(&base_path);
    let mut registry = Registry::load(&versions_dir)?;
    let id = registry.next_id();
    print_plan(args, &split, &prepared, &base_path, f32_bytes, reporter);
    confirm(args)?;

    std::fs::create_dir_all(&cache_dir).map_err(|e| AppError::from(write_error(&cache_dir, &e)))?;
    let _one_at_a_time = lock_training(&cache_dir)?;
    remove_stale_intermediates(&cache_dir);
    let version_dir = versions_dir.join(&id);
    let mut scratch = Scratch(Vec::new());

    let stop = Arc::new(AtomicBool::new(false));
    register_interrupt(&stop)?;

    // 1. The F32 base (cached).
    reporter.phase("hash", &format!("'{}'", base_path.display()));
    let sha256 = sha256_file(&base_path)?;
    let dequantize_started = Instant::now();
    let f32_path = if already_f32 {
        base_path.clone()
    } else {
        let cached = cache_dir.join(format!("{}.f32.gguf", &sha256[..16]));
        if !cached.is_file() {
            ensure_free_space(&cache_dir, f32_bytes * 2 + base_size + (1 << 30))?;
            reporter.phase(
                "dequantize",
                &format!(
                    "converting the base model to F32 ({})",
                    human_bytes(f32_bytes)
                ),
            );
            let partial = scratch.add(cached.with_extension("partial"));
            quantize(&base_path, &partial, QuantType::F32, options.engine.threads)?;
            std::fs::rename(&partial, &cached)
                .map_err(|e| AppError::from(write_error(&cached, &e)))?;
            scratch.keep(&partial);
        }
        if args.no_cache {
            scratch.add(cached.clone());
        }
        cached
    };
    let dequantize_s = dequantize_started.elapsed().as_secs_f64();
    ensure_free_space(&cache_dir, f32_bytes + base_size + (512 << 20))?;
    check_stop(&stop)?;

    // 2. Training.
    reporter.phase(
        "train",
        &format!(
            "{} examples in {} windows of {} tokens, {} epochs, last {} layers, lr {}",
            prepared.examples,
            prepared.windows.len(),
            prepared.window,
            args.epochs,
            args.layers,
            args.lr
        ),
    );
    let mut model = TrainableModel::load(&f32_path)?;
    let config = TrainerConfig::new(
        prepared.window,
        args.layers,
        args.lr,
        options.engine.threads,
    );
    let predict_started = Instant::now();
    let labels = window_labels(&model, &prepared, args, options, reporter, &stop)?;
    let predict_s = predict_started.elapsed().as_secs_f64();
    let train_started = Instant::now();
    let mut trainer = model.trainer(&config)?;
    let trained_parameters = trainer.trained_parameters();
    tracing::info!(tensors = ?trainer.trained_tensor_names(), trained_parameters, "training");
    let mut loss_curve = Vec::with_capacity(steps);
    let mut epoch_losses = Vec::new();
    reporter.start_steps(steps);
    let mut step = 0usize;
    for epoch in 0..args.epochs {
        let mut sum = 0.0;
        for &index in &epoch_order(prepared.windows.len(), epoch) {
            check_stop(&stop)?;
            let loss =
                trainer.train_step_with_labels(&prepared.windows[index].tokens, &labels[index])?;
            sum += loss;
            loss_curve.push(loss);
            step += 1;
            let elapsed = train_started.elapsed().as_secs_f64();
            let tokens_per_s = (step * prepared.window as usize) as f64 / elapsed.max(1e-9);
            let eta_s = (elapsed / step as f64 * (steps - step) as f64).round() as u64;
            reporter.step(ProgressEvent::Step {
                epoch: epoch + 1,
                epochs: args.epochs,
                step,
                steps,
                loss,
                tokens_per_s,
                eta_s,
            });
        }
        let mean = sum / prepared.windows.len().max(1) as f64;
        epoch_losses.push(mean);
        reporter.note(&format!("epoch {}: mean loss {mean:.4}", epoch + 1));
    }
    let train_s = train_started.elapsed().as_secs_f64();
    let tokens_per_s = (step * prepared.window as usize) as f64 / train_s.max(1e-9);
    let peak_rss_bytes = peak_rss();

    // 3. Save (into a copy of the F32 file) and quantize.
    reporter.phase(
        "save",
        "writing the trained layers into a copy of the F32 model",
    );
    let save_started = Instant::now();
    let candidate_f32 = scratch.add(cache_dir.join(format!("{id}.f32.gguf")));
    write_patched_copy(&f32_path, &candidate_f32, |patch| {
        trainer.for_each_trained_tensor(patch)
    })?;
    drop(trainer);
    drop(model);
    let save_s = save_started.elapsed().as_secs_f64();
    check_stop(&stop)?;

    reporter.phase("quantize", "to Q4_K_M");
    let quantize_started = Instant::now();
    let base_name = base_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model.gguf".into());
    let file = format!("{id}/{id}-{base_name}");
    let version_path = versions_dir.join(&file);
    std::fs::create_dir_all(&version_dir)
        .map_err(|e| AppError::from(write_error(&version_dir, &e)))?;
    ensure_free_space(&versions_dir, base_size + (256 << 20))?;
    let partial = scratch.add(version_path.with_extension("partial"));
    quantize(
        &candidate_f32,
        &partial,
        QuantType::Q4KM,
        options.engine.threads,
    )?;
    std::fs::rename(&partial, &version_path)
        .map_err(|e| AppError::from(write_error(&version_path, &e)))?;
    scratch.keep(&partial);
    drop(scratch);
    let quantize_s = quantize_started.elapsed().as_secs_f64();

    let mut version = ModelVersion {
        id: id.clone(),
        file,
        base: BaseModel {
            path: base_path.display().to_string(),
            sha256,
            size: base_size,
        },
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        pairs: PairCounts {
            source,
            train: split.train.len(),
            held_out: split.held_out.len(),
            too_long: prepared.too_long,
        },
        settings: TrainSettings {
            epochs: args.epochs,
            layers: args.layers,
            learning_rate: args.lr,
            window: prepared.window,
            trained_parameters,
            learn_prompt: args.learn_prompt,
        },
        loss_curve,
        epoch_losses,
        timings: Timings {
            dequantize_s,
            predict_s,
            train_s,
            save_s,
            quantize_s,
            eval_s: 0.0,
            total_s: started.elapsed().as_secs_f64(),
            tokens_per_s,
        },
        peak_rss_bytes,
        eval: None,
        status: VersionStatus::Candidate,
    };
    registry.upsert(version.clone());
    registry.save(&versions_dir)?;
    if from_store {
        // The feedback is used: the "retraining due" count restarts whatever the gate says.
        HistoryStore::open(&options.paths.history_db())?.mark_trained(Some(&id))?;
    }

    // 4. The gate.
    let eval_started = Instant::now();
    let eval_dir = version_dir.join("eval");
    let (held_out, general) = evaluate_both(
        args,
        options,
        &split.held_out,
        &base_path,
        &version_path,
        &eval_dir,
        &cache_dir,
        reporter,
        &stop,
    )?;
    let decision = gate(held_out, general);
    version.timings.eval_s = eval_started.elapsed().as_secs_f64();
    version.timings.total_s = started.elapsed().as_secs_f64();
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
    let mut registry = Registry::load(&versions_dir)?;
    registry.upsert(version.clone());
    if decision.passed {
        registry.accept(&versions_dir, Some(&id), false)?;
    }
    registry.save(&versions_dir)?;
    reporter.finish_bar();
    reporter.emit(&ProgressEvent::done(&id, &decision, held_out, general));
    if reporter.mode() == ProgressMode::Bar {
        print_result(&version, &version_path);
    }
    Ok(ExitCode::SUCCESS)
}

fn validate_args(args: &TrainRunArgs, options: &RuntimeOptions) -> Result<(), AppError> {
    if args.epochs == 0 {
        return Err(invalid("--epochs must be at least 1"));
    }
    if args.window < WINDOW_GRANULE || !args.window.is_multiple_of(WINDOW_GRANULE) {
        return Err(invalid(format!(
            "--window {} must be a multiple of {WINDOW_GRANULE} tokens",
            args.window
        )));
    }
    if !(args.lr > 0.0 && args.lr < 1.0) {
        return Err(invalid(format!("--lr {} must be between 0 and 1", args.lr)));
    }
    if options.engine.lora.is_some() {
        return Err(invalid(
            "train run fine-tunes the model itself; leave out --lora",
        ));
    }
    Ok(())
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

fn collect_pairs(
    args: &TrainRunArgs,
    options: &RuntimeOptions,
) -> Result<(Vec<FinetunePair>, String, bool), AppError> {
    if let (Some(file), Some(db)) = (&args.pairs, &args.db) {
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
    let store = HistoryStore::open(&options.paths.history_db())?;
    let scope = match &args.database {
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

struct Prepared {
    window: u32,
    /// Examples packed into the windows.
    examples: usize,
    windows: Vec<Window>,
    longest: usize,
    too_long: usize,
}

/// Each window's labels. Unless `--learn-prompt`, prompt positions are labelled with the
/// base model's own greedy prediction (one forward pass per window), so only the replies
/// teach: `Window::labels` says why llama.cpp's loss needs this instead of a mask.
fn window_labels(
    model: &TrainableModel,
    prepared: &Prepared,
    args: &TrainRunArgs,
    options: &RuntimeOptions,
    reporter: &mut Reporter,
    stop: &AtomicBool,
) -> Result<Vec<Vec<i32>>, AppError> {
    if args.learn_prompt {
        return Ok(prepared.windows.iter().map(|w| w.labels(None)).collect());
    }
    let reply_labels: usize = prepared.windows.iter().map(Window::reply_labels).sum();
    reporter.phase(
        "predict",
        &format!(
            "the base model's own predictions for the prompt positions of {} windows ({} of \
             {} labels are reply tokens)",
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
            reporter.phase(
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

    crate::llm::gguf::validate_gguf(base_path)?;
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

fn print_plan(
    args: &TrainRunArgs,
    split: &Split,
    prepared: &Prepared,
    base_path: &Path,
    f32_bytes: u64,
    reporter: &Reporter,
) {
    let mut plan = format!(
        "fine-tuning '{}'\n  pairs: {} to train on, {} held out to judge by\n  {} examples \
         packed in {} windows of {} tokens (longest example {}), {} epochs, {} steps, last {} \
         layers + final norm, lr {}\n  \
         disk: an F32 copy of the base ({}, kept in the cache unless --no-cache) and a second \
         one while saving",
        base_path.display(),
        split.train.len(),
        split.held_out.len(),
        prepared.examples,
        prepared.windows.len(),
        prepared.window,
        prepared.longest,
        args.epochs,
        prepared.windows.len() * args.epochs as usize,
        args.layers,
        args.lr,
        human_bytes(f32_bytes),
    );
    if prepared.too_long > 0 {
        plan.push_str(&format!(
            "\n  {} examples are longer than --window {} and are left out",
            prepared.too_long, args.window
        ));
    }
    reporter.note(&plan);
}

fn confirm(args: &TrainRunArgs) -> Result<(), AppError> {
    if args.yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() || args.progress == ProgressMode::Json {
        return Err(invalid(
            "training takes a long time and several GB of disk: pass --yes to start without asking",
        ));
    }
    eprint!("Start training? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| invalid(format!("cannot read the answer: {e}")))?;
    if answer.trim().eq_ignore_ascii_case("y") || answer.trim().eq_ignore_ascii_case("yes") {
        Ok(())
    } else {
        Err(invalid("training cancelled"))
    }
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

#[allow(clippy::too_many_arguments)]
fn evaluate_both(
    args: &TrainRunArgs,
    options: &RuntimeOptions,
    held_out: &[FinetunePair],
    base: &Path,
    candidate: &Path,
    eval_dir: &Path,
    cache_dir: &Path,
    reporter: &mut Reporter,
    stop: &AtomicBool,
) -> Result<(Comparison, Comparison), AppError> {
    std::fs::create_dir_all(eval_dir).map_err(|e| AppError::from(write_error(eval_dir, &e)))?;
    let held_out_sets = write_held_out_sets(held_out, eval_dir)?;
    let gate = Gate {
        options,
        eval_dir,
        progress: args.progress,
        stop,
    };
    // One model in memory at a time: each is loaded for its evaluations and freed after.
    let mut held = Comparison::default();
    let mut engine = gate.load(base)?;
    held.base = gate.held_out(&mut engine, "base", &held_out_sets, reporter)?;
    drop(engine);
    let mut engine = gate.load(candidate)?;
    held.candidate = gate.held_out(&mut engine, "candidate", &held_out_sets, reporter)?;

    let mut general = Comparison::default();
    // Without a held-out gain the general set cannot change the verdict; --quick-gate saves
    // its two evaluations then, at the price of a report without general figures.
    let held_out_rose = held.candidate.percent() > held.base.percent();
    let skip_general = args.quick_gate && !held_out_rose;
    if skip_general {
        reporter.note(&format!(
            "held-out EX did not rise ({held}); the general set is not evaluated (--quick-gate)"
        ));
    }
    if args.general > 0 && !skip_general {
        let set = general_set::materialize(&cache_dir.join("general-set"))?;
        let questions = args.general.min(general_set::SIZE);
        let mut general_on = |engine: &mut LlamaEngine, role: &str| {
            check_stop(stop)?;
            reporter.phase(
                "eval",
                &format!("{role} model on {questions} general questions"),
            );
            gate.score(
                engine,
                &set.dataset,
                DbSource::Dir(set.db_dir.clone()),
                Some(args.general),
                &eval_dir.join(format!("general-{role}.jsonl")),
            )
        };
        general.candidate = general_on(&mut engine, "candidate")?;
        drop(engine);
        general.base = general_on(&mut gate.load(base)?, "base")?;
    }
    Ok((held, general))
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
    eval_dir: &'a Path,
    progress: ProgressMode,
    stop: &'a AtomicBool,
}

impl Gate<'_> {
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
        reporter: &mut Reporter,
    ) -> Result<Score, AppError> {
        let mut total = Score::default();
        for (number, (dataset, db, questions)) in sets.iter().enumerate() {
            check_stop(self.stop)?;
            reporter.phase(
                "eval",
                &format!(
                    "{role} model on {questions} held-out questions ({})",
                    db.display()
                ),
            );
            let out = self
                .eval_dir
                .join(format!("held-out-{number}-{role}.jsonl"));
            let score = self.score(engine, dataset, DbSource::File(db.clone()), None, &out)?;
            total = total.plus(score);
        }
        Ok(total)
    }

    fn score(
        &self,
        engine: &mut LlamaEngine,
        dataset: &Path,
        source: DbSource,
        limit: Option<usize>,
        out: &Path,
    ) -> Result<Score, AppError> {
        let default_db_id = match &source {
            DbSource::File(path) => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            DbSource::Dir(_) => String::new(),
        };
        let mut items = crate::core::eval::load_dataset(dataset, &default_db_id)?;
        items.truncate(limit.unwrap_or(usize::MAX));
        let mut pipeline = self.options.pipeline.clone();
        pipeline.answer = false;
        let job = EvalJob {
            items,
            source,
            out: out.to_path_buf(),
            report: out.with_extension("md"),
            resume: false,
            overwrite: true,
            pipeline,
            render: self.options.render,
            config_name: crate::core::model::LanguageModel::model_id(engine),
            dataset: dataset.display().to_string(),
            command: "nano-analyst train run (gate)".into(),
        };
        let mut prepared = job.prepare()?;
        let quiet = self.progress == ProgressMode::Json;
        let bar = crate::commands::eval::progress_bar(job.items.len(), 0, quiet);
        prepared.answer(engine, self.stop, &mut |predictions, db_id| {
            bar.inc(1);
            crate::commands::eval::update_bar(&bar, predictions, db_id);
        })?;
        bar.finish_and_clear();
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

fn print_result(version: &ModelVersion, path: &Path) {
    let Some(report) = &version.eval else { return };
    let curve = &version.loss_curve;
    let first = curve.first().copied().unwrap_or(0.0);
    let last = curve.last().copied().unwrap_or(0.0);
    println!(
        "version {}: {}\n  held-out EX {}\n  general EX  {}\n  {}",
        version.id,
        if report.decision.passed {
            "accepted, now in use"
        } else {
            "rejected, the base model stays in use"
        },
        report.held_out,
        report.general,
        report.decision.reason
    );
    println!(
        "  loss {first:.3} -> {last:.3} over {} steps (epoch means {})",
        curve.len(),
        version
            .epoch_losses
            .iter()
            .map(|l| format!("{l:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let t = &version.timings;
    println!(
        "  time: train {:.0} s ({:.1} tokens/s), dequantize {:.0} s, prompt predictions {:.0} s, \
         save {:.0} s, quantize {:.0} s, eval {:.0} s, total {:.0} s; peak memory {}",
        t.train_s,
        t.tokens_per_s,
        t.dequantize_s,
        t.predict_s,
        t.save_s,
        t.quantize_s,
        t.eval_s,
        t.total_s,
        version
            .peak_rss_bytes
            .map(human_bytes)
            .unwrap_or_else(|| "unknown".into())
    );
    println!("  file: {}", path.display());
    if !report.decision.passed {
        println!(
            "  use it anyway: nano-analyst train accept {} --force",
            version.id
        );
    } else {
        println!("  go back: nano-analyst train rollback");
    }
}
