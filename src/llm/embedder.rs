//! Sentence embeddings with llama.cpp: a BERT-style GGUF (default all-MiniLM-L6-v2,
//! converted by scripts/fetch-embedder.sh), mean-pooled and L2-normalised.
//!
//! Invariants: texts are truncated to the model's training context (512 for MiniLM) so
//! llama.cpp never sees an over-long sequence; several texts share one `decode` as separate
//! sequences, and the KV memory is cleared before every batch (embeddings keep no state).
//!
//! Threads: one single-threaded context per thread, each decoding its own batches. A small
//! model's matrices are too small to split: one context on two threads spent twice the CPU
//! time of one thread for the same texts (measured on a 2-core machine), while two
//! contexts side by side scale with the cores.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use crate::core::model::LlmError;
use crate::core::model::{EmbedError, Embedder};
use crate::llm::engine::{backend, load_model};
use crate::llm::gguf::{ModelKind, model_kind};

/// The default embedding model's file name inside `<data>/models/`.
pub(crate) const DEFAULT_EMBED_MODEL_FILE: &str = "all-minilm-l6-v2-f16.gguf";

/// Tokens per decode: also the longest text (longer ones are truncated).
const BATCH_TOKENS: u32 = 512;
/// Sequences packed into one decode.
const MAX_SEQUENCES: u32 = 32;
/// At most this many contexts decode side by side.
const MAX_WORKERS: i32 = 8;

pub struct LlamaEmbedder {
    model: &'static LlamaModel,
    /// One single-threaded context per worker thread.
    contexts: Vec<LlamaContext<'static>>,
    dimensions: usize,
    model_id: String,
    max_tokens: usize,
}

impl LlamaEmbedder {
    pub fn load(path: &Path, threads: i32) -> Result<Self, EmbedError> {
        if !path.is_file() {
            return Err(EmbedError::ModelNotFound(path.display().to_string()));
        }
        let load_error = |reason: String| EmbedError::Load {
            path: path.display().to_string(),
            reason,
        };
        match model_kind(path).map_err(|e| load_error(e.to_string()))? {
            ModelKind::Embedding { .. } => {}
            other => {
                return Err(EmbedError::NotEmbeddingModel {
                    path: path.display().to_string(),
                    found: other.describe(),
                });
            }
        }
        let model = load_model(path, 0).map_err(|e: LlmError| load_error(e.to_string()))?;
        let backend = backend().map_err(|e| load_error(e.to_string()))?;
        let workers = usize::try_from(threads.clamp(1, MAX_WORKERS)).unwrap_or(1);
        let mut contexts = Vec::with_capacity(workers);
        for _ in 0..workers {
            let params = LlamaContextParams::default()
                .with_n_ctx(NonZeroU32::new(BATCH_TOKENS * 2))
                .with_n_batch(BATCH_TOKENS)
                .with_n_ubatch(BATCH_TOKENS)
                .with_n_seq_max(MAX_SEQUENCES)
                .with_n_threads(1)
                .with_n_threads_batch(1)
                .with_embeddings(true)
                .with_pooling_type(LlamaPoolingType::Mean);
            let context = model
                .new_context(backend, params)
                .map_err(|e| load_error(e.to_string()))?;
            contexts.push(context);
        }
        let dimensions = usize::try_from(model.n_embd()).unwrap_or(0);
        if dimensions == 0 {
            return Err(load_error("the model reports no embedding size".into()));
        }
        let train = usize::try_from(model.n_ctx_train()).unwrap_or(512);
        Ok(Self {
            model,
            contexts,
            dimensions,
            model_id: model_id(path, dimensions),
            max_tokens: train.min(BATCH_TOKENS as usize),
        })
    }

    fn tokens(&self, text: &str) -> Vec<LlamaToken> {
        let mut tokens = self.model.vocab().tokenize(text.as_bytes(), true, false);
        if tokens.len() > self.max_tokens {
            // Keep the closing [SEP]: pooled BERT vectors expect it.
            let last = tokens[tokens.len() - 1];
            tokens.truncate(self.max_tokens - 1);
            tokens.push(last);
        }
        if tokens.is_empty() {
            tokens.push(self.model.vocab().bos());
        }
        tokens
    }

    /// Token lists packed into decodes of at most [`MAX_SEQUENCES`] and [`BATCH_TOKENS`].
    fn pack(&self, texts: &[&str]) -> Vec<Vec<Vec<LlamaToken>>> {
        let mut batches = Vec::new();
        let mut pending: Vec<Vec<LlamaToken>> = Vec::new();
        let mut pending_tokens = 0;
        for text in texts {
            let tokens = self.tokens(text);
            let full = pending.len() as u32 >= MAX_SEQUENCES
                || pending_tokens + tokens.len() > BATCH_TOKENS as usize;
            if full && !pending.is_empty() {
                batches.push(std::mem::take(&mut pending));
                pending_tokens = 0;
            }
            pending_tokens += tokens.len();
            pending.push(tokens);
        }
        if !pending.is_empty() {
            batches.push(pending);
        }
        batches
    }
}

/// Embeds one packed batch on `context`.
fn embed_batch(
    context: &mut LlamaContext<'static>,
    batch_texts: &[Vec<LlamaToken>],
) -> Result<Vec<Vec<f32>>, EmbedError> {
    let total: usize = batch_texts.iter().map(Vec::len).sum();
    let mut batch = LlamaBatch::new(total.max(1), batch_texts.len() as i32);
    for (seq, tokens) in batch_texts.iter().enumerate() {
        batch
            .add_sequence(tokens, seq as i32, true)
            .map_err(|e| EmbedError::Inference(e.to_string()))?;
    }
    context.clear_kv_cache();
    context
        .decode(&mut batch)
        .map_err(|e| EmbedError::Inference(e.to_string()))?;
    let mut out = Vec::with_capacity(batch_texts.len());
    for seq in 0..batch_texts.len() {
        let raw = context
            .embeddings_seq_ith(seq as i32)
            .map_err(|e| EmbedError::Inference(e.to_string()))?;
        out.push(normalize(raw));
    }
    Ok(out)
}

/// Embeds `batches` in order on one context.
fn embed_batches(
    context: &mut LlamaContext<'static>,
    batches: &[Vec<Vec<LlamaToken>>],
) -> Result<Vec<Vec<f32>>, EmbedError> {
    let mut out = Vec::new();
    for batch in batches {
        out.extend(embed_batch(context, batch)?);
    }
    Ok(out)
}

impl Embedder for LlamaEmbedder {
    fn dimensions(&self) -> usize {
        self.dimensions
    }

    fn model_id(&self) -> String {
        self.model_id.clone()
    }

    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let batches = self.pack(texts);
        if batches.len() < 2 || self.contexts.len() < 2 {
            let Some(context) = self.contexts.first_mut() else {
                return Err(EmbedError::Inference("no embedding context".into()));
            };
            return embed_batches(context, &batches);
        }
        // Contiguous runs of batches per context keep the output in input order.
        let per_worker = batches.len().div_ceil(self.contexts.len());
        let results: Vec<Result<Vec<Vec<f32>>, EmbedError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .contexts
                .iter_mut()
                .zip(batches.chunks(per_worker))
                .map(|(context, run)| scope.spawn(move || embed_batches(context, run)))
                .collect();
            handles
                .into_iter()
                .map(|handle| {
                    handle.join().unwrap_or_else(|_| {
                        Err(EmbedError::Inference("an embedding thread panicked".into()))
                    })
                })
                .collect()
        });
        let mut out = Vec::with_capacity(texts.len());
        for result in results {
            out.extend(result?);
        }
        Ok(out)
    }
}

fn normalize(raw: &[f32]) -> Vec<f32> {
    let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        raw.iter().map(|x| x / norm).collect()
    } else {
        raw.to_vec()
    }
}

/// Name, size and dimensions: a re-converted or replaced file gets new cached vectors.
fn model_id(path: &Path, dimensions: usize) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "embedder".into());
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    format!("{name}-{size}-{dimensions}")
}

/// Where the default embedding model lives in a data directory.
pub fn default_embed_model(data_dir: &Path) -> PathBuf {
    data_dir.join("models").join(DEFAULT_EMBED_MODEL_FILE)
}
