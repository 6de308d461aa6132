//! Schema retrieval: finds every table a question needs, on schemas from ten to ten
//! thousand tables.
//!
//! Documents per table and column ([`documents`]) are indexed with BM25 through an
//! identifier-aware analyzer ([`tokenizer`], [`index`]) and, when an embedding model is
//! available, as vectors; literals of the question are looked up among column values
//! ([`values`]); the signals are fused by weighted reciprocal rank and closed over foreign
//! keys ([`rank`]); [`context`] budgets what goes into the prompt. [`provider`] is the
//! interface the pipeline asks (whole schema, retrieval, and example memory behind it).

pub mod context;
pub mod documents;
pub mod glossary;
pub mod index;
pub mod provider;
pub mod rank;
pub mod tokenizer;
pub mod values;

pub use context::{IndexSources, RetrievalContext, RetrievalOptions, WholeSchemaOrder};
pub use glossary::{Glossary, GlossaryError};
pub use index::{IndexOrigin, RetrievalError, SchemaIndex};
pub use rank::{FusionWeights, RankOptions, RankedTable, Ranking, Reason, rank};
pub use values::ValueIndex;
