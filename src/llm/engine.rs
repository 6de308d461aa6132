//! The llama.cpp engine: one model, one context, and the tokens its KV cache holds.
//!
//! Invariants:
//! - `evaluated` is exactly the token sequence whose KV entries sequence 0 holds, in order.
//!   Every request reuses the longest common prefix and evaluates only the rest, so a
//!   database's system prompt and schema are evaluated once per process.
//! - The system message's KV state is also saved to disk, keyed by the model file and the
//!   prompt's tokens, so a restart loads it in milliseconds instead of re-evaluating it.
//! - The engine is used from one thread: `LlamaContext` is not `Sync`. Cancellation is an
//!   atomic flag checked between prompt chunks and between generated tokens.

use std::mem::ManuallyDrop;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaLoraAdapter, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use sha2::{Digest, Sha256};

use crate::core::model::{
    ChatMessage, Completion, CompletionRequest, LanguageModel, LlmError, Sampling, StopReason,
};
use crate::core::repetition::ends_in_loop;
use crate::llm::gguf::{ModelKind, model_kind, validate_gguf};

#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    pub model_path: PathBuf,
    pub context_tokens: u32,
    /// Tokens per `decode` call while evaluating a prompt (also the cancel granularity).
    pub batch_tokens: u32,
    pub threads: i32,
    pub gpu_layers: u32,
    /// Where system-prompt KV states are saved; `None` disables the disk cache.
    pub prefix_cache_dir: Option<PathBuf>,
    /// A GGUF LoRA adapter applied on top of the model.
    pub lora: Option<LoraConfig>,
}

/// A LoRA adapter file and the scale its deltas are applied with.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    pub path: PathBuf,
    pub scale: f32,
}

impl EngineConfig {
    pub fn new(model_path: PathBuf) -> Self {
        Self {
            model_path,
            context_tokens: 4096,
            batch_tokens: 512,
            threads: default_threads(),
            gpu_layers: 0,
            prefix_cache_dir: None,
            lora: None,
        }
    }
}

/// Physical cores: on 2 cores, 2 threads beat 4 by 13% (see LLAMA-NOTES).
pub(crate) fn default_threads() -> i32 {
    i32::try_from(num_cpus::get_physical().max(1)).unwrap_or(1)
}

static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();

/// The process-wide llama.cpp backend. llama.cpp's logs go to `tracing` (and so to the log
/// file), never to the terminal.
pub fn backend() -> Result<&'static LlamaBackend, LlmError> {
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|reason| LlmError::Load {
            path: "llama.cpp backend".into(),
            reason: reason.clone(),
        })
}

/// Loads a GGUF model for the life of the process: the embedder and tests that share one
/// model between engines use this; an engine that loads its own frees it when dropped.
pub fn load_model(path: &Path, gpu_layers: u32) -> Result<&'static LlamaModel, LlmError> {
    let (model, owned) = load_owned_model(path, gpu_layers)?;
    std::mem::forget(owned);
    Ok(model)
}

/// Loads a model together with a LoRA adapter (adapters need the model mutably, so before
/// any context exists). Both live for the rest of the process, like [`load_model`]'s.
pub(crate) fn load_model_with_lora(
    path: &Path,
    gpu_layers: u32,
    lora: &LoraConfig,
) -> Result<(&'static LlamaModel, &'static mut LlamaLoraAdapter), LlmError> {
    validate_gguf(path)?;
    let adapter_error = |reason: String| LlmError::Load {
        path: lora.path.display().to_string(),
        reason,
    };
    let index = crate::llm::gguf::GgufIndex::read(&lora.path)?;
    if index.text("general.type") != Some("adapter") {
        return Err(adapter_error(
            "not a LoRA adapter (general.type is not 'adapter'); convert it with llama.cpp's \
             convert_lora_to_gguf.py"
                .into(),
        ));
    }
    if !(lora.scale.is_finite()) {
        return Err(adapter_error(format!(
            "invalid --lora-scale {}",
            lora.scale
        )));
    }
    let backend = backend()?;
    let params = LlamaModelParams::default().with_n_gpu_layers(gpu_layers);
    let mut model =
        LlamaModel::load_from_file(backend, path, &params).map_err(|e| LlmError::Load {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    let adapter = model.lora_adapter_init(&lora.path).map_err(|e| {
        adapter_error(format!(
            "llama.cpp refused it ({e}); is it an adapter for this model's architecture? \
             See the log file"
        ))
    })?;
    Ok((Box::leak(Box::new(model)), Box::leak(Box::new(adapter))))
}

pub struct LlamaEngine {
    model: &'static LlamaModel,
    /// Dropped by hand, before `owned` frees the model it borrows.
    context: ManuallyDrop<LlamaContext<'static>>,
    template: Option<LlamaChatTemplate>,
    evaluated: Vec<LlamaToken>,
    model_id: String,
    /// Identifies the model file in prefix-cache keys (name, size, modification time).
    model_key: String,
    cancel: Arc<AtomicBool>,
    config: EngineConfig,
    /// The model when this engine loaded it (and so frees it); `None` for a model shared
    /// with other engines or one with a LoRA adapter, which live for the process.
    owned: Option<OwnedModel>,
}

/// A model loaded by one engine, freed when the engine is dropped.
struct OwnedModel(NonNull<LlamaModel>);

// SAFETY: `LlamaModel` is `Send` and `Sync` in llama-cpp-2; the pointer comes from
// `Box::leak` in `load_owned_model` and is freed once, in `drop`.
unsafe impl Send for OwnedModel {}

impl Drop for OwnedModel {
    fn drop(&mut self) {
        // SAFETY: see the `Send` impl; no context borrows the model any more (the engine
        // drops its context first).
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

impl Drop for LlamaEngine {
    fn drop(&mut self) {
        // SAFETY: the context is dropped exactly once, here, and never used after.
        unsafe { ManuallyDrop::drop(&mut self.context) };
        self.owned = None;
    }
}

/// Loads a model for one engine: the reference it hands out lives as long as the returned
/// owner, which the engine keeps and drops after its context.
fn load_owned_model(
    path: &Path,
    gpu_layers: u32,
) -> Result<(&'static LlamaModel, OwnedModel), LlmError> {
    validate_gguf(path)?;
    let backend = backend()?;
    let params = LlamaModelParams::default().with_n_gpu_layers(gpu_layers);
    let model = LlamaModel::load_from_file(backend, path, &params).map_err(|e| LlmError::Load {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let owned = OwnedModel(NonNull::from(Box::leak(Box::new(model))));
    // SAFETY: the model stays allocated until `owned` is dropped, and the engine drops
    // everything that borrows it (its context) before that.
    let model: &'static LlamaModel = unsafe { owned.0.as_ref() };
    Ok((model, owned))
}

/// Refuses a file that is not a chat model before llama.cpp loads it (see `gguf`).
pub(crate) fn check_chat_model(path: &Path) -> Result<(), LlmError> {
    match model_kind(path)? {
        ModelKind::Chat {
            chat_template: false,
            ..
        } => {
            tracing::info!(
                "'{}' has no tokenizer.chat_template: prompts use ChatML",
                path.display()
            );
            Ok(())
        }
        ModelKind::Chat { .. } => Ok(()),
        other => Err(LlmError::NotChatModel {
            path: path.display().to_string(),
            found: other.describe(),
        }),
    }
}

impl LlamaEngine {
    pub fn load(config: EngineConfig) -> Result<Self, LlmError> {
        check_chat_model(&config.model_path)?;
        let Some(lora) = config.lora.clone() else {
            let (model, owned) = load_owned_model(&config.model_path, config.gpu_layers)?;
            let mut engine = Self::with_model(model, config)?;
            engine.owned = Some(owned);
            return Ok(engine);
        };
        let (model, adapter) = load_model_with_lora(&config.model_path, config.gpu_layers, &lora)?;
        let mut engine = Self::with_model(model, config)?;
        engine
            .context
            .lora_adapter_set(adapter, lora.scale)
            .map_err(|e| LlmError::Load {
                path: lora.path.display().to_string(),
                reason: format!("cannot apply the adapter: {e}"),
            })?;
        // The prefix cache holds KV states computed with the adapter: key them by it too.
        engine.model_key = format!(
            "{}+lora:{}:{}",
            engine.model_key,
            model_file_key(&lora.path),
            lora.scale
        );
        let adapter_name = lora
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        engine.model_id = format!("{}+{adapter_name}", engine.model_id);
        Ok(engine)
    }

    /// A new context on an already loaded model (tests share one model this way).
    pub fn with_model(model: &'static LlamaModel, config: EngineConfig) -> Result<Self, LlmError> {
        let backend = backend()?;
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(config.context_tokens))
            .with_n_batch(config.batch_tokens)
            .with_n_ubatch(config.batch_tokens)
            .with_n_threads(config.threads)
            .with_n_threads_batch(config.threads);
        let context = model
            .new_context(backend, params)
            .map_err(|e| LlmError::Load {
                path: config.model_path.display().to_string(),
                reason: e.to_string(),
            })?;
        let template = model.chat_template(None).ok();
        let model_id = config
            .model_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        let model_key = model_file_key(&config.model_path);
        Ok(Self {
            model,
            context: ManuallyDrop::new(context),
            template,
            evaluated: Vec::new(),
            model_id,
            model_key,
            cancel: Arc::new(AtomicBool::new(false)),
            config,
            owned: None,
        })
    }

    /// Setting the flag stops the running request at the next token or prompt chunk.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cancel)
    }

    /// Forgets the KV cache (the next request evaluates its whole prompt or loads it from disk).
    pub(crate) fn clear_cache(&mut self) {
        self.context.clear_kv_cache();
        self.evaluated.clear();
    }

    fn render_segments(&self, messages: &[ChatMessage]) -> Result<Vec<String>, LlmError> {
        render_segments(self.model, self.template.as_ref(), messages)
    }

    fn tokenize(&self, text: &str, add_bos: bool) -> Vec<LlamaToken> {
        self.model.vocab().tokenize(text.as_bytes(), add_bos, true)
    }

    fn prefix_cache_path(&self, prefix: &[LlamaToken]) -> Option<PathBuf> {
        let dir = self.config.prefix_cache_dir.as_ref()?;
        let mut hasher = Sha256::new();
        hasher.update(self.model_key.as_bytes());
        for token in prefix {
            hasher.update(token.0.to_le_bytes());
        }
        Some(dir.join(format!(
            "prefix-{}.kv",
            hex::encode(&hasher.finalize()[..16])
        )))
    }

    /// Loads a saved system-prompt state when the cache does not already start with it.
    fn restore_prefix(&mut self, prefix: &[LlamaToken]) {
        if self.evaluated.starts_with(prefix) {
            return;
        }
        let Some(path) = self.prefix_cache_path(prefix) else {
            return;
        };
        if !path.is_file() {
            return;
        }
        self.clear_cache();
        match self.context.state_seq_load_file(&path, 0, prefix.len() + 1) {
            Ok((tokens, _)) if tokens == prefix => self.evaluated = tokens,
            Ok(_) | Err(_) => {
                tracing::warn!(path = %path.display(), "ignoring a prefix cache file that does not match");
                self.clear_cache();
            }
        }
    }

    fn save_prefix(&self, prefix: &[LlamaToken]) {
        let Some(path) = self.prefix_cache_path(prefix) else {
            return;
        };
        if path.is_file() {
            return;
        }
        let Some(dir) = path.parent() else { return };
        if let Err(error) = std::fs::create_dir_all(dir) {
            tracing::warn!(%error, "cannot create the prefix cache directory");
            return;
        }
        // Written beside the target then renamed, so a crash never leaves a torn file.
        let partial = path.with_extension("partial");
        match self.context.state_seq_save_file(&partial, 0, prefix) {
            Ok(_) => {
                if let Err(error) = std::fs::rename(&partial, &path) {
                    tracing::warn!(%error, "cannot move the prefix cache file into place");
                }
            }
            Err(error) => {
                let _ = std::fs::remove_file(&partial);
                tracing::warn!(%error, "cannot save the prefix cache (disk full?)");
            }
        }
    }

    /// Evaluates `tokens` after what is already cached, in chunks, requesting logits for the
    /// last token only when `want_logits`. Returns the batch index of those logits.
    fn evaluate(&mut self, tokens: &[LlamaToken], want_logits: bool) -> Result<i32, LlmError> {
        let chunk_size = self.config.batch_tokens.max(1) as usize;
        let mut batch = LlamaBatch::new(chunk_size, 1);
        let mut last_index = 0;
        let chunks = tokens.chunks(chunk_size).count();
        for (chunk_number, chunk) in tokens.chunks(chunk_size).enumerate() {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(LlmError::Cancelled);
            }
            batch.clear();
            let final_chunk = chunk_number + 1 == chunks;
            for (offset, token) in chunk.iter().enumerate() {
                let position = i32::try_from(self.evaluated.len() + offset)
                    .map_err(|_| LlmError::Inference("position overflow".into()))?;
                let logits = want_logits && final_chunk && offset + 1 == chunk.len();
                batch
                    .add(*token, position, &[0], logits)
                    .map_err(|e| LlmError::Inference(e.to_string()))?;
            }
            self.context
                .decode(&mut batch)
                .map_err(|e| LlmError::Inference(e.to_string()))?;
            self.evaluated.extend_from_slice(chunk);
            last_index = batch.n_tokens() - 1;
        }
        Ok(last_index)
    }

    /// The request's grammar as a sampler kept out of the chain, for [`Self::sample_checked`].
    fn grammar(&self, request: &CompletionRequest) -> Result<Option<LlamaSampler>, LlmError> {
        request
            .grammar
            .as_ref()
            .map(|grammar| {
                LlamaSampler::grammar(self.model, grammar, "root")
                    .map_err(|e| LlmError::Inference(format!("invalid grammar: {e}")))
            })
            .transpose()
    }

    /// The next token under a grammar, checked first: the chain picks from the logits as
    /// if there were no grammar, and only that one token is checked against it. Only when
    /// the grammar rejects it does the full pass run (the grammar over all 150k candidates,
    /// then the chain again), which is the cost that made every token slow (LLAMA-NOTES).
    /// `None` when the grammar allows no token at all.
    fn sample_checked(
        &self,
        sampler: &mut LlamaSampler,
        grammar: &mut LlamaSampler,
        logits_index: i32,
        full_passes: &mut usize,
    ) -> Option<LlamaToken> {
        let mut candidates = self.context.token_data_array_ith(logits_index);
        candidates.apply_sampler(sampler);
        let first_choice = candidates.selected_token()?;
        let mut single =
            LlamaTokenDataArray::new(vec![LlamaTokenData::new(first_choice, 0.0, 1.0)], false);
        single.apply_sampler(grammar);
        let allowed = single.data.first().is_some_and(|d| d.logit().is_finite());
        let token = if allowed {
            first_choice
        } else {
            *full_passes += 1;
            let mut candidates = self.context.token_data_array_ith(logits_index);
            candidates.apply_sampler(grammar);
            if !candidates.data.iter().any(|d| d.logit().is_finite()) {
                return None;
            }
            candidates.apply_sampler(sampler);
            candidates.selected_token()?
        };
        // Accepting a token the grammar rejects aborts the process; this one it allows.
        grammar.accept(token);
        sampler.accept(token);
        Some(token)
    }

    fn sampler(&self, request: &CompletionRequest) -> Result<LlamaSampler, LlmError> {
        let mut chain = Vec::new();
        match request.sampling {
            Sampling::Greedy => chain.push(LlamaSampler::greedy()),
            Sampling::Temperature { temperature, seed } => {
                chain.push(LlamaSampler::top_k(40));
                chain.push(LlamaSampler::temp(temperature));
                chain.push(LlamaSampler::dist(seed));
            }
        }
        Ok(LlamaSampler::chain_simple(chain))
    }

    /// The request's prompt tokens and how many of them the first message holds; an error
    /// when the context could not also fit a few generated tokens.
    fn request_prompt(
        &self,
        request: &CompletionRequest,
    ) -> Result<(Vec<LlamaToken>, usize), LlmError> {
        if tracing::enabled!(tracing::Level::DEBUG) {
            let segments = self.render_segments(&request.messages)?;
            tracing::debug!(prompt = %format!("{}{}", segments.concat(), request.assistant_prefix), "rendered prompt");
        }
        let (prompt, prefix_len) = prompt_tokens(
            self.model,
            self.template.as_ref(),
            &request.messages,
            &request.assistant_prefix,
        )?;
        let capacity = self.config.context_tokens as usize;
        if prompt.len() + 8 > capacity {
            return Err(LlmError::PromptTooLong {
                needed: prompt.len() + 8,
                available: capacity,
            });
        }
        Ok((prompt, prefix_len))
    }

    /// Brings the KV cache to `prompt`, evaluating only what it does not already hold and
    /// saving the first message's state to disk the first time it is evaluated. Returns how
    /// many prompt tokens were reused and the batch index of the last token's logits.
    fn evaluate_prompt(
        &mut self,
        prompt: &[LlamaToken],
        prefix_len: usize,
    ) -> Result<(usize, i32), LlmError> {
        let prefix = &prompt[..prefix_len.min(prompt.len() - 1)];
        let common = self.keep_common_prefix(prompt, prefix)?;
        if common < prefix.len() {
            self.evaluate(&prompt[common..prefix.len()], false)?;
            self.save_prefix(prefix);
        }
        let start = self.evaluated.len();
        let logits_index = self.evaluate(&prompt[start..], true)?;
        Ok((common, logits_index))
    }

    /// Loads the first message's saved state when the cache does not start with it, then
    /// drops every cached token after the longest prefix shared with `prompt`. Returns the
    /// length kept.
    fn keep_common_prefix(
        &mut self,
        prompt: &[LlamaToken],
        prefix: &[LlamaToken],
    ) -> Result<usize, LlmError> {
        self.restore_prefix(prefix);
        // At least one token is evaluated so there are fresh logits.
        let common = self
            .evaluated
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count()
            .min(prompt.len() - 1);
        self.context
            .kv_cache_seq_rm(0, Some(common as u32), None)
            .map_err(|e| LlmError::Inference(e.to_string()))?;
        self.evaluated.truncate(common);
        Ok(common)
    }

    /// Samples tokens until the end of text, a stop string or the token limit, streaming the
    /// text to `on_text` as it settles. `logits_index` points at the prompt's last logits.
    fn generate(
        &mut self,
        request: &CompletionRequest,
        mut logits_index: i32,
        started: Instant,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Generation, LlmError> {
        let mut sampler = self.sampler(request)?;
        let mut grammar = self.grammar(request)?;
        let mut full_passes = 0usize;
        let vocab = self.model.vocab();
        let capacity = self.config.context_tokens as usize;
        let max_tokens = request
            .max_tokens
            .min(capacity.saturating_sub(self.evaluated.len()));
        let mut text = String::new();
        let mut emitted = 0usize;
        let mut pending: Vec<u8> = Vec::new();
        let mut piece: Vec<u8> = Vec::new();
        let mut batch = LlamaBatch::new(1, 1);
        let mut first_token_at: Option<Duration> = None;
        let mut generated = 0usize;
        let mut stop_reason = StopReason::MaxTokens;
        let mut logprob_sum = 0f64;

        while generated < max_tokens {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(LlmError::Cancelled);
            }
            let token = match grammar.as_mut() {
                None => sampler.sample(&self.context, logits_index),
                Some(grammar) => {
                    match self.sample_checked(&mut sampler, grammar, logits_index, &mut full_passes)
                    {
                        Some(token) => token,
                        None => {
                            stop_reason = StopReason::EndOfText;
                            break;
                        }
                    }
                }
            };
            first_token_at.get_or_insert_with(|| started.elapsed());
            generated += 1;
            logprob_sum += token_logprob(self.context.get_logits_ith(logits_index), token);
            if vocab.is_eog(token) {
                stop_reason = StopReason::EndOfText;
                break;
            }
            piece.clear();
            vocab.token_to_piece_into(token, &mut piece, false, None);
            pending.extend_from_slice(&piece);
            append_valid_utf8(&mut pending, &mut text);
            if emit_settled_text(&mut text, &mut emitted, &request.stop, on_text) {
                stop_reason = StopReason::StopString;
                break;
            }
            if ends_in_loop(&text) {
                tracing::debug!(generated, "stopped a reply caught in a loop");
                stop_reason = StopReason::Repetition;
                break;
            }
            self.decode_token(&mut batch, token)?;
            logits_index = 0;
        }
        if text.len() > emitted {
            on_text(&text[emitted..]);
        }
        if grammar.is_some() {
            tracing::debug!(
                generated,
                full_passes,
                "grammar: tokens the first choice failed"
            );
        }
        let mean_logprob = (generated > 0).then(|| (logprob_sum / generated as f64) as f32);
        Ok(Generation {
            text,
            tokens: generated,
            first_token_at,
            stop_reason,
            mean_logprob,
        })
    }

    /// Evaluates one sampled token after the cache, so the next sample follows it.
    fn decode_token(&mut self, batch: &mut LlamaBatch, token: LlamaToken) -> Result<(), LlmError> {
        batch.clear();
        let position = i32::try_from(self.evaluated.len())
            .map_err(|_| LlmError::Inference("position overflow".into()))?;
        batch
            .add(token, position, &[0], true)
            .map_err(|e| LlmError::Inference(e.to_string()))?;
        self.context
            .decode(batch)
            .map_err(|e| LlmError::Inference(e.to_string()))?;
        self.evaluated.push(token);
        Ok(())
    }
}

/// The chat rendered as the model's template writes it, as separately tokenised segments
/// (one per message, the assistant opener in the last). Tokenising per message keeps token
/// boundaries identical between requests that share their first messages.
fn render_segments(
    model: &LlamaModel,
    template: Option<&LlamaChatTemplate>,
    messages: &[ChatMessage],
) -> Result<Vec<String>, LlmError> {
    let mut segments = Vec::with_capacity(messages.len());
    let mut previous = String::new();
    for end in 1..=messages.len() {
        let rendered = render_chat(model, template, &messages[..end], end == messages.len());
        match rendered.strip_prefix(previous.as_str()) {
            Some(rest) => segments.push(rest.to_string()),
            None => return Ok(vec![render_chat(model, template, messages, true)]),
        }
        previous = rendered;
    }
    Ok(segments)
}

/// The chat as text, through the model's template (ChatML when it has none that works).
pub(crate) fn render_chat(
    model: &LlamaModel,
    template: Option<&LlamaChatTemplate>,
    messages: &[ChatMessage],
    add_assistant: bool,
) -> String {
    if let Some(template) = template {
        let chat: Result<Vec<LlamaChatMessage>, _> = messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.as_str().into(), m.content.replace('\0', "")))
            .collect();
        if let Ok(chat) = chat
            && let Ok(text) = model.apply_chat_template(template, &chat, add_assistant)
        {
            return text;
        }
    }
    // Models without a usable template get ChatML, which most instruct models accept.
    let mut text = String::new();
    for message in messages {
        text.push_str(&format!(
            "<|im_start|>{}\n{}<|im_end|>\n",
            message.role.as_str(),
            message.content
        ));
    }
    if add_assistant {
        text.push_str("<|im_start|>assistant\n");
    }
    text
}

/// The prompt's tokens exactly as [`LlamaEngine`] evaluates them for a request with these
/// messages and assistant prefix, and how many of them the first message holds.
pub fn prompt_tokens(
    model: &LlamaModel,
    template: Option<&LlamaChatTemplate>,
    messages: &[ChatMessage],
    assistant_prefix: &str,
) -> Result<(Vec<LlamaToken>, usize), LlmError> {
    let vocab = model.vocab();
    let segments = render_segments(model, template, messages)?;
    let mut prompt: Vec<LlamaToken> = Vec::new();
    let mut prefix_len = 0;
    for (index, segment) in segments.iter().enumerate() {
        prompt.extend(vocab.tokenize(segment.as_bytes(), index == 0, true));
        if index == 0 {
            prefix_len = prompt.len();
        }
    }
    prompt.extend(vocab.tokenize(assistant_prefix.as_bytes(), false, true));
    Ok((prompt, prefix_len))
}

/// A training example as token ids: the prompt of every message but the last, tokenised
/// exactly as at inference (with `assistant_prefix`, the text the pipeline writes for the
/// model), then the rest of the last (assistant) message and the template's end of turn.
/// Also returns where that rest (the reply the model is to learn) starts.
pub(crate) fn training_tokens(
    model: &LlamaModel,
    template: Option<&LlamaChatTemplate>,
    messages: &[ChatMessage],
    assistant_prefix: &str,
) -> Result<(Vec<LlamaToken>, usize), LlmError> {
    let Some((_, prompt_messages)) = messages.split_last() else {
        return Err(LlmError::Inference(
            "a training example needs messages".into(),
        ));
    };
    let whole = render_chat(model, template, messages, false);
    let prompt_text = format!(
        "{}{assistant_prefix}",
        render_chat(model, template, prompt_messages, true)
    );
    let Some(rest) = whole.strip_prefix(prompt_text.as_str()) else {
        return Err(LlmError::Inference(
            "the reply does not start with the assistant prefix the pipeline writes".into(),
        ));
    };
    let (mut tokens, _) = prompt_tokens(model, template, prompt_messages, assistant_prefix)?;
    let reply_start = tokens.len();
    tokens.extend(model.vocab().tokenize(rest.as_bytes(), false, true));
    Ok((tokens, reply_start))
}

impl LanguageModel for LlamaEngine {
    fn complete(
        &mut self,
        request: &CompletionRequest,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion, LlmError> {
        let started = Instant::now();
        self.cancel.store(false, Ordering::SeqCst);
        let (prompt, prefix_len) = self.request_prompt(request)?;
        let (cached_prompt_tokens, logits_index) = self.evaluate_prompt(&prompt, prefix_len)?;
        let generation = self.generate(request, logits_index, started, on_text)?;
        Ok(Completion {
            text: generation.text,
            prompt_tokens: prompt.len(),
            cached_prompt_tokens,
            generated_tokens: generation.tokens,
            time_to_first_token: generation
                .first_token_at
                .unwrap_or_else(|| started.elapsed()),
            elapsed: started.elapsed(),
            stop_reason: generation.stop_reason,
            mean_logprob: generation.mean_logprob,
        })
    }

    fn model_id(&self) -> String {
        self.model_id.clone()
    }

    fn count_tokens(&self, text: &str) -> usize {
        self.tokenize(text, false).len()
    }
}

/// What the token loop produced; `complete` adds the timings.
struct Generation {
    text: String,
    /// Sampled tokens, counting the end-of-text token when it came.
    tokens: usize,
    first_token_at: Option<Duration>,
    stop_reason: StopReason,
    mean_logprob: Option<f32>,
}

/// The log-softmax of `token` under `logits` (the raw scores, before temperature or a
/// grammar): how likely the model itself found the token it wrote.
fn token_logprob(logits: &[f32], token: LlamaToken) -> f64 {
    let Some(&chosen) = usize::try_from(token.0).ok().and_then(|i| logits.get(i)) else {
        return 0.0;
    };
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|l| f64::from(l - max).exp()).sum();
    f64::from(chosen - max) - sum.ln()
}

/// Passes `text` past `emitted` on to `on_text`, except a tail that could still become a
/// stop string ("``" before "```"). When a stop string has appeared, cuts `text` before it,
/// passes on the rest up to there and returns true.
pub(crate) fn emit_settled_text(
    text: &mut String,
    emitted: &mut usize,
    stops: &[String],
    on_text: &mut dyn FnMut(&str),
) -> bool {
    if let Some(cut) = stops.iter().filter_map(|s| text.find(s.as_str())).min() {
        text.truncate(cut);
        if text.len() > *emitted {
            on_text(&text[*emitted..]);
        }
        *emitted = text.len();
        return true;
    }
    let safe = safe_emit_len(text, stops);
    if safe > *emitted {
        on_text(&text[*emitted..safe]);
        *emitted = safe;
    }
    false
}

/// Moves the longest valid UTF-8 prefix of `pending` onto `text`; an incomplete character
/// at the end waits for the next token.
fn append_valid_utf8(pending: &mut Vec<u8>, text: &mut String) {
    match std::str::from_utf8(pending) {
        Ok(valid) => {
            text.push_str(valid);
            pending.clear();
        }
        Err(error) => {
            let valid_up_to = error.valid_up_to();
            text.push_str(&String::from_utf8_lossy(&pending[..valid_up_to]));
            if error.error_len().is_some() {
                // Invalid bytes (not merely incomplete) are replaced rather than kept forever.
                text.push(char::REPLACEMENT_CHARACTER);
                pending.clear();
            } else {
                pending.drain(..valid_up_to);
            }
        }
    }
}

fn safe_emit_len(text: &str, stops: &[String]) -> usize {
    let mut safe = text.len();
    for stop in stops {
        for len in (1..stop.len()).rev() {
            if text.len() >= len
                && text.is_char_boundary(text.len() - len)
                && stop.starts_with(&text[text.len() - len..])
            {
                safe = safe.min(text.len() - len);
                break;
            }
        }
    }
    safe
}

fn model_file_key(path: &Path) -> String {
    let metadata = std::fs::metadata(path).ok();
    let size = metadata.as_ref().map(|m| m.len()).unwrap_or(0);
    let modified = metadata
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{name}:{size}:{modified}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_back_partial_stop_strings() {
        let stops = vec!["```".to_string()];
        assert_eq!(safe_emit_len("SELECT 1\n``", &stops), "SELECT 1\n".len());
        assert_eq!(safe_emit_len("SELECT 1", &stops), "SELECT 1".len());
    }

    #[test]
    fn joins_utf8_split_across_tokens() {
        let mut pending = vec![0xC3];
        let mut text = String::new();
        append_valid_utf8(&mut pending, &mut text);
        assert_eq!(text, "");
        pending.push(0xA9);
        append_valid_utf8(&mut pending, &mut text);
        assert_eq!(text, "é");
    }
}
