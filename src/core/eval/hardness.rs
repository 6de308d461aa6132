//! Spider's hardness levels (easy, medium, hard, extra) computed from a gold query.
//!
//! Spider's `evaluation.py` counts three things on its parsed form of the SQL and maps them
//! to a level: *component 1* (WHERE, GROUP BY, ORDER BY, LIMIT, each extra joined table, each
//! OR, each LIKE), *component 2* (nested queries in conditions, and INTERSECT/UNION/EXCEPT)
//! and *others* (more than one aggregate, select column, WHERE condition or GROUP BY key).
//!
//! Two sources give the same counts: [`hardness_of_spider_sql`] ports the rules onto the
//! `sql` object Spider ships with each question (exact, quirks included: a NOT condition
//! counts as an aggregate in WHERE, and AND/OR between HAVING conditions count as
//! aggregates); [`hardness_of_sql`] applies them to the gold SQL text through `sqlparser`,
//! for data sets without the parsed form (the Chinook pairs).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArguments, GroupByExpr, LimitClause, OrderByKind, Query,
    SelectItem, SetExpr, Statement, UnaryOperator,
};

use crate::core::db::sql_ast::parse_single_query;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hardness {
    Easy,
    Medium,
    Hard,
    Extra,
}

impl Hardness {
    pub(crate) const ALL: [Hardness; 4] = [
        Hardness::Easy,
        Hardness::Medium,
        Hardness::Hard,
        Hardness::Extra,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Hardness::Easy => "easy",
            Hardness::Medium => "medium",
            Hardness::Hard => "hard",
            Hardness::Extra => "extra",
        }
    }
}

/// The three counts Spider's `eval_hardness` reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Components {
    pub component1: usize,
    pub component2: usize,
    pub others: usize,
}

impl Components {
    pub fn hardness(self) -> Hardness {
        let Components {
            component1: c1,
            component2: c2,
            others,
        } = self;
        if c1 <= 1 && others == 0 && c2 == 0 {
            Hardness::Easy
        } else if (others <= 2 && c1 <= 1 && c2 == 0) || (c1 <= 2 && others < 2 && c2 == 0) {
            Hardness::Medium
        } else if (others > 2 && c1 <= 2 && c2 == 0)
            || (2 < c1 && c1 <= 3 && others <= 2 && c2 == 0)
            || (c1 <= 1 && others == 0 && c2 <= 1)
        {
            Hardness::Hard
        } else {
            Hardness::Extra
        }
    }
}

/// Hardness from Spider's parsed `sql` object (the `sql` field of `dev.json`).
pub(crate) fn hardness_of_spider_sql(sql: &Value) -> Option<Hardness> {
    Some(spider_components(sql)?.hardness())
}

fn spider_components(sql: &Value) -> Option<Components> {
    let list = |key: &str| sql.get(key).and_then(Value::as_array);
    let from = sql.get("from")?;
    let table_units = from.get("table_units")?.as_array()?;
    let from_conds = from.get("conds")?.as_array()?;
    let where_ = list("where")?;
    let having = list("having")?;
    let group_by = list("groupBy")?;
    let order_by = list("orderBy")?;
    let select = sql.get("select")?.get(1)?.as_array()?;
    let limit = sql.get("limit").is_some_and(|v| !v.is_null());

    let conds = || {
        from_conds
            .iter()
            .step_by(2)
            .chain(where_.iter().step_by(2))
            .chain(having.iter().step_by(2))
    };
    let connectives = from_conds
        .iter()
        .skip(1)
        .step_by(2)
        .chain(where_.iter().skip(1).step_by(2))
        .chain(having.iter().skip(1).step_by(2));

    // WHERE_OPS in Spider: ('not', 'between', '=', '>', '<', '>=', '<=', '!=', 'in', 'like', 'is', 'exists')
    const LIKE: u64 = 9;
    let mut c1 = 0;
    c1 += usize::from(!where_.is_empty());
    c1 += usize::from(!group_by.is_empty());
    c1 += usize::from(!order_by.is_empty());
    c1 += usize::from(limit);
    c1 += table_units.len().saturating_sub(1);
    c1 += connectives.filter(|t| t.as_str() == Some("or")).count();
    c1 += conds()
        .filter(|c| c.get(1).and_then(Value::as_u64) == Some(LIKE))
        .count();

    let mut c2 = conds()
        .flat_map(|c| [c.get(3), c.get(4)])
        .filter(|v| v.is_some_and(Value::is_object))
        .count();
    c2 += ["intersect", "except", "union"]
        .iter()
        .filter(|k| sql.get(**k).is_some_and(|v| !v.is_null()))
        .count();

    // `has_agg(unit)` is `unit[0] != 0`: the aggregate id for select items and column
    // units, the NOT flag for conditions, and true for the 'and'/'or' strings.
    let has_agg = |unit: &Value| match unit {
        Value::String(_) => true,
        Value::Array(items) => match items.first() {
            Some(Value::Bool(flag)) => *flag,
            Some(Value::Number(n)) => n.as_u64() != Some(0),
            _ => false,
        },
        _ => false,
    };
    let mut aggregates = select.iter().filter(|u| has_agg(u)).count();
    aggregates += where_.iter().step_by(2).filter(|u| has_agg(u)).count();
    aggregates += group_by.iter().filter(|u| has_agg(u)).count();
    if let Some(units) = order_by.get(1).and_then(Value::as_array) {
        aggregates += units
            .iter()
            .flat_map(|u| [u.get(1), u.get(2)])
            .flatten()
            .filter(|c| !c.is_null() && has_agg(c))
            .count();
    }
    aggregates += having.iter().filter(|u| has_agg(u)).count();
    let others = usize::from(aggregates > 1)
        + usize::from(select.len() > 1)
        + usize::from(where_.len() > 1)
        + usize::from(group_by.len() > 1);
    Some(Components {
        component1: c1,
        component2: c2,
        others,
    })
}

/// Hardness from SQL text; `None` when `sqlparser` cannot read it as one query.
pub(crate) fn hardness_of_sql(sql: &str) -> Option<Hardness> {
    Some(sql_components(sql)?.hardness())
}

pub(crate) fn sql_components(sql: &str) -> Option<Components> {
    let Statement::Query(query) = parse_single_query(sql)? else {
        return None;
    };
    query_components(&query)
}

fn query_components(query: &Query) -> Option<Components> {
    // Spider describes a set operation by its left query plus a pointer to the right one.
    let mut body = query.body.as_ref();
    let mut set_operations = 0;
    while let SetExpr::SetOperation { left, .. } = body {
        set_operations += 1;
        body = left.as_ref();
    }
    let select = match body {
        SetExpr::Select(select) => select,
        SetExpr::Query(inner) => return query_components(inner),
        _ => return None,
    };
    let mut from_conds: Vec<&Expr> = Vec::new();
    let mut from_connectives: Vec<bool> = Vec::new();
    let mut tables: usize = 0;
    for table in &select.from {
        tables += 1;
        for join in &table.joins {
            tables += 1;
            if let Some(on) = join_condition(&join.join_operator) {
                flatten_conditions(on, &mut from_conds, &mut from_connectives);
            }
        }
    }
    let mut where_conds = Vec::new();
    let mut where_connectives = Vec::new();
    if let Some(selection) = &select.selection {
        flatten_conditions(selection, &mut where_conds, &mut where_connectives);
    }
    let mut having_conds = Vec::new();
    let mut having_connectives = Vec::new();
    if let Some(having) = &select.having {
        flatten_conditions(having, &mut having_conds, &mut having_connectives);
    }
    let group_keys = match &select.group_by {
        GroupByExpr::Expressions(exprs, _) => exprs.len(),
        GroupByExpr::All(_) => 1,
    };
    let order_exprs: Vec<&Expr> = match query.order_by.as_ref().map(|o| &o.kind) {
        Some(OrderByKind::Expressions(exprs)) => exprs.iter().map(|e| &e.expr).collect(),
        _ => Vec::new(),
    };
    let has_limit = match &query.limit_clause {
        Some(LimitClause::LimitOffset { limit, .. }) => limit.is_some(),
        Some(LimitClause::OffsetCommaLimit { .. }) => true,
        None => false,
    };
    let all_conds = || from_conds.iter().chain(&where_conds).chain(&having_conds);
    let ors = from_connectives
        .iter()
        .chain(&where_connectives)
        .chain(&having_connectives)
        .filter(|is_or| **is_or)
        .count();

    let mut c1 = usize::from(!where_conds.is_empty())
        + usize::from(group_keys > 0)
        + usize::from(!order_exprs.is_empty())
        + usize::from(has_limit)
        + tables.saturating_sub(1)
        + ors;
    c1 += all_conds().filter(|c| is_like(c)).count();
    let c2 = all_conds().map(|c| nested_operands(c)).sum::<usize>() + set_operations;

    let mut aggregates = select
        .projection
        .iter()
        .filter(|item| match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                is_aggregate(e)
            }
            _ => false,
        })
        .count();
    aggregates += where_conds.iter().filter(|c| is_negated(c)).count();
    aggregates += order_exprs.iter().filter(|e| is_aggregate(e)).count();
    aggregates += having_conds.iter().filter(|c| is_negated(c)).count() + having_connectives.len();
    let where_units = where_conds.len() * 2 - usize::from(!where_conds.is_empty());
    let others = usize::from(aggregates > 1)
        + usize::from(select.projection.len() > 1)
        + usize::from(where_units > 1)
        + usize::from(group_keys > 1);
    Some(Components {
        component1: c1,
        component2: c2,
        others,
    })
}

fn join_condition(operator: &sqlparser::ast::JoinOperator) -> Option<&Expr> {
    use sqlparser::ast::{JoinConstraint, JoinOperator as J};
    let constraint = match operator {
        J::Join(c)
        | J::Inner(c)
        | J::Left(c)
        | J::LeftOuter(c)
        | J::Right(c)
        | J::RightOuter(c)
        | J::FullOuter(c)
        | J::CrossJoin(c) => c,
        _ => return None,
    };
    match constraint {
        JoinConstraint::On(expr) => Some(expr),
        _ => None,
    }
}

/// Splits `a AND b OR c` into conditions and records, per connective, whether it is OR
/// (Spider keeps a flat list; parentheses around a group are looked through).
fn flatten_conditions<'a>(expr: &'a Expr, conds: &mut Vec<&'a Expr>, connectives: &mut Vec<bool>) {
    match expr {
        Expr::BinaryOp { left, op, right }
            if matches!(op, BinaryOperator::And | BinaryOperator::Or) =>
        {
            flatten_conditions(left, conds, connectives);
            connectives.push(*op == BinaryOperator::Or);
            flatten_conditions(right, conds, connectives);
        }
        Expr::Nested(inner) if is_connective(inner) => {
            flatten_conditions(inner, conds, connectives)
        }
        other => conds.push(other),
    }
}

fn is_connective(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::BinaryOp {
            op: BinaryOperator::And | BinaryOperator::Or,
            ..
        }
    )
}

fn is_like(expr: &Expr) -> bool {
    matches!(expr, Expr::Like { .. } | Expr::ILike { .. })
}

fn is_negated(expr: &Expr) -> bool {
    match expr {
        Expr::Like { negated, .. }
        | Expr::ILike { negated, .. }
        | Expr::InList { negated, .. }
        | Expr::InSubquery { negated, .. }
        | Expr::Between { negated, .. }
        | Expr::Exists { negated, .. } => *negated,
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            ..
        } => true,
        _ => false,
    }
}

/// Subqueries among a condition's operands (Spider's `val1`/`val2` holding a query).
fn nested_operands(expr: &Expr) -> usize {
    let is_query = |e: &Expr| matches!(strip_nested(e), Expr::Subquery(_));
    match expr {
        Expr::InSubquery { .. } | Expr::Exists { .. } => 1,
        Expr::BinaryOp { left, right, .. } => {
            usize::from(is_query(left)) + usize::from(is_query(right))
        }
        Expr::Between { low, high, .. } => usize::from(is_query(low)) + usize::from(is_query(high)),
        Expr::UnaryOp { expr, .. } => nested_operands(expr),
        Expr::Nested(inner) => nested_operands(inner),
        _ => 0,
    }
}

fn strip_nested(expr: &Expr) -> &Expr {
    match expr {
        Expr::Nested(inner) => strip_nested(inner),
        other => other,
    }
}

fn is_aggregate(expr: &Expr) -> bool {
    const AGGREGATES: &[&str] = &["count", "sum", "avg", "min", "max"];
    match strip_nested(expr) {
        Expr::Function(function) => {
            let name = function.name.to_string().to_lowercase();
            AGGREGATES.contains(&name.as_str()) && !matches!(function.args, FunctionArguments::None)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(sql: &str) -> Hardness {
        hardness_of_sql(sql).unwrap_or_else(|| panic!("parses: {sql}"))
    }

    #[test]
    fn levels_follow_spiders_examples() {
        assert_eq!(level("SELECT count(*) FROM singer"), Hardness::Easy);
        assert_eq!(
            level("SELECT name FROM singer WHERE age > 20"),
            Hardness::Easy
        );
        assert_eq!(
            level("SELECT name, country, age FROM singer ORDER BY age DESC"),
            Hardness::Medium
        );
        assert_eq!(
            level(
                "SELECT T2.name, count(*) FROM concert AS T1 JOIN stadium AS T2 ON T1.stadium_id = T2.stadium_id GROUP BY T1.stadium_id"
            ),
            Hardness::Medium
        );
        assert_eq!(
            level(
                "SELECT name FROM stadium WHERE stadium_id NOT IN (SELECT stadium_id FROM concert)"
            ),
            Hardness::Hard
        );
        assert_eq!(
            level(
                "SELECT T2.name FROM concert AS T1 JOIN stadium AS T2 ON T1.stadium_id = T2.stadium_id WHERE T1.year = 2014 INTERSECT SELECT T2.name FROM concert AS T1 JOIN stadium AS T2 ON T1.stadium_id = T2.stadium_id WHERE T1.year = 2015"
            ),
            Hardness::Extra
        );
    }

    #[test]
    fn spider_parsed_form_gives_the_same_levels() {
        // "SELECT count(*) FROM singer" and an ORDER BY ... LIMIT query, as Spider parses them.
        let easy: Value = serde_json::from_str(
            r#"{"from":{"table_units":[["table_unit",1]],"conds":[]},
                "select":[false,[[3,[0,[0,0,false],null]]]],"where":[],"groupBy":[],
                "having":[],"orderBy":[],"limit":null,"intersect":null,"union":null,"except":null}"#,
        )
        .unwrap();
        assert_eq!(hardness_of_spider_sql(&easy), Some(Hardness::Easy));
        let medium: Value = serde_json::from_str(
            r#"{"from":{"table_units":[["table_unit",1]],"conds":[]},
                "select":[false,[[0,[0,[0,2,false],null]]]],"where":[],"groupBy":[],
                "having":[],"orderBy":["desc",[[0,[0,3,false],null]]],"limit":1,
                "intersect":null,"union":null,"except":null}"#,
        )
        .unwrap();
        assert_eq!(hardness_of_spider_sql(&medium), Some(Hardness::Medium));
        assert_eq!(
            level("SELECT name FROM singer ORDER BY age DESC LIMIT 1"),
            Hardness::Medium
        );
    }
}
