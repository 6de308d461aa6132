//! The chat model a run uses: the in-process llama.cpp engine, or a remote server when a
//! URL is configured (`--llm-url`, `NANO_ANALYST_LLM_URL`, `model.llm_url`).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::core::model::{Completion, CompletionRequest, LanguageModel, LlmError};
use crate::llm::engine::LlamaEngine;
use crate::remote::RemoteEngine;
use crate::session::RuntimeOptions;

pub enum ModelEngine {
    Local(LlamaEngine),
    Remote(RemoteEngine),
}

impl ModelEngine {
    /// The remote engine when `options.remote` is set, otherwise the local model file.
    pub fn load(options: &RuntimeOptions) -> Result<Self, LlmError> {
        match &options.remote {
            Some(remote) => RemoteEngine::connect(remote.clone()).map(Self::Remote),
            None => LlamaEngine::load(options.engine.clone()).map(Self::Local),
        }
    }

    /// Setting the flag stops the running request (the next token, or the next event).
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        match self {
            Self::Local(engine) => engine.cancel_flag(),
            Self::Remote(engine) => engine.cancel_flag(),
        }
    }

    pub fn is_remote(&self) -> bool {
        matches!(self, Self::Remote(_))
    }

    /// Forgets the local KV cache; a server's prompt cache is the server's, left alone.
    pub(crate) fn clear_cache(&mut self) {
        if let Self::Local(engine) = self {
            engine.clear_cache();
        }
    }

    fn model(&mut self) -> &mut dyn LanguageModel {
        match self {
            Self::Local(engine) => engine,
            Self::Remote(engine) => engine,
        }
    }
}

impl LanguageModel for ModelEngine {
    fn complete(
        &mut self,
        request: &CompletionRequest,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion, LlmError> {
        self.model().complete(request, on_text)
    }

    fn model_id(&self) -> String {
        match self {
            Self::Local(engine) => engine.model_id(),
            Self::Remote(engine) => engine.model_id(),
        }
    }

    fn count_tokens(&self, text: &str) -> usize {
        match self {
            Self::Local(engine) => engine.count_tokens(text),
            Self::Remote(engine) => engine.count_tokens(text),
        }
    }
}
