//! A reply caught in a loop. Under greedy decoding a small model sometimes writes one
//! clause again and again until the token limit: the same condition (`OR T1.city = 'Paris'
//! OR T1.city = 'Paris' ...`), or a subquery nested in itself with the next alias
//! (`WHERE T4.job_id IN (SELECT T5.job_id FROM jobs AS T5 WHERE T5.job_id IN (SELECT T6...`).
//! On 2 CPU cores the 256 tokens of a query that never closes cost about 20 s, and the
//! query fails anyway; stopping once the loop is unmistakable hands it to the repair sooner.

/// Characters (whitespace squeezed) the repeats must cover before they are taken for a loop.
const LOOP_MIN_CHARS: usize = 120;
/// Back-to-back copies of the repeated block, at the least.
const LOOP_MIN_COPIES: usize = 3;

/// Whether `text` ends in one block written again and again: the same text (whitespace
/// aside), or the same text but for its numbers when each copy opens a parenthesis it does
/// not close. Numbers alone are not enough: a pivot (`SUM(CASE WHEN year = 2001 ...) AS
/// y2001, SUM(CASE WHEN year = 2002 ...`) repeats a balanced block on purpose.
pub fn ends_in_loop(text: &str) -> bool {
    repeated_tail(&squeeze(text, false)).is_some()
        || repeated_tail(&squeeze(text, true)).is_some_and(opens_more_than_it_closes)
}

/// `text` with each run of whitespace one space and, with `numbers_alike`, each run of
/// digits one `#`.
fn squeeze(text: &str, numbers_alike: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for byte in text.bytes() {
        let byte = match byte {
            b if b.is_ascii_whitespace() => b' ',
            b if numbers_alike && b.is_ascii_digit() => b'#',
            b => b,
        };
        if !(matches!(byte, b' ' | b'#') && out.last() == Some(&byte)) {
            out.push(byte);
        }
    }
    out
}

/// The block `text` ends in at least `LOOP_MIN_COPIES` back-to-back copies of, covering
/// at least `LOOP_MIN_CHARS`; the shortest such block.
fn repeated_tail(text: &[u8]) -> Option<&[u8]> {
    let len = text.len();
    (1..=len / LOOP_MIN_COPIES).find_map(|period| {
        let span = period * LOOP_MIN_COPIES.max(LOOP_MIN_CHARS.div_ceil(period));
        if span > len {
            return None;
        }
        let tail = &text[len - span..];
        tail.iter()
            .zip(&tail[period..])
            .all(|(a, b)| a == b)
            .then(|| &text[len - period..])
    })
}

fn opens_more_than_it_closes(block: &[u8]) -> bool {
    let count = |wanted: u8| block.iter().filter(|&&b| b == wanted).count();
    count(b'(') > count(b')')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_written_again_and_again_is_a_loop() {
        let mut reply = String::from("SELECT name FROM customers AS T1 WHERE T1.city = 'Lyon'");
        for _ in 0..9 {
            reply.push_str("\n  OR T1.city = 'Paris'");
        }
        assert!(ends_in_loop(&reply));
    }

    #[test]
    fn a_subquery_nested_in_itself_with_the_next_alias_is_a_loop() {
        let mut reply = String::from("SELECT T1.id FROM employees AS T1 WHERE T1.job_id IN (");
        for alias in 2..6 {
            let indent = " ".repeat(alias * 4);
            reply.push_str(&format!(
                "\n{indent}SELECT T{alias}.job_id FROM jobs AS T{alias}\n{indent}WHERE T{alias}.job_id IN ("
            ));
        }
        assert!(ends_in_loop(&reply));
    }

    #[test]
    fn lists_pivots_and_short_repeats_are_not_loops() {
        let list: Vec<String> = (0..40).map(|i| format!("'item {i}'")).collect();
        assert!(!ends_in_loop(&format!(
            "WHERE name IN ({}",
            list.join(", ")
        )));
        let pivot: Vec<String> = (2001..2009)
            .map(|y| format!("SUM(CASE WHEN year = {y} THEN 1 ELSE 0 END) AS y{y}"))
            .collect();
        assert!(!ends_in_loop(&format!("SELECT {}", pivot.join(", "))));
        assert!(!ends_in_loop("WHERE a = 1 OR a = 1 OR a = 1 OR a = 1"));
        let mut recovered = "OR a = 'x' ".repeat(20);
        recovered.push_str("AND b = 2");
        assert!(!ends_in_loop(&recovered));
        assert!(!ends_in_loop(""));
    }
}
