//! The Results pane: a scrollable grid (column widths by display width, so CJK and emoji
//! line up; a header is never cut shorter than its name), sorted and searched as
//! `app::grid` says, numbers formatted per column, "N of M" row counts, the selected cell,
//! and a chart view (bars, or a line over a date column).

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Bar, BarChart, BarGroup, Cell as TableCell, Paragraph, Row, Table, Wrap};
use unicode_width::UnicodeWidthStr;

use crate::core::db::exec::{Cell, QueryResult};
use crate::tui::app::grid::{
    ChartKind, NumberFormat, SortOrder, can_load_more, chart_columns, is_date_column, number,
    shown_rows,
};
use crate::tui::app::{Model, Pane, Stage, Startup};
use crate::tui::keymap::{Command, KeyContext};
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
    let shown = shown_rows(result, &model.results);
    let block = pane_block(model, Pane::Results, title(model, result, shown.len()));
    let mut inner = block.inner(area);
    frame.render_widget(block, area);
    let state = &model.results;
    if (state.searching || !state.filter.is_empty()) && inner.height > 2 {
        let cursor = if state.searching { "▏" } else { "" };
        let line = Line::from(vec![
            Span::styled("/", Style::default().fg(theme.accent)),
            Span::raw(format!("{}{cursor}", state.filter)),
            Span::styled(
                format!("  {} matching", shown.len()),
                Style::default().fg(theme.dim),
            ),
        ]);
        frame.render_widget(Paragraph::new(line), Rect { height: 1, ..inner });
        inner.y += 1;
        inner.height -= 1;
    }
    if state.chart
        && let Some((label, value)) = chart_columns(result, state)
    {
        match state.chart_kind {
            ChartKind::Bar => chart(model, result, &shown, label, value, frame, inner),
            ChartKind::Line => line_chart(model, result, &shown, label, value, frame, inner),
        }
    } else {
        table(model, result, &shown, frame, inner);
    }
}

/// Row counts, cursor, and a "load more" hint when the row cap cut the result.
fn title(model: &Model, result: &QueryResult, shown: usize) -> Vec<Span<'static>> {
    let theme = &model.config.theme;
    let mut extra = vec![Span::styled(
        result.row_summary(),
        Style::default().fg(theme.accent),
    )];
    if !result.rows.is_empty() {
        extra.push(Span::styled(
            format!(
                " · row {}/{} col {}/{}",
                (model.results.row + 1).min(shown),
                shown,
                model.results.column + 1,
                result.columns.len()
            ),
            Style::default().fg(theme.dim),
        ));
    }
    if can_load_more(result)
        && let Some(key) = model
            .config
            .keymap
            .key_for(KeyContext::Results, Command::LoadMore)
    {
        extra.push(Span::styled(
            format!(" · {key} load more"),
            Style::default().fg(theme.dim),
        ));
    }
    extra
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
        Stage::Idle if model.run.question.is_empty() && !model.starters.is_empty() => {
            starter_lines(model, &mut lines);
            return lines;
        }
        Stage::Idle => "Results appear here.".to_string(),
        Stage::Failed(error) => {
            lines.extend(super::error_lines(error, theme.error));
            return lines;
        }
        Stage::Cancelled => "Cancelled.".to_string(),
        stage if stage.is_busy() => format!("{} {}…", spinner(model.now_ms), stage.label()),
        _ => "No results.".to_string(),
    };
    lines.push(Line::styled(text, dim));
    lines
}

/// Each column as wide as its widest shown cell (at most [`MAX_COLUMN_WIDTH`]) and never
/// narrower than its header (with the sort mark).
/// The starter questions on an empty screen, with the key that puts one in the input.
fn starter_lines(model: &Model, lines: &mut Vec<Line<'static>>) {
    let theme = &model.config.theme;
    let key = model
        .config
        .keymap
        .key_for(KeyContext::Question, Command::Suggest)
        .map(|k| format!(" ({k} puts one in the input)"))
        .unwrap_or_default();
    lines.push(Line::styled(
        format!("Results appear here. Some questions to start with{key}:"),
        Style::default().fg(theme.dim),
    ));
    for question in &model.starters {
        lines.push(Line::styled(
            format!("  · {question}"),
            Style::default().fg(theme.accent),
        ));
    }
}

fn column_widths(result: &QueryResult, headers: &[String], formats: &[NumberFormat]) -> Vec<usize> {
    headers
        .iter()
        .enumerate()
        .map(|(index, header)| {
            let cells = result
                .rows
                .iter()
                .take(MEASURED_ROWS)
                .map(|row| {
                    row.get(index)
                        .map_or(0, |c| shown_text(c, formats[index]).width())
                })
                .max()
                .unwrap_or(0)
                .min(MAX_COLUMN_WIDTH);
            cells.max(header.width()).max(1)
        })
        .collect()
}

/// A cell as the grid writes it: numbers in their column's format, text cut short.
fn shown_text(cell: &Cell, format: NumberFormat) -> String {
    format.format(cell).unwrap_or_else(|| cell_text(cell))
}

fn headers(model: &Model, result: &QueryResult) -> Vec<String> {
    result
        .columns
        .iter()
        .enumerate()
        .map(|(index, name)| match model.results.sort {
            Some((c, SortOrder::Ascending)) if c == index => format!("{name} ▲"),
            Some((c, SortOrder::Descending)) if c == index => format!("{name} ▼"),
            _ => name.clone(),
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

fn table(model: &Model, result: &QueryResult, order: &[usize], frame: &mut Frame, area: Rect) {
    let theme = &model.config.theme;
    if result.columns.is_empty() {
        return;
    }
    let formats: Vec<NumberFormat> = (0..result.columns.len())
        .map(|c| NumberFormat::for_column(result, c, model.config.thousands_separators))
        .collect();
    let header_names = headers(model, result);
    let widths = column_widths(result, &header_names, &formats);
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
    let cursor = model.results.row.min(order.len().saturating_sub(1));
    let offset = cursor.saturating_sub(visible_rows - 1);
    let focused = model.focus == Pane::Results;
    let header = Row::new(shown.iter().map(|&c| {
        TableCell::from(header_names[c].clone()).style(
            Style::default()
                .fg(theme.title)
                .add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
        )
    }));
    let rows = order
        .iter()
        .enumerate()
        .skip(offset)
        .take(visible_rows)
        .map(|(position, &index)| {
            let row = &result.rows[index];
            let selected_row = position == cursor;
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
                let text = shown_text(cell, formats[c]);
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
    order: &[usize],
    label: usize,
    value: usize,
    frame: &mut Frame,
    area: Rect,
) {
    let theme = &model.config.theme;
    let rows: Vec<&Vec<Cell>> = order.iter().map(|&i| &result.rows[i]).collect();
    let numbers: Vec<f64> = rows
        .iter()
        .map(|row| row.get(value).map_or(0.0, number))
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
    let bars: Vec<Bar> = rows
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

/// The value column as a line over the rows, in label order when the label is a date (a
/// time series), else in the grid's order.
fn line_chart(
    model: &Model,
    result: &QueryResult,
    order: &[usize],
    label: usize,
    value: usize,
    frame: &mut Frame,
    area: Rect,
) {
    use ratatui::symbols::Marker;
    use ratatui::widgets::{Axis, Chart, Dataset, GraphType};
    let theme = &model.config.theme;
    let mut rows: Vec<&Vec<Cell>> = order.iter().map(|&i| &result.rows[i]).collect();
    let dates = is_date_column(result, label);
    if dates {
        rows.sort_by_key(|row| row.get(label).map(ToString::to_string).unwrap_or_default());
    }
    let points: Vec<(f64, f64)> = rows
        .iter()
        .enumerate()
        .map(|(x, row)| (x as f64, row.get(value).map_or(0.0, number)))
        .collect();
    let (low, high) = points
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &(_, y)| {
            (lo.min(y), hi.max(y))
        });
    let (low, high) = if points.is_empty() {
        (0.0, 1.0)
    } else {
        (low.min(0.0), high.max(low + 1.0))
    };
    let label_of = |row: Option<&&Vec<Cell>>| {
        row.and_then(|r| r.get(label))
            .map(|c| truncate(&cell_text(c), 12))
            .unwrap_or_default()
    };
    let x_labels = vec![
        Span::raw(label_of(rows.first())),
        Span::raw(label_of(rows.last())),
    ];
    let dataset = Dataset::default()
        .name(result.columns[value].clone())
        .marker(Marker::Braille)
        .graph_type(GraphType::Line)
        .style(Style::default().fg(theme.bar))
        .data(&points);
    let x_title = if dates {
        format!("{} (time)", result.columns[label])
    } else {
        result.columns[label].clone()
    };
    let chart = Chart::new(vec![dataset])
        .x_axis(
            Axis::default()
                .title(x_title)
                .bounds([0.0, points.len().saturating_sub(1).max(1) as f64])
                .labels(x_labels),
        )
        .y_axis(Axis::default().bounds([low, high]).labels(vec![
            Span::raw(format!("{low:.0}")),
            Span::raw(format!("{high:.0}")),
        ]));
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
        let formats = [NumberFormat {
            decimals: 0,
            thousands: false,
        }; 2];
        let headers = vec!["name".to_string(), "n".to_string()];
        assert_eq!(column_widths(&result, &headers, &formats), [6, 5]);
        let long = "a_header_longer_than_the_forty_column_maximum".to_string();
        let long_header = vec![long, "n".to_string()];
        assert_eq!(column_widths(&result, &long_header, &formats), [45, 5]);
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
