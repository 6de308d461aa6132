//! A sort key shown as an answer column: "the dates, places and names of events in
//! descending order of attendance" comes out as `SELECT Event_Attendance, Date, Venue, Name
//! ... ORDER BY Event_Attendance DESC`. The question names the attendance only to say how
//! to sort; the answer it asks for is the other columns, sorted so. The prompt already
//! says to return only the columns asked for; small models add the sort key anyway.
//!
//! [`drop_order_only_columns`] removes an output column that is plainly a column of the
//! query, is what the query sorts by, and is named in the question only after the phrase
//! that says how to sort ("ordered by", "sorted by", "in descending order of"): some word of
//! its name appears there and nowhere before it. A column the question also asks for
//! ("names and ages, ordered by age") stays, and so does everything under DISTINCT (which
//! the column changes), GROUP BY (where the sort key says what each row is), a set
//! operation, or an ORDER BY by position.

use sqlparser::ast::{
    Expr, GroupByExpr, OrderByKind, Query, Select, SelectItem, SetExpr, Statement, TableFactor,
    Value,
};

use crate::core::db::ident::{lowercase_words, split_identifier};
use crate::core::db::sql_ast::parse_single_query;
use crate::core::rewrite::simplify::singular;
use crate::core::rewrite::{Rewrite, RewriteInput};

/// Words that say which way a sort goes ("in descending order of", "ordered ascending by").
const DIRECTIONS: [&str; 11] = [
    "ascending",
    "descending",
    "increasing",
    "decreasing",
    "alphabetical",
    "reverse",
    "reversed",
    "numerical",
    "chronological",
    "ascendingly",
    "descendingly",
];

/// Verbs that, followed by "by", say how to sort.
const SORT_VERBS: [&str; 8] = [
    "ordered", "sorted", "sort", "order", "ranked", "rank", "arranged", "arrange",
];

/// The query without the output columns the question names only to sort by; `None` when
/// there are none.
pub(crate) fn drop_order_only_columns(sql: &str, question: &str) -> Option<String> {
    let (asked, sorted_by) = split_at_sort_phrase(question)?;
    let mut statement = parse_single_query(sql)?;
    let Statement::Query(query) = &mut statement else {
        return None;
    };
    let order_keys = order_keys(query)?;
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    if select.distinct.is_some() || is_grouped(select) || select.projection.len() < 2 {
        return None;
    }
    let table_words = table_words(select);
    let dropped: Vec<usize> = select
        .projection
        .iter()
        .enumerate()
        .filter(|&(index, item)| {
            let Some((column, alias)) = shown_column(item) else {
                return false;
            };
            let sorts_by = order_keys
                .iter()
                .any(|key| same_column(key, column) || alias.is_some_and(|a| names(key, a)));
            if !sorts_by {
                return false;
            }
            let mut common_words = table_words.clone();
            common_words.extend(words_of_its_siblings(select, index, &asked));
            named_only_to_sort(column, &asked, &sorted_by, &common_words)
        })
        .map(|(index, _)| index)
        .collect();
    if dropped.is_empty() || dropped.len() == select.projection.len() {
        return None;
    }
    let removed = remove_items(select, &dropped)?;
    put_back_aliased_keys(query, &removed);
    Some(format!("{statement:#}"))
}

/// The question's words outside the phrase that says how to sort, and inside it
/// (singular, lower case); `None` when it has no such phrase. The phrase runs from its
/// verb to the end of its clause ("and", "then", or punctuation): "Sort the workshops in
/// alphabetical order of the venue. Return the date and venue" asks for the venue too.
fn split_at_sort_phrase(question: &str) -> Option<(Vec<String>, Vec<String>)> {
    let mut words: Vec<String> = Vec::new();
    let mut clause_ends: Vec<usize> = Vec::new();
    for clause in question.split(['.', '?', '!', ';', ',']) {
        words.extend(lowercase_words(clause));
        clause_ends.push(words.len());
    }
    let word = |i: usize| words.get(i).map(String::as_str);
    let (start, phrase) = (0..words.len()).find_map(|i| {
        let here = word(i)?;
        if SORT_VERBS.contains(&here) && word(i + 1) == Some("by") {
            return Some((i, i + 2));
        }
        if SORT_VERBS.contains(&here)
            && word(i + 1).is_some_and(|w| DIRECTIONS.contains(&w))
            && word(i + 2) == Some("by")
        {
            return Some((i, i + 3));
        }
        let direction = i.checked_sub(1).and_then(word);
        if here == "order"
            && word(i + 1) == Some("of")
            && direction.is_some_and(|w| w == "in" || DIRECTIONS.contains(&w))
        {
            return Some((i - 1, i + 2));
        }
        None
    })?;
    let clause_end = clause_ends
        .iter()
        .copied()
        .find(|&end| end >= phrase)
        .unwrap_or(words.len());
    let end = (phrase..clause_end)
        .find(|&i| matches!(word(i), Some("and" | "then")))
        .unwrap_or(clause_end);
    let singulars = |part: &[String]| part.iter().map(|w| singular(w)).collect::<Vec<_>>();
    let mut outside = singulars(&words[..start]);
    outside.extend(singulars(&words[end..]));
    Some((outside, singulars(&words[phrase..end])))
}

/// The ORDER BY expressions; `None` when there are none or one is a position.
fn order_keys(query: &Query) -> Option<Vec<Expr>> {
    let Some(OrderByKind::Expressions(exprs)) = query.order_by.as_ref().map(|o| &o.kind) else {
        return None;
    };
    let positional = exprs
        .iter()
        .any(|e| matches!(&e.expr, Expr::Value(v) if matches!(v.value, Value::Number(..))));
    (!exprs.is_empty() && !positional).then(|| exprs.iter().map(|e| e.expr.clone()).collect())
}

/// The column an output item shows, with its alias; `None` for anything but a column.
fn shown_column(item: &SelectItem) -> Option<(&Expr, Option<&str>)> {
    let (expr, alias) = match item {
        SelectItem::UnnamedExpr(expr) => (expr, None),
        SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.value.as_str())),
        _ => return None,
    };
    column_name(expr)?;
    Some((expr, alias))
}

fn column_name(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Identifier(id) => Some(&id.value),
        Expr::CompoundIdentifier(parts) => parts.last().map(|id| id.value.as_str()),
        _ => None,
    }
}

/// `T1.Scores` and `Scores` (or `T1.Scores`) are one column; `T1.x` and `T2.x` are not.
fn same_column(key: &Expr, column: &Expr) -> bool {
    let qualifier = |e: &Expr| match e {
        Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
            Some(parts[parts.len() - 2].value.to_lowercase())
        }
        _ => None,
    };
    let (Some(a), Some(b)) = (column_name(key), column_name(column)) else {
        return false;
    };
    a.eq_ignore_ascii_case(b)
        && match (qualifier(key), qualifier(column)) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        }
}

fn names(key: &Expr, alias: &str) -> bool {
    matches!(key, Expr::Identifier(id) if id.value.eq_ignore_ascii_case(alias))
}

/// Some word of the column's name is in the sort phrase and none is anywhere else in the
/// question. Words of the query's table names say nothing (`Event_Attendance` on `event` is
/// the attendance), nor do words several shown columns share ("the support and oppose
/// rates, ordered by unsure rate": `Unsure_rate` is told apart by "unsure"); and a name or
/// title column is what a question that names its table ("the wines ... sorted by name")
/// shows, so it stays.
fn named_only_to_sort(
    column: &Expr,
    asked: &[String],
    sorted_by: &[String],
    common_words: &[String],
) -> bool {
    let Some(name) = column_name(column) else {
        return false;
    };
    let words: Vec<String> = split_identifier(name)
        .iter()
        .filter(|w| w.len() > 1)
        .map(|w| singular(w))
        .filter(|w| !common_words.contains(w))
        .collect();
    let identifies = words.iter().all(|w| w == "name" || w == "title");
    !identifies
        && words.iter().any(|w| sorted_by.contains(w))
        && !words.iter().any(|w| asked.contains(w))
}

/// Whether the query groups its rows: a grouped answer's sort key says what each row is
/// (Spider's gold shows it: "the fastest lap speed of each race, ordered by year").
fn is_grouped(select: &Select) -> bool {
    match &select.group_by {
        GroupByExpr::Expressions(exprs, _) => !exprs.is_empty(),
        GroupByExpr::All(_) => true,
    }
}

/// The words `column` shares with other shown columns ("rate" of `Unsure_rate` beside
/// `Support_rate`), when the question names each of those by a word of its own
/// ("support"); otherwise none: the question words its columns in a way their names do not
/// show ("took office" for `Took_office`, "leave office" for `Left_office`), and a shared
/// word may be all that names the column.
fn words_of_its_siblings(select: &Select, index: usize, asked: &[String]) -> Vec<String> {
    let words_of = |item: &SelectItem| -> Vec<String> {
        shown_column(item)
            .and_then(|(column, _)| column_name(column))
            .map(name_words)
            .unwrap_or_default()
    };
    let own = words_of(&select.projection[index]);
    let mut shared: Vec<String> = Vec::new();
    for (at, item) in select.projection.iter().enumerate() {
        let theirs = words_of(item);
        if at == index || !theirs.iter().any(|w| own.contains(w)) {
            continue;
        }
        let named_apart = theirs.iter().any(|w| !own.contains(w) && asked.contains(w));
        if !named_apart {
            return Vec::new();
        }
        shared.extend(theirs.into_iter().filter(|w| own.contains(w)));
    }
    shared
}

/// The words of a table's or column's name (singular, lower case).
fn name_words(name: &str) -> Vec<String> {
    split_identifier(name).iter().map(|w| singular(w)).collect()
}

/// The words of the names of the tables the query reads (singular, lower case).
fn table_words(select: &Select) -> Vec<String> {
    select
        .from
        .iter()
        .flat_map(|from| {
            std::iter::once(&from.relation).chain(from.joins.iter().map(|j| &j.relation))
        })
        .filter_map(|factor| match factor {
            TableFactor::Table { name, .. } => name.0.last()?.as_ident().map(|i| i.value.clone()),
            _ => None,
        })
        .flat_map(|name| name_words(&name))
        .collect()
}

/// Removes the items at `indexes` and returns them; `None` (nothing removed) when GROUP BY
/// or HAVING reads one of them by its alias.
fn remove_items(select: &mut Select, indexes: &[usize]) -> Option<Vec<SelectItem>> {
    let aliases: Vec<String> = indexes
        .iter()
        .filter_map(|&i| match &select.projection[i] {
            SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.to_lowercase()),
            _ => None,
        })
        .collect();
    let grouped_by_alias = match &select.group_by {
        GroupByExpr::Expressions(exprs, _) => exprs.iter().any(
            |e| matches!(e, Expr::Identifier(id) if aliases.contains(&id.value.to_lowercase())),
        ),
        GroupByExpr::All(_) => true,
    };
    if grouped_by_alias || (select.having.is_some() && !aliases.is_empty()) {
        return None;
    }
    let mut removed = Vec::new();
    for &index in indexes.iter().rev() {
        removed.push(select.projection.remove(index));
    }
    Some(removed)
}

/// An ORDER BY that named a removed item by its alias sorts by the item's expression.
fn put_back_aliased_keys(query: &mut Query, removed: &[SelectItem]) {
    let Some(OrderByKind::Expressions(exprs)) = query.order_by.as_mut().map(|o| &mut o.kind) else {
        return;
    };
    for order in exprs {
        for item in removed {
            if let SelectItem::ExprWithAlias { expr, alias } = item
                && names(&order.expr, &alias.value)
            {
                order.expr = expr.clone();
            }
        }
    }
}

/// [`drop_order_only_columns`] as a step of the chain.
pub(crate) struct DropOrderOnlyColumns;

impl Rewrite for DropOrderOnlyColumns {
    fn name(&self) -> &'static str {
        "drop_order_only_columns"
    }

    fn apply(&self, sql: &str, input: &RewriteInput<'_>) -> Option<String> {
        drop_order_only_columns(sql, input.question)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_line(sql: Option<String>) -> Option<String> {
        sql.map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    #[test]
    fn a_column_named_only_to_sort_by_is_not_shown() {
        assert_eq!(
            one_line(drop_order_only_columns(
                "SELECT Event_Attendance, Date, Venue, Name FROM event \
                 ORDER BY Event_Attendance DESC",
                "Show the dates, places, and names of events in descending order of the \
                 attendance."
            ))
            .as_deref(),
            Some("SELECT Date, Venue, Name FROM event ORDER BY Event_Attendance DESC")
        );
        assert_eq!(
            one_line(drop_order_only_columns(
                "SELECT m.Name, br.Name, mr.Register_Year FROM member m JOIN \
                 membership_register_branch mr ON m.Member_ID = mr.Member_ID JOIN branch br \
                 ON mr.Branch_ID = br.Branch_ID ORDER BY mr.Register_Year",
                "What are the names of the members and branches at which they are registered \
                 sorted by year of registration?"
            ))
            .as_deref(),
            Some(
                "SELECT m.Name, br.Name FROM member m JOIN membership_register_branch mr \
                 ON m.Member_ID = mr.Member_ID JOIN branch br ON mr.Branch_ID = br.Branch_ID \
                 ORDER BY mr.Register_Year"
            )
        );
        assert_eq!(
            one_line(drop_order_only_columns(
                "SELECT s.Author, s.Scores AS score FROM submission s ORDER BY score",
                "Find the author for each submission and list them in ascending order of \
                 submission score."
            ))
            .as_deref(),
            Some("SELECT s.Author FROM submission s ORDER BY s.Scores")
        );
        // "rate" is every shown column's; "unsure" tells the sort key apart.
        assert_eq!(
            one_line(drop_order_only_columns(
                "SELECT Support_rate, Oppose_rate, Unsure_rate FROM candidate \
                 ORDER BY Unsure_rate ASC",
                "What are the support and oppose rates of each candidate, ordered ascending \
                 by their unsure rate?"
            ))
            .as_deref(),
            Some("SELECT Support_rate, Oppose_rate FROM candidate ORDER BY Unsure_rate ASC")
        );
    }

    #[test]
    fn a_sort_column_the_question_asks_for_stays() {
        for (sql, question) in [
            (
                "SELECT name, age FROM people ORDER BY age",
                "List the names and ages of people ordered by age.",
            ),
            // No phrase that says how to sort.
            (
                "SELECT name, age FROM people ORDER BY age DESC LIMIT 1",
                "What is the name of the oldest person?",
            ),
            // DISTINCT rows change with the column.
            (
                "SELECT DISTINCT name, age FROM people ORDER BY age",
                "List the names of people sorted by age.",
            ),
            // "took" and "left" are not how the question names the office columns.
            (
                "SELECT Minister, Took_office, Left_office FROM party ORDER BY Left_office",
                "Who are the ministers, when did they take office, and when did they leave \
                 office, ordered by when they left office?",
            ),
            // Sorted by something else.
            (
                "SELECT name, age FROM people ORDER BY name",
                "List the names of people sorted by age.",
            ),
            // The only column.
            (
                "SELECT age FROM people ORDER BY age",
                "List people sorted by age.",
            ),
            // By position.
            (
                "SELECT name, age FROM people ORDER BY 2",
                "List the names of people sorted by age.",
            ),
            (
                "SELECT name, age FROM people UNION SELECT name, age FROM staff ORDER BY age",
                "List the names of people sorted by age.",
            ),
            // A word of its name is asked for ("rates").
            (
                "SELECT Name, Unsure_rate FROM candidate ORDER BY Unsure_rate",
                "What are the names and rates of the candidates, ordered by their unsure \
                 rate?",
            ),
            // Asked for after the sort phrase's sentence.
            (
                "SELECT Date, Venue FROM workshop ORDER BY Venue",
                "Sort the each workshop in alphabetical order of the venue. Return the date \
                 and venue of each workshop.",
            ),
            // A grouped answer shows its sort key.
            (
                "SELECT max(price), product_type_code FROM products GROUP BY \
                 product_type_code ORDER BY product_type_code",
                "What are the highest prices of products, grouped by and ordered by product \
                 type?",
            ),
            // A name is what "the wines" shows.
            (
                "SELECT Grape, Name FROM wine ORDER BY Name",
                "What are the grapes and wines with scores above 93, sorted by name?",
            ),
            // "order dates of" is not a sort phrase.
            (
                "SELECT order_id, order_date FROM orders ORDER BY order_date",
                "What are the order ids and order dates of the orders?",
            ),
        ] {
            assert_eq!(drop_order_only_columns(sql, question), None, "{sql}");
        }
    }
}
