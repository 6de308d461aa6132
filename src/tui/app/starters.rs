//! Starter questions for an empty screen, made from the schema's table and column names
//! (no model call): a count, a count per referenced table, a top list.

use crate::core::db::ident::split_identifier;

/// Most starter questions offered.
pub const MAX_STARTERS: usize = 3;

#[derive(Debug, Default)]
struct Table {
    name: String,
    references: Vec<String>,
}

/// Tables and the tables they reference, from the schema text the Schema pane shows
/// (`CREATE TABLE Name (` ... `Col TYPE REFERENCES Other(Id)` ... `)`).
fn tables(schema_text: &str) -> Vec<Table> {
    let mut tables: Vec<Table> = Vec::new();
    for line in schema_text.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed
            .strip_prefix("CREATE TABLE ")
            .or_else(|| trimmed.strip_prefix("CREATE VIEW "))
        {
            let name = rest.trim_end_matches('(').trim().trim_matches('"');
            tables.push(Table {
                name: name.to_string(),
                references: Vec::new(),
            });
        } else if let Some((_, target)) = trimmed.split_once("REFERENCES ")
            && let Some(table) = tables.last_mut()
        {
            let target = target
                .split(|c: char| c == '(' || c.is_whitespace() || c == ',')
                .next()
                .unwrap_or("")
                .trim_matches('"');
            if !target.is_empty() && target != table.name {
                table.references.push(target.to_string());
            }
        }
    }
    tables
}

/// "InvoiceLine" -> "invoice lines"; "Person" -> "persons" (plain, not perfect).
fn plural(name: &str) -> String {
    let words: Vec<String> = split_identifier(name)
        .iter()
        .map(|w| w.to_lowercase())
        .collect();
    let phrase = words.join(" ");
    if phrase.ends_with('s') || phrase.ends_with('x') || phrase.ends_with("ch") {
        format!("{phrase}es")
    } else if let Some(stem) = phrase.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'o', 'u'])
    {
        format!("{stem}ies")
    } else {
        format!("{phrase}s")
    }
}

fn singular(name: &str) -> String {
    split_identifier(name)
        .iter()
        .map(|w| w.to_lowercase())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A few questions this database can answer, from its names alone.
pub fn starter_questions(schema_text: &str) -> Vec<String> {
    let tables = tables(schema_text);
    let mut questions = Vec::new();
    // The table referencing the most others is usually the facts table (tracks, orders).
    let facts = tables.iter().max_by_key(|t| t.references.len());
    if let Some(first) = tables.first() {
        questions.push(format!("How many {} are there?", plural(&first.name)));
    }
    if let Some(facts) = facts
        && let Some(target) = facts.references.first()
    {
        questions.push(format!(
            "How many {} are there per {}?",
            plural(&facts.name),
            singular(target)
        ));
        let other = facts.references.last().unwrap_or(target);
        questions.push(format!(
            "Which 5 {} have the most {}?",
            plural(other),
            plural(&facts.name)
        ));
    } else if let Some(second) = tables.get(1) {
        questions.push(format!("List 10 {}", plural(&second.name)));
    }
    questions.dedup();
    questions.truncate(MAX_STARTERS);
    questions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starters_come_from_table_names_and_references() {
        let schema = "CREATE TABLE Album (\n  AlbumId INTEGER PRIMARY KEY,\n  Title TEXT,\n  \
                      ArtistId INTEGER REFERENCES Artist(ArtistId)\n)\nCREATE TABLE Track (\n  \
                      TrackId INTEGER PRIMARY KEY,\n  AlbumId INTEGER REFERENCES Album(AlbumId),\n  \
                      GenreId INTEGER REFERENCES Genre(GenreId)\n)\n";
        assert_eq!(
            starter_questions(schema),
            [
                "How many albums are there?",
                "How many tracks are there per album?",
                "Which 5 genres have the most tracks?",
            ]
        );
        assert_eq!(plural("InvoiceLine"), "invoice lines");
        assert_eq!(plural("Category"), "categories");
        assert!(starter_questions("").is_empty());
    }
}
