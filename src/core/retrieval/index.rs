//! The schema index: BM25 (tantivy) over table and column documents, optional embedding
//! vectors, the value index and the foreign-key graph, persisted under a directory keyed
//! by the schema's fingerprint.
//!
//! Invariants:
//! - Table `i` of the index is table `i` of the schema it was built from; column docs are
//!   in schema order. A cache directory is only used when its key (format version, schema
//!   fingerprint, glossary digest) matches, so a changed schema is always re-indexed.
//! - A cache directory is written under a temporary name and renamed into place whole;
//!   vectors are a separate file per embedding model, written the same way.

use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    FAST, Field, IndexRecordOption, Schema as IndexSchema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{Index, IndexReader, ReloadPolicy, TantivyDocument, Term};

use crate::core::db::schema::Schema;
use crate::core::model::{EmbedError, Embedder};
use crate::core::retrieval::documents::{ColumnDoc, Documents, build_documents};
use crate::core::retrieval::provider::GlossaryEntry;
use crate::core::retrieval::tokenizer::{ANALYZER, analyzer, terms};
use crate::core::retrieval::values::ValueIndex;

/// Bumped whenever documents, analyzer or file layout change: old caches are ignored.
const FORMAT_VERSION: &str = "retrieval-v1";
/// A table or column name counts this much more than the rest of its document.
const NAME_BOOST: f32 = 2.0;
const WRITER_MEMORY: usize = 50_000_000;

#[derive(Debug, thiserror::Error)]
pub enum RetrievalError {
    #[error("schema index error: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("cannot write the schema index under '{path}': {reason}")]
    Io { path: String, reason: String },
    #[error(transparent)]
    Embed(#[from] EmbedError),
}

struct Fields {
    table_name: Field,
    table_body: Field,
    column_name: Field,
    column_body: Field,
}

const TABLE_ID: &str = "table_id";
const COLUMN_ID: &str = "column_id";

/// Vectors for every table and column document (row-major, `dimensions` wide).
#[derive(Debug, Clone, PartialEq)]
pub struct Vectors {
    pub model_id: String,
    pub dimensions: usize,
    pub tables: Vec<f32>,
    pub columns: Vec<f32>,
}

impl Vectors {
    pub fn table(&self, t: usize) -> &[f32] {
        &self.tables[t * self.dimensions..(t + 1) * self.dimensions]
    }
    pub fn column(&self, i: usize) -> &[f32] {
        &self.columns[i * self.dimensions..(i + 1) * self.dimensions]
    }
}

/// How an index came to be, for logs, `schema --json` and the cache test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexOrigin {
    Built,
    LoadedFromCache,
    InMemory,
}

pub struct SchemaIndex {
    reader: IndexReader,
    fields: Fields,
    analyzer: TextAnalyzer,
    pub documents: Documents,
    /// (table, column) of each column document, in document order.
    pub column_refs: Vec<(usize, usize)>,
    /// Index of each table's first column document.
    column_offsets: Vec<usize>,
    pub values: ValueIndex,
    pub vectors: Option<Vectors>,
    /// Undirected foreign-key adjacency between tables.
    pub neighbours: Vec<Vec<usize>>,
    pub origin: IndexOrigin,
    pub build_ms: u64,
    cache_dir: Option<PathBuf>,
}

impl SchemaIndex {
    /// Loads the index for `schema` from `cache_root` when a matching one is there, or
    /// builds (and saves) it; `collect_values` is called only when building.
    pub fn open(
        schema: &Schema,
        glossary: &[GlossaryEntry],
        cache_root: Option<&Path>,
        collect_values: &mut dyn FnMut() -> ValueIndex,
    ) -> Result<Self, RetrievalError> {
        let started = Instant::now();
        let documents = build_documents(schema, glossary);
        let fields_schema = index_schema();
        let (index, values, origin, cache_dir) = match cache_root {
            None => {
                let index = Index::create_in_ram(fields_schema.0.clone());
                write_documents(&index, &fields_schema.1, &documents)?;
                (index, collect_values(), IndexOrigin::InMemory, None)
            }
            Some(root) => {
                let dir = root.join(cache_key(schema, glossary));
                match load_cached(&dir) {
                    Some((index, values)) => {
                        (index, values, IndexOrigin::LoadedFromCache, Some(dir))
                    }
                    None => {
                        let values = collect_values();
                        let index = build_cached(&dir, &fields_schema, &documents, &values)?;
                        (index, values, IndexOrigin::Built, Some(dir))
                    }
                }
            }
        };
        index.tokenizers().register(ANALYZER, analyzer());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let column_refs: Vec<(usize, usize)> = documents
            .columns
            .iter()
            .map(|c| (c.table, c.column))
            .collect();
        let mut column_offsets = vec![column_refs.len(); documents.tables.len()];
        for (i, &(t, _)) in column_refs.iter().enumerate().rev() {
            column_offsets[t] = i;
        }
        let mut built = Self {
            reader,
            fields: fields_schema.1,
            analyzer: analyzer(),
            documents,
            column_refs,
            column_offsets,
            values,
            vectors: None,
            neighbours: neighbours(schema),
            origin,
            build_ms: 0,
            cache_dir,
        };
        built.build_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(built)
    }

    /// The document of column `column` of table `table`.
    pub(crate) fn column_doc(&self, table: usize, column: usize) -> Option<&ColumnDoc> {
        let first = *self.column_offsets.get(table)?;
        self.documents
            .columns
            .get(first + column)
            .filter(|doc| doc.table == table && doc.column == column)
    }

    pub(crate) fn table_count(&self) -> usize {
        self.documents.tables.len()
    }

    /// Loads this index's vectors for `embedder`'s model, computing and saving them when
    /// they are missing. `progress` hears `(embedded, total)` as the texts are embedded: a
    /// catalog of thousands of tables takes minutes on a laptop the first time.
    pub(crate) fn attach_vectors(
        &mut self,
        embedder: &mut dyn Embedder,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<(), RetrievalError> {
        let model_id = embedder.model_id();
        let dimensions = embedder.dimensions();
        let path = self
            .cache_dir
            .as_ref()
            .map(|d| d.join(format!("vectors-{}.bin", file_safe(&model_id))));
        let expected = (self.documents.tables.len(), self.documents.columns.len());
        if let Some(vectors) = path
            .as_deref()
            .and_then(|p| read_vectors(p, &model_id, dimensions, expected))
        {
            self.vectors = Some(vectors);
            return Ok(());
        }
        let texts: Vec<&str> = (self.documents.tables.iter().map(|d| d.embed_text.as_str()))
            .chain(self.documents.columns.iter().map(|d| d.embed_text.as_str()))
            .collect();
        let mut embedded: Vec<Vec<f32>> = Vec::with_capacity(texts.len());
        progress(0, texts.len());
        for chunk in texts.chunks(PROGRESS_CHUNK) {
            embedded.extend(embedder.embed(chunk)?);
            progress(embedded.len(), texts.len());
        }
        let columns = embedded.split_off(expected.0.min(embedded.len())).concat();
        let tables = embedded.concat();
        let vectors = Vectors {
            model_id,
            dimensions,
            tables,
            columns,
        };
        if let Some(path) = path
            && let Err(error) = write_vectors(&path, &vectors)
        {
            tracing::warn!(%error, "cannot save schema vectors");
        }
        self.vectors = Some(vectors);
        Ok(())
    }

    /// The analyzed terms of a question (deduplicated, in order).
    pub(crate) fn query_terms(&mut self, question: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for term in terms(&mut self.analyzer, question) {
            if !out.contains(&term) {
                out.push(term);
            }
        }
        out
    }

    /// BM25 over table documents: (table, score), best first.
    pub(crate) fn search_tables(&self, terms: &[String], limit: usize) -> Vec<(usize, f32)> {
        self.search(terms, self.fields.table_name, self.fields.table_body, limit)
            .into_iter()
            .map(|(t, _, s)| (t, s))
            .collect()
    }

    /// BM25 over column documents: (table, column, score), best first.
    pub(crate) fn search_columns(
        &self,
        terms: &[String],
        limit: usize,
    ) -> Vec<(usize, usize, f32)> {
        self.search(
            terms,
            self.fields.column_name,
            self.fields.column_body,
            limit,
        )
    }

    fn search(
        &self,
        terms: &[String],
        name: Field,
        body: Field,
        limit: usize,
    ) -> Vec<(usize, usize, f32)> {
        if terms.is_empty() || limit == 0 {
            return Vec::new();
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(terms.len() * 2);
        for term in terms {
            let on_name = TermQuery::new(
                Term::from_field_text(name, term),
                IndexRecordOption::WithFreqs,
            );
            clauses.push((
                Occur::Should,
                Box::new(BoostQuery::new(Box::new(on_name), NAME_BOOST)),
            ));
            let on_body = TermQuery::new(
                Term::from_field_text(body, term),
                IndexRecordOption::WithFreqs,
            );
            clauses.push((Occur::Should, Box::new(on_body)));
        }
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let top = match searcher.search(&query, &TopDocs::with_limit(limit).order_by_score()) {
            Ok(top) => top,
            Err(error) => {
                tracing::warn!(%error, "schema search failed");
                return Vec::new();
            }
        };
        let mut out = Vec::with_capacity(top.len());
        for (score, address) in top {
            let fast = searcher.segment_reader(address.segment_ord).fast_fields();
            let (Ok(tables), Ok(columns)) = (fast.u64(TABLE_ID), fast.u64(COLUMN_ID)) else {
                continue;
            };
            let (Some(t), Some(c)) = (tables.first(address.doc_id), columns.first(address.doc_id))
            else {
                continue;
            };
            out.push((t as usize, c as usize, score));
        }
        out
    }
}

/// Texts embedded between two progress reports.
const PROGRESS_CHUNK: usize = 512;

fn index_schema() -> (IndexSchema, Fields) {
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let mut builder = IndexSchema::builder();
    let fields = Fields {
        table_name: builder.add_text_field("table_name", text.clone()),
        table_body: builder.add_text_field("table_body", text.clone()),
        column_name: builder.add_text_field("column_name", text.clone()),
        column_body: builder.add_text_field("column_body", text),
    };
    builder.add_u64_field(TABLE_ID, FAST);
    builder.add_u64_field(COLUMN_ID, FAST);
    (builder.build(), fields)
}

fn write_documents(
    index: &Index,
    fields: &Fields,
    documents: &Documents,
) -> Result<(), RetrievalError> {
    index.tokenizers().register(ANALYZER, analyzer());
    let schema = index.schema();
    let table_id = schema.get_field(TABLE_ID)?;
    let column_id = schema.get_field(COLUMN_ID)?;
    let mut writer = index.writer_with_num_threads::<TantivyDocument>(1, WRITER_MEMORY)?;
    for (t, doc) in documents.tables.iter().enumerate() {
        let mut document = TantivyDocument::default();
        document.add_text(fields.table_name, &doc.name);
        document.add_text(fields.table_body, &doc.body);
        document.add_u64(table_id, t as u64);
        document.add_u64(column_id, u64::MAX);
        writer.add_document(document)?;
    }
    for doc in &documents.columns {
        let mut document = TantivyDocument::default();
        document.add_text(fields.column_name, &doc.name);
        document.add_text(fields.column_body, &doc.body);
        document.add_u64(table_id, doc.table as u64);
        document.add_u64(column_id, doc.column as u64);
        writer.add_document(document)?;
    }
    writer.commit()?;
    Ok(())
}

fn cache_key(schema: &Schema, glossary: &[GlossaryEntry]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(FORMAT_VERSION.as_bytes());
    hasher.update(schema.fingerprint().as_bytes());
    crate::core::retrieval::glossary::hash_entries(&mut hasher, glossary);
    hex::encode(&hasher.finalize()[..16])
}

const COMPLETE_MARKER: &str = "complete";
const VALUES_FILE: &str = "values.json";
const TANTIVY_DIR: &str = "bm25";

fn load_cached(dir: &Path) -> Option<(Index, ValueIndex)> {
    if !dir.join(COMPLETE_MARKER).is_file() {
        return None;
    }
    let index = Index::open_in_dir(dir.join(TANTIVY_DIR))
        .map_err(
            |error| tracing::warn!(%error, dir = %dir.display(), "ignoring a broken schema index"),
        )
        .ok()?;
    let values = std::fs::read(dir.join(VALUES_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())?;
    Some((index, values))
}

fn build_cached(
    dir: &Path,
    fields: &(IndexSchema, Fields),
    documents: &Documents,
    values: &ValueIndex,
) -> Result<Index, RetrievalError> {
    let io = |path: &Path, e: std::io::Error| RetrievalError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let parent = dir.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    let staging = tempfile::Builder::new()
        .prefix(".building-")
        .tempdir_in(parent)
        .map_err(|e| io(parent, e))?;
    let bm25 = staging.path().join(TANTIVY_DIR);
    std::fs::create_dir_all(&bm25).map_err(|e| io(&bm25, e))?;
    let index = Index::create_in_dir(&bm25, fields.0.clone())?;
    write_documents(&index, &fields.1, documents)?;
    drop(index);
    let encoded = serde_json::to_vec(values).map_err(|e| RetrievalError::Io {
        path: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    let values_path = staging.path().join(VALUES_FILE);
    std::fs::write(&values_path, encoded).map_err(|e| io(&values_path, e))?;
    let marker = staging.path().join(COMPLETE_MARKER);
    std::fs::write(&marker, FORMAT_VERSION).map_err(|e| io(&marker, e))?;
    let staged = staging.keep();
    if dir.exists() {
        // A concurrent or interrupted build left one: replace it.
        let _ = std::fs::remove_dir_all(dir);
    }
    std::fs::rename(&staged, dir).map_err(|e| io(dir, e))?;
    Ok(Index::open_in_dir(dir.join(TANTIVY_DIR))?)
}

fn neighbours(schema: &Schema) -> Vec<Vec<usize>> {
    let mut adjacency = vec![Vec::new(); schema.tables.len()];
    for (t, table) in schema.tables.iter().enumerate() {
        for fk in &table.foreign_keys {
            let Some(target) = schema
                .tables
                .iter()
                .position(|other| other.name.eq_ignore_ascii_case(&fk.to_table))
            else {
                continue;
            };
            if target != t {
                if !adjacency[t].contains(&target) {
                    adjacency[t].push(target);
                }
                if !adjacency[target].contains(&t) {
                    adjacency[target].push(t);
                }
            }
        }
    }
    adjacency
}

fn file_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

const VECTORS_MAGIC: &[u8; 8] = b"NAVEC001";

fn write_vectors(path: &Path, vectors: &Vectors) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(24 + (vectors.tables.len() + vectors.columns.len()) * 4);
    bytes.extend_from_slice(VECTORS_MAGIC);
    for n in [
        vectors.dimensions,
        vectors.tables.len() / vectors.dimensions.max(1),
        vectors.columns.len() / vectors.dimensions.max(1),
    ] {
        bytes.extend_from_slice(&(n as u32).to_le_bytes());
    }
    let id = vectors.model_id.as_bytes();
    bytes.extend_from_slice(&(id.len() as u32).to_le_bytes());
    bytes.extend_from_slice(id);
    for value in vectors.tables.iter().chain(&vectors.columns) {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, path)
}

fn read_vectors(
    path: &Path,
    model_id: &str,
    dimensions: usize,
    (tables, columns): (usize, usize),
) -> Option<Vectors> {
    let bytes = std::fs::read(path).ok()?;
    let u32_at = |offset: usize| -> Option<usize> {
        let slice = bytes.get(offset..offset + 4)?;
        Some(u32::from_le_bytes(slice.try_into().ok()?) as usize)
    };
    if bytes.get(..8)? != VECTORS_MAGIC {
        return None;
    }
    if u32_at(8)? != dimensions || u32_at(12)? != tables || u32_at(16)? != columns {
        return None;
    }
    let id_len = u32_at(20)?;
    if bytes.get(24..24 + id_len)? != model_id.as_bytes() {
        return None;
    }
    let start = 24 + id_len;
    let floats: Vec<f32> = bytes
        .get(start..)?
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if floats.len() != (tables + columns) * dimensions {
        return None;
    }
    let (t, c) = floats.split_at(tables * dimensions);
    Some(Vectors {
        model_id: model_id.to_string(),
        dimensions,
        tables: t.to_vec(),
        columns: c.to_vec(),
    })
}
