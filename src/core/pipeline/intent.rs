//! Questions that ask to change data ("Delete all customers from Canada") are refused in
//! words before any SQL is written: rewriting them into a SELECT would answer a question
//! nobody asked.
//!
//! Only a request counts: the question opens with a changing verb, after an optional
//! polite lead-in ("please", "can you", "I want to"). A question about changes ("which
//! customers were updated last", "tracks added in 2013") opens otherwise and is read.

/// Why the question is refused ("nano-analyst only reads; this question asks to delete
/// rows"), or `None` for a question that only reads.
pub fn write_request(question: &str) -> Option<String> {
    let words: Vec<String> = question
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let mut rest = words.as_slice();
    loop {
        let skip = LEAD_INS
            .iter()
            .map(|lead| lead.split(' ').collect::<Vec<_>>())
            .find(|lead| rest.len() > lead.len() && rest.iter().zip(lead).all(|(w, l)| w == l))
            .map_or(0, |lead| lead.len());
        if skip == 0 {
            break;
        }
        rest = &rest[skip..];
    }
    let verb = rest.first()?;
    let (_, asks) = CHANGING_VERBS.iter().find(|(v, _)| v == verb)?;
    Some(format!(
        "nano-analyst only reads; this question asks to {asks}"
    ))
}

/// Openings that make a request polite without changing what it asks.
const LEAD_INS: &[&str] = &[
    "please",
    "can you",
    "could you",
    "would you",
    "will you",
    "i want to",
    "i'd like to",
    "i would like to",
    "i need to",
    "we need to",
    "let's",
    "go ahead and",
    "now",
    "just",
];

/// A verb that opens a request to change data, and how the refusal names the request.
const CHANGING_VERBS: &[(&str, &str)] = &[
    ("delete", "delete rows"),
    ("remove", "delete rows"),
    ("erase", "delete rows"),
    ("purge", "delete rows"),
    ("truncate", "delete rows"),
    ("update", "change rows"),
    ("change", "change rows"),
    ("modify", "change rows"),
    ("edit", "change rows"),
    ("set", "change rows"),
    ("rename", "change the database"),
    ("replace", "change rows"),
    ("increase", "change rows"),
    ("decrease", "change rows"),
    ("raise", "change rows"),
    ("insert", "add rows"),
    ("add", "add rows"),
    ("create", "change the database"),
    ("drop", "change the database"),
    ("alter", "change the database"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_to_change_data_are_refused() {
        assert_eq!(
            write_request("Delete all customers from Canada").as_deref(),
            Some("nano-analyst only reads; this question asks to delete rows")
        );
        for question in [
            "Please update the price of every track to 0.99",
            "Can you insert a new artist called Foo?",
            "add a customer named Ann Smith",
            "DROP TABLE Customer",
            "Could you please remove the invoices from 2009?",
            "I want to change Luis's email",
            "Set all prices to 1",
        ] {
            assert!(write_request(question).is_some(), "{question}");
        }
    }

    #[test]
    fn questions_about_changes_are_read() {
        for question in [
            "Which customers were updated last?",
            "tracks added in 2013",
            "How many tracks were added in 2013?",
            "List the albums created by AC/DC",
            "What is the total after removing discounts?",
            "Show the deleted invoices",
            "How many customers are there in each country?",
            "Which genre sells best in Germany?",
            "Can you list the employees?",
            "Please show the top 5 artists",
        ] {
            assert_eq!(write_request(question), None, "{question}");
        }
    }
}
