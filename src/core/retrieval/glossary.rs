//! The user's glossary: term -> definition, from a JSON or TOML file. Definitions may
//! name tables or columns; matching entries go into the prompt, and the tables they name
//! get the `glossary` signal in retrieval.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::core::retrieval::provider::GlossaryEntry;

#[derive(Debug, thiserror::Error)]
pub enum GlossaryError {
    #[error("cannot read glossary '{path}': {reason}")]
    Read { path: String, reason: String },
    #[error(
        "invalid glossary '{path}': {reason} (expected a JSON or TOML table of term = \"definition\")"
    )]
    Invalid { path: String, reason: String },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Glossary {
    pub entries: Vec<GlossaryEntry>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum GlossaryFile {
    Map(BTreeMap<String, String>),
    List(Vec<ListedEntry>),
}

#[derive(Deserialize)]
struct ListedEntry {
    term: String,
    definition: String,
}

impl Glossary {
    /// Reads `path`: `.json` as JSON, anything else as TOML (JSON is tried first when the
    /// text starts with `{` or `[`).
    pub fn load(path: &Path) -> Result<Self, GlossaryError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| GlossaryError::Read {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        Self::parse(&text).map_err(|reason| GlossaryError::Invalid {
            path: shown,
            reason,
        })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim_start();
        let parsed: GlossaryFile = if trimmed.starts_with('{') || trimmed.starts_with('[') {
            serde_json::from_str(text).map_err(|e| e.to_string())?
        } else {
            let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
                e.to_string().lines().next().unwrap_or_default().to_string()
            })?;
            let mut map = BTreeMap::new();
            for (term, value) in table {
                match value {
                    toml::Value::String(definition) => {
                        map.insert(term, definition);
                    }
                    other => {
                        return Err(format!(
                            "the definition of '{term}' is a {}, not a string",
                            other.type_str()
                        ));
                    }
                }
            }
            GlossaryFile::Map(map)
        };
        let entries = match parsed {
            GlossaryFile::Map(map) => map
                .into_iter()
                .map(|(term, definition)| GlossaryEntry { term, definition })
                .collect(),
            GlossaryFile::List(list) => list
                .into_iter()
                .map(|e| GlossaryEntry {
                    term: e.term,
                    definition: e.definition,
                })
                .collect(),
        };
        Ok(Self { entries })
    }

    /// Part of the index cache key: a changed glossary re-indexes.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        hash_entries(&mut hasher, &self.entries);
        hex::encode(&hasher.finalize()[..8])
    }
}

/// Feeds glossary entries to a hash, so every cache key that depends on them agrees.
pub(crate) fn hash_entries(hasher: &mut Sha256, entries: &[GlossaryEntry]) {
    for entry in entries {
        hasher.update(entry.term.as_bytes());
        hasher.update([0]);
        hasher.update(entry.definition.as_bytes());
        hasher.update([1]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_json_and_toml() {
        let json =
            Glossary::parse(r#"{"big spender": "a Customer whose Invoice totals exceed 40"}"#)
                .unwrap();
        assert_eq!(json.entries[0].term, "big spender");
        let toml = Glossary::parse("\"big spender\" = \"a Customer with large Invoice totals\"\nchurn = \"no Invoice in a year\"\n").unwrap();
        assert_eq!(toml.entries.len(), 2);
        let list = Glossary::parse(r#"[{"term": "x", "definition": "y"}]"#).unwrap();
        assert_eq!(list.entries[0].definition, "y");
        assert!(Glossary::parse("x = 3").unwrap_err().contains("'x'"));
    }
}
