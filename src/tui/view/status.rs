//! The status bar: stage with spinner and elapsed time (or the finished run's timings), a
//! flash message, and key hints for the focused pane generated from the keymap.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use unicode_width::UnicodeWidthStr;

use crate::tui::app::{Model, Stage, Startup, training_status};
use crate::tui::view::{format_ms, spinner};

pub fn draw(model: &Model, frame: &mut Frame, area: Rect) {
    let theme = &model.config.theme;
    let base = Style::default().bg(theme.status_bg).fg(theme.status_fg);
    let mut left: Vec<Span> = Vec::new();
    let stage_style = match model.stage {
        Stage::Failed(_) => Style::default().fg(theme.error),
        Stage::Done => Style::default().fg(theme.ok),
        _ => Style::default().fg(theme.accent),
    }
    .add_modifier(Modifier::BOLD);
    if model.stage.is_busy() {
        let elapsed = model.now_ms.saturating_sub(model.stage_since_ms);
        left.push(Span::styled(
            format!(
                " {} {} {}",
                spinner(model.now_ms),
                model.stage.label(),
                format_ms(elapsed)
            ),
            stage_style,
        ));
        if let Startup::Loading { phase } = &model.startup {
            left.push(Span::raw(format!(" (waiting: {phase})")));
        }
    } else {
        left.push(Span::styled(
            format!(" {}", model.stage.label()),
            stage_style,
        ));
        // A message (an export error with its path) gets the room the timings would take,
        // so it is not cut off.
        if let Some(timings) = &model.run.timings
            && model.stage == Stage::Done
            && model.run.user_sql.is_none()
            && model.flash.is_none()
        {
            if let Some(confidence) = &model.run.confidence {
                left.push(Span::styled(
                    format!(" · confidence {}", confidence.level.label()),
                    Style::default().fg(super::confidence_color(confidence.level, theme)),
                ));
            }
            left.push(Span::raw(format!(
                " · ttft {} · sql {} · query {} · answer {} · total {}",
                format_ms(timings.ttft_ms),
                format_ms(timings.generate_ms),
                format_ms(timings.execute_ms),
                format_ms(timings.answer_ms),
                format_ms(timings.total_ms)
            )));
        } else if let Some(ms) = model.run.user_sql_ms
            && model.run.user_sql.is_some()
        {
            left.push(Span::raw(format!(" · query {}", format_ms(ms))));
        }
        if let Startup::Loading { phase } = &model.startup {
            left.push(Span::raw(format!(" · {} {phase}", spinner(model.now_ms))));
        }
    }
    if let Some((text, attention)) = training_status(model) {
        let color = if attention { theme.accent } else { theme.dim };
        left.push(Span::styled(
            format!(" · {text}"),
            Style::default().fg(color),
        ));
    }
    if let Some(flash) = &model.flash {
        let used: usize = left.iter().map(|s| s.content.width()).sum();
        let room = usize::from(area.width).saturating_sub(used + 3);
        left.push(Span::styled(
            format!(" · {}", elide_middle(flash, room)),
            Style::default().fg(theme.accent),
        ));
    }
    let used: usize = left.iter().map(|s| s.content.width()).sum();
    let available = usize::from(area.width).saturating_sub(used + 2);
    let mut hints = String::new();
    for (keys, desc) in model.config.keymap.hints(model.key_context()) {
        let piece = format!("{keys} {desc}");
        let extra = if hints.is_empty() { 0 } else { 3 };
        if hints.width() + extra + piece.width() > available {
            break;
        }
        if !hints.is_empty() {
            hints.push_str(" · ");
        }
        hints.push_str(&piece);
    }
    let pad = usize::from(area.width).saturating_sub(used + hints.width() + 1);
    left.push(Span::raw(" ".repeat(pad)));
    left.push(Span::styled(hints, Style::default().fg(theme.dim)));
    frame.render_widget(Paragraph::new(Line::from(left)).style(base), area);
}

/// `text` in at most `room` columns: a longer one loses its middle (usually part of a path),
/// so both what failed and why stay readable.
fn elide_middle(text: &str, room: usize) -> String {
    if text.width() <= room || room < 8 {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let keep = room - 1;
    let tail = keep / 2;
    let head = keep - tail;
    let start: String = chars[..head.min(chars.len())].iter().collect();
    let end: String = chars[chars.len().saturating_sub(tail)..].iter().collect();
    format!("{start}…{end}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_message_loses_its_middle_not_its_end() {
        assert_eq!(elide_middle("short", 10), "short");
        assert_eq!(
            elide_middle("export failed: /a/b/c/d/e: denied", 21),
            "export fai…/e: denied"
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_ms(850), "850ms");
        assert_eq!(format_ms(2345), "2.3s");
        assert_eq!(format_ms(65_000), "1m05s");
    }
}
