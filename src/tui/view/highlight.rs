//! A small SQL highlighter for the SQL pane: keywords, strings, numbers, comments. It works
//! on partial text, so it can colour SQL while it streams.

use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};

use crate::tui::config::Theme;

const KEYWORDS: &[&str] = &[
    "select",
    "from",
    "where",
    "join",
    "inner",
    "left",
    "right",
    "outer",
    "full",
    "cross",
    "on",
    "using",
    "group",
    "by",
    "order",
    "having",
    "limit",
    "offset",
    "as",
    "and",
    "or",
    "not",
    "in",
    "is",
    "null",
    "like",
    "glob",
    "between",
    "case",
    "when",
    "then",
    "else",
    "end",
    "distinct",
    "union",
    "all",
    "intersect",
    "except",
    "with",
    "recursive",
    "asc",
    "desc",
    "exists",
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "cast",
    "natural",
    "over",
    "partition",
    "values",
    "collate",
    "nocase",
    "strftime",
    "coalesce",
    "round",
    "length",
    "lower",
    "upper",
    "substr",
    "date",
    "total",
    "ifnull",
    "true",
    "false",
];

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Plain,
    Keyword,
    String,
    Number,
    Comment,
}

/// Lines of `sql`, coloured by token kind.
pub fn highlight_sql(sql: &str, theme: &Theme) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let mut in_block_comment = false;
    for raw in sql.split('\n') {
        let mut spans = Vec::new();
        for (kind, text) in tokens(raw, &mut in_block_comment) {
            let style = match kind {
                Kind::Plain => Style::default().fg(theme.text),
                Kind::Keyword => Style::default()
                    .fg(theme.keyword)
                    .add_modifier(Modifier::BOLD),
                Kind::String => Style::default().fg(theme.string),
                Kind::Number => Style::default().fg(theme.number),
                Kind::Comment => Style::default().fg(theme.comment),
            };
            spans.push(Span::styled(text, style));
        }
        lines.push(Line::from(spans));
    }
    lines
}

fn tokens(line: &str, in_block_comment: &mut bool) -> Vec<(Kind, String)> {
    let chars: Vec<char> = line.chars().collect();
    let mut out: Vec<(Kind, String)> = Vec::new();
    let mut i = 0;
    let push = |out: &mut Vec<(Kind, String)>, kind: Kind, text: String| {
        if let Some(last) = out.last_mut()
            && last.0 == kind
        {
            last.1.push_str(&text);
            return;
        }
        out.push((kind, text));
    };
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let kind = if *in_block_comment {
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            if i < chars.len() {
                i += 2;
                *in_block_comment = false;
            }
            Kind::Comment
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            i = chars.len();
            Kind::Comment
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            *in_block_comment = true;
            i += 2;
            continue_comment(&chars, &mut i, in_block_comment);
            Kind::Comment
        } else if c == '\'' || c == '"' || c == '`' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += 1;
            }
            i = (i + 1).min(chars.len());
            if c == '\'' { Kind::String } else { Kind::Plain }
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            Kind::Number
        } else if c.is_alphanumeric() || c == '_' {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect::<String>().to_lowercase();
            if KEYWORDS.contains(&word.as_str()) {
                Kind::Keyword
            } else {
                Kind::Plain
            }
        } else {
            i += 1;
            Kind::Plain
        };
        push(&mut out, kind, chars[start..i].iter().collect());
    }
    out
}

fn continue_comment(chars: &[char], i: &mut usize, in_block_comment: &mut bool) {
    while *i < chars.len() {
        if chars[*i] == '*' && chars.get(*i + 1) == Some(&'/') {
            *i += 2;
            *in_block_comment = false;
            return;
        }
        *i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::config::TuiConfig;

    #[test]
    fn colours_keywords_strings_and_numbers() {
        let theme = TuiConfig::builtin().theme;
        let lines = highlight_sql(
            "SELECT Name FROM Genre WHERE x = 'Rock' LIMIT 5 -- hi",
            &theme,
        );
        let spans = &lines[0].spans;
        let find = |text: &str| spans.iter().find(|s| s.content == text).unwrap().style.fg;
        assert_eq!(find("SELECT"), Some(theme.keyword));
        assert_eq!(find("'Rock'"), Some(theme.string));
        assert_eq!(find("5"), Some(theme.number));
        assert_eq!(find("-- hi"), Some(theme.comment));
        let text: String = spans.iter().map(|s| s.content.as_ref()).collect();
        assert_eq!(
            text,
            "SELECT Name FROM Genre WHERE x = 'Rock' LIMIT 5 -- hi"
        );
    }
}
