//! Splits schema identifiers into the words a person would type.
//!
//! `InvoiceLine` -> `invoice line`, `cust_id` -> `cust id`, `HTTPServer2` -> `http server 2`.
//! Retrieval and prompt rendering both rely on this, so it must be deterministic and total.

/// Splits an identifier into lower-case words on case changes, digits and separators.
pub(crate) fn split_identifier(identifier: &str) -> Vec<String> {
    let chars: Vec<char> = identifier.chars().collect();
    let mut words = Vec::new();
    let mut current = String::new();
    for (index, &ch) in chars.iter().enumerate() {
        if !ch.is_alphanumeric() {
            flush(&mut current, &mut words);
            continue;
        }
        if let Some(&prev) = index.checked_sub(1).and_then(|i| chars.get(i)) {
            let next = chars.get(index + 1).copied();
            let lower_to_upper = prev.is_lowercase() && ch.is_uppercase();
            // "HTTPServer": the S starts a new word because a lower-case letter follows it.
            let acronym_end =
                prev.is_uppercase() && ch.is_uppercase() && next.is_some_and(|n| n.is_lowercase());
            let digit_edge = prev.is_ascii_digit() != ch.is_ascii_digit() && prev.is_alphanumeric();
            if lower_to_upper || acronym_end || digit_edge {
                flush(&mut current, &mut words);
            }
        }
        current.extend(ch.to_lowercase());
    }
    flush(&mut current, &mut words);
    words
}

/// The identifier as a phrase: `InvoiceLine` -> `invoice line`.
pub(crate) fn identifier_phrase(identifier: &str) -> String {
    split_identifier(identifier).join(" ")
}

fn flush(current: &mut String, words: &mut Vec<String>) {
    if !current.is_empty() {
        words.push(std::mem::take(current));
    }
}

/// Lower-case words of letters and digits, for matching free text (a question, a value).
pub(crate) fn lowercase_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Quotes an identifier for SQLite so names with spaces, quotes or keywords work.
pub(crate) fn quote_identifier(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// A character that may appear in a bare SQL name.
pub(crate) fn is_identifier_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether SQLite reads `name` as that name only when quoted: a space or symbol in it,
/// or a leading digit.
pub(crate) fn needs_quotes(name: &str) -> bool {
    !name.chars().all(is_identifier_char) || name.starts_with(|c: char| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_spaces_symbols_or_a_leading_digit_need_quotes() {
        for bare in ["Invoice", "cust_id", "HTTPServer2", "Straße"] {
            assert!(!needs_quotes(bare), "{bare}");
        }
        for quoted in ["Order Details", "a-b", "2020_sales", "x\"y"] {
            assert!(needs_quotes(quoted), "{quoted}");
        }
    }

    #[test]
    fn splits_common_identifier_styles() {
        assert_eq!(split_identifier("InvoiceLine"), ["invoice", "line"]);
        assert_eq!(split_identifier("cust_id"), ["cust", "id"]);
        assert_eq!(split_identifier("customerId"), ["customer", "id"]);
        assert_eq!(split_identifier("HTTPServer2"), ["http", "server", "2"]);
        assert_eq!(split_identifier("Unit Price"), ["unit", "price"]);
        assert_eq!(split_identifier("Ærø-Straße"), ["ærø", "straße"]);
        assert_eq!(split_identifier("___"), Vec::<String>::new());
        assert_eq!(identifier_phrase("PlaylistTrack"), "playlist track");
    }
}
