//! The text filters that decide which rows a query keeps: `column = 'text'` in the
//! AND/OR skeleton of a WHERE, in every SELECT that is not under a negation.
//!
//! Under `NOT IN`, `NOT EXISTS`, `<>` or the right arm of `EXCEPT` a filter that matches
//! nothing does not empty the answer, and the query may mean exactly that ("people with no
//! friend in Austin" stays right when no row spells it that way), so those are not visited.

use sqlparser::ast::{
    BinaryOperator, Expr, Query, Select, SetExpr, SetOperator, TableFactor, UnaryOperator, Value,
};

use crate::core::db::schema::{Schema, Table};
use crate::core::db::sql_ast::tables_in_scope;

/// What is called with each filter: the comparison and the tables of its SELECT.
pub(crate) type FilterVisit<'v, 's> = dyn FnMut(&mut Expr, &[(String, &'s Table)]) + 'v;

/// Calls `visit` with each `left = 'text'` comparison (the whole expression, so it can be
/// replaced) and the tables its SELECT reads, as `(name used in the query, table)`.
pub(crate) fn for_each_text_filter<'s>(
    query: &mut Query,
    schema: &'s Schema,
    visit: &mut FilterVisit<'_, 's>,
) {
    TextFilters { schema, visit }.query(query, false);
}

struct TextFilters<'v, 's> {
    schema: &'s Schema,
    visit: &'v mut FilterVisit<'v, 's>,
}

impl<'s> TextFilters<'_, 's> {
    fn query(&mut self, query: &mut Query, negated: bool) {
        self.body(&mut query.body, negated);
    }

    fn body(&mut self, body: &mut SetExpr, negated: bool) {
        match body {
            SetExpr::Select(select) => self.select(select, negated),
            SetExpr::Query(query) => self.query(query, negated),
            SetExpr::SetOperation {
                left, op, right, ..
            } => {
                let right_negated = negated || matches!(op, SetOperator::Except);
                self.body(left, negated);
                self.body(right, right_negated);
            }
            _ => {}
        }
    }

    fn select(&mut self, select: &mut Select, negated: bool) {
        let tables = tables_in_scope(select, self.schema);
        if let Some(selection) = select.selection.as_mut() {
            if !negated {
                self.condition(selection, &tables);
            }
            self.subqueries(selection, negated);
        }
        if let Some(having) = select.having.as_mut() {
            self.subqueries(having, negated);
        }
        for from in &mut select.from {
            let factors = std::iter::once(&mut from.relation)
                .chain(from.joins.iter_mut().map(|j| &mut j.relation));
            for factor in factors {
                if let TableFactor::Derived { subquery, .. } = factor {
                    self.query(subquery, negated);
                }
            }
        }
    }

    /// The subqueries of a condition, each knowing whether a negation covers it.
    fn subqueries(&mut self, expr: &mut Expr, negated: bool) {
        match expr {
            Expr::InSubquery {
                subquery,
                negated: not,
                ..
            }
            | Expr::Exists {
                subquery,
                negated: not,
            } => {
                let negated = negated || *not;
                self.query(subquery, negated);
            }
            Expr::Subquery(subquery) => self.query(subquery, negated),
            Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr,
            } => self.subqueries(expr, true),
            Expr::Nested(inner) => self.subqueries(inner, negated),
            Expr::BinaryOp { left, op, right } => {
                let negated = negated || matches!(op, BinaryOperator::NotEq);
                self.subqueries(left, negated);
                self.subqueries(right, negated);
            }
            _ => {}
        }
    }

    /// Only the AND/OR skeleton of the condition: a subquery is its own scope, visited as a
    /// SELECT of its own with its own tables.
    fn condition(&mut self, expr: &mut Expr, tables: &[(String, &'s Table)]) {
        match expr {
            Expr::Nested(inner) => self.condition(inner, tables),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And | BinaryOperator::Or,
                right,
            } => {
                self.condition(left, tables);
                self.condition(right, tables);
            }
            Expr::BinaryOp {
                op: BinaryOperator::Eq,
                right,
                ..
            } if matches!(
                right.as_ref(),
                Expr::Value(value) if matches!(value.value, Value::SingleQuotedString(_))
            ) =>
            {
                (self.visit)(expr, tables);
            }
            _ => {}
        }
    }
}
