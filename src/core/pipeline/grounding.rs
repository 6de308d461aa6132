//! Whether an answer sentence states only what the result rows and the question hold, the
//! plain sentence that replaces one that does not, and cutting a long answer cleanly.
//!
//! Strict but fair: a number in the sentence must equal a cell value (rounded to the
//! precision the sentence shows, thousands separators and currency signs allowed), the row
//! count or the column count, or a number in the question. A quoted name, or a capitalised
//! word inside a sentence, must appear in a cell, a column name or the question. Nothing is
//! computed: a total or a percentage the rows do not hold is a claim the rows cannot back.

use crate::core::db::exec::{Cell, QueryResult, group_thousands};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// What a sentence states that neither the rows nor the question hold, in order; empty when
/// the sentence is grounded. `shown_rows`: how many rows the model was shown, so that "and
/// 5 more" about the rows it was not shown counts as held.
pub fn ungrounded_claims(
    sentence: &str,
    question: &str,
    result: &QueryResult,
    shown_rows: usize,
) -> Vec<String> {
    let mut known = Known::new(question, result);
    if let Some(unshown) = result.rows.len().checked_sub(shown_rows).filter(|n| *n > 0) {
        known.numbers.push(unshown as f64);
    }
    let mut claims: Vec<String> = numbers_in(sentence)
        .into_iter()
        .filter(|number| !known.has_number(number))
        .map(|number| number.text)
        .collect();
    let quoted = quoted_names(sentence);
    // A capitalised word inside a quoted name is judged with the name, not alone.
    let words = capitalised_words(sentence)
        .into_iter()
        .filter(|word| !quoted.iter().any(|name| name.contains(word.as_str())));
    for name in quoted.iter().cloned().chain(words) {
        if !known.has_name(&name) && !claims.contains(&name) {
            claims.push(name);
        }
    }
    claims
}

/// The result stated plainly, without the model: "Total: 1,234.56" for a lone value,
/// "24 rows: Country, customers" for a table, "No rows matched." for none.
pub fn template_answer(result: &QueryResult) -> String {
    if let ([column], [row]) = (result.columns.as_slice(), result.rows.as_slice())
        && let [value] = row.as_slice()
    {
        return format!("{column}: {}", shown_value(value));
    }
    if result.rows.is_empty() {
        return "No rows matched.".into();
    }
    let total = result.total_rows.unwrap_or(result.rows.len() as u64);
    let noun = if total == 1 { "row" } else { "rows" };
    let kept = if result.truncated() {
        format!(" (first {} kept)", result.rows.len())
    } else {
        String::new()
    };
    format!(
        "{} {noun}{kept}: {}",
        group_thousands(&total.to_string()),
        result.columns.join(", ")
    )
}

/// `text` cut at its last word boundary, without a dangling comma, ending in "…": for an
/// answer the token limit stopped, so it never ends mid-number or mid-word.
pub(crate) fn cut_at_word(text: &str) -> String {
    let text = text.trim_end();
    let kept = match text.rfind(char::is_whitespace) {
        Some(space) => &text[..space],
        None => text,
    };
    let kept = kept.trim_end_matches(|c: char| c.is_whitespace() || ",;:-–—(".contains(c));
    format!("{kept}…")
}

fn shown_value(value: &Cell) -> String {
    match value {
        Cell::Integer(_) | Cell::Real(_) => group_thousands(&value.to_string()),
        other => other.preview(200).into_owned(),
    }
}

/// A number as a sentence writes it.
#[derive(Debug, Clone, PartialEq)]
struct Number {
    text: String,
    value: f64,
    /// Digits after the decimal point, which says how far a stated value was rounded.
    decimals: usize,
}

/// Numbers in `text`: "$1,234.56", "37.6", "-3", "45%"; not the digits of a word such as
/// "mp3" or "1st" (parts of names, not quantities).
fn numbers_in(text: &str) -> Vec<Number> {
    let chars: Vec<char> = text.chars().collect();
    let mut numbers = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() || (i > 0 && chars[i - 1].is_alphanumeric()) {
            i += 1;
            continue;
        }
        let negative = i > 0 && chars[i - 1] == '-' && (i < 2 || !chars[i - 2].is_alphanumeric());
        let start = i;
        let mut digits = String::new();
        let mut decimals = 0;
        let mut in_fraction = false;
        while i < chars.len() {
            let c = chars[i];
            let next_is_digit = chars.get(i + 1).is_some_and(char::is_ascii_digit);
            if c.is_ascii_digit() {
                digits.push(c);
                decimals += usize::from(in_fraction);
            } else if c == ',' && !in_fraction && thousands_group_follows(&chars, i) {
            } else if c == '.' && !in_fraction && next_is_digit {
                digits.push('.');
                in_fraction = true;
            } else {
                break;
            }
            i += 1;
        }
        if chars.get(i).is_some_and(|c| c.is_alphabetic()) {
            continue;
        }
        let shown: String = chars[start..i].iter().collect();
        if let Ok(value) = digits.parse::<f64>() {
            numbers.push(Number {
                text: shown,
                value: if negative { -value } else { value },
                decimals,
            });
        }
    }
    numbers
}

/// A comma followed by exactly three digits (then no fourth): a thousands separator, not a
/// list ("1,2,3" is three numbers; "1,234" is one).
fn thousands_group_follows(chars: &[char], comma: usize) -> bool {
    let group = chars.get(comma + 1..comma + 4);
    group.is_some_and(|g| g.iter().all(char::is_ascii_digit))
        && !chars.get(comma + 4).is_some_and(char::is_ascii_digit)
}

/// Text between double quotes, curly quotes or single quotes used as quotes (not
/// apostrophes).
fn quoted_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (open, close) in [('"', '"'), ('“', '”'), ('\'', '\'')] {
        let mut rest = text;
        while let Some(start) = rest.find(open) {
            let before = rest[..start].chars().next_back();
            let after_open = &rest[start + open.len_utf8()..];
            if open == '\'' && before.is_some_and(char::is_alphanumeric) {
                rest = after_open;
                continue;
            }
            let Some(end) = after_open.find(close) else {
                break;
            };
            let name = after_open[..end].trim();
            if !name.is_empty() && name.chars().count() <= 80 {
                names.push(name.to_string());
            }
            rest = &after_open[end + close.len_utf8()..];
        }
    }
    names
}

/// Capitalised words that do not open a sentence ("... is Rock."): the names a sentence
/// states without quotes.
fn capitalised_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut sentence_start = true;
    for raw in text.split_whitespace() {
        let word = raw.trim_matches(|c: char| !c.is_alphanumeric());
        let word = word
            .strip_suffix("'s")
            .or_else(|| word.strip_suffix("’s"))
            .unwrap_or(word);
        let opens = sentence_start;
        sentence_start = raw.ends_with(['.', '!', '?', ':']);
        if opens || word.is_empty() || COMMON_CAPITALS.contains(&word) {
            continue;
        }
        if word.chars().next().is_some_and(char::is_uppercase)
            && !word.chars().any(|c| c.is_ascii_digit())
        {
            words.push(word.to_string());
        }
    }
    words
}

/// Capitalised words a sentence uses without naming anything in the data.
const COMMON_CAPITALS: &[&str] = &[
    "I", "SQL", "ID", "Id", "NULL", "OK", "The", "A", "An", "In", "There", "This", "These",
];

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// What a sentence may state: the question, the cells and the column names.
struct Known {
    numbers: Vec<f64>,
    /// Lower-cased question, column names and text cells, one per entry.
    texts: Vec<String>,
    /// Months a date cell ("2009-09-14") names, 1-based.
    months: Vec<usize>,
}

impl Known {
    fn new(question: &str, result: &QueryResult) -> Self {
        let mut numbers: Vec<f64> = numbers_in(question).iter().map(|n| n.value).collect();
        numbers.push(result.rows.len() as f64);
        numbers.push(result.columns.len() as f64);
        numbers.extend(result.total_rows.map(|total| total as f64));
        let mut texts = vec![folded(question)];
        texts.extend(result.columns.iter().map(|c| folded(c)));
        let mut months = Vec::new();
        for cell in result.rows.iter().flatten() {
            match cell {
                Cell::Integer(value) => numbers.push(*value as f64),
                Cell::Real(value) => numbers.push(*value),
                Cell::Text(text) => {
                    numbers.extend(numbers_in(text).iter().map(|n| n.value));
                    months.extend(date_month(text));
                    texts.push(folded(text));
                }
                Cell::Null | Cell::Blob(_) => {}
            }
        }
        Self {
            numbers,
            texts,
            months,
        }
    }

    fn has_number(&self, number: &Number) -> bool {
        let scale = 10f64.powi(i32::try_from(number.decimals).unwrap_or(6).min(12));
        self.numbers.iter().any(|known| {
            let rounded = (known * scale).round() / scale;
            (rounded - number.value).abs() < 1e-9 || (known - number.value).abs() < 1e-9
        })
    }

    fn has_name(&self, name: &str) -> bool {
        let lower = folded(name);
        if let Some(month) = MONTHS.iter().position(|m| *m == lower)
            && self.months.contains(&(month + 1))
        {
            return true;
        }
        self.texts.iter().any(|text| text.contains(&lower))
    }
}

/// `text` lower-cased without accents: a model writes "Luis" for the row's "Luís" as often
/// as not, and that is the same name.
fn folded(text: &str) -> String {
    text.nfd()
        .filter(|c| !is_combining_mark(*c))
        .collect::<String>()
        .to_lowercase()
}

/// The month of an ISO date at the start of `text` ("2009-09-14 00:00:00" -> 9).
fn date_month(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    if bytes.len() < 7 || bytes[4] != b'-' || !bytes[..4].iter().all(u8::is_ascii_digit) {
        return None;
    }
    text.get(5..7)?
        .parse()
        .ok()
        .filter(|m| (1..=12).contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(columns: &[&str], rows: Vec<Vec<Cell>>) -> QueryResult {
        QueryResult {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            total_rows: Some(rows.len() as u64),
            rows,
            cut: None,
        }
    }

    fn text(value: &str) -> Cell {
        Cell::Text(value.into())
    }

    /// The trial's "customers per country": 24 countries, 59 customers in all.
    fn customers_per_country() -> QueryResult {
        let counts = [
            13, 8, 5, 5, 4, 3, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        ];
        let rows = counts
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let country = if i == 0 {
                    "USA".into()
                } else {
                    format!("Country{i}")
                };
                vec![text(&country), Cell::Integer(*n)]
            })
            .collect();
        result(&["Country", "customers"], rows)
    }

    #[test]
    fn the_trials_contradicting_sentence_is_caught() {
        let rows = customers_per_country();
        let question = "How many customers are there in each country?";
        assert_eq!(
            ungrounded_claims(
                "There are 24 customers in total across 18 countries.",
                question,
                &rows,
                20
            ),
            vec!["18"]
        );
        assert!(
            ungrounded_claims(
                "The USA has the most customers (13), and 24 countries have at least one.",
                question,
                &rows,
                20
            )
            .is_empty()
        );
    }

    #[test]
    fn rows_the_model_was_not_shown_may_be_counted() {
        let rows = customers_per_country();
        let sentence = "The countries are USA, Country1 and the remaining 6 countries.";
        assert!(ungrounded_claims(sentence, "Which countries?", &rows, 18).is_empty());
        assert_eq!(
            ungrounded_claims(sentence, "Which countries?", &rows, 20),
            vec!["6"]
        );
    }

    #[test]
    fn numbers_match_at_the_precision_shown_with_separators_and_currency() {
        let rows = result(
            &["month", "total"],
            vec![vec![text("2009-09"), Cell::Real(37.62)]],
        );
        let question = "What were the sales by month?";
        for sentence in [
            "In September, sales were $37.6.",
            "Sales in 2009-09 came to 37.62 dollars.",
            "Sales were $38 in September.",
        ] {
            assert!(
                ungrounded_claims(sentence, question, &rows, 20).is_empty(),
                "{sentence}"
            );
        }
        assert_eq!(
            ungrounded_claims("Sales were $37.7 in October.", question, &rows, 20),
            vec!["37.7", "October"]
        );
        let total = result(&["Total"], vec![vec![Cell::Real(1234.56)]]);
        assert!(
            ungrounded_claims("The total is $1,234.56.", "Total sales?", &total, 20).is_empty()
        );
        assert_eq!(
            ungrounded_claims("That is 45% of sales.", "Total sales?", &total, 20),
            vec!["45"]
        );
    }

    #[test]
    fn names_must_come_from_the_rows_or_the_question() {
        let rows = result(
            &["Name", "sold"],
            vec![vec![text("Rock"), Cell::Integer(157)]],
        );
        let question = "Which genre sells best in Germany?";
        assert!(
            ungrounded_claims(
                "Rock sells best in Germany, with 157 tracks sold.",
                question,
                &rows,
                20
            )
            .is_empty()
        );
        assert_eq!(
            ungrounded_claims(
                "The best-selling genre in Germany is Latin.",
                question,
                &rows,
                20
            ),
            vec!["Latin"]
        );
        assert_eq!(
            ungrounded_claims("The top genre is \"Heavy Metal\".", question, &rows, 20),
            vec!["Heavy Metal"]
        );
        // Accents are not what makes a name.
        let customers = result(
            &["FirstName"],
            vec![vec![text("Luís")], vec![text("François")]],
        );
        assert!(
            ungrounded_claims(
                "The customers are Luis and Francois.",
                "Who are they?",
                &customers,
                20
            )
            .is_empty()
        );
        // An apostrophe is not a quote; digits inside words are not numbers.
        assert!(ungrounded_claims("Rock's 157 mp3 tracks lead.", question, &rows, 20).is_empty());
    }

    #[test]
    fn the_template_states_the_result_plainly() {
        assert_eq!(
            template_answer(&result(&["Total"], vec![vec![Cell::Real(1234.56)]])),
            "Total: 1,234.56"
        );
        assert_eq!(
            template_answer(&customers_per_country()),
            "24 rows: Country, customers"
        );
        assert_eq!(
            template_answer(&result(&["a", "b"], vec![])),
            "No rows matched."
        );
        let mut capped = customers_per_country();
        capped.rows.truncate(10);
        capped.total_rows = Some(3503);
        assert_eq!(
            template_answer(&capped),
            "3,503 rows (first 10 kept): Country, customers"
        );
        let rows = customers_per_country();
        let sentence = template_answer(&rows);
        assert!(ungrounded_claims(&sentence, "", &rows, 20).is_empty());
    }

    #[test]
    fn a_cut_answer_ends_at_a_word_with_an_ellipsis() {
        assert_eq!(
            cut_at_word("Sales peaked in August and September, $37.6"),
            "Sales peaked in August and September…"
        );
        assert_eq!(cut_at_word("The total is 1,2"), "The total is…");
        assert_eq!(cut_at_word("Unbroken"), "Unbroken…");
    }
}
