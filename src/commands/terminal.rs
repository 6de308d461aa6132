//! Text from the database and the model goes to the user's terminal through here.
//!
//! A table name, a value or a model's answer can hold escape sequences: OSC to retitle the
//! terminal or write the clipboard (OSC 52), CSI to move the cursor and overwrite what was
//! printed. Every line a command prints passes [`visible`], which writes control characters
//! as `\uXXXX`. That spelling is also a valid JSON escape, and the characters it replaces
//! only occur inside JSON strings, so `--json` output stays valid and means the same.

use std::borrow::Cow;
use std::io::Write;

/// Whether printing `c` raw could make the terminal do something other than show text.
fn is_unsafe(c: char) -> bool {
    match c {
        '\n' | '\t' => false,
        // C0 controls, DEL and the C1 controls (8-bit CSI, OSC and friends).
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => true,
        // Bidirectional overrides and isolates reorder what is shown ("Trojan source").
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => true,
        _ => false,
    }
}

/// `text` with every unsafe character written as `\uXXXX`; newlines and tabs are kept.
pub fn visible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_unsafe(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Writes `text` to stdout made [`visible`]; a closed pipe is not an error worth a panic.
pub fn print_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(visible(text).as_bytes());
}

/// Writes `text` to stderr made [`visible`].
pub fn print_stderr(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(visible(text).as_bytes());
}

/// `println!` for text that may hold database or model content.
#[macro_export]
macro_rules! outln {
    () => { $crate::commands::terminal::print_stdout("\n") };
    ($($arg:tt)*) => {
        $crate::commands::terminal::print_stdout(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for text that may hold database or model content.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::commands::terminal::print_stdout(&format!($($arg)*)) };
}

/// `eprintln!` for text that may hold database or model content.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::commands::terminal::print_stderr(&format!("{}\n", format_args!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    use super::visible;

    #[test]
    fn escape_sequences_become_visible_text() {
        let osc52 = "Album\u{1b}]52;c;aGk=\u{7}";
        assert_eq!(visible(osc52), "Album\\u001b]52;c;aGk=\\u0007");
        assert_eq!(visible("a\u{9b}31m"), "a\\u009b31m");
        assert_eq!(visible("over\rwrite"), "over\\u000dwrite");
        assert_eq!(visible("abc\u{202e}def"), "abc\\u202edef");
        assert_eq!(
            visible("two\nlines\tand tab, Ünïcode"),
            "two\nlines\tand tab, Ünïcode"
        );
    }

    #[test]
    fn json_stays_valid_and_means_the_same() {
        let value = serde_json::json!({ "name": "x\u{9b}2J\u{202e}y\u{1b}" });
        let printed = visible(&value.to_string()).into_owned();
        let back: serde_json::Value = serde_json::from_str(&printed).unwrap();
        assert_eq!(back, value);
    }
}
