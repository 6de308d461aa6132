//! The prompts: one system message per database (cached), then per-question turns.
//!
//! Everything that is the same for every question on a database (instructions and schema)
//! sits in the system message, so its KV cache is evaluated once. Things that vary per
//! question come after it: examples as earlier question/reply turns, then the question turn
//! with its glossary entries.

use std::fmt::Write;

use crate::core::db::exec::QueryResult;
use crate::core::db::source::SqlDialect;
use crate::core::model::{ChatMessage, CompletionRequest, Role, Sampling};
use crate::core::pipeline::extract::{SQL_FENCE_CLOSE, SQL_FENCE_OPEN};
use crate::core::pipeline::follow_up::EarlierTurn;
use crate::core::retrieval::provider::{ContextProvider, Example, GlossaryEntry};

const SYSTEM_INSTRUCTIONS: &str = "\
You are an expert data analyst who writes SQLite queries.
Write one SQLite SELECT query that answers the user's question about the database below.
- Use only tables and columns that exist in the schema; quote names with spaces or symbols.
- Return only the columns the question asks for, in the order it asks for them.
- Join tables on the REFERENCES keys shown in the schema.
- Answer with the SQL only, in a ```sql code block.";

/// The same instructions for PostgreSQL, with what differs from SQLite where small models
/// slip: quoting of mixed-case names, dates and string functions.
const POSTGRES_INSTRUCTIONS: &str = "\
You are an expert data analyst who writes PostgreSQL queries.
Write one PostgreSQL SELECT query that answers the user's question about the database below.
- Use only tables and columns that exist in the schema; write names exactly as the schema \
spells them, in double quotes when they have capitals, spaces or symbols (\"InvoiceDate\").
- Return only the columns the question asks for, in the order it asks for them.
- Join tables on the REFERENCES keys shown in the schema.
- PostgreSQL functions: EXTRACT(YEAR FROM d), date_trunc('month', d), d - INTERVAL '30 days', \
to_char(d, 'YYYY-MM'), || or concat() for strings, ILIKE for case-insensitive matching, \
ROUND(x::numeric, 2).
- Answer with the SQL only, in a ```sql code block.";

/// The same instructions for DuckDB (DuckDB files, CSV and Parquet), with the functions
/// small models reach for in SQLite's spelling.
const DUCKDB_INSTRUCTIONS: &str = "\
You are an expert data analyst who writes DuckDB queries.
Write one DuckDB SELECT query that answers the user's question about the database below.
- Use only tables and columns that exist in the schema; quote names with spaces or symbols.
- Return only the columns the question asks for, in the order it asks for them.
- Join tables on the REFERENCES keys shown in the schema.
- DuckDB functions: year(d), date_trunc('month', d), d - INTERVAL 30 DAY, strftime(d, '%Y-%m'), \
|| or concat() for strings, ILIKE for case-insensitive matching, round(x, 2).
- Answer with the SQL only, in a ```sql code block.";

/// The system message for a SQLite database.
pub fn system_message(schema_text: &str) -> ChatMessage {
    system_message_for(schema_text, SqlDialect::Sqlite)
}

/// The system message in the dialect of the database the question is asked on.
pub fn system_message_for(schema_text: &str, dialect: SqlDialect) -> ChatMessage {
    let instructions = match dialect {
        SqlDialect::Sqlite => SYSTEM_INSTRUCTIONS,
        SqlDialect::Postgres => POSTGRES_INSTRUCTIONS,
        SqlDialect::DuckDb => DUCKDB_INSTRUCTIONS,
    };
    ChatMessage::new(
        Role::System,
        format!(
            "{instructions}\n\nDatabase schema:\n{}",
            schema_text.trim_end()
        ),
    )
}

/// The user turn that asks `question`, with the glossary entries that matched it.
/// The request that evaluates the schema prompt (and saves it to the prefix cache on disk)
/// so the first question on a database does not pay for it: the app sends it while the
/// user types, `eval --warm` before each database's first question. Only for the local
/// engine: a remote server's first question warms its own cache. The system message is
/// the one questions on this database get (its dialect), or the cached prefix would not
/// match.
pub fn warm_request(context: &mut dyn ContextProvider, dialect: SqlDialect) -> CompletionRequest {
    let prompt = context.context_for("");
    CompletionRequest {
        messages: vec![
            system_message_for(&prompt.schema_text, dialect),
            question_message("How many rows are there?", &[]),
        ],
        assistant_prefix: String::new(),
        max_tokens: 1,
        stop: Vec::new(),
        sampling: Sampling::Greedy,
        grammar: None,
    }
}

pub fn question_message(question: &str, glossary: &[GlossaryEntry]) -> ChatMessage {
    let mut content = String::new();
    if !glossary.is_empty() {
        content.push_str("Definitions used in this database:\n");
        for entry in glossary {
            let _ = writeln!(content, "- {}: {}", entry.term, entry.definition);
        }
        content.push('\n');
    }
    let _ = write!(content, "Question: {}", question.trim());
    ChatMessage::new(Role::User, content)
}

/// The turns after the system message: each example as an earlier question and the SQL
/// reply it got, the most similar one last, then the conversation's earlier turns (a
/// follow-up), then the question. A small model copies the structure of a reply it
/// "wrote" far more faithfully than an example quoted inside the question (measured on the
/// Chinook paraphrases, see the README). Everything here comes after the system message,
/// so the schema prefix's KV cache still holds for a follow-up.
pub(crate) fn question_turns(
    question: &str,
    examples: &[Example],
    earlier: &[EarlierTurn],
    glossary: &[GlossaryEntry],
) -> Vec<ChatMessage> {
    let mut turns = Vec::with_capacity((examples.len() + earlier.len()) * 2 + 1);
    for example in examples.iter().rev() {
        turns.push(question_message(&example.question, &[]));
        turns.push(sql_reply(&example.sql));
    }
    for turn in earlier {
        turns.push(question_message(&turn.question, &[]));
        turns.push(sql_reply(&turn.sql));
    }
    turns.push(question_message(question, glossary));
    turns
}

/// The assistant turn as it would look had the model written `sql` (used for history).
pub fn sql_reply(sql: &str) -> ChatMessage {
    ChatMessage::new(
        Role::Assistant,
        format!("{SQL_FENCE_OPEN}{}\n{SQL_FENCE_CLOSE}", sql.trim()),
    )
}

pub(crate) fn repair_message(error: &str, hints: &[String], dialect: SqlDialect) -> ChatMessage {
    let mut content = format!("That query failed with this error:\n{}\n", error.trim());
    for hint in hints {
        let _ = writeln!(content, "{hint}");
    }
    let _ = write!(
        content,
        "Write a corrected {} query for the same question.",
        dialect.name()
    );
    ChatMessage::new(Role::User, content)
}

pub(crate) fn answer_message(question: &str, result: &QueryResult, max_rows: usize) -> ChatMessage {
    // A lone value is spelled out: shown as a one-row table, small models answer with the
    // row count ("AC/DC has 1 album") instead of the value.
    if let ([column], [row]) = (result.columns.as_slice(), result.rows.as_slice())
        && let [value] = row.as_slice()
    {
        let value = truncate(&value.to_string(), 200);
        let mut content = format!("The query's result is a single value: {column} = {value}.\n");
        let _ = write!(
            content,
            "\nAnswer the question \"{}\" in one plain sentence that states this value. \
             Do not mention SQL or the query.",
            question.trim()
        );
        return ChatMessage::new(Role::User, content);
    }
    let mut content = format!("The query returned {}.\n", result.row_summary());
    if !result.rows.is_empty() {
        content.push_str(&result.columns.join(" | "));
        content.push('\n');
        for row in result.rows.iter().take(max_rows) {
            let cells: Vec<String> = row.iter().map(|c| truncate(&c.to_string(), 60)).collect();
            content.push_str(&cells.join(" | "));
            content.push('\n');
        }
        if result.rows.len() > max_rows {
            let _ = writeln!(
                content,
                "({} more rows not shown)",
                result.rows.len() - max_rows
            );
        }
    }
    let _ = write!(
        content,
        "\nAnswer the question \"{}\" in one or two plain sentences, using only these results. \
         Do not mention SQL or the query.",
        question.trim()
    );
    ChatMessage::new(Role::User, content)
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max_chars).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::db::exec::Cell;

    #[test]
    fn each_dialect_is_named_in_the_system_message_and_repairs() {
        for (dialect, name) in [
            (SqlDialect::Sqlite, "SQLite"),
            (SqlDialect::Postgres, "PostgreSQL"),
            (SqlDialect::DuckDb, "DuckDB"),
        ] {
            let system = system_message_for("CREATE TABLE t (x INTEGER);", dialect);
            assert!(
                system
                    .content
                    .contains(&format!("Write one {name} SELECT query")),
                "{name}"
            );
            let repair = repair_message("no such table", &[], dialect);
            assert!(repair.content.ends_with(&format!(
                "Write a corrected {name} query for the same question."
            )));
        }
    }

    #[test]
    fn examples_are_earlier_turns_with_the_closest_last() {
        let example = |question: &str, sql: &str| Example {
            question: question.into(),
            sql: sql.into(),
        };
        let turns = question_turns(
            "How many rock tracks?",
            &[
                example("How many jazz tracks?", "SELECT count(*)\nFROM Track"),
                example("How many albums?", "SELECT count(*) FROM Album"),
            ],
            &[],
            &[GlossaryEntry {
                term: "rock".into(),
                definition: "Genre.Name = 'Rock'".into(),
            }],
        );
        let roles: Vec<Role> = turns.iter().map(|t| t.role).collect();
        assert_eq!(
            roles,
            [
                Role::User,
                Role::Assistant,
                Role::User,
                Role::Assistant,
                Role::User
            ]
        );
        assert_eq!(turns[0].content, "Question: How many albums?");
        assert_eq!(turns[2].content, "Question: How many jazz tracks?");
        assert_eq!(turns[3], sql_reply("SELECT count(*)\nFROM Track"));
        assert!(turns[4].content.contains("- rock: Genre.Name = 'Rock'"));
        assert!(
            turns[4]
                .content
                .ends_with("Question: How many rock tracks?")
        );
        assert_eq!(
            question_turns("How many albums?", &[], &[], &[]),
            vec![question_message("How many albums?", &[])]
        );
    }

    #[test]
    fn a_follow_up_sends_the_earlier_turns_after_the_examples_and_before_the_question() {
        let earlier = [EarlierTurn {
            question: "Invoices per country in 2012".into(),
            sql: "SELECT BillingCountry, count(*) FROM Invoice GROUP BY 1".into(),
        }];
        let example = Example {
            question: "How many albums?".into(),
            sql: "SELECT count(*) FROM Album".into(),
        };
        let turns = question_turns("same for 2013", &[example], &earlier, &[]);
        let contents: Vec<&str> = turns.iter().map(|t| t.content.as_str()).collect();
        assert_eq!(contents[0], "Question: How many albums?");
        assert_eq!(contents[2], "Question: Invoices per country in 2012");
        assert_eq!(turns[3], sql_reply(&earlier[0].sql));
        assert_eq!(contents[4], "Question: same for 2013");
    }

    #[test]
    fn answer_turn_shows_rows_and_summary() {
        let result = QueryResult {
            columns: vec!["n".into()],
            rows: vec![vec![Cell::Integer(347)]],
            total_rows: Some(1),
            cut: None,
        };
        let message = answer_message("How many albums?", &result, 20);
        assert!(
            message
                .content
                .starts_with("The query's result is a single value: n = 347.")
        );
        let result = QueryResult {
            columns: vec!["name".into(), "n".into()],
            rows: vec![
                vec![Cell::Text("Rock".into()), Cell::Integer(1297)],
                vec![Cell::Text("Jazz".into()), Cell::Integer(130)],
            ],
            total_rows: Some(2),
            cut: None,
        };
        let message = answer_message("Tracks per genre?", &result, 1);
        assert!(message.content.starts_with(
            "The query returned 2 rows.\nname | n\nRock | 1297\n(1 more rows not shown)"
        ));
    }
}
