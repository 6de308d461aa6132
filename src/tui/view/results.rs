//! The Results pane: a scrollable table (column widths by display width, so CJK and emoji
//! line up), "N of M" row counts, the selected cell, and a bar-chart view.

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Bar, BarChart, BarGroup, Cell as TableCell, Paragraph, Row, Table, Wrap};
use unicode_width::UnicodeWidthStr;

use crate::core::db::exec::{Cell, QueryResult};
use crate::tui::app::{Model, Pane, Stage, Startup, chart_columns};
use crate::tui::view::{format_ms, pane_block, spinner};

/// Widest a column gets before its cells are cut.
const MAX_COLUMN_WIDTH: usize = 40;
/// Rows measured for column widths (the rest are cut to fit).
const MEASURED_ROWS: usize = 500;

pub fn draw(model: &Model, frame: &mut Frame, area: Rect) {
    let theme = &model.config.theme;
    let Some(result) = &model.run.result else {
        let block = pane_block(model, Pane::Results, Vec::new());
        let paragraph = Paragraph::new(placeholder(model))
            .block(block)
            .wrap(Wrap { trim: false });
        frame.render_widget(paragraph, area);
        return;
    };
    let mut extra = vec![Span::styled(
        result.row_summary(),
        Style::default().fg(theme.accent),
    )];
    if !result.rows.is_empty() {
        extra.push(Span::styled(
            format!(
                " · row {}/{} col {}/{}",
                model.results.row + 1,
                result.rows.len(),
                model.results.column + 1,
                result.columns.len()
            ),
            Style::default().fg(theme.dim),
        ));
    }
    let block = pane_block(model, Pane::Results, extra);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if model.results.chart
        && let Some((label, value)) = chart_columns(result)
    {
        chart(model, result, label, value, frame, inner);
    } else {
        table(model, result, frame, inner);
    }
}

fn placeholder(model: &Model) -> Vec<Line<'static>> {
    let theme = &model.config.theme;
    let dim = Style::default().fg(theme.dim);
    let mut lines = Vec::new();
    match &model.startup {
        Startup::Loading { phase } => {
            let tables = model.schema_tables;
            if model.schema_text.is_empty() {
                lines.push(Line::styled(
                    format!("{} opening database", spinner(model.now_ms)),
                    dim,
                ));
            } else {
                lines.push(Line::styled(
                    format!("✓ database opened ({tables} tables)"),
                    Style::default().fg(theme.ok),
                ));
                lines.push(Line::styled(
                    format!(
                        "{} {phase} ({})",
                        spinner(model.now_ms),
                        format_ms(model.now_ms)
                    ),
                    Style::default().fg(theme.accent),
                ));
            }
            lines.push(Line::styled(
                "Type your question now; it runs as soon as the model is ready.",
                dim,
            ));
            return lines;
        }
        Startup::Failed(error) => {
            lines.push(Line::styled(
                format!("The model could not be loaded: {error}"),
                Style::default().fg(theme.error),
            ));
            return lines;
        }
        Startup::Ready { .. } => {}
    }
    let text = match &model.stage {
        Stage::Idle => "Results appear here.".to_string(),
        Stage::Failed(error) => {
            lines.push(Line::styled(
                error.clone(),
                Style::default().fg(theme.error),
            ));
            return lines;
        }
        Stage::Cancelled => "Cancelled.".to_string(),
        stage if stage.is_busy() => format!("{} {}…", spinner(model.now_ms), stage.label()),
        _ => "No results.".to_string(),
    };
    lines.push(Line::styled(text, dim));
    lines
}

fn column_widths(result: &QueryResult) -> Vec<usize> {
    result
        .columns
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let cells = result
                .rows
                .iter()
                .take(MEASURED_ROWS)
                .map(|row| row.get(index).map_or(0, |c| cell_text(c).width()));
            cells
                .chain(std::iter::once(name.width()))
                .max()
                .unwrap_or(1)
                .clamp(1, MAX_COLUMN_WIDTH)
        })
        .collect()
}

/// Long text shows its start and length, a blob its size (the full value stays in the
/// result for export).
fn cell_text(cell: &Cell) -> String {
    cell.preview(MAX_COLUMN_WIDTH).replace(['\n', '\t'], " ")
}

/// The first column to draw so that the selected one is visible.
fn first_column(widths: &[usize], selected: usize, available: usize) -> usize {
    let mut first = 0;
    while first < selected {
        let used: usize = widths[first..=selected].iter().map(|w| w + 1).sum();
        if used <= available {
            break;
        }
        first += 1;
    }
    first
}

fn table(model: &Model, result: &QueryResult, frame: &mut Frame, area: Rect) {
    let theme = &model.config.theme;
    if result.columns.is_empty() {
        return;
    }
    let widths = column_widths(result);
    let selected_column = model.results.column.min(widths.len() - 1);
    let first = first_column(&widths, selected_column, usize::from(area.width));
    let mut shown = Vec::new();
    let mut used = 0;
    for (index, width) in widths.iter().enumerate().skip(first) {
        if used >= usize::from(area.width) && !shown.is_empty() {
            break;
        }
        shown.push(index);
        used += width + 1;
    }
    let visible_rows = usize::from(area.height.saturating_sub(1)).max(1);
    let offset = model.results.row.saturating_sub(visible_rows - 1);
    let focused = model.focus == Pane::Results;
    let header = Row::new(shown.iter().map(|&c| {
        TableCell::from(result.columns[c].clone()).style(
            Style::default()
                .fg(theme.title)
                .add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
        )
    }));
    let rows = result
        .rows
        .iter()
        .enumerate()
        .skip(offset)
        .take(visible_rows)
        .map(|(index, row)| {
            let selected_row = index == model.results.row;
            let cells = shown.iter().map(|&c| {
                let cell = row.get(c).unwrap_or(&Cell::Null);
                let mut style = match cell {
                    Cell::Integer(_) | Cell::Real(_) => Style::default().fg(theme.number),
                    Cell::Null => Style::default().fg(theme.dim),
                    _ => Style::default().fg(theme.text),
                };
                if selected_row && focused && c == selected_column {
                    style = style.add_modifier(Modifier::REVERSED);
                }
                let text = cell_text(cell);
                let line = match cell {
                    Cell::Integer(_) | Cell::Real(_) => Line::from(text).right_aligned(),
                    _ => Line::from(text),
                };
                TableCell::from(line).style(style)
            });
            let row_style = if selected_row {
                Style::default().bg(theme.selection_bg)
            } else {
                Style::default()
            };
            Row::new(cells).style(row_style)
        });
    let constraints = shown.iter().map(|&c| Constraint::Length(widths[c] as u16));
    let table = Table::new(rows, constraints)
        .header(header)
        .column_spacing(1);
    frame.render_widget(table, area);
}

fn chart(
    model: &Model,
    result: &QueryResult,
    label: usize,
    value: usize,
    frame: &mut Frame,
    area: Rect,
) {
    let theme = &model.config.theme;
    let numbers: Vec<f64> = result
        .rows
        .iter()
        .map(|row| match row.get(value) {
            Some(Cell::Integer(v)) => *v as f64,
            Some(Cell::Real(v)) => *v,
            _ => 0.0,
        })
        .collect();
    let max = numbers.iter().copied().fold(0.0_f64, f64::max);
    // Bars take integer lengths; scale so small reals still show.
    let scale = if max > 0.0 && max < 1000.0 {
        1000.0 / max
    } else {
        1.0
    };
    let take = usize::from(area.height).max(1);
    let offset = model.results.row.saturating_sub(take - 1);
    let bars: Vec<Bar> = result
        .rows
        .iter()
        .zip(&numbers)
        .skip(offset)
        .take(take)
        .map(|(row, number)| {
            let name = row.get(label).map(cell_text).unwrap_or_default();
            let shown = match row.get(value) {
                Some(cell) => cell_text(cell),
                None => String::new(),
            };
            Bar::default()
                .value((number.max(0.0) * scale).round() as u64)
                .label(Line::from(truncate(&name, 20)))
                .text_value(shown)
        })
        .collect();
    let chart = BarChart::default()
        .direction(Direction::Horizontal)
        .bar_width(1)
        .bar_gap(0)
        .bar_style(Style::default().fg(theme.bar))
        .value_style(
            Style::default()
                .fg(theme.title)
                .add_modifier(Modifier::BOLD),
        )
        .data(BarGroup::default().bars(&bars));
    frame.render_widget(chart, area);
}

fn truncate(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_string();
    }
    let mut out = String::new();
    for c in text.chars() {
        if out.width() + unicode_width::UnicodeWidthChar::width(c).unwrap_or(0) >= width {
            break;
        }
        out.push(c);
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_follow_display_width_and_selection_stays_visible() {
        let result = QueryResult {
            columns: vec!["name".into(), "n".into()],
            rows: vec![vec![Cell::Text("東京都".into()), Cell::Integer(12345)]],
            total_rows: Some(1),
            cut: None,
        };
        assert_eq!(column_widths(&result), [6, 5]);
        assert_eq!(first_column(&[10, 10, 10], 2, 25), 1);
        assert_eq!(first_column(&[10, 10, 10], 0, 5), 0);
        assert_eq!(truncate("abcdef", 4), "abc…");
    }

    #[test]
    fn long_text_and_blobs_are_drawn_by_size() {
        let long = Cell::Text(format!("start\n{}", "y".repeat(20_000)));
        assert_eq!(
            cell_text(&long),
            format!("start {}… (20,006 chars)", "y".repeat(18))
        );
        assert_eq!(cell_text(&Cell::Blob(vec![1; 3 << 20])), "<blob 3.0 MiB>");
    }
}
