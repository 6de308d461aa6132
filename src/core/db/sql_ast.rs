//! Small helpers over `sqlparser`'s AST shared by the modules that read or rewrite a query
//! (`hardness`, `simplify`, `ground`, `flags`, `group_key`).

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, Function, Ident, Query, Select, SetExpr, Statement, TableFactor, Visit,
    VisitMut, VisitorMut,
};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::Parser;

use crate::core::db::ident::needs_quotes;
use crate::core::db::schema::{Schema, Table};

/// The text as one SQLite query statement (a trailing `;` allowed); `None` when it is not
/// exactly one query `sqlparser` reads.
pub(crate) fn parse_single_query(sql: &str) -> Option<Statement> {
    let mut statements =
        Parser::parse_sql(&SQLiteDialect {}, sql.trim().trim_end_matches(';')).ok()?;
    match statements.as_slice() {
        [Statement::Query(_)] => statements.pop(),
        _ => None,
    }
}

/// A name as an identifier SQLite reads back as the same name.
pub(crate) fn ident(name: &str) -> Ident {
    if needs_quotes(name) {
        Ident::with_quote('"', name)
    } else {
        Ident::new(name)
    }
}

/// Calls `visit` on every SELECT of the statement: the arms of set operations and every
/// subquery, each once.
pub(crate) fn for_each_select_mut(statement: &mut Statement, visit: impl FnMut(&mut Select)) {
    struct Selects<F>(F);

    impl<F: FnMut(&mut Select)> Selects<F> {
        fn walk(&mut self, body: &mut SetExpr) {
            match body {
                SetExpr::Select(select) => (self.0)(select),
                SetExpr::SetOperation { left, right, .. } => {
                    self.walk(left);
                    self.walk(right);
                }
                // A parenthesised query is a `Query` node the visitor reaches by itself.
                _ => {}
            }
        }
    }

    impl<F: FnMut(&mut Select)> VisitorMut for Selects<F> {
        type Break = ();

        fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
            self.walk(&mut query.body);
            ControlFlow::Continue(())
        }
    }

    let _ = statement.visit(&mut Selects(visit));
}

/// Whether a function call under `node` satisfies `matches` (subqueries included).
pub(crate) fn any_function<T: Visit>(node: &T, matches: impl Fn(&Function) -> bool) -> bool {
    sqlparser::ast::visit_expressions(node, |expr| match expr {
        sqlparser::ast::Expr::Function(function) if matches(function) => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

/// Whether an expression under `node` is a nested query (`(SELECT ...)`, `IN (SELECT
/// ...)`, `EXISTS`); a subquery as a FROM item is not an expression.
pub(crate) fn has_expression_subquery<T: Visit>(node: &T) -> bool {
    sqlparser::ast::visit_expressions(node, |expr| match expr {
        Expr::Subquery(_) | Expr::InSubquery { .. } | Expr::Exists { .. } => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

/// `=`, `<>`, `<`, `<=`, `>` or `>=`.
pub(crate) fn is_comparison(op: &BinaryOperator) -> bool {
    matches!(
        op,
        BinaryOperator::Eq
            | BinaryOperator::NotEq
            | BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Gt
            | BinaryOperator::GtEq
    )
}

/// A column reference, bare (`Name`) or qualified (`T1.Name`).
pub(crate) fn is_column(expr: &Expr) -> bool {
    matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
}

/// The tables a select reads, under the name its columns use (alias, else table name, as
/// the query spells it).
pub(crate) fn tables_in_scope<'s>(select: &Select, schema: &'s Schema) -> Vec<(String, &'s Table)> {
    select
        .from
        .iter()
        .flat_map(|from| {
            std::iter::once(&from.relation).chain(from.joins.iter().map(|j| &j.relation))
        })
        .filter_map(|factor| schema_table(factor, schema))
        .collect()
}

/// The schema's table a FROM item names, under the name its columns use (alias, else
/// table name, as the query spells it); `None` for a subquery or an unknown table.
pub(crate) fn schema_table<'s>(
    factor: &TableFactor,
    schema: &'s Schema,
) -> Option<(String, &'s Table)> {
    let TableFactor::Table { name, alias, .. } = factor else {
        return None;
    };
    let ident = name.0.last()?.as_ident()?;
    let table = schema.table(&ident.value)?;
    let used_as = alias.as_ref().map_or(&ident.value, |a| &a.name.value);
    Some((used_as.clone(), table))
}

/// The table and the schema's spelling of the column an expression names, when exactly
/// one table in scope has it.
pub(crate) fn resolve_column<'s>(
    expr: &Expr,
    tables: &[(String, &'s Table)],
) -> Option<(&'s Table, String)> {
    resolve_column_owner(expr, tables).map(|(_, table, column)| (table, column))
}

/// Like [`resolve_column`], with the name the owning table goes by in the query.
pub(crate) fn resolve_column_owner<'t, 's>(
    expr: &Expr,
    tables: &'t [(String, &'s Table)],
) -> Option<(&'t str, &'s Table, String)> {
    let (qualifier, name) = match expr {
        Expr::Identifier(ident) => (None, &ident.value),
        Expr::CompoundIdentifier(parts) if parts.len() >= 2 => (
            Some(&parts[parts.len() - 2].value),
            &parts[parts.len() - 1].value,
        ),
        _ => return None,
    };
    let mut owners = tables.iter().filter(|(used_as, table)| {
        qualifier.is_none_or(|q| q.eq_ignore_ascii_case(used_as)) && table.column(name).is_some()
    });
    let (used_as, table) = owners.next()?;
    if owners.next().is_some() {
        return None;
    }
    let column = table.column(name)?.name.clone();
    Some((used_as.as_str(), table, column))
}

/// The last part of every column reference in `node` (`T1.Name` and `Name` both give
/// `Name`), subqueries included.
pub(crate) fn referenced_column_names<T: Visit>(node: &T) -> Vec<String> {
    let mut names = Vec::new();
    let _ = sqlparser::ast::visit_expressions(node, |expr| {
        match expr {
            Expr::Identifier(ident) => names.push(ident.value.clone()),
            Expr::CompoundIdentifier(parts) => {
                if let Some(last) = parts.last() {
                    names.push(last.value.clone());
                }
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    names
}

/// `a AND b`, or the one condition when there is nothing to add to.
pub(crate) fn and_condition(existing: Option<Expr>, added: Expr) -> Expr {
    match existing {
        None => added,
        Some(existing) => Expr::BinaryOp {
            left: Box::new(nested_if_or(existing)),
            op: BinaryOperator::And,
            right: Box::new(added),
        },
    }
}

/// The conditions of an AND chain, in order, looking through parentheses; a parenthesised
/// OR stays whole, so that [`conjunction`] puts back what it was.
pub(crate) fn conjuncts(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::Nested(inner)
            if !matches!(
                inner.as_ref(),
                Expr::BinaryOp {
                    op: BinaryOperator::Or,
                    ..
                }
            ) =>
        {
            conjuncts(inner)
        }
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            let mut all = conjuncts(left);
            all.extend(conjuncts(right));
            all
        }
        other => vec![other],
    }
}

/// The conditions ANDed together; `None` when there are none.
pub(crate) fn conjunction(conditions: impl IntoIterator<Item = Expr>) -> Option<Expr> {
    conditions
        .into_iter()
        .reduce(|all, next| and_condition(Some(all), next))
}

/// `a OR b` in parentheses, so that an added `AND` does not bind to `b` alone.
fn nested_if_or(expr: Expr) -> Expr {
    match expr {
        Expr::BinaryOp {
            op: BinaryOperator::Or,
            ..
        } => Expr::Nested(Box::new(expr)),
        other => other,
    }
}
/// The `ON` condition of an inner or left join (`None` for `USING`, natural or cross joins).
pub(crate) fn join_condition(join: &sqlparser::ast::Join) -> Option<&Expr> {
    use sqlparser::ast::{JoinConstraint, JoinOperator};
    match &join.join_operator {
        JoinOperator::Join(JoinConstraint::On(on))
        | JoinOperator::Inner(JoinConstraint::On(on))
        | JoinOperator::Left(JoinConstraint::On(on))
        | JoinOperator::LeftOuter(JoinConstraint::On(on)) => Some(on),
        _ => None,
    }
}

/// The join `JOIN <text>` parses to, for a plain table (`Track AS T ON T.AlbumId = a.AlbumId`);
/// `None` when the text is not one.
pub(crate) fn parse_join(text: &str) -> Option<sqlparser::ast::Join> {
    let sql = format!("SELECT 1 FROM t JOIN {text}");
    let mut parsed = Parser::parse_sql(&SQLiteDialect {}, &sql).ok()?;
    let Some(Statement::Query(query)) = parsed.pop() else {
        return None;
    };
    let SetExpr::Select(mut select) = *query.body else {
        return None;
    };
    let join = select.from.pop()?.joins.pop()?;
    matches!(join.relation, TableFactor::Table { .. }).then_some(join)
}
