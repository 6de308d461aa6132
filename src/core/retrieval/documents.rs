//! The text retrieval sees for each table and column: split identifiers, declared types,
//! keys, foreign-key targets, sample values and user descriptions (glossary entries that
//! name the table or column).

use crate::core::db::ident::identifier_phrase;
use crate::core::db::schema::{Schema, Table};
use crate::core::retrieval::provider::GlossaryEntry;

#[derive(Debug, Clone, PartialEq)]
pub struct TableDoc {
    /// The table's name (the analyzer splits it).
    pub name: String,
    /// Columns, types, keys, references, samples and descriptions.
    pub body: String,
    /// What the embedding model reads.
    pub embed_text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDoc {
    pub table: usize,
    pub column: usize,
    pub name: String,
    pub body: String,
    pub embed_text: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Documents {
    pub tables: Vec<TableDoc>,
    pub columns: Vec<ColumnDoc>,
}

/// Builds one document per table and per column, in schema order.
pub(crate) fn build_documents(schema: &Schema, glossary: &[GlossaryEntry]) -> Documents {
    let mut docs = Documents::default();
    for (t, table) in schema.tables.iter().enumerate() {
        let table_phrase = identifier_phrase(&table.name);
        let described: Vec<&GlossaryEntry> = glossary
            .iter()
            .filter(|e| mentions(&e.definition, &table.name) || mentions(&e.term, &table.name))
            .collect();
        let mut body = String::new();
        let mut column_phrases = Vec::new();
        for (c, column) in table.columns.iter().enumerate() {
            let phrase = identifier_phrase(&column.name);
            column_phrases.push(phrase.clone());
            body.push_str(&column.name);
            body.push(' ');
            let column_body = column_body(table, c, &table_phrase, glossary);
            let embed_text = format!("{table_phrase} {phrase}");
            docs.columns.push(ColumnDoc {
                table: t,
                column: c,
                name: column.name.clone(),
                body: column_body,
                embed_text,
            });
        }
        for fk in &table.foreign_keys {
            body.push_str(" references ");
            body.push_str(&fk.to_table);
        }
        for column in &table.columns {
            for value in &column.sample_values {
                body.push(' ');
                body.push_str(value);
            }
        }
        for entry in &described {
            body.push(' ');
            body.push_str(&entry.term);
            body.push(' ');
            body.push_str(&entry.definition);
        }
        let mut embed_text = format!("{table_phrase}: {}", column_phrases.join(", "));
        if let Some(entry) = described.first() {
            embed_text.push_str(". ");
            embed_text.push_str(&entry.definition);
        }
        docs.tables.push(TableDoc {
            name: table.name.clone(),
            body,
            embed_text,
        });
    }
    docs
}

fn column_body(table: &Table, c: usize, table_phrase: &str, glossary: &[GlossaryEntry]) -> String {
    let column = &table.columns[c];
    let mut body = format!("{table_phrase} {}", column.declared_type);
    if column.primary_key {
        body.push_str(" primary key");
    }
    for fk in table
        .foreign_keys
        .iter()
        .filter(|fk| fk.from_column == column.name)
    {
        body.push_str(" references ");
        body.push_str(&fk.to_table);
    }
    for value in &column.sample_values {
        body.push(' ');
        body.push_str(value);
    }
    for entry in glossary
        .iter()
        .filter(|e| mentions(&e.definition, &column.name) && mentions(&e.definition, &table.name))
    {
        body.push(' ');
        body.push_str(&entry.term);
        body.push(' ');
        body.push_str(&entry.definition);
    }
    body
}

/// Whether `text` names `identifier` as a whole word (case-insensitive), either as written
/// or as its phrase (`InvoiceLine` or "invoice line").
pub(crate) fn mentions(text: &str, identifier: &str) -> bool {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    let name = identifier.to_lowercase();
    if words.iter().any(|w| *w == name) {
        return true;
    }
    let phrase = identifier_phrase(identifier);
    let phrase_words: Vec<&str> = phrase.split(' ').filter(|w| !w.is_empty()).collect();
    !phrase_words.is_empty()
        && phrase_words.len() > 1
        && words
            .windows(phrase_words.len())
            .any(|window| window == phrase_words.as_slice())
}
