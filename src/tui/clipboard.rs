//! Copy to the system clipboard with OSC 52: the terminal does the copying, so it works
//! over SSH and inside tmux (with `set-clipboard on`), with no clipboard daemon.

use std::io::Write;

use base64::Engine;

/// The escape sequence that puts `text` on the clipboard.
pub(crate) fn osc52(text: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
    format!("\x1b]52;c;{encoded}\x07")
}

pub(crate) fn copy_to_terminal(text: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout();
    stdout
        .write_all(osc52(text).as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_as_osc52() {
        assert_eq!(super::osc52("hi"), "\x1b]52;c;aGk=\x07");
    }
}
