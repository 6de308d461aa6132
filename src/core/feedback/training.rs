//! The retraining set: verified pairs written as JSON Lines in the exact format the model
//! sees at inference (the same system message with the schema it saw, the same question
//! turn, the reply as the pipeline expects it), deduplicated, with provenance.
//!
//! Formats: `chat` (`{"messages": [...]}`), `alpaca` (`instruction`/`input`/`output`, the
//! same three texts), `spider` (`db_id`/`question`/`query`). Every line also carries
//! `provenance` (human_correction, thumbs_up, synthetic), `database` and `fingerprint`.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::core::db::exec::ReadOnlyDb;
use crate::core::feedback::store::{
    PairSource, VerifiedPair, normalize_question, scope_of, whole_schema_text,
};
use crate::core::model::ChatMessage;
use crate::core::pipeline::extract::{SQL_FENCE_OPEN, extract_sql};
use crate::core::pipeline::prompt::{question_message, sql_reply, system_message};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// `{"messages": [system, user, assistant]}` as the chat template receives them.
    Chat,
    /// `{"instruction": system, "input": user, "output": assistant}`.
    Alpaca,
    /// `{"db_id", "question", "query"}` as in the Spider dataset.
    Spider,
}

#[derive(Debug, thiserror::Error)]
pub enum TrainingError {
    #[error("cannot write '{path}': {reason}")]
    Write { path: String, reason: String },
    #[error("'{path}' line {line}: {reason}")]
    Read {
        path: String,
        line: usize,
        reason: String,
    },
}

/// One training example, ready to render in any format.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingRecord {
    pub pair_id: i64,
    pub question: String,
    pub sql: String,
    pub source: PairSource,
    pub database: String,
    pub fingerprint: String,
    pub schema_text: String,
}

impl TrainingRecord {
    pub fn messages(&self) -> [ChatMessage; 3] {
        [
            system_message(&self.schema_text),
            question_message(&self.question, &[]),
            sql_reply(&self.sql),
        ]
    }

    pub fn db_id(&self) -> String {
        Path::new(&self.database)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.database.clone())
    }

    pub(crate) fn to_json(&self, format: ExportFormat) -> serde_json::Value {
        let provenance = self.source.provenance();
        let [system, user, assistant] = self.messages();
        let mut line = match format {
            ExportFormat::Chat => {
                let messages: Vec<serde_json::Value> = [&system, &user, &assistant]
                    .iter()
                    .map(|m| serde_json::json!({"role": m.role.as_str(), "content": m.content}))
                    .collect();
                serde_json::json!({ "messages": messages })
            }
            ExportFormat::Alpaca => serde_json::json!({
                "instruction": system.content,
                "input": user.content,
                "output": assistant.content,
            }),
            ExportFormat::Spider => serde_json::json!({
                "db_id": self.db_id(),
                "question": self.question,
                "query": self.sql,
            }),
        };
        if let Some(object) = line.as_object_mut() {
            object.insert("provenance".into(), provenance.into());
            object.insert("database".into(), self.database.clone().into());
            object.insert("fingerprint".into(), self.fingerprint.clone().into());
            object.insert("pair_id".into(), self.pair_id.into());
        }
        line
    }
}

impl std::str::FromStr for ExportFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "chat" => Ok(Self::Chat),
            "alpaca" => Ok(Self::Alpaca),
            "spider" => Ok(Self::Spider),
            other => Err(format!(
                "unknown format '{other}' (use chat, alpaca or spider)"
            )),
        }
    }
}

/// What an exported line says, read back (the round-trip check and tools use it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedPair {
    pub question: String,
    pub sql: String,
    pub provenance: String,
    pub database: String,
    /// The system message, for the chat and alpaca formats.
    pub system: Option<String>,
}

/// Records from verified pairs: one per database and question (a correction wins over a
/// thumbs-up, which wins over a synthetic pair; then the newest), each with the schema text
/// its prompt held. Pairs whose schema text is unknown get the database's current one when
/// the database is still there with the same structure, and are skipped otherwise (their
/// count is returned).
pub fn training_records(
    pairs: Vec<VerifiedPair>,
    include_synthetic: bool,
) -> (Vec<TrainingRecord>, usize) {
    let rank = |source: PairSource| match source {
        PairSource::Correction => 0,
        PairSource::ThumbsUp => 1,
        PairSource::Synthetic => 2,
    };
    let mut best: HashMap<(String, String, String), VerifiedPair> = HashMap::new();
    for pair in pairs {
        if pair.source == PairSource::Synthetic && !include_synthetic {
            continue;
        }
        let key = (
            pair.scope.path.clone(),
            pair.scope.fingerprint.clone(),
            normalize_question(&pair.question),
        );
        let replace = match best.get(&key) {
            None => true,
            Some(kept) => {
                (rank(pair.source), -pair.updated_at, -pair.id)
                    < (rank(kept.source), -kept.updated_at, -kept.id)
            }
        };
        if replace {
            best.insert(key, pair);
        }
    }
    let mut chosen: Vec<VerifiedPair> = best.into_values().collect();
    chosen.sort_by_key(|p| p.id);
    let mut current_schema: HashMap<(String, String), Option<String>> = HashMap::new();
    let mut records = Vec::with_capacity(chosen.len());
    let mut skipped = 0;
    for pair in chosen {
        let schema_text = match pair.schema_text.clone() {
            Some(text) => Some(text),
            None => current_schema
                .entry((pair.scope.path.clone(), pair.scope.fingerprint.clone()))
                .or_insert_with(|| current_schema_text(&pair.scope.path, &pair.scope.fingerprint))
                .clone(),
        };
        let Some(schema_text) = schema_text else {
            skipped += 1;
            continue;
        };
        records.push(TrainingRecord {
            pair_id: pair.id,
            question: pair.question,
            sql: pair.sql,
            source: pair.source,
            database: pair.scope.path,
            fingerprint: pair.scope.fingerprint,
            schema_text,
        });
    }
    (records, skipped)
}

fn current_schema_text(path: &str, fingerprint: &str) -> Option<String> {
    let db = ReadOnlyDb::open(Path::new(path)).ok()?;
    let scope = scope_of(&db).ok()?;
    (scope.fingerprint == fingerprint)
        .then(|| whole_schema_text(&db))
        .flatten()
}

/// Writes the records as JSON Lines to `out` (atomically: a temp file renamed into place).
pub fn write_export(
    records: &[TrainingRecord],
    format: ExportFormat,
    out: &Path,
) -> Result<(), TrainingError> {
    let write_error = |reason: String| TrainingError::Write {
        path: out.display().to_string(),
        reason,
    };
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(|e| write_error(e.to_string()))?;
    for record in records {
        let line = serde_json::to_string(&record.to_json(format))
            .map_err(|e| write_error(e.to_string()))?;
        writeln!(file, "{line}").map_err(|e| write_error(e.to_string()))?;
    }
    file.persist(out).map_err(|e| write_error(e.to_string()))?;
    Ok(())
}

/// Reads an export back, in any of the three formats.
pub fn read_export(path: &Path) -> Result<Vec<ExportedPair>, TrainingError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| TrainingError::Read {
        path: shown.clone(),
        line: 0,
        reason: e.to_string(),
    })?;
    let mut pairs = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: &str| TrainingError::Read {
            path: shown.clone(),
            line: number + 1,
            reason: reason.to_string(),
        };
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(&e.to_string()))?;
        let text_of = |key: &str| value.get(key).and_then(|v| v.as_str()).map(str::to_string);
        let (system, user, reply) =
            if let Some(messages) = value.get("messages").and_then(|m| m.as_array()) {
                let content = |i: usize| {
                    messages
                        .get(i)
                        .and_then(|m| m.get("content"))
                        .and_then(|c| c.as_str())
                        .map(str::to_string)
                };
                (content(0), content(1), content(2))
            } else if value.get("instruction").is_some() {
                (text_of("instruction"), text_of("input"), text_of("output"))
            } else {
                (None, text_of("question"), text_of("query"))
            };
        let user = user.ok_or_else(|| bad("no question"))?;
        let reply = reply.ok_or_else(|| bad("no SQL"))?;
        let question = match user.rfind("Question: ") {
            Some(at) if system.is_some() => user[at + "Question: ".len()..].to_string(),
            _ => user,
        };
        let sql = if system.is_some() {
            extract_sql(reply.strip_prefix(SQL_FENCE_OPEN).unwrap_or(&reply))
                .ok_or_else(|| bad("no SQL in the reply"))?
        } else {
            reply
        };
        pairs.push(ExportedPair {
            question,
            sql,
            provenance: text_of("provenance").unwrap_or_default(),
            database: text_of("database").unwrap_or_default(),
            system,
        });
    }
    Ok(pairs)
}
