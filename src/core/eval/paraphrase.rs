//! The paraphrase benchmark: does a correction of one wording fix another wording of the
//! same question, and does a memory of corrections mislead questions that were right?
//!
//! Spider writes many gold queries with two or more questions. A group is one gold query
//! on one database with its first two distinct wordings: the first is corrected (its gold
//! SQL goes into the example memory, as `correct` does), the second is asked before and
//! after. Databases are split by a hash of their name into a tuning part and a held-back
//! report part, so a setting tuned on one part is reported on databases it never saw.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::core::eval::hardness::Hardness;
use crate::core::eval::{EvalItem, stratified_sample};
use crate::core::feedback::store::normalize_question;

/// One gold query with the wording that gets corrected and the wording that is asked.
#[derive(Debug, Clone, PartialEq)]
pub struct ParaphraseGroup {
    pub db_id: String,
    pub gold_sql: String,
    /// The wording whose correction goes into the memory.
    pub corrected: String,
    /// The other wording, asked before and after the corrections.
    pub asked: String,
    pub hardness: Hardness,
}

/// Which databases a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// About a third of the databases: for choosing settings.
    Tune,
    /// The rest, held back: for reporting.
    Report,
    All,
}

impl Part {
    pub fn holds(self, db_id: &str) -> bool {
        match self {
            Self::Tune => is_tuning_database(db_id),
            Self::Report => !is_tuning_database(db_id),
            Self::All => true,
        }
    }
}

/// A stable split (FNV-1a of the name, not the standard hasher, which may change between
/// Rust releases): one database in three is for tuning.
fn is_tuning_database(db_id: &str) -> bool {
    let hash = db_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    hash % 3 == 0
}

/// Gold SQL compared for "the same query": whitespace and case folded.
fn query_key(sql: &str) -> String {
    sql.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// A gold query as first written, and its distinct questions with their hardness.
type Wordings = (String, Vec<(String, Hardness)>);

/// Every gold query of `items` written with at least two different questions, in the order
/// of its first question.
pub fn paraphrase_groups(items: &[EvalItem]) -> Vec<ParaphraseGroup> {
    let mut order: Vec<(String, String)> = Vec::new();
    let mut wordings: BTreeMap<(String, String), Wordings> = BTreeMap::new();
    for item in items {
        let key = (item.db_id.clone(), query_key(&item.gold_sql));
        let entry = wordings.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            (item.gold_sql.clone(), Vec::new())
        });
        let seen = entry
            .1
            .iter()
            .any(|(q, _)| normalize_question(q) == normalize_question(&item.question));
        if !seen {
            entry.1.push((item.question.clone(), item.hardness));
        }
    }
    order
        .into_iter()
        .filter_map(|key| {
            let (gold_sql, questions) = wordings.remove(&key)?;
            let [(corrected, _), (asked, hardness), ..] = questions.as_slice() else {
                return None;
            };
            Some(ParaphraseGroup {
                db_id: key.0,
                gold_sql,
                corrected: corrected.clone(),
                asked: asked.clone(),
                hardness: *hardness,
            })
        })
        .collect()
}

/// About `size` groups of `part`, spread over its databases and hardness levels as
/// `eval --sample` spreads questions. Deterministic.
pub fn select_groups(
    groups: &[ParaphraseGroup],
    part: Part,
    size: Option<usize>,
) -> Vec<ParaphraseGroup> {
    let in_part: Vec<&ParaphraseGroup> = groups.iter().filter(|g| part.holds(&g.db_id)).collect();
    let Some(size) = size else {
        return in_part.into_iter().cloned().collect();
    };
    let as_items: Vec<EvalItem> = in_part
        .iter()
        .enumerate()
        .map(|(index, group)| EvalItem {
            index,
            db_id: group.db_id.clone(),
            question: group.asked.clone(),
            gold_sql: group.gold_sql.clone(),
            hardness: group.hardness,
        })
        .collect();
    stratified_sample(&as_items, size)
        .into_iter()
        .map(|item| in_part[item.index].clone())
        .collect()
}

/// How one asked wording fared, before and after the corrections of its database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParaphraseRecord {
    pub db_id: String,
    pub gold_sql: String,
    pub corrected_question: String,
    pub asked_question: String,
    pub before_sql: Option<String>,
    pub before_correct: bool,
    /// The rewrites and checks that fired on the queries before the corrections.
    #[serde(default)]
    pub before_rewrites: Vec<String>,
    pub after_sql: Option<String>,
    pub after_correct: bool,
    /// The rewrites and checks that fired on the queries after the corrections.
    #[serde(default)]
    pub after_rewrites: Vec<String>,
    /// The questions of the examples the model was shown after the corrections, best first.
    pub examples: Vec<String>,
    /// Whether the group's own corrected wording was among them.
    pub own_example_shown: bool,
}

/// The benchmark's figures, from the records alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParaphraseSummary {
    pub groups: usize,
    pub databases: usize,
    pub right_before: usize,
    pub right_after: usize,
    pub right_to_wrong: usize,
    pub wrong_to_right: usize,
    pub own_example_shown: usize,
}

impl ParaphraseSummary {
    pub fn of(records: &[ParaphraseRecord]) -> Self {
        let databases: std::collections::BTreeSet<&str> =
            records.iter().map(|r| r.db_id.as_str()).collect();
        let count =
            |test: &dyn Fn(&ParaphraseRecord) -> bool| records.iter().filter(|r| test(r)).count();
        Self {
            groups: records.len(),
            databases: databases.len(),
            right_before: count(&|r| r.before_correct),
            right_after: count(&|r| r.after_correct),
            right_to_wrong: count(&|r| r.before_correct && !r.after_correct),
            wrong_to_right: count(&|r| !r.before_correct && r.after_correct),
            own_example_shown: count(&|r| r.own_example_shown),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(index: usize, db: &str, question: &str, sql: &str) -> EvalItem {
        EvalItem {
            index,
            db_id: db.into(),
            question: question.into(),
            gold_sql: sql.into(),
            hardness: Hardness::Easy,
        }
    }

    #[test]
    fn a_group_needs_two_different_wordings_of_one_query_on_one_database() {
        let items = [
            item(0, "a", "How many heads?", "SELECT count(*) FROM head"),
            item(1, "a", "how many heads", "select count(*)  from head"),
            item(2, "b", "Count the heads.", "SELECT count(*) FROM head"),
            item(3, "a", "Count the heads.", "SELECT count(*) FROM head"),
            item(4, "a", "Third wording?", "SELECT count(*) FROM head"),
            item(5, "a", "Name the heads.", "SELECT name FROM head"),
        ];
        let groups = paraphrase_groups(&items);
        assert_eq!(
            groups,
            vec![ParaphraseGroup {
                db_id: "a".into(),
                gold_sql: "SELECT count(*) FROM head".into(),
                corrected: "How many heads?".into(),
                asked: "Count the heads.".into(),
                hardness: Hardness::Easy,
            }]
        );
    }

    #[test]
    fn the_split_is_stable_and_keeps_about_a_third_for_tuning() {
        let names: Vec<String> = (0..300).map(|i| format!("db_{i}")).collect();
        let tuning = names.iter().filter(|n| Part::Tune.holds(n)).count();
        assert!((70..130).contains(&tuning), "{tuning}");
        assert!(
            names
                .iter()
                .all(|n| Part::Tune.holds(n) != Part::Report.holds(n))
        );
        assert_eq!(
            is_tuning_database("concert_singer"),
            is_tuning_database("concert_singer")
        );
    }

    #[test]
    fn the_summary_counts_changes_both_ways() {
        let record = |before: bool, after: bool| ParaphraseRecord {
            db_id: "a".into(),
            gold_sql: String::new(),
            corrected_question: String::new(),
            asked_question: String::new(),
            before_sql: None,
            before_correct: before,
            before_rewrites: Vec::new(),
            after_sql: None,
            after_correct: after,
            after_rewrites: Vec::new(),
            examples: Vec::new(),
            own_example_shown: after,
        };
        let summary = ParaphraseSummary::of(&[
            record(true, true),
            record(true, false),
            record(false, true),
            record(false, true),
        ]);
        assert_eq!(
            (
                summary.right_before,
                summary.right_after,
                summary.right_to_wrong,
                summary.wrong_to_right
            ),
            (2, 3, 1, 2)
        );
    }
}
