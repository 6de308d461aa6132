//! Follow-up questions in the app: the conversation the next question may continue, which
//! earlier turns it is sent with, and the thread (parent run) it is recorded under. A new
//! topic starts with the new-topic key or by itself when the question does not read as a
//! follow-up (`core::pipeline::follow_up::reads_as_follow_up`).

use crate::core::feedback::history::RunId;
use crate::core::pipeline::follow_up::{
    EarlierTurn, reads_as_follow_up, recent_turns, table_words,
};

/// The answered questions of the current thread, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conversation {
    pub turns: Vec<EarlierTurn>,
    /// The run the newest turn was recorded under: the parent of a follow-up.
    pub last_run: Option<RunId>,
}

impl Conversation {
    /// The turns `question` is sent with (empty: it starts a new topic, and the
    /// conversation is forgotten), and the run it follows.
    pub(crate) fn continue_with(
        &mut self,
        question: &str,
        table_words: &[String],
    ) -> (Vec<EarlierTurn>, Option<RunId>) {
        if self.follows(question, table_words) {
            (recent_turns(&self.turns), self.last_run)
        } else {
            *self = Self::default();
            (Vec::new(), None)
        }
    }

    /// Whether `question` would continue this conversation.
    pub fn follows(&self, question: &str, table_words: &[String]) -> bool {
        !self.turns.is_empty() && reads_as_follow_up(question, table_words)
    }

    /// An answered question joins the thread (its run id arrives later, see
    /// [`Conversation::recorded`]).
    pub(crate) fn answered(&mut self, question: &str, sql: &str) {
        self.turns.push(EarlierTurn {
            question: question.to_string(),
            sql: sql.trim().to_string(),
        });
        self.last_run = None;
    }

    pub(crate) fn recorded(&mut self, question: &str, run: RunId) {
        if self.turns.last().is_some_and(|t| t.question == question) {
            self.last_run = Some(run);
        }
    }

    /// A correction of the newest turn is what a follow-up builds on.
    pub(crate) fn corrected(&mut self, question: &str, sql: &str) {
        if let Some(turn) = self.turns.last_mut()
            && turn.question == question
        {
            turn.sql = sql.trim().to_string();
        }
    }

    /// A run opened from the history becomes the conversation.
    pub(crate) fn reopen(&mut self, run: RunId, question: &str, sql: Option<&str>) {
        *self = Self::default();
        if let Some(sql) = sql.filter(|s| !s.trim().is_empty()) {
            self.answered(question, sql);
            self.last_run = Some(run);
        }
    }
}

/// Table-name words of the schema text the Schema pane shows (`CREATE TABLE Name (` lines,
/// or `Name(...)` in compact renderings), for the follow-up heuristic.
pub(crate) fn schema_table_words(schema_text: &str) -> Vec<String> {
    let names = schema_text.lines().filter_map(|line| {
        if line.starts_with(char::is_whitespace) || line.starts_with(')') || line.starts_with("--")
        {
            return None;
        }
        let rest = line
            .strip_prefix("CREATE TABLE ")
            .or_else(|| line.strip_prefix("CREATE VIEW "))
            .unwrap_or(line);
        let name = rest
            .split(|c: char| c == '(' || c.is_whitespace())
            .next()?
            .trim_matches(|c| matches!(c, '"' | '`' | '[' | ']'));
        (!name.is_empty()).then_some(name)
    });
    table_words(names)
}
