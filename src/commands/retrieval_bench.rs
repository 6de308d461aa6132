//! `nano-analyst retrieval-bench`: schema retrieval recall on Spider-format data.
//!
//! For each question the gold tables are those its gold SQL names; strict recall@k is the
//! share of questions whose gold tables are all among the first k ranked tables (join-path
//! tables added by FK closure count as ranked). "Sent" is what the prompt would carry under
//! the budget policy. `--catalog` puts every schema into one index (tables named
//! `db.table`). `--synthetic N` instead times index build and retrieval on a generated
//! N-table schema.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::cli::RetrievalBenchArgs;
use crate::core::db::exec::ReadOnlyDb;
use crate::core::db::guard::referenced_tables;
use crate::core::db::schema::{Column, ForeignKey, Schema, Table};
use crate::core::eval::percentile;
use crate::core::model::Embedder;
use crate::core::retrieval::provider::ContextMode;
use crate::core::retrieval::{
    FusionWeights, RankOptions, RetrievalContext, RetrievalOptions, SchemaIndex, ValueIndex, rank,
};
use crate::error::AppError;
use crate::session::RuntimeOptions;
use crate::session::retrieval::{index_cache_dir, load_embedder};

const MAX_K: usize = 10;

#[derive(Deserialize)]
struct SpiderQuestion {
    db_id: String,
    question: String,
    query: String,
}

#[derive(Deserialize)]
struct SpiderSchema {
    db_id: String,
    table_names_original: Vec<String>,
    column_names_original: Vec<(i64, String)>,
    #[serde(default)]
    foreign_keys: Vec<(usize, usize)>,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub setting: String,
    pub questions: usize,
    pub tables: usize,
    pub vectors: bool,
    /// Strict recall at k = 1..=10, in percent.
    pub recall_at: Vec<f64>,
    pub mean_tables_sent: f64,
    /// Questions whose gold tables were all in what the prompt would carry.
    pub sent_recall: f64,
    pub whole_schema_share: f64,
    pub retrieve_p50_ms: f64,
    pub retrieve_p95_ms: f64,
    pub index_ms: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub misses: Vec<String>,
}

pub fn run(args: &RetrievalBenchArgs, options: &RuntimeOptions) -> Result<(), AppError> {
    let rank_options = rank_options(args)?;
    if let Some(tables) = args.synthetic {
        let report = synthetic(tables, &rank_options)?;
        return print(args, &[report]);
    }
    let (Some(dataset), Some(tables), Some(db_dir)) = (&args.dataset, &args.tables, &args.db_dir)
    else {
        return Err(AppError::Usage(
            "--dataset, --tables and --db-dir are required (or --synthetic N)".into(),
        ));
    };
    let questions: Vec<SpiderQuestion> = read_json(dataset)?;
    let schemas: Vec<SpiderSchema> = read_json(tables)?;
    let questions = questions_in_split(questions, &args.split);
    let mut retrieval_options = options.retrieval;
    retrieval_options.rank = rank_options;
    let use_vectors = !args.no_vectors;
    let cache = index_cache_dir(&options.paths.data_dir);
    let databases = open_databases(&schemas, db_dir)?;
    let embedder = if use_vectors {
        load_embedder(&options.embed_model, options.engine.threads)
            .map(Some)
            .map_err(AppError::Usage)?
    } else {
        None
    };
    let bench = Bench {
        questions: &questions,
        databases: &databases,
        cache: &cache,
        retrieval_options,
        use_vectors,
    };
    let reports = if args.catalog {
        vec![bench.catalog(embedder)?]
    } else {
        bench.per_database(embedder)?
    };
    print(args, &reports)
}

/// `--split even|odd` keeps every other question, so weights tuned on one half can be
/// reported on the other.
fn questions_in_split(questions: Vec<SpiderQuestion>, split: &str) -> Vec<SpiderQuestion> {
    questions
        .into_iter()
        .enumerate()
        .filter(|(i, _)| match split {
            "even" => i % 2 == 0,
            "odd" => i % 2 == 1,
            _ => true,
        })
        .map(|(_, q)| q)
        .collect()
}

/// A Spider database: its id, a read-only connection, and its schema with Spider's keys.
type SpiderDatabase = (String, ReadOnlyDb, Schema);

fn open_databases(
    schemas: &[SpiderSchema],
    db_dir: &Path,
) -> Result<Vec<SpiderDatabase>, AppError> {
    let mut databases = Vec::new();
    for spider in schemas {
        let path = db_dir
            .join(&spider.db_id)
            .join(format!("{}.sqlite", spider.db_id));
        let db = ReadOnlyDb::open(&path)?;
        let mut schema = db.introspect()?;
        add_spider_foreign_keys(&mut schema, spider);
        databases.push((spider.db_id.clone(), db, schema));
    }
    Ok(databases)
}

/// What every setting of the Spider benchmark runs on.
struct Bench<'a> {
    questions: &'a [SpiderQuestion],
    databases: &'a [SpiderDatabase],
    cache: &'a Path,
    retrieval_options: RetrievalOptions,
    use_vectors: bool,
}

impl Bench<'_> {
    /// Every database's tables in one index, each question ranked against all of them.
    fn catalog(&self, embedder: Option<Box<dyn Embedder + Send>>) -> Result<Report, AppError> {
        let mut merged = Schema::default();
        for (db_id, _, schema) in self.databases {
            merged
                .tables
                .extend(schema.tables.iter().map(|t| prefixed(db_id, t)));
        }
        let mut collect = || {
            let mut values = ValueIndex::default();
            let mut offset = 0;
            for (_, db, schema) in self.databases {
                if let Some(conn) = db.connection() {
                    values.collect(conn, schema, offset);
                }
                offset += schema.tables.len();
            }
            values
        };
        let mut context = RetrievalContext::new(
            merged,
            Vec::new(),
            Some(self.cache),
            &mut collect,
            embedder,
            self.retrieval_options,
        )?;
        let items: Vec<(&SpiderQuestion, String)> = self
            .questions
            .iter()
            .map(|q| (q, format!("{}.", q.db_id)))
            .collect();
        Ok(evaluate("catalog", &mut context, &items, self.use_vectors))
    }

    /// A report for each database with questions, then their question-weighted overall.
    /// The one embedder is handed from database to database.
    fn per_database(
        &self,
        mut embedder: Option<Box<dyn Embedder + Send>>,
    ) -> Result<Vec<Report>, AppError> {
        let mut reports = Vec::new();
        for (db_id, db, schema) in self.databases {
            let mut collect = || {
                let mut values = ValueIndex::default();
                if let Some(conn) = db.connection() {
                    values.collect(conn, schema, 0);
                }
                values
            };
            let mut context = RetrievalContext::new(
                schema.clone(),
                Vec::new(),
                Some(self.cache),
                &mut collect,
                embedder.take(),
                self.retrieval_options,
            )?;
            let items: Vec<(&SpiderQuestion, String)> = self
                .questions
                .iter()
                .filter(|q| &q.db_id == db_id)
                .map(|q| (q, String::new()))
                .collect();
            if items.is_empty() {
                embedder = context.take_embedder();
                continue;
            }
            let report = evaluate(db_id, &mut context, &items, self.use_vectors);
            embedder = context.take_embedder();
            reports.push(report);
        }
        let overall = overall_report(&reports);
        reports.push(overall);
        Ok(reports)
    }
}

/// The per-database reports combined, each measure weighted by its questions.
fn overall_report(per_db: &[Report]) -> Report {
    let total: usize = per_db.iter().map(|r| r.questions).sum();
    let weighted = |f: &dyn Fn(&Report) -> f64| {
        per_db
            .iter()
            .map(|r| f(r) * r.questions as f64)
            .sum::<f64>()
            / total.max(1) as f64
    };
    Report {
        setting: "per database".into(),
        questions: total,
        tables: per_db.iter().map(|r| r.tables).sum(),
        vectors: per_db.iter().all(|r| r.vectors),
        recall_at: (0..MAX_K).map(|k| weighted(&|r| r.recall_at[k])).collect(),
        mean_tables_sent: weighted(&|r| r.mean_tables_sent),
        sent_recall: weighted(&|r| r.sent_recall),
        whole_schema_share: weighted(&|r| r.whole_schema_share),
        retrieve_p50_ms: weighted(&|r| r.retrieve_p50_ms),
        retrieve_p95_ms: weighted(&|r| r.retrieve_p95_ms),
        index_ms: per_db.iter().map(|r| r.index_ms).sum(),
        misses: per_db.iter().flat_map(|r| r.misses.clone()).collect(),
    }
}

fn rank_options(args: &RetrievalBenchArgs) -> Result<RankOptions, AppError> {
    let mut options = RankOptions::default();
    if let Some(text) = &args.weights {
        let w: Vec<f32> = text
            .split(',')
            .map(|p| p.trim().parse::<f32>())
            .collect::<Result<_, _>>()
            .map_err(|e| AppError::Usage(format!("--weights '{text}': {e}")))?;
        let [bt, bc, vt, vc, val] = w[..] else {
            return Err(AppError::Usage(format!(
                "--weights '{text}' needs five numbers: bm25-table,bm25-column,vector-table,vector-column,value"
            )));
        };
        options.weights = FusionWeights {
            bm25_table: bt,
            bm25_column: bc,
            vector_table: vt,
            vector_column: vc,
            value: val,
            ..options.weights
        };
    }
    if let Some(k) = args.rrf_k {
        options.weights.rrf_k = k;
    }
    if let Some(top) = args.closure_top {
        options.closure_top = top;
    }
    options.values = !args.no_values;
    Ok(options)
}

fn evaluate(
    setting: &str,
    context: &mut RetrievalContext,
    items: &[(&SpiderQuestion, String)],
    use_vectors: bool,
) -> Report {
    let mut hits = [0usize; MAX_K];
    let mut sent_total = 0usize;
    let mut sent_hits = 0usize;
    let mut whole = 0usize;
    let mut times = Vec::with_capacity(items.len());
    let mut misses = Vec::new();
    for (question, prefix) in items {
        let gold: Vec<String> = referenced_tables(&question.query)
            .into_iter()
            .map(|t| format!("{prefix}{t}").to_lowercase())
            .collect();
        let started = Instant::now();
        let ranking = context.rank(&question.question);
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        let names: Vec<String> = ranking.names().iter().map(|n| n.to_lowercase()).collect();
        for (k, hit) in hits.iter_mut().enumerate() {
            let top = &names[..(k + 1).min(names.len())];
            if gold.iter().all(|g| top.contains(g)) {
                *hit += 1;
            }
        }
        let prompt = context.context_from(&ranking);
        sent_total += prompt.tables_sent.len();
        if prompt.mode == ContextMode::WholeSchema {
            whole += 1;
        }
        let sent: Vec<String> = prompt
            .tables_sent
            .iter()
            .map(|n| n.to_lowercase())
            .collect();
        if gold.iter().all(|g| sent.contains(g)) {
            sent_hits += 1;
        }
        let top3 = &names[..3.min(names.len())];
        if !gold.iter().all(|g| top3.contains(g)) {
            misses.push(format!(
                "{}: {} | gold {:?} | top {:?}",
                question.db_id,
                question.question,
                gold,
                &names[..5.min(names.len())]
            ));
        }
    }
    times.sort_by(f64::total_cmp);
    let n = items.len().max(1) as f64;
    Report {
        setting: setting.to_string(),
        questions: items.len(),
        tables: context.index.table_count(),
        vectors: use_vectors && context.has_vectors(),
        recall_at: hits.iter().map(|h| 100.0 * *h as f64 / n).collect(),
        mean_tables_sent: sent_total as f64 / n,
        sent_recall: 100.0 * sent_hits as f64 / n,
        whole_schema_share: 100.0 * whole as f64 / n,
        retrieve_p50_ms: percentile(&times, 50),
        retrieve_p95_ms: percentile(&times, 95),
        index_ms: context.index.build_ms,
        misses,
    }
}

fn print(args: &RetrievalBenchArgs, reports: &[Report]) -> Result<(), AppError> {
    if args.json {
        let text = serde_json::to_string_pretty(reports).map_err(AppError::json("the report"))?;
        crate::outln!("{text}");
        return Ok(());
    }
    crate::outln!(
        "{:<22} {:>5} {:>6} {:>4}  {:>6} {:>6} {:>6} {:>6} {:>6}  {:>5} {:>6}  {:>7} {:>7} {:>8}",
        "setting",
        "q",
        "tables",
        "vec",
        "R@1",
        "R@2",
        "R@3",
        "R@5",
        "R@10",
        "sent",
        "sentR",
        "p50 ms",
        "p95 ms",
        "index ms"
    );
    for r in reports {
        let at = |k: usize| r.recall_at.get(k - 1).copied().unwrap_or(0.0);
        crate::outln!(
            "{:<22} {:>5} {:>6} {:>4}  {:>6.1} {:>6.1} {:>6.1} {:>6.1} {:>6.1}  {:>5.1} {:>6.1}  {:>7.2} {:>7.2} {:>8}",
            r.setting,
            r.questions,
            r.tables,
            if r.vectors { "yes" } else { "no" },
            at(1),
            at(2),
            at(3),
            at(5),
            at(10),
            r.mean_tables_sent,
            r.sent_recall,
            r.retrieve_p50_ms,
            r.retrieve_p95_ms,
            r.index_ms
        );
    }
    if let Some(last) = reports.last() {
        let all: Vec<String> = last.recall_at.iter().map(|r| format!("{r:.1}")).collect();
        crate::outln!("recall@1..10 ({}): {}", last.setting, all.join(" "));
        for miss in last.misses.iter().take(30) {
            crate::outln!("  miss@3 {miss}");
        }
    }
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, AppError> {
    let shown = path.display();
    let text =
        std::fs::read_to_string(path).map_err(AppError::io(format!("cannot read '{shown}'")))?;
    serde_json::from_str(&text).map_err(|e| AppError::Usage(format!("'{shown}': {e}")))
}

/// Spider declares keys in tables.json that some of its SQLite files do not: add those.
fn add_spider_foreign_keys(schema: &mut Schema, spider: &SpiderSchema) {
    for &(from, to) in &spider.foreign_keys {
        let (Some((from_t, from_c)), Some((to_t, to_c))) = (
            spider.column_names_original.get(from),
            spider.column_names_original.get(to),
        ) else {
            continue;
        };
        let (Some(from_table), Some(to_table)) = (
            usize::try_from(*from_t)
                .ok()
                .and_then(|t| spider.table_names_original.get(t)),
            usize::try_from(*to_t)
                .ok()
                .and_then(|t| spider.table_names_original.get(t)),
        ) else {
            continue;
        };
        let Some(table) = schema
            .tables
            .iter_mut()
            .find(|t| t.name.eq_ignore_ascii_case(from_table))
        else {
            continue;
        };
        let exists = table.foreign_keys.iter().any(|fk| {
            fk.from_column.eq_ignore_ascii_case(from_c)
                && fk.to_table.eq_ignore_ascii_case(to_table)
        });
        if !exists {
            table.foreign_keys.push(ForeignKey {
                from_column: from_c.clone(),
                to_table: to_table.clone(),
                to_column: to_c.clone(),
            });
        }
    }
}

fn prefixed(db_id: &str, table: &Table) -> Table {
    let mut copy = table.clone();
    copy.name = format!("{db_id}.{}", table.name);
    for fk in &mut copy.foreign_keys {
        fk.to_table = format!("{db_id}.{}", fk.to_table);
    }
    copy
}

/// Times index build (BM25 and values, no embeddings, written to a fresh directory) and
/// retrieval on a generated schema of `tables` tables.
fn synthetic(tables: usize, rank_options: &RankOptions) -> Result<Report, AppError> {
    let schema = generated_schema(tables);
    let dir = tempfile::tempdir().map_err(AppError::io("cannot create a temporary directory"))?;
    let started = Instant::now();
    let mut collect = ValueIndex::default;
    let mut index = SchemaIndex::open(&schema, &[], Some(dir.path()), &mut collect)?;
    let build_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let started = Instant::now();
    let reopened = SchemaIndex::open(&schema, &[], Some(dir.path()), &mut collect)?;
    let load_ms = started.elapsed().as_secs_f64() * 1000.0;
    drop(reopened);
    let mut times = Vec::new();
    let mut hits = [0usize; MAX_K];
    let questions = 300;
    for q in 0..questions {
        let target = (q * 7919) % tables;
        let table = &schema.tables[target];
        let column = &table.columns[q % table.columns.len()];
        let question = format!(
            "What is the average {} of each {} in the last year?",
            crate::core::db::ident::identifier_phrase(&column.name),
            crate::core::db::ident::identifier_phrase(&table.name)
        );
        let started = Instant::now();
        let ranking = rank(&mut index, &question, None, &[], rank_options);
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        for (k, hit) in hits.iter_mut().enumerate() {
            if ranking.tables[..=k.min(ranking.tables.len() - 1)]
                .iter()
                .any(|t| t.index == target)
            {
                *hit += 1;
            }
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(Report {
        setting: format!("synthetic (load {load_ms:.1} ms)"),
        questions,
        tables,
        vectors: false,
        recall_at: hits
            .iter()
            .map(|h| 100.0 * *h as f64 / questions as f64)
            .collect(),
        retrieve_p50_ms: percentile(&times, 50),
        retrieve_p95_ms: percentile(&times, 95),
        index_ms: build_ms,
        ..Report::default()
    })
}

const WORDS: &[&str] = &[
    "customer",
    "order",
    "invoice",
    "product",
    "supplier",
    "shipment",
    "warehouse",
    "employee",
    "department",
    "payment",
    "account",
    "ledger",
    "region",
    "store",
    "campaign",
    "contract",
    "vehicle",
    "route",
    "ticket",
    "patient",
    "doctor",
    "visit",
    "claim",
    "policy",
    "sensor",
    "reading",
    "device",
    "firmware",
    "course",
    "student",
    "teacher",
    "grade",
    "book",
    "author",
    "loan",
    "branch",
    "flight",
    "airport",
    "booking",
    "hotel",
    "room",
    "guest",
    "movie",
    "actor",
    "review",
    "rating",
    "project",
    "task",
    "budget",
    "asset",
];
const COLUMN_WORDS: &[&str] = &[
    "name",
    "code",
    "status",
    "amount",
    "price",
    "quantity",
    "created",
    "updated",
    "type",
    "category",
    "description",
    "email",
    "phone",
    "city",
    "country",
    "score",
    "weight",
    "height",
    "duration",
    "level",
    "rank",
    "total",
    "discount",
    "currency",
    "notes",
];

/// A deterministic schema of `tables` tables: two-word names, 6-12 columns, and a key to
/// one or two earlier tables.
pub fn generated_schema(tables: usize) -> Schema {
    let mut out = Vec::with_capacity(tables);
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for t in 0..tables {
        let a = WORDS[(next() % WORDS.len() as u64) as usize];
        let b = WORDS[(next() % WORDS.len() as u64) as usize];
        let name = format!("{a}_{b}_{t}");
        let mut columns = vec![column(&format!("{a}_{b}_id"), "INTEGER", true)];
        let width = 5 + (next() % 7) as usize;
        for _ in 0..width {
            let word = COLUMN_WORDS[(next() % COLUMN_WORDS.len() as u64) as usize];
            let qualifier = WORDS[(next() % WORDS.len() as u64) as usize];
            let column_name = format!("{qualifier}_{word}");
            if columns.iter().all(|c: &Column| c.name != column_name) {
                columns.push(column(&column_name, "TEXT", false));
            }
        }
        let mut foreign_keys = Vec::new();
        for _ in 0..(if t == 0 { 0 } else { 1 + (next() % 2) as usize }) {
            let target: usize = (next() % t as u64) as usize;
            let target_name: &Table = &out[target];
            let from_column = format!("{}_ref", target_name.name);
            columns.push(column(&from_column, "INTEGER", false));
            foreign_keys.push(ForeignKey {
                from_column,
                to_table: target_name.name.clone(),
                to_column: String::new(),
            });
        }
        out.push(Table {
            name,
            is_view: false,
            columns,
            foreign_keys,
            row_count: None,
        });
    }
    Schema {
        tables: out,
        broken: Vec::new(),
    }
}

fn column(name: &str, declared_type: &str, primary_key: bool) -> Column {
    Column {
        name: name.to_string(),
        declared_type: declared_type.to_string(),
        primary_key,
        not_null: primary_key,
        sample_values: Vec::new(),
        distinct_values: None,
    }
}
