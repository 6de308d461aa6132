//! The `[tui]` section of the config: mouse, export directory, theme and keymap. The
//! built-in defaults live in `assets/default-config.toml`; user files override them.

use std::path::PathBuf;
use std::str::FromStr;

use ratatui::style::Color;

use crate::config::{DEFAULT_CONFIG, Settings};
use crate::tui::keymap::Keymap;

#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub border: Color,
    pub border_focused: Color,
    pub title: Color,
    pub text: Color,
    pub dim: Color,
    pub keyword: Color,
    pub string: Color,
    pub number: Color,
    pub comment: Color,
    pub error: Color,
    pub ok: Color,
    pub selection_bg: Color,
    pub status_bg: Color,
    pub status_fg: Color,
    pub accent: Color,
    pub bar: Color,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TuiConfig {
    pub mouse: bool,
    pub thousands_separators: bool,
    pub export_dir: Option<PathBuf>,
    pub theme: Theme,
    pub keymap: Keymap,
}

impl TuiConfig {
    /// Reads the `[tui]` table of loaded settings; `source` names the file in errors.
    pub(crate) fn from_settings(settings: &Settings, source: &str) -> Result<Self, String> {
        let invalid = |reason: String| format!("invalid config file '{source}': tui.{reason}");
        let table = &settings.tui;
        let mouse = match table.get("mouse") {
            None => false,
            Some(toml::Value::Boolean(b)) => *b,
            Some(other) => {
                return Err(invalid(format!("mouse must be true or false, not {other}")));
            }
        };
        let thousands_separators = match table.get("thousands_separators") {
            None => false,
            Some(toml::Value::Boolean(b)) => *b,
            Some(other) => {
                return Err(invalid(format!(
                    "thousands_separators must be true or false, not {other}"
                )));
            }
        };
        let export_dir = match table.get("export_dir") {
            None => None,
            Some(toml::Value::String(s)) if s.is_empty() => None,
            Some(toml::Value::String(s)) => Some(PathBuf::from(s)),
            Some(other) => return Err(invalid(format!("export_dir must be a path, not {other}"))),
        };
        let empty = toml::Table::new();
        let theme_table = match table.get("theme") {
            Some(toml::Value::Table(t)) => t,
            _ => &empty,
        };
        let theme = Theme::from_table(theme_table).map_err(invalid)?;
        let keymap = match table.get("keymap") {
            Some(toml::Value::Table(t)) => Keymap::from_table(t).map_err(invalid)?,
            _ => Keymap::default(),
        };
        Ok(Self {
            mouse,
            thousands_separators,
            export_dir,
            theme,
            keymap,
        })
    }

    /// The built-in configuration (tests and fallbacks).
    pub fn builtin() -> Self {
        let parsed = DEFAULT_CONFIG
            .parse::<toml::Table>()
            .ok()
            .and_then(|t| toml::Value::Table(t).try_into::<Settings>().ok());
        match parsed.and_then(|s| Self::from_settings(&s, "built-in defaults").ok()) {
            Some(config) => config,
            // The embedded file is checked by a unit test; this keeps the app usable anyway.
            None => Self {
                mouse: false,
                thousands_separators: false,
                export_dir: None,
                theme: Theme::plain(),
                keymap: Keymap::default(),
            },
        }
    }
}

impl Theme {
    fn plain() -> Self {
        Self {
            border: Color::DarkGray,
            border_focused: Color::Cyan,
            title: Color::White,
            text: Color::Reset,
            dim: Color::DarkGray,
            keyword: Color::LightBlue,
            string: Color::LightGreen,
            number: Color::LightYellow,
            comment: Color::DarkGray,
            error: Color::LightRed,
            ok: Color::LightGreen,
            selection_bg: Color::DarkGray,
            status_bg: Color::Black,
            status_fg: Color::White,
            accent: Color::Cyan,
            bar: Color::Cyan,
        }
    }

    fn from_table(table: &toml::Table) -> Result<Self, String> {
        let mut theme = Self::plain();
        for (name, value) in table {
            let text = value
                .as_str()
                .ok_or_else(|| format!("theme.{name} must be a colour name or \"#rrggbb\""))?;
            let color = Color::from_str(text)
                .map_err(|_| format!("theme.{name}: unknown colour '{text}'"))?;
            let slot = match name.as_str() {
                "border" => &mut theme.border,
                "border_focused" => &mut theme.border_focused,
                "title" => &mut theme.title,
                "text" => &mut theme.text,
                "dim" => &mut theme.dim,
                "keyword" => &mut theme.keyword,
                "string" => &mut theme.string,
                "number" => &mut theme.number,
                "comment" => &mut theme.comment,
                "error" => &mut theme.error,
                "ok" => &mut theme.ok,
                "selection_bg" => &mut theme.selection_bg,
                "status_bg" => &mut theme.status_bg,
                "status_fg" => &mut theme.status_fg,
                "accent" => &mut theme.accent,
                "bar" => &mut theme.bar,
                other => return Err(format!("theme has no colour named '{other}'")),
            };
            *slot = color;
        }
        Ok(theme)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::keymap::{Command, Key, KeyContext};

    #[test]
    fn the_embedded_defaults_parse_with_every_context() {
        let settings = Settings::load(None).unwrap();
        let config = TuiConfig::from_settings(&settings, "defaults").unwrap();
        for context in KeyContext::ALL {
            assert!(
                !config.keymap.bindings(context).is_empty(),
                "{context:?} has no bindings"
            );
        }
        let key = Key::parse("ctrl-r").unwrap();
        assert_eq!(
            config.keymap.lookup(KeyContext::Results, key),
            Some(Command::OpenHistory)
        );
        assert_eq!(config, TuiConfig::builtin());
    }

    #[test]
    fn bad_values_name_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        for (text, needle) in [
            (
                "[tui.theme]\nborder = \"blurple\"\n",
                "unknown colour 'blurple'",
            ),
            (
                "[tui.keymap]\nglobal = [{ keys = [\"ctrl-r\"], command = \"fly\" }]\n",
                "keymap.global",
            ),
            (
                "[tui.keymap]\nglobal = [{ keys = [\"hyper-x\"], command = \"quit\" }]\n",
                "unknown key 'hyper-x'",
            ),
            ("[tui]\nmouse = 3\n", "mouse must be true or false"),
        ] {
            std::fs::write(&file, text).unwrap();
            let settings = Settings::load(Some(&file)).unwrap();
            let error = TuiConfig::from_settings(&settings, "config.toml").unwrap_err();
            assert!(error.contains(needle), "{error}");
            assert!(error.contains("config.toml"), "{error}");
        }
    }
}
