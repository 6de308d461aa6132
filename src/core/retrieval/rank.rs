//! Ranking: BM25, vector and value signals fused by weighted reciprocal rank, then
//! foreign-key closure adds the tables on the join path between the top tables.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;

use crate::core::model::cosine;
use crate::core::retrieval::documents::mentions;
use crate::core::retrieval::index::{SchemaIndex, Vectors};
use crate::core::retrieval::provider::GlossaryEntry;
use crate::core::retrieval::tokenizer::{analyzer, terms};

/// Weights of each ranked list in the fusion: score = sum of weight / (rrf_k + rank).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FusionWeights {
    pub rrf_k: f32,
    pub bm25_table: f32,
    pub bm25_column: f32,
    pub vector_table: f32,
    pub vector_column: f32,
    pub value: f32,
    pub glossary: f32,
}

impl Default for FusionWeights {
    /// Every list counts the same; measured against the alternatives in the README
    /// ("Schema retrieval").
    fn default() -> Self {
        Self {
            rrf_k: 5.0,
            bm25_table: 1.0,
            bm25_column: 1.0,
            vector_table: 1.0,
            vector_column: 1.0,
            value: 1.0,
            glossary: 2.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RankOptions {
    pub weights: FusionWeights,
    /// Tables among the first this many whose join paths are added (0: no closure).
    pub closure_top: usize,
    /// Most intermediate tables on one added join path.
    pub max_bridge: usize,
    pub values: bool,
}

impl Default for RankOptions {
    fn default() -> Self {
        Self {
            weights: FusionWeights::default(),
            closure_top: 3,
            max_bridge: 2,
            values: true,
        }
    }
}

/// Why a table or column was chosen.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "signal", rename_all = "kebab-case")]
pub enum Reason {
    Bm25 { score: f32 },
    Vector { score: f32 },
    Value { column: String, value: String },
    FkClosure { between: [String; 2] },
    Glossary { term: String },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Bm25 { score } => write!(f, "bm25 {score:.2}"),
            Reason::Vector { score } => write!(f, "vector {score:.2}"),
            Reason::Value { column, value } => write!(f, "value '{value}' in {column}"),
            Reason::FkClosure { between } => {
                write!(f, "fk-closure {} <-> {}", between[0], between[1])
            }
            Reason::Glossary { term } => write!(f, "glossary '{term}'"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankedColumn {
    pub name: String,
    pub score: f32,
    pub reasons: Vec<Reason>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankedTable {
    #[serde(skip)]
    pub index: usize,
    pub name: String,
    pub score: f32,
    pub reasons: Vec<Reason>,
    pub columns: Vec<RankedColumn>,
}

impl RankedTable {
    /// "Track: bm25 3.10, vector 0.52" — for the prompt pane and `PromptContext.reasons`.
    pub fn describe(&self) -> String {
        if self.reasons.is_empty() {
            return format!("{}: no signal", self.name);
        }
        let reasons: Vec<String> = self.reasons.iter().map(ToString::to_string).collect();
        format!("{}: {}", self.name, reasons.join(", "))
    }
}

/// Every table of the index, best first (tables without any signal last, in schema order).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranking {
    pub tables: Vec<RankedTable>,
    #[serde(skip)]
    pub glossary: Vec<GlossaryEntry>,
    pub vectors_used: bool,
}

impl Ranking {
    pub fn names(&self) -> Vec<String> {
        self.tables.iter().map(|t| t.name.clone()).collect()
    }
}

/// Per-table scores of one signal, kept with the best column behind each.
#[derive(Default)]
struct Signal {
    scores: HashMap<usize, f32>,
}

impl Signal {
    fn offer(&mut self, table: usize, score: f32) {
        if score <= 0.0 {
            return;
        }
        let entry = self.scores.entry(table).or_insert(score);
        if score > *entry {
            *entry = score;
        }
    }

    /// Tables best first; ties by schema order.
    fn ranked(&self) -> Vec<(usize, f32)> {
        let mut list: Vec<(usize, f32)> = self.scores.iter().map(|(t, s)| (*t, *s)).collect();
        list.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        list
    }
}

/// Ranks every table of `index` for `question`.
pub fn rank(
    index: &mut SchemaIndex,
    question: &str,
    question_vector: Option<&[f32]>,
    glossary: &[GlossaryEntry],
    options: &RankOptions,
) -> Ranking {
    let n = index.table_count();
    let mut signals = Signals::default();
    signals.add_bm25(index, question);
    let vectors = index.vectors.as_ref().zip(question_vector);
    if let Some((vectors, query)) = vectors {
        signals.add_vectors(index, vectors, query);
    }
    if options.values {
        signals.add_values(index, question);
    }
    let matched_glossary = matching_glossary(glossary, question);
    signals.add_glossary(index, &matched_glossary);

    let fused = signals.fuse(&options.weights, n);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|a, b| fused[*b].total_cmp(&fused[*a]).then(a.cmp(b)));

    let mut closure_reasons: HashMap<usize, Reason> = HashMap::new();
    let final_order = close_over_foreign_keys(index, &order, options, &mut closure_reasons);
    let tables = signals.into_tables(index, final_order, &fused, closure_reasons);
    Ranking {
        tables,
        glossary: matched_glossary,
        vectors_used: vectors.is_some(),
    }
}

/// Every signal's per-table scores for one question, with the reasons behind them.
#[derive(Default)]
struct Signals {
    bm25_table: Signal,
    bm25_column: Signal,
    vector_table: Signal,
    vector_column: Signal,
    value: Signal,
    glossary: Signal,
    value_reasons: HashMap<usize, Vec<Reason>>,
    glossary_reasons: HashMap<usize, Vec<Reason>>,
    /// Score and reasons of each (table, column) a signal found, which orders the columns
    /// shown under a table.
    columns: HashMap<(usize, usize), (f32, Vec<Reason>)>,
}

impl Signals {
    fn add_bm25(&mut self, index: &mut SchemaIndex, question: &str) {
        let query_terms = index.query_terms(question);
        let limit = index.table_count().clamp(1, 200);
        for (t, score) in index.search_tables(&query_terms, limit) {
            self.bm25_table.offer(t, score);
        }
        for (t, c, score) in index.search_columns(&query_terms, limit * 2) {
            self.bm25_column.offer(t, score);
            let entry = self.columns.entry((t, c)).or_default();
            entry.0 += score / 10.0;
            entry.1.push(Reason::Bm25 { score });
        }
    }

    fn add_vectors(&mut self, index: &SchemaIndex, vectors: &Vectors, query: &[f32]) {
        for t in 0..index.table_count() {
            self.vector_table.offer(t, cosine(vectors.table(t), query));
        }
        for (i, &(t, c)) in index.column_refs.iter().enumerate() {
            let similarity = cosine(vectors.column(i), query);
            self.vector_column.offer(t, similarity);
            if similarity > 0.35 {
                let entry = self.columns.entry((t, c)).or_default();
                entry.0 += similarity;
                entry.1.push(Reason::Vector { score: similarity });
            }
        }
    }

    fn add_values(&mut self, index: &SchemaIndex, question: &str) {
        let n = index.table_count();
        for found in index.values.find(question) {
            if found.table >= n {
                continue;
            }
            self.value.offer(found.table, found.score);
            let column = column_name(index, found.table, found.column);
            let reason = Reason::Value {
                column: column.clone(),
                value: found.value.clone(),
            };
            let reasons = self.value_reasons.entry(found.table).or_default();
            if !reasons.contains(&reason) {
                reasons.push(reason.clone());
            }
            let entry = self.columns.entry((found.table, found.column)).or_default();
            entry.0 += 1.0 + found.score;
            entry.1.push(reason);
        }
    }

    fn add_glossary(&mut self, index: &SchemaIndex, matched: &[GlossaryEntry]) {
        for entry in matched {
            for (t, doc) in index.documents.tables.iter().enumerate() {
                if mentions(&entry.definition, &doc.name) || mentions(&entry.term, &doc.name) {
                    self.glossary.offer(t, 1.0);
                    self.glossary_reasons
                        .entry(t)
                        .or_default()
                        .push(Reason::Glossary {
                            term: entry.term.clone(),
                        });
                }
            }
        }
    }

    /// Each table's weighted reciprocal-rank score over the signals; `n` tables.
    fn fuse(&self, weights: &FusionWeights, n: usize) -> Vec<f32> {
        let w = weights;
        let mut fused = vec![0.0f32; n];
        for (signal, weight) in [
            (&self.bm25_table, w.bm25_table),
            (&self.bm25_column, w.bm25_column),
            (&self.vector_table, w.vector_table),
            (&self.vector_column, w.vector_column),
            (&self.value, w.value),
            (&self.glossary, w.glossary),
        ] {
            if weight == 0.0 {
                continue;
            }
            for (rank, (t, _)) in signal.ranked().into_iter().enumerate() {
                fused[t] += weight / (w.rrf_k + rank as f32 + 1.0);
            }
        }
        fused
    }

    /// The ranked tables in `order`, each with its reasons and best columns.
    fn into_tables(
        mut self,
        index: &SchemaIndex,
        order: Vec<usize>,
        fused: &[f32],
        mut closure_reasons: HashMap<usize, Reason>,
    ) -> Vec<RankedTable> {
        let mut columns_by_table: HashMap<usize, Vec<(usize, f32, Vec<Reason>)>> = HashMap::new();
        for ((t, c), (score, reasons)) in std::mem::take(&mut self.columns) {
            columns_by_table
                .entry(t)
                .or_default()
                .push((c, score, reasons));
        }
        order
            .into_iter()
            .map(|t| {
                let mut reasons = self.take_table_reasons(t);
                if let Some(reason) = closure_reasons.remove(&t) {
                    reasons.push(reason);
                }
                RankedTable {
                    index: t,
                    name: index.documents.tables[t].name.clone(),
                    score: fused[t],
                    reasons,
                    columns: ranked_columns(
                        index,
                        t,
                        columns_by_table.remove(&t).unwrap_or_default(),
                    ),
                }
            })
            .collect()
    }

    /// Table `t`'s reasons: its best BM25 and vector scores (table or column), then its
    /// values and glossary terms.
    fn take_table_reasons(&mut self, t: usize) -> Vec<Reason> {
        let mut reasons = Vec::new();
        let bm25 = max_of(
            self.bm25_table.scores.get(&t).copied(),
            self.bm25_column.scores.get(&t).copied(),
        );
        if let Some(score) = bm25 {
            reasons.push(Reason::Bm25 { score });
        }
        let vector = max_of(
            self.vector_table.scores.get(&t).copied(),
            self.vector_column.scores.get(&t).copied(),
        );
        if let Some(score) = vector {
            reasons.push(Reason::Vector { score });
        }
        reasons.extend(self.value_reasons.remove(&t).unwrap_or_default());
        reasons.extend(self.glossary_reasons.remove(&t).unwrap_or_default());
        reasons
    }
}

/// Walks the fused order; after each of the first `closure_top` tables, adds the tables on
/// the shortest foreign-key path to every earlier one of them (at most `max_bridge` hops
/// between), so the join path is never missing.
fn close_over_foreign_keys(
    index: &SchemaIndex,
    order: &[usize],
    options: &RankOptions,
    reasons: &mut HashMap<usize, Reason>,
) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::with_capacity(order.len());
    let mut placed = vec![false; order.len()];
    let anchors: Vec<usize> = order.iter().copied().take(options.closure_top).collect();
    for (position, &t) in order.iter().enumerate() {
        if !placed[t] {
            placed[t] = true;
            out.push(t);
        }
        if position >= options.closure_top {
            continue;
        }
        for &earlier in &anchors[..position] {
            let Some(path) = shortest_path(&index.neighbours, earlier, t, options.max_bridge + 1)
            else {
                continue;
            };
            for &bridge in &path[1..path.len() - 1] {
                if !placed[bridge] {
                    placed[bridge] = true;
                    out.push(bridge);
                    reasons.insert(
                        bridge,
                        Reason::FkClosure {
                            between: [
                                index.documents.tables[earlier].name.clone(),
                                index.documents.tables[t].name.clone(),
                            ],
                        },
                    );
                }
            }
        }
    }
    out
}

/// Breadth-first search over the foreign-key graph; `None` when the tables are not joined
/// within `max_edges`.
fn shortest_path(
    neighbours: &[Vec<usize>],
    from: usize,
    to: usize,
    max_edges: usize,
) -> Option<Vec<usize>> {
    if from == to {
        return None;
    }
    let mut previous: HashMap<usize, usize> = HashMap::new();
    let mut queue = VecDeque::from([(from, 0usize)]);
    previous.insert(from, from);
    while let Some((node, depth)) = queue.pop_front() {
        if node == to {
            let mut path = vec![to];
            let mut current = to;
            while current != from {
                current = previous[&current];
                path.push(current);
            }
            path.reverse();
            return Some(path);
        }
        if depth == max_edges {
            continue;
        }
        for &next in &neighbours[node] {
            if let std::collections::hash_map::Entry::Vacant(slot) = previous.entry(next) {
                slot.insert(node);
                queue.push_back((next, depth + 1));
            }
        }
    }
    None
}

fn column_name(index: &SchemaIndex, table: usize, column: usize) -> String {
    index
        .column_doc(table, column)
        .map(|c| c.name.clone())
        .unwrap_or_default()
}

/// The table's columns that matched, best first (at most five).
fn ranked_columns(
    index: &SchemaIndex,
    table: usize,
    scores: Vec<(usize, f32, Vec<Reason>)>,
) -> Vec<RankedColumn> {
    let mut columns: Vec<RankedColumn> = scores
        .into_iter()
        .map(|(c, score, reasons)| RankedColumn {
            name: column_name(index, table, c),
            score,
            reasons,
        })
        .collect();
    columns.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.name.cmp(&b.name)));
    columns.truncate(5);
    columns
}

/// Glossary entries whose term's words all occur in the question.
pub(crate) fn matching_glossary(glossary: &[GlossaryEntry], question: &str) -> Vec<GlossaryEntry> {
    if glossary.is_empty() {
        return Vec::new();
    }
    let mut analyzer = analyzer();
    let question_terms = terms(&mut analyzer, question);
    glossary
        .iter()
        .filter(|entry| {
            let wanted = terms(&mut analyzer, &entry.term);
            !wanted.is_empty() && wanted.iter().all(|w| question_terms.contains(w))
        })
        .cloned()
        .collect()
}

fn max_of(a: Option<f32>, b: Option<f32>) -> Option<f32> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}
