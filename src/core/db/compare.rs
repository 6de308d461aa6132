//! When two query results are the same answer: some permutation of the columns makes the
//! rows equal, as an ordered list or as a multiset. Integers and whole reals compare equal
//! (SQLite's `1` vs `1.0`); reals compare to 10 significant digits. Used by scoring and by
//! voting among candidate queries.

use std::collections::HashMap;

use crate::core::db::exec::{Cell, QueryResult};

/// A key equal for results with the same rows (any order) and the same width.
pub(crate) fn result_key(result: &QueryResult) -> String {
    let mut rows: Vec<String> = result
        .rows
        .iter()
        .map(|row| row.iter().map(cell_key).collect::<Vec<_>>().join("\u{1f}"))
        .collect();
    rows.sort_unstable();
    format!(
        "{}|{}|{}",
        result.columns.len(),
        result.total_rows.unwrap_or(u64::MAX),
        rows.join("\u{1e}")
    )
}

pub fn results_match(gold: &QueryResult, predicted: &QueryResult, ordered: bool) -> bool {
    rows_match(
        &gold.rows,
        gold.columns.len(),
        &predicted.rows,
        predicted.columns.len(),
        ordered,
    )
}

pub(crate) fn rows_match(
    gold: &[Vec<Cell>],
    gold_width: usize,
    predicted: &[Vec<Cell>],
    predicted_width: usize,
    ordered: bool,
) -> bool {
    if gold.len() != predicted.len() || gold_width != predicted_width {
        return false;
    }
    if gold.is_empty() {
        return true;
    }
    let gold_keys: Vec<Vec<String>> = gold
        .iter()
        .map(|r| r.iter().map(cell_key).collect())
        .collect();
    let predicted_keys: Vec<Vec<String>> = predicted
        .iter()
        .map(|r| r.iter().map(cell_key).collect())
        .collect();

    // Candidate columns per gold column: those holding the same multiset of values.
    let column_signature = |rows: &[Vec<String>], column: usize| {
        let mut values: Vec<&str> = rows.iter().map(|r| r[column].as_str()).collect();
        values.sort_unstable();
        values.join("\u{1}")
    };
    let candidates: Vec<Vec<usize>> = (0..gold_width)
        .map(|g| {
            let wanted = column_signature(&gold_keys, g);
            (0..predicted_width)
                .filter(|&p| column_signature(&predicted_keys, p) == wanted)
                .collect()
        })
        .collect();
    if candidates.iter().any(Vec::is_empty) {
        return false;
    }
    let mut permutation = Vec::with_capacity(gold_width);
    let mut used = vec![false; predicted_width];
    search_permutation(&candidates, &mut permutation, &mut used, &mut |perm| {
        compare_under(&gold_keys, &predicted_keys, perm, ordered)
    })
}

fn search_permutation(
    candidates: &[Vec<usize>],
    permutation: &mut Vec<usize>,
    used: &mut [bool],
    check: &mut dyn FnMut(&[usize]) -> bool,
) -> bool {
    let depth = permutation.len();
    if depth == candidates.len() {
        return check(permutation);
    }
    for &column in &candidates[depth] {
        if used[column] {
            continue;
        }
        used[column] = true;
        permutation.push(column);
        if search_permutation(candidates, permutation, used, check) {
            return true;
        }
        permutation.pop();
        used[column] = false;
    }
    false
}

fn compare_under(
    gold: &[Vec<String>],
    predicted: &[Vec<String>],
    permutation: &[usize],
    ordered: bool,
) -> bool {
    let reorder = |row: &Vec<String>| -> Vec<String> {
        permutation.iter().map(|&p| row[p].clone()).collect()
    };
    if ordered {
        return gold.iter().zip(predicted).all(|(g, p)| *g == reorder(p));
    }
    let mut counts: HashMap<Vec<String>, i64> = HashMap::new();
    for row in gold {
        *counts.entry(row.clone()).or_default() += 1;
    }
    for row in predicted {
        let entry = counts.entry(reorder(row)).or_default();
        *entry -= 1;
        if *entry < 0 {
            return false;
        }
    }
    true
}

/// A canonical text form: equal keys mean equal values for scoring purposes.
pub fn cell_key(cell: &Cell) -> String {
    match cell {
        Cell::Null => "n:".into(),
        Cell::Integer(value) => format!("r:{value}"),
        Cell::Real(value) => real_key(*value),
        Cell::Text(value) => format!("t:{value}"),
        Cell::Blob(bytes) => format!("b:{}", hex::encode(bytes)),
    }
}

fn real_key(value: f64) -> String {
    if value.is_finite() && value.fract() == 0.0 && value.abs() < 9.0e15 {
        format!("r:{}", value as i64)
    } else if value.is_finite() {
        // 10 significant digits absorbs summation-order noise between equivalent queries.
        format!("r:{value:.9e}")
    } else {
        format!("r:{value}")
    }
}

/// Whether a reference query fixes the row order (then rows compare as a list).
pub fn gold_is_ordered(gold_sql: &str) -> bool {
    let upper = gold_sql.to_ascii_uppercase();
    let normalized: String = upper.split_whitespace().collect::<Vec<_>>().join(" ");
    normalized.contains("ORDER BY")
}
