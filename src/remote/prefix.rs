//! The assistant prefix over an API that may not continue a started reply.
//!
//! The pipeline forces each query to begin with a prefix ("```sql\nSELECT "). llama-server
//! and vLLM continue a final assistant message, so the prefix is sent as one. Any other
//! server gets it folded into the last user message as an instruction, which leaves the
//! system message (the schema) byte-identical between questions for the server's prefix
//! cache. Either way a reply may repeat the prefix, in full or from one of its lines on
//! ("SELECT ..." without the fence): [`PrefixStripper`] removes that repetition, so the
//! text handed on is always the continuation after the prefix, as the local engine's is.

/// The instruction appended to the last user message when the prefix is folded.
pub fn fold_instruction(prefix: &str) -> String {
    format!("\n\nBegin your reply with exactly this text, then continue it:\n{prefix}")
}

/// Holds back the start of a reply until it is clear whether it repeats the prefix.
pub struct PrefixStripper {
    /// The prefix and each of its tails that starts a line, longest first.
    candidates: Vec<String>,
    pending: String,
    decided: bool,
}

impl PrefixStripper {
    pub fn new(prefix: &str) -> Self {
        let mut candidates = vec![prefix.to_string()];
        candidates.extend(
            prefix
                .match_indices('\n')
                .map(|(at, _)| prefix[at + 1..].to_string())
                .filter(|tail| !tail.trim().is_empty()),
        );
        candidates.retain(|c| !c.trim().is_empty());
        Self {
            decided: candidates.is_empty(),
            candidates,
            pending: String::new(),
        }
    }

    /// Feeds streamed text; returns what may be passed on (empty while undecided).
    pub fn push(&mut self, text: &str) -> String {
        if self.decided {
            return text.to_string();
        }
        self.pending.push_str(text);
        let start = self.pending.len() - self.pending.trim_start().len();
        let reply = &self.pending[start..];
        let still_open = self.candidates.iter().any(|c| {
            reply.len() < c.len()
                && c.is_char_boundary(reply.len())
                && c[..reply.len()].eq_ignore_ascii_case(reply)
        });
        if still_open {
            return String::new();
        }
        self.finish()
    }

    /// The end of the stream: whatever was held back, less a repeated prefix.
    pub fn finish(&mut self) -> String {
        if self.decided {
            return String::new();
        }
        self.decided = true;
        let pending = std::mem::take(&mut self.pending);
        let start = pending.len() - pending.trim_start().len();
        let reply = &pending[start..];
        let repeated = self.candidates.iter().find(|c| {
            reply.len() >= c.len()
                && reply.is_char_boundary(c.len())
                && reply[..c.len()].eq_ignore_ascii_case(c)
        });
        match repeated {
            Some(c) => reply[c.len()..].to_string(),
            None => pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(prefix: &str, pieces: &[&str]) -> String {
        let mut stripper = PrefixStripper::new(prefix);
        let mut out: String = pieces.iter().map(|p| stripper.push(p)).collect();
        out.push_str(&stripper.finish());
        out
    }

    const PREFIX: &str = "```sql\nSELECT ";

    #[test]
    fn removes_a_repeated_prefix_split_across_chunks() {
        assert_eq!(
            strip(PREFIX, &["``", "`sql\nSEL", "ECT count(*) FROM t"]),
            "count(*) FROM t"
        );
    }

    #[test]
    fn removes_a_repeated_tail_of_the_prefix() {
        assert_eq!(strip(PREFIX, &["select name", " FROM t"]), "name FROM t");
        assert_eq!(strip(PREFIX, &["\n  SELECT 1"]), "1");
    }

    #[test]
    fn keeps_a_plain_continuation() {
        assert_eq!(strip(PREFIX, &["count(*) ", "FROM t"]), "count(*) FROM t");
        assert_eq!(strip(PREFIX, &["S", "UM"]), "SUM");
        assert_eq!(strip("", &["SELECT 1"]), "SELECT 1");
    }

    #[test]
    fn a_stream_that_ends_inside_the_prefix_gives_it_back() {
        assert_eq!(strip(PREFIX, &["```"]), "```");
    }
}
