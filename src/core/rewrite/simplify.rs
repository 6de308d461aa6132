//! Rewrites of a generated query that fix what small models get wrong in a way the query
//! itself gives away. Each is measured in docs/eval.md and has its own setting.
//!
//! [`drop_unused_joins`] drops joined tables that a generated query never uses.
//! Small models join a related table "for context" (`teacher JOIN course_arrange` to list
//! teachers by age). An inner join that nothing reads only filters rows to those with a
//! match and repeats them once per match, which is almost never what the question asked:
//! on the shared Spider subset, 18 of the defaults' wrong answers were exactly that and
//! none of the right ones needed it (docs/eval.md). The join is kept whenever the query
//! could mean "rows that have a match" or count the joined rows: under any `COUNT` ("how
//! many tracks" over `MediaType JOIN Track`, `ORDER BY COUNT(*)` for "the most orders"), a
//! `DISTINCT` aggregate, when its `ON` is more than column equalities, when the question
//! names the joined table ("names of the gymnasts" over `gymnast JOIN people`), and
//! anywhere but the outermost SELECT (in an `EXCEPT` arm or a `NOT IN` subquery the join
//! is the meaning). Under `SUM`, `AVG` or `GROUP BY` without a count, the join repeats what
//! is summed ("total revenue of the companies in Austin" over `Manufacturers JOIN
//! Products`), so it goes unless the question says "have"/"with", "how many" or "number",
//! or names every word of the joined table. Under a `COUNT` the join goes only when the
//! question counts the rows of another table in the query by name ("the number of
//! employees of each gender" over `employee JOIN works_on`), with no "have"/"with" and no
//! participle; the "have" of "how many students does each advisor have" ties the students
//! to their advisor and does not count as one, unless the owner is the joined table.
//! Under `DISTINCT` the join can only mean "that have a match", so it is kept when the
//! question says "have" or "with" (unless the next word names a column of the other tables:
//! "products with length smaller than 3"), a participle ("professors teaching"), or a word
//! of the joined table's name that the other tables' names lack ("customers" names
//! `Customers`, not `Customer_Contact_Channels`). An unused `LEFT JOIN` keeps every row
//! whatever the question says, so unless the query counts or sums, it goes whatever the
//! question's words (it can only repeat rows). The gold audit (`nano-analyst rewrites audit`) measures what is
//! left.
//!
//! [`intersect_both_values`] turns `WHERE lang = 'English' AND lang = 'French'`, which no
//! row can satisfy, into the two queries' INTERSECT: the "both" the question asked for.
//! Two ranges of one column that cannot overlap (`year < 2003 AND year > 2003`, "founded
//! before and after 2003") are the same mistake and get the same rewrite. When the question
//! says "both", a column allowed either of two values (`slot IN ('Morning', 'Night')`,
//! `slot = 'Morning' OR slot = 'Night'`) or tested against two subqueries (`T2.mid IN
//! (..) AND T2.mid IN (..)`, which asks one joined row to be in both) is split the same
//! way.
//!
//! [`show_group_columns`] puts the grouped columns in front of a grouped query that only
//! returns aggregates: "how many cities in each district" as a bare list of counts cannot
//! be read without the districts.
//!
//! [`unlinked_join_condition`] is a check rather than a rewrite: `JOIN airports AS P ON
//! P.AirportCode = P.AirportCode` pairs every row with every row, and the pipeline sends
//! such a query back to the model with that said (there is no one right fix).

use std::collections::HashMap;
use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Distinct, DuplicateTreatment, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArguments, GroupByExpr, Join, JoinConstraint, JoinOperator, Select, SelectItem,
    SetExpr, SetOperator, SetQuantifier, Statement, TableFactor, TableWithJoins, Value, Visit,
    Visitor, visit_expressions,
};

use crate::core::db::ident::{lowercase_words, split_identifier};
use crate::core::db::schema::{Schema, Table};
use crate::core::db::sql_ast::{
    any_function, conjunction, conjuncts, for_each_select_mut, is_column, join_condition,
    parse_single_query, schema_table,
};
use crate::core::rewrite::{Check, Rewrite, RewriteInput};

/// Rounds of dropping: a table that only bridges to a dropped one becomes unused itself.
const MAX_ROUNDS: usize = 8;

/// The query without the inner joins it does not use, pretty-printed; `None` when nothing
/// was dropped (or the text is not one query `sqlparser` reads).
pub fn drop_unused_joins(sql: &str, schema: &Schema, question: &str) -> Option<String> {
    let mut statement = parse_single_query(sql)?;
    let asked = QuestionWords::of(question);
    if has_wildcard(&mut statement) || !qualified_columns_resolve(&statement, schema) {
        return None;
    }
    // A COUNT anywhere (ORDER BY included) counts the joined rows: "the customer with the
    // most orders" is `customers JOIN invoices ... ORDER BY COUNT(*)`.
    let counts_joined_rows = any_function(&statement, is_count);
    let mut dropped_any = false;
    for _ in 0..MAX_ROUNDS {
        let references = References::of(&statement);
        // Only the outermost SELECT: inside an EXCEPT/INTERSECT arm or an IN/EXISTS
        // subquery, a join nothing else reads is the meaning ("artists with no album").
        let Statement::Query(query) = &mut statement else {
            return None;
        };
        let SetExpr::Select(select) = query.body.as_mut() else {
            return None;
        };
        if !drop_one_unused_join(select, schema, &references, &asked, counts_joined_rows) {
            break;
        }
        dropped_any = true;
    }
    dropped_any.then(|| format!("{statement:#}"))
}

/// `SELECT .. WHERE c = 'a' AND c = 'b' AND rest` as `SELECT .. WHERE c = 'a' AND rest
/// INTERSECT SELECT .. WHERE c = 'b' AND rest`, pretty-printed; `None` when the query is not
/// a plain one with exactly two different literals for one column. A lone
/// `COUNT(DISTINCT x)` counts the INTERSECT of the two sides' `x` ("how many countries
/// speak both"). Other grouped, aggregated, ordered or limited queries are left alone:
/// their INTERSECT would mean something else.
pub(crate) fn intersect_both_values(sql: &str, question: &str) -> Option<String> {
    let mut statement = parse_single_query(sql)?;
    let Statement::Query(query) = &mut statement else {
        return None;
    };
    if query.with.is_some()
        || query.order_by.is_some()
        || query.limit_clause.is_some()
        || query.fetch.is_some()
    {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    if has_grouping(select) || select.having.is_some() {
        return None;
    }
    let counted = counted_distinct(select);
    if counted.is_none() && any_function(&select.projection, |_| true) {
        return None;
    }
    let conjuncts = conjuncts(select.selection.as_ref()?);
    let (first, second) = conflicting_equalities(&conjuncts)
        .or_else(|| disjoint_ranges(&conjuncts))
        .map(|(first, second)| {
            (
                conditions_without(&conjuncts, second),
                conditions_without(&conjuncts, first),
            )
        })
        .or_else(|| {
            asks_both(question)
                .then(|| either_split(&conjuncts))
                .flatten()
        })?;
    let side = |conditions: Vec<Expr>| {
        let mut side = select.as_ref().clone();
        side.distinct = None;
        if let Some(counted) = &counted {
            side.projection = vec![SelectItem::UnnamedExpr(counted.clone())];
        }
        side.selection = conjunction(conditions);
        Box::new(SetExpr::Select(Box::new(side)))
    };
    *query.body = SetExpr::SetOperation {
        left: side(first),
        op: SetOperator::Intersect,
        set_quantifier: SetQuantifier::None,
        right: side(second),
    };
    if counted.is_some() {
        let counted = parse_single_query(&format!("SELECT COUNT(*) FROM ({statement})"))?;
        return Some(format!("{counted:#}"));
    }
    Some(format!("{statement:#}"))
}

/// "Both" in the question: the rows must match each of two values, never either one.
fn asks_both(question: &str) -> bool {
    lowercase_words(question).iter().any(|word| word == "both")
}

/// The two sides' conditions when the query lets one column take either of two values
/// while the question asks for both: `c IN ('a', 'b')` or `c = 'a' OR c = 'b'` (one side
/// with each value), or `c IN (SELECT ..) AND c IN (SELECT ..)` (one side with each
/// subquery), which asks one joined row to be in both sets ("lenses that took a picture
/// of both ranges"). `None` for anything else.
fn either_split(conjuncts: &[&Expr]) -> Option<(Vec<Expr>, Vec<Expr>)> {
    let with_replaced = |index: usize, replacement: Expr| {
        let mut conditions: Vec<Expr> = conjuncts.iter().map(|expr| (*expr).clone()).collect();
        conditions[index] = replacement;
        conditions
    };
    for (index, expr) in conjuncts.iter().enumerate() {
        if let Some((first, second)) = either_value(expr) {
            return Some((with_replaced(index, first), with_replaced(index, second)));
        }
    }
    let subquery_tests: Vec<(usize, String)> = conjuncts
        .iter()
        .enumerate()
        .filter_map(|(index, expr)| match expr {
            Expr::InSubquery {
                expr: column,
                negated: false,
                ..
            } if is_column(column) => Some((index, column.to_string().to_lowercase())),
            _ => None,
        })
        .collect();
    let [(first, column), (second, other)] = subquery_tests.as_slice() else {
        return None;
    };
    if column != other {
        return None;
    }
    Some((
        conditions_without(conjuncts, *second),
        conditions_without(conjuncts, *first),
    ))
}

/// Every condition but the one at `dropped`.
fn conditions_without(conjuncts: &[&Expr], dropped: usize) -> Vec<Expr> {
    conjuncts
        .iter()
        .enumerate()
        .filter(|(index, _)| *index != dropped)
        .map(|(_, expr)| (*expr).clone())
        .collect()
}

/// Two different literals of one kind (two texts or two numbers): values one column
/// cannot hold at once.
fn different_literals(value: &Value, other: &Value) -> bool {
    let same_kind = matches!(
        (value, other),
        (Value::SingleQuotedString(_), Value::SingleQuotedString(_))
            | (Value::Number(..), Value::Number(..))
    );
    same_kind && value != other
}

/// `c = 'a'` and `c = 'b'` from `c IN ('a', 'b')` or `c = 'a' OR c = 'b'`: two different
/// literals of one kind for one column.
fn either_value(expr: &Expr) -> Option<(Expr, Expr)> {
    let equal = |column: &Expr, value: &Expr| Expr::BinaryOp {
        left: Box::new(column.clone()),
        op: BinaryOperator::Eq,
        right: Box::new(value.clone()),
    };
    let (column, first, second) = match expr {
        Expr::Nested(inner) => return either_value(inner),
        Expr::InList {
            expr: column,
            list,
            negated: false,
        } if is_column(column) => match list.as_slice() {
            [first, second] => (column.as_ref(), first, second),
            _ => return None,
        },
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Or,
            right,
        } => {
            let (column, first) = literal_equality_parts(left)?;
            let (other, second) = literal_equality_parts(right)?;
            if !column.to_string().eq_ignore_ascii_case(&other.to_string()) {
                return None;
            }
            (column, first, second)
        }
        _ => return None,
    };
    let (Expr::Value(a), Expr::Value(b)) = (first, second) else {
        return None;
    };
    different_literals(&a.value, &b.value).then(|| (equal(column, first), equal(column, second)))
}

/// The column and the literal of `column = literal` (either side first).
fn literal_equality_parts(expr: &Expr) -> Option<(&Expr, &Expr)> {
    let Expr::BinaryOp {
        left,
        op: BinaryOperator::Eq,
        right,
    } = expr
    else {
        return None;
    };
    match (left.as_ref(), right.as_ref()) {
        (column, value @ Expr::Value(_)) | (value @ Expr::Value(_), column)
            if is_column(column) =>
        {
            Some((column, value))
        }
        _ => None,
    }
}

/// `x` of a SELECT whose one output is `COUNT(DISTINCT x)`.
fn counted_distinct(select: &Select) -> Option<Expr> {
    let [
        SelectItem::UnnamedExpr(Expr::Function(function))
        | SelectItem::ExprWithAlias {
            expr: Expr::Function(function),
            ..
        },
    ] = select.projection.as_slice()
    else {
        return None;
    };
    let FunctionArguments::List(list) = &function.args else {
        return None;
    };
    if !is_count(function) || list.duplicate_treatment != Some(DuplicateTreatment::Distinct) {
        return None;
    }
    match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(counted))] => Some(counted.clone()),
        _ => None,
    }
}

/// `SELECT COUNT(*) .. GROUP BY d` as `SELECT d, COUNT(*) .. GROUP BY d`, pretty-printed;
/// `None` unless the outer query is one grouped SELECT whose every output is an aggregate
/// and whose groups are plain columns. A query with LIMIT is left alone: "the largest
/// number of cities in a district" asks for the number.
pub(crate) fn show_group_columns(sql: &str) -> Option<String> {
    let mut statement = parse_single_query(sql)?;
    let Statement::Query(query) = &mut statement else {
        return None;
    };
    if query.limit_clause.is_some() || query.fetch.is_some() {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    let GroupByExpr::Expressions(grouped, _) = &select.group_by else {
        return None;
    };
    if grouped.is_empty() || !grouped.iter().all(is_column) {
        return None;
    }
    let only_aggregates = !select.projection.is_empty()
        && select.projection.iter().all(|item| match item {
            SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => {
                any_function(expr, is_aggregate)
            }
            _ => false,
        });
    if !only_aggregates {
        return None;
    }
    let shown: Vec<SelectItem> = grouped
        .iter()
        .map(|column| SelectItem::UnnamedExpr(column.clone()))
        .collect();
    select.projection.splice(0..0, shown);
    Some(format!("{statement:#}"))
}

/// The first join condition that does not connect two tables, as written: `x = x` (one
/// column on both sides), or columns of one table only (`T2.CountryAbbrev = T2.Country`).
/// Either pairs every row with every row of the other table. `None` when there is none or
/// the text is not one query.
pub(crate) fn unlinked_join_condition(sql: &str) -> Option<String> {
    let mut statement = parse_single_query(sql)?;
    let mut found = None;
    for_each_select_mut(&mut statement, |select| {
        for join in select.from.iter().flat_map(|from| &from.joins) {
            let Some(on) = join_condition(join) else {
                continue;
            };
            if found.is_none() && links_nothing(on) {
                found = Some(on.to_string());
            }
        }
    });
    found
}

/// Column equalities only, and each compares a column with itself or all of them read one
/// qualifier.
fn links_nothing(on: &Expr) -> bool {
    let conditions = conjuncts(on);
    let mut qualifiers = Vec::new();
    for condition in &conditions {
        let Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } = condition
        else {
            return false;
        };
        if !is_column(left) || !is_column(right) {
            return false;
        }
        if left.to_string().eq_ignore_ascii_case(&right.to_string()) {
            return true;
        }
        for side in [left, right] {
            let Expr::CompoundIdentifier(parts) = side.as_ref() else {
                return false;
            };
            let Some(qualifier) = parts.len().checked_sub(2).map(|i| &parts[i].value) else {
                return false;
            };
            qualifiers.push(qualifier.to_lowercase());
        }
    }
    !qualifiers.is_empty() && qualifiers.iter().all(|q| *q == qualifiers[0])
}

pub(crate) fn is_aggregate(function: &Function) -> bool {
    named_one_of(
        function,
        &["count", "sum", "avg", "min", "max", "total", "group_concat"],
    )
}

pub(crate) fn is_count(function: &Function) -> bool {
    named_one_of(function, &["count"])
}

fn named_one_of(function: &Function, names: &[&str]) -> bool {
    function
        .name
        .0
        .last()
        .and_then(|part| part.as_ident())
        .is_some_and(|name| names.iter().any(|n| name.value.eq_ignore_ascii_case(n)))
}

/// Indices of `c = x` and `c = y` with x and y different literals of one kind, when that
/// column has no third value.
fn conflicting_equalities(conjuncts: &[&Expr]) -> Option<(usize, usize)> {
    let equalities: Vec<(usize, String, &Value)> = conjuncts
        .iter()
        .enumerate()
        .filter_map(|(index, expr)| {
            literal_equality(expr).map(|(column, value)| (index, column, value))
        })
        .collect();
    for (position, (first, column, value)) in equalities.iter().enumerate() {
        let same_column = |(_, other_column, _): &&(usize, String, &Value)| other_column == column;
        if equalities.iter().filter(same_column).count() != 2 {
            continue;
        }
        let Some((second, _, other_value)) = equalities[position + 1..].iter().find(same_column)
        else {
            continue;
        };
        if different_literals(value, other_value) {
            return Some((*first, *second));
        }
    }
    None
}

/// Indices of `c < x` and `c > y` (or `<=`, `>=`) with numbers that leave no value
/// between them ("founded before 2003 and after 2003"), when the column has no other bound.
fn disjoint_ranges(conjuncts: &[&Expr]) -> Option<(usize, usize)> {
    let bounds: Vec<(usize, String, Bound)> = conjuncts
        .iter()
        .enumerate()
        .filter_map(|(index, expr)| {
            numeric_bound(expr).map(|(column, bound)| (index, column, bound))
        })
        .collect();
    for (upper_index, column, upper) in &bounds {
        let Bound::Below(limit) = upper else {
            continue;
        };
        if bounds
            .iter()
            .filter(|(_, other, _)| other == column)
            .count()
            != 2
        {
            continue;
        }
        let lower = bounds.iter().find_map(|(index, other, bound)| match bound {
            Bound::Above(floor) if other == column => Some((*index, *floor)),
            _ => None,
        });
        if let Some((lower_index, floor)) = lower
            && floor >= *limit
        {
            return Some((
                *upper_index.min(&lower_index),
                *upper_index.max(&lower_index),
            ));
        }
    }
    None
}

enum Bound {
    /// `c < x`.
    Below(f64),
    /// `c > x`.
    Above(f64),
}

/// `column < number` or `column > number` (either side first) as the column's bound. Only
/// strict comparisons: `c <= 5 AND c >= 5` matches 5.
fn numeric_bound(expr: &Expr) -> Option<(String, Bound)> {
    let Expr::BinaryOp { left, op, right } = expr else {
        return None;
    };
    let number = |expr: &Expr| match expr {
        Expr::Value(value) => match &value.value {
            Value::Number(text, _) => text.parse::<f64>().ok(),
            _ => None,
        },
        _ => None,
    };
    let column_below = match op {
        BinaryOperator::Lt => true,
        BinaryOperator::Gt => false,
        _ => return None,
    };
    // `2003 > year` bounds the column the other way round.
    let (column, value, below) = if is_column(left) {
        (left, right, column_below)
    } else if is_column(right) {
        (right, left, !column_below)
    } else {
        return None;
    };
    let limit = number(value)?;
    let column = column.to_string().to_lowercase();
    Some(if below {
        (column, Bound::Below(limit))
    } else {
        (column, Bound::Above(limit))
    })
}

fn literal_equality(expr: &Expr) -> Option<(String, &Value)> {
    match literal_equality_parts(expr)? {
        (column, Expr::Value(value)) => Some((column.to_string().to_lowercase(), &value.value)),
        _ => None,
    }
}

/// Every column reference in the statement: qualified ones counted by qualifier, and the
/// names used without one.
#[derive(Default)]
struct References {
    by_qualifier: HashMap<String, usize>,
    unqualified: Vec<String>,
}

impl References {
    fn of<T: Visit>(node: &T) -> Self {
        let mut references = References::default();
        let _ = visit_expressions(node, |expr| {
            match expr {
                Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                    let qualifier = parts[parts.len() - 2].value.to_lowercase();
                    *references.by_qualifier.entry(qualifier).or_default() += 1;
                }
                Expr::Identifier(ident) => references.unqualified.push(ident.value.to_lowercase()),
                _ => {}
            }
            ControlFlow::<()>::Continue(())
        });
        references
    }

    fn count(&self, qualifier: &str) -> usize {
        self.by_qualifier.get(qualifier).copied().unwrap_or(0)
    }
}

/// Removes the first inner or left join of `select` that nothing reads; whether it removed
/// one. One join per round, so the reference counts stay true.
fn drop_one_unused_join(
    select: &mut Select,
    schema: &Schema,
    references: &References,
    asked: &QuestionWords,
    counts_joined_rows: bool,
) -> bool {
    // Under a plain DISTINCT a join only keeps the rows that have a match, so it is
    // dropped only when nothing in the question asks for a match (see `is_unused`).
    let distinct = match &select.distinct {
        None => false,
        Some(Distinct::Distinct) => true,
        Some(_) => return false,
    };
    if has_distinct_aggregate(select) {
        return false;
    }
    let context = if has_grouping(select) || counts_rows(select) {
        if counts_joined_rows {
            JoinContext::Counted
        } else {
            JoinContext::Aggregated
        }
    } else if distinct {
        JoinContext::Distinct
    } else {
        JoinContext::Rows
    };
    let [TableWithJoins { relation, joins }] = select.from.as_mut_slice() else {
        return false;
    };
    let tables: Vec<String> = std::iter::once(&*relation)
        .chain(joins.iter().map(|join| &join.relation))
        .filter_map(|factor| schema_table(factor, schema).map(|(_, table)| table.name.clone()))
        .collect();
    let scope = Scope {
        schema,
        references,
        asked,
        context,
        tables: &tables,
    };
    if let Some(index) = joins.iter().position(|join| {
        droppable_join_condition(join)
            .is_some_and(|on| scope.is_unused(&join.relation, on, is_left_join(join)))
    }) {
        joins.remove(index);
        return true;
    }
    // `FROM city JOIN country ON ... WHERE country.Name = 'Anguilla'`: the first table is
    // the unused one, and the joined table takes its place.
    let first_join_on = joins.first().and_then(inner_join_condition);
    if first_join_on.is_some_and(|on| scope.is_unused(relation, on, false)) {
        let first = joins.remove(0);
        *relation = first.relation;
        return true;
    }
    false
}

fn is_left_join(join: &Join) -> bool {
    matches!(
        join.join_operator,
        JoinOperator::Left(_) | JoinOperator::LeftOuter(_)
    )
}

fn inner_join_condition(join: &Join) -> Option<&Expr> {
    match &join.join_operator {
        JoinOperator::Join(JoinConstraint::On(on))
        | JoinOperator::Inner(JoinConstraint::On(on)) => Some(on),
        _ => None,
    }
}

/// The join's condition when dropping the joined table leaves every row of the tables
/// before it: an inner join, or a left join (which only repeats them).
fn droppable_join_condition(join: &Join) -> Option<&Expr> {
    match &join.join_operator {
        JoinOperator::Left(JoinConstraint::On(on))
        | JoinOperator::LeftOuter(JoinConstraint::On(on)) => Some(on),
        _ => inner_join_condition(join),
    }
}

/// What deciding whether one joined table is unused reads.
struct Scope<'a> {
    schema: &'a Schema,
    references: &'a References,
    asked: &'a QuestionWords,
    context: JoinContext,
    /// The schema names of the SELECT's tables, the candidate among them.
    tables: &'a [String],
}

impl Scope<'_> {
    /// Whether nothing but the join condition `on` reads `relation`, and the question does
    /// not name its table ("names of the gymnasts": the join to `gymnast` is what keeps
    /// only them). A `left` join keeps every row whatever the question says, so when
    /// nothing counts or sums its rows it can only repeat them, and the question is not read.
    fn is_unused(&self, relation: &TableFactor, on: &Expr, left: bool) -> bool {
        if !matches!(relation, TableFactor::Table { args: None, .. }) {
            return false;
        }
        let Some((used_as, table)) = schema_table(relation, self.schema) else {
            return false;
        };
        let only_repeats =
            left && matches!(self.context, JoinContext::Rows | JoinContext::Distinct);
        if !only_repeats && self.question_keeps(table) {
            return false;
        }
        let qualifier = used_as.to_lowercase();
        if !is_column_equalities(on) {
            return false;
        }
        let inside_on = References::of(on);
        if self.references.count(&qualifier) > inside_on.count(&qualifier) {
            return false;
        }
        // A bare column name may be this table's: keep the join rather than guess.
        !self
            .references
            .unqualified
            .iter()
            .any(|name| table.column(name).is_some())
    }

    /// Whether the question may mean the join to `table`: it names the table, restricts by
    /// a clause, or (by the context) asks for rows that have a match or counts the joined
    /// rows.
    fn question_keeps(&self, table: &Table) -> bool {
        let asked = self.asked;
        let others = self.other_tables(&table.name);
        if asked.restricts_by_clause(&table.name, &others)
            || asked.names_alone(&table.name, &others)
        {
            return true;
        }
        // Under DISTINCT the join can only mean "that have a match": "professors teaching
        // in a department", "cities where people live" (`people_addresses`). A word the
        // joined table shares with another table of the query ("customers" and
        // `Customer_Contact_Channels` beside `Customers`) names that one, and "with" before
        // one of their columns ("products with length") describes their rows.
        match self.context {
            JoinContext::Rows => false,
            JoinContext::Distinct => {
                asked.has_participle
                    || asked.asks_for_a_match(&table.name, &others)
                    || asked.names_a_word_of_its_own(&table.name, &others)
            }
            // Under an aggregate the join repeats what is counted or summed; it is the
            // meaning only when the question speaks of the joined rows ("tracks",
            // "students with").
            JoinContext::Aggregated => {
                asked.asks_for_a_match(&table.name, &others)
                    || asked.asks_how_many
                    || asked.names(&table.name)
            }
            JoinContext::Counted => !self.counts_another_table(&table.name),
        }
    }

    /// The query's tables other than `joined`.
    fn other_tables(&self, joined: &str) -> Vec<&Table> {
        self.tables
            .iter()
            .filter(|name| !name.eq_ignore_ascii_case(joined))
            .filter_map(|name| self.schema.table(name))
            .collect()
    }

    /// Whether the question counts the rows of a table other than `joined`: "the number
    /// of employees of each gender" over `employee JOIN works_on` counts employees, so the
    /// join only multiplies them. A count the question does not spell out ("the customer
    /// with the most orders" over `customers JOIN invoices`), or one of rows a synonym
    /// names ("how many drivers" over `races JOIN results`), is taken to be of the joined
    /// rows.
    fn counts_another_table(&self, joined: &str) -> bool {
        let asked = self.asked;
        if asked.possesses_beyond_the_count() || asked.has_participle || asked.counted.is_empty() {
            return false;
        }
        let joined_words = table_words(joined);
        if asked
            .count_owners
            .iter()
            .any(|owner| joined_words.contains(owner))
        {
            return false;
        }
        asked.counted.iter().all(|counted| {
            !joined_words.contains(counted)
                && self.tables.iter().any(|table| {
                    !table.eq_ignore_ascii_case(joined) && table_words(table).contains(counted)
                })
        })
    }
}

/// What an unused join can still change in the SELECT around it.
#[derive(Clone, Copy)]
enum JoinContext {
    /// Plain rows: the join only filters and repeats them.
    Rows,
    /// `SELECT DISTINCT`: the join can only keep the rows that have a match.
    Distinct,
    /// A `COUNT` somewhere in the query: it may count the joined rows.
    Counted,
    /// Grouped or aggregated (`SUM`, `AVG`) with no `COUNT` anywhere: the join repeats
    /// what is summed.
    Aggregated,
}

/// The words of a question, singular, for telling whether it names a table.
struct QuestionWords {
    words: std::collections::HashSet<String>,
    /// "students who tried out", "documents that have expenses": a relative clause with an
    /// action or a possession asks for rows that have a match, which is what the join does,
    /// unless what it possesses is a column of the other tables ("the country that has the
    /// largest area").
    relative_clauses: Vec<ClauseVerb>,
    /// The word after each "have", "has", "with" (articles and degree words such as
    /// "largest" skipped), singular; `None` at the end of the question.
    possessed: Vec<Option<String>>,
    /// "professors teaching", "people living": a participle may restrict by a relation.
    has_participle: bool,
    /// "how many", "the number of": the question counts something, which may be the
    /// joined rows even when the query sums ("the total number of credits offered").
    asks_how_many: bool,
    /// What each "how many ..." or "number of ..." counts: the last word of the phrase
    /// ("how many movie reviews" -> "review"), singular. A phrase followed by a
    /// participle ("medications prescribed") counts a relation and adds nothing.
    counted: Vec<String>,
    /// The "have" of "how many students does each advisor have" ties the counted rows to
    /// their owner, not to a joined table: how many of `possessed` are such a "have", and
    /// the owner's words ("each advisor" -> "advisor"), singular.
    count_haves: usize,
    count_owners: Vec<String>,
}

/// Words that join the parts of a table's name and say nothing about what it holds.
const LINKING_WORDS: [&str; 6] = ["with", "and", "the", "for", "has", "have"];

impl QuestionWords {
    fn of(question: &str) -> Self {
        let words = lowercase_words(question);
        // "whose status is": an attribute of the row, not a relation to another table.
        let relative_clauses = words
            .windows(2)
            .enumerate()
            .filter(|(_, pair)| {
                matches!(pair[0].as_str(), "who" | "that")
                    && !matches!(
                        pair[1].as_str(),
                        "is" | "are" | "was" | "were" | "be" | "the" | "a" | "an"
                    )
            })
            .map(|(at, pair)| {
                if is_possession(&pair[1]) {
                    ClauseVerb::Possession(object_after(&words, at + 1))
                } else {
                    ClauseVerb::Action
                }
            })
            .collect();
        let possessions: Vec<usize> = words
            .iter()
            .enumerate()
            .filter(|(_, w)| is_possession(w))
            .map(|(at, _)| at)
            .collect();
        let (count_haves, count_owners) = count_possessions(&words, &possessions);
        let possessed: Vec<Option<String>> = possessions
            .iter()
            .map(|&at| object_after(&words, at))
            .collect();
        let has_participle = words.iter().any(|w| w.len() > 5 && w.ends_with("ing"));
        let asks_how_many = words.iter().any(|w| w == "number")
            || words
                .windows(2)
                .any(|pair| pair[0] == "how" && pair[1] == "many");
        Self {
            words: words.iter().map(|w| singular(w)).collect(),
            relative_clauses,
            possessed,
            has_participle,
            asks_how_many,
            counted: counted_nouns(&words),
            count_haves,
            count_owners,
        }
    }

    /// A "have"/"has"/"with" other than the verb of a "how many X does Y have" clause.
    fn possesses_beyond_the_count(&self) -> bool {
        self.possessed.len() > self.count_haves
    }

    /// Every word of `table`'s name is in the question.
    fn names(&self, table: &str) -> bool {
        let words = table_words(table);
        !words.is_empty() && words.iter().all(|w| self.words.contains(w))
    }

    /// Every word of `table`'s name is in the question, and those words are not all part
    /// of a longer name of `others` that the question uses by a word of its own: "template
    /// type code" names `Ref_Template_Types`, not `Templates` beside it.
    fn names_alone(&self, table: &str, others: &[&Table]) -> bool {
        if !self.names(table) {
            return false;
        }
        let words = table_words(table);
        !others.iter().any(|other| {
            let longer = table_words(&other.name);
            words.iter().all(|w| longer.contains(w))
                && longer
                    .iter()
                    .any(|w| !words.contains(w) && self.words.contains(w))
        })
    }

    /// Some word of `table`'s name that no table of `others` has is in the question.
    fn names_a_word_of_its_own(&self, table: &str, others: &[&Table]) -> bool {
        let theirs: Vec<String> = others.iter().flat_map(|t| table_words(&t.name)).collect();
        table_words(table)
            .iter()
            .any(|w| self.words.contains(w) && !theirs.contains(w))
    }

    /// Whether a "have"/"has"/"with" may ask for rows of `joined` that have a match (see
    /// [`may_possess_joined_rows`]).
    fn asks_for_a_match(&self, joined: &str, others: &[&Table]) -> bool {
        self.possessed
            .iter()
            .any(|object| may_possess_joined_rows(object.as_deref(), joined, others))
    }

    /// Whether a relative clause restricts the rows to those with a match in `joined`:
    /// any clause with an action ("students who tried out"), or a possession of something
    /// that is not a column of `others` ("documents that have expenses", but not "the
    /// country that has the largest area").
    fn restricts_by_clause(&self, joined: &str, others: &[&Table]) -> bool {
        self.relative_clauses.iter().any(|clause| match clause {
            ClauseVerb::Action => true,
            ClauseVerb::Possession(object) => {
                may_possess_joined_rows(object.as_deref(), joined, others)
            }
        })
    }
}

/// The verb that opens a relative clause ("who", "that" and the next word).
enum ClauseVerb {
    /// "that has", "who have": its object, as in [`QuestionWords::possessed`].
    Possession(Option<String>),
    /// Any other verb: "who tried out", "that contain".
    Action,
}

/// Words between a possession and its object that do not name the object.
const BEFORE_OBJECT: [&str; 20] = [
    "a", "an", "the", "their", "its", "largest", "smallest", "biggest", "highest", "lowest",
    "greatest", "most", "least", "fewest", "longest", "shortest", "oldest", "youngest", "maximum",
    "minimum",
];

/// The first word after `words[at]` that names something, singular; `None` at the end.
fn object_after(words: &[String], at: usize) -> Option<String> {
    words[at + 1..]
        .iter()
        .find(|w| !BEFORE_OBJECT.contains(&w.as_str()))
        .map(|w| singular(w))
}

/// Whether the object of a "have"/"has"/"with" may be rows of `joined`: it is, or may be,
/// unless it names a column of `others` and no table of the query ("products with length
/// smaller than 3" describes the products; "high schoolers who have friends" names the
/// `Friend` table, a relation, even though `Highschooler` has no such column). `None` (the
/// question ends) may be anything.
fn may_possess_joined_rows(object: Option<&str>, joined: &str, others: &[&Table]) -> bool {
    object.is_none_or(|object| {
        let names_a_table = std::iter::once(joined)
            .chain(others.iter().map(|table| table.name.as_str()))
            .any(|table| table_words(table).iter().any(|w| w == object));
        names_a_table
            || !others.iter().any(|table| {
                table.columns.iter().any(|column| {
                    split_identifier(&column.name)
                        .iter()
                        .any(|w| singular(w) == object)
                })
            })
    })
}

/// Words that end the noun phrase a count is of.
const PHRASE_ENDS: [&str; 32] = [
    "is", "are", "was", "were", "do", "does", "did", "of", "for", "in", "by", "each", "per",
    "that", "who", "which", "whose", "with", "have", "has", "had", "on", "at", "from", "to", "and",
    "or", "than", "there", "where", "when", "can",
];

/// Words before the noun a count is of.
const COUNT_DETERMINERS: [&str; 7] = [
    "the",
    "different",
    "distinct",
    "total",
    "all",
    "unique",
    "of",
];

/// The nouns the question counts (see `QuestionWords::counted`).
fn counted_nouns(words: &[String]) -> Vec<String> {
    let participle = |w: &str| w.len() > 4 && (w.ends_with("ed") || w.ends_with("ing"));
    let mut counted = Vec::new();
    for (index, pair) in words.windows(2).enumerate() {
        let starts = matches!(
            (pair[0].as_str(), pair[1].as_str()),
            ("how", "many") | ("number", "of")
        );
        if !starts {
            continue;
        }
        let mut start = index + 2;
        while words
            .get(start)
            .is_some_and(|w| COUNT_DETERMINERS.contains(&w.as_str()))
        {
            start += 1;
        }
        let mut end = start;
        while words
            .get(end)
            .is_some_and(|w| !PHRASE_ENDS.contains(&w.as_str()))
        {
            end += 1;
        }
        let phrase = &words[start..end];
        let Some(last) = phrase.last() else {
            continue;
        };
        // "medications prescribed", "how many medications are prescribed".
        let passive = words
            .get(end)
            .is_some_and(|w| matches!(w.as_str(), "is" | "are" | "was" | "were"))
            && words.get(end + 1).is_some_and(|w| participle(w));
        let related = passive || phrase.iter().any(|w| participle(w));
        if phrase.len() <= 3 && !related {
            counted.push(singular(last));
        }
    }
    counted
}

/// How many of the possession words at `possessions` close a "how many X do/does/did Y
/// have" clause (with Y between the auxiliary and the "have"), and Y's words, singular.
fn count_possessions(words: &[String], possessions: &[usize]) -> (usize, Vec<String>) {
    let mut haves = 0;
    let mut owners = Vec::new();
    for &at in possessions {
        if words[at] != "have" {
            continue;
        }
        let before = &words[..at];
        let Some(many) = before
            .windows(2)
            .rposition(|pair| pair[0] == "how" && pair[1] == "many")
        else {
            continue;
        };
        let Some(auxiliary) = before[many..]
            .iter()
            .rposition(|w| matches!(w.as_str(), "do" | "does" | "did"))
            .map(|offset| many + offset)
        else {
            continue;
        };
        let owner = &words[auxiliary + 1..at];
        let ends_the_clause = words
            .get(at + 1)
            .is_none_or(|next| PHRASE_ENDS.contains(&next.as_str()));
        // "how many students do not have an allergy" asks for a match.
        let negated = owner.iter().any(|w| matches!(w.as_str(), "not" | "never"));
        if owner.is_empty() || negated || !ends_the_clause || owner.iter().any(|w| is_possession(w))
        {
            continue;
        }
        haves += 1;
        owners.extend(owner.iter().map(|w| singular(w)));
    }
    (haves, owners)
}

/// How many words of `table`'s name the question uses, singular: "faults recorded in the
/// logs" names two of `Fault_Log_Parts` and none of `Engineer_Visits`.
pub(crate) fn question_words_naming(question: &str, table: &str) -> usize {
    let words: std::collections::HashSet<String> = lowercase_words(question)
        .iter()
        .map(|w| singular(w))
        .collect();
    table_words(table)
        .iter()
        .filter(|w| words.contains(w.as_str()))
        .count()
}

/// The words of a table's name that say what it holds (longer than two letters, linking
/// words aside), singular.
fn table_words(table: &str) -> Vec<String> {
    split_identifier(table)
        .iter()
        .filter(|w| w.len() > 2 && !LINKING_WORDS.contains(&w.as_str()))
        .map(|w| singular(w))
        .collect()
}

pub(crate) fn singular(word: &str) -> String {
    let word = word.to_lowercase();
    if let Some(stem) = word.strip_suffix("ies").filter(|stem| stem.len() > 2) {
        return format!("{stem}y");
    }
    // "coaches", "classes", "boxes": the plural adds "es".
    if ["sses", "ches", "shes", "xes"]
        .iter()
        .any(|ending| word.ends_with(ending))
    {
        return word[..word.len() - 2].to_string();
    }
    match word.strip_suffix('s') {
        Some(stem) if stem.len() > 2 && !stem.ends_with('s') => stem.to_string(),
        _ => word,
    }
}

fn is_possession(word: &str) -> bool {
    matches!(word, "have" | "has" | "had" | "having" | "with")
}

fn has_grouping(select: &Select) -> bool {
    match &select.group_by {
        GroupByExpr::All(_) => true,
        GroupByExpr::Expressions(expressions, _) => !expressions.is_empty(),
    }
}

fn has_distinct_aggregate(select: &Select) -> bool {
    any_function(&select.projection, |function| {
        matches!(&function.args, FunctionArguments::List(list)
            if list.duplicate_treatment == Some(DuplicateTreatment::Distinct))
    })
}

/// A `COUNT`, `SUM`, `AVG`, `TOTAL` or `GROUP_CONCAT` in the projection or `HAVING`: the
/// value depends on every joined row (a join repeats rows, and the sum with it).
fn counts_rows(select: &Select) -> bool {
    let over_rows = |function: &Function| {
        named_one_of(function, &["count", "sum", "avg", "total", "group_concat"])
    };
    any_function(&select.projection, over_rows) || any_function(&select.having, over_rows)
}

/// `a.x = b.y [AND ...]`: a join condition that only matches keys.
fn is_column_equalities(expr: &Expr) -> bool {
    match expr {
        Expr::Nested(inner) => is_column_equalities(inner),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => is_column_equalities(left) && is_column_equalities(right),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => is_column(left) && is_column(right),
        _ => false,
    }
}

/// Whether every `alias.column` names a column of the alias's table. A column under the
/// wrong alias (`T2.Name` where only `T1`'s table has `Name`) makes `T1` look unused, and
/// the repair loop's schema fix needs that table to find the column's owner.
fn qualified_columns_resolve(statement: &Statement, schema: &Schema) -> bool {
    struct Aliases<'s> {
        schema: &'s Schema,
        tables: Vec<(String, &'s crate::core::db::schema::Table)>,
    }
    impl Visitor for Aliases<'_> {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
            if let Some((used_as, table)) = schema_table(factor, self.schema) {
                self.tables.push((used_as.to_lowercase(), table));
            }
            ControlFlow::Continue(())
        }
    }
    let mut aliases = Aliases {
        schema,
        tables: Vec::new(),
    };
    let _ = statement.visit(&mut aliases);
    !visit_expressions(statement, |expr| match expr {
        Expr::CompoundIdentifier(parts) if parts.len() == 2 => {
            let qualifier = parts[0].value.to_lowercase();
            let mut owners = aliases
                .tables
                .iter()
                .filter(|(used_as, _)| *used_as == qualifier);
            let unresolved = owners.clone().next().is_some()
                && !owners.any(|(_, table)| table.column(&parts[1].value).is_some());
            if unresolved {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

/// `*` or `t.*` anywhere: the output depends on every joined table.
pub(crate) fn has_wildcard(statement: &mut Statement) -> bool {
    let mut found = false;
    for_each_select_mut(statement, |select| {
        found |= select.projection.iter().any(|item| {
            matches!(
                item,
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
            )
        });
    });
    found
}

/// [`drop_unused_joins`] as a step of the chain.
pub(crate) struct DropUnusedJoins;

impl Rewrite for DropUnusedJoins {
    fn name(&self) -> &'static str {
        "drop_unused_joins"
    }

    /// A table joined to itself on its key is merged into itself first: the copy is a join
    /// that repeats nothing and restricts nothing.
    fn apply(&self, sql: &str, input: &RewriteInput<'_>) -> Option<String> {
        let merged = super::self_join::merge_key_self_joins(sql, input.schema);
        let query = merged.as_deref().unwrap_or(sql);
        drop_unused_joins(query, input.schema, input.question).or(merged)
    }
}

/// [`intersect_both_values`] as a step of the chain.
pub(crate) struct IntersectBothValues;

impl Rewrite for IntersectBothValues {
    fn name(&self) -> &'static str {
        "intersect_both_values"
    }

    fn apply(&self, sql: &str, input: &RewriteInput<'_>) -> Option<String> {
        intersect_both_values(sql, input.question)
    }
}

/// [`show_group_columns`] as a step of the chain.
pub(crate) struct ShowGroupColumns;

impl Rewrite for ShowGroupColumns {
    fn name(&self) -> &'static str {
        "show_group_columns"
    }

    fn apply(&self, sql: &str, _input: &RewriteInput<'_>) -> Option<String> {
        show_group_columns(sql)
    }
}

/// Sends a query whose join condition connects no two tables back for repair.
pub(crate) struct JoinConditions;

impl Check for JoinConditions {
    fn name(&self) -> &'static str {
        "check_join_conditions"
    }

    fn check(&self, sql: &str, _input: &RewriteInput<'_>) -> Option<String> {
        let condition = unlinked_join_condition(sql)?;
        Some(format!(
            "the join condition {condition} does not connect two tables, so every row is \
             paired with every row of the joined table; join on the columns that match \
             between the two tables, or leave out a table the question does not need"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::db::schema::introspect;
    use rusqlite::Connection;

    fn school() -> Schema {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE teacher (Teacher_ID INTEGER PRIMARY KEY, Name TEXT, Age INTEGER);
             CREATE TABLE course (Course_ID INTEGER PRIMARY KEY, Course TEXT);
             CREATE TABLE course_arrange (Course_ID INTEGER, Teacher_ID INTEGER, Grade INTEGER);",
        )
        .unwrap();
        introspect(&conn, ":memory:").unwrap()
    }

    fn dropped(sql: &str) -> Option<String> {
        one_line(drop_unused_joins(sql, &school(), ""))
    }

    #[test]
    fn an_inner_join_nothing_reads_is_dropped() {
        assert_eq!(
            dropped(
                "SELECT T1.Name FROM teacher AS T1 JOIN course_arrange AS T2 \
                 ON T1.Teacher_ID = T2.Teacher_ID ORDER BY T1.Age ASC"
            )
            .as_deref(),
            Some("SELECT T1.Name FROM teacher AS T1 ORDER BY T1.Age ASC")
        );
    }

    #[test]
    fn a_join_the_question_names_or_that_sits_in_a_set_operation_is_kept() {
        let membership = "SELECT T1.Name FROM teacher AS T1 JOIN course_arrange AS T2 \
                          ON T1.Teacher_ID = T2.Teacher_ID";
        let kept = drop_unused_joins(membership, &school(), "Teachers with a course arrange?");
        assert_eq!(kept, None);
        assert!(drop_unused_joins(membership, &school(), "Names of all teachers?").is_some());
        for question in [
            "Names of the teachers who teach a course?",
            "Teachers that have an arrangement?",
        ] {
            assert_eq!(drop_unused_joins(membership, &school(), question), None);
        }
        assert!(
            drop_unused_joins(membership, &school(), "Names of teachers who are young?").is_some()
        );
        for sql in [
            "SELECT Name FROM teacher EXCEPT SELECT T1.Name FROM teacher AS T1 \
             JOIN course_arrange AS T2 ON T1.Teacher_ID = T2.Teacher_ID",
            "SELECT Name FROM teacher WHERE Teacher_ID NOT IN (SELECT T1.Teacher_ID FROM \
             teacher AS T1 JOIN course_arrange AS T2 ON T1.Teacher_ID = T2.Teacher_ID)",
        ] {
            assert_eq!(dropped(sql), None, "{sql}");
        }
    }

    #[test]
    fn a_clause_that_has_a_column_of_the_kept_table_does_not_keep_the_join() {
        let membership = "SELECT T1.Name FROM teacher AS T1 JOIN course_arrange AS T2 \
                          ON T1.Teacher_ID = T2.Teacher_ID";
        // "age" is a column of `teacher`: the clause describes the teacher.
        for question in [
            "Name of the teacher who has the highest age?",
            "Teachers who have an age over 30?",
        ] {
            assert!(
                drop_unused_joins(membership, &school(), question).is_some(),
                "{question}"
            );
        }
        // A possession of something no kept column names, or of the joined rows.
        for question in ["Teachers who have a grade?", "Teachers who have courses?"] {
            assert_eq!(drop_unused_joins(membership, &school(), question), None);
        }
        let summed = "SELECT SUM(T1.Age) FROM teacher AS T1 JOIN course_arrange AS T2 \
                      ON T1.Teacher_ID = T2.Teacher_ID";
        let total = "Total age of the teachers that have an age over 30?";
        assert!(drop_unused_joins(summed, &school(), total).is_some());
        let arranged = "Total age of the teachers that have an arrangement?";
        assert_eq!(drop_unused_joins(summed, &school(), arranged), None);
    }

    #[test]
    fn a_name_that_is_part_of_a_longer_name_the_question_uses_does_not_keep_the_join() {
        let sql = "SELECT T1.Grade FROM course_arrange AS T1 JOIN course AS T2 \
                   ON T1.Course_ID = T2.Course_ID WHERE T1.Teacher_ID = 3";
        // "course arrange" names `course_arrange`; its "course" does not name `course` too.
        let question = "List the course arrange grades of teacher 3";
        assert_eq!(
            one_line(drop_unused_joins(sql, &school(), question)).as_deref(),
            Some("SELECT T1.Grade FROM course_arrange AS T1 WHERE T1.Teacher_ID = 3")
        );
        let question = "List the grades of teacher 3 in each course";
        assert_eq!(drop_unused_joins(sql, &school(), question), None);
    }

    #[test]
    fn under_distinct_a_join_goes_only_when_the_question_asks_for_no_match() {
        let membership = "SELECT DISTINCT T1.Name FROM teacher AS T1 JOIN course_arrange AS T2 \
                          ON T1.Teacher_ID = T2.Teacher_ID WHERE T1.Age > 30";
        let dropped = |question| one_line(drop_unused_joins(membership, &school(), question));
        assert_eq!(
            dropped("Different names of teachers older than 30?").as_deref(),
            Some("SELECT DISTINCT T1.Name FROM teacher AS T1 WHERE T1.Age > 30")
        );
        for question in [
            "Different names of teachers older than 30 that have a course?",
            "Different names of teachers with an arrangement, older than 30?",
            "Different names of teachers teaching, older than 30?",
            "Different names of teachers in a course arrangement?",
        ] {
            assert_eq!(dropped(question), None, "{question}");
        }
    }

    #[test]
    fn under_distinct_words_and_columns_of_the_kept_tables_ask_for_no_match() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE Customers (customer_id INTEGER PRIMARY KEY, customer_name TEXT,
                 payment_method TEXT, length INTEGER);
             CREATE TABLE Customer_Contact_Channels (customer_id INTEGER, channel_code TEXT);",
        )
        .unwrap();
        let schema = introspect(&conn, ":memory:").unwrap();
        let sql = "SELECT DISTINCT T1.customer_name FROM Customers AS T1 JOIN \
                   Customer_Contact_Channels AS T2 ON T1.customer_id = T2.customer_id \
                   WHERE T1.payment_method = 'Cash'";
        let dropped = |question| one_line(drop_unused_joins(sql, &schema, question));
        let alone = "SELECT DISTINCT T1.customer_name FROM Customers AS T1 \
                     WHERE T1.payment_method = 'Cash'";
        for question in [
            // "customers" names the Customers table, not the channels.
            "Which customers use Cash for payment method?",
            // "with" a payment method describes the customers.
            "Names of the customers with payment method Cash?",
        ] {
            assert_eq!(dropped(question).as_deref(), Some(alone), "{question}");
        }
        for question in [
            "Which customers paying in Cash have a contact channel?",
            "Names of the customers with a channel, paying in Cash?",
            "Which customers in contact pay in Cash?",
        ] {
            assert_eq!(dropped(question), None, "{question}");
        }
    }

    #[test]
    fn under_a_sum_a_join_goes_unless_the_question_counts_or_names_the_joined_rows() {
        let summed = "SELECT SUM(T1.Age) FROM teacher AS T1 JOIN course_arrange AS T2 \
                      ON T1.Teacher_ID = T2.Teacher_ID";
        let dropped = |sql, question| one_line(drop_unused_joins(sql, &school(), question));
        assert_eq!(
            dropped(summed, "Total age of the teachers?").as_deref(),
            Some("SELECT SUM(T1.Age) FROM teacher AS T1")
        );
        assert_eq!(
            dropped(
                "SELECT T1.Name, AVG(T1.Age) FROM teacher AS T1 JOIN course_arrange AS T2 \
                 ON T1.Teacher_ID = T2.Teacher_ID GROUP BY T1.Name",
                "Average age of each teacher name?"
            )
            .as_deref(),
            Some("SELECT T1.Name, AVG(T1.Age) FROM teacher AS T1 GROUP BY T1.Name")
        );
        for question in [
            "Total age of the teachers over each course arrange row?",
            "Total age of the teachers that have a course?",
            "Total age of the teachers with courses?",
            "The total number of years of the teachers?",
            "How many years do the teachers add up to?",
        ] {
            assert_eq!(dropped(summed, question), None, "{question}");
        }
        // A count anywhere counts the joined rows: "the teacher with the most arrangements".
        for sql in [
            "SELECT T1.Name, COUNT(*) FROM teacher AS T1 JOIN course_arrange AS T2 \
             ON T1.Teacher_ID = T2.Teacher_ID GROUP BY T1.Teacher_ID",
            "SELECT T1.Name FROM teacher AS T1 JOIN course_arrange AS T2 \
             ON T1.Teacher_ID = T2.Teacher_ID GROUP BY T1.Teacher_ID ORDER BY COUNT(*) DESC",
            "SELECT COUNT(DISTINCT T1.Name) FROM teacher AS T1 JOIN course_arrange AS T2 \
             ON T1.Teacher_ID = T2.Teacher_ID",
        ] {
            assert_eq!(dropped(sql, "Which teacher?"), None, "{sql}");
        }
    }

    #[test]
    fn under_a_count_a_join_goes_only_when_the_question_counts_the_other_table() {
        let counted = "SELECT COUNT(*), T1.Age FROM teacher AS T1 JOIN course_arrange AS T2 \
                       ON T1.Teacher_ID = T2.Teacher_ID WHERE T1.Age > 30 GROUP BY T1.Age";
        let dropped = |question| one_line(drop_unused_joins(counted, &school(), question));
        assert_eq!(
            dropped("Find the number of teachers of each age above 30.").as_deref(),
            Some("SELECT COUNT(*), T1.Age FROM teacher AS T1 WHERE T1.Age > 30 GROUP BY T1.Age")
        );
        for question in [
            // The count is of the joined rows, or may be: a synonym, a relation, no noun.
            "How many lessons are there for each teacher age above 30?",
            "How many teachers are arranged for each age above 30?",
            "How many teachers teaching for each age above 30?",
            "Number of teachers with courses for each age above 30?",
            "Which age above 30 has the most teachers?",
            "How many course arrangements per teacher age above 30?",
            "How many teachers do not have courses, for each age above 30?",
            "How many teachers does each course arrangement have, for ages above 30?",
            "How many teachers of each age above 30 have courses?",
        ] {
            assert_eq!(dropped(question), None, "{question}");
        }
    }

    #[test]
    fn the_have_of_how_many_x_does_y_have_asks_for_no_match() {
        let counted = "SELECT T1.Age, COUNT(*) FROM course_arrange AS T2 JOIN teacher AS T1 \
                       ON T1.Teacher_ID = T2.Teacher_ID GROUP BY T1.Age";
        assert_eq!(
            one_line(drop_unused_joins(
                counted,
                &school(),
                "How many teachers does each age have?"
            ))
            .as_deref(),
            Some("SELECT T1.Age, COUNT(*) FROM teacher AS T1 GROUP BY T1.Age")
        );
    }

    #[test]
    fn a_count_is_of_the_last_noun_of_its_phrase() {
        let words = |question: &str| counted_nouns(&lowercase_words(question));
        assert_eq!(
            words("How many movie reviews does each director get?"),
            ["review"]
        );
        assert_eq!(
            words("Find the number of employees of each gender."),
            ["employee"]
        );
        assert_eq!(words("the total number of distinct cities"), ["city"]);
        assert!(words("How many medications are prescribed for each brand?").is_empty());
        assert!(words("Find the number of medications prescribed for each brand.").is_empty());
        assert!(words("Which customer has the most orders?").is_empty());
    }

    #[test]
    fn an_unused_left_join_is_dropped_and_whose_names_an_attribute() {
        assert_eq!(
            one_line(drop_unused_joins(
                "SELECT T1.Name FROM teacher AS T1 LEFT JOIN course_arrange AS T2 \
                 ON T1.Teacher_ID = T2.Teacher_ID WHERE T1.Age > 30",
                &school(),
                "Names of the teachers whose age is above 30?"
            ))
            .as_deref(),
            Some("SELECT T1.Name FROM teacher AS T1 WHERE T1.Age > 30")
        );
    }

    #[test]
    fn an_unused_left_join_only_repeats_rows_whatever_the_question_says() {
        let left = "SELECT T1.Name FROM teacher AS T1 LEFT JOIN course_arrange AS T2 \
                    ON T1.Teacher_ID = T2.Teacher_ID WHERE T1.Age > 30";
        let question = "Names of the teachers that do not work with course arrangements?";
        assert_eq!(
            one_line(drop_unused_joins(left, &school(), question)).as_deref(),
            Some("SELECT T1.Name FROM teacher AS T1 WHERE T1.Age > 30")
        );
        // An inner join may be what "that work with course arrangements" means.
        let inner = left.replace("LEFT JOIN", "JOIN");
        assert_eq!(drop_unused_joins(&inner, &school(), question), None);
        // Under a count the left join's rows are counted.
        let counted = "SELECT T1.Name, COUNT(*) FROM teacher AS T1 LEFT JOIN course_arrange AS T2 \
                       ON T1.Teacher_ID = T2.Teacher_ID GROUP BY T1.Name";
        assert_eq!(
            drop_unused_joins(
                counted,
                &school(),
                "How many course arrangements per teacher?"
            ),
            None
        );
    }

    #[test]
    fn plurals_in_es_and_ies_are_singular() {
        for (plural, one) in [
            ("coaches", "coach"),
            ("classes", "class"),
            ("activities", "activity"),
            ("boxes", "box"),
            ("teachers", "teacher"),
        ] {
            assert_eq!(singular(plural), one);
        }
    }

    #[test]
    fn a_column_under_the_wrong_alias_keeps_every_table_for_the_repair() {
        assert_eq!(
            dropped(
                "SELECT T2.Name FROM teacher AS T1 JOIN course_arrange AS T2 \
                 ON T1.Teacher_ID = T2.Teacher_ID"
            ),
            None
        );
    }

    #[test]
    fn an_unused_first_table_gives_its_place_to_the_joined_one() {
        assert_eq!(
            dropped(
                "SELECT T2.Name FROM course_arrange AS T1 JOIN teacher AS T2 \
                 ON T1.Teacher_ID = T2.Teacher_ID WHERE T2.Age > 30"
            )
            .as_deref(),
            Some("SELECT T2.Name FROM teacher AS T2 WHERE T2.Age > 30")
        );
    }

    #[test]
    fn a_chain_of_unused_joins_is_dropped_back_to_the_table_in_use() {
        assert_eq!(
            dropped(
                "SELECT T1.Name FROM teacher AS T1 JOIN course_arrange AS T2 \
                 ON T1.Teacher_ID = T2.Teacher_ID JOIN course AS T3 ON T2.Course_ID = T3.Course_ID \
                 WHERE T1.Age > 30"
            )
            .as_deref(),
            Some("SELECT T1.Name FROM teacher AS T1 WHERE T1.Age > 30")
        );
    }

    #[test]
    fn joins_that_are_read_or_may_mean_has_a_match_are_kept() {
        for sql in [
            // read in the projection, WHERE, ORDER BY, or a subquery
            "SELECT T1.Name, T2.Grade FROM teacher AS T1 JOIN course_arrange AS T2 ON T1.Teacher_ID = T2.Teacher_ID",
            "SELECT T1.Name FROM teacher AS T1 JOIN course_arrange AS T2 ON T1.Teacher_ID = T2.Teacher_ID WHERE T2.Grade = 1",
            "SELECT T1.Name FROM teacher AS T1 JOIN course_arrange AS T2 ON T1.Teacher_ID = T2.Teacher_ID ORDER BY T2.Grade",
            "SELECT T1.Name FROM teacher AS T1 JOIN course_arrange AS T2 ON T1.Teacher_ID = T2.Teacher_ID WHERE 1 IN (SELECT T2.Grade)",
            // "how many teachers have an arrangement" (DISTINCT alone: see below)
            "SELECT COUNT(DISTINCT T1.Teacher_ID) FROM teacher AS T1 JOIN course_arrange AS T2 ON T1.Teacher_ID = T2.Teacher_ID",
            // counts the joined rows: "how many course arrangements do teachers over 30 have"
            "SELECT COUNT(*) FROM teacher AS T1 JOIN course_arrange AS T2 ON T1.Teacher_ID = T2.Teacher_ID WHERE T1.Age > 30",
            "SELECT T1.Name FROM teacher AS T1 JOIN course_arrange AS T2 ON T1.Teacher_ID = T2.Teacher_ID GROUP BY T1.Name HAVING COUNT(*) > 1",
            // the ON filters, a bare column that may be the joined table's
            "SELECT T1.Name FROM teacher AS T1 JOIN course_arrange AS T2 ON T1.Teacher_ID = T2.Teacher_ID AND T2.Grade = 1",
            "SELECT T1.Name FROM teacher AS T1 JOIN course_arrange AS T2 ON T1.Teacher_ID = T2.Teacher_ID WHERE Grade = 1",
            // every column of every table
            "SELECT * FROM teacher AS T1 JOIN course_arrange AS T2 ON T1.Teacher_ID = T2.Teacher_ID",
            // not one query
            "SELECT 1; SELECT 2",
            "not sql",
        ] {
            assert_eq!(dropped(sql), None, "{sql}");
        }
    }

    fn one_line(sql: Option<String>) -> Option<String> {
        sql.map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    #[test]
    fn one_column_equal_to_two_values_becomes_an_intersect() {
        assert_eq!(
            one_line(intersect_both_values(
                "SELECT DISTINCT T1.Name FROM country AS T1 JOIN countrylanguage AS T2 \
                 ON T1.Code = T2.CountryCode WHERE T2.Language = 'English' \
                 AND T2.IsOfficial = 'T' AND T2.Language = 'French'",
                ""
            ))
            .as_deref(),
            Some(
                "SELECT T1.Name FROM country AS T1 JOIN countrylanguage AS T2 \
                 ON T1.Code = T2.CountryCode WHERE T2.Language = 'English' AND T2.IsOfficial = 'T' \
                 INTERSECT SELECT T1.Name FROM country AS T1 JOIN countrylanguage AS T2 \
                 ON T1.Code = T2.CountryCode WHERE T2.IsOfficial = 'T' AND T2.Language = 'French'"
            )
        );
    }

    #[test]
    fn an_or_beside_both_values_keeps_its_parentheses_on_each_side() {
        assert_eq!(
            one_line(intersect_both_values(
                "SELECT Name FROM t WHERE lang = 'a' AND (x = 1 OR y = 2) AND lang = 'b'",
                ""
            ))
            .as_deref(),
            Some(
                "SELECT Name FROM t WHERE lang = 'a' AND (x = 1 OR y = 2) \
                 INTERSECT SELECT Name FROM t WHERE (x = 1 OR y = 2) AND lang = 'b'"
            )
        );
    }

    #[test]
    fn a_distinct_count_of_both_values_counts_the_intersect() {
        assert_eq!(
            one_line(intersect_both_values(
                "SELECT COUNT(DISTINCT T1.Code) AS n FROM country AS T1 JOIN countrylanguage \
                 AS T2 ON T1.Code = T2.CountryCode WHERE T2.Language = 'English' \
                 AND T2.Language = 'Dutch'",
                ""
            ))
            .as_deref(),
            Some(
                "SELECT COUNT(*) FROM ( SELECT T1.Code FROM country AS T1 JOIN countrylanguage \
                 AS T2 ON T1.Code = T2.CountryCode WHERE T2.Language = 'English' INTERSECT \
                 SELECT T1.Code FROM country AS T1 JOIN countrylanguage AS T2 \
                 ON T1.Code = T2.CountryCode WHERE T2.Language = 'Dutch' )"
            )
        );
    }

    #[test]
    fn either_of_two_values_becomes_an_intersect_when_the_question_says_both() {
        let both = "Which owners broadcast both in the morning and at night?";
        let expected = "SELECT T1.Owner FROM program AS T1 JOIN broadcast AS T2 \
                        ON T1.id = T2.pid WHERE T2.slot = 'Morning' INTERSECT \
                        SELECT T1.Owner FROM program AS T1 JOIN broadcast AS T2 \
                        ON T1.id = T2.pid WHERE T2.slot = 'Night'";
        for sql in [
            "SELECT DISTINCT T1.Owner FROM program AS T1 JOIN broadcast AS T2 \
             ON T1.id = T2.pid WHERE T2.slot IN ('Morning', 'Night')",
            "SELECT DISTINCT T1.Owner FROM program AS T1 JOIN broadcast AS T2 \
             ON T1.id = T2.pid WHERE (T2.slot = 'Morning' OR T2.slot = 'Night')",
        ] {
            assert_eq!(
                one_line(intersect_both_values(sql, both)).as_deref(),
                Some(expected),
                "{sql}"
            );
            assert_eq!(
                intersect_both_values(sql, "Owners in the morning or at night?"),
                None
            );
        }
        assert_eq!(
            one_line(intersect_both_values(
                "SELECT DISTINCT T1.brand FROM lens AS T1 JOIN photos AS T2 ON T1.id = T2.lens \
                 WHERE T2.mid IN (SELECT id FROM mountain WHERE range = 'A') \
                 AND T2.mid IN (SELECT id FROM mountain WHERE range = 'B')",
                "Brands of lenses that took both a picture of range A and one of range B?"
            ))
            .as_deref(),
            Some(
                "SELECT T1.brand FROM lens AS T1 JOIN photos AS T2 ON T1.id = T2.lens \
                 WHERE T2.mid IN (SELECT id FROM mountain WHERE range = 'A') INTERSECT \
                 SELECT T1.brand FROM lens AS T1 JOIN photos AS T2 ON T1.id = T2.lens \
                 WHERE T2.mid IN (SELECT id FROM mountain WHERE range = 'B')"
            )
        );
        for sql in [
            "SELECT Name FROM t WHERE slot IN ('a', 'b', 'c')",
            "SELECT Name FROM t WHERE slot IN ('a', 'a')",
            "SELECT Name FROM t WHERE slot = 'a' OR kind = 'b'",
            "SELECT Name FROM t WHERE slot NOT IN ('a', 'b')",
            "SELECT COUNT(*) FROM t WHERE slot IN ('a', 'b')",
            "SELECT Name FROM t WHERE a IN (SELECT x FROM u) AND b IN (SELECT y FROM u)",
        ] {
            assert_eq!(intersect_both_values(sql, both), None, "{sql}");
        }
    }

    #[test]
    fn queries_that_can_match_or_whose_intersect_means_something_else_are_left_alone() {
        for sql in [
            "SELECT Name FROM teacher WHERE Age = 32 OR Age = 33",
            "SELECT Name FROM teacher WHERE Age = 32 AND Name = 'Kim'",
            "SELECT Name FROM teacher WHERE Age = 32 AND Age = 32",
            "SELECT Name FROM teacher WHERE Age = 32 AND Age = '33'",
            "SELECT Name FROM teacher WHERE Age = 31 AND Age = 32 AND Age = 33",
            "SELECT COUNT(*) FROM teacher WHERE Age = 32 AND Age = 33",
            "SELECT COUNT(DISTINCT Name), MAX(Age) FROM teacher WHERE Age = 32 AND Age = 33",
            "SELECT COUNT(DISTINCT Name) FROM teacher WHERE Age = 32 AND Age = 33 GROUP BY Name",
            "SELECT Name FROM teacher WHERE Age = 32 AND Age = 33 ORDER BY Name",
            "SELECT Name FROM teacher WHERE Age = 32 AND Age = 33 LIMIT 1",
            "SELECT Name FROM teacher WHERE Age = 32 AND Age = 33 GROUP BY Name",
            "SELECT Name FROM teacher WHERE Age = 32 AND Age = 33 UNION SELECT 'x'",
        ] {
            assert_eq!(intersect_both_values(sql, ""), None, "{sql}");
        }
    }

    #[test]
    fn one_column_held_to_disjoint_ranges_becomes_an_intersect() {
        assert_eq!(
            one_line(intersect_both_values(
                "SELECT DISTINCT Record_Company FROM orchestra \
                 WHERE Year_of_Founded < 2003 AND Year_of_Founded > 2003",
                ""
            ))
            .as_deref(),
            Some(
                "SELECT Record_Company FROM orchestra WHERE Year_of_Founded < 2003 \
                 INTERSECT SELECT Record_Company FROM orchestra WHERE Year_of_Founded > 2003"
            )
        );
        for sql in [
            "SELECT a FROM t WHERE y > 2000 AND y < 2010",
            "SELECT a FROM t WHERE y <= 2003 AND y >= 2003",
            "SELECT a FROM t WHERE y < 2003 AND y > 2003 AND y > 1990",
        ] {
            assert_eq!(intersect_both_values(sql, ""), None, "{sql}");
        }
    }

    #[test]
    fn a_grouped_query_of_aggregates_shows_its_groups() {
        assert_eq!(
            one_line(show_group_columns(
                "SELECT COUNT(*) AS n FROM city WHERE Population > 10 GROUP BY District"
            ))
            .as_deref(),
            Some(
                "SELECT District, COUNT(*) AS n FROM city WHERE Population > 10 GROUP BY District"
            )
        );
        for sql in [
            "SELECT District, COUNT(*) FROM city GROUP BY District",
            "SELECT COUNT(*) FROM city GROUP BY District ORDER BY COUNT(*) DESC LIMIT 1",
            "SELECT COUNT(*) FROM city",
            "SELECT COUNT(*) FROM city GROUP BY LENGTH(District)",
            "SELECT COUNT(*) FROM city GROUP BY a UNION SELECT COUNT(*) FROM town GROUP BY b",
        ] {
            assert_eq!(show_group_columns(sql), None, "{sql}");
        }
    }

    #[test]
    fn a_join_condition_that_links_no_two_tables_is_found() {
        assert_eq!(
            unlinked_join_condition(
                "SELECT A.Airline FROM airlines AS A JOIN airports AS P \
                 ON P.AirportCode = P.AirportCode WHERE P.Country = 'US'"
            )
            .as_deref(),
            Some("P.AirportCode = P.AirportCode")
        );
        assert_eq!(
            unlinked_join_condition(
                "SELECT 1 FROM a WHERE x IN (SELECT 1 FROM b JOIN c ON c.k = b.k AND c.k = c.k)"
            )
            .as_deref(),
            Some("c.k = b.k AND c.k = c.k")
        );
        assert_eq!(
            unlinked_join_condition(
                "SELECT COUNT(*) FROM airlines AS T1 JOIN airports AS T2 \
                 ON T2.CountryAbbrev = T2.Country"
            )
            .as_deref(),
            Some("T2.CountryAbbrev = T2.Country")
        );
        for sql in [
            "SELECT 1 FROM a JOIN b ON a.k = b.k",
            "SELECT 1 FROM a AS x JOIN a AS y ON x.k = y.k",
            "SELECT 1 FROM a WHERE a.k = a.k",
            "SELECT 1 FROM a JOIN b ON a.k = b.k AND b.x = b.y",
            "SELECT 1 FROM a JOIN b ON k = j",
            "SELECT 1 FROM a JOIN b ON b.x = 5",
        ] {
            assert_eq!(unlinked_join_condition(sql), None, "{sql}");
        }
    }
}
