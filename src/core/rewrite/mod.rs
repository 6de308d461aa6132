//! Checked rewrites of generated SQL: each step reads the query (and the question, the
//! schema or the data) and returns a changed query or nothing; one ordered registry.
//!
//! Every step implements [`Rewrite`] (or [`Check`], for a test that sends the query back
//! for repair instead of changing it), is switched by one key of [`RewriteSettings`] (the
//! `[rewrites]` table of the config; defaults live only in the embedded default config)
//! and is reported by that name when it fires.

pub mod flags;
pub mod ground;
pub mod group_key;
pub mod quote;
pub mod simplify;

use rusqlite::Connection;
use serde::Deserialize;

use crate::core::db::schema::Schema;

/// What a step may read besides the query.
#[derive(Clone, Copy)]
pub struct RewriteInput<'a> {
    pub question: &'a str,
    pub schema: &'a Schema,
    pub conn: &'a Connection,
}

/// One rewrite of a query.
pub trait Rewrite {
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
pub trait Check {
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
    pub intersect_both_values: bool,
    pub ground_literals: bool,
    pub lookup_through_keys: bool,
    pub filter_named_flags: bool,
    pub group_by_entity_key: bool,
    pub show_group_columns: bool,
    pub check_join_conditions: bool,
}

impl RewriteSettings {
    /// Every step off: the query runs as the model wrote it (names still quoted).
    pub fn none() -> Self {
        Self {
            drop_unnamed_flags: false,
            drop_unused_joins: false,
            intersect_both_values: false,
            ground_literals: false,
            lookup_through_keys: false,
            filter_named_flags: false,
            group_by_entity_key: false,
            show_group_columns: false,
            check_join_conditions: false,
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
pub struct Rewritten {
    pub sql: String,
    /// The steps that changed the query, in order, each once.
    pub fired: Vec<&'static str>,
    /// A step that changes meaning fired, so the query differs from the streamed text.
    pub changed: bool,
}

/// The ordered registry: the enabled rewrites, then the checks.
pub struct RewriteChain {
    steps: Vec<Step>,
    checks: Vec<Box<dyn Check + Send + Sync>>,
}

impl RewriteChain {
    /// The enabled steps, in the order they must run: quoting first (the others parse the
    /// query); a dropped flag may be all the query read of its table, so it goes before
    /// the join drop; a filter grounding moves can leave its table unused, so the join drop
    /// runs again after it.
    pub fn from_settings(settings: &RewriteSettings) -> Self {
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
            settings.drop_unused_joins,
            Box::new(DropUnusedJoins),
            Trigger::Always,
        );
        add(
            settings.intersect_both_values,
            Box::new(IntersectBothValues),
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
        let mut checks: Vec<Box<dyn Check + Send + Sync>> = Vec::new();
        if settings.check_join_conditions {
            checks.push(Box::new(JoinConditions));
        }
        Self { steps, checks }
    }

    /// `sql` after every enabled rewrite.
    pub fn apply(&self, sql: String, input: &RewriteInput<'_>) -> Rewritten {
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
            match step.rewrite.apply(&rewritten.sql, input) {
                Some(changed) => {
                    rewritten.sql = changed;
                    rewritten.changed |= step.rewrite.changes_meaning();
                    if !rewritten.fired.contains(&name) {
                        rewritten.fired.push(name);
                    }
                }
                None => {}
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
