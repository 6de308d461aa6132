//! Value matching: literals in a question ("Brazil", "AC/DC") found among a column's
//! distinct values pull that column's table in.
//!
//! Values and question text are compared in a normal form (lower case, words of letters
//! and digits joined by one space), so `AC/DC` matches "ac dc" and "AC-DC".

use std::collections::HashMap;

use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::core::db::ident::{lowercase_words, quote_identifier};
use crate::core::db::schema::Schema;

/// Distinct values read per column.
const VALUES_PER_COLUMN: usize = 5000;
/// Values longer than this are prose, not literals a question repeats.
const VALUE_MAX_CHARS: usize = 80;
/// Longest phrase (in words) looked up in the question.
const MAX_PHRASE_WORDS: usize = 6;

/// Where a value occurs: table and column positions in the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ValueLocation {
    pub table: u32,
    pub column: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ValueIndex {
    values: HashMap<String, Vec<ValueLocation>>,
}

/// One literal of the question found in the data.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueMatch {
    pub table: usize,
    pub column: usize,
    /// The value as normalised (what the question and the data share).
    pub value: String,
    /// Words in the value times how specific it is (1 / number of columns holding it).
    pub score: f32,
}

impl ValueIndex {
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub(crate) fn insert(&mut self, raw: &str, location: ValueLocation) {
        let Some(key) = normalize_value(raw) else {
            return;
        };
        let entry = self.values.entry(key).or_default();
        if !entry.contains(&location) {
            entry.push(location);
        }
    }

    /// Reads distinct short text values of every column of `schema` from `conn`; table
    /// `i` of the schema is recorded as table `i + table_offset` (catalogs merge several
    /// databases into one index).
    pub fn collect(&mut self, conn: &Connection, schema: &Schema, table_offset: usize) {
        for (t, table) in schema.tables.iter().enumerate() {
            let quoted_table = quote_identifier(&table.name);
            for (c, column) in table.columns.iter().enumerate() {
                let quoted = quote_identifier(&column.name);
                let sql = format!(
                    "SELECT DISTINCT {quoted} FROM {quoted_table} WHERE typeof({quoted}) = 'text' \
                     AND length({quoted}) BETWEEN 2 AND {VALUE_MAX_CHARS} LIMIT {VALUES_PER_COLUMN}"
                );
                let Ok(mut statement) = conn.prepare(&sql) else {
                    continue;
                };
                let Ok(rows) = statement.query_map([], |row| row.get::<_, String>(0)) else {
                    continue;
                };
                let location = ValueLocation {
                    table: (t + table_offset) as u32,
                    column: c as u32,
                };
                for value in rows.flatten() {
                    self.insert(&value, location);
                }
            }
        }
    }

    /// As [`collect`](Self::collect), reading each column's values through `read`
    /// (table name, column name, longest value, how many) — for databases other than SQLite.
    pub fn collect_with(
        &mut self,
        schema: &Schema,
        table_offset: usize,
        read: &mut dyn FnMut(&str, &str, usize, usize) -> Vec<String>,
    ) {
        for (t, table) in schema.tables.iter().enumerate() {
            for (c, column) in table.columns.iter().enumerate() {
                let location = ValueLocation {
                    table: (t + table_offset) as u32,
                    column: c as u32,
                };
                for value in read(
                    &table.name,
                    &column.name,
                    VALUE_MAX_CHARS,
                    VALUES_PER_COLUMN,
                ) {
                    self.insert(&value, location);
                }
            }
        }
    }

    /// Every phrase of the question (up to six words) that is a value somewhere, longest
    /// first; a shorter phrase inside a longer match is not reported again.
    pub fn find(&self, question: &str) -> Vec<ValueMatch> {
        let words = lowercase_words(question);
        let mut covered = vec![false; words.len()];
        let mut found = Vec::new();
        for length in (1..=MAX_PHRASE_WORDS.min(words.len())).rev() {
            for start in 0..=words.len() - length {
                if covered[start..start + length].iter().all(|c| *c) {
                    continue;
                }
                let phrase = words[start..start + length].join(" ");
                if length == 1 && !worth_matching_alone(&phrase) {
                    continue;
                }
                let Some(locations) = self.values.get(&phrase) else {
                    continue;
                };
                covered[start..start + length]
                    .iter_mut()
                    .for_each(|c| *c = true);
                let score = length as f32 / locations.len() as f32;
                for location in locations {
                    found.push(ValueMatch {
                        table: location.table as usize,
                        column: location.column as usize,
                        value: phrase.clone(),
                        score,
                    });
                }
            }
        }
        found
    }
}

fn normalize_value(raw: &str) -> Option<String> {
    let words = lowercase_words(raw);
    if words.is_empty() || words.len() > MAX_PHRASE_WORDS {
        return None;
    }
    let joined = words.join(" ");
    if words.len() == 1 && !worth_matching_alone(&joined) {
        return None;
    }
    Some(joined)
}

/// A single word is a useful literal only when it is not a number, not tiny and not one
/// of the words every question uses.
fn worth_matching_alone(word: &str) -> bool {
    const COMMON: &[&str] = &[
        "the", "and", "for", "are", "was", "who", "what", "which", "how", "many", "all", "with",
        "has", "have", "name", "names", "yes", "not", "none", "other", "each", "list", "show",
        "find", "give", "number", "count", "total", "average", "most", "least", "more", "less",
        "than", "that", "this", "from", "their", "there", "whose", "return", "order", "first",
        "last", "one", "two", "three", "year", "years", "did", "does",
    ];
    word.chars().count() >= 3
        && !word.chars().all(|c| c.is_ascii_digit())
        && !COMMON.contains(&word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_multi_word_and_punctuated_values() {
        let mut index = ValueIndex::default();
        let at = |table, column| ValueLocation { table, column };
        index.insert("AC/DC", at(0, 1));
        index.insert("Brazil", at(2, 7));
        index.insert("Rock", at(3, 1));
        index.insert("Rock And Roll", at(3, 1));
        index.insert("the", at(4, 1));
        let found = index.find("Tracks by AC/DC sold in Brazil, rock and roll only");
        let values: Vec<&str> = found.iter().map(|m| m.value.as_str()).collect();
        assert_eq!(values, ["rock and roll", "ac dc", "brazil"]);
        assert_eq!(found[1].table, 0);
        assert!(index.find("the end").is_empty());
    }
}
