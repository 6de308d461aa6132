//! Self-consistency: several candidate queries for one question, executed, and the result
//! most of them agree on wins.
//!
//! Candidates that fail (guard refusal, SQLite error, timeout) do not vote. Results are
//! grouped by value, ignoring row order and column names; the largest group wins and a tie
//! goes to the group holding the earliest candidate (the greedy one comes first), so with
//! no agreement at all the greedy query is kept.

use std::collections::HashMap;

use crate::core::db::compare::result_key;
use crate::core::db::exec::QueryResult;

/// The index of the winning candidate, or `None` when none ran.
pub(crate) fn pick_by_vote(results: &[Option<&QueryResult>]) -> Option<usize> {
    tally_vote(results).map(|(winner, _)| winner)
}

/// The index of the winning candidate and how many candidates returned its result.
pub(crate) fn tally_vote(results: &[Option<&QueryResult>]) -> Option<(usize, usize)> {
    let mut groups: HashMap<String, (usize, usize)> = HashMap::new();
    for (index, result) in results.iter().enumerate() {
        if let Some(result) = result {
            let entry = groups.entry(result_key(result)).or_insert((0, index));
            entry.0 += 1;
        }
    }
    groups
        .into_values()
        .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
        .map(|(count, first)| (first, count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::db::exec::Cell;

    fn rows(values: &[i64]) -> QueryResult {
        QueryResult {
            columns: vec!["v".into()],
            rows: values.iter().map(|v| vec![Cell::Integer(*v)]).collect(),
            total_rows: Some(values.len() as u64),
            cut: None,
        }
    }

    #[test]
    fn majority_result_wins_and_ties_keep_the_earliest() {
        let a = rows(&[1, 2]);
        let a_reordered = rows(&[2, 1]);
        let b = rows(&[3]);
        assert_eq!(
            pick_by_vote(&[Some(&b), Some(&a), None, Some(&a_reordered)]),
            Some(1)
        );
        assert_eq!(pick_by_vote(&[Some(&b), Some(&a)]), Some(0));
        assert_eq!(pick_by_vote(&[None, Some(&a)]), Some(1));
        assert_eq!(pick_by_vote(&[None, None]), None);
        assert_eq!(
            tally_vote(&[Some(&b), Some(&a), None, Some(&a_reordered)]),
            Some((1, 2))
        );
    }
}
