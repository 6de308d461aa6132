//! The evaluation summary as markdown (for `docs/` and pull requests) and as a terminal
//! chart of execution accuracy by database and by hardness level.

use std::fmt::Write;

use crate::core::eval::hardness::Hardness;
use crate::core::eval::{Summary, Tally};

/// What the report says about the run besides the numbers.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunInfo {
    pub config_name: String,
    pub dataset: String,
    pub model: String,
    /// The command that reproduces the run.
    pub command: String,
    /// The commit the binary was built from (`-dirty` with uncommitted changes).
    pub build: String,
    /// The config file the settings came from, or the built-in defaults.
    pub config: String,
}

const BAR_WIDTH: usize = 30;

pub(crate) fn percent(value: f64) -> String {
    format!("{:.1}%", value * 100.0)
}

pub(crate) fn markdown_report(summary: &Summary, info: &RunInfo) -> String {
    let mut out = String::new();
    let overall = &summary.overall;
    let _ = writeln!(out, "# Evaluation: {}\n", info.config_name);
    let _ = writeln!(out, "- data: `{}`", info.dataset);
    let _ = writeln!(out, "- model: `{}`", info.model);
    if !info.build.is_empty() {
        let _ = writeln!(out, "- build: `{}`", info.build);
    }
    if !info.config.is_empty() {
        let _ = writeln!(out, "- config: {}", info.config);
    }
    if !info.command.is_empty() {
        let _ = writeln!(out, "- command: `{}`", info.command);
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "| metric | value |\n|---|---|");
    let _ = writeln!(
        out,
        "| execution accuracy | **{}** ({}/{}) |",
        percent(overall.accuracy()),
        overall.correct,
        overall.questions
    );
    let _ = writeln!(
        out,
        "| valid SQL | {} ({}/{}) |",
        percent(overall.valid_rate()),
        overall.valid,
        overall.questions
    );
    let _ = writeln!(
        out,
        "| repair success (first query failed, final one ran) | {} ({}/{}; {} correct) |",
        percent(summary.repair_success_rate()),
        summary.repaired_valid,
        summary.needed_repair,
        summary.repaired_correct
    );
    let _ = writeln!(
        out,
        "| latency p50 / p95 | {} ms / {} ms |",
        summary.latency_p50_ms, summary.latency_p95_ms
    );
    let _ = writeln!(
        out,
        "| latency p95, not a database's first question | {} ms |",
        summary.latency_p95_later_ms
    );
    if summary.warmups > 0 {
        let _ = writeln!(
            out,
            "| schema prefixes warmed before a database's first question (not in latency) | {} ({} ms in all) |",
            summary.warmups, summary.warmup_total_ms
        );
    }
    let _ = writeln!(
        out,
        "| mean prompt tokens | {:.0} |\n",
        summary.mean_prompt_tokens
    );

    let _ = writeln!(out, "## By hardness\n");
    tally_table(
        &mut out,
        "level",
        Hardness::ALL.iter().filter_map(|h| {
            summary
                .by_hardness
                .get(h)
                .map(|tally| (h.as_str().to_string(), tally))
        }),
    );
    let _ = writeln!(out, "\n## By database\n");
    tally_table(
        &mut out,
        "database",
        summary
            .by_database
            .iter()
            .map(|(db, tally)| (db.clone(), tally)),
    );
    let _ = writeln!(out, "\n## Chart\n\n```text\n{}```", chart(summary));
    out
}

fn tally_table<'a>(out: &mut String, label: &str, rows: impl Iterator<Item = (String, &'a Tally)>) {
    let _ = writeln!(
        out,
        "| {label} | questions | EX | valid |\n|---|---:|---:|---:|"
    );
    for (name, tally) in rows {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} |",
            tally.questions,
            percent(tally.accuracy()),
            percent(tally.valid_rate())
        );
    }
}

/// Horizontal bars of EX, by hardness then by database, for a terminal or a code block.
pub fn chart(summary: &Summary) -> String {
    let mut rows: Vec<(String, &Tally)> = Vec::new();
    for level in Hardness::ALL {
        if let Some(tally) = summary.by_hardness.get(&level) {
            rows.push((level.as_str().to_string(), tally));
        }
    }
    let split = rows.len();
    rows.extend(summary.by_database.iter().map(|(db, t)| (db.clone(), t)));
    let label_width = rows
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = format!("{:<label_width$}  EX by level and database\n", "all",);
    let _ = writeln!(
        out,
        "{:<label_width$}  {} {:>6}  ({}/{})",
        "",
        bar(summary.overall.accuracy()),
        percent(summary.overall.accuracy()),
        summary.overall.correct,
        summary.overall.questions
    );
    for (position, (label, tally)) in rows.iter().enumerate() {
        if position == split {
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "{label:<label_width$}  {} {:>6}  ({}/{})",
            bar(tally.accuracy()),
            percent(tally.accuracy()),
            tally.correct,
            tally.questions
        );
    }
    out
}

fn bar(fraction: f64) -> String {
    const EIGHTHS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    let eighths = (fraction.clamp(0.0, 1.0) * (BAR_WIDTH * 8) as f64).round() as usize;
    let mut text = "█".repeat(eighths / 8);
    if !eighths.is_multiple_of(8) {
        text.push(EIGHTHS[eighths % 8]);
    }
    let used = text.chars().count();
    text.push_str(&"·".repeat(BAR_WIDTH.saturating_sub(used)));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::eval::Prediction;

    #[test]
    fn report_shows_totals_tables_and_bars() {
        let make = |index: usize, db: &str, correct: bool, hardness: Hardness| Prediction {
            warmup_ms: None,
            index,
            db_id: db.into(),
            question: String::new(),
            gold_sql: String::new(),
            predicted_sql: None,
            correct,
            valid: true,
            attempts: 1,
            error: None,
            latency_ms: 1000,
            prompt_tokens: 500,
            tables_sent: vec![],
            hardness,
            rewrites: Vec::new(),
        };
        let summary = Summary::of(&[
            make(0, "pets_1", true, Hardness::Easy),
            make(1, "pets_1", false, Hardness::Hard),
            make(2, "world_1", true, Hardness::Easy),
            make(3, "world_1", true, Hardness::Easy),
        ]);
        let report = markdown_report(
            &summary,
            &RunInfo {
                config_name: "baseline".into(),
                build: "b191988".into(),
                config: "built-in defaults (no config file)".into(),
                ..RunInfo::default()
            },
        );
        assert!(report.contains("- build: `b191988`\n"), "{report}");
        assert!(
            report.contains("- config: built-in defaults (no config file)\n"),
            "{report}"
        );
        assert!(
            report.contains("| execution accuracy | **75.0%** (3/4) |"),
            "{report}"
        );
        assert!(
            report.contains("| easy | 3 | 100.0% | 100.0% |"),
            "{report}"
        );
        assert!(
            report.contains("| pets_1 | 2 | 50.0% | 100.0% |"),
            "{report}"
        );
        let chart = chart(&summary);
        let pets = chart.lines().find(|l| l.starts_with("pets_1")).unwrap();
        assert_eq!(pets.matches('█').count(), 15, "{pets}");
        assert!(pets.ends_with("50.0%  (1/2)"), "{pets}");
    }
}
