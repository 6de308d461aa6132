//! `nano-analyst schema DB "QUESTION" [--json] [--k N]`: the ranked tables and columns
//! retrieval finds for a question, with their scores and why each matched.

use std::io::IsTerminal;
use std::time::Instant;

use serde::Serialize;

use crate::cli::SchemaArgs;
use crate::core::db::exec::ReadOnlyDb;
use crate::core::db::schema::BrokenObject;
use crate::core::retrieval::provider::ContextMode;
use crate::core::retrieval::{IndexOrigin, RankedTable};
use crate::error::AppError;
use crate::session::RuntimeOptions;
use crate::session::retrieval::open_retrieval_with_progress;

#[derive(Serialize)]
struct SchemaJson<'a> {
    question: &'a str,
    mode: ContextMode,
    tables_sent: &'a [String],
    vectors: bool,
    note: Option<&'a str>,
    index: IndexOrigin,
    index_ms: u64,
    retrieve_ms: f64,
    tables: &'a [RankedTable],
    glossary: Vec<GlossaryJson<'a>>,
    /// Tables and views SQLite cannot read, left out of retrieval and the prompt.
    broken: &'a [BrokenObject],
}

#[derive(Serialize)]
struct GlossaryJson<'a> {
    term: &'a str,
    definition: &'a str,
}

pub fn run(args: &SchemaArgs, options: &RuntimeOptions) -> Result<(), AppError> {
    if args.question.trim().is_empty() {
        return Err(AppError::Usage("the question is empty".into()));
    }
    let db = ReadOnlyDb::open(&args.database)?;
    let schema = db.askable_schema()?;
    let bar = IndexBar::default();
    let mut progress = |embedded: usize, total: usize| bar.update(embedded, total);
    let mut retrieval = open_retrieval_with_progress(&db, &schema, options, true, &mut progress)?;
    bar.finish();
    let started = Instant::now();
    let ranking = retrieval.rank(&args.question);
    let retrieve_ms = started.elapsed().as_secs_f64() * 1000.0;
    let context = retrieval.context_from(&ranking);
    let shown = &ranking.tables[..args.k.min(ranking.tables.len())];
    if args.json {
        let json = SchemaJson {
            question: &args.question,
            mode: context.mode,
            tables_sent: &context.tables_sent,
            vectors: ranking.vectors_used,
            note: retrieval.note.as_deref(),
            index: retrieval.index.origin,
            index_ms: retrieval.index.build_ms,
            retrieve_ms,
            tables: shown,
            glossary: ranking
                .glossary
                .iter()
                .map(|e| GlossaryJson {
                    term: &e.term,
                    definition: &e.definition,
                })
                .collect(),
            broken: &schema.broken,
        };
        let text = serde_json::to_string_pretty(&json).map_err(AppError::json("the result"))?;
        crate::outln!("{text}");
        return Ok(());
    }
    if let Some(note) = &retrieval.note {
        crate::errln!("nano-analyst: {note}");
    }
    let mode = match context.mode {
        ContextMode::WholeSchema => format!(
            "whole schema ({} tables fit the {}-token budget)",
            context.tables_sent.len(),
            retrieval.options().budget_tokens
        ),
        ContextMode::Subset => format!(
            "subset: {} of {} tables",
            context.tables_sent.len(),
            ranking.tables.len()
        ),
    };
    crate::outln!("prompt: {mode}; retrieval {retrieve_ms:.1} ms");
    for (position, table) in shown.iter().enumerate() {
        let reasons: Vec<String> = table.reasons.iter().map(ToString::to_string).collect();
        crate::outln!(
            "{:>2}. {}  {:.4}  [{}]",
            position + 1,
            table.name,
            table.score,
            if reasons.is_empty() {
                "no signal".to_string()
            } else {
                reasons.join("; ")
            }
        );
        for column in &table.columns {
            let reasons: Vec<String> = column.reasons.iter().map(ToString::to_string).collect();
            crate::outln!("      .{}  [{}]", column.name, reasons.join("; "));
        }
    }
    for entry in &ranking.glossary {
        crate::outln!("glossary: {} = {}", entry.term, entry.definition);
    }
    for broken in &schema.broken {
        println!("left out: {broken}");
    }
    Ok(())
}

/// Shows how far the first index build of a database has come: a bar on a terminal, one
/// line otherwise (a 2,000-table catalog takes a while, and silence reads as a hang).
struct IndexBar {
    bar: indicatif::ProgressBar,
}

impl Default for IndexBar {
    fn default() -> Self {
        Self {
            bar: indicatif::ProgressBar::hidden(),
        }
    }
}

impl IndexBar {
    fn update(&self, embedded: usize, total: usize) {
        if embedded == 0 {
            self.start(total);
        }
        self.bar.set_position(embedded as u64);
    }

    fn start(&self, total: usize) {
        if !std::io::stderr().is_terminal() {
            crate::errln!(
                "nano-analyst: indexing the schema: {total} names to embed (the first time only)"
            );
            return;
        }
        self.bar
            .set_draw_target(indicatif::ProgressDrawTarget::stderr());
        self.bar.set_length(total as u64);
        self.bar
            .set_message("indexing the schema (the first time only)");
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg}: {pos}/{len} names embedded [{elapsed_precise}, about {eta} left]",
        ) {
            self.bar.set_style(style);
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
