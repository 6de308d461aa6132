//! Small helpers over `sqlparser`'s AST shared by the modules that read or rewrite a query
//! (`hardness`, `simplify`, `ground`).

use std::ops::ControlFlow;

use sqlparser::ast::{Function, Query, Select, SetExpr, Statement, Visit, VisitMut, VisitorMut};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::Parser;

/// The text as one SQLite query statement (a trailing `;` allowed); `None` when it is not
/// exactly one query `sqlparser` reads.
pub fn parse_single_query(sql: &str) -> Option<Statement> {
    let mut statements =
        Parser::parse_sql(&SQLiteDialect {}, sql.trim().trim_end_matches(';')).ok()?;
    match statements.as_slice() {
        [Statement::Query(_)] => statements.pop(),
        _ => None,
    }
}

/// Calls `visit` on every SELECT of the statement: the arms of set operations and every
/// subquery, each once.
pub fn for_each_select_mut(statement: &mut Statement, visit: impl FnMut(&mut Select)) {
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
pub fn any_function<T: Visit>(node: &T, matches: impl Fn(&Function) -> bool) -> bool {
    sqlparser::ast::visit_expressions(node, |expr| match expr {
        sqlparser::ast::Expr::Function(function) if matches(function) => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}
