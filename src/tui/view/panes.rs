//! The text panes: Question, Schema, SQL (streaming, highlighted, every attempt) and Answer.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use crate::core::retrieval::provider::ContextMode;
use crate::tui::app::{Model, Pane, Stage, Startup, UserSql};
use crate::tui::keymap::{Command, KeyContext};
use crate::tui::view::{confidence_color, error_lines, highlight_sql, pane_block, spinner};

pub fn question(model: &Model, frame: &mut Frame, area: Rect) {
    let theme = &model.config.theme;
    let extra = match &model.startup {
        Startup::Loading { phase } => vec![Span::styled(
            format!("{} {phase}…", spinner(model.now_ms)),
            Style::default().fg(theme.dim),
        )],
        Startup::Failed(_) => vec![Span::styled(
            "model failed to load",
            Style::default().fg(theme.error),
        )],
        Startup::Ready { .. } => follow_up_hint(model),
    };
    let block = pane_block(model, Pane::Question, extra);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let thread = thread_lines(model);
    let shown = (thread.len() as u16).min(inner.height.saturating_sub(1));
    let [asked, input] =
        Layout::vertical([Constraint::Length(shown), Constraint::Min(1)]).areas(inner);
    let skip = thread.len() - usize::from(shown);
    frame.render_widget(Paragraph::new(thread[skip..].to_vec()), asked);
    frame.render_widget(&model.question, input);
}

/// The asked question (and the earlier questions it follows up), kept above the input so
/// the answer on screen is always next to its question. At most three lines.
pub(crate) fn thread_lines(model: &Model) -> Vec<Line<'static>> {
    let theme = &model.config.theme;
    let run = &model.run;
    if run.question.is_empty() {
        return Vec::new();
    }
    let mut lines: Vec<Line> = run
        .earlier
        .iter()
        .map(|turn| {
            Line::styled(
                format!("  {}", one_line(&turn.question)),
                Style::default().fg(theme.dim),
            )
        })
        .collect();
    lines.push(Line::from(vec![
        Span::styled("asked: ", Style::default().fg(theme.dim)),
        Span::styled(
            one_line(&run.question),
            Style::default()
                .fg(theme.accent)
                .add_modifier(Modifier::BOLD),
        ),
    ]));
    let skip = lines.len().saturating_sub(3);
    lines.split_off(skip)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Says, while typing, whether the question will continue the conversation.
fn follow_up_hint(model: &Model) -> Vec<Span<'static>> {
    let theme = &model.config.theme;
    let typed = model.question_text();
    if typed.trim().is_empty() || !model.conversation.follows(&typed, &model.table_words) {
        return Vec::new();
    }
    let key = model
        .config
        .keymap
        .key_for(KeyContext::Global, Command::NewTopic)
        .map(|k| format!(" ({k}: new topic)"))
        .unwrap_or_default();
    vec![Span::styled(
        format!("follow-up{key}"),
        Style::default().fg(theme.accent),
    )]
}

pub fn schema(model: &Model, frame: &mut Frame, area: Rect) {
    let theme = &model.config.theme;
    let dim = Style::default().fg(theme.dim);
    let mut lines: Vec<Line> = Vec::new();
    let text = match &model.run.context {
        Some(context) => {
            let how = match context.mode {
                ContextMode::WholeSchema => {
                    format!(
                        "sent the whole schema ({} tables)",
                        context.tables_sent.len()
                    )
                }
                ContextMode::Subset => format!("sent {}", context.tables_sent.join(", ")),
            };
            lines.push(Line::styled(how, Style::default().fg(theme.accent)));
            for reason in &context.reasons {
                lines.push(Line::styled(format!("· {reason}"), dim));
            }
            if !context.examples.is_empty() {
                lines.push(Line::styled(
                    format!("{} verified example(s) sent", context.examples.len()),
                    dim,
                ));
            }
            context.schema_text.as_str()
        }
        None if model.schema_text.is_empty() => {
            lines.push(Line::styled("reading the schema…", dim));
            ""
        }
        None => model.schema_text.as_str(),
    };
    lines.extend(text.lines().map(|l| schema_line(l, model)));
    let paragraph = Paragraph::new(lines)
        .block(pane_block(model, Pane::Schema, Vec::new()))
        .wrap(Wrap { trim: false })
        .scroll((model.scrolls.schema, 0));
    frame.render_widget(paragraph, area);
}

fn schema_line<'a>(line: &'a str, model: &Model) -> Line<'a> {
    let theme = &model.config.theme;
    if line.starts_with(char::is_whitespace) {
        Line::styled(line, Style::default().fg(theme.text))
    } else {
        Line::styled(
            line,
            Style::default()
                .fg(theme.keyword)
                .add_modifier(Modifier::BOLD),
        )
    }
}

pub fn sql(model: &Model, frame: &mut Frame, area: Rect) {
    let theme = &model.config.theme;
    let run = &model.run;
    let mut extra = Vec::new();
    if run.attempts.len() > 1 {
        extra.push(Span::styled(
            format!("{} attempts", run.attempts.len()),
            Style::default().fg(theme.dim),
        ));
    }
    if let Some(confidence) = &run.confidence
        && run.user_sql.is_none()
    {
        extra.push(Span::styled(
            format!("confidence {} ", confidence.level.label()),
            Style::default().fg(confidence_color(confidence.level, theme)),
        ));
    }
    if run.corrected {
        extra.push(Span::styled(
            "✓ saved as correct ",
            Style::default().fg(theme.ok),
        ));
    }
    if let Some(editor) = &model.editor {
        extra.push(Span::styled(
            " editing",
            Style::default()
                .fg(theme.accent)
                .add_modifier(Modifier::BOLD),
        ));
        let block = pane_block(model, Pane::Sql, extra);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        frame.render_widget(editor, inner);
        return;
    }
    let mut lines: Vec<Line> = Vec::new();
    let several = run.attempts.len() > 1 || run.user_sql.is_some();
    for (index, attempt) in run.attempts.iter().enumerate() {
        if several {
            lines.push(Line::styled(
                format!("-- attempt {}", index + 1),
                Style::default().fg(theme.dim),
            ));
        }
        let mut sql_lines = highlight_sql(attempt.sql.trim_end(), theme);
        if attempt.error.is_some() {
            for line in &mut sql_lines {
                *line = line
                    .clone()
                    .patch_style(Style::default().add_modifier(Modifier::DIM));
            }
        }
        lines.extend(sql_lines);
        if let Some(error) = &attempt.error {
            lines.extend(error_lines(&format!("✗ {error}"), theme.error));
        }
    }
    if let Some(user) = &run.user_sql {
        let (label, color) = match &user.ran {
            None => ("-- your SQL (not run yet)".to_string(), theme.accent),
            Some(Ok(())) => ("-- your SQL (ran)".to_string(), theme.ok),
            Some(Err(_)) => ("-- your SQL (failed)".to_string(), theme.error),
        };
        lines.push(Line::styled(label, Style::default().fg(color)));
        lines.extend(highlight_sql(&user.sql, theme));
        if let Some(Err(error)) = &user.ran {
            lines.extend(error_lines(&format!("✗ {error}"), theme.error));
        }
    }
    if lines.is_empty() {
        let waiting = match model.stage {
            Stage::Retrieving | Stage::Generating => "waiting for the model…",
            _ => "the SQL for your question appears here",
        };
        lines.push(Line::styled(waiting, Style::default().fg(theme.dim)));
    }
    // Follow the stream: the newest lines stay in view; scrolling goes back from there.
    let inner_height = area.height.saturating_sub(2);
    let total = wrapped_height(&lines, area.width.saturating_sub(2));
    let scroll = total
        .saturating_sub(inner_height)
        .saturating_sub(model.scrolls.sql);
    let paragraph = Paragraph::new(lines)
        .block(pane_block(model, Pane::Sql, extra))
        .wrap(Wrap { trim: false })
        .scroll((scroll, 0));
    frame.render_widget(paragraph, area);
}

fn wrapped_height(lines: &[Line], width: u16) -> u16 {
    let width = usize::from(width.max(1));
    lines
        .iter()
        .map(|l| l.width().max(1).div_ceil(width) as u16)
        .sum()
}

pub fn answer(model: &Model, frame: &mut Frame, area: Rect) {
    let theme = &model.config.theme;
    let run = &model.run;
    let mut extra = Vec::new();
    match run.rating {
        Some(crate::core::feedback::history::Rating::Up) => {
            extra.push(Span::styled("rated ▲", Style::default().fg(theme.ok)))
        }
        Some(crate::core::feedback::history::Rating::Down) => {
            extra.push(Span::styled("rated ▼", Style::default().fg(theme.error)))
        }
        None => {}
    }
    let line = if !run.answer.is_empty() {
        Line::styled(
            run.answer.trim().to_string(),
            Style::default().fg(theme.text),
        )
    } else if let Some(error) = &run.error {
        Line::styled(error.clone(), Style::default().fg(theme.error))
    } else if let Some(UserSql {
        ran: Some(Ok(())), ..
    }) = &run.user_sql
    {
        Line::styled(
            "your SQL ran: its rows are in the Results pane (answers in words are written for \
             the model's SQL)",
            Style::default().fg(theme.dim),
        )
    } else if model.stage == Stage::Answering {
        Line::styled(
            format!("{} writing the answer…", spinner(model.now_ms)),
            Style::default().fg(theme.dim),
        )
    } else {
        Line::styled(
            "a short answer in words appears here",
            Style::default().fg(theme.dim),
        )
    };
    let paragraph = Paragraph::new(line)
        .block(pane_block(model, Pane::Answer, extra))
        .wrap(Wrap { trim: true })
        .scroll((model.scrolls.answer, 0));
    frame.render_widget(paragraph, area);
}
