//! Pulls exactly one SQL statement out of what the model wrote.
//!
//! The prompt prefills the assistant turn with a ```sql fence, so the usual output is the
//! query followed by a closing fence. Models still sometimes add prose or a second fence;
//! this keeps the fenced block and drops the prose around it.

/// The fence the assistant turn is prefilled with.
pub const SQL_FENCE_OPEN: &str = "```sql\n";
/// Generation stops as soon as this appears.
pub(crate) const SQL_FENCE_CLOSE: &str = "```";

/// Extracts the SQL from a completion that started after [`SQL_FENCE_OPEN`].
/// Returns `None` when nothing that looks like SQL is there.
pub(crate) fn extract_sql(completion: &str) -> Option<String> {
    let body = match completion.find(SQL_FENCE_CLOSE) {
        Some(end) => &completion[..end],
        None => completion,
    };
    // A model that ignored the prefill may have opened its own fence.
    let body = body.trim_start().strip_prefix("sql\n").unwrap_or(body);
    let start = find_statement_start(body)?;
    // Everything in the block is kept: a second statement must reach the guard and be
    // refused, not be silently cut off.
    let cleaned = body[start..]
        .trim()
        .trim_end_matches(';')
        .trim_end()
        .to_string();
    (!cleaned.is_empty()).then_some(cleaned)
}

fn find_statement_start(text: &str) -> Option<usize> {
    let upper = text.to_ascii_uppercase();
    let trimmed_start = text.len() - text.trim_start().len();
    let first_word: String = upper[trimmed_start..]
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    if !first_word.is_empty() {
        // Whatever the first word is, keep it: the guard decides whether it may run, and a
        // refused "DELETE" is more honest than silently looking for a SELECT further down.
        let prose = matches!(
            first_word.as_str(),
            "HERE" | "THE" | "THIS" | "TO" | "SURE" | "I"
        );
        if !prose {
            return Some(trimmed_start);
        }
    }
    ["SELECT", "WITH"]
        .iter()
        .filter_map(|kw| upper.find(kw))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_from_fenced_and_chatty_output() {
        assert_eq!(
            extract_sql("SELECT 1\n```\nThis query..."),
            Some("SELECT 1".into())
        );
        assert_eq!(extract_sql("SELECT 1;\n"), Some("SELECT 1".into()));
        assert_eq!(
            extract_sql("Here is the query:\nSELECT name FROM t;"),
            Some("SELECT name FROM t".into())
        );
        assert_eq!(
            extract_sql("SELECT ';' FROM t"),
            Some("SELECT ';' FROM t".into())
        );
        assert_eq!(extract_sql("DELETE FROM t"), Some("DELETE FROM t".into()));
        assert_eq!(
            extract_sql("SELECT 1; DROP TABLE t;\n```"),
            Some("SELECT 1; DROP TABLE t".into())
        );
        assert_eq!(extract_sql("```"), None);
        assert_eq!(extract_sql("   "), None);
    }
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::{SQL_FENCE_CLOSE, extract_sql};

    fn completion() -> impl Strategy<Value = String> {
        let sqlish = "(SELECT|WITH|DELETE|sql\n|```|;|--|/\\*|'|\"| |\n|x|1|FROM t|\\PC){0,40}";
        prop_oneof![sqlish, "\\PC{0,160}"]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Whatever the model writes, extraction returns text it wrote, never an empty query.
        #[test]
        fn extraction_never_panics_and_keeps_what_it_finds(
            text in completion(),
            fenced in any::<bool>(),
        ) {
            let completion = if fenced { format!("{text}\n{SQL_FENCE_CLOSE}\nprose") } else { text };
            if let Some(sql) = extract_sql(&completion) {
                prop_assert!(!sql.trim().is_empty());
                prop_assert!(completion.contains(sql.as_str()), "{sql:?} not in {completion:?}");
            }
        }
    }
}
