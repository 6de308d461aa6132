//! `nano-analyst rewrites audit`: the configured rewrite chain, and each rule alone, over
//! the gold queries of a data set; every gold result a rule changes is listed with the rule.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use crate::cli::AuditArgs;
use crate::commands::eval::database_source;
use crate::core::db::exec::ReadOnlyDb;
use crate::core::eval::load_dataset;
use crate::core::rewrite::audit::{AuditLine, Auditor, RULES};
use crate::error::AppError;
use crate::session::RuntimeOptions;

/// Returns whether the configured chain left every gold result as it was.
pub fn audit(args: &AuditArgs, options: &RuntimeOptions) -> Result<bool, AppError> {
    let (source, default_db_id) = database_source(args.db.as_deref(), args.db_dir.as_deref())?;
    let mut items = load_dataset(&args.dataset, &default_db_id)?;
    items.truncate(args.limit.unwrap_or(usize::MAX));
    let auditor = Auditor::new(&options.pipeline.rewrites, options.pipeline.limits.timeout);
    let mut lines = Vec::with_capacity(items.len());
    let mut open: Option<(String, ReadOnlyDb)> = None;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for item in &items {
        if open.as_ref().is_none_or(|(id, _)| *id != item.db_id) {
            open = Some((
                item.db_id.clone(),
                ReadOnlyDb::open(&source.path_for(&item.db_id))?,
            ));
        }
        let Some((_, db)) = open.as_ref() else {
            continue;
        };
        let line = auditor.audit(db, &item.db_id, &item.question, &item.gold_sql);
        if args.json {
            let text = serde_json::to_string(&line).map_err(AppError::json("an audit line"))?;
            writeln!(out, "{}", super::terminal::visible(&text))
                .map_err(AppError::io("cannot write the report"))?;
        }
        lines.push(line);
    }
    if !args.json {
        print_summary(&lines, &args.dataset);
    }
    Ok(lines.iter().all(|line| !line.changed))
}

fn print_summary(lines: &[AuditLine], dataset: &Path) {
    let audited: Vec<&AuditLine> = lines.iter().filter(|l| l.gold_error.is_none()).collect();
    let skipped = lines.len() - audited.len();
    crate::outln!(
        "{}: {} gold queries audited ({skipped} do not run here and were skipped)",
        dataset.display(),
        audited.len()
    );
    let mut fired: BTreeMap<&str, usize> = BTreeMap::new();
    let mut changed_alone: BTreeMap<&str, usize> = BTreeMap::new();
    for line in &audited {
        for rule in &line.rules_fired {
            *fired.entry(rule.as_str()).or_default() += 1;
        }
        for rule in &line.changed_by {
            *changed_alone.entry(rule.as_str()).or_default() += 1;
        }
    }
    crate::outln!(
        "{:<24} {:>14} {:>22}",
        "rule",
        "fired (chain)",
        "gold changed (alone)"
    );
    for rule in std::iter::once("quote_names").chain(RULES) {
        crate::outln!(
            "{rule:<24} {:>14} {:>22}",
            fired.get(rule).copied().unwrap_or(0),
            changed_alone.get(rule).copied().unwrap_or(0)
        );
    }
    let changed: Vec<&&AuditLine> = audited.iter().filter(|l| l.changed).collect();
    crate::outln!(
        "gold results changed by the configured chain: {}",
        changed.len()
    );
    for line in changed {
        crate::outln!(
            "- [{}] {} (rules: {}; alone: {})\n    gold: {}\n    now:  {}",
            line.db_id,
            line.question,
            line.rules_fired.join(", "),
            line.changed_by.join(", "),
            one_line(&line.gold_sql),
            one_line(&line.rewritten_sql)
        );
    }
    let sent_back: Vec<&&AuditLine> = audited
        .iter()
        .filter(|l| l.sent_back_by.is_some())
        .collect();
    crate::outln!(
        "gold queries a configured check sends back for repair: {}",
        sent_back.len()
    );
    for line in sent_back {
        crate::outln!(
            "- [{}] {} ({})\n    gold: {}",
            line.db_id,
            line.question,
            line.sent_back_by.as_deref().unwrap_or_default(),
            one_line(&line.gold_sql)
        );
    }
}

fn one_line(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}
