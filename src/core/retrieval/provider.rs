//! What the prompt says about the database for one question, and who decides it: the
//! [`ContextProvider`] interface (schema retrieval and the whole schema implement it) and
//! the [`ExampleSource`] that example memory implements.

use serde::{Deserialize, Serialize};

use crate::core::db::render::{RenderOptions, render_schema};
use crate::core::db::schema::Schema;

/// A question/SQL pair shown to the model as a worked example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub question: String,
    pub sql: String,
}

/// A glossary entry matched to the question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlossaryEntry {
    pub term: String,
    pub definition: String,
}

/// How the schema was put into the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextMode {
    /// The whole schema fits the budget and was sent.
    WholeSchema,
    /// Only the retrieved tables were sent.
    Subset,
}

/// Everything the prompt says about the database for one question.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptContext {
    pub schema_text: String,
    pub tables_sent: Vec<String>,
    pub mode: ContextMode,
    pub examples: Vec<Example>,
    pub glossary: Vec<GlossaryEntry>,
    /// Why each table was chosen, for the schema pane and `--json` (empty for whole schema).
    pub reasons: Vec<String>,
}

/// Chooses what the prompt says about the database. Retrieval and example memory plug in
/// here; [`WholeSchemaContext`] is the simplest provider.
pub trait ContextProvider {
    fn context_for(&mut self, question: &str) -> PromptContext;
}

/// Sends the whole schema, in the database's own order (stable, so the prefix is cached).
pub struct WholeSchemaContext {
    schema_text: String,
    tables: Vec<String>,
}

impl WholeSchemaContext {
    pub fn new(schema: &Schema) -> Self {
        Self::with_options(schema, RenderOptions::default())
    }

    pub(crate) fn with_options(schema: &Schema, options: RenderOptions) -> Self {
        Self {
            schema_text: render_schema(schema, None, options),
            tables: schema.tables.iter().map(|t| t.name.clone()).collect(),
        }
    }
}

impl ContextProvider for WholeSchemaContext {
    fn context_for(&mut self, _question: &str) -> PromptContext {
        PromptContext {
            schema_text: self.schema_text.clone(),
            tables_sent: self.tables.clone(),
            mode: ContextMode::WholeSchema,
            examples: Vec::new(),
            glossary: Vec::new(),
            reasons: Vec::new(),
        }
    }
}

/// Verified question/SQL pairs similar to a question (the example memory plugs in here).
pub trait ExampleSource {
    fn examples_for(&mut self, question: &str, limit: usize) -> Vec<Example>;
}

/// A schema provider plus, optionally, example memory and glossary entries.
pub struct ComposedContext {
    pub schema: Box<dyn ContextProvider + Send>,
    pub examples: Option<Box<dyn ExampleSource + Send>>,
    pub examples_per_question: usize,
}

impl ContextProvider for ComposedContext {
    fn context_for(&mut self, question: &str) -> PromptContext {
        let mut context = self.schema.context_for(question);
        if let Some(source) = self.examples.as_mut() {
            context.examples = source.examples_for(question, self.examples_per_question);
        }
        context
    }
}
