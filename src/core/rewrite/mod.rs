//! Checked rewrites of generated SQL: each step reads the query (and the question, the
//! schema or the data) and returns a changed query or nothing; one ordered registry.
//!
//! Every step implements [`Rewrite`] (or [`Check`], for a test that sends the query back
//! for repair instead of changing it), is switched by one key of [`RewriteSettings`] (the
//! `[rewrites]` table of the config; defaults live only in the embedded default config)
//! and is reported by that name when it fires.

pub(crate) mod aggregate_column;
pub mod audit;
pub(crate) mod closest_values;
pub(crate) mod counted_rows;
pub mod extremum_row;
pub mod flags;
pub mod ground;
pub mod group_key;
pub mod join_keys;
pub mod named_count;
pub mod negated_match;
pub(crate) mod order_columns;
pub mod quote;
pub(crate) mod self_join;
pub(crate) mod shared_column;
pub mod simplify;
pub(crate) mod stored_count;
pub(crate) mod text_filters;
pub mod unmatched;
pub(crate) mod year_filter;

use rusqlite::Connection;
use serde::Deserialize;

use crate::core::db::schema::Schema;
use crate::core::db::source::SqlDialect;

/// What a step may read besides the query.
#[derive(Clone, Copy)]
pub(crate) struct RewriteInput<'a> {
    pub question: &'a str,
    pub schema: &'a Schema,
    /// The SQLite connection the data probes read; `None` on other backends, where the
    /// steps that probe the data with SQLite's SQL leave the query alone.
    pub conn: Option<&'a Connection>,
    pub dialect: SqlDialect,
}

/// One rewrite of a query.
pub(crate) trait Rewrite {
    /// The step's name: its settings key, and what `rewrites` reports when it fires.
    fn name(&self) -> &'static str;
    /// The rewritten query, or `None` when the step leaves this one alone.
    fn apply(&self, sql: &str, input: &RewriteInput<'_>) -> Option<String>;
    /// Whether a change alters what the query means (and so differs from the text that
    /// was streamed); quoting a name only changes how it is written.
    fn changes_meaning(&self) -> bool {
        true
    }
}

/// One test of a query that, when it fails, sends the query back for repair.
pub(crate) trait Check {
    fn name(&self) -> &'static str;
    /// Why the query must be written again, or `None` when it passes.
    fn check(&self, sql: &str, input: &RewriteInput<'_>) -> Option<String>;
}

/// The switches of every step, the `[rewrites]` table of the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewriteSettings {
    pub drop_unnamed_flags: bool,
    pub drop_unused_joins: bool,
    pub drop_join_for_shared_column: bool,
    pub intersect_both_values: bool,
    pub ground_literals: bool,
    pub lookup_through_keys: bool,
    pub filter_named_flags: bool,
    pub group_by_entity_key: bool,
    pub show_group_columns: bool,
    pub group_by_key_alone: bool,
    pub exclude_negated_match: bool,
    pub order_by_stored_count: bool,
    pub join_counted_table: bool,
    pub count_named_table: bool,
    pub filter_unmatched_in_join: bool,
    pub compare_year_of_date: bool,
    pub drop_order_only_columns: bool,
    pub name_aggregated_column: bool,
    pub order_by_extremum: bool,
    pub check_join_conditions: bool,
    pub check_join_keys: bool,
    /// Not a step of the chain: after a query that found nothing, send it back once with
    /// the closest values of a text filter no row holds (`core::pipeline`).
    pub closest_values: bool,
}

impl RewriteSettings {
    /// Every step off: the query runs as the model wrote it (names still quoted).
    pub fn none() -> Self {
        Self {
            drop_unnamed_flags: false,
            drop_unused_joins: false,
            drop_join_for_shared_column: false,
            intersect_both_values: false,
            ground_literals: false,
            lookup_through_keys: false,
            filter_named_flags: false,
            group_by_entity_key: false,
            show_group_columns: false,
            group_by_key_alone: false,
            exclude_negated_match: false,
            order_by_stored_count: false,
            join_counted_table: false,
            count_named_table: false,
            filter_unmatched_in_join: false,
            compare_year_of_date: false,
            drop_order_only_columns: false,
            name_aggregated_column: false,
            order_by_extremum: false,
            check_join_conditions: false,
            check_join_keys: false,
            closest_values: false,
        }
    }
}

/// When a step runs.
enum Trigger {
    Always,
    /// Only when the named step changed the query in this pass (a cleanup after it).
    AfterFired(&'static str),
}

struct Step {
    rewrite: Box<dyn Rewrite + Send + Sync>,
    trigger: Trigger,
}

/// A query after the chain, and what changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rewritten {
    pub sql: String,
    /// The steps that changed the query, in order, each once.
    pub fired: Vec<&'static str>,
    /// A step that changes meaning fired, so the query differs from the streamed text.
    pub changed: bool,
}

/// The ordered registry: the enabled rewrites, then the checks.
pub(crate) struct RewriteChain {
    steps: Vec<Step>,
    checks: Vec<Box<dyn Check + Send + Sync>>,
}

impl RewriteChain {
    /// The enabled steps, in the order they must run: quoting first (the others parse the
    /// query); a dropped flag may be all the query read of its table, so it goes before
    /// the join drop; a filter grounding moves can leave its table unused, so the join drop
    /// runs again after it.
    pub(crate) fn from_settings(settings: &RewriteSettings) -> Self {
        use flags::{DropUnnamedFlags, FilterNamedFlags};
        use simplify::{DropUnusedJoins, IntersectBothValues, JoinConditions, ShowGroupColumns};
        let mut steps = vec![Step {
            rewrite: Box::new(quote::QuoteNames) as Box<dyn Rewrite + Send + Sync>,
            trigger: Trigger::Always,
        }];
        let mut add = |enabled: bool, rewrite: Box<dyn Rewrite + Send + Sync>, trigger| {
            if enabled {
                steps.push(Step { rewrite, trigger });
            }
        };
        add(
            settings.drop_unnamed_flags,
            Box::new(DropUnnamedFlags),
            Trigger::Always,
        );
        add(
            settings.drop_join_for_shared_column,
            Box::new(shared_column::DropJoinForSharedColumn),
            Trigger::Always,
        );
        add(
            settings.drop_unused_joins,
            Box::new(DropUnusedJoins),
            Trigger::Always,
        );
        add(
            settings.intersect_both_values,
            Box::new(IntersectBothValues),
            Trigger::Always,
        );
        add(
            settings.compare_year_of_date,
            Box::new(year_filter::CompareYearOfDate),
            Trigger::Always,
        );
        let ground = ground::GroundLiterals {
            lookup_through_keys: settings.lookup_through_keys,
        };
        add(settings.ground_literals, Box::new(ground), Trigger::Always);
        let after_ground = Trigger::AfterFired(ground::GroundLiterals::NAME);
        let cleanup = settings.ground_literals && settings.drop_unused_joins;
        add(cleanup, Box::new(DropUnusedJoins), after_ground);
        add(
            settings.filter_unmatched_in_join,
            Box::new(unmatched::FilterUnmatchedInJoin),
            Trigger::Always,
        );
        add(
            settings.exclude_negated_match,
            Box::new(negated_match::ExcludeNegatedMatch),
            Trigger::Always,
        );
        add(
            settings.order_by_stored_count,
            Box::new(stored_count::OrderByStoredCount),
            Trigger::Always,
        );
        add(
            settings.join_counted_table,
            Box::new(counted_rows::JoinCountedTable),
            Trigger::Always,
        );
        add(
            settings.count_named_table,
            Box::new(named_count::CountNamedTable),
            Trigger::Always,
        );
        add(
            settings.filter_named_flags,
            Box::new(FilterNamedFlags),
            Trigger::Always,
        );
        add(
            settings.group_by_entity_key,
            Box::new(group_key::GroupByEntityKey),
            Trigger::Always,
        );
        add(
            settings.show_group_columns,
            Box::new(ShowGroupColumns),
            Trigger::Always,
        );
        add(
            settings.group_by_key_alone,
            Box::new(group_key::GroupByKeyAlone),
            Trigger::Always,
        );
        add(
            settings.drop_order_only_columns,
            Box::new(order_columns::DropOrderOnlyColumns),
            Trigger::Always,
        );
        add(
            settings.name_aggregated_column,
            Box::new(aggregate_column::NameAggregatedColumn),
            Trigger::Always,
        );
        add(
            settings.order_by_extremum,
            Box::new(extremum_row::OrderByExtremum),
            Trigger::Always,
        );
        let mut checks: Vec<Box<dyn Check + Send + Sync>> = Vec::new();
        if settings.check_join_conditions {
            checks.push(Box::new(JoinConditions));
        }
        if settings.check_join_keys {
            checks.push(Box::new(join_keys::JoinKeys));
        }
        Self { steps, checks }
    }

    /// `sql` after every enabled rewrite.
    pub(crate) fn apply(&self, sql: String, input: &RewriteInput<'_>) -> Rewritten {
        let mut rewritten = Rewritten {
            sql,
            fired: Vec::new(),
            changed: false,
        };
        for step in &self.steps {
            if let Trigger::AfterFired(name) = step.trigger
                && !rewritten.fired.contains(&name)
            {
                continue;
            }
            let name = step.rewrite.name();
            if let Some(changed) = step.rewrite.apply(&rewritten.sql, input) {
                rewritten.sql = changed;
                rewritten.changed |= step.rewrite.changes_meaning();
                if !rewritten.fired.contains(&name) {
                    rewritten.fired.push(name);
                }
            }
        }
        rewritten
    }

    /// The first enabled check the query fails: its name and the message for the repair.
    pub fn check(&self, sql: &str, input: &RewriteInput<'_>) -> Option<(&'static str, String)> {
        self.checks
            .iter()
            .find_map(|check| Some((check.name(), check.check(sql, input)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::db::exec::ReadOnlyDb;

    fn chinook_like() -> (tempfile::TempDir, ReadOnlyDb) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("music.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE Album (AlbumId INTEGER PRIMARY KEY, Title TEXT, ArtistId INTEGER);
             CREATE TABLE Track (TrackId INTEGER PRIMARY KEY, Name TEXT,
                 AlbumId INTEGER REFERENCES Album(AlbumId));
             CREATE TABLE \"Media Type\" (MediaTypeId INTEGER PRIMARY KEY, Name TEXT);
             INSERT INTO Album VALUES (1, 'For Those About To Rock', 1);
             INSERT INTO Track VALUES (1, 'Intro', 1), (2, 'Outro', 1);",
        )
        .unwrap();
        drop(conn);
        let db = ReadOnlyDb::open(&path).unwrap();
        (dir, db)
    }

    fn defaults() -> RewriteSettings {
        RewriteSettings {
            check_join_conditions: true,
            ..RewriteSettings::none()
        }
    }

    fn apply(settings: &RewriteSettings, sql: &str) -> Rewritten {
        let (_dir, db) = chinook_like();
        let input = RewriteInput {
            question: "Which albums does artist 1 have?",
            schema: db.schema().unwrap(),
            conn: db.connection(),
            dialect: db.dialect(),
        };
        RewriteChain::from_settings(settings).apply(sql.to_string(), &input)
    }

    #[test]
    fn the_chain_reports_what_fired_in_order_each_once() {
        let sql = "SELECT a.Title FROM Album a JOIN Track t ON a.AlbumId = t.AlbumId \
                   WHERE a.ArtistId = 1";
        let on = RewriteSettings {
            drop_unused_joins: true,
            ..defaults()
        };
        let rewritten = apply(&on, sql);
        assert_eq!(rewritten.fired, ["drop_unused_joins"]);
        assert!(rewritten.changed);
        assert!(!rewritten.sql.contains("Track"), "{}", rewritten.sql);

        let off = apply(&defaults(), sql);
        assert!(off.fired.is_empty());
        assert_eq!(off.sql, sql);
    }

    #[test]
    fn quoting_fires_without_changing_meaning() {
        let rewritten = apply(&defaults(), "SELECT Name FROM Media Type");
        assert_eq!(rewritten.sql, "SELECT Name FROM \"Media Type\"");
        assert_eq!(rewritten.fired, ["quote_names"]);
        assert!(!rewritten.changed);
    }

    #[test]
    fn checks_name_themselves() {
        let (_dir, db) = chinook_like();
        let input = RewriteInput {
            question: "",
            schema: db.schema().unwrap(),
            conn: db.connection(),
            dialect: db.dialect(),
        };
        let chain = RewriteChain::from_settings(&defaults());
        let sql = "SELECT a.Title FROM Album a JOIN Track t ON a.AlbumId = a.AlbumId";
        let (name, message) = chain.check(sql, &input).unwrap();
        assert_eq!(name, "check_join_conditions");
        assert!(message.contains("does not connect two tables"), "{message}");
        let unchecked = RewriteChain::from_settings(&RewriteSettings::none());
        assert_eq!(unchecked.check(sql, &input), None);
    }
}
