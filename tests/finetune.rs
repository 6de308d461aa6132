//! Fine-tuning on a tiny model built by the tests (see `support::tiny_model`): a training
//! step lowers the loss on its batch; save -> quantize -> load keeps the logits; the CLI
//! trains, gates and registers a version end to end; and `train accept` / `rollback` /
//! `status` switch versions in a registry the test writes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nano_analyst::llm::checkpoint::write_patched_copy;
use nano_analyst::llm::train::{QuantType, TrainError, TrainableModel, TrainerConfig, quantize};

use crate::support::binary;
use crate::support::tiny_model::{N_VOCAB, write_tiny_model};

fn tiny(dir: &Path, seed: u64) -> PathBuf {
    let path = dir.join(format!("tiny-{seed}.gguf"));
    write_tiny_model(&path, seed);
    path
}

/// A window of `len` pseudo-random token ids (labels are the next ids).
fn tokens(len: usize, seed: u32) -> Vec<i32> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(2654435761) ^ seed.wrapping_mul(40503)) % 250)
        .map(|t| t as i32)
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

#[test]
fn one_training_step_lowers_the_loss_on_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = TrainableModel::load(&tiny(dir.path(), 1)).unwrap();
    assert_eq!(model.n_vocab(), N_VOCAB);
    let mut trainer = model.trainer(&TrainerConfig::new(256, 1, 1e-3, 2)).unwrap();
    let names = trainer.trained_tensor_names();
    assert!(
        names.contains(&"blk.1.ffn_down.weight".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"output_norm.weight".to_string()));
    assert!(
        names.iter().all(|n| !n.starts_with("blk.0.")),
        "only the last layer: {names:?}"
    );
    let batch = tokens(257, 7);
    let before = trainer.train_step(&batch).unwrap();
    let after = trainer.eval_loss(&batch).unwrap();
    assert!(
        after < before,
        "one step should lower the loss on its batch: {before} -> {after}"
    );
    // Bad input is an error, never a llama.cpp abort.
    assert!(matches!(
        trainer.train_step(&batch[..100]),
        Err(TrainError::Input(_))
    ));
    let mut out_of_vocab = batch.clone();
    out_of_vocab[3] = N_VOCAB as i32;
    assert!(matches!(
        trainer.train_step(&out_of_vocab),
        Err(TrainError::Input(_))
    ));
}

#[test]
fn labels_from_the_models_own_predictions_leave_its_predictions_alone() {
    let dir = tempfile::tempdir().unwrap();
    let base = tiny(dir.path(), 4);
    let batch = tokens(257, 11);
    let base_model = TrainableModel::load(&base).unwrap();
    let predicted = base_model.greedy_predictions(&batch[..256], 2).unwrap();
    let logits = base_model.logits(&batch[..256], 2).unwrap();
    assert_eq!(predicted.len(), 256);
    for (position, id) in predicted.iter().enumerate().step_by(37) {
        let row = &logits[position * N_VOCAB..(position + 1) * N_VOCAB];
        let best = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert_eq!(row[*id as usize], best, "position {position}: the argmax");
    }
    drop(base_model);

    // The same step size on the same inputs: with the text as labels the model's greedy
    // predictions move toward the text; with its own predictions as labels they stay.
    let steps = |labels: &[i32]| {
        let mut model = TrainableModel::load(&base).unwrap();
        {
            let mut trainer = model.trainer(&TrainerConfig::new(256, 2, 3e-3, 2)).unwrap();
            for _ in 0..3 {
                trainer.train_step_with_labels(&batch, labels).unwrap();
            }
        }
        model.greedy_predictions(&batch[..256], 2).unwrap()
    };
    let changed = |after: &[i32]| after.iter().zip(&predicted).filter(|(a, b)| a != b).count();
    let after_text = steps(&batch[1..]);
    let after_own = steps(&predicted);
    assert!(
        changed(&after_own) * 4 <= changed(&after_text).max(1),
        "own-prediction labels changed {} of 256 predictions, text labels {}",
        changed(&after_own),
        changed(&after_text)
    );
    let learned = |after: &[i32]| {
        after
            .iter()
            .zip(&batch[1..])
            .filter(|(a, b)| a == b)
            .count()
    };
    assert!(
        learned(&after_text) > learned(&predicted),
        "text labels teach the text: {} -> {} of 256",
        learned(&predicted),
        learned(&after_text)
    );

    let mut model = TrainableModel::load(&base).unwrap();
    let mut trainer = model.trainer(&TrainerConfig::new(256, 1, 1e-3, 2)).unwrap();
    assert!(matches!(
        trainer.train_step_with_labels(&batch, &predicted[..100]),
        Err(TrainError::Input(_))
    ));
}

#[test]
fn save_quantize_load_round_trips_the_logits() {
    let dir = tempfile::tempdir().unwrap();
    let base = tiny(dir.path(), 2);
    let probe = tokens(24, 3);
    let base_logits = TrainableModel::load(&base)
        .unwrap()
        .logits(&probe, 2)
        .unwrap();

    let mut model = TrainableModel::load(&base).unwrap();
    let candidate = dir.path().join("candidate.f32.gguf");
    {
        let mut trainer = model.trainer(&TrainerConfig::new(256, 2, 1e-3, 2)).unwrap();
        for seed in 0..3 {
            trainer.train_step(&tokens(257, seed)).unwrap();
        }
        let written = write_patched_copy(&base, &candidate, |patch| {
            trainer.for_each_trained_tensor(patch)
        })
        .unwrap();
        assert_eq!(written, trainer.trained_tensor_names().len());
    }
    let trained_logits = model.logits(&probe, 2).unwrap();
    assert!(
        max_abs_diff(&base_logits, &trained_logits) > 1e-3,
        "training changed the model"
    );

    // The saved F32 file gives exactly the in-memory model's logits.
    let saved = TrainableModel::load(&candidate).unwrap();
    let saved_logits = saved.logits(&probe, 2).unwrap();
    assert!(max_abs_diff(&trained_logits, &saved_logits) < 1e-4);

    // Quantized, it stays close.
    for (kind, name, min_cosine) in [
        (QuantType::Q8_0, "q8_0", 0.999),
        (QuantType::Q4KM, "q4_k_m", 0.98),
    ] {
        let out = dir.path().join(format!("candidate-{name}.gguf"));
        quantize(&candidate, &out, kind, 2).unwrap();
        let logits = TrainableModel::load(&out)
            .unwrap()
            .logits(&probe, 2)
            .unwrap();
        let similarity = cosine(&trained_logits, &logits);
        assert!(similarity > min_cosine, "{name}: cosine {similarity}");
        // And a quantized model cannot be trained directly: a clear error, not an abort.
        let mut quantized = TrainableModel::load(&out).unwrap();
        let refused = quantized.trainer(&TrainerConfig::new(256, 1, 1e-3, 2));
        assert!(matches!(refused, Err(TrainError::NotF32 { .. })));
        // Dequantizing (what `train run` does first) makes it trainable again.
        let f32_copy = dir.path().join(format!("{name}.f32.gguf"));
        quantize(&out, &f32_copy, QuantType::F32, 2).unwrap();
        let mut dequantized = TrainableModel::load(&f32_copy).unwrap();
        let mut trainer = dequantized
            .trainer(&TrainerConfig::new(256, 1, 1e-3, 2))
            .unwrap();
        assert!(trainer.train_step(&tokens(257, 9)).unwrap().is_finite());
    }
}

fn nano(data_dir: &Path, config: &Path, args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .env_remove("NANO_ANALYST_MODEL")
        .env_remove("NANO_ANALYST_LORA")
        .env("NANO_ANALYST_DATA_DIR", data_dir)
        .env("NANO_ANALYST_CONFIG", config)
        .env(
            "NANO_ANALYST_EMBED_MODEL",
            data_dir.join("no-embedder.gguf"),
        )
        .output()
        .expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

fn config_for(dir: &Path, model: &Path) -> PathBuf {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[model]\npath = {:?}\ncontext_tokens = 8192\n",
            model.display().to_string()
        ),
    )
    .unwrap();
    config
}

/// A registry with two versions: v1 passed the gate, v2 did not.
fn write_registry(data: &Path, base: &Path) {
    let versions = data.join("models/versions");
    for id in ["v1", "v2"] {
        std::fs::create_dir_all(versions.join(id)).unwrap();
        std::fs::copy(base, versions.join(id).join(format!("{id}-base.gguf"))).unwrap();
    }
    let version = |id: &str, passed: bool| {
        serde_json::json!({
            "id": id,
            "file": format!("{id}/{id}-base.gguf"),
            "base": {"path": base.display().to_string(), "sha256": "00", "size": 1},
            "created": 1_700_000_000,
            "pairs": {"source": "test", "train": 21, "held_out": 21, "too_long": 0},
            "settings": {"epochs": 2, "layers": 2, "learning_rate": 1e-4, "window": 512,
                         "trained_parameters": 1000},
            "loss_curve": [1.2, 0.4],
            "epoch_losses": [0.8],
            "timings": {"dequantize_s": 1.0, "train_s": 60.0, "save_s": 1.0,
                        "quantize_s": 1.0, "eval_s": 1.0, "total_s": 64.0, "tokens_per_s": 9.0},
            "peak_rss_bytes": 8_000_000_000u64,
            "eval": {
                "held_out": {"base": {"correct": 10, "total": 21},
                             "candidate": {"correct": if passed { 14 } else { 10 }, "total": 21}},
                "general": {"base": {"correct": 70, "total": 100},
                            "candidate": {"correct": 70, "total": 100}},
                "decision": {"passed": passed,
                             "reason": if passed { "better" } else { "held-out EX did not rise (+0.0 points)" }}
            },
            "status": if passed { "accepted" } else { "rejected" }
        })
    };
    let registry = serde_json::json!({
        "active": null,
        "history": [],
        "versions": [version("v1", true), version("v2", false)]
    });
    std::fs::write(versions.join("registry.json"), registry.to_string()).unwrap();
}

#[test]
fn accept_rollback_and_status_switch_the_model_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let base = tiny(dir.path(), 3);
    let config = config_for(dir.path(), &base);
    write_registry(&data, &base);
    let status_json = |data: &Path| -> serde_json::Value {
        let out = stdout(&nano(data, &config, &["train", "status", "--json"]));
        serde_json::from_str(out.trim()).unwrap()
    };

    let text = stdout(&nano(&data, &config, &["train", "status"]));
    assert!(text.contains("no fine-tuned version active"), "{text}");
    assert!(text.contains("v1"), "{text}");
    assert!(
        text.contains("47.6 -> 66.7"),
        "held-out EX per version: {text}"
    );
    assert_eq!(status_json(&data)["model"], base.display().to_string());

    let text = stdout(&nano(&data, &config, &["train", "accept", "v1"]));
    assert!(text.contains("now using version v1"), "{text}");
    let status = status_json(&data);
    assert_eq!(status["active"], "v1");
    assert!(
        status["model"]
            .as_str()
            .unwrap()
            .ends_with("v1/v1-base.gguf"),
        "model resolution uses the active version: {status}"
    );

    // A rejected version needs --force; the error is one line and names the reason.
    let refused = nano(&data, &config, &["train", "accept", "v2"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("did not pass the gate (held-out EX did not rise"),
        "{stderr}"
    );
    stdout(&nano(&data, &config, &["train", "accept", "v2", "--force"]));
    assert_eq!(status_json(&data)["active"], "v2");

    let text = stdout(&nano(&data, &config, &["train", "rollback"]));
    assert!(text.contains("now using version v1"), "{text}");
    let text = stdout(&nano(&data, &config, &["train", "rollback"]));
    assert!(text.contains("now using the base model"), "{text}");
    assert_eq!(status_json(&data)["model"], base.display().to_string());
    let nothing = nano(&data, &config, &["train", "rollback"]);
    assert!(!nothing.status.success());

    // An explicit --model always wins over the registry.
    stdout(&nano(&data, &config, &["train", "accept", "v1"]));
    let other = dir.path().join("other.gguf");
    let out = stdout(&nano(
        &data,
        &config,
        &[
            "--model",
            other.to_str().unwrap(),
            "train",
            "status",
            "--json",
        ],
    ));
    assert!(out.contains("other.gguf"), "{out}");
}

#[test]
fn train_run_trains_gates_and_registers_a_version() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let base = tiny(dir.path(), 4);
    let config = config_for(dir.path(), &base);
    let db = crate::support::chinook_path();
    // Eight pairs (four queries, two wordings each): four train, four are held out.
    let pairs = dir.path().join("pairs.jsonl");
    let lines = [
        ("How many albums are there?", "SELECT count(*) FROM Album"),
        ("Count the albums.", "SELECT count(*) FROM Album"),
        ("List the names of all genres.", "SELECT Name FROM Genre"),
        ("What are the genre names?", "SELECT Name FROM Genre"),
        ("How many artists are there?", "SELECT count(*) FROM Artist"),
        ("Count the artists.", "SELECT count(*) FROM Artist"),
        ("List all media type names.", "SELECT Name FROM MediaType"),
        ("What media types exist?", "SELECT Name FROM MediaType"),
    ];
    let text: String = lines
        .iter()
        .map(|(q, s)| format!("{}\n", serde_json::json!({"question": q, "query": s})))
        .collect();
    std::fs::write(&pairs, text).unwrap();
    let output = nano(
        &data,
        &config,
        &[
            "--max-repairs",
            "0",
            "train",
            "run",
            "--pairs",
            pairs.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
            "--epochs",
            "1",
            "--window",
            "2048",
            "--lr",
            "0.001",
            "--general",
            "2",
            "--yes",
            "--progress",
            "json",
        ],
    );
    let text = stdout(&output);
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let steps: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "step").collect();
    assert!(!steps.is_empty(), "{text}");
    assert_eq!(steps[0]["steps"].as_u64().unwrap() as usize, steps.len());
    assert!(
        steps
            .iter()
            .all(|s| s["loss"].as_f64().unwrap().is_finite())
    );
    let done = events.last().unwrap();
    assert_eq!(done["event"], "done", "{text}");
    assert_eq!(done["id"], "v1");
    assert_eq!(done["held_out"]["base"]["total"], 4);
    // Both gate numbers are reported whatever the held-out result (no --quick-gate).
    assert_eq!(done["general"]["base"]["total"], 2, "{text}");
    assert_eq!(done["general"]["candidate"]["total"], 2, "{text}");
    let predicted = events
        .iter()
        .filter(|e| e["event"] == "phase" && e["phase"] == "predict")
        .count();
    assert!(
        predicted >= 1,
        "prompt positions take the base's predictions by default: {text}"
    );

    let versions = data.join("models/versions");
    let registry: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(versions.join("registry.json")).unwrap())
            .unwrap();
    let version = &registry["versions"][0];
    assert_eq!(version["pairs"]["train"], 4);
    assert_eq!(version["loss_curve"].as_array().unwrap().len(), steps.len());
    let passed = done["passed"].as_bool().unwrap();
    assert_eq!(
        version["status"],
        if passed { "accepted" } else { "rejected" }
    );
    assert_eq!(registry["active"].is_string(), passed);
    // The new version is a quantized GGUF that loads; no F32 intermediate is left behind.
    let file = versions.join(version["file"].as_str().unwrap());
    let index = nano_analyst::llm::gguf::GgufIndex::read(&file).unwrap();
    assert!(index.tensors.iter().any(|t| t.ggml_type != 0), "quantized");
    TrainableModel::load(&file).unwrap();
    let leftovers: Vec<String> = walk(&data)
        .into_iter()
        .filter(|p| p.ends_with(".f32.gguf") || p.ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The base model file was not touched.
    let fresh = dir.path().join("fresh.gguf");
    write_tiny_model(&fresh, 4);
    assert_eq!(
        std::fs::read(&base).unwrap(),
        std::fs::read(&fresh).unwrap()
    );
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    out
}

#[test]
fn lora_adapters_load_and_change_what_the_model_writes() {
    use nano_analyst::core::model::{
        ChatMessage, CompletionRequest, LanguageModel, Role, Sampling,
    };
    use nano_analyst::llm::engine::{EngineConfig, LlamaEngine, LoraConfig};

    let dir = tempfile::tempdir().unwrap();
    let base = tiny(dir.path(), 5);
    let adapter = dir.path().join("adapter.gguf");
    crate::support::tiny_model::write_tiny_lora(&adapter, 8, 1);
    let request = CompletionRequest {
        messages: vec![
            ChatMessage::new(Role::System, "You write SQL."),
            ChatMessage::new(Role::User, "How many albums?"),
        ],
        assistant_prefix: String::new(),
        max_tokens: 24,
        stop: Vec::new(),
        sampling: Sampling::Greedy,
        grammar: None,
    };
    let write = |lora: Option<LoraConfig>| {
        let mut config = EngineConfig::new(base.clone());
        config.context_tokens = 512;
        config.lora = lora;
        let mut engine = LlamaEngine::load(config).unwrap();
        let text = engine.complete(&request, &mut |_| {}).unwrap().text;
        (text, engine.model_id())
    };
    let (plain, plain_id) = write(None);
    let (adapted, adapted_id) = write(Some(LoraConfig {
        path: adapter.clone(),
        scale: 1.0,
    }));
    let (unscaled, _) = write(Some(LoraConfig {
        path: adapter.clone(),
        scale: 0.0,
    }));
    assert_ne!(plain, adapted, "the adapter changes the output");
    assert_eq!(plain, unscaled, "scale 0 is the base model");
    assert!(adapted_id.ends_with("+adapter.gguf"), "{adapted_id}");
    assert!(!plain_id.contains('+'));

    // A file that is not an adapter: a one-line error naming it, before anything runs.
    let config = config_for(dir.path(), &base);
    let data = dir.path().join("data");
    let output = nano(
        &data,
        &config,
        &[
            "--lora",
            base.to_str().unwrap(),
            "ask",
            crate::support::chinook_path().to_str().unwrap(),
            "How many albums?",
        ],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("not a LoRA adapter"), "{stderr}");
    let output = nano(&data, &config, &["--lora-scale", "0.5", "train", "status"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("--lora-scale needs --lora"));
}

/// Writes the tiny model to `$TINY_MODEL_OUT` for trying the app by hand:
/// `TINY_MODEL_OUT=/tmp/tiny.gguf cargo test --test tests write_tiny_model -- --ignored`.
#[test]
#[ignore]
fn write_tiny_model_for_manual_checks() {
    if let Some(path) = std::env::var_os("TINY_MODEL_OUT") {
        write_tiny_model(Path::new(&path), 4);
    }
}
