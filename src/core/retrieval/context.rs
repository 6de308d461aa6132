//! The retrieval context provider: ranks the schema for each question and decides what
//! the prompt carries. When the whole schema fits the budget it is sent whole; otherwise
//! the best tables (with their join paths) are sent, as many as fit.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::core::db::render::{RenderOptions, render_schema};
use crate::core::db::schema::Schema;
use crate::core::model::Embedder;
use crate::core::retrieval::index::{RetrievalError, SchemaIndex};
use crate::core::retrieval::provider::GlossaryEntry;
use crate::core::retrieval::provider::{ContextMode, ContextProvider, PromptContext};
use crate::core::retrieval::rank::{RankOptions, Ranking, rank};
use crate::core::retrieval::values::ValueIndex;

/// How tables are ordered when the whole schema is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WholeSchemaOrder {
    /// The database's own order: the system prompt is identical for every question, so
    /// its KV cache is reused (a reordered 1,000-token schema costs seconds per question
    /// on a CPU).
    #[default]
    Database,
    /// Most relevant table first.
    Relevance,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RetrievalOptions {
    /// Estimated tokens the schema may take in the prompt.
    pub budget_tokens: usize,
    /// Most tables sent in subset mode.
    pub max_tables: usize,
    pub whole_order: WholeSchemaOrder,
    pub rank: RankOptions,
    /// How each table is written into the prompt (sample values, row counts).
    pub render: RenderOptions,
}

impl Default for RetrievalOptions {
    fn default() -> Self {
        Self {
            budget_tokens: 2500,
            max_tables: 8,
            whole_order: WholeSchemaOrder::Database,
            rank: RankOptions::default(),
            render: RenderOptions::default(),
        }
    }
}

impl RetrievalOptions {
    /// The schema budget for a context window: what is left after the instructions, the
    /// question turn, examples, the SQL and the answer turns.
    pub(crate) fn budget_for_context(context_tokens: u32) -> usize {
        (context_tokens as usize).saturating_sub(1600).max(400)
    }
}

/// Rough token count of rendered DDL for budgeting: about three characters per token
/// for identifiers, punctuation and sample values (measured on Chinook with Qwen2.5's
/// tokenizer: 3.3), rounded down so the estimate errs on the large side.
pub(crate) fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(3)
}

/// What an index is built from besides the schema.
pub struct IndexSources<'a> {
    pub glossary: Vec<GlossaryEntry>,
    /// Where built indexes are kept; `None` builds in memory every time.
    pub cache_root: Option<&'a Path>,
    /// Reads the sample values; called only when the index is built.
    pub collect_values: &'a mut dyn FnMut() -> ValueIndex,
    pub embedder: Option<Box<dyn Embedder + Send>>,
}

pub struct RetrievalContext {
    schema: Schema,
    pub index: SchemaIndex,
    embedder: Option<Box<dyn Embedder + Send>>,
    glossary: Vec<GlossaryEntry>,
    options: RetrievalOptions,
    /// Rendered text and token estimate of each table, in schema order.
    rendered: Vec<String>,
    whole_tokens: usize,
    whole_text: String,
    /// Why vectors are not used, when they are not (shown to the user once).
    pub note: Option<String>,
}

impl RetrievalContext {
    /// Opens (or builds) the index for `schema` under `cache_root` and attaches the
    /// embedder's vectors. An embedder that fails leaves BM25 alone, with a note saying so.
    pub fn new(
        schema: Schema,
        glossary: Vec<GlossaryEntry>,
        cache_root: Option<&Path>,
        collect_values: &mut dyn FnMut() -> ValueIndex,
        embedder: Option<Box<dyn Embedder + Send>>,
        options: RetrievalOptions,
    ) -> Result<Self, RetrievalError> {
        let sources = IndexSources {
            glossary,
            cache_root,
            collect_values,
            embedder,
        };
        Self::with_progress(schema, sources, options, &mut |_, _| {})
    }

    /// [`RetrievalContext::new`], reporting `(embedded, total)` while vectors are computed.
    pub fn with_progress(
        schema: Schema,
        sources: IndexSources<'_>,
        options: RetrievalOptions,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self, RetrievalError> {
        let IndexSources {
            glossary,
            cache_root,
            collect_values,
            mut embedder,
        } = sources;
        let mut index = SchemaIndex::open(&schema, &glossary, cache_root, collect_values)?;
        let mut note = None;
        if let Some(model) = embedder.as_mut()
            && let Err(error) = index.attach_vectors(model.as_mut(), progress)
        {
            note = Some(format!("schema retrieval uses BM25 only: {error}"));
            embedder = None;
        }
        let render = options.render;
        let rendered: Vec<String> = schema
            .tables
            .iter()
            .map(|t| render_schema(&schema, Some(std::slice::from_ref(&t.name)), render))
            .collect();
        let whole_text = render_schema(&schema, None, render);
        let whole_tokens = estimate_tokens(&whole_text);
        Ok(Self {
            schema,
            index,
            embedder,
            glossary,
            options,
            rendered,
            whole_tokens,
            whole_text,
            note,
        })
    }

    /// Hands the embedder back (the benchmark reuses one model across databases).
    pub(crate) fn take_embedder(&mut self) -> Option<Box<dyn Embedder + Send>> {
        self.embedder.take()
    }

    /// Records why there is no embedder (the caller could not load one).
    pub(crate) fn set_note(&mut self, note: String) {
        self.note = Some(note);
    }

    pub(crate) fn has_vectors(&self) -> bool {
        self.embedder.is_some() && self.index.vectors.is_some()
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    pub fn options(&self) -> &RetrievalOptions {
        &self.options
    }

    /// Ranks every table for `question`.
    pub fn rank(&mut self, question: &str) -> Ranking {
        let vector = self.embedder.as_mut().and_then(|model| {
            model
                .embed(&[question])
                .map_err(|error| tracing::warn!(%error, "cannot embed the question"))
                .ok()
                .and_then(|mut v| v.pop())
        });
        rank(
            &mut self.index,
            question,
            vector.as_deref(),
            &self.glossary,
            &self.options.rank,
        )
    }

    /// Whether the whole schema fits the budget.
    pub(crate) fn whole_schema_fits(&self) -> bool {
        self.whole_tokens <= self.options.budget_tokens
    }

    /// The prompt context for a ranking (split from `context_for` for the benchmark).
    pub(crate) fn context_from(&self, ranking: &Ranking) -> PromptContext {
        let reasons: Vec<String> = ranking
            .tables
            .iter()
            .filter(|t| !t.reasons.is_empty())
            .map(|t| t.describe())
            .collect();
        if self.whole_schema_fits() {
            let (schema_text, tables_sent) = match self.options.whole_order {
                WholeSchemaOrder::Database => (
                    self.whole_text.clone(),
                    self.schema.tables.iter().map(|t| t.name.clone()).collect(),
                ),
                WholeSchemaOrder::Relevance => (
                    ranking
                        .tables
                        .iter()
                        .map(|t| self.rendered[t.index].as_str())
                        .collect::<String>(),
                    ranking.names(),
                ),
            };
            return PromptContext {
                schema_text,
                tables_sent,
                mode: ContextMode::WholeSchema,
                examples: Vec::new(),
                glossary: ranking.glossary.clone(),
                reasons,
            };
        }
        let mut schema_text = String::new();
        let mut tables_sent = Vec::new();
        let mut used = 0;
        for table in &ranking.tables {
            if tables_sent.len() >= self.options.max_tables {
                break;
            }
            let text = &self.rendered[table.index];
            let tokens = estimate_tokens(text);
            if used + tokens > self.options.budget_tokens && !tables_sent.is_empty() {
                continue;
            }
            used += tokens;
            schema_text.push_str(text);
            tables_sent.push(table.name.clone());
        }
        let reasons = reasons
            .into_iter()
            .filter(|r| tables_sent.iter().any(|t| r.starts_with(&format!("{t}: "))))
            .collect();
        PromptContext {
            schema_text,
            tables_sent,
            mode: ContextMode::Subset,
            examples: Vec::new(),
            glossary: ranking.glossary.clone(),
            reasons,
        }
    }
}

impl ContextProvider for RetrievalContext {
    fn context_for(&mut self, question: &str) -> PromptContext {
        let ranking = self.rank(question);
        self.context_from(&ranking)
    }
}
