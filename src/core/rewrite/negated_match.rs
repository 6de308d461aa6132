//! "Students who do not have a cat" as a query that leaves out the rows with a match.
//!
//! Small models write it `Student JOIN Has_Pet ... JOIN Pets ... WHERE PetType != 'cat'`:
//! every student with some pet that is not a cat, cat owners with a dog included, and no
//! student without pets. When the question negates a verb ("do not", "never", "without")
//! and the only condition on the joined tables is a negated comparison,
//! [`exclude_negated_match`] keeps the rows of the first table that have no joined row
//! matching the comparison the other way round:
//! `FROM Student WHERE StuID NOT IN (SELECT Has_Pet.StuID FROM Has_Pet JOIN Pets ...
//! WHERE PetType = 'cat')`.
//!
//! Only when the first join goes from the answer's table to many rows (the joined column is
//! not the joined table's one-column key): through a join to one row ("trips that did not
//! end in San Francisco", `trip JOIN station`) the negated comparison already says the
//! same. Every column the query reads outside the joins and that comparison must be of the
//! first table, the joins must be plain column equalities and the query may hold no
//! subquery, HAVING or set operation.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, Join, Select, SetExpr, Statement, TableFactor,
    TableWithJoins, Value, visit_expressions,
};

use crate::core::db::ident::lowercase_words;
use crate::core::db::schema::{Schema, Table};
use crate::core::db::sql_ast::{
    conjunction, conjuncts, has_expression_subquery, is_column, join_condition, parse_single_query,
    resolve_column_owner, schema_table, tables_in_scope,
};
use crate::core::rewrite::{Rewrite, RewriteInput};

/// The query with its negated comparison on joined rows turned into an exclusion,
/// pretty-printed; `None` when the question negates no verb or the query is not that shape.
pub fn exclude_negated_match(sql: &str, question: &str, schema: &Schema) -> Option<String> {
    if !negates_a_verb(question) {
        return None;
    }
    let mut statement = parse_single_query(sql)?;
    let Statement::Query(query) = &mut statement else {
        return None;
    };
    if query.with.is_some() {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let tables = tables_in_scope(select, schema);
    let first = tables.first()?.0.as_str();
    let mut of_first = |expr: &Expr| column_owner(expr, &tables).is_some_and(|o| o == first);
    let outside_where_reads_first = all_columns(&select.projection, &mut of_first)
        && all_columns(&select.group_by, &mut of_first)
        && all_columns(&query.order_by, &mut of_first);
    if !outside_where_reads_first
        || has_subquery(select)
        || select.having.is_some()
        || matches!(select.group_by, GroupByExpr::All(_))
    {
        return None;
    }
    let exclusion = exclusion(select, &tables, schema)?;
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    select.from[0].joins.clear();
    select.selection = Some(exclusion);
    Some(format!("{statement:#}"))
}

/// "do not", "does not", "did not", "don't", "have not", "never", "without": the question
/// denies a relation rather than an attribute ("whose pet is not a cat" does not count).
fn negates_a_verb(question: &str) -> bool {
    let words = lowercase_words(question);
    words.iter().any(|w| w == "never" || w == "without")
        || words.windows(2).any(|pair| {
            matches!(
                (pair[0].as_str(), pair[1].as_str()),
                ("do" | "does" | "did" | "have" | "has" | "had", "not")
                    | ("don" | "doesn" | "didn" | "haven" | "hasn" | "hadn", "t")
            )
        })
}

/// The select's new WHERE: its conditions on the first table, and the first table's join
/// column `NOT IN` the joined rows that match the negated comparison turned positive.
fn exclusion(select: &Select, tables: &[(String, &Table)], schema: &Schema) -> Option<Expr> {
    let [TableWithJoins { joins, .. }] = select.from.as_slice() else {
        return None;
    };
    let first = tables.first()?.0.as_str();
    // Every FROM item must be a schema table, joined on column equalities.
    if joins.is_empty() || tables.len() != joins.len() + 1 {
        return None;
    }
    let (outer_key, inner_key) = first_link(&joins[0], first, tables, schema)?;
    for join in &joins[1..] {
        let on = join_condition(join)?;
        if !is_column_equality(on)
            || !all_columns(on, &mut |expr| owner_is_not(expr, first, tables))
        {
            return None;
        }
    }
    let mut kept = Vec::new();
    let mut positive = None;
    for condition in conjuncts(select.selection.as_ref()?) {
        if all_columns(condition, &mut |expr| {
            column_owner(expr, tables).is_some_and(|owner| owner == first)
        }) {
            kept.push(condition.clone());
            continue;
        }
        let turned = turned_positive(condition)?;
        if positive.is_some() || !all_columns(condition, &mut |e| owner_is_not(e, first, tables)) {
            return None;
        }
        positive = Some(turned);
    }
    let matching = matching_rows(joins, &inner_key, &positive?, tables)?;
    let excluded = parse_condition(&format!("{outer_key} NOT IN ({matching})"))?;
    conjunction(kept.into_iter().chain(std::iter::once(excluded)))
}

/// The two columns of the first join, the first table's then the joined one's, when the
/// join goes to many joined rows: the joined column is not the joined table's one key.
fn first_link(
    join: &Join,
    first: &str,
    tables: &[(String, &Table)],
    schema: &Schema,
) -> Option<(Expr, Expr)> {
    let Expr::BinaryOp {
        left,
        op: BinaryOperator::Eq,
        right,
    } = join_condition(join)?
    else {
        return None;
    };
    let (joined_as, joined) = schema_table(&join.relation, schema)?;
    let (outer, inner) = match (column_owner(left, tables)?, column_owner(right, tables)?) {
        (l, r) if l == first && r.eq_ignore_ascii_case(&joined_as) => (left, right),
        (l, r) if r == first && l.eq_ignore_ascii_case(&joined_as) => (right, left),
        _ => return None,
    };
    let (_, _, inner_column) = resolve_column_owner(inner, tables)?;
    if joined
        .single_primary_key()
        .is_some_and(|key| key.name.eq_ignore_ascii_case(&inner_column))
    {
        return None;
    }
    Some((outer.as_ref().clone(), inner.as_ref().clone()))
}

/// `SELECT inner_key FROM <the joined tables> WHERE <positive>` as text; the joins become
/// inner joins (the positive comparison needs a joined row anyway), and a key column that
/// may be NULL is kept out, since one NULL would make `NOT IN` keep nothing.
fn matching_rows(
    joins: &[Join],
    inner_key: &Expr,
    positive: &Expr,
    tables: &[(String, &Table)],
) -> Option<String> {
    let mut from = joins[0].relation.to_string();
    for join in &joins[1..] {
        from.push_str(&format!(
            " JOIN {} ON {}",
            join.relation,
            join_condition(join)?
        ));
    }
    let (_, table, column) = resolve_column_owner(inner_key, tables)?;
    let nullable = table
        .column(&column)
        .is_some_and(|c| !c.not_null && !c.primary_key);
    let not_null = if nullable {
        format!(" AND {inner_key} IS NOT NULL")
    } else {
        String::new()
    };
    Some(format!(
        "SELECT {inner_key} FROM {from} WHERE {positive}{not_null}"
    ))
}

/// `a != 'x'`, `a NOT LIKE 'x%'`, `a NOT IN ('x', 'y')` the other way round, for a column
/// against literals; `None` for anything else.
fn turned_positive(condition: &Expr) -> Option<Expr> {
    match condition {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::NotEq,
            right,
        } if is_column_and_literal(left, right) || is_column_and_literal(right, left) => {
            Some(Expr::BinaryOp {
                left: left.clone(),
                op: BinaryOperator::Eq,
                right: right.clone(),
            })
        }
        Expr::Like {
            negated: true,
            expr,
            pattern,
            ..
        } if is_column_and_literal(expr, pattern) => {
            let mut turned = condition.clone();
            if let Expr::Like { negated, .. } = &mut turned {
                *negated = false;
            }
            Some(turned)
        }
        Expr::InList {
            expr,
            list,
            negated: true,
        } if is_column(expr) && list.iter().all(is_literal) => Some(Expr::InList {
            expr: expr.clone(),
            list: list.clone(),
            negated: false,
        }),
        _ => None,
    }
}

fn is_column_and_literal(column: &Expr, literal: &Expr) -> bool {
    is_column(column) && is_literal(literal)
}

fn is_literal(expr: &Expr) -> bool {
    matches!(expr, Expr::Value(value) if !matches!(value.value, Value::Null | Value::Placeholder(_)))
}

fn is_column_equality(on: &Expr) -> bool {
    matches!(
        on,
        Expr::BinaryOp { left, op: BinaryOperator::Eq, right } if is_column(left) && is_column(right)
    )
}

/// The name (alias or table) of the one table in scope that owns the column `expr` names.
fn column_owner<'t>(expr: &Expr, tables: &'t [(String, &Table)]) -> Option<&'t str> {
    resolve_column_owner(expr, tables).map(|(owner, _, _)| owner)
}

/// Whether `expr` is a column of a table in scope other than `first`.
fn owner_is_not(expr: &Expr, first: &str, tables: &[(String, &Table)]) -> bool {
    column_owner(expr, tables).is_some_and(|owner| owner != first)
}

/// Whether every column reference in `node` passes `check`.
fn all_columns<T: sqlparser::ast::Visit>(node: &T, check: &mut dyn FnMut(&Expr) -> bool) -> bool {
    let flow = visit_expressions(node, |expr| match expr {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) if !check(expr) => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    });
    flow.is_continue()
}

/// A nested query anywhere in the select: in an expression or as a FROM item.
fn has_subquery(select: &Select) -> bool {
    has_expression_subquery(select)
        || select.from.iter().any(|from| {
            std::iter::once(&from.relation)
                .chain(from.joins.iter().map(|join| &join.relation))
                .any(|factor| !matches!(factor, TableFactor::Table { .. }))
        })
}

/// One condition parsed on its own.
fn parse_condition(text: &str) -> Option<Expr> {
    let Statement::Query(query) = parse_single_query(&format!("SELECT 1 WHERE {text}"))? else {
        return None;
    };
    let SetExpr::Select(select) = *query.body else {
        return None;
    };
    select.selection
}

/// [`exclude_negated_match`] as a step of the chain.
pub(crate) struct ExcludeNegatedMatch;

impl Rewrite for ExcludeNegatedMatch {
    fn name(&self) -> &'static str {
        "exclude_negated_match"
    }

    fn apply(&self, sql: &str, input: &RewriteInput<'_>) -> Option<String> {
        exclude_negated_match(sql, input.question, input.schema)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::db::schema::introspect;
    use rusqlite::Connection;

    fn pets() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE Student (StuID INTEGER PRIMARY KEY, Fname TEXT, Major INTEGER);
             CREATE TABLE Pets (PetID INTEGER PRIMARY KEY, PetType TEXT);
             CREATE TABLE Has_Pet (StuID INTEGER REFERENCES Student(StuID),
                                   PetID INTEGER REFERENCES Pets(PetID));
             INSERT INTO Student VALUES (1, 'Ann', 600), (2, 'Bob', 600), (3, 'Cy', 520);
             INSERT INTO Pets VALUES (1, 'cat'), (2, 'dog'), (3, 'dog');
             INSERT INTO Has_Pet VALUES (1, 1), (1, 2), (2, 3);",
        )
        .unwrap();
        conn
    }

    fn rows(conn: &Connection, sql: &str) -> Vec<String> {
        let mut statement = conn.prepare(sql).unwrap();
        let mut names: Vec<String> = statement
            .query_map([], |row| row.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        names.sort();
        names
    }

    const WRITTEN: &str = "SELECT S.Fname FROM Student S JOIN Has_Pet HP ON S.StuID = HP.StuID \
                           JOIN Pets P ON HP.PetID = P.PetID WHERE P.PetType != 'cat'";

    #[test]
    fn a_negated_comparison_on_joined_rows_becomes_an_exclusion() {
        let conn = pets();
        let schema = introspect(&conn, ":memory:").unwrap();
        let question = "Names of students who do not have a cat?";
        let rewritten = exclude_negated_match(WRITTEN, question, &schema).unwrap();
        assert_eq!(
            rewritten.split_whitespace().collect::<Vec<_>>().join(" "),
            "SELECT S.Fname FROM Student S WHERE S.StuID NOT IN (SELECT HP.StuID FROM \
             Has_Pet HP JOIN Pets P ON HP.PetID = P.PetID WHERE P.PetType = 'cat' AND \
             HP.StuID IS NOT NULL)"
        );
        // Ann owns a cat and a dog; Cy owns nothing.
        assert_eq!(rows(&conn, WRITTEN), ["Ann", "Bob"]);
        assert_eq!(rows(&conn, &rewritten), ["Bob", "Cy"]);
    }

    #[test]
    fn conditions_on_the_first_table_stay_and_a_left_join_is_read_the_same() {
        let conn = pets();
        let schema = introspect(&conn, ":memory:").unwrap();
        let sql = "SELECT Fname FROM Student LEFT JOIN Has_Pet ON Student.StuID = \
                   Has_Pet.StuID LEFT JOIN Pets ON Has_Pet.PetID = Pets.PetID \
                   WHERE Major = 600 AND Pets.PetType <> 'cat' ORDER BY Fname";
        let question = "Which students in major 600 don't own a cat?";
        let rewritten = exclude_negated_match(sql, question, &schema).unwrap();
        assert_eq!(rows(&conn, &rewritten), ["Bob"]);
    }

    #[test]
    fn left_alone_when_the_question_negates_no_verb_or_the_query_reads_the_joined_rows() {
        let conn = pets();
        let schema = introspect(&conn, ":memory:").unwrap();
        let attribute = "Names of students whose pet is not a cat?";
        assert_eq!(exclude_negated_match(WRITTEN, attribute, &schema), None);
        let question = "Students who do not have a cat, and their pets?";
        let shows_pets = WRITTEN.replace("S.Fname", "S.Fname, P.PetType");
        assert_eq!(exclude_negated_match(&shows_pets, question, &schema), None);
        let two = format!("{WRITTEN} AND P.PetType != 'dog' AND P.PetID > 1");
        assert_eq!(exclude_negated_match(&two, question, &schema), None);
    }

    #[test]
    fn a_join_to_one_row_is_left_alone() {
        let conn = pets();
        let schema = introspect(&conn, ":memory:").unwrap();
        let sql = "SELECT HP.StuID FROM Has_Pet HP JOIN Pets P ON HP.PetID = P.PetID \
                   WHERE P.PetType != 'cat'";
        let question = "Which owners do not own this cat?";
        assert_eq!(exclude_negated_match(sql, question, &schema), None);
    }
}
