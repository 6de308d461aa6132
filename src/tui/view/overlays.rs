//! Overlays drawn over the panes: help (built from the keymap), history (fuzzy filtered)
//! and the note prompt of a thumbs-down.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph, Wrap};
use ratatui_textarea::TextArea;
use unicode_width::UnicodeWidthStr;

use crate::core::feedback::history::utc_time;
use crate::core::feedback::history::{HistoryStatus, Rating};
use crate::tui::app::{HistoryState, Model};
use crate::tui::keymap::{Key, KeyContext};
use crate::tui::view::{centered, format_ms};

fn popup_block<'a>(model: &Model, title: &'a str) -> Block<'a> {
    let theme = &model.config.theme;
    Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(Style::default().fg(theme.border_focused))
        .title(Span::styled(
            format!(" {title} "),
            Style::default()
                .fg(theme.title)
                .add_modifier(Modifier::BOLD),
        ))
}

pub fn help(model: &Model, frame: &mut Frame, area: Rect) {
    let theme = &model.config.theme;
    let popup = centered(area, 80, 90);
    let mut lines: Vec<Line> = Vec::new();
    for context in KeyContext::ALL {
        let bindings = model.config.keymap.bindings(context);
        if bindings.is_empty() {
            continue;
        }
        lines.push(Line::styled(
            context.title(),
            Style::default()
                .fg(theme.accent)
                .add_modifier(Modifier::BOLD),
        ));
        for binding in bindings {
            let keys: Vec<String> = binding.keys.iter().map(Key::to_string).collect();
            let command = serde_json::to_value(binding.command)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            lines.push(Line::from(vec![
                Span::styled(
                    format!("  {:<18}", keys.join(" ")),
                    Style::default().fg(theme.keyword),
                ),
                Span::raw(format!("{:<16}", binding.desc)),
                Span::styled(command, Style::default().fg(theme.dim)),
            ]));
        }
    }
    frame.render_widget(Clear, popup);
    let paragraph = Paragraph::new(lines)
        .block(popup_block(model, "Keys (from the keymap in your config)"))
        .scroll((model.scrolls.help, 0));
    frame.render_widget(paragraph, popup);
}

/// One result cell in full, wrapped; scrolls like help.
pub fn cell(model: &Model, column: &str, text: &str, frame: &mut Frame, area: Rect) {
    let popup = centered(area, 80, 70);
    frame.render_widget(Clear, popup);
    let title = format!("{column} · {} chars", text.chars().count());
    let paragraph = Paragraph::new(text.to_string())
        .block(popup_block(model, &title))
        .wrap(Wrap { trim: false })
        .scroll((model.scrolls.help, 0));
    frame.render_widget(paragraph, popup);
}

pub fn history(model: &Model, history: &HistoryState, frame: &mut Frame, area: Rect) {
    let theme = &model.config.theme;
    let popup = centered(area, 92, 85);
    frame.render_widget(Clear, popup);
    let title = format!(
        "History of {} · {} of {}",
        model.database,
        history.matches.len(),
        history.entries.len()
    );
    let block = popup_block(model, &title);
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let [filter_area, list_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(inner);
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled("filter> ", Style::default().fg(theme.accent)),
            Span::raw(history.filter.clone()),
            Span::styled("█", Style::default().fg(theme.dim)),
        ])),
        filter_area,
    );
    let mut lines = Vec::new();
    if history.loading {
        lines.push(Line::styled("loading…", Style::default().fg(theme.dim)));
    } else if let Some(error) = &history.error {
        lines.push(Line::styled(
            error.clone(),
            Style::default().fg(theme.error),
        ));
    } else if history.matches.is_empty() {
        let text = if history.entries.is_empty() {
            "no questions asked on this database yet"
        } else {
            "nothing matches the filter"
        };
        lines.push(Line::styled(text, Style::default().fg(theme.dim)));
    }
    let height = usize::from(list_area.height).max(1);
    let offset = history.selected.saturating_sub(height - 1);
    let width = usize::from(list_area.width);
    for (position, &index) in history.matches.iter().enumerate().skip(offset).take(height) {
        let entry = &history.entries[index];
        let (status, color) = match entry.status {
            HistoryStatus::Ok => ("ok", theme.ok),
            HistoryStatus::Failed => ("failed", theme.error),
            HistoryStatus::Corrected => ("fixed", theme.accent),
            HistoryStatus::Rated => match entry.rating {
                Some(Rating::Down) => ("rated▼", theme.error),
                _ => ("rated▲", theme.ok),
            },
        };
        let rows = entry
            .row_count
            .map_or_else(|| "-".to_string(), |n| n.to_string());
        let when = utc_time(entry.asked_at);
        let right = format!(" {rows:>6} rows {:>6} {when}", format_ms(entry.total_ms));
        let question_width = width.saturating_sub(right.width() + 9);
        let mut question: String = entry.question.replace('\n', " ");
        if entry.follows.is_some() {
            question = format!("↳ {question}");
        }
        if question.width() > question_width {
            question = question
                .chars()
                .take(question_width.saturating_sub(1))
                .collect();
            question.push('…');
        }
        let pad = question_width.saturating_sub(question.width());
        let selected = position == history.selected;
        let style = if selected {
            Style::default()
                .bg(theme.selection_bg)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::default()
        };
        lines.push(
            Line::from(vec![
                Span::raw(if selected { "▶ " } else { "  " }),
                Span::styled(format!("{status:<7}"), Style::default().fg(color)),
                Span::raw(question),
                Span::raw(" ".repeat(pad)),
                Span::styled(right, Style::default().fg(theme.dim)),
            ])
            .style(style),
        );
    }
    frame.render_widget(Paragraph::new(lines), list_area);
}

pub fn note(model: &Model, input: &TextArea<'static>, frame: &mut Frame, area: Rect) {
    let theme = &model.config.theme;
    let popup = centered(area, 70, 20);
    let popup = Rect {
        height: 5.min(area.height),
        y: area.y + area.height.saturating_sub(5) / 2,
        ..popup
    };
    frame.render_widget(Clear, popup);
    let block = popup_block(model, "Thumbs down: what was wrong?");
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let [input_area, hint_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(inner);
    frame.render_widget(input, input_area);
    let hints: Vec<String> = model
        .config
        .keymap
        .hints(KeyContext::Note)
        .into_iter()
        .map(|(k, d)| format!("{k} {d}"))
        .collect();
    frame.render_widget(
        Paragraph::new(Line::styled(
            hints.join(" · "),
            Style::default().fg(theme.dim),
        ))
        .wrap(Wrap { trim: true }),
        hint_area,
    );
}
