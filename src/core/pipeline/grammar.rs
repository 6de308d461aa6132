//! A GBNF grammar for the SQL the model writes after the forced opening, built from the
//! schema: every bare word must be a SQL keyword or function, a table or column of this
//! database, a short alias (`T1`, `a`), a name introduced by `AS` or the first name after
//! `ORDER BY` (an output's `AS` name, which the grammar cannot track). Literals, numbers
//! and operators are free. The reply ends with one closing fence, so there is no prose and
//! no second statement.
//!
//! `Album.Title` passes only when `Title` is a column of `Album`; an alias's scope is not
//! known to the grammar, so `T1.Name` passes when `Name` is a column of any table.
//! SQLite still validates the query, and the repair loop handles what it rejects.
//! GBNF literals are case-sensitive: keywords are offered in upper and lower case, names as
//! the schema spells them and in lower case. After `FROM` and `JOIN` only a table name (or
//! a subquery) may follow. The engine checks the model's first choice of each token against
//! the grammar and runs the full pass only when it is rejected (`llm::engine`).

use std::collections::BTreeSet;
use std::fmt::Write;

use crate::core::db::schema::Schema;

const KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "ORDER",
    "HAVING",
    "LIMIT",
    "OFFSET",
    "JOIN",
    "INNER",
    "LEFT",
    "RIGHT",
    "OUTER",
    "CROSS",
    "NATURAL",
    "ON",
    "USING",
    "AS",
    "AND",
    "OR",
    "NOT",
    "IN",
    "IS",
    "NULL",
    "LIKE",
    "GLOB",
    "BETWEEN",
    "DISTINCT",
    "UNION",
    "ALL",
    "INTERSECT",
    "EXCEPT",
    "EXISTS",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "ASC",
    "DESC",
    "WITH",
    "COLLATE",
    "NOCASE",
    "CAST",
    "INTEGER",
    "INT",
    "REAL",
    "TEXT",
    "NUMERIC",
    "FLOAT",
    "COUNT",
    "SUM",
    "AVG",
    "MIN",
    "MAX",
    "TOTAL",
    "ROUND",
    "ABS",
    "LENGTH",
    "LOWER",
    "UPPER",
    "SUBSTR",
    "SUBSTRING",
    "TRIM",
    "REPLACE",
    "INSTR",
    "COALESCE",
    "IFNULL",
    "NULLIF",
    "IIF",
    "STRFTIME",
    "DATE",
    "DATETIME",
    "JULIANDAY",
    "TIME",
    "GROUP_CONCAT",
    "PRINTF",
    "TRUE",
    "FALSE",
    "ROW_NUMBER",
    "RANK",
    "DENSE_RANK",
    "OVER",
    "PARTITION",
    "RECURSIVE",
];

/// Keywords only the `tableref` rule writes, so a table name must follow them.
const TABLE_KEYWORDS: [&str; 2] = ["FROM", "JOIN"];

/// The grammar's root rule is `root`; it describes the text after `SELECT `.
pub(crate) fn sql_grammar(schema: &Schema) -> String {
    let mut words: BTreeSet<String> = BTreeSet::new();
    for keyword in KEYWORDS.iter().filter(|k| !TABLE_KEYWORDS.contains(k)) {
        words.insert(keyword.to_string());
        words.insert(keyword.to_lowercase());
    }
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut tables: BTreeSet<String> = BTreeSet::new();
    let mut columns: BTreeSet<String> = BTreeSet::new();
    // Each table's spellings and its own columns, for `table.column`.
    let mut scopes: Vec<(BTreeSet<String>, BTreeSet<String>)> = Vec::new();
    for table in &schema.tables {
        add_name(&mut names, &table.name);
        add_name(&mut tables, &table.name);
        let mut spellings = BTreeSet::new();
        let mut own = BTreeSet::new();
        add_name(&mut spellings, &table.name);
        for column in &table.columns {
            add_name(&mut names, &column.name);
            add_name(&mut columns, &column.name);
            add_name(&mut own, &column.name);
        }
        if !spellings.is_empty() && !own.is_empty() {
            scopes.push((spellings, own));
        }
    }
    let alternatives = |set: &BTreeSet<String>| -> String {
        set.iter()
            .map(|w| gbnf_literal(w))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let mut out = String::new();
    // A word is checked as a whole: `word` is a keyword, a schema name, an alias, or a free
    // name right after AS. `wordchar` cannot follow, so `Names` cannot pass as `Name` + `s`.
    // Two items are separated by whitespace or punctuation, never by nothing: otherwise an
    // invented `Titles` would pass as `Title` followed by the alias `s`.
    let _ = writeln!(out, "root ::= ws0 body \"\\n```\"");
    let _ = writeln!(
        out,
        "body ::= (\"(\" ws0)* item (sep item)* (ws0 \")\")* \";\"?"
    );
    let _ = writeln!(out, "sep ::= ws1 | ws0 punct (ws0 punct)* ws0");
    let _ = writeln!(out, "ws0 ::= [ \\t\\n]*");
    let _ = writeln!(out, "ws1 ::= [ \\t\\n]+");
    let _ = writeln!(
        out,
        "item ::= word | qualified | number | string | quoted | punct | asname | tableref | orderby"
    );
    // After FROM and JOIN comes a table of this database (or a subquery): an invented
    // `Address` table is never written, so it never needs a repair.
    let _ = writeln!(
        out,
        "tableref ::= (\"FROM\" | \"from\" | \"JOIN\" | \"join\") (ws1 (table | quoted) | ws0 \"(\")"
    );
    if tables.is_empty() {
        let _ = writeln!(out, "table ::= \"x_no_tables\"");
    } else {
        let _ = writeln!(out, "table ::= {}", alternatives(&tables));
    }
    let _ = writeln!(out, "asname ::= (\"AS\" | \"as\") [ ]+ freename");
    // A sort key may be a name the query gave with AS (`COUNT(*) AS n ... ORDER BY n`),
    // which the grammar cannot know: refused it, the model wrote a keyword (`ORDER BY
    // numeric`) that then failed as a column.
    let _ = writeln!(
        out,
        "orderby ::= (\"ORDER\" | \"order\") ws1 (\"BY\" | \"by\") ws1 freename"
    );
    // After `table.` only that table's columns: a model that starts `DEPARTMENT.DEPART`
    // for the column `DEPT_NAME` is not led on to the table name `DEPARTMENT`. An alias
    // may name any column (which table it stands for is not known here).
    // Before a dot, a two-letter capital alias is one too (`InvoiceLine AS IL ... IL.TrackId`):
    // refused, the model wrote `Il.TrackId`, and that query took 29.6 s for 62 tokens
    // (two full grammar passes).
    let _ = write!(
        out,
        "qualified ::= (alias | [A-Z] [A-Z0-9]) \".\" (column | \"*\")"
    );
    for i in 0..scopes.len() {
        let _ = write!(out, " | scope{i}");
    }
    out.push('\n');
    for (i, (spellings, own)) in scopes.iter().enumerate() {
        let _ = writeln!(
            out,
            "scope{i} ::= ({}) \".\" ({} | \"*\")",
            alternatives(spellings),
            alternatives(own)
        );
    }
    if columns.is_empty() {
        let _ = writeln!(out, "column ::= \"x_no_columns\"");
    } else {
        let _ = writeln!(out, "column ::= {}", alternatives(&columns));
    }
    let _ = writeln!(out, "word ::= keyword | name | alias | \"*\"");
    let _ = writeln!(out, "keyword ::= {}", alternatives(&words));
    if names.is_empty() {
        let _ = writeln!(out, "name ::= \"x_no_tables\"");
    } else {
        let _ = writeln!(out, "name ::= {}", alternatives(&names));
    }
    let _ = writeln!(
        out,
        "alias ::= [Tt] [0-9] [0-9]? | [A-Za-z] [a-z0-9]? | \"sub\" [0-9]? | \"cte\" [0-9]?"
    );
    let _ = writeln!(out, "freename ::= [A-Za-z_] [A-Za-z0-9_]*");
    let _ = writeln!(out, "number ::= \"-\"? [0-9]+ (\".\" [0-9]+)?");
    let _ = writeln!(out, "string ::= \"'\" ([^'\\n] | \"''\")* \"'\"");
    let _ = writeln!(
        out,
        "quoted ::= \"\\\"\" [^\"\\n]* \"\\\"\" | \"`\" [^`\\n]+ \"`\" | \"[\" [^\\]\\n]+ \"]\""
    );
    let _ = writeln!(
        out,
        "punct ::= \"(\" | \")\" | \",\" | \"=\" | \"!=\" | \"<>\" | \"<\" | \">\" | \"<=\" | \">=\" | \"+\" | \"-\" | \"*\" | \"/\" | \"%\" | \"||\""
    );
    out
}

/// The schema's spelling and the lower-case one: every extra spelling keeps more parse
/// stacks alive in the grammar sampler (LLAMA-NOTES), and the model copies the prompt's.
fn add_name(names: &mut BTreeSet<String>, name: &str) {
    let plain = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        names.insert(name.to_string());
        names.insert(name.to_lowercase());
    }
    // Names with spaces or symbols must be quoted; `quoted` already allows any quoted text.
}

fn gbnf_literal(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::db::schema::introspect;

    #[test]
    fn grammar_names_the_schema_and_ends_with_the_fence() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE Album (AlbumId INTEGER PRIMARY KEY, Title TEXT);")
            .unwrap();
        let schema = introspect(&conn, "memory").unwrap();
        let grammar = sql_grammar(&schema);
        assert!(grammar.starts_with("root ::= ws0 body \"\\n```\"\n"));
        let names = grammar.lines().find(|l| l.starts_with("name ::=")).unwrap();
        for name in ["\"Album\"", "\"album\"", "\"AlbumId\"", "\"title\""] {
            assert!(names.contains(name), "{names}");
        }
        assert!(!names.contains("\"Track\""));
        let tables = grammar
            .lines()
            .find(|l| l.starts_with("table ::="))
            .unwrap();
        assert_eq!(tables, "table ::= \"Album\" | \"album\"");
        let keywords = grammar
            .lines()
            .find(|l| l.starts_with("keyword ::="))
            .unwrap();
        assert!(!keywords.contains("\"FROM\"") && keywords.contains("\"WHERE\""));
        let items = grammar.lines().find(|l| l.starts_with("item ::=")).unwrap();
        assert!(items.ends_with("| orderby"), "{items}");
        assert!(grammar.contains(
            "\norderby ::= (\"ORDER\" | \"order\") ws1 (\"BY\" | \"by\") ws1 freename\n"
        ));
    }

    #[test]
    fn a_table_qualifies_only_its_own_columns() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE Department (DEPT_CODE TEXT, DEPT_NAME TEXT);
             CREATE TABLE Student (STU_NUM INTEGER, DEPT_CODE TEXT);",
        )
        .unwrap();
        let grammar = sql_grammar(&introspect(&conn, "memory").unwrap());
        let rule = |name: &str| {
            grammar
                .lines()
                .find(|l| l.starts_with(&format!("{name} ::=")))
                .unwrap()
                .to_string()
        };
        assert_eq!(
            rule("qualified"),
            "qualified ::= (alias | [A-Z] [A-Z0-9]) \".\" (column | \"*\") | scope0 | scope1"
        );
        assert_eq!(
            rule("scope0"),
            "scope0 ::= (\"Department\" | \"department\") \".\" (\"DEPT_CODE\" | \"DEPT_NAME\" \
             | \"dept_code\" | \"dept_name\" | \"*\")"
        );
        assert!(!rule("scope1").contains("DEPT_NAME"));
        // After an alias, any column but no table name.
        let columns = rule("column");
        assert!(columns.contains("\"STU_NUM\"") && !columns.contains("Department"));
    }
}
