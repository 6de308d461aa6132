//! The status bar: stage with spinner and elapsed time (or the finished run's timings), a
//! flash message, and key hints for the focused pane generated from the keymap.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use unicode_width::UnicodeWidthStr;

use crate::tui::app::{Model, Stage, Startup, Warm, training_status};
use crate::tui::view::{format_ms, spinner};

/// Most lines the status bar grows to for a long message.
const MAX_LINES: u16 = 3;

/// Lines the status bar needs: one, or enough to show a long message whole (the key hints
/// give way first).
pub(crate) fn height(model: &Model, width: u16) -> u16 {
    let used: usize = left_spans(model).iter().map(|s| s.content.width()).sum();
    let width = usize::from(width.max(1));
    if used < width {
        1
    } else {
        (used.div_ceil(width) as u16).clamp(1, MAX_LINES)
    }
}

pub fn draw(model: &Model, frame: &mut Frame, area: Rect) {
    let theme = &model.config.theme;
    let base = Style::default().bg(theme.status_bg).fg(theme.status_fg);
    let mut left = left_spans(model);
    if area.height > 1 {
        let paragraph = Paragraph::new(Line::from(left))
            .style(base)
            .wrap(ratatui::widgets::Wrap { trim: false });
        frame.render_widget(paragraph, area);
        return;
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

/// Stage, timings, start-up progress, training and the flash message.
fn left_spans(model: &Model) -> Vec<Span<'static>> {
    let theme = &model.config.theme;
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
        // Nothing is ready while the model loads or the schema is indexed.
        let label = match (&model.startup, &model.stage) {
            (Startup::Loading { .. }, Stage::Idle) => "starting".to_string(),
            (_, stage) => stage.label(),
        };
        left.push(Span::styled(format!(" {label}"), stage_style));
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
    if let Warm::Running { since_ms } = model.warm {
        left.push(Span::styled(
            format!(
                " · {} reading the schema into the model {} (once per database and model; \
                 you can ask meanwhile)",
                spinner(model.now_ms),
                format_ms(model.now_ms.saturating_sub(since_ms))
            ),
            Style::default().fg(theme.dim),
        ));
    }
    if let Some((text, attention)) = training_status(model) {
        let color = if attention { theme.accent } else { theme.dim };
        left.push(Span::styled(
            format!(" · {text}"),
            Style::default().fg(color),
        ));
    }
    if let Some(flash) = &model.flash {
        left.push(Span::styled(
            format!(" · {flash}"),
            Style::default().fg(theme.accent),
        ));
    }
    left
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_ms(850), "850ms");
        assert_eq!(format_ms(2345), "2.3s");
        assert_eq!(format_ms(65_000), "1m05s");
    }
}
