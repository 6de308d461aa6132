//! The results grid's behaviour (pure): which rows show in which order (a sort on one
//! column, cycling ascending / descending / off, and a search that keeps matching rows),
//! per-column number formats, the chart's value and label columns, and "load more" past
//! the row cap.

use std::cmp::Ordering;

use crate::core::db::exec::{Cell, QueryResult, group_thousands};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    Ascending,
    Descending,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ChartKind {
    #[default]
    Bar,
    /// A line over the rows in label order (a time series when the label is a date).
    Line,
}

/// The grid's cursor, sort, search and chart choices. `row` is a position among the shown
/// rows ([`shown_rows`]), not an index into the result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultsState {
    pub row: usize,
    pub column: usize,
    pub chart: bool,
    pub sort: Option<(usize, SortOrder)>,
    /// Rows whose cells contain this text (case-insensitive) are shown; empty: all.
    pub filter: String,
    /// The search line is taking keys.
    pub searching: bool,
    pub chart_value: Option<usize>,
    pub chart_label: Option<usize>,
    pub chart_kind: ChartKind,
}

impl ResultsState {
    /// `s` on the selected column: ascending, then descending, then the query's order.
    pub(crate) fn cycle_sort(&mut self) {
        let column = self.column;
        self.sort = match self.sort {
            Some((c, SortOrder::Ascending)) if c == column => Some((c, SortOrder::Descending)),
            Some((c, SortOrder::Descending)) if c == column => None,
            _ => Some((column, SortOrder::Ascending)),
        };
        self.row = 0;
    }
}

/// Indexes of the result's rows to show, in order: filtered by the search, then sorted
/// (stably, so ties keep the query's order).
pub fn shown_rows(result: &QueryResult, state: &ResultsState) -> Vec<usize> {
    let needle = state.filter.trim().to_lowercase();
    let mut rows: Vec<usize> = (0..result.rows.len())
        .filter(|&i| {
            needle.is_empty()
                || result.rows[i]
                    .iter()
                    .any(|cell| cell.to_string().to_lowercase().contains(&needle))
        })
        .collect();
    if let Some((column, order)) = state.sort {
        rows.sort_by(|&a, &b| {
            let ordering = compare(result.rows[a].get(column), result.rows[b].get(column));
            match order {
                SortOrder::Ascending => ordering,
                SortOrder::Descending => ordering.reverse(),
            }
        });
    }
    rows
}

/// NULLs first, then numbers by value, then text (case-insensitive), then blobs by size.
fn compare(a: Option<&Cell>, b: Option<&Cell>) -> Ordering {
    fn rank(cell: Option<&Cell>) -> u8 {
        match cell {
            None | Some(Cell::Null) => 0,
            Some(Cell::Integer(_) | Cell::Real(_)) => 1,
            Some(Cell::Text(_)) => 2,
            Some(Cell::Blob(_)) => 3,
        }
    }
    match (a, b) {
        (Some(Cell::Text(x)), Some(Cell::Text(y))) => x.to_lowercase().cmp(&y.to_lowercase()),
        (Some(Cell::Blob(x)), Some(Cell::Blob(y))) => x.len().cmp(&y.len()),
        (Some(x), Some(y)) if rank(a) == 1 && rank(b) == 1 => {
            number(x).partial_cmp(&number(y)).unwrap_or(Ordering::Equal)
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

pub(crate) fn number(cell: &Cell) -> f64 {
    match cell {
        Cell::Integer(v) => *v as f64,
        Cell::Real(v) => *v,
        _ => 0.0,
    }
}

/// Most decimals a float column shows.
const MAX_DECIMALS: usize = 2;

/// How a column's numbers are written: every float in a column with the same decimals
/// (the fewest that show its values, at most [`MAX_DECIMALS`]), thousands separators
/// when configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumberFormat {
    pub decimals: usize,
    pub thousands: bool,
}

impl NumberFormat {
    pub fn for_column(result: &QueryResult, column: usize, thousands: bool) -> Self {
        let decimals = result
            .rows
            .iter()
            .filter_map(|row| match row.get(column) {
                Some(Cell::Real(v)) => Some(decimals_of(*v)),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        Self {
            decimals,
            thousands,
        }
    }

    /// The cell as the grid shows it; `None` for cells that are not numbers.
    pub fn format(&self, cell: &Cell) -> Option<String> {
        let text = match cell {
            Cell::Integer(v) if self.decimals == 0 => v.to_string(),
            Cell::Integer(v) => format!("{:.*}", self.decimals, *v as f64),
            Cell::Real(v) if !v.is_finite() => return Some(v.to_string()),
            Cell::Real(v) => format!("{:.*}", self.decimals, v),
            _ => return None,
        };
        Some(if self.thousands {
            group_thousands(&text)
        } else {
            text
        })
    }
}

fn decimals_of(value: f64) -> usize {
    if !value.is_finite() {
        return 0;
    }
    let text = format!("{:.*}", MAX_DECIMALS, value);
    let fraction = text.split('.').nth(1).unwrap_or("");
    fraction.trim_end_matches('0').len()
}

fn is_numeric(result: &QueryResult, column: usize) -> bool {
    result.rows.iter().all(|r| {
        matches!(
            r.get(column),
            Some(Cell::Integer(_) | Cell::Real(_) | Cell::Null)
        )
    })
}

/// The chart's (label, value) columns: the ones chosen, else a text column and the last
/// numeric one.
pub fn chart_columns(result: &QueryResult, state: &ResultsState) -> Option<(usize, usize)> {
    if result.rows.is_empty() {
        return None;
    }
    let columns = result.columns.len();
    let value = state
        .chart_value
        .filter(|&c| c < columns && is_numeric(result, c))
        .or_else(|| (0..columns).rev().find(|&c| is_numeric(result, c)))?;
    let label = state
        .chart_label
        .filter(|&c| c < columns && c != value)
        .or_else(|| (0..columns).find(|&c| c != value && !is_numeric(result, c)))
        .or_else(|| (0..columns).find(|&c| c != value))?;
    Some((label, value))
}

/// Whether a column holds dates ("2013-01-05", "2013-01-05 10:00:00", "2013-01"): a line
/// chart over it is a time series, in date order.
pub fn is_date_column(result: &QueryResult, column: usize) -> bool {
    let looks_like_date = |text: &str| {
        let bytes = text.as_bytes();
        bytes.len() >= 7
            && bytes[..4].iter().all(u8::is_ascii_digit)
            && bytes[4] == b'-'
            && bytes[5..7].iter().all(u8::is_ascii_digit)
    };
    !result.rows.is_empty()
        && result.rows.iter().all(|r| match r.get(column) {
            Some(Cell::Text(t)) => looks_like_date(t),
            Some(Cell::Null) => true,
            _ => false,
        })
}

/// Whether the database held more rows than the result kept at its row cap, so "load
/// more" can fetch them.
pub fn can_load_more(result: &QueryResult) -> bool {
    matches!(result.cut, Some(crate::core::db::exec::Cut::RowLimit))
        || result
            .total_rows
            .is_some_and(|total| total > result.rows.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result() -> QueryResult {
        QueryResult {
            columns: vec!["name".into(), "total".into()],
            rows: vec![
                vec![Cell::Text("b".into()), Cell::Real(2.5)],
                vec![Cell::Text("A".into()), Cell::Real(10.0)],
                vec![Cell::Null, Cell::Integer(1234567)],
            ],
            total_rows: Some(3),
            cut: None,
        }
    }

    #[test]
    fn sorting_cycles_and_search_filters() {
        let result = result();
        let mut state = ResultsState {
            column: 1,
            ..Default::default()
        };
        assert_eq!(shown_rows(&result, &state), [0, 1, 2]);
        state.cycle_sort();
        assert_eq!(shown_rows(&result, &state), [0, 1, 2]);
        state.cycle_sort();
        assert_eq!(shown_rows(&result, &state), [2, 1, 0]);
        state.cycle_sort();
        assert_eq!(state.sort, None);
        state.column = 0;
        state.cycle_sort();
        assert_eq!(
            shown_rows(&result, &state),
            [2, 1, 0],
            "NULL first, then a, b"
        );
        state.filter = "A".into();
        assert_eq!(shown_rows(&result, &state), [1]);
    }

    #[test]
    fn numbers_share_a_format_per_column() {
        let result = result();
        let plain = NumberFormat::for_column(&result, 1, false);
        assert_eq!(plain.decimals, 1);
        assert_eq!(plain.format(&Cell::Real(2.5)).as_deref(), Some("2.5"));
        assert_eq!(plain.format(&Cell::Real(10.0)).as_deref(), Some("10.0"));
        let grouped = NumberFormat::for_column(&result, 1, true);
        assert_eq!(
            grouped.format(&Cell::Integer(1234567)).as_deref(),
            Some("1,234,567.0")
        );
        let pi = NumberFormat {
            decimals: decimals_of(std::f64::consts::PI),
            thousands: false,
        };
        assert_eq!(
            pi.format(&Cell::Real(std::f64::consts::PI)).as_deref(),
            Some("3.14")
        );
        assert_eq!(group_thousands("-1000"), "-1,000");
        assert_eq!(plain.format(&Cell::Text("x".into())), None);
    }

    #[test]
    fn chart_columns_follow_the_choice_and_dates_make_a_time_series() {
        let result = result();
        let mut state = ResultsState::default();
        assert_eq!(chart_columns(&result, &state), Some((0, 1)));
        state.chart_label = Some(1);
        state.chart_value = Some(0);
        assert_eq!(
            chart_columns(&result, &state),
            Some((0, 1)),
            "text is no value"
        );
        let dates = QueryResult {
            columns: vec!["day".into(), "n".into()],
            rows: vec![vec![Cell::Text("2013-01-05".into()), Cell::Integer(3)]],
            total_rows: Some(1),
            cut: None,
        };
        assert!(is_date_column(&dates, 0));
        assert!(!is_date_column(&result, 0));
    }
}
