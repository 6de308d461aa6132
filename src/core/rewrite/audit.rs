//! The gold audit: every rewrite, alone and as the configured chain, run over correct
//! (gold) queries. A rewrite that changes the result of a right query makes a right answer
//! wrong; a check that fires on one sends a right query back for repair. Both are listed
//! with the rule that did it.

use std::ops::Not;
use std::time::Duration;

use serde::Serialize;

use crate::core::db::compare::{gold_is_ordered, results_match};
use crate::core::db::exec::{ExecLimits, QueryResult, ReadOnlyDb};
use crate::core::rewrite::{RewriteChain, RewriteInput, RewriteSettings};

/// Rows read when comparing: far above any gold result, so nothing is cut.
const AUDIT_ROW_LIMIT: usize = 1_000_000;

/// What the audit found for one gold query (one JSON line of `rewrites audit --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditLine {
    pub db_id: String,
    pub question: String,
    pub gold_sql: String,
    /// The gold query after the configured chain (equal to `gold_sql` when nothing fired).
    pub rewritten_sql: String,
    /// The chain's rewrites and checks that fired on the gold query.
    pub rules_fired: Vec<String>,
    /// The chain changed the gold result (or a check sent the gold query back).
    pub changed: bool,
    /// Each rule that, run alone, changed the gold result (or, for a check, fired).
    pub changed_by: Vec<String>,
    /// Set when the gold query itself does not run here (it is then not audited).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gold_error: Option<String>,
}

/// The switches of one rule alone, by its name (`lookup_through_keys` needs grounding).
pub fn only(rule: &str) -> Option<RewriteSettings> {
    let mut settings = RewriteSettings::none();
    match rule {
        "drop_unnamed_flags" => settings.drop_unnamed_flags = true,
        "drop_unused_joins" => settings.drop_unused_joins = true,
        "intersect_both_values" => settings.intersect_both_values = true,
        "ground_literals" => settings.ground_literals = true,
        "lookup_through_keys" => {
            settings.ground_literals = true;
            settings.lookup_through_keys = true;
        }
        "filter_named_flags" => settings.filter_named_flags = true,
        "group_by_entity_key" => settings.group_by_entity_key = true,
        "show_group_columns" => settings.show_group_columns = true,
        "check_join_conditions" => settings.check_join_conditions = true,
        "check_join_keys" => settings.check_join_keys = true,
        _ => return None,
    }
    Some(settings)
}

/// Every rule the audit runs alone, in the chain's order.
pub(crate) const RULES: [&str; 10] = [
    "drop_unnamed_flags",
    "drop_unused_joins",
    "intersect_both_values",
    "ground_literals",
    "lookup_through_keys",
    "filter_named_flags",
    "group_by_entity_key",
    "show_group_columns",
    "check_join_conditions",
    "check_join_keys",
];

/// One gold query on its database, through `chain` and through each rule alone.
pub struct Auditor {
    chain: RewriteChain,
    alone: Vec<(&'static str, RewriteChain)>,
    timeout: Duration,
}

impl Auditor {
    pub fn new(settings: &RewriteSettings, timeout: Duration) -> Self {
        let alone = RULES
            .iter()
            .filter_map(|rule| Some((*rule, RewriteChain::from_settings(&only(rule)?))))
            .collect();
        Self {
            chain: RewriteChain::from_settings(settings),
            alone,
            timeout,
        }
    }

    pub fn audit(&self, db: &ReadOnlyDb, db_id: &str, question: &str, gold: &str) -> AuditLine {
        let mut line = AuditLine {
            db_id: db_id.to_string(),
            question: question.to_string(),
            gold_sql: gold.to_string(),
            rewritten_sql: gold.to_string(),
            rules_fired: Vec::new(),
            changed: false,
            changed_by: Vec::new(),
            gold_error: None,
        };
        let (schema, expected) = match (db.schema(), self.run(db, gold)) {
            (Ok(schema), Ok(expected)) => (schema, expected),
            (Err(error), _) => {
                line.gold_error = Some(error.to_string());
                return line;
            }
            (_, Err(error)) => {
                line.gold_error = Some(error);
                return line;
            }
        };
        let input = RewriteInput {
            question,
            schema,
            conn: db.connection(),
        };
        let (sql, fired, changed) = self.outcome(&self.chain, gold, &expected, db, &input);
        line.rewritten_sql = sql;
        line.rules_fired = fired;
        line.changed = changed;
        for (rule, chain) in &self.alone {
            if self.outcome(chain, gold, &expected, db, &input).2 {
                line.changed_by.push(rule.to_string());
            }
        }
        line
    }

    /// The query after `chain`, what fired, and whether the gold answer was lost.
    fn outcome(
        &self,
        chain: &RewriteChain,
        gold: &str,
        expected: &QueryResult,
        db: &ReadOnlyDb,
        input: &RewriteInput<'_>,
    ) -> (String, Vec<String>, bool) {
        let rewritten = chain.apply(gold.to_string(), input);
        let mut fired: Vec<String> = rewritten.fired.iter().map(|r| r.to_string()).collect();
        let check = chain.check(&rewritten.sql, input);
        if let Some((name, _)) = &check {
            fired.push(name.to_string());
        }
        let changed = check.is_some()
            || (rewritten.sql != gold
                && self
                    .run(db, &rewritten.sql)
                    .is_ok_and(|result| results_match(expected, &result, gold_is_ordered(gold)))
                    .not());
        (rewritten.sql, fired, changed)
    }

    fn run(&self, db: &ReadOnlyDb, sql: &str) -> Result<QueryResult, String> {
        let limits = ExecLimits {
            row_limit: AUDIT_ROW_LIMIT,
            timeout: self.timeout,
        };
        db.execute(sql, limits).map_err(|e| e.to_string())
    }
}
