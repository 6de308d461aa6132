//! Wires schema retrieval for one database: the embedding model (when there is one), the
//! glossary, the index cache under the data directory, and the retrieval options.

use std::path::{Path, PathBuf};

use crate::core::db::exec::ReadOnlyDb;
use crate::core::db::schema::Schema;
use crate::core::model::Embedder;
use crate::core::retrieval::{Glossary, IndexSources, RetrievalContext, ValueIndex};
use crate::error::AppError;
use crate::llm::embedder::LlamaEmbedder;
use crate::session::options::RuntimeOptions;

/// Where schema indexes are kept, one directory per schema fingerprint.
pub fn index_cache_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("cache").join("schema-index")
}

/// Loads the embedding model; on failure, the note the user sees says BM25 runs alone.
pub fn load_embedder(path: &Path, threads: i32) -> Result<Box<dyn Embedder + Send>, String> {
    match LlamaEmbedder::load(path, threads) {
        Ok(embedder) => Ok(Box::new(embedder)),
        Err(error) => Err(format!("schema retrieval uses BM25 only: {error}")),
    }
}

/// The retrieval context provider for `db`, whose schema is `schema`.
pub fn open_retrieval(
    db: &ReadOnlyDb,
    schema: &Schema,
    options: &RuntimeOptions,
    use_vectors: bool,
) -> Result<RetrievalContext, AppError> {
    open_retrieval_with_progress(db, schema, options, use_vectors, &mut |_, _| {})
}

/// [`open_retrieval`], reporting `(embedded, total)` while a new index's vectors are computed.
pub fn open_retrieval_with_progress(
    db: &ReadOnlyDb,
    schema: &Schema,
    options: &RuntimeOptions,
    use_vectors: bool,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<RetrievalContext, AppError> {
    let glossary = match &options.glossary {
        Some(path) => Glossary::load(path)?.entries,
        None => Vec::new(),
    };
    let (embedder, note) = if use_vectors {
        match load_embedder(&options.embed_model, options.engine.threads) {
            Ok(embedder) => (Some(embedder), None),
            Err(note) => (None, Some(note)),
        }
    } else {
        (None, None)
    };
    let cache = index_cache_dir(&options.paths.data_dir);
    let mut collect = || {
        let mut values = ValueIndex::default();
        match db.connection() {
            Some(conn) => values.collect(conn, schema, 0),
            None => values.collect_with(schema, 0, &mut |table, column, max_chars, limit| {
                db.text_values(table, column, max_chars, limit)
            }),
        }
        values
    };
    let sources = IndexSources {
        glossary,
        cache_root: Some(&cache),
        collect_values: &mut collect,
        embedder,
    };
    let mut context =
        RetrievalContext::with_progress(schema.clone(), sources, options.retrieval, progress)?;
    if let Some(note) = note {
        tracing::warn!(%note, "no embedding model");
        context.set_note(note);
    }
    Ok(context)
}

/// "indexing the schema: 3,584 of 14,000 names embedded" for a progress line.
pub fn index_progress_text(embedded: usize, total: usize) -> String {
    format!("indexing the schema: {embedded} of {total} names embedded")
}
