//! llama.cpp's training API (`llama_opt_init`, `llama_opt_epoch`, `ggml_opt_dataset_*`) and
//! model quantization (`llama_model_quantize`), behind a small safe interface. llama-cpp-2
//! wraps neither, so this is the one module that calls llama-cpp-sys-2 directly.
//!
//! What llama.cpp requires, and how this module guarantees it:
//! - Only F32 tensors train. [`TrainableModel::load`] reads a model into plain CPU buffers
//!   (no memory map: training writes the weights in place and a mapped file is read-only;
//!   no repacked buffer types, whose layout could not be read back) and
//!   [`TrainableModel::trainable`] reports which tensors are F32.
//! - One window per optimizer step, exactly `llama_n_ctx` tokens long, with
//!   `n_batch == n_ubatch == n_ctx` so gradients reach the K and V projections. Windows must
//!   be a multiple of 256 (llama.cpp pads `n_ctx` to 256). Every token id is checked against
//!   the vocabulary before it reaches llama.cpp, whose checks abort the process.
//! - Which tensors train is decided by a parameter filter: the last `layers` transformer
//!   blocks and the final norm. The token embedding (tied to the output in Qwen2) never
//!   trains (llama.cpp skips it too).
//! - The optimizer reads its parameters through a pointer on every step, so they live on
//!   the heap for the context's whole life and are freed after it.
//!
//! The loss covers every position of the window: mainline llama.cpp has no loss mask, and a
//! label row of zeros is not one (the cross-entropy gradient is `softmax - label`), so a
//! caller that wants some positions left alone gives them the model's own greedy prediction
//! as label (`Trainer::train_step_with_labels`, `TrainableModel::greedy_predictions`).

use std::ffi::{CStr, CString, c_void};
use std::path::{Path, PathBuf};
use std::ptr::{self, NonNull};

use llama_cpp_sys_2 as sys;

use crate::core::model::LlmError;

/// llama.cpp pads the context to a multiple of this, so training windows are multiples of it.
pub(crate) const WINDOW_GRANULE: u32 = 256;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error("cannot load '{path}' for training: {reason}")]
    Load { path: String, reason: String },
    #[error("cannot create a training context: {0}")]
    Context(String),
    #[error("invalid training input: {0}")]
    Input(String),
    #[error(
        "no tensor matches the layers to train (the model has {layers} layers of F32 tensors: {reason})"
    )]
    NothingToTrain { layers: u32, reason: String },
    #[error(
        "'{path}' is quantized ('{tensor}' is not F32): llama.cpp trains F32 models only; `train run` converts it first"
    )]
    NotF32 { path: String, tensor: String },
    #[error(
        "quantizing '{input}' to '{output}' failed (llama.cpp returned {code}; see the log file)"
    )]
    Quantize {
        input: String,
        output: String,
        code: u32,
    },
}

/// The quantization formats this app writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantType {
    /// Every tensor as 32-bit floats: what training needs.
    F32,
    /// The default model's format.
    Q4KM,
    /// 8-bit, for round-trip checks.
    Q8_0,
}

impl QuantType {
    fn ftype(self) -> sys::llama_ftype {
        match self {
            QuantType::F32 => sys::LLAMA_FTYPE_ALL_F32,
            QuantType::Q4KM => sys::LLAMA_FTYPE_MOSTLY_Q4_K_M,
            QuantType::Q8_0 => sys::LLAMA_FTYPE_MOSTLY_Q8_0,
        }
    }
}

fn c_path(path: &Path) -> Result<CString, TrainError> {
    CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| {
        TrainError::Input(format!("the path '{}' contains a NUL byte", path.display()))
    })
}

/// Converts `input` to `output` in the format `to` (dequantizing to F32 works the same way).
/// Metadata (tokenizer, chat template, context length) is copied unchanged.
pub fn quantize(
    input: &Path,
    output: &Path,
    to: QuantType,
    threads: i32,
) -> Result<(), TrainError> {
    crate::llm::gguf::validate_gguf(input)?;
    crate::llm::engine::backend()?;
    let input_c = c_path(input)?;
    let output_c = c_path(output)?;
    // SAFETY: `llama_model_quantize_default_params` returns a plain struct by value.
    let mut params = unsafe { sys::llama_model_quantize_default_params() };
    params.nthread = threads;
    params.ftype = to.ftype();
    // The input may itself be quantized (dequantizing, or re-quantizing a patched copy).
    params.allow_requantize = true;
    // SAFETY: both paths are valid NUL-terminated strings that outlive the call; `params`
    // is a valid struct whose pointer fields are the defaults (null), and llama.cpp only
    // reads it during the call. Failures are reported through the return code (llama.cpp
    // catches its exceptions here).
    let code = unsafe { sys::llama_model_quantize(input_c.as_ptr(), output_c.as_ptr(), &params) };
    if code == 0 {
        Ok(())
    } else {
        Err(TrainError::Quantize {
            input: input.display().to_string(),
            output: output.display().to_string(),
            code,
        })
    }
}

/// A model loaded for training: its weights in writable CPU memory.
pub struct TrainableModel {
    model: NonNull<sys::llama_model>,
    path: PathBuf,
    n_vocab: i32,
    n_layer: u32,
}

impl TrainableModel {
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        crate::llm::engine::check_chat_model(path)?;
        crate::llm::engine::backend()?;
        let path_c = c_path(path)?;
        // SAFETY: returns a plain struct by value.
        let mut params = unsafe { sys::llama_model_default_params() };
        params.n_gpu_layers = 0;
        params.load_mode = sys::LLAMA_LOAD_MODE_NONE;
        params.use_extra_bufts = false;
        // SAFETY: the path is a valid C string for the duration of the call; `params` is a
        // valid struct with null pointer fields. A null return means failure (logged).
        let raw = unsafe { sys::llama_model_load_from_file(path_c.as_ptr(), params) };
        let model = NonNull::new(raw).ok_or_else(|| TrainError::Load {
            path: path.display().to_string(),
            reason: "llama.cpp could not load it (see the log file)".into(),
        })?;
        // SAFETY: `model` is a live model; these getters only read it.
        let (n_vocab, n_layer) = unsafe {
            let vocab = sys::llama_model_get_vocab(model.as_ptr());
            (
                sys::llama_vocab_n_tokens(vocab),
                sys::llama_model_n_layer(model.as_ptr()),
            )
        };
        Ok(Self {
            model,
            path: path.to_path_buf(),
            n_vocab,
            n_layer: u32::try_from(n_layer).unwrap_or(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn n_vocab(&self) -> usize {
        usize::try_from(self.n_vocab).unwrap_or(0)
    }

    pub fn n_layer(&self) -> u32 {
        self.n_layer
    }

    /// Creates a context for `config.window`-token windows with an AdamW optimizer over the
    /// last `config.layers` blocks and the final norm.
    pub fn trainer(&mut self, config: &TrainerConfig) -> Result<Trainer<'_>, TrainError> {
        Trainer::new(self, config)
    }

    /// The logits of every position after evaluating `tokens` from an empty context
    /// (`tokens.len() * n_vocab` values, position-major). For checks and tests.
    pub fn logits(&self, tokens: &[i32], threads: i32) -> Result<Vec<f32>, TrainError> {
        let mut out = Vec::with_capacity(tokens.len() * self.n_vocab());
        self.for_each_logit_row(tokens, threads, |row| out.extend_from_slice(row))?;
        Ok(out)
    }

    /// The id this model ranks first at every position of `tokens` (greedy next-token
    /// predictions), from an empty context.
    pub fn greedy_predictions(&self, tokens: &[i32], threads: i32) -> Result<Vec<i32>, TrainError> {
        let mut out = Vec::with_capacity(tokens.len());
        self.for_each_logit_row(tokens, threads, |row| {
            let best = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(id, _)| id);
            out.push(i32::try_from(best).unwrap_or(0));
        })?;
        Ok(out)
    }

    fn for_each_logit_row(
        &self,
        tokens: &[i32],
        threads: i32,
        mut visit: impl FnMut(&[f32]),
    ) -> Result<(), TrainError> {
        self.check_tokens(tokens)?;
        let n_tokens =
            i32::try_from(tokens.len()).map_err(|_| TrainError::Input("too many tokens".into()))?;
        let n_ctx = u32::try_from(tokens.len())
            .unwrap_or(u32::MAX)
            .div_ceil(WINDOW_GRANULE)
            * WINDOW_GRANULE;
        let context = Context::new(self, n_ctx, threads)?;
        // SAFETY: `llama_batch_init` allocates room for `n_tokens` tokens with one sequence
        // id each; every array is written within those bounds below, and the batch is freed
        // exactly once by `BatchGuard`.
        let batch = BatchGuard(unsafe { sys::llama_batch_init(n_tokens, 0, 1) });
        let n_vocab = self.n_vocab();
        // SAFETY: see above for the batch arrays; `context` is live; logits for position `i`
        // exist because every position asked for them, and hold `n_vocab` floats.
        unsafe {
            let b = batch.0;
            for (i, token) in tokens.iter().enumerate() {
                *b.token.add(i) = *token;
                *b.pos.add(i) = i32::try_from(i).unwrap_or(i32::MAX);
                *b.n_seq_id.add(i) = 1;
                *(*b.seq_id.add(i)).add(0) = 0;
                *b.logits.add(i) = 1;
            }
            let mut b = b;
            b.n_tokens = n_tokens;
            let code = sys::llama_decode(context.ptr.as_ptr(), b);
            if code != 0 {
                return Err(TrainError::Context(format!("decode returned {code}")));
            }
            for i in 0..n_tokens {
                let row = sys::llama_get_logits_ith(context.ptr.as_ptr(), i);
                if row.is_null() {
                    return Err(TrainError::Context("no logits".into()));
                }
                visit(std::slice::from_raw_parts(row, n_vocab));
            }
        }
        Ok(())
    }

    fn check_tokens(&self, tokens: &[i32]) -> Result<(), TrainError> {
        if let Some(bad) = tokens.iter().find(|t| **t < 0 || **t >= self.n_vocab) {
            return Err(TrainError::Input(format!(
                "token id {bad} is outside the vocabulary (0..{})",
                self.n_vocab
            )));
        }
        Ok(())
    }
}

impl Drop for TrainableModel {
    fn drop(&mut self) {
        // SAFETY: the model was created by `llama_model_load_from_file`, is freed once, and
        // no context outlives it (contexts borrow `self`).
        unsafe { sys::llama_model_free(self.model.as_ptr()) };
    }
}

struct BatchGuard(sys::llama_batch);

impl Drop for BatchGuard {
    fn drop(&mut self) {
        // SAFETY: the batch came from `llama_batch_init` and is freed once.
        unsafe { sys::llama_batch_free(self.0) };
    }
}

/// A llama.cpp context on a [`TrainableModel`]; freed on drop, before the model.
struct Context<'m> {
    ptr: NonNull<sys::llama_context>,
    _model: std::marker::PhantomData<&'m TrainableModel>,
}

impl<'m> Context<'m> {
    fn new(model: &'m TrainableModel, n_ctx: u32, threads: i32) -> Result<Self, TrainError> {
        // SAFETY: returns a plain struct by value.
        let mut params = unsafe { sys::llama_context_default_params() };
        params.n_ctx = n_ctx;
        params.n_batch = n_ctx;
        params.n_ubatch = n_ctx;
        params.n_seq_max = 1;
        params.n_threads = threads.max(1);
        params.n_threads_batch = threads.max(1);
        // FLASH_ATTN_EXT has no backward pass; llama.cpp would turn it off for training anyway.
        params.flash_attn_type = sys::LLAMA_FLASH_ATTN_TYPE_DISABLED;
        params.no_perf = true;
        // SAFETY: the model is live for 'm, which outlives this context; params is valid.
        let raw = unsafe { sys::llama_init_from_model(model.model.as_ptr(), params) };
        let ptr = NonNull::new(raw).ok_or_else(|| {
            TrainError::Context(format!(
                "llama.cpp refused a {n_ctx}-token context (see the log file)"
            ))
        })?;
        Ok(Self {
            ptr,
            _model: std::marker::PhantomData,
        })
    }
}

impl Drop for Context<'_> {
    fn drop(&mut self) {
        // SAFETY: created by `llama_init_from_model`, freed once, before its model.
        unsafe { sys::llama_free(self.ptr.as_ptr()) };
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrainerConfig {
    /// Tokens per window (a multiple of [`WINDOW_GRANULE`]).
    pub window: u32,
    /// How many of the last transformer blocks train (0: only the final norm).
    pub layers: u32,
    pub learning_rate: f32,
    pub weight_decay: f32,
    pub threads: i32,
}

impl TrainerConfig {
    pub fn new(window: u32, layers: u32, learning_rate: f32, threads: i32) -> Self {
        Self {
            window,
            layers,
            learning_rate,
            weight_decay: 0.0,
            threads,
        }
    }
}

/// Which tensors the parameter filter chose (collected while llama.cpp asks).
struct ParamFilter {
    first_layer: u32,
    chosen: Vec<(String, *const sys::ggml_tensor)>,
    seen_f32: usize,
}

impl ParamFilter {
    fn wants(&self, name: &str) -> bool {
        if name == "output_norm.weight" || name == "output_norm.bias" {
            return true;
        }
        let Some(rest) = name.strip_prefix("blk.") else {
            return false;
        };
        let Some((layer, _)) = rest.split_once('.') else {
            return false;
        };
        layer.parse::<u32>().is_ok_and(|l| l >= self.first_layer)
    }
}

/// Called by `llama_opt_init` once per candidate F32 tensor, on the calling thread.
unsafe extern "C" fn param_filter(tensor: *const sys::ggml_tensor, userdata: *mut c_void) -> bool {
    let decide = || {
        if tensor.is_null() || userdata.is_null() {
            return false;
        }
        // SAFETY: `userdata` is the `&mut ParamFilter` passed to `llama_opt_init` by
        // `Trainer::new`, which stays borrowed (and otherwise untouched) for the whole call
        // that invokes this filter; `tensor` is a live tensor of the model, whose name is a
        // NUL-terminated string inside it.
        let (filter, name) = unsafe {
            (
                &mut *userdata.cast::<ParamFilter>(),
                CStr::from_ptr(sys::ggml_get_name(tensor))
                    .to_string_lossy()
                    .into_owned(),
            )
        };
        filter.seen_f32 += 1;
        let wanted = filter.wants(&name);
        if wanted && !filter.chosen.iter().any(|(_, t)| *t == tensor) {
            filter.chosen.push((name, tensor));
        }
        wanted
    };
    // A panic must not unwind into C++.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decide)).unwrap_or(false)
}

/// Optimizer settings read by llama.cpp before every optimizer step (through the pointer
/// given to `llama_opt_init`).
unsafe extern "C" fn optimizer_params(userdata: *mut c_void) -> sys::ggml_opt_optimizer_params {
    // SAFETY: `userdata` is the `OptimizerParams` allocation owned by the `Trainer`, freed
    // only after its context; the trainer does not write it while llama.cpp runs a step.
    unsafe { *userdata.cast::<sys::ggml_opt_optimizer_params>() }
}

/// A training context: the model, a window-sized context with an optimizer, and the tensors
/// being trained. Steps run on the calling thread.
pub struct Trainer<'m> {
    model: &'m TrainableModel,
    // Field order matters: the context is dropped before the parameters it points to.
    context: Context<'m>,
    optimizer: OptimizerParams,
    trained: Vec<(String, *const sys::ggml_tensor)>,
    window: usize,
}

impl<'m> Trainer<'m> {
    fn new(model: &'m mut TrainableModel, config: &TrainerConfig) -> Result<Self, TrainError> {
        if config.window == 0 || !config.window.is_multiple_of(WINDOW_GRANULE) {
            return Err(TrainError::Input(format!(
                "the window must be a positive multiple of {WINDOW_GRANULE} tokens, not {}",
                config.window
            )));
        }
        if !(config.learning_rate > 0.0 && config.learning_rate.is_finite()) {
            return Err(TrainError::Input(format!(
                "the learning rate must be positive, not {}",
                config.learning_rate
            )));
        }
        // Backward passes through quantized weights abort inside llama.cpp: refuse first.
        let index = crate::llm::gguf::GgufIndex::read(&model.path)?;
        if let Some(tensor) = index
            .tensors
            .iter()
            .find(|t| t.ggml_type != crate::llm::gguf::GGUF_TYPE_F32)
        {
            return Err(TrainError::NotF32 {
                path: model.path.display().to_string(),
                tensor: tensor.name.clone(),
            });
        }
        let model: &'m TrainableModel = model;
        let context = Context::new(model, config.window, config.threads)?;
        // SAFETY: the default parameters are a plain struct returned by value.
        let mut params = unsafe { sys::ggml_opt_get_default_optimizer_params(ptr::null_mut()) };
        params.adamw.alpha = config.learning_rate;
        params.adamw.wd = config.weight_decay;
        params.sgd.alpha = config.learning_rate;
        params.sgd.wd = config.weight_decay;
        let optimizer = OptimizerParams::new(params);
        let mut filter = ParamFilter {
            first_layer: model.n_layer.saturating_sub(config.layers),
            chosen: Vec::new(),
            seen_f32: 0,
        };
        let opt_params = sys::llama_opt_params {
            n_ctx_train: 0,
            param_filter: Some(param_filter),
            param_filter_ud: (&raw mut filter).cast(),
            get_opt_pars: Some(optimizer_params),
            get_opt_pars_ud: optimizer.0.as_ptr().cast(),
            optimizer_type: sys::GGML_OPT_OPTIMIZER_TYPE_ADAMW,
        };
        // SAFETY: the context is fresh (llama_opt_init asserts it has no optimizer yet) and
        // its n_batch == n_ubatch == n_ctx (a multiple of 256), which satisfies the
        // divisibility asserts. `filter` outlives the call (the filter only runs inside it);
        // `optimizer` outlives the context (freed in `Drop` after the context).
        unsafe {
            sys::llama_opt_init(context.ptr.as_ptr(), model.model.as_ptr(), opt_params);
        }
        let trainer = Self {
            model,
            context,
            optimizer,
            trained: filter.chosen,
            window: config.window as usize,
        };
        if trainer.trained.is_empty() {
            return Err(TrainError::NothingToTrain {
                layers: model.n_layer,
                reason: format!(
                    "{} F32 tensors offered, none in the last {} layers or the final norm",
                    filter.seen_f32, config.layers
                ),
            });
        }
        Ok(trainer)
    }

    pub fn window(&self) -> usize {
        self.window
    }

    /// Names of the tensors being trained.
    pub fn trained_tensor_names(&self) -> Vec<String> {
        self.trained.iter().map(|(name, _)| name.clone()).collect()
    }

    /// Number of weights being trained.
    pub fn trained_parameters(&self) -> u64 {
        self.trained
            .iter()
            // SAFETY: the tensors belong to the live model.
            .map(|(_, t)| unsafe { sys::ggml_nelements(*t) })
            .map(|n| u64::try_from(n).unwrap_or(0))
            .sum()
    }

    /// Changes the learning rate from the next step on.
    pub fn set_learning_rate(&mut self, learning_rate: f32) {
        // SAFETY: the allocation is owned by this trainer and live; llama.cpp reads it only
        // during a step, and steps take `&mut self` too, so none is running.
        unsafe {
            let params = self.optimizer.0.as_ptr();
            (*params).adamw.alpha = learning_rate;
            (*params).sgd.alpha = learning_rate;
        }
    }

    /// One optimizer step on one window: `tokens` holds `window + 1` ids (inputs are the
    /// first `window`, each position's label is the next id). Returns the mean
    /// cross-entropy over the window before the update.
    pub fn train_step(&mut self, tokens: &[i32]) -> Result<f64, TrainError> {
        self.run(tokens, None, true)
    }

    /// One optimizer step on `window + 1` ids whose `window` labels are given (the label of
    /// input position `i` is `labels[i]` instead of `tokens[i + 1]`).
    pub fn train_step_with_labels(
        &mut self,
        tokens: &[i32],
        labels: &[i32],
    ) -> Result<f64, TrainError> {
        self.run(tokens, Some(labels), true)
    }

    /// The loss on one window without updating anything.
    pub fn eval_loss(&mut self, tokens: &[i32]) -> Result<f64, TrainError> {
        self.run(tokens, None, false)
    }

    fn run(
        &mut self,
        tokens: &[i32],
        labels: Option<&[i32]>,
        train: bool,
    ) -> Result<f64, TrainError> {
        if tokens.len() != self.window + 1 {
            return Err(TrainError::Input(format!(
                "a window needs {} tokens (window + 1), got {}",
                self.window + 1,
                tokens.len()
            )));
        }
        let labels = labels.unwrap_or(&tokens[1..]);
        if labels.len() != self.window {
            return Err(TrainError::Input(format!(
                "a window needs {} labels, got {}",
                self.window,
                labels.len()
            )));
        }
        self.model.check_tokens(tokens)?;
        self.model.check_tokens(labels)?;
        let window = i64::try_from(self.window).unwrap_or(i64::MAX);
        // SAFETY: a one-datapoint dataset of I32 tokens and I32 labels, `window` elements
        // each, allocated in a CPU buffer (so `->data` is host memory of exactly `window`
        // i32 values); freed once by `DatasetGuard`.
        let dataset = DatasetGuard(unsafe {
            sys::ggml_opt_dataset_init(sys::GGML_TYPE_I32, sys::GGML_TYPE_I32, window, window, 1, 1)
        });
        // SAFETY: as above; a fresh result, freed once by `ResultGuard`.
        let result = ResultGuard(unsafe { sys::ggml_opt_result_init() });
        let mut loss = 0.0f64;
        let mut uncertainty = 0.0f64;
        // SAFETY: the data and label tensors hold `window` i32 values each (see above) and
        // the copies write exactly that many; every id was checked against the vocabulary.
        // llama_opt_epoch runs synchronously on this context (which has an optimizer from
        // `new`); with split 1 the datapoint trains, with split 0 it is only evaluated.
        unsafe {
            let data = (*sys::ggml_opt_dataset_data(dataset.0)).data.cast::<i32>();
            let label_data = (*sys::ggml_opt_dataset_labels(dataset.0))
                .data
                .cast::<i32>();
            ptr::copy_nonoverlapping(tokens.as_ptr(), data, self.window);
            ptr::copy_nonoverlapping(labels.as_ptr(), label_data, self.window);
            let (train_result, eval_result, split) = if train {
                (result.0, ptr::null_mut(), 1)
            } else {
                (ptr::null_mut(), result.0, 0)
            };
            sys::llama_opt_epoch(
                self.context.ptr.as_ptr(),
                dataset.0,
                train_result,
                eval_result,
                split,
                None,
                None,
            );
            sys::ggml_opt_result_loss(result.0, &mut loss, &mut uncertainty);
        }
        if !loss.is_finite() {
            return Err(TrainError::Input(format!(
                "the loss is {loss}: lower the learning rate"
            )));
        }
        Ok(loss)
    }

    /// Calls `write` with each trained tensor's name and its current weights.
    pub fn for_each_trained_tensor(
        &self,
        mut write: impl FnMut(&str, &[f32]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let mut buffer: Vec<f32> = Vec::new();
        for (name, tensor) in &self.trained {
            // SAFETY: the tensor belongs to the live model and is F32 (llama.cpp only offers
            // F32 tensors to the filter), so it holds `ggml_nbytes / 4` floats; the copy
            // reads exactly that many bytes into a buffer of that size.
            unsafe {
                let bytes = sys::ggml_nbytes(*tensor);
                buffer.clear();
                buffer.resize(bytes / 4, 0.0);
                sys::ggml_backend_tensor_get(*tensor, buffer.as_mut_ptr().cast(), 0, bytes);
            }
            write(name, &buffer)?;
        }
        Ok(())
    }
}

/// The optimizer parameters llama.cpp reads through a raw pointer before every step. A
/// `Trainer` field declared after its context, so it is freed after the context is.
struct OptimizerParams(NonNull<sys::ggml_opt_optimizer_params>);

impl OptimizerParams {
    fn new(params: sys::ggml_opt_optimizer_params) -> Self {
        Self(NonNull::from(Box::leak(Box::new(params))))
    }
}

impl Drop for OptimizerParams {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `Box::leak` in `new` and is freed once, after the
        // context that read it (field order in `Trainer`).
        unsafe { drop(Box::from_raw(self.0.as_ptr())) };
    }
}

struct DatasetGuard(sys::ggml_opt_dataset_t);

impl Drop for DatasetGuard {
    fn drop(&mut self) {
        // SAFETY: created by `ggml_opt_dataset_init`, freed once.
        unsafe { sys::ggml_opt_dataset_free(self.0) };
    }
}

struct ResultGuard(sys::ggml_opt_result_t);

impl Drop for ResultGuard {
    fn drop(&mut self) {
        // SAFETY: created by `ggml_opt_result_init`, freed once.
        unsafe { sys::ggml_opt_result_free(self.0) };
    }
}
