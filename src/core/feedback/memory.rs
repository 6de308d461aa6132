//! Example memory: the verified question/SQL pairs of one database (corrections and
//! thumbs-ups), searched for the ones most like a new question, which the prompt then shows
//! as worked examples.
//!
//! BM25 over the questions (tantivy, in RAM: stemmed, with question words such as "what" and
//! "list" dropped) and, when an [`Embedder`] is available, cosine similarity of question
//! vectors, fused by reciprocal rank. Without an embedder it is BM25 only.
//!
//! The index follows the store: before each search it reads the store's pairs revision and
//! rebuilds when a pair was added, edited or removed (by this process or another), so a
//! correction takes effect on the very next question.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use tantivy::collector::TopDocs;
use tantivy::query::BooleanQuery;
use tantivy::schema::{
    Field, IndexRecordOption, STORED, Schema as IndexSchema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::{
    Language, LowerCaser, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{Index, IndexReader, TantivyDocument, Term};

use crate::core::feedback::history::DbScope;
use crate::core::feedback::store::{HistoryStore, PairSource, StoreError, VerifiedPair};
use crate::core::model::{Embedder, cosine};
use crate::core::retrieval::provider::Example;
use crate::core::retrieval::provider::ExampleSource;

const ANALYZER: &str = "question";
/// Reciprocal-rank-fusion constant (the usual 60).
const RRF_K: f32 = 60.0;
/// Below this cosine a pair is not shown as an example when sentence vectors are available,
/// whatever its words share. Set on the Chinook paraphrases (MiniLM): every paraphrase is at
/// least 0.69 from its own question; the example that misled the model ("employee who helps
/// the customer Leonie" for "employees based in Calgary") is at 0.58, while one with the same
/// query shape that helped ("least common media type" for "genre with the most tracks") is
/// at 0.63, and leaving it out (at 0.65) made that question wrong.
const MIN_COSINE: f32 = 0.6;
/// A BM25 match is shown only when the pair's question holds at least this share of the new
/// question's terms. Sharing one word ("employee", "tracks") is not similarity, and on
/// Chinook an unrelated example misled the model (it copied the example's join style into
/// a question that needed no join).
const MIN_TERM_COVERAGE: f32 = 0.4;

/// Words every question has; matching on them says nothing about similarity.
const QUESTION_STOPWORDS: &[&str] = &[
    "a", "all", "an", "and", "are", "as", "at", "be", "by", "can", "did", "do", "does", "each",
    "find", "for", "from", "give", "has", "have", "how", "i", "in", "into", "is", "it", "list",
    "me", "of", "on", "or", "please", "return", "show", "tell", "than", "that", "the", "their",
    "them", "there", "these", "they", "this", "those", "to", "was", "we", "were", "what", "when",
    "where", "which", "who", "whose", "with", "you",
];

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("example index error: {0}")]
    Index(#[from] tantivy::TantivyError),
}

struct BuiltIndex {
    reader: IndexReader,
    /// Each pair's question terms, by slot.
    terms: Vec<HashSet<String>>,
    question: Field,
    slot: Field,
}

/// The verified pairs of one database, searchable.
pub struct ExampleMemory {
    store: HistoryStore,
    scope: DbScope,
    embedder: Option<Box<dyn Embedder + Send>>,
    revision: Option<i64>,
    pairs: Vec<VerifiedPair>,
    vectors: Vec<Vec<f32>>,
    /// Question vectors already computed, so a rebuild embeds only new questions.
    vector_cache: HashMap<String, Vec<f32>>,
    index: Option<BuiltIndex>,
}

impl ExampleMemory {
    /// Opens the store at `store_path` for reading pairs of `scope`.
    pub fn open(
        store_path: &Path,
        scope: DbScope,
        embedder: Option<Box<dyn Embedder + Send>>,
    ) -> Result<Self, MemoryError> {
        Ok(Self::new(HistoryStore::open(store_path)?, scope, embedder))
    }

    pub fn new(
        store: HistoryStore,
        scope: DbScope,
        embedder: Option<Box<dyn Embedder + Send>>,
    ) -> Self {
        Self {
            store,
            scope,
            embedder,
            revision: None,
            pairs: Vec::new(),
            vectors: Vec::new(),
            vector_cache: HashMap::new(),
            index: None,
        }
    }

    pub fn uses_vectors(&self) -> bool {
        self.embedder.is_some()
    }

    /// How many pairs are searchable now.
    pub fn len(&mut self) -> Result<usize, MemoryError> {
        self.refresh()?;
        Ok(self.pairs.len())
    }

    pub fn is_empty(&mut self) -> Result<bool, MemoryError> {
        Ok(self.len()? == 0)
    }

    /// The pairs most similar to `question`, best first, at most `limit`.
    pub fn search(
        &mut self,
        question: &str,
        limit: usize,
    ) -> Result<Vec<VerifiedPair>, MemoryError> {
        self.refresh()?;
        if limit == 0 || self.pairs.is_empty() {
            return Ok(Vec::new());
        }
        let depth = (limit * 4).max(10);
        let nearest = self.nearest(question, depth);
        let mut fused: HashMap<usize, f32> = HashMap::new();
        for (rank, slot) in self.bm25(question, depth)?.into_iter().enumerate() {
            // With vectors, sharing words only ranks a pair that is close in meaning too.
            if nearest.as_ref().is_some_and(|close| !close.contains(&slot)) {
                continue;
            }
            *fused.entry(slot).or_default() += 1.0 / (RRF_K + rank as f32 + 1.0);
        }
        for (rank, slot) in nearest.into_iter().flatten().enumerate() {
            *fused.entry(slot).or_default() += 1.0 / (RRF_K + rank as f32 + 1.0);
        }
        let mut ranked: Vec<(usize, f32)> = fused.into_iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
        Ok(ranked
            .into_iter()
            .take(limit)
            .map(|(slot, _)| self.pairs[slot].clone())
            .collect())
    }

    fn bm25(&self, question: &str, depth: usize) -> Result<Vec<usize>, MemoryError> {
        let Some(built) = &self.index else {
            return Ok(Vec::new());
        };
        let words = analyzed_terms(question);
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let terms: Vec<Term> = words
            .iter()
            .map(|w| Term::from_field_text(built.question, w))
            .collect();
        let query = BooleanQuery::new_multiterms_query(terms);
        let searcher = built.reader.searcher();
        let hits = searcher.search(&query, &TopDocs::with_limit(depth).order_by_score())?;
        let mut slots = Vec::with_capacity(hits.len());
        for (score, address) in hits {
            if score <= 0.0 {
                continue;
            }
            let doc: TantivyDocument = searcher.doc(address)?;
            let Some(slot) = doc.get_first(built.slot).and_then(|v| v.as_u64()) else {
                continue;
            };
            let slot = slot as usize;
            let shared = built
                .terms
                .get(slot)
                .map(|known| words.iter().filter(|w| known.contains(*w)).count())
                .unwrap_or(0);
            if shared as f32 >= MIN_TERM_COVERAGE * words.len() as f32 {
                slots.push(slot);
            }
        }
        Ok(slots)
    }

    /// The pairs at least [`MIN_COSINE`] from `question`, closest first; `None` when there
    /// are no vectors to compare (no embedder, or embedding failed), so BM25 decides alone.
    fn nearest(&mut self, question: &str, depth: usize) -> Option<Vec<usize>> {
        let embedder = self.embedder.as_mut()?;
        if self.vectors.iter().all(Vec::is_empty) {
            return None;
        }
        let query = match embedder.embed(&[question]) {
            Ok(mut vectors) if !vectors.is_empty() => vectors.swap_remove(0),
            Ok(_) => return None,
            Err(error) => {
                tracing::warn!("example memory: embedding the question failed: {error}");
                return None;
            }
        };
        let mut scored: Vec<(usize, f32)> = self
            .vectors
            .iter()
            .enumerate()
            .map(|(slot, v)| (slot, cosine(&query, v)))
            .filter(|(_, score)| *score >= MIN_COSINE)
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        Some(
            scored
                .into_iter()
                .take(depth)
                .map(|(slot, _)| slot)
                .collect(),
        )
    }

    /// Rebuilds the index when the store's pairs changed since the last build.
    fn refresh(&mut self) -> Result<(), MemoryError> {
        let revision = self.store.pairs_revision()?;
        if self.revision == Some(revision) {
            return Ok(());
        }
        let pairs: Vec<VerifiedPair> = self
            .store
            .pairs(Some(&self.scope))?
            .into_iter()
            .filter(|p| matches!(p.source, PairSource::Correction | PairSource::ThumbsUp))
            .collect();
        self.index = if pairs.is_empty() {
            None
        } else {
            Some(build_index(&pairs)?)
        };
        self.vectors = self.embed_all(&pairs);
        self.pairs = pairs;
        self.revision = Some(revision);
        Ok(())
    }

    fn embed_all(&mut self, pairs: &[VerifiedPair]) -> Vec<Vec<f32>> {
        let Some(embedder) = self.embedder.as_mut() else {
            return Vec::new();
        };
        let missing: Vec<&str> = pairs
            .iter()
            .map(|p| p.question.as_str())
            .filter(|q| !self.vector_cache.contains_key(*q))
            .collect();
        if !missing.is_empty() {
            match embedder.embed(&missing) {
                Ok(vectors) => {
                    for (question, vector) in missing.iter().zip(vectors) {
                        self.vector_cache.insert((*question).to_string(), vector);
                    }
                }
                Err(error) => tracing::warn!("example memory: embedding pairs failed: {error}"),
            }
        }
        pairs
            .iter()
            .map(|p| {
                self.vector_cache
                    .get(&p.question)
                    .cloned()
                    .unwrap_or_default()
            })
            .collect()
    }
}

impl ExampleSource for ExampleMemory {
    fn examples_for(&mut self, question: &str, limit: usize) -> Vec<Example> {
        match self.search(question, limit) {
            Ok(pairs) => pairs
                .into_iter()
                .map(|p| Example {
                    question: p.question,
                    sql: p.sql,
                })
                .collect(),
            Err(error) => {
                tracing::warn!("example memory unavailable for this question: {error}");
                Vec::new()
            }
        }
    }
}

fn question_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(LowerCaser)
        .filter(StopWordFilter::remove(
            QUESTION_STOPWORDS.iter().map(|w| (*w).to_string()),
        ))
        .filter(Stemmer::new(Language::English))
        .build()
}

/// A question's distinct terms as the index sees them.
fn analyzed_terms(text: &str) -> Vec<String> {
    let mut analyzer = question_analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut terms: Vec<String> = Vec::new();
    while stream.advance() {
        let term = &stream.token().text;
        if !terms.contains(term) {
            terms.push(term.clone());
        }
    }
    terms
}

fn build_index(pairs: &[VerifiedPair]) -> Result<BuiltIndex, MemoryError> {
    let mut builder = IndexSchema::builder();
    let indexing = TextFieldIndexing::default()
        .set_tokenizer(ANALYZER)
        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
    let question = builder.add_text_field(
        "question",
        TextOptions::default().set_indexing_options(indexing),
    );
    let slot = builder.add_u64_field("slot", STORED);
    let index = Index::create_in_ram(builder.build());
    index.tokenizers().register(ANALYZER, question_analyzer());
    let mut writer = index.writer_with_num_threads::<TantivyDocument>(1, 15_000_000)?;
    for (position, pair) in pairs.iter().enumerate() {
        let mut doc = TantivyDocument::default();
        doc.add_text(question, &pair.question);
        doc.add_u64(slot, position as u64);
        writer.add_document(doc)?;
    }
    writer.commit()?;
    let reader = index.reader()?;
    reader.reload()?;
    Ok(BuiltIndex {
        reader,
        terms: pairs
            .iter()
            .map(|p| analyzed_terms(&p.question).into_iter().collect())
            .collect(),
        question,
        slot,
    })
}
