//! A table joined to itself on its own key: `FROM party AS T1 LEFT JOIN party AS T2 ON
//! T1.Party_ID = T2.Party_ID`. Each row meets only itself, so the second copy is the first
//! under another name; small models write it when they lose track of which alias holds
//! what. [`merge_key_self_joins`] reads the second copy's columns from the first and drops
//! the join, which leaves every result as it was and the query plain enough for the other
//! steps to read.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, Ident, Join, Statement, TableFactor, TableWithJoins, Visit, Visitor,
    visit_expressions_mut,
};

use crate::core::db::schema::Schema;
use crate::core::db::sql_ast::{for_each_select_mut, join_condition, parse_single_query};
use crate::core::rewrite::simplify::has_wildcard;

/// The query with every self-join on the table's own key merged into the table; `None`
/// when there is none.
pub(crate) fn merge_key_self_joins(sql: &str, schema: &Schema) -> Option<String> {
    let mut statement = parse_single_query(sql)?;
    // `SELECT *` shows both copies' columns; merged, it would show half as many.
    if has_wildcard(&mut statement) {
        return None;
    }
    let names = table_names_used(&statement);
    let mut merged: Vec<(String, String)> = Vec::new();
    for_each_select_mut(&mut statement, |select| {
        for from in &mut select.from {
            while let Some((index, copy, original)) = key_self_join(from, schema, &names) {
                from.joins.remove(index);
                merged.push((copy, original));
            }
        }
    });
    if merged.is_empty() {
        return None;
    }
    let _ = visit_expressions_mut(&mut statement, |expr| {
        if let Expr::CompoundIdentifier(parts) = expr
            && let [qualifier, _] = parts.as_mut_slice()
            && let Some((_, original)) = merged
                .iter()
                .find(|(copy, _)| copy.eq_ignore_ascii_case(&qualifier.value))
        {
            *qualifier = Ident::new(original.clone());
        }
        ControlFlow::<()>::Continue(())
    });
    Some(format!("{statement:#}"))
}

/// The index of a join that repeats an earlier table of `from` on its one-column primary
/// key, with the copy's name and the original's; `None` when there is none. A copy whose
/// name the statement uses for another table too is left alone.
fn key_self_join(
    from: &TableWithJoins,
    schema: &Schema,
    names: &[String],
) -> Option<(usize, String, String)> {
    let factors: Vec<&TableFactor> = std::iter::once(&from.relation)
        .chain(from.joins.iter().map(|join| &join.relation))
        .collect();
    from.joins.iter().enumerate().find_map(|(index, join)| {
        let (table, copy) = table_and_name(&join.relation)?;
        let key = schema.table(&table)?.single_primary_key()?.name.clone();
        let original = factors[..=index].iter().find_map(|factor| {
            let (earlier, name) = table_and_name(factor)?;
            (earlier.eq_ignore_ascii_case(&table) && !name.eq_ignore_ascii_case(&copy))
                .then_some(name)
        })?;
        let used_once = names
            .iter()
            .filter(|n| n.eq_ignore_ascii_case(&copy))
            .count()
            == 1;
        (used_once && joins_on_key(join, &copy, &original, &key)).then_some((index, copy, original))
    })
}

/// A plain table's schema name and the name its columns use (alias, else table name).
fn table_and_name(factor: &TableFactor) -> Option<(String, String)> {
    let TableFactor::Table { name, alias, .. } = factor else {
        return None;
    };
    let table = name.0.last()?.as_ident()?.value.clone();
    let used_as = alias
        .as_ref()
        .map_or(table.clone(), |a| a.name.value.clone());
    Some((table, used_as))
}

/// The join's whole condition is `copy.key = original.key` (either way round).
fn joins_on_key(join: &Join, copy: &str, original: &str, key: &str) -> bool {
    let Some(Expr::BinaryOp {
        left,
        op: BinaryOperator::Eq,
        right,
    }) = join_condition(join)
    else {
        return false;
    };
    let side = |expr: &Expr| match expr {
        Expr::CompoundIdentifier(parts) => match parts.as_slice() {
            [qualifier, column] if column.value.eq_ignore_ascii_case(key) => {
                Some(qualifier.value.to_lowercase())
            }
            _ => None,
        },
        _ => None,
    };
    let (Some(a), Some(b)) = (side(left), side(right)) else {
        return false;
    };
    let (copy, original) = (copy.to_lowercase(), original.to_lowercase());
    (a == copy && b == original) || (a == original && b == copy)
}

/// The name every table of the statement goes by (alias, else table name), subqueries
/// included.
fn table_names_used(statement: &Statement) -> Vec<String> {
    struct Names(Vec<String>);

    impl Visitor for Names {
        type Break = ();

        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
            if let Some((_, used_as)) = table_and_name(factor) {
                self.0.push(used_as);
            }
            ControlFlow::Continue(())
        }
    }

    let mut names = Names(Vec::new());
    let _ = statement.visit(&mut names);
    names.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::db::schema::{Column, Table};

    fn schema() -> Schema {
        let column = |name: &str, primary_key: bool| Column {
            name: name.to_string(),
            declared_type: "int".to_string(),
            primary_key,
            not_null: false,
            sample_values: Vec::new(),
            distinct_values: None,
        };
        let table = |name: &str, columns| Table {
            name: name.to_string(),
            is_view: false,
            columns,
            foreign_keys: Vec::new(),
            row_count: None,
        };
        Schema {
            tables: vec![
                table(
                    "party",
                    vec![
                        column("Party_ID", true),
                        column("Minister", false),
                        column("Party_name", false),
                    ],
                ),
                table(
                    "employee",
                    vec![column("Employee_ID", true), column("Manager_ID", false)],
                ),
            ],
            broken: Vec::new(),
        }
    }

    fn one_line(sql: Option<String>) -> Option<String> {
        sql.map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    #[test]
    fn a_table_joined_to_itself_on_its_key_is_read_once() {
        assert_eq!(
            one_line(merge_key_self_joins(
                "SELECT DISTINCT T1.Minister FROM party AS T1 LEFT JOIN party AS T2 \
                 ON T1.Party_ID = T2.Party_ID WHERE T2.Party_name != 'Progress Party'",
                &schema()
            ))
            .as_deref(),
            Some(
                "SELECT DISTINCT T1.Minister FROM party AS T1 \
                 WHERE T1.Party_name <> 'Progress Party'"
            )
        );
    }

    #[test]
    fn a_self_join_on_another_column_means_something_and_stays() {
        for sql in [
            // Employees and their managers: a join on a reference, not the key.
            "SELECT a.Employee_ID FROM employee AS a JOIN employee AS b \
             ON a.Manager_ID = b.Employee_ID",
            // The key and another condition.
            "SELECT a.Party_ID FROM party AS a JOIN party AS b \
             ON a.Party_ID = b.Party_ID AND a.Minister <> b.Minister",
            // Every column of both copies.
            "SELECT * FROM party AS a JOIN party AS b ON a.Party_ID = b.Party_ID",
            // The copy's name names another table in a subquery.
            "SELECT a.Party_ID FROM party AS a JOIN party AS b ON a.Party_ID = b.Party_ID \
             WHERE a.Party_ID IN (SELECT b.Employee_ID FROM employee AS b)",
        ] {
            assert_eq!(merge_key_self_joins(sql, &schema()), None, "{sql}");
        }
    }
}
