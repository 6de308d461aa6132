//! Follow-up questions: the earlier question/SQL turns of a conversation, and the pure
//! heuristic that decides whether a new question continues the conversation or starts a
//! new topic ("same for 2024" continues; "How many albums are there?" starts afresh).

use crate::core::db::ident::split_identifier;

/// One earlier question and the SQL that answered it, sent as a past turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarlierTurn {
    pub question: String,
    pub sql: String,
}

/// Earlier turns sent with a follow-up: more distract a small model more than they help.
pub const MAX_EARLIER_TURNS: usize = 2;

/// Openings that only make sense after an earlier question.
const OPENINGS: &[&str] = &[
    "and",
    "but",
    "instead",
    "also",
    "now",
    "then",
    "same",
    "only",
    "just",
    "what about",
    "how about",
    "and for",
    "except",
    "excluding",
    "without",
    "plus",
    "show only",
    "break it down",
    "break that down",
];

/// Phrases anywhere in the question that point back to an earlier one.
const ANAPHORA: &[&str] = &[
    "same",
    "those",
    "these",
    "them",
    "it",
    "its",
    "they",
    "their",
    "that one",
    "the above",
    "previous",
    "instead",
    "now by",
    "what about",
    "and for",
    "as well",
    "too",
    "again",
    "top 3",
    "top 5",
    "top 10",
    "by genre",
    "by year",
    "by country",
    "per year",
];

/// Words short enough questions may lack a table word for and still stand alone.
const SHORT_WORDS: usize = 4;

/// Whether `question` reads as a follow-up to the previous one. `table_words` are the
/// database's table names (lower case); a short question naming none of them continues.
pub fn reads_as_follow_up(question: &str, table_words: &[String]) -> bool {
    let lower = question.trim().to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return false;
    }
    let joined = words.join(" ");
    let has_phrase = |phrase: &str| {
        joined == phrase
            || joined.starts_with(&format!("{phrase} "))
            || joined.ends_with(&format!(" {phrase}"))
            || joined.contains(&format!(" {phrase} "))
    };
    if OPENINGS
        .iter()
        .any(|o| joined == *o || joined.starts_with(&format!("{o} ")))
    {
        return true;
    }
    if ANAPHORA.iter().any(|p| has_phrase(p)) {
        return true;
    }
    let names_a_table = words
        .iter()
        .any(|w| table_words.iter().any(|t| singular(w) == singular(t)));
    words.len() <= SHORT_WORDS && !names_a_table
}

/// The words of the tables' names, lower case (`InvoiceLine` gives "invoice" and "line").
pub fn table_words<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut words: Vec<String> = names
        .into_iter()
        .flat_map(split_identifier)
        .map(|w| w.to_lowercase())
        .collect();
    words.sort();
    words.dedup();
    words
}

/// "albums" and "album" name the same table.
fn singular(word: &str) -> &str {
    word.strip_suffix("es")
        .filter(|w| w.ends_with('s') || w.ends_with('x'))
        .or_else(|| word.strip_suffix('s'))
        .unwrap_or(word)
}

/// The turns to send with a follow-up: the newest [`MAX_EARLIER_TURNS`], oldest first.
pub fn recent_turns(turns: &[EarlierTurn]) -> Vec<EarlierTurn> {
    let start = turns.len().saturating_sub(MAX_EARLIER_TURNS);
    turns[start..].to_vec()
}

/// What retrieval searches with for a follow-up: the earlier questions name the tables
/// ("same for 2024" alone names none).
pub fn retrieval_text(question: &str, earlier: &[EarlierTurn]) -> String {
    let mut text: Vec<&str> = earlier.iter().map(|t| t.question.as_str()).collect();
    text.push(question);
    text.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables() -> Vec<String> {
        table_words([
            "Album",
            "Artist",
            "Track",
            "Invoice",
            "InvoiceLine",
            "Genre",
            "Customer",
        ])
    }

    #[test]
    fn anaphora_and_ellipsis_read_as_follow_ups() {
        for question in [
            "same for 2024",
            "only the top 3",
            "now by genre",
            "what about Brazil?",
            "and for 2010?",
            "And in Canada?",
            "but only rock",
            "instead count the albums",
            "sort them by name",
            "how many of those are longer than 5 minutes?",
            "Which of these has the most tracks?",
            "2013",
            "per year",
            "in descending order",
        ] {
            assert!(reads_as_follow_up(question, &tables()), "{question}");
        }
    }

    #[test]
    fn questions_that_stand_alone_start_a_new_topic() {
        for question in [
            "How many albums are there?",
            "Which artist has the most albums?",
            "List the customers from Brazil",
            "Total invoice amount per country",
            "tracks per genre",
            "How many employees does the company have?",
            "",
        ] {
            assert!(!reads_as_follow_up(question, &tables()), "{question}");
        }
    }

    #[test]
    fn retrieval_searches_with_the_earlier_questions_and_two_turns_at_most() {
        let turn = |q: &str| EarlierTurn {
            question: q.into(),
            sql: "SELECT 1".into(),
        };
        let turns = [turn("a"), turn("b"), turn("c")];
        assert_eq!(recent_turns(&turns), [turn("b"), turn("c")]);
        assert_eq!(
            retrieval_text("same for 2024", &[turn("sales in 2023")]),
            "sales in 2023 same for 2024"
        );
    }
}
