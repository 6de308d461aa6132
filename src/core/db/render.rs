//! Renders a schema compactly for the prompt.
//!
//! A trimmed `CREATE TABLE` form: small coder models have seen far more DDL than any other
//! schema notation, so it is what they read most reliably. Keys and relationships stay; the
//! noise of raw DDL (constraint names, collations, index statements) goes. Text columns carry
//! a few real values as comments so the model writes literals the data actually contains.

use std::fmt::Write;

use crate::core::db::schema::{Schema, Table};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RenderOptions {
    pub sample_values: bool,
    /// Samples are shown only for columns with at most this many distinct values: for
    /// categories ('Brazil', 'Rock') they tell the model the exact literal; for names,
    /// phone numbers and e-mails they cost tokens and invite the model to filter on them.
    pub categorical_max_distinct: u64,
    pub row_counts: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            sample_values: true,
            categorical_max_distinct: 30,
            row_counts: true,
        }
    }
}

/// Renders the named tables (all of them when `only` is `None`), in schema order.
pub fn render_schema(schema: &Schema, only: Option<&[String]>, options: RenderOptions) -> String {
    let mut out = String::new();
    for table in &schema.tables {
        let wanted =
            only.is_none_or(|names| names.iter().any(|n| n.eq_ignore_ascii_case(&table.name)));
        if wanted {
            render_table(&mut out, table, options);
        }
    }
    out
}

fn render_table(out: &mut String, table: &Table, options: RenderOptions) {
    let keyword = if table.is_view { "VIEW" } else { "TABLE" };
    let _ = writeln!(out, "CREATE {keyword} {} (", prompt_identifier(&table.name));
    let single_pk = table.single_primary_key().is_some();
    let mut lines: Vec<(String, String)> = Vec::new();
    for column in &table.columns {
        let mut line = prompt_identifier(&column.name);
        let declared = compact_type(&column.declared_type);
        if !declared.is_empty() {
            line.push(' ');
            line.push_str(&declared);
        }
        if column.primary_key && single_pk {
            line.push_str(" PRIMARY KEY");
        }
        let fk = table
            .foreign_keys
            .iter()
            .find(|fk| fk.from_column == column.name);
        if let Some(fk) = fk {
            let _ = write!(line, " REFERENCES {}", prompt_identifier(&fk.to_table));
            if !fk.to_column.is_empty() {
                let _ = write!(line, "({})", prompt_identifier(&fk.to_column));
            }
        }
        let categorical = column
            .distinct_values
            .is_none_or(|n| n <= options.categorical_max_distinct);
        let comment = if options.sample_values && categorical && !column.sample_values.is_empty() {
            let samples: Vec<String> = column
                .sample_values
                .iter()
                .map(|v| format!("'{}'", v.replace('\'', "''")))
                .collect();
            format!("e.g. {}", samples.join(", "))
        } else {
            String::new()
        };
        lines.push((line, comment));
    }
    if !single_pk {
        let keys: Vec<String> = table
            .columns
            .iter()
            .filter(|c| c.primary_key)
            .map(|c| prompt_identifier(&c.name))
            .collect();
        if !keys.is_empty() {
            lines.push((format!("PRIMARY KEY ({})", keys.join(", ")), String::new()));
        }
    }
    let last = lines.len().saturating_sub(1);
    for (index, (line, comment)) in lines.iter().enumerate() {
        let separator = if index == last { "" } else { "," };
        if comment.is_empty() {
            let _ = writeln!(out, "  {line}{separator}");
        } else {
            let _ = writeln!(out, "  {line}{separator} -- {comment}");
        }
    }
    match (options.row_counts, table.row_count) {
        (true, Some(count)) => {
            let _ = writeln!(out, "); -- {count} rows");
        }
        _ => out.push_str(");\n"),
    }
}

/// `NVARCHAR(160)` -> `NVARCHAR(160)` stays (lengths matter little, but models know it);
/// only whitespace noise is removed.
fn compact_type(declared: &str) -> String {
    declared.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Plain names stay bare (that is how the model will write them); anything else is quoted.
pub(crate) fn prompt_identifier(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !is_reserved(name);
    if plain {
        name.to_string()
    } else {
        crate::core::db::ident::quote_identifier(name)
    }
}

fn is_reserved(name: &str) -> bool {
    const RESERVED: &[&str] = &[
        "select",
        "from",
        "where",
        "group",
        "order",
        "by",
        "table",
        "index",
        "join",
        "on",
        "limit",
        "offset",
        "union",
        "values",
        "default",
        "check",
        "case",
        "when",
        "then",
        "end",
        "and",
        "or",
        "not",
        "null",
        "primary",
        "key",
        "references",
        "having",
        "as",
        "in",
        "is",
        "to",
        "transaction",
        "trigger",
        "view",
        "with",
        "all",
        "distinct",
        "exists",
        "between",
    ];
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::db::schema::introspect;

    #[test]
    fn renders_keys_relationships_and_samples() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE artist(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
             CREATE TABLE \"my album\"(id INTEGER PRIMARY KEY, title TEXT,
                 artist_id INTEGER REFERENCES artist(id));
             INSERT INTO artist(name) VALUES ('AC/DC'), ('AC/DC'), ('Queen');",
        )
        .unwrap();
        let schema = introspect(&conn, ":memory:").unwrap();
        let text = render_schema(&schema, None, RenderOptions::default());
        assert_eq!(
            text,
            "CREATE TABLE artist (\n  id INTEGER PRIMARY KEY,\n  name TEXT -- e.g. 'AC/DC', 'Queen'\n); -- 3 rows\n\
             CREATE TABLE \"my album\" (\n  id INTEGER PRIMARY KEY,\n  title TEXT,\n  artist_id INTEGER REFERENCES artist(id)\n); -- 0 rows\n"
        );
        let only = render_schema(
            &schema,
            Some(&["ARTIST".to_string()]),
            RenderOptions::default(),
        );
        assert!(only.starts_with("CREATE TABLE artist") && !only.contains("my album"));
    }
}
