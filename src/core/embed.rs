//! What retrieval and example memory need from an embedding model, without naming
//! llama.cpp. The real implementation lives in `llm`; tests may use a deterministic one.

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error(
        "embedding model not found: '{0}' (run scripts/fetch-embedder.sh or pass --embed-model PATH)"
    )]
    ModelNotFound(String),
    #[error("could not load embedding model '{path}': {reason}")]
    Load { path: String, reason: String },
    #[error("embedding failed: {0}")]
    Inference(String),
}

/// Turns texts into L2-normalised vectors of a fixed dimension (cosine = dot product).
pub trait Embedder {
    fn dimensions(&self) -> usize;
    /// An identifier of the model, part of every persisted index's cache key.
    fn model_id(&self) -> String;
    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// Dot product of two normalised vectors; 0 when their lengths differ.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
