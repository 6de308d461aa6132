//! An aggregate of a column the question does not name: "the average number of working
//! horses of farms with more than 5000 total horses" comes out as `AVG(Total_Horses)`,
//! "the average millisecond length of Latin and Pop tracks" as `AVG(UnitPrice)`. The
//! question says what it averages right after the word that asks for the average; the
//! model, holding several numeric columns of one table, took another.
//!
//! [`name_aggregated_column`] reads the phrase after each aggregate word of the question
//! ("average", "total", "maximum", "lowest", ...: the words that follow, past "the number
//! of", up to the next preposition or conjunction) and, for an output `AVG`/`SUM`/`MAX`/`MIN`
//! of one column, swaps the column for the one other column of the same table that the
//! phrase names word for word, when the phrase does not name the column the model chose
//! and the query reads the other column nowhere (so "the average price and score" keeps
//! `AVG(Score)` beside `AVG(Price)`).

use sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, SelectItem,
};

use crate::core::db::ident::{lowercase_words, split_identifier};
use crate::core::db::schema::{Column, Schema, Table};
use crate::core::db::sql_ast::{
    for_each_select_mut, ident, is_column, parse_single_query, referenced_column_names,
    resolve_column_owner, tables_in_scope,
};
use crate::core::rewrite::simplify::singular;
use crate::core::rewrite::{Rewrite, RewriteInput};

/// The question words that ask for an aggregate, and the SQL function each asks for.
const AGGREGATE_WORDS: [(&str, &str); 14] = [
    ("average", "avg"),
    ("mean", "avg"),
    ("total", "sum"),
    ("sum", "sum"),
    ("maximum", "max"),
    ("max", "max"),
    ("highest", "max"),
    ("largest", "max"),
    ("biggest", "max"),
    ("greatest", "max"),
    ("minimum", "min"),
    ("min", "min"),
    ("lowest", "min"),
    ("smallest", "min"),
];

/// Words between the aggregate word and what it aggregates ("the average number of").
const LEAD_IN: [&str; 5] = ["the", "number", "amount", "value", "of"];

/// Words that end the phrase naming what is aggregated.
const PHRASE_ENDS: [&str; 26] = [
    "of", "for", "in", "with", "that", "who", "which", "where", "whose", "by", "from", "among",
    "and", "or", "to", "on", "at", "than", "is", "are", "was", "were", "per", "each", "across",
    "all",
];

/// What the question aggregates: the SQL function and the words that name its column.
struct AskedAggregate {
    function: &'static str,
    /// The phrase's words, singular.
    words: Vec<String>,
}

/// The query with each aggregate aimed at the column the question names; `None` when no
/// aggregate changes.
pub(crate) fn name_aggregated_column(sql: &str, question: &str, schema: &Schema) -> Option<String> {
    let question_words = lowercase_words(question);
    let asked = asked_aggregates(&question_words);
    if asked.is_empty() {
        return None;
    }
    let mut statement = parse_single_query(sql)?;
    let read: Vec<String> = referenced_column_names(&statement)
        .iter()
        .map(|name| name.to_lowercase())
        .collect();
    let mut changed = false;
    for_each_select_mut(&mut statement, |select| {
        let tables = tables_in_scope(select, schema);
        for item in &mut select.projection {
            let (SelectItem::UnnamedExpr(Expr::Function(function))
            | SelectItem::ExprWithAlias {
                expr: Expr::Function(function),
                ..
            }) = item
            else {
                continue;
            };
            let Some((aggregate, column)) = aggregated_column(function) else {
                continue;
            };
            let Some((_, table, name)) = resolve_column_owner(column, &tables) else {
                continue;
            };
            let Some(meant) = meant_column(aggregate, table, &name, &asked, &question_words, &read)
            else {
                continue;
            };
            rename_column(column, &meant);
            changed = true;
        }
    });
    changed.then(|| format!("{statement:#}"))
}

/// Every aggregate word of the question with the phrase that follows it.
fn asked_aggregates(words: &[String]) -> Vec<AskedAggregate> {
    let mut asked = Vec::new();
    for (at, word) in words.iter().enumerate() {
        let Some(&(_, function)) = AGGREGATE_WORDS.iter().find(|(w, _)| w == word) else {
            continue;
        };
        let phrase: Vec<String> = words[at + 1..]
            .iter()
            .skip_while(|w| LEAD_IN.contains(&w.as_str()))
            .take_while(|w| !PHRASE_ENDS.contains(&w.as_str()))
            .map(|w| singular(w))
            .collect();
        if !phrase.is_empty() {
            asked.push(AskedAggregate {
                function,
                words: phrase,
            });
        }
    }
    asked
}

/// The function's name (`avg`, `sum`, `max` or `min`) and the one column it reads.
fn aggregated_column(function: &mut Function) -> Option<(String, &mut Expr)> {
    let name = function.name.0.last()?.as_ident()?.value.to_lowercase();
    if !matches!(name.as_str(), "avg" | "sum" | "max" | "min") {
        return None;
    }
    let FunctionArguments::List(list) = &mut function.args else {
        return None;
    };
    match list.args.as_mut_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(column))] if is_column(column) => {
            Some((name, column))
        }
        _ => None,
    }
}

/// The column of `table` the question's phrase for this aggregate names instead of
/// `chosen`: exactly one, unread by the query, numeric where the aggregate adds or
/// averages; `None` when a phrase names `chosen` or no phrase names another.
fn meant_column(
    function_name: String,
    table: &Table,
    chosen: &str,
    asked: &[AskedAggregate],
    question_words: &[String],
    read: &[String],
) -> Option<String> {
    let phrases: Vec<&AskedAggregate> = asked
        .iter()
        .filter(|a| a.function == function_name)
        .collect();
    if phrases.is_empty()
        || phrases.iter().any(|p| names_column(&p.words, chosen))
        || spelled_as_words(chosen, question_words)
    {
        return None;
    }
    let adds = matches!(function_name.as_str(), "avg" | "sum");
    let can_be_meant = |column: &&Column| {
        let unread = !column.name.eq_ignore_ascii_case(chosen)
            && !read.contains(&column.name.to_lowercase());
        let fits = !adds || !is_text_type(&column.declared_type);
        unread && fits && phrases.iter().any(|p| names_column(&p.words, &column.name))
    };
    let mut candidates = table.columns.iter().filter(can_be_meant);
    let meant = candidates.next()?;
    candidates.next().is_none().then(|| meant.name.clone())
}

/// Every word of the column's name is among the phrase's words.
fn names_column(phrase: &[String], column: &str) -> bool {
    let words: Vec<String> = split_identifier(column)
        .iter()
        .map(|w| singular(w))
        .collect();
    !words.is_empty() && words.iter().all(|w| phrase.contains(w))
}

/// A name written as one word (`campusfee`) that the question spells as consecutive
/// words ("campus fee").
fn spelled_as_words(column: &str, question_words: &[String]) -> bool {
    let name: String = column
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    (0..question_words.len()).any(|start| {
        let mut joined = String::new();
        question_words[start..].iter().any(|word| {
            joined.push_str(word);
            joined == name
        })
    })
}

fn is_text_type(declared: &str) -> bool {
    let declared = declared.to_lowercase();
    ["char", "text", "clob", "date", "time"]
        .iter()
        .any(|t| declared.contains(t))
}

/// The column reference with its last part renamed, its qualifier kept.
fn rename_column(column: &mut Expr, name: &str) {
    let renamed: Ident = ident(name);
    match column {
        Expr::Identifier(id) => *id = renamed,
        Expr::CompoundIdentifier(parts) => {
            if let Some(last) = parts.last_mut() {
                *last = renamed;
            }
        }
        _ => {}
    }
}

/// [`name_aggregated_column`] as a step of the chain.
pub(crate) struct NameAggregatedColumn;

impl Rewrite for NameAggregatedColumn {
    fn name(&self) -> &'static str {
        "name_aggregated_column"
    }

    fn apply(&self, sql: &str, input: &RewriteInput<'_>) -> Option<String> {
        name_aggregated_column(sql, input.question, input.schema)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, declared_type: &str) -> Column {
        Column {
            name: name.to_string(),
            declared_type: declared_type.to_string(),
            primary_key: false,
            not_null: false,
            sample_values: Vec::new(),
            distinct_values: None,
        }
    }

    fn schema() -> Schema {
        let table = |name: &str, columns: Vec<Column>| Table {
            name: name.to_string(),
            is_view: false,
            columns,
            foreign_keys: Vec::new(),
            row_count: None,
        };
        Schema {
            tables: vec![
                table(
                    "farm",
                    vec![
                        column("Farm_ID", "int"),
                        column("Total_Horses", "real"),
                        column("Working_Horses", "real"),
                    ],
                ),
                table(
                    "track",
                    vec![
                        column("TrackId", "INTEGER"),
                        column("Name", "NVARCHAR(200)"),
                        column("GenreId", "INTEGER"),
                        column("Milliseconds", "INTEGER"),
                        column("UnitPrice", "NUMERIC(10,2)"),
                    ],
                ),
                table(
                    "wine",
                    vec![
                        column("Name", "TEXT"),
                        column("Price", "INTEGER"),
                        column("Score", "INTEGER"),
                        column("Cases", "INTEGER"),
                    ],
                ),
                table(
                    "csu_fees",
                    vec![column("Campus", "INTEGER"), column("CampusFee", "INTEGER")],
                ),
            ],
            broken: Vec::new(),
        }
    }

    fn one_line(sql: Option<String>) -> Option<String> {
        sql.map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    #[test]
    fn the_aggregate_reads_the_column_the_question_names_after_its_word() {
        assert_eq!(
            one_line(name_aggregated_column(
                "SELECT AVG(Total_Horses) FROM farm WHERE Total_Horses > 5000",
                "What is the average number of working horses of farms with more than 5000 \
                 total number of horses?",
                &schema()
            ))
            .as_deref(),
            Some("SELECT AVG(Working_Horses) FROM farm WHERE Total_Horses > 5000")
        );
        assert_eq!(
            one_line(name_aggregated_column(
                "SELECT AVG(T.UnitPrice) FROM track AS T WHERE T.GenreId IN (1, 2)",
                "Find the average millisecond length of Latin and Pop tracks.",
                &schema()
            ))
            .as_deref(),
            Some("SELECT AVG(T.Milliseconds) FROM track AS T WHERE T.GenreId IN (1, 2)")
        );
    }

    #[test]
    fn an_aggregate_of_a_named_or_already_read_column_stays() {
        for (sql, question) in [
            // "price and score": Price is read already, so AVG(Score) is the score.
            (
                "SELECT AVG(Price), AVG(Score) FROM wine",
                "What are the average price and score of wines?",
            ),
            // The phrase names the chosen column.
            (
                "SELECT AVG(Milliseconds) FROM track",
                "What is the average milliseconds of tracks?",
            ),
            // A name written as one word that the question spells as two.
            (
                "SELECT AVG(CampusFee) FROM csu_fees",
                "What is the average campus fee?",
            ),
            // No aggregate word.
            ("SELECT MAX(Price) FROM wine", "Which wine costs the most?"),
            // The phrase names a text column, which is never averaged.
            (
                "SELECT AVG(UnitPrice) FROM track",
                "What is the average name length of tracks?",
            ),
        ] {
            assert_eq!(
                name_aggregated_column(sql, question, &schema()),
                None,
                "{sql}"
            );
        }
    }
}
