//! Execution accuracy as Spider's test-suite evaluation computes it on one database.
//!
//! Two results match when some permutation of the predicted columns makes the rows equal:
//! as an ordered list when the gold SQL has ORDER BY, otherwise as a multiset. Integers
//! and whole reals compare equal (SQLite's `1` vs `1.0`), reals compare to 1e-9 relative.

use std::time::Duration;

use crate::core::db::compare::{gold_is_ordered, results_match};
use crate::core::db::exec::{ExecLimits, QueryResult, ReadOnlyDb};

/// Rows read when scoring: far above any Spider gold result, so nothing is cut.
const SCORING_ROW_LIMIT: usize = 1_000_000;

/// The outcome of comparing a prediction with its gold query on one database.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    Correct,
    /// Both ran; the results differ.
    Wrong,
    /// The prediction failed to run (an error or a timeout counts as wrong).
    PredictionFailed(String),
    /// The gold query itself failed: the data set or database is broken.
    GoldFailed(String),
}

impl Verdict {
    pub(crate) fn is_correct(&self) -> bool {
        matches!(self, Verdict::Correct)
    }
}

/// Runs the gold query on `gold_db` and compares the prediction's result on `db` with it
/// (`gold_db` is `db` unless `db` holds a copy of the same data). `predicted` is the
/// result the pipeline already has; it is run again here when it was cut at a row cap (or
/// missing), so that every row is compared.
pub(crate) fn score_prediction(
    (db, gold_db): (&ReadOnlyDb, &ReadOnlyDb),
    gold_sql: &str,
    predicted_sql: &str,
    predicted: Option<&QueryResult>,
    timeout: Duration,
) -> Verdict {
    let limits = ExecLimits {
        row_limit: SCORING_ROW_LIMIT,
        timeout,
        ..ExecLimits::default()
    };
    let gold = match gold_db.execute(gold_sql, limits) {
        Ok(gold) => gold,
        Err(error) => return Verdict::GoldFailed(error.to_string()),
    };
    let rerun;
    let predicted = match predicted {
        Some(result) if !result.truncated() => result,
        _ => match db.execute(predicted_sql, limits) {
            Ok(result) => {
                rerun = result;
                &rerun
            }
            Err(error) => return Verdict::PredictionFailed(error.to_string()),
        },
    };
    if predicted.truncated() {
        return Verdict::PredictionFailed("result too large to compare".into());
    }
    if results_match(&gold, predicted, gold_is_ordered(gold_sql)) {
        Verdict::Correct
    } else {
        Verdict::Wrong
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::db::exec::Cell;

    fn result(columns: &[&str], rows: Vec<Vec<Cell>>) -> QueryResult {
        QueryResult {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            total_rows: Some(rows.len() as u64),
            cut: None,
            rows,
        }
    }
    use Cell::{Integer as I, Null as N, Real as R, Text as T};

    #[test]
    fn unordered_results_match_as_multisets() {
        let gold = result(&["a"], vec![vec![I(1)], vec![I(2)], vec![I(2)]]);
        let same = result(&["x"], vec![vec![I(2)], vec![I(1)], vec![I(2)]]);
        let fewer_duplicates = result(&["x"], vec![vec![I(2)], vec![I(1)], vec![I(1)]]);
        assert!(results_match(&gold, &same, false));
        assert!(!results_match(&gold, &fewer_duplicates, false));
        assert!(
            !results_match(&gold, &same, true),
            "order matters when the gold is ordered"
        );
    }

    #[test]
    fn column_order_is_ignored() {
        let gold = result(
            &["name", "n"],
            vec![vec![T("a".into()), I(1)], vec![T("b".into()), I(2)]],
        );
        let swapped = result(
            &["n", "name"],
            vec![vec![I(1), T("a".into())], vec![I(2), T("b".into())]],
        );
        let crossed = result(
            &["n", "name"],
            vec![vec![I(2), T("a".into())], vec![I(1), T("b".into())]],
        );
        assert!(results_match(&gold, &swapped, true));
        assert!(!results_match(&gold, &crossed, false));
    }

    #[test]
    fn nulls_floats_and_widths() {
        let gold = result(&["v"], vec![vec![N], vec![R(0.1 + 0.2)], vec![I(3)]]);
        let predicted = result(&["v"], vec![vec![R(3.0)], vec![N], vec![R(0.3)]]);
        assert!(results_match(&gold, &predicted, false));
        let wider = result(
            &["v", "w"],
            vec![vec![N, N], vec![R(0.3), N], vec![I(3), N]],
        );
        assert!(!results_match(&gold, &wider, false));
        assert!(results_match(
            &result(&["v"], vec![]),
            &result(&["w"], vec![]),
            false
        ));
        assert!(!results_match(
            &result(&["v"], vec![vec![N]]),
            &result(&["v"], vec![vec![T(String::new())]]),
            false
        ));
    }

    fn scratch_db() -> (tempfile::TempDir, ReadOnlyDb) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (name TEXT, n INTEGER, x REAL);
             INSERT INTO t VALUES ('a', 1, 0.5), ('b', 2, NULL), ('b', 2, NULL), ('c', 3, 1.25);",
        )
        .unwrap();
        drop(conn);
        let db = ReadOnlyDb::open(&path).unwrap();
        (dir, db)
    }

    fn verdict(db: &ReadOnlyDb, gold: &str, predicted: &str) -> Verdict {
        score_prediction((db, db), gold, predicted, None, Duration::from_secs(5))
    }

    #[test]
    fn scores_queries_on_a_database_like_spiders_test_suite() {
        let (_dir, db) = scratch_db();
        use Verdict::*;
        // Unordered gold: any row order, any column order.
        assert_eq!(
            verdict(
                &db,
                "SELECT name, n FROM t",
                "SELECT n, name FROM t ORDER BY n DESC"
            ),
            Correct
        );
        // Ordered gold: the order must match.
        assert_eq!(
            verdict(
                &db,
                "SELECT name FROM t ORDER BY n DESC",
                "SELECT name FROM t ORDER BY n"
            ),
            Wrong
        );
        assert_eq!(
            verdict(
                &db,
                "SELECT name FROM t ORDER BY n DESC",
                "SELECT name FROM t ORDER BY n DESC, name"
            ),
            Correct
        );
        // Duplicates count: DISTINCT changes the multiset.
        assert_eq!(
            verdict(&db, "SELECT name FROM t", "SELECT DISTINCT name FROM t"),
            Wrong
        );
        // NULLs equal NULLs, not empty strings or zeros.
        assert_eq!(
            verdict(
                &db,
                "SELECT x FROM t WHERE name = 'b'",
                "SELECT NULL FROM t WHERE n = 2"
            ),
            Correct
        );
        assert_eq!(
            verdict(
                &db,
                "SELECT x FROM t WHERE name = 'b'",
                "SELECT 0 FROM t WHERE n = 2"
            ),
            Wrong
        );
        // Integers and whole reals, and float noise from a different computation.
        assert_eq!(
            verdict(&db, "SELECT sum(n) FROM t", "SELECT sum(n) * 1.0 FROM t"),
            Correct
        );
        assert_eq!(
            verdict(
                &db,
                "SELECT avg(x) FROM t",
                "SELECT sum(x) / count(x) FROM t"
            ),
            Correct
        );
        assert_eq!(
            verdict(&db, "SELECT avg(n) FROM t", "SELECT avg(n) + 0.001 FROM t"),
            Wrong
        );
        // An extra column is wrong (Spider compares whole results).
        assert_eq!(
            verdict(&db, "SELECT name FROM t", "SELECT name, n FROM t"),
            Wrong
        );
        // Errors: a failing prediction is wrong with its reason; a failing gold is reported.
        assert!(
            matches!(verdict(&db, "SELECT name FROM t", "SELECT nme FROM t"), PredictionFailed(e) if e.contains("nme"))
        );
        assert!(matches!(
            verdict(&db, "SELECT bogus FROM t", "SELECT name FROM t"),
            GoldFailed(_)
        ));
    }

    #[test]
    fn a_result_cut_at_the_row_cap_is_run_again_in_full() {
        let (_dir, db) = scratch_db();
        let limits = ExecLimits {
            row_limit: 2,
            timeout: Duration::from_secs(5),
            ..ExecLimits::default()
        };
        let cut = db.execute("SELECT name FROM t", limits).unwrap();
        assert!(cut.truncated());
        let verdict = score_prediction(
            (&db, &db),
            "SELECT name FROM t",
            "SELECT name FROM t",
            Some(&cut),
            Duration::from_secs(5),
        );
        assert_eq!(verdict, Verdict::Correct);
    }

    #[test]
    fn detects_ordered_gold() {
        assert!(gold_is_ordered("select a from t order  by a"));
        assert!(!gold_is_ordered("select a from t"));
    }
}
