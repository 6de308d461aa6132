//! `view(&Model, &mut Frame)`: draws the five panes, the status bar and any overlay. Reads
//! the model only; nothing here blocks or changes state.

mod highlight;
mod overlays;
mod panes;
mod results;
mod status;

pub use highlight::highlight_sql;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType};

use crate::tui::app::{Model, Overlay, Pane};

pub fn view(model: &Model, frame: &mut Frame) {
    let [main, status_area] = split_status(model, frame.area());
    if model.zoomed {
        draw_pane(model, frame, model.focus, main);
    } else {
        for (pane, area) in layout(model, main) {
            draw_pane(model, frame, pane, area);
        }
    }
    status::draw(model, frame, status_area);
    match &model.overlay {
        Overlay::None => {}
        Overlay::Help => overlays::help(model, frame, main),
        Overlay::History(history) => overlays::history(model, history, frame, main),
        Overlay::Note { input } => overlays::note(model, input, frame, main),
        Overlay::Cell { column, text } => overlays::cell(model, column, text, frame, main),
    }
}

/// The panes' area and the status bar below it, which grows to show a long message whole.
fn split_status(model: &Model, area: Rect) -> [Rect; 2] {
    let status = status::height(model, area.width);
    Layout::vertical([Constraint::Min(0), Constraint::Length(status)]).areas(area)
}

/// The pane at a screen position (for the mouse), as [`view`] lays them out.
pub(crate) fn pane_at(
    model: &Model,
    width: u16,
    height: u16,
    column: u16,
    row: u16,
) -> Option<Pane> {
    let [main, _] = split_status(model, Rect::new(0, 0, width, height));
    let position = ratatui::layout::Position::new(column, row);
    if model.zoomed {
        return main.contains(position).then_some(model.focus);
    }
    layout(model, main)
        .into_iter()
        .find(|(_, area)| area.contains(position))
        .map(|(pane, _)| pane)
}

/// Where each pane goes. Small terminals (80x24) keep every pane at least a few lines.
fn layout(model: &Model, area: Rect) -> Vec<(Pane, Rect)> {
    let answer_height = if area.height >= 30 { 5 } else { 3 };
    let top_height = (area.height.saturating_sub(answer_height) * 45 / 100).max(8);
    let [top, results, answer] = Layout::vertical([
        Constraint::Length(top_height),
        Constraint::Min(4),
        Constraint::Length(answer_height),
    ])
    .areas(area);
    let [left, schema] =
        Layout::horizontal([Constraint::Percentage(64), Constraint::Percentage(36)]).areas(top);
    let question_lines =
        model.question.lines().len().clamp(1, 3) as u16 + panes::thread_lines(model).len() as u16;
    let [question, sql] =
        Layout::vertical([Constraint::Length(question_lines + 2), Constraint::Min(3)]).areas(left);
    vec![
        (Pane::Question, question),
        (Pane::Schema, schema),
        (Pane::Sql, sql),
        (Pane::Results, results),
        (Pane::Answer, answer),
    ]
}

fn draw_pane(model: &Model, frame: &mut Frame, pane: Pane, area: Rect) {
    match pane {
        Pane::Question => panes::question(model, frame, area),
        Pane::Schema => panes::schema(model, frame, area),
        Pane::Sql => panes::sql(model, frame, area),
        Pane::Results => results::draw(model, frame, area),
        Pane::Answer => panes::answer(model, frame, area),
    }
}

/// A pane's frame: numbered title (the number is its focus key), focus colour, extra
/// title text on the right.
fn pane_block<'a>(model: &Model, pane: Pane, extra: Vec<Span<'a>>) -> Block<'a> {
    let theme = &model.config.theme;
    let focused = model.focus == pane && matches!(model.overlay, Overlay::None);
    let border = if focused {
        theme.border_focused
    } else {
        theme.border
    };
    let mut title = vec![
        Span::styled(
            format!(" {} ", pane.number()),
            Style::default().fg(theme.dim),
        ),
        Span::styled(
            pane.title(),
            Style::default().fg(theme.title).add_modifier(if focused {
                Modifier::BOLD
            } else {
                Modifier::empty()
            }),
        ),
        Span::raw(" "),
    ];
    if !extra.is_empty() {
        title.push(Span::styled("· ", Style::default().fg(theme.dim)));
        title.extend(extra);
        title.push(Span::raw(" "));
    }
    Block::bordered()
        .border_type(if focused {
            BorderType::Thick
        } else {
            BorderType::Plain
        })
        .border_style(Style::default().fg(border))
        .title(Line::from(title))
}

/// Lines of an error message: a message that quotes multi-line SQL keeps its line breaks
/// (a `Line` drops a '\n', so "AS Revenue\nFROM" would read "AS RevenueFROM").
pub(crate) fn error_lines(text: &str, color: ratatui::style::Color) -> Vec<Line<'static>> {
    text.lines()
        .map(|line| Line::styled(line.to_string(), Style::default().fg(color)))
        .collect()
}

/// The colour a confidence label is shown in.
fn confidence_color(
    level: crate::core::pipeline::outcome::ConfidenceLevel,
    theme: &crate::tui::config::Theme,
) -> ratatui::style::Color {
    use crate::core::pipeline::outcome::ConfidenceLevel;
    match level {
        ConfidenceLevel::High => theme.ok,
        ConfidenceLevel::Medium => theme.accent,
        ConfidenceLevel::Low => theme.error,
    }
}

/// A braille spinner frame for a clock in milliseconds.
fn spinner(now_ms: u64) -> &'static str {
    const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
    FRAMES[(now_ms / 100 % 10) as usize]
}

/// "850ms", "2.3s", "1m05s".
pub(crate) fn format_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60)
    }
}

/// A rectangle centred in `area`, `percent_x` wide and `percent_y` high.
fn centered(area: Rect, percent_x: u16, percent_y: u16) -> Rect {
    let width = (area.width * percent_x / 100).max(20).min(area.width);
    let height = (area.height * percent_y / 100).max(5).min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}
