//! A join that skips the table between two others: "albums whose tracks sold at a unit
//! price above 1" comes out as `Album JOIN InvoiceLine ON Album.AlbumId =
//! InvoiceLine.TrackId`. The join-key check sends it back naming the table that links them
//! (`Track`), and a small model often writes the same join again until the repair budget
//! runs out. When exactly one table links the two, each side by exactly one declared key,
//! the schema settles it: the join goes through that table.
//!
//! Only a query the join-key check refused reaches this fix, so it never changes the
//! result of a query that ran; the rewritten query is checked again like any other.

use sqlparser::ast::{BinaryOperator, Expr, Join, JoinConstraint, JoinOperator, Select};

use crate::core::db::schema::{Schema, Table};
use crate::core::db::sql_ast::{
    for_each_select_mut, ident, join_condition, parse_join, parse_single_query,
    resolve_column_owner, schema_table, tables_in_scope,
};
use crate::core::rewrite::join_keys::{KeyLink, key_links};

/// What the join-key check says of a join that skips a linking table.
const SKIPS_A_TABLE: &str = "which are not linked by a key; they are linked through";

/// `failed_sql` with the refused join routed through the one table that links its two
/// tables; `None` when the error is another one, the refused condition is not the whole
/// `ON` of one join, or the linking table is ambiguous or already in the query.
pub(crate) fn route_through_bridge(
    error: &str,
    failed_sql: &str,
    schema: &Schema,
) -> Option<String> {
    if !error.contains(SKIPS_A_TABLE) {
        return None;
    }
    let condition = error
        .strip_prefix("the join condition ")?
        .split(" pairs ")
        .next()?;
    let mut statement = parse_single_query(failed_sql)?;
    let mut routed = false;
    for_each_select_mut(&mut statement, |select| {
        routed = routed || route_in(select, schema, condition).is_some();
    });
    routed.then(|| format!("{statement:#}"))
}

/// Routes the join of `select` whose whole condition is `condition`; `None` when it has
/// none or its route is not plain.
fn route_in(select: &mut Select, schema: &Schema, condition: &str) -> Option<()> {
    let scope = tables_in_scope(select, schema);
    let Refused {
        from_index,
        join_index,
        earlier: (earlier_name, earlier_table),
        joined: (joined_name, joined),
    } = find_refused(select, &scope, schema, condition)?;
    let (middle, to_earlier, to_joined) = only_bridge(schema, earlier_table, joined)?;
    if scope
        .iter()
        .any(|(_, table)| table.name.eq_ignore_ascii_case(&middle.name))
    {
        return None;
    }
    let used: Vec<String> = scope.iter().map(|(name, _)| name.to_lowercase()).collect();
    let alias = fresh_alias(&middle.name, &used);
    let named = if alias == middle.name {
        ident(&alias).to_string()
    } else {
        format!("{} AS {}", ident(&middle.name), ident(&alias))
    };
    let through = parse_join(&format!(
        "{named} ON {}.{} = {}.{}",
        ident(&alias),
        ident(to_earlier.column_of(&middle.name)?),
        ident(&earlier_name),
        ident(to_earlier.column_of(&earlier_table.name)?),
    ))?;
    let onward = parse_join(&format!(
        "t ON {}.{} = {}.{}",
        ident(&joined_name),
        ident(to_joined.column_of(&joined.name)?),
        ident(&alias),
        ident(to_joined.column_of(&middle.name)?),
    ))?;
    let joins = &mut select.from[from_index].joins;
    let through = Join {
        join_operator: same_kind(&joins[join_index].join_operator, &through)?,
        ..through
    };
    joins[join_index].join_operator = same_kind(&joins[join_index].join_operator, &onward)?;
    joins.insert(join_index, through);
    Some(())
}

/// Where the refused join is, and the two tables its condition pairs, each under the name
/// the query uses: the one joined earlier, then the one this join adds.
struct Refused<'s> {
    from_index: usize,
    join_index: usize,
    earlier: (String, &'s Table),
    joined: (String, &'s Table),
}

/// The join of `select` whose whole condition is `condition`, an equality between a
/// column of the table it joins and one of a table joined before.
fn find_refused<'s>(
    select: &Select,
    scope: &[(String, &'s Table)],
    schema: &'s Schema,
    condition: &str,
) -> Option<Refused<'s>> {
    let (from_index, join_index) = select.from.iter().enumerate().find_map(|(f, from)| {
        from.joins
            .iter()
            .position(|join| join_condition(join).is_some_and(|on| on.to_string() == condition))
            .map(|j| (f, j))
    })?;
    let join = &select.from[from_index].joins[join_index];
    let Some(Expr::BinaryOp {
        left,
        op: BinaryOperator::Eq,
        right,
    }) = join_condition(join)
    else {
        return None;
    };
    let (joined_name, joined) = schema_table(&join.relation, schema)?;
    let (left, right) = (
        resolve_column_owner(left, scope)?,
        resolve_column_owner(right, scope)?,
    );
    let earlier = if left.0.eq_ignore_ascii_case(&joined_name) {
        right
    } else if right.0.eq_ignore_ascii_case(&joined_name) {
        left
    } else {
        return None;
    };
    Some(Refused {
        from_index,
        join_index,
        earlier: (earlier.0.to_string(), earlier.1),
        joined: (joined_name, joined),
    })
}

/// The one table other than `a` and `b` that one declared key links to each of them.
fn only_bridge<'s>(
    schema: &'s Schema,
    a: &Table,
    b: &Table,
) -> Option<(&'s Table, KeyLink, KeyLink)> {
    let mut bridges = schema.tables.iter().filter_map(|middle| {
        let same = |t: &Table| t.name.eq_ignore_ascii_case(&middle.name);
        if same(a) || same(b) || middle.is_view {
            return None;
        }
        let (to_a, to_b) = (
            key_links(schema, &a.name, &middle.name),
            key_links(schema, &middle.name, &b.name),
        );
        match (to_a.as_slice(), to_b.as_slice()) {
            ([to_a], [to_b]) => Some((middle, to_a.clone(), to_b.clone())),
            _ => None,
        }
    });
    let bridge = bridges.next()?;
    bridges.next().is_none().then_some(bridge)
}

/// `join`'s kind (inner or left) with `parsed`'s condition; `None` for other kinds.
fn same_kind(kind: &JoinOperator, parsed: &Join) -> Option<JoinOperator> {
    let on = join_condition(parsed)?.clone();
    let constraint = JoinConstraint::On(on);
    match kind {
        JoinOperator::Join(_) => Some(JoinOperator::Join(constraint)),
        JoinOperator::Inner(_) => Some(JoinOperator::Inner(constraint)),
        JoinOperator::Left(_) => Some(JoinOperator::Left(constraint)),
        JoinOperator::LeftOuter(_) => Some(JoinOperator::LeftOuter(constraint)),
        _ => None,
    }
}

/// The linking table's own name when the query does not use it, else a fresh `B<n>`.
fn fresh_alias(table: &str, used: &[String]) -> String {
    if !used.contains(&table.to_lowercase()) {
        return table.to_string();
    }
    (1..)
        .map(|n| format!("B{n}"))
        .find(|name| !used.contains(&name.to_lowercase()))
        .unwrap_or_else(|| "bridge".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::db::schema::introspect;
    use crate::core::rewrite::join_keys::JoinKeys;
    use crate::core::rewrite::{Check, RewriteInput};
    use rusqlite::Connection;

    fn music() -> (Connection, Schema) {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE Album (AlbumId INTEGER PRIMARY KEY, Title TEXT);
             CREATE TABLE Track (TrackId INTEGER PRIMARY KEY, Name TEXT,
                 AlbumId INTEGER REFERENCES Album(AlbumId));
             CREATE TABLE InvoiceLine (InvoiceLineId INTEGER PRIMARY KEY,
                 TrackId INTEGER REFERENCES Track(TrackId), UnitPrice REAL);
             INSERT INTO Album VALUES (1, 'A'), (2, 'B');
             INSERT INTO Track VALUES (10, 'x', 1), (11, 'y', 2), (12, 'z', 2);
             INSERT INTO InvoiceLine VALUES (1, 10, 0.99), (2, 12, 1.99), (3, 11, 1.99);",
        )
        .unwrap();
        let schema = introspect(&conn, "music").unwrap();
        (conn, schema)
    }

    fn refusal(conn: &Connection, schema: &Schema, sql: &str) -> Option<String> {
        let input = RewriteInput {
            question: "",
            schema,
            conn: Some(conn),
            dialect: crate::core::db::source::SqlDialect::Sqlite,
        };
        JoinKeys.check(sql, &input)
    }

    #[test]
    fn a_join_that_skips_the_linking_table_goes_through_it() {
        let (conn, schema) = music();
        let sql = "SELECT DISTINCT a.Title FROM Album AS a JOIN InvoiceLine AS il \
                   ON a.AlbumId = il.TrackId WHERE il.UnitPrice > 1";
        let error = refusal(&conn, &schema, sql).expect("the check refuses the join");
        let fixed = route_through_bridge(&error, sql, &schema).expect("routed");
        let one_line = fixed.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(
            one_line,
            "SELECT DISTINCT a.Title FROM Album AS a JOIN Track \
             ON Track.AlbumId = a.AlbumId JOIN InvoiceLine AS il ON il.TrackId = Track.TrackId \
             WHERE il.UnitPrice > 1"
        );
        assert_eq!(refusal(&conn, &schema, &fixed), None);
        let titles: Vec<String> = conn
            .prepare(&fixed)
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(titles, vec!["B".to_string()]);
    }

    #[test]
    fn other_errors_and_queries_that_hold_the_linking_table_are_left_to_the_model() {
        let (conn, schema) = music();
        let holds_track = "SELECT a.Title FROM Album AS a JOIN Track AS t ON t.AlbumId = a.AlbumId \
                           JOIN InvoiceLine AS il ON a.AlbumId = il.TrackId";
        let error = refusal(&conn, &schema, holds_track).expect("refused");
        assert_eq!(route_through_bridge(&error, holds_track, &schema), None);
        assert_eq!(
            route_through_bridge("no such column: Title", "SELECT Title FROM Track", &schema),
            None
        );
    }
}
