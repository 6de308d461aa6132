//! The identifier-aware analyzer shared by indexing and querying.
//!
//! tantivy's default tokenizer keeps `InvoiceLine` as one token; this one splits every
//! identifier into words first (`InvoiceLine` -> `invoice`, `line`), then drops English
//! stop words and stems (`singers` -> `singer`), so questions and schema names meet.

use tantivy::tokenizer::{
    Language, Stemmer, StopWordFilter, TextAnalyzer, Token, TokenStream, Tokenizer,
};

use crate::core::db::ident::split_identifier;

/// The name the analyzer is registered under in every schema index.
pub(crate) const ANALYZER: &str = "identifier";

/// Splits text on whitespace and punctuation, then splits each piece as an identifier.
#[derive(Clone, Default)]
pub(crate) struct IdentifierTokenizer;

pub(crate) struct IdentifierTokenStream {
    tokens: Vec<Token>,
    next: usize,
}

impl Tokenizer for IdentifierTokenizer {
    type TokenStream<'a> = IdentifierTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> IdentifierTokenStream {
        let mut tokens = Vec::new();
        let mut position = 0;
        for (start, piece) in pieces(text) {
            for word in split_identifier(piece) {
                tokens.push(Token {
                    offset_from: start,
                    offset_to: start + piece.len(),
                    position,
                    text: word,
                    position_length: 1,
                });
                position += 1;
            }
        }
        IdentifierTokenStream { tokens, next: 0 }
    }
}

impl TokenStream for IdentifierTokenStream {
    fn advance(&mut self) -> bool {
        if self.next < self.tokens.len() {
            self.next += 1;
            true
        } else {
            false
        }
    }

    fn token(&self) -> &Token {
        &self.tokens[self
            .next
            .saturating_sub(1)
            .min(self.tokens.len().saturating_sub(1))]
    }

    fn token_mut(&mut self) -> &mut Token {
        let index = self
            .next
            .saturating_sub(1)
            .min(self.tokens.len().saturating_sub(1));
        &mut self.tokens[index]
    }
}

/// Maximal runs of characters that may belong to one identifier, with their byte offsets.
fn pieces(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    for (index, ch) in text.char_indices() {
        let inside = ch.is_alphanumeric() || ch == '_';
        match (inside, start) {
            (true, None) => start = Some(index),
            (false, Some(from)) => {
                out.push((from, &text[from..index]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(from) = start {
        out.push((from, &text[from..]));
    }
    out
}

/// Words that carry no schema meaning in a question ("how many", "show me", "list all").
const QUESTION_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with", "what", "which", "who", "whose", "whom", "how",
    "many", "much", "show", "list", "give", "find", "return", "me", "all", "each", "every", "do",
    "does", "did", "have", "has", "had", "i", "we", "you", "please", "from", "were", "been",
    "those", "its", "than", "also", "any", "some", "tell", "get",
];

/// The analyzer: identifier split, stop words removed, English stemming.
pub(crate) fn analyzer() -> TextAnalyzer {
    let stop = StopWordFilter::remove(QUESTION_WORDS.iter().map(|w| (*w).to_string()));
    TextAnalyzer::builder(IdentifierTokenizer)
        .filter(stop)
        .filter(Stemmer::new(Language::English))
        .build()
}

/// The analyzed terms of `text`, in order, duplicates kept.
pub(crate) fn terms(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    while stream.advance() {
        out.push(stream.token().text.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_stems_and_drops_stop_words() {
        let mut analyzer = analyzer();
        assert_eq!(
            terms(&mut analyzer, "How many InvoiceLines for cust_id?"),
            ["invoic", "line", "cust", "id"]
        );
        assert_eq!(
            terms(&mut analyzer, "singers"),
            terms(&mut analyzer, "Singer")
        );
        assert!(terms(&mut analyzer, "!!! ??? '' \"").is_empty());
        assert_eq!(terms(&mut analyzer, "Ærø-Straße").len(), 2);
    }
}
