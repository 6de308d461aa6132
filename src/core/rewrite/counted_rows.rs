//! "Party names and the number of members in each party" counted over the parties alone.
//!
//! A small model often writes `SELECT Party_name, COUNT(*) FROM party GROUP BY Party_name`:
//! every group is one party, so every count is 1, though the question counts members and
//! `member` rows point at their party. When a query reads one table, groups it, counts,
//! and no group of the data holds more than one row, the count says nothing; if the
//! question names exactly one table whose rows reference the grouped table by a foreign
//! key, [`join_counted_table`] joins that table in, so the count is of its rows per group.

use std::ops::ControlFlow;

use rusqlite::{Connection, OptionalExtension};
use sqlparser::ast::{
    DuplicateTreatment, Expr, FunctionArguments, GroupByExpr, Join, Select, SetExpr, Statement,
    TableFactor, visit_expressions_mut,
};

use crate::core::db::ident::{lowercase_words, split_identifier};
use crate::core::db::schema::{ForeignKey, Schema, Table};
use crate::core::db::sql_ast::{
    any_function, has_expression_subquery, ident, parse_join, parse_single_query, schema_table,
};
use crate::core::rewrite::simplify::{is_aggregate, is_count, singular};
use crate::core::rewrite::{Rewrite, RewriteInput};

/// The query with the counted table joined in, pretty-printed; `None` when the query is
/// not a one-table grouped count whose groups are single rows, or the question names no
/// one table that references it.
pub fn join_counted_table(
    sql: &str,
    question: &str,
    schema: &Schema,
    conn: Option<&Connection>,
) -> Option<String> {
    let mut statement = parse_single_query(sql)?;
    if has_expression_subquery(&statement) {
        return None;
    }
    let Statement::Query(query) = &statement else {
        return None;
    };
    if query.with.is_some() || !counts_rows_only(&statement) {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let (reference, grouped) = one_grouped_table(select, schema)?;
    let (counted, link) = counted_table(question, grouped, schema)?;
    if counted.name.eq_ignore_ascii_case(&reference) || !groups_are_single_rows(select, conn?)? {
        return None;
    }
    let join = join_on_link(counted, link, &reference, grouped)?;
    pin_bare_columns(&mut statement, grouped, &reference);
    let Statement::Query(query) = &mut statement else {
        return None;
    };
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    select.from.first_mut()?.joins.push(join);
    Some(format!("{statement:#}"))
}

/// `JOIN counted ON counted.fk = reference.key`: the rows of `counted` that reference
/// `referenced` (named `reference` in the query) through `link`.
pub(crate) fn join_on_link(
    counted: &Table,
    link: &ForeignKey,
    reference: &str,
    referenced: &Table,
) -> Option<Join> {
    let key = if link.to_column.is_empty() {
        referenced.single_primary_key()?.name.clone()
    } else {
        link.to_column.clone()
    };
    parse_join(&format!(
        "{counted} ON {counted}.{fk} = {reference}.{key}",
        counted = ident(&counted.name),
        fk = ident(&link.from_column),
        reference = ident(reference),
        key = ident(&key),
    ))
}

/// Qualifies every bare column of `table` with `reference`: a joined table may share
/// column names with it, so each is pinned to the table it meant before the join makes
/// it ambiguous.
pub(crate) fn pin_bare_columns(statement: &mut Statement, table: &Table, reference: &str) {
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::Identifier(name) = expr
            && table.column(&name.value).is_some()
        {
            *expr = Expr::CompoundIdentifier(vec![ident(reference), name.clone()]);
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Whether the query counts rows and aggregates nothing else: a sum or an average would
/// be multiplied by the joined rows, and a distinct count would stay 1.
pub(crate) fn counts_rows_only(statement: &Statement) -> bool {
    let counts = any_function(statement, is_count);
    let other = any_function(statement, |function| {
        is_aggregate(function) && !is_count(function)
    });
    let distinct = any_function(statement, |function| {
        is_count(function)
            && matches!(&function.args, FunctionArguments::List(list)
                if matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct)))
    });
    counts && !other && !distinct
}

/// The one table the select reads, under the name its columns use, when it groups;
/// `None` with joins, several FROM items, or no GROUP BY.
fn one_grouped_table<'s>(select: &Select, schema: &'s Schema) -> Option<(String, &'s Table)> {
    let [from] = select.from.as_slice() else {
        return None;
    };
    if !from.joins.is_empty() || !matches!(from.relation, TableFactor::Table { .. }) {
        return None;
    }
    match &select.group_by {
        GroupByExpr::Expressions(grouped, _) if !grouped.is_empty() => {}
        _ => return None,
    }
    schema_table(&from.relation, schema)
}

/// Words right before a counted noun: "how many members", "the most items", "at least
/// two companies" ("number of" and "count of" are read in [`counted_words`]).
const COUNTING: [&str; 10] = [
    "count", "many", "most", "least", "fewest", "fewer", "more", "less", "any", "no",
];

/// Numbers written as words, read like digits.
const NUMBERS: [&str; 10] = [
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
];

/// Words before a number that make it a rank, not a count: "the 3 customers with the
/// most orders" and "the top five products" limit the rows, they do not count them.
const RANKING: [&str; 4] = ["the", "top", "first", "last"];

/// The singular words the question counts: each follows a counting word, at most one word
/// between ("the most video games"), or a number that is not a rank; "of" only after
/// "number" or "count".
pub(crate) fn counted_words(question: &str) -> Vec<String> {
    let words = lowercase_words(question);
    let counts_after = |index: usize| {
        let word = words[index].as_str();
        let numeric = word.chars().all(|c| c.is_ascii_digit()) || NUMBERS.contains(&word);
        if numeric && index > 0 && RANKING.contains(&words[index - 1].as_str()) {
            return false;
        }
        let of_count = word == "of"
            && index > 0
            && ["number", "count", "numbers"].contains(&words[index - 1].as_str());
        numeric || of_count || COUNTING.contains(&word)
    };
    (0..words.len())
        .filter(|&i| (i >= 1 && counts_after(i - 1)) || (i >= 2 && counts_after(i - 2)))
        .map(|i| singular(&words[i]))
        .collect()
}

/// The one table whose rows reference `grouped` through one foreign key column and
/// whose name ends in a word the question counts, with that key; the word the grouped
/// table's own name ends in counts the grouped rows ("the most video games" over
/// `Video_games`), so it names no other table.
pub(crate) fn counted_table<'s>(
    question: &str,
    grouped: &Table,
    schema: &'s Schema,
) -> Option<(&'s Table, &'s ForeignKey)> {
    let own_head = split_identifier(&grouped.name).last().map(|w| singular(w));
    let counted: Vec<String> = counted_words(question)
        .into_iter()
        .filter(|word| own_head.as_ref() != Some(word))
        .collect();
    let mut found = schema.tables.iter().filter_map(|table| {
        if table.name.eq_ignore_ascii_case(&grouped.name) {
            return None;
        }
        let head = split_identifier(&table.name).last().map(|w| singular(w))?;
        if !counted.contains(&head) {
            return None;
        }
        let mut links = table
            .foreign_keys
            .iter()
            .filter(|fk| fk.to_table.eq_ignore_ascii_case(&grouped.name));
        let link = links.next()?;
        links.next().is_none().then_some((table, link))
    });
    let counted = found.next()?;
    found.next().is_none().then_some(counted)
}

/// Whether the data holds at least two groups and none with more than one row (under the
/// query's own filter); `None` when the probe does not run.
fn groups_are_single_rows(select: &Select, conn: &Connection) -> Option<bool> {
    let GroupByExpr::Expressions(grouped, _) = &select.group_by else {
        return None;
    };
    let from = select.from.first()?;
    let filter = select
        .selection
        .as_ref()
        .map(|condition| format!(" WHERE {condition}"))
        .unwrap_or_default();
    let groups = grouped
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let probe = format!(
        "SELECT COUNT(*), MAX(rows) FROM (SELECT COUNT(*) AS rows FROM {from}{filter} \
         GROUP BY {groups})"
    );
    let (count, largest): (i64, Option<i64>) = conn
        .query_row(&probe, [], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()
        .ok()??;
    Some(count >= 2 && largest == Some(1))
}

/// [`join_counted_table`] as a step of the chain.
pub(crate) struct JoinCountedTable;

impl Rewrite for JoinCountedTable {
    fn name(&self) -> &'static str {
        "join_counted_table"
    }

    fn apply(&self, sql: &str, input: &RewriteInput<'_>) -> Option<String> {
        join_counted_table(sql, input.question, input.schema, input.conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::db::schema::introspect;

    fn database() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE party (Party_ID INTEGER PRIMARY KEY, Party_name TEXT);
             CREATE TABLE member (Member_ID INTEGER PRIMARY KEY, Member_Name TEXT,
                 Party_ID INTEGER REFERENCES party(Party_ID));
             CREATE TABLE region (Region_ID INTEGER PRIMARY KEY, Party_ID INTEGER
                 REFERENCES party(Party_ID), Region_name TEXT);
             INSERT INTO party VALUES (1, 'Progress'), (2, 'Convention'), (3, 'Liberal');
             INSERT INTO member VALUES (1, 'A', 1), (2, 'B', 1), (3, 'C', 2), (4, 'D', 1);
             INSERT INTO region VALUES (1, 1, 'North'), (2, 1, 'North'), (3, 2, 'South');",
        )
        .unwrap();
        conn
    }

    fn rewrite(sql: &str, question: &str) -> Option<String> {
        let conn = database();
        let schema = introspect(&conn, ":memory:").unwrap();
        join_counted_table(sql, question, &schema, Some(&conn))
    }

    fn rows(sql: &str) -> Vec<(String, i64)> {
        let conn = database();
        let mut statement = conn.prepare(sql).unwrap();
        let mut rows: Vec<(String, i64)> = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows.sort();
        rows
    }

    #[test]
    fn a_count_of_single_row_groups_counts_the_named_rows_instead() {
        let rewritten = rewrite(
            "SELECT Party_name, COUNT(*) FROM party GROUP BY Party_name",
            "Show all party names and the number of members in each party.",
        )
        .unwrap();
        assert_eq!(
            rows(&rewritten),
            rows(
                "SELECT T2.Party_name, count(*) FROM member AS T1 JOIN party AS T2 \
                 ON T1.Party_ID = T2.Party_ID GROUP BY T1.Party_ID"
            )
        );
    }

    #[test]
    fn bare_columns_the_joined_table_also_has_are_pinned_to_the_grouped_table() {
        let rewritten = rewrite(
            "SELECT Party_ID FROM party GROUP BY Party_ID ORDER BY COUNT(*) DESC LIMIT 1",
            "Which party has the most members?",
        )
        .unwrap();
        let conn = database();
        let top: i64 = conn.query_row(&rewritten, [], |row| row.get(0)).unwrap();
        assert_eq!(top, 1, "{rewritten}");
    }

    #[test]
    fn groups_of_several_rows_are_a_real_count_and_stay() {
        let sql = "SELECT Region_name, COUNT(*) FROM region GROUP BY Region_name";
        assert_eq!(
            rewrite(sql, "How many members does each region name have?"),
            None
        );
    }

    #[test]
    fn a_question_naming_no_referencing_table_or_the_grouped_one_leaves_the_query() {
        let sql = "SELECT Party_name, COUNT(*) FROM party GROUP BY Party_name";
        assert_eq!(
            rewrite(sql, "Show each party name and how many there are."),
            None
        );
        let two = "SELECT Party_name, COUNT(*) FROM party GROUP BY Party_name";
        assert_eq!(
            rewrite(
                two,
                "How many members and how many regions does each party name have?"
            ),
            None,
            "two tables named: which one is counted is unclear"
        );
    }

    #[test]
    fn a_distinct_count_or_another_aggregate_is_left_alone() {
        let distinct = "SELECT Party_name, COUNT(DISTINCT Party_ID) FROM party GROUP BY Party_name";
        assert_eq!(rewrite(distinct, "Number of members in each party?"), None);
        let sum = "SELECT Party_name, COUNT(*), SUM(Party_ID) FROM party GROUP BY Party_name";
        assert_eq!(rewrite(sum, "Number of members in each party?"), None);
    }

    #[test]
    fn without_a_connection_the_groups_cannot_be_checked() {
        let conn = database();
        let schema = introspect(&conn, ":memory:").unwrap();
        let sql = "SELECT Party_name, COUNT(*) FROM party GROUP BY Party_name";
        assert_eq!(
            join_counted_table(sql, "Number of members in each party?", &schema, None),
            None
        );
    }

    #[test]
    fn a_number_after_the_or_top_ranks_rows_instead_of_counting_them() {
        assert_eq!(
            counted_words("List the 3 customers with the most orders."),
            vec!["order".to_string()]
        );
        assert_eq!(
            counted_words("Show the top five products."),
            Vec::<String>::new()
        );
        assert!(
            counted_words("Which parties have at least two members?").contains(&"member".into())
        );
        assert_eq!(
            counted_words("Customers with 3 orders"),
            vec!["order".to_string()]
        );
    }
}
