//! Fine-tuning's pure parts: which verified pairs train and which are held out, what one
//! training example says, how windows are sized, and the gate that decides whether a
//! candidate model replaces the base; [`registry`] keeps the trained versions.
//!
//! Invariants:
//! - The split is deterministic and keeps every pair with the same SQL (paraphrases of one
//!   question) on one side, so a held-out question is never answered by a training pair
//!   with the same query.
//! - A training example is the inference prompt (system message with the schema, question
//!   turn, the reply as the pipeline expects it); its schema is the compact subset of the
//!   tables the SQL names, which keeps windows short. Examples are packed whole into
//!   fixed windows; none is ever cut.
//! - The gate accepts only when held-out EX rises and general EX drops by at most
//!   [`GENERAL_TOLERANCE_POINTS`].

pub mod registry;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::core::db::render::{RenderOptions, render_schema};
use crate::core::db::schema::Schema;
use crate::core::model::ChatMessage;
use crate::core::pipeline::extract::SQL_FENCE_OPEN;
use crate::core::pipeline::prompt::{question_message, sql_reply, system_message};

/// How far general EX may fall (in percentage points) for a candidate to pass.
/// Fewer verified pairs than this cannot be split into halves worth training and judging:
/// `train run` refuses, so the app does not offer it either.
pub const MIN_TRAINING_PAIRS: usize = 4;

pub(crate) const GENERAL_TOLERANCE_POINTS: f64 = 1.0;

/// A verified question/SQL pair and the database it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FinetunePair {
    pub question: String,
    pub sql: String,
    pub database: PathBuf,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Split {
    pub train: Vec<FinetunePair>,
    pub held_out: Vec<FinetunePair>,
}

/// SQL compared for grouping: lower case, single spaces, no trailing semicolon.
pub(crate) fn normalized_sql(sql: &str) -> String {
    sql.trim()
        .trim_end_matches(';')
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// FNV-1a: a stable hash (the standard library's is randomised per process).
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Splits pairs in two halves: pairs are grouped by database and normalised SQL, groups are
/// ordered by a stable hash, and each goes to the side that has fewer pairs so far (the
/// training side on ties). Order within each side follows the input.
pub(crate) fn split_pairs(pairs: Vec<FinetunePair>) -> Split {
    let mut groups: Vec<(u64, Vec<usize>)> = Vec::new();
    let mut key_of_group: std::collections::HashMap<String, usize> = Default::default();
    for (index, pair) in pairs.iter().enumerate() {
        let key = format!("{}\n{}", pair.database.display(), normalized_sql(&pair.sql));
        match key_of_group.get(&key) {
            Some(&group) => groups[group].1.push(index),
            None => {
                key_of_group.insert(key.clone(), groups.len());
                groups.push((stable_hash(&key), vec![index]));
            }
        }
    }
    groups.sort_by_key(|(hash, members)| (*hash, members[0]));
    let mut side_of = vec![false; pairs.len()];
    let (mut train_count, mut held_count) = (0usize, 0usize);
    for (_, members) in &groups {
        let held = held_count < train_count;
        for &index in members {
            side_of[index] = held;
        }
        if held {
            held_count += members.len();
        } else {
            train_count += members.len();
        }
    }
    let mut split = Split::default();
    for (pair, held) in pairs.into_iter().zip(side_of) {
        if held {
            split.held_out.push(pair);
        } else {
            split.train.push(pair);
        }
    }
    split
}

/// The tables `sql` names, in schema order (whole identifiers, case-insensitive).
pub(crate) fn tables_in_sql(sql: &str, schema: &Schema) -> Vec<String> {
    let words: Vec<String> = sql
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let quoted: Vec<String> = sql
        .split(['"', '`', '[', ']'])
        .skip(1)
        .step_by(2)
        .map(str::to_lowercase)
        .collect();
    schema
        .tables
        .iter()
        .filter(|t| {
            let name = t.name.to_lowercase();
            words.contains(&name) || quoted.contains(&name)
        })
        .map(|t| t.name.clone())
        .collect()
}

/// The reply text and the assistant prefix the pipeline would have written before it: the
/// pipeline opens the SQL block and starts the query with `sql_opening` ("SELECT "), so a
/// query that starts that way (in any case) is written with exactly that opening.
pub(crate) fn reply_and_prefix(sql: &str, sql_opening: &str) -> (String, String) {
    let sql = sql.trim().trim_end_matches(';').trim_end();
    let opening = sql_opening.trim_end();
    let starts = !opening.is_empty()
        && sql.len() > opening.len()
        && sql.is_char_boundary(opening.len())
        && sql[..opening.len()].eq_ignore_ascii_case(opening)
        && sql[opening.len()..].starts_with(char::is_whitespace);
    if starts {
        let rest = sql[opening.len()..].trim_start();
        (
            format!("{sql_opening}{rest}"),
            format!("{SQL_FENCE_OPEN}{sql_opening}"),
        )
    } else {
        (sql.to_string(), SQL_FENCE_OPEN.to_string())
    }
}

/// One training example: the messages and the assistant prefix the engine tokenises it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub messages: [ChatMessage; 3],
    pub assistant_prefix: String,
}

/// The example for `pair`: the system message with the compact schema of the tables its
/// SQL names (the whole schema when it names none), the question turn, the SQL reply.
pub(crate) fn example_for(
    pair: &FinetunePair,
    schema: &Schema,
    render: RenderOptions,
    sql_opening: &str,
) -> Example {
    let tables = tables_in_sql(&pair.sql, schema);
    let only = (!tables.is_empty()).then_some(tables.as_slice());
    let schema_text = render_schema(schema, only, render);
    let (reply, assistant_prefix) = reply_and_prefix(&pair.sql, sql_opening);
    Example {
        messages: [
            system_message(&schema_text),
            question_message(&pair.question, &[]),
            sql_reply(&reply),
        ],
        assistant_prefix,
    }
}

/// The smallest multiple of `granule` that holds `longest` tokens plus the label shift,
/// capped at `max_window`.
pub(crate) fn window_for(longest: usize, granule: u32, max_window: u32) -> u32 {
    let needed = u32::try_from(longest + 1).unwrap_or(u32::MAX);
    (needed.div_ceil(granule) * granule).clamp(granule, max_window.max(granule))
}

/// A tokenised training example: its ids, and where the reply starts (the ids after the
/// assistant prefix the pipeline writes itself, which are the ones the model should learn).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenizedExample {
    pub tokens: Vec<i32>,
    pub reply_start: usize,
}

/// `window + 1` packed ids and, for each, whether it belongs to a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Window {
    pub tokens: Vec<i32>,
    pub reply: Vec<bool>,
}

impl Window {
    fn extend(&mut self, example: &TokenizedExample, len: usize) {
        self.tokens.extend_from_slice(&example.tokens[..len]);
        self.reply
            .extend((0..len).map(|position| position >= example.reply_start));
    }

    /// The label of each of the `window` input positions: the next id where that id is part
    /// of a reply (or everywhere, without `prompt_predictions`), and elsewhere the id the
    /// base model itself predicts there. llama.cpp's cross-entropy has no ignore label and
    /// an all-zero label row still pushes the logits down, so this is how prompt positions
    /// are kept from teaching the model our prompt text: their targets are what it already
    /// predicts, which leaves only its own uncertainty as gradient.
    pub fn labels(&self, prompt_predictions: Option<&[i32]>) -> Vec<i32> {
        let inputs = self.tokens.len().saturating_sub(1);
        (0..inputs)
            .map(|position| match prompt_predictions {
                Some(predicted) if !self.reply[position + 1] => predicted
                    .get(position)
                    .copied()
                    .unwrap_or(self.tokens[position + 1]),
                _ => self.tokens[position + 1],
            })
            .collect()
    }

    /// How many labels come from a reply.
    pub(crate) fn reply_labels(&self) -> usize {
        self.reply.iter().skip(1).filter(|r| **r).count()
    }
}

/// Packs examples into windows of `window + 1` ids (inputs and shifted labels): each
/// window holds whole examples one after another, in order, as many as fit (first fit);
/// the rest of a window is filled with the start of other examples (the next ones in order,
/// cut at the window's end), never with padding. A run of pad tokens would teach the model
/// to repeat its last token (measured: it made the fine-tuned model loop). Packing also
/// spends the steps on examples rather than padding.
/// Returns the windows and how many examples were too long for any window.
pub(crate) fn pack_windows(examples: &[TokenizedExample], window: usize) -> (Vec<Window>, usize) {
    let capacity = window + 1;
    let fitting: Vec<&TokenizedExample> = examples
        .iter()
        .filter(|e| !e.tokens.is_empty() && e.tokens.len() <= capacity)
        .collect();
    let too_long = examples
        .iter()
        .filter(|e| e.tokens.len() > capacity)
        .count();
    let mut windows: Vec<Window> = Vec::new();
    for example in &fitting {
        let len = example.tokens.len();
        match windows
            .iter_mut()
            .find(|w| w.tokens.len() + len <= capacity)
        {
            Some(open) => open.extend(example, len),
            None => {
                let mut fresh = Window {
                    tokens: Vec::with_capacity(capacity),
                    reply: Vec::with_capacity(capacity),
                };
                fresh.extend(example, len);
                windows.push(fresh);
            }
        }
    }
    for (number, w) in windows.iter_mut().enumerate() {
        let mut next = number;
        while w.tokens.len() < capacity {
            next = (next + 1) % fitting.len();
            let room = capacity - w.tokens.len();
            let filler = fitting[next];
            w.extend(filler, filler.tokens.len().min(room));
        }
    }
    (windows, too_long)
}

/// The order windows are visited in one epoch: a deterministic shuffle per epoch.
pub(crate) fn epoch_order(count: usize, epoch: u32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..count).collect();
    let mut state = stable_hash(&format!("epoch {epoch}")) | 1;
    for i in (1..order.len()).rev() {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let random = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let j = usize::try_from(random % (i as u64 + 1)).unwrap_or(0);
        order.swap(i, j);
    }
    order
}

/// Correct answers out of a number of questions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Score {
    pub correct: usize,
    pub total: usize,
}

impl Score {
    pub(crate) fn percent(self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            100.0 * self.correct as f64 / self.total as f64
        }
    }

    pub(crate) fn plus(self, other: Score) -> Score {
        Score {
            correct: self.correct + other.correct,
            total: self.total + other.total,
        }
    }
}

impl std::fmt::Display for Score {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1}% ({}/{})",
            self.percent(),
            self.correct,
            self.total
        )
    }
}

/// Base and candidate on one question set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Comparison {
    pub base: Score,
    pub candidate: Score,
}

impl Comparison {
    pub(crate) fn change_points(&self) -> f64 {
        self.candidate.percent() - self.base.percent()
    }
}

impl std::fmt::Display for Comparison {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.base.total == 0 && self.candidate.total == 0 {
            return f.write_str("not evaluated");
        }
        write!(
            f,
            "{} -> {} ({:+.1} points)",
            self.base,
            self.candidate,
            self.change_points()
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateDecision {
    pub passed: bool,
    pub reason: String,
}

/// Accept only if held-out EX rises and general EX drops by at most
/// [`GENERAL_TOLERANCE_POINTS`].
pub fn gate(held_out: Comparison, general: Comparison) -> GateDecision {
    let rises = held_out.total_matches() && held_out.change_points() > 1e-9;
    let general_drop = -general.change_points();
    let keeps = general_drop <= GENERAL_TOLERANCE_POINTS + 1e-9;
    let reason = match (rises, keeps) {
        (true, true) => format!(
            "held-out EX rose {:+.1} points and general EX changed {:+.1} points",
            held_out.change_points(),
            general.change_points()
        ),
        (false, _) if held_out.base.total == 0 => "no held-out questions to judge by".into(),
        (false, _) => format!(
            "held-out EX did not rise ({:+.1} points)",
            held_out.change_points()
        ),
        (true, false) => format!(
            "general EX fell {general_drop:.1} points (at most {GENERAL_TOLERANCE_POINTS:.0} allowed)"
        ),
    };
    GateDecision {
        passed: rises && keeps,
        reason,
    }
}

impl Comparison {
    fn total_matches(&self) -> bool {
        self.base.total > 0 && self.base.total == self.candidate.total
    }
}

/// One line of `train run --progress json` (the terminal app reads them from its child
/// process); see `commands::train_progress`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TrainingEvent {
    Phase {
        phase: String,
        detail: String,
    },
    Step {
        epoch: u32,
        epochs: u32,
        step: usize,
        steps: usize,
        loss: f64,
        tokens_per_s: f64,
        eta_s: u64,
    },
    Done {
        id: String,
        passed: bool,
        reason: String,
        held_out: Comparison,
        general: Comparison,
    },
    Error {
        message: String,
    },
}

impl TrainingEvent {
    pub fn done(
        id: &str,
        decision: &GateDecision,
        held_out: Comparison,
        general: Comparison,
    ) -> Self {
        TrainingEvent::Done {
            id: id.to_string(),
            passed: decision.passed,
            reason: decision.reason.clone(),
            held_out,
            general,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(question: &str, sql: &str) -> FinetunePair {
        FinetunePair {
            question: question.into(),
            sql: sql.into(),
            database: PathBuf::from("/db/chinook.db"),
        }
    }

    #[test]
    fn paraphrases_stay_on_one_side_and_the_halves_balance() {
        let mut pairs = Vec::new();
        for i in 0..20 {
            pairs.push(pair(&format!("q{i} a"), &format!("SELECT {i} FROM t")));
            pairs.push(pair(&format!("q{i} b"), &format!("select {i}  from t;")));
        }
        let split = split_pairs(pairs.clone());
        assert_eq!(split.train.len() + split.held_out.len(), 40);
        assert!(split.train.len().abs_diff(split.held_out.len()) <= 2);
        for held in &split.held_out {
            let key = normalized_sql(&held.sql);
            assert!(split.train.iter().all(|t| normalized_sql(&t.sql) != key));
        }
        assert_eq!(split_pairs(pairs), split, "deterministic");
    }

    #[test]
    fn replies_start_the_way_the_pipeline_starts_them() {
        assert_eq!(
            reply_and_prefix("select count(*) FROM ALBUM;", "SELECT "),
            (
                "SELECT count(*) FROM ALBUM".to_string(),
                "```sql\nSELECT ".to_string()
            )
        );
        assert_eq!(
            reply_and_prefix("WITH x AS (SELECT 1) SELECT * FROM x", "SELECT "),
            (
                "WITH x AS (SELECT 1) SELECT * FROM x".to_string(),
                "```sql\n".to_string()
            )
        );
        assert_eq!(reply_and_prefix("SELECTION", "SELECT ").1, "```sql\n");
    }

    #[test]
    fn windows_round_up_to_the_granule_and_pack_examples() {
        assert_eq!(window_for(100, 256, 512), 256);
        assert_eq!(window_for(255, 256, 512), 256);
        assert_eq!(window_for(256, 256, 512), 512);
        assert_eq!(window_for(2000, 256, 512), 512);
        let example = |tokens: Vec<i32>, reply_start: usize| TokenizedExample {
            tokens,
            reply_start,
        };
        let examples = vec![
            example(vec![1, 2, 3], 2),
            example(vec![4, 5, 6, 7, 8, 9], 4),
            example(vec![7; 7], 1),
            example(vec![8, 8], 1),
        ];
        let (windows, too_long) = pack_windows(&examples, 5);
        assert_eq!(
            too_long, 1,
            "seven ids do not fit a 5-token window (6 with the label)"
        );
        let ids: Vec<Vec<i32>> = windows.iter().map(|w| w.tokens.clone()).collect();
        assert_eq!(
            ids,
            vec![vec![1, 2, 3, 8, 8, 4], vec![4, 5, 6, 7, 8, 9]],
            "first fit; the rest is the start of the next example, not padding"
        );
        assert_eq!(
            windows[0].reply,
            vec![false, false, true, false, true, false],
            "reply ids are marked per example, the filler's too"
        );
        assert_eq!(windows[0].reply_labels(), 2);
        let single = pack_windows(&[example(vec![1, 2], 1)], 3).0;
        assert_eq!(single[0].tokens, vec![1, 2, 1, 2]);
    }

    #[test]
    fn prompt_positions_take_the_base_prediction_and_replies_the_text() {
        let window = Window {
            tokens: vec![10, 11, 12, 13, 14],
            reply: vec![false, false, true, true, false],
        };
        assert_eq!(
            window.labels(None),
            vec![11, 12, 13, 14],
            "plain next-token labels"
        );
        assert_eq!(
            window.labels(Some(&[90, 91, 92, 93])),
            vec![90, 12, 13, 93],
            "positions whose next id is a reply id learn it; the rest keep the prediction"
        );
    }

    #[test]
    fn epoch_orders_are_permutations_that_differ_between_epochs() {
        let first = epoch_order(30, 0);
        let second = epoch_order(30, 1);
        let mut sorted = first.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..30).collect::<Vec<_>>());
        assert_ne!(first, second);
        assert_eq!(first, epoch_order(30, 0));
    }

    fn score(correct: usize, total: usize) -> Score {
        Score { correct, total }
    }

    #[test]
    fn the_gate_wants_a_held_out_gain_and_no_general_loss() {
        let held = |b, c| Comparison {
            base: score(b, 40),
            candidate: score(c, 40),
        };
        let general = |b, c| Comparison {
            base: score(b, 100),
            candidate: score(c, 100),
        };
        assert!(gate(held(20, 25), general(70, 69)).passed);
        assert!(gate(held(20, 25), general(70, 70)).passed);
        let fell = gate(held(20, 25), general(70, 68));
        assert!(!fell.passed);
        assert!(
            fell.reason.contains("general EX fell 2.0 points"),
            "{}",
            fell.reason
        );
        let flat = gate(held(20, 20), general(70, 75));
        assert!(!flat.passed);
        assert!(flat.reason.contains("did not rise"), "{}", flat.reason);
    }

    #[test]
    fn examples_hold_only_the_tables_the_sql_names() {
        let db = crate::core::db::exec::ReadOnlyDb::open(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_dbs/chinook.db"),
        )
        .unwrap();
        let schema = db.introspect().unwrap();
        let example = example_for(
            &pair(
                "How many tracks are in the Rock genre?",
                "SELECT count(*) FROM GENRE AS T1 JOIN TRACK AS T2 ON T1.GenreId = T2.GenreId WHERE T1.Name = 'Rock'",
            ),
            &schema,
            RenderOptions::default(),
            "SELECT ",
        );
        assert_eq!(
            tables_in_sql("SELECT * FROM GENRE JOIN TRACK", &schema),
            vec!["Genre", "Track"]
        );
        let system = &example.messages[0].content;
        assert!(system.contains("CREATE TABLE Genre"), "{system}");
        assert!(system.contains("CREATE TABLE Track"));
        assert!(!system.contains("CREATE TABLE Invoice"));
        assert!(
            example.messages[2]
                .content
                .starts_with("```sql\nSELECT count(*)")
        );
        assert_eq!(example.assistant_prefix, "```sql\nSELECT ");
    }
}
