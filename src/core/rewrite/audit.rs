//! The gold audit: every rewrite, alone and as the configured chain, run over correct
//! (gold) queries. A rewrite that changes the result of a right query makes a right answer
//! wrong; a check that fires on one sends a right query back for repair (a false alarm,
//! unless the gold query is itself broken, as Spider's few `ON T2.id = T2.id` joins are).
//! Both are listed with the rule that did it, apart, since only the first changes an
//! answer.

use std::ops::Not;
use std::time::Duration;

use serde::Serialize;

use crate::core::db::compare::{gold_is_ordered, results_match};
use crate::core::db::exec::{ExecLimits, QueryResult, ReadOnlyDb};
use crate::core::rewrite::closest_values::{looks_empty, unheld_values};
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
    /// The chain's rewrites changed the gold result.
    pub changed: bool,
    /// The configured check that would send the gold query back for repair.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_back_by: Option<String>,
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
        "drop_join_for_shared_column" => settings.drop_join_for_shared_column = true,
        "intersect_both_values" => settings.intersect_both_values = true,
        "ground_literals" => settings.ground_literals = true,
        "lookup_through_keys" => {
            settings.ground_literals = true;
            settings.lookup_through_keys = true;
        }
        "filter_named_flags" => settings.filter_named_flags = true,
        "group_by_entity_key" => settings.group_by_entity_key = true,
        "show_group_columns" => settings.show_group_columns = true,
        "group_by_key_alone" => settings.group_by_key_alone = true,
        "exclude_negated_match" => settings.exclude_negated_match = true,
        "order_by_stored_count" => settings.order_by_stored_count = true,
        "join_counted_table" => settings.join_counted_table = true,
        "count_named_table" => settings.count_named_table = true,
        "filter_unmatched_in_join" => settings.filter_unmatched_in_join = true,
        "compare_year_of_date" => settings.compare_year_of_date = true,
        "drop_order_only_columns" => settings.drop_order_only_columns = true,
        "name_aggregated_column" => settings.name_aggregated_column = true,
        "order_by_extremum" => settings.order_by_extremum = true,
        "check_join_conditions" => settings.check_join_conditions = true,
        "check_join_keys" => settings.check_join_keys = true,
        "closest_values" => settings.closest_values = true,
        _ => return None,
    }
    Some(settings)
}

/// Every rule the audit runs alone, in the chain's order.
pub(crate) const RULES: [&str; 22] = [
    "drop_unnamed_flags",
    "drop_join_for_shared_column",
    "drop_unused_joins",
    "intersect_both_values",
    "compare_year_of_date",
    "ground_literals",
    "lookup_through_keys",
    "filter_unmatched_in_join",
    "exclude_negated_match",
    "order_by_stored_count",
    "join_counted_table",
    "count_named_table",
    "filter_named_flags",
    "group_by_entity_key",
    "show_group_columns",
    "group_by_key_alone",
    "drop_order_only_columns",
    "name_aggregated_column",
    "order_by_extremum",
    "check_join_conditions",
    "check_join_keys",
    "closest_values",
];

struct ChainOutcome {
    sql: String,
    fired: Vec<String>,
    changed: bool,
    sent_back_by: Option<String>,
}

/// A chain and whether a query that finds nothing is sent back with the closest values
/// (a step of the repair loop, not of the chain).
struct Audited {
    chain: RewriteChain,
    closest_values: bool,
}

impl Audited {
    fn new(settings: &RewriteSettings) -> Self {
        Self {
            chain: RewriteChain::from_settings(settings),
            closest_values: settings.closest_values,
        }
    }
}

/// One gold query on its database, through `chain` and through each rule alone.
pub struct Auditor {
    chain: Audited,
    alone: Vec<(&'static str, Audited)>,
    timeout: Duration,
}

impl Auditor {
    pub fn new(settings: &RewriteSettings, timeout: Duration) -> Self {
        let alone = RULES
            .iter()
            .filter_map(|rule| Some((*rule, Audited::new(&only(rule)?))))
            .collect();
        Self {
            chain: Audited::new(settings),
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
            sent_back_by: None,
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
            dialect: db.dialect(),
        };
        let outcome = self.outcome(&self.chain, gold, &expected, db, &input);
        line.rewritten_sql = outcome.sql;
        line.rules_fired = outcome.fired;
        line.changed = outcome.changed;
        line.sent_back_by = outcome.sent_back_by;
        for (rule, chain) in &self.alone {
            let alone = self.outcome(chain, gold, &expected, db, &input);
            if alone.changed || alone.sent_back_by.is_some() {
                line.changed_by.push(rule.to_string());
            }
        }
        line
    }

    /// The query after `chain`, what fired, whether the gold answer was lost, and the
    /// check that would send the query back.
    fn outcome(
        &self,
        audited: &Audited,
        gold: &str,
        expected: &QueryResult,
        db: &ReadOnlyDb,
        input: &RewriteInput<'_>,
    ) -> ChainOutcome {
        let chain = &audited.chain;
        let rewritten = chain.apply(gold.to_string(), input);
        let mut fired: Vec<String> = rewritten.fired.iter().map(|r| r.to_string()).collect();
        let sent_back_by = chain
            .check(&rewritten.sql, input)
            .map(|(name, _)| name.to_string())
            .or_else(|| {
                let finds_nothing = audited.closest_values
                    && self.run(db, &rewritten.sql).is_ok_and(|r| looks_empty(&r));
                (finds_nothing
                    && input.conn.is_some_and(|conn| {
                        !unheld_values(&rewritten.sql, input.schema, conn).is_empty()
                    }))
                .then(|| "closest_values".to_string())
            });
        fired.extend(sent_back_by.clone());
        let changed = rewritten.sql != gold
            && self
                .run(db, &rewritten.sql)
                .is_ok_and(|result| results_match(expected, &result, gold_is_ordered(gold)))
                .not();
        ChainOutcome {
            sql: rewritten.sql,
            fired,
            changed,
            sent_back_by,
        }
    }

    fn run(&self, db: &ReadOnlyDb, sql: &str) -> Result<QueryResult, String> {
        let limits = ExecLimits {
            row_limit: AUDIT_ROW_LIMIT,
            timeout: self.timeout,
            ..ExecLimits::default()
        };
        db.execute(sql, limits).map_err(|e| e.to_string())
    }
}
