//! Schema retrieval against real data: Chinook, throwaway databases in temp dirs, and the
//! real embedding model checked against a reference computed once with numpy
//! (scripts/embedder-reference.py).

use std::path::Path;

use nano_analyst::core::db::exec::ReadOnlyDb;
use nano_analyst::core::model::{Embedder, cosine};
use nano_analyst::core::pipeline::{PipelineConfig, run_question};
use nano_analyst::core::retrieval::provider::GlossaryEntry;
use nano_analyst::core::retrieval::provider::{ContextMode, ContextProvider};
use nano_analyst::core::retrieval::{
    IndexOrigin, Reason, RetrievalContext, RetrievalOptions, ValueIndex,
};
use nano_analyst::llm::embedder::LlamaEmbedder;
use rusqlite::Connection;

use crate::support::{
    chinook_path, default_pipeline, embed_model_path, engine, model_lock, run_sql,
};

fn retrieval_for(
    database: &Path,
    cache: &Path,
    glossary: Vec<GlossaryEntry>,
    options: RetrievalOptions,
) -> RetrievalContext {
    let db = ReadOnlyDb::open(database).expect("database opens");
    let schema = db.introspect().expect("schema");
    let mut collect = || {
        let mut values = ValueIndex::default();
        values.collect(db.connection().unwrap(), &schema, 0);
        values
    };
    RetrievalContext::new(
        schema.clone(),
        glossary,
        Some(cache),
        &mut collect,
        None,
        options,
    )
    .expect("index builds")
}

fn chinook(cache: &Path) -> RetrievalContext {
    retrieval_for(
        &chinook_path(),
        cache,
        Vec::new(),
        RetrievalOptions::default(),
    )
}

fn position(names: &[String], table: &str) -> Option<usize> {
    names.iter().position(|n| n.eq_ignore_ascii_case(table))
}

#[test]
fn split_identifiers_meet_the_words_of_a_question() {
    let cache = tempfile::tempdir().unwrap();
    let mut retrieval = chinook(cache.path());
    let ranking = retrieval.rank("total of unit price times quantity over all invoice lines");
    assert_eq!(
        ranking.tables[0].name,
        "InvoiceLine",
        "{:?}",
        ranking.names()
    );
    let columns: Vec<&str> = ranking.tables[0]
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert!(columns.contains(&"UnitPrice"), "{columns:?}");
    let ranking = retrieval.rank("Which media types are there?");
    assert_eq!(ranking.tables[0].name, "MediaType");
}

#[test]
fn a_value_in_the_question_pulls_its_table_in() {
    let cache = tempfile::tempdir().unwrap();
    let mut retrieval = chinook(cache.path());
    // Nothing in the question names a table or column: only the value finds Artist.
    let ranking = retrieval.rank("Show everything released by AC/DC");
    let artist = &ranking.tables[0];
    assert_eq!(artist.name, "Artist", "{:?}", ranking.names());
    assert!(
        artist.reasons.contains(&Reason::Value {
            column: "Name".into(),
            value: "ac dc".into()
        }),
        "{:?}",
        artist.reasons
    );
    let ranking = retrieval.rank("How much did people from Brazil spend?");
    let top3 = &ranking.names()[..3];
    assert!(
        position(top3, "Customer").is_some() || position(top3, "Invoice").is_some(),
        "{top3:?}"
    );
}

#[test]
fn foreign_key_closure_adds_the_bridge_table() {
    let cache = tempfile::tempdir().unwrap();
    let mut retrieval = chinook(cache.path());
    let ranking = retrieval.rank("List the tracks of the artist AC/DC");
    let names = ranking.names();
    let album = position(&names, "Album").expect("Album ranked");
    assert!(album < 3, "Album should follow Artist and Track: {names:?}");
    assert!(
        ranking.tables[album]
            .reasons
            .iter()
            .any(|r| matches!(r, Reason::FkClosure { between } if between.contains(&"Artist".to_string()) && between.contains(&"Track".to_string()))),
        "{:?}",
        ranking.tables[album].reasons
    );
    assert!(position(&names[..3], "Artist").is_some() && position(&names[..3], "Track").is_some());
}

#[test]
fn a_changed_schema_is_reindexed_and_an_unchanged_one_loads_from_cache() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("shop.db");
    let cache = dir.path().join("index");
    let conn = Connection::open(&db_path).unwrap();
    conn.execute_batch(
        "CREATE TABLE member (id INTEGER PRIMARY KEY, full_name TEXT);
         CREATE TABLE purchase (id INTEGER PRIMARY KEY, member_id INTEGER REFERENCES member(id), amount REAL);
         INSERT INTO member(full_name) VALUES ('Ada'), ('Grace');",
    )
    .unwrap();
    let first = retrieval_for(&db_path, &cache, Vec::new(), RetrievalOptions::default());
    assert_eq!(first.index.origin, IndexOrigin::Built);
    drop(first);
    let again = retrieval_for(&db_path, &cache, Vec::new(), RetrievalOptions::default());
    assert_eq!(again.index.origin, IndexOrigin::LoadedFromCache);
    assert!(
        again.index.build_ms < 1000,
        "cache load took {} ms",
        again.index.build_ms
    );
    drop(again);

    conn.execute_batch("ALTER TABLE member ADD COLUMN loyalty_points INTEGER;")
        .unwrap();
    let mut changed = retrieval_for(&db_path, &cache, Vec::new(), RetrievalOptions::default());
    assert_eq!(changed.index.origin, IndexOrigin::Built);
    let ranking = changed.rank("Who has the most loyalty points?");
    assert_eq!(ranking.tables[0].name, "member");
    assert_eq!(ranking.tables[0].columns[0].name, "loyalty_points");
}

#[test]
fn glossary_entries_reach_the_prompt_and_point_at_their_tables() {
    let cache = tempfile::tempdir().unwrap();
    let glossary = vec![
        GlossaryEntry {
            term: "big spender".into(),
            definition: "a Customer whose Invoice totals add up to more than 40".into(),
        },
        GlossaryEntry {
            term: "deep cut".into(),
            definition: "a Track longer than ten minutes".into(),
        },
    ];
    let mut retrieval = retrieval_for(
        &chinook_path(),
        cache.path(),
        glossary,
        RetrievalOptions::default(),
    );
    let context = retrieval.context_for("Who are our big spenders?");
    assert_eq!(context.glossary.len(), 1);
    assert_eq!(context.glossary[0].term, "big spender");
    assert!(
        context
            .reasons
            .iter()
            .any(|r| r.starts_with("Customer: ") && r.contains("glossary 'big spender'")),
        "{:?}",
        context.reasons
    );
}

#[test]
fn sends_the_whole_schema_when_it_fits_and_the_best_tables_otherwise() {
    let cache = tempfile::tempdir().unwrap();
    let mut whole = chinook(cache.path());
    let context = whole.context_for("How many tracks are in each genre?");
    assert_eq!(context.mode, ContextMode::WholeSchema);
    assert_eq!(context.tables_sent.len(), 11);
    assert!(!context.reasons.is_empty());

    let tight = RetrievalOptions {
        budget_tokens: 400,
        ..RetrievalOptions::default()
    };
    let mut subset = retrieval_for(&chinook_path(), cache.path(), Vec::new(), tight);
    let context = subset.context_for("How many tracks are in each genre?");
    assert_eq!(context.mode, ContextMode::Subset);
    assert!(context.tables_sent.len() < 11, "{:?}", context.tables_sent);
    assert!(
        position(&context.tables_sent, "Track").is_some(),
        "{:?}",
        context.tables_sent
    );
    assert!(
        position(&context.tables_sent, "Genre").is_some(),
        "{:?}",
        context.tables_sent
    );
    assert!(context.schema_text.contains("CREATE TABLE Genre"));
    assert!(!context.schema_text.contains("CREATE TABLE Employee"));
}

/// Unicode, spaces and quotes in table and column names, from retrieval to the model's
/// SQL and its result.
#[test]
fn a_schema_with_unicode_spaces_and_quotes_works_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("café.db");
    let conn = Connection::open(&db_path).unwrap();
    conn.execute_batch(
        r#"CREATE TABLE "Café Kunden" ("Kunden Nr" INTEGER PRIMARY KEY, "Name" TEXT, "Stadt" TEXT, "O'Brien ""Punkte""" INTEGER);
           CREATE TABLE "Bestellung" ("Nr" INTEGER PRIMARY KEY, "Kunden Nr" INTEGER REFERENCES "Café Kunden"("Kunden Nr"), "Betrag €" REAL);
           INSERT INTO "Café Kunden" VALUES (1, 'Jürgen', 'München', 5), (2, 'Zoë', 'Köln', 7), (3, 'Anaïs', 'München', 1);
           INSERT INTO "Bestellung" VALUES (1, 1, 9.5), (2, 2, 3.0), (3, 3, 4.25);"#,
    )
    .unwrap();
    drop(conn);
    let cache = dir.path().join("index");
    let mut retrieval = retrieval_for(&db_path, &cache, Vec::new(), RetrievalOptions::default());
    let question = "How many Café Kunden live in München?";
    let ranking = retrieval.rank(question);
    assert_eq!(
        ranking.tables[0].name, "Café Kunden",
        "{:?}",
        ranking.tables
    );
    assert!(ranking.tables[0].reasons.iter().any(
        |r| matches!(r, Reason::Value { column, value } if column == "Stadt" && value == "münchen")
    ));

    let _turn = model_lock();
    let db = ReadOnlyDb::open(&db_path).unwrap();
    let mut model = engine(None);
    let config = PipelineConfig {
        answer: false,
        ..default_pipeline()
    };
    let outcome = run_question(
        &mut model,
        &db,
        &mut retrieval,
        question,
        &config,
        &mut |_| {},
    )
    .expect("pipeline runs");
    let gold = run_sql(
        &db,
        r#"SELECT count(*) FROM "Café Kunden" WHERE "Stadt" = 'München'"#,
    );
    assert_eq!(outcome.context_mode, ContextMode::WholeSchema);
    assert_eq!(
        outcome.result.as_ref().map(|r| r.rows.clone()),
        Some(gold.rows),
        "{:?} {:?}",
        outcome.sql,
        outcome.attempts
    );
}

#[derive(serde::Deserialize)]
struct Reference {
    text: String,
    vector: Vec<f32>,
}

/// The converted GGUF run by llama.cpp gives the same vectors as a numpy forward pass of
/// the original safetensors (computed once, stored in tests/data).
#[test]
fn the_converted_embedder_matches_the_reference_vectors() {
    let references: Vec<Reference> =
        serde_json::from_str(include_str!("data/embedder-reference.json")).unwrap();
    let mut embedder = LlamaEmbedder::load(&embed_model_path(), 2).expect("embedder loads");
    assert_eq!(embedder.dimensions(), 384);
    let texts: Vec<&str> = references.iter().map(|r| r.text.as_str()).collect();
    let vectors = embedder.embed(&texts).unwrap();
    for (reference, vector) in references.iter().zip(&vectors) {
        let similarity = cosine(&reference.vector, vector);
        assert!(
            similarity > 0.999,
            "{}: cosine {similarity}",
            reference.text
        );
    }
    // One at a time gives the same vectors as a packed batch.
    let single = embedder.embed(&[texts[2]]).unwrap();
    assert!(cosine(&single[0], &vectors[2]) > 0.9999);
    // Related sentences are closer than unrelated ones.
    assert!(cosine(&vectors[0], &vectors[2]) > cosine(&vectors[0], &vectors[3]));
}

/// `nano-analyst schema --json` without an embedding model: BM25 alone, and it says so.
#[test]
fn schema_command_explains_its_ranking_and_says_when_it_runs_on_bm25_alone() {
    let data = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(crate::support::binary())
        .args([
            "schema",
            chinook_path().to_str().unwrap(),
            "List the tracks of the artist AC/DC",
            "--json",
            "--k",
            "3",
        ])
        .env("NANO_ANALYST_DATA_DIR", data.path())
        .env("NANO_ANALYST_CONFIG", data.path().join("no-config.toml"))
        .env("NANO_ANALYST_EMBED_MODEL", data.path().join("missing.gguf"))
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    assert_eq!(json["vectors"], false);
    assert!(json["note"].as_str().unwrap().contains("BM25 only"));
    assert_eq!(json["mode"], "whole_schema");
    let tables = json["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 3);
    let names: Vec<&str> = tables.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"Album"), "{names:?}");
    assert!(stdout.contains("\"fk-closure\""), "{stdout}");
    assert!(stdout.contains("\"value\""), "{stdout}");
}
