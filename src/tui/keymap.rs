//! Key bindings as data: the `[tui.keymap]` tables of the config map keys to [`Command`]s
//! per [`KeyContext`]. Help and the status-bar hints are generated from the same tables, so
//! they never drift from what the keys do.

use std::collections::BTreeMap;
use std::fmt;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::{Deserialize, Serialize};

/// What a user can bind a key to. Internal messages are not commands and cannot be bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Command {
    /// Leave the app.
    Quit,
    /// Stop the running stage (generation or query), or close what is open.
    Cancel,
    /// Focus the next pane.
    FocusNext,
    /// Focus the previous pane.
    FocusPrev,
    FocusQuestion,
    FocusSchema,
    FocusSql,
    FocusResults,
    FocusAnswer,
    /// Show the focused pane full-screen, or return to the layout.
    Zoom,
    /// Open the history of questions asked on this database.
    OpenHistory,
    /// Show the key bindings.
    Help,
    /// Ask the question in the input.
    Ask,
    /// Start a new conversation: the next question is not a follow-up.
    NewTopic,
    /// Put a starter question (made from the schema's names) in the input.
    Suggest,
    /// Insert a line break in the question.
    NewLine,
    /// Put an older question in the input.
    RecallOlder,
    /// Put a newer question in the input.
    RecallNewer,
    ScrollUp,
    ScrollDown,
    /// Edit the SQL in place.
    EditSql,
    /// Edit the SQL in `$EDITOR`.
    EditSqlExternal,
    /// Run the SQL shown (or being edited).
    RunSql,
    /// Close the inline editor, keeping the text.
    CloseEditor,
    /// Save the SQL shown, which ran, as the correct answer to the question.
    MarkCorrect,
    /// Copy the focused thing (SQL, cell, answer) to the clipboard with OSC 52.
    Copy,
    /// Copy the selected row as tab-separated text.
    CopyRow,
    ThumbsUp,
    /// Rate the answer as wrong, with an optional note.
    ThumbsDown,
    /// Save the rating with the note typed.
    SubmitNote,
    RowUp,
    RowDown,
    ColumnLeft,
    ColumnRight,
    PageUp,
    PageDown,
    FirstRow,
    LastRow,
    /// Switch the results between table and chart.
    ToggleChart,
    /// Sort the results by the selected column: ascending, descending, off.
    Sort,
    /// Search the results: only rows containing the typed text stay.
    Search,
    /// Keep the search and go back to the grid.
    EndSearch,
    /// Drop the search: every row again.
    ClearSearch,
    /// Show the selected cell in full.
    ShowCell,
    /// Run the SQL again with a higher row cap, for rows past it.
    LoadMore,
    /// Chart the selected column's values.
    ChartValue,
    /// Label the chart with the selected column.
    ChartLabel,
    /// Switch the chart between bars and a line.
    ChartKind,
    ExportCsv,
    ExportJson,
    /// Open the selected history entry in the panes.
    OpenRun,
    /// Ask the selected history entry's question again.
    Rerun,
    /// Close the overlay (history, help, note).
    Close,
    /// Fine-tune the model on the verified pairs (asks first; runs in the background).
    Retrain,
}

/// Where a key is looked up: the focused pane or the open overlay, then `global`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyContext {
    Global,
    Question,
    Schema,
    Sql,
    Results,
    Answer,
    Editor,
    History,
    Note,
    Help,
    /// Typing a search of the results.
    Search,
}

impl KeyContext {
    pub(crate) const ALL: [KeyContext; 11] = [
        KeyContext::Global,
        KeyContext::Question,
        KeyContext::Schema,
        KeyContext::Sql,
        KeyContext::Results,
        KeyContext::Answer,
        KeyContext::Editor,
        KeyContext::History,
        KeyContext::Note,
        KeyContext::Help,
        KeyContext::Search,
    ];

    pub fn title(self) -> &'static str {
        match self {
            KeyContext::Global => "Everywhere",
            KeyContext::Question => "Question",
            KeyContext::Schema => "Schema",
            KeyContext::Sql => "SQL",
            KeyContext::Results => "Results",
            KeyContext::Answer => "Answer",
            KeyContext::Editor => "SQL editor",
            KeyContext::History => "History",
            KeyContext::Note => "Rating note",
            KeyContext::Help => "Help",
            KeyContext::Search => "Results search",
        }
    }

    /// Overlays and the editor own the keyboard: global bindings do not apply there.
    pub(crate) fn is_modal(self) -> bool {
        matches!(
            self,
            KeyContext::Editor
                | KeyContext::History
                | KeyContext::Note
                | KeyContext::Help
                | KeyContext::Search
        )
    }
}

/// One key with its modifiers, normalised so `shift-a` and `A` are the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub modifiers: KeyModifiers,
}

impl Key {
    pub(crate) fn from_event(event: KeyEvent) -> Self {
        let mut modifiers = event.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT);
        let code = match event.code {
            KeyCode::Char(c) if event.modifiers.contains(KeyModifiers::CONTROL) => {
                KeyCode::Char(c.to_ascii_lowercase())
            }
            KeyCode::BackTab => KeyCode::BackTab,
            other => other,
        };
        if event.modifiers.contains(KeyModifiers::SHIFT)
            && !matches!(code, KeyCode::Char(_) | KeyCode::BackTab)
        {
            modifiers |= KeyModifiers::SHIFT;
        }
        Self { code, modifiers }
    }

    /// Parses "ctrl-r", "alt-1", "shift-tab", "enter", "A", "?", "f5", "-".
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut modifiers = KeyModifiers::NONE;
        let mut rest = text;
        loop {
            let lower = rest.to_ascii_lowercase();
            if rest.len() > 1 && lower.starts_with("ctrl-") {
                modifiers |= KeyModifiers::CONTROL;
                rest = &rest[5..];
            } else if rest.len() > 1 && lower.starts_with("alt-") {
                modifiers |= KeyModifiers::ALT;
                rest = &rest[4..];
            } else if rest.len() > 1 && lower.starts_with("shift-") {
                modifiers |= KeyModifiers::SHIFT;
                rest = &rest[6..];
            } else {
                break;
            }
        }
        let named = match rest.to_ascii_lowercase().as_str() {
            "enter" | "return" => Some(KeyCode::Enter),
            "esc" | "escape" => Some(KeyCode::Esc),
            "tab" => Some(KeyCode::Tab),
            "backtab" => Some(KeyCode::BackTab),
            "backspace" => Some(KeyCode::Backspace),
            "delete" | "del" => Some(KeyCode::Delete),
            "up" => Some(KeyCode::Up),
            "down" => Some(KeyCode::Down),
            "left" => Some(KeyCode::Left),
            "right" => Some(KeyCode::Right),
            "pageup" => Some(KeyCode::PageUp),
            "pagedown" => Some(KeyCode::PageDown),
            "home" => Some(KeyCode::Home),
            "end" => Some(KeyCode::End),
            "space" => Some(KeyCode::Char(' ')),
            f if f.len() > 1 && f.starts_with('f') => f[1..]
                .parse::<u8>()
                .ok()
                .filter(|n| (1..=12).contains(n))
                .map(KeyCode::F),
            _ => None,
        };
        let mut code = match named {
            Some(code) => code,
            None => {
                let mut chars = rest.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => KeyCode::Char(c),
                    _ => return Err(format!("unknown key '{text}'")),
                }
            }
        };
        if modifiers.contains(KeyModifiers::SHIFT) {
            match code {
                KeyCode::Tab => code = KeyCode::BackTab,
                KeyCode::Char(c) => code = KeyCode::Char(c.to_ascii_uppercase()),
                _ => {}
            }
            if matches!(code, KeyCode::Char(_) | KeyCode::BackTab) {
                modifiers -= KeyModifiers::SHIFT;
            }
        }
        if modifiers.contains(KeyModifiers::CONTROL)
            && let KeyCode::Char(c) = code
        {
            code = KeyCode::Char(c.to_ascii_lowercase());
        }
        Ok(Self { code, modifiers })
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.modifiers.contains(KeyModifiers::CONTROL) {
            f.write_str("ctrl-")?;
        }
        if self.modifiers.contains(KeyModifiers::ALT) {
            f.write_str("alt-")?;
        }
        if self.modifiers.contains(KeyModifiers::SHIFT) {
            f.write_str("shift-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::Enter => f.write_str("enter"),
            KeyCode::Esc => f.write_str("esc"),
            KeyCode::Tab => f.write_str("tab"),
            KeyCode::BackTab => f.write_str("shift-tab"),
            KeyCode::Backspace => f.write_str("backspace"),
            KeyCode::Delete => f.write_str("del"),
            KeyCode::Up => f.write_str("↑"),
            KeyCode::Down => f.write_str("↓"),
            KeyCode::Left => f.write_str("←"),
            KeyCode::Right => f.write_str("→"),
            KeyCode::PageUp => f.write_str("pgup"),
            KeyCode::PageDown => f.write_str("pgdn"),
            KeyCode::Home => f.write_str("home"),
            KeyCode::End => f.write_str("end"),
            KeyCode::F(n) => write!(f, "f{n}"),
            other => write!(f, "{other:?}"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct BindingSpec {
    keys: Vec<String>,
    command: Command,
    #[serde(default)]
    desc: String,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Binding {
    pub keys: Vec<Key>,
    pub command: Command,
    pub desc: String,
}

/// Every context's bindings, in the order the config lists them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Keymap {
    contexts: BTreeMap<KeyContext, Vec<Binding>>,
}

impl Keymap {
    /// Reads the `[tui.keymap]` table. Errors name the context and the offending value.
    pub(crate) fn from_table(table: &toml::Table) -> Result<Self, String> {
        let mut contexts = BTreeMap::new();
        for (name, value) in table {
            let context: KeyContext = toml::Value::String(name.clone())
                .try_into()
                .map_err(|_| format!("unknown keymap context '{name}'"))?;
            let specs: Vec<BindingSpec> = value
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| format!("keymap.{name}: {}", one_line(&e)))?;
            let mut bindings = Vec::with_capacity(specs.len());
            for spec in specs {
                let keys = spec
                    .keys
                    .iter()
                    .map(|k| Key::parse(k).map_err(|e| format!("keymap.{name}: {e}")))
                    .collect::<Result<Vec<_>, _>>()?;
                bindings.push(Binding {
                    keys,
                    command: spec.command,
                    desc: spec.desc,
                });
            }
            contexts.insert(context, bindings);
        }
        Ok(Self { contexts })
    }

    pub(crate) fn bindings(&self, context: KeyContext) -> &[Binding] {
        self.contexts.get(&context).map_or(&[], Vec::as_slice)
    }

    /// The command for `key` in `context`, falling back to the global bindings unless the
    /// context is modal.
    pub fn lookup(&self, context: KeyContext, key: Key) -> Option<Command> {
        let find = |ctx: KeyContext| {
            self.bindings(ctx)
                .iter()
                .find(|b| b.keys.contains(&key))
                .map(|b| b.command)
        };
        find(context).or_else(|| {
            if context.is_modal() && !(context == KeyContext::Editor && is_global_escape(key)) {
                None
            } else {
                find(KeyContext::Global)
            }
        })
    }

    /// Short "key desc" pairs for the status bar: the context's own bindings first.
    pub(crate) fn hints(&self, context: KeyContext) -> Vec<(String, String)> {
        let mut seen_desc = Vec::new();
        let mut hints = Vec::new();
        let mut contexts = vec![context];
        if !context.is_modal() {
            contexts.push(KeyContext::Global);
        }
        for ctx in contexts {
            for binding in self.bindings(ctx) {
                if binding.desc.is_empty() || seen_desc.contains(&binding.desc) {
                    continue;
                }
                seen_desc.push(binding.desc.clone());
                let keys: Vec<String> = binding.keys.iter().map(Key::to_string).collect();
                hints.push((keys.join("/"), binding.desc.clone()));
            }
        }
        hints
    }

    /// The first key bound to `command` in `context` (or globally), for messages.
    pub(crate) fn key_for(&self, context: KeyContext, command: Command) -> Option<Key> {
        [context, KeyContext::Global].into_iter().find_map(|ctx| {
            self.bindings(ctx)
                .iter()
                .find(|b| b.command == command)
                .and_then(|b| b.keys.first().copied())
        })
    }
}

/// Quit still works inside the editor.
fn is_global_escape(key: Key) -> bool {
    key.modifiers.contains(KeyModifiers::CONTROL)
        && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('q'))
}

fn one_line(error: &toml::de::Error) -> String {
    error
        .to_string()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_match_events() {
        let ctrl_r = Key::parse("ctrl-r").unwrap();
        let event = KeyEvent::new(KeyCode::Char('r'), KeyModifiers::CONTROL);
        assert_eq!(Key::from_event(event), ctrl_r);
        let upper = KeyEvent::new(KeyCode::Char('E'), KeyModifiers::SHIFT);
        assert_eq!(Key::from_event(upper), Key::parse("E").unwrap());
        assert_eq!(Key::from_event(upper), Key::parse("shift-e").unwrap());
        let backtab = KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT);
        assert_eq!(Key::from_event(backtab), Key::parse("backtab").unwrap());
        assert_eq!(Key::parse("f5").unwrap().code, KeyCode::F(5));
        assert_eq!(Key::parse("-").unwrap().code, KeyCode::Char('-'));
        assert!(Key::parse("ctrl-bogus").is_err());
    }
}
