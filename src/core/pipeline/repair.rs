//! Hints for the repair turn: SQLite's error names what is wrong, these lines say what
//! exists instead, so a small model does not write the same query again.

use sqlparser::dialect::SQLiteDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::core::db::guard::referenced_tables;
use crate::core::db::ident::needs_quotes;
use crate::core::db::schema::Schema;

/// Lines to add after the database's error. Empty when there is nothing useful to add.
pub(crate) fn repair_hints(error: &str, failed_sql: &str, schema: &Schema) -> Vec<String> {
    let mut hints = Vec::new();
    if let Some(name) = error_subject(error, "no such table:") {
        let owners = tables_with_column(schema, &name);
        if !owners.is_empty() {
            hints.push(format!(
                "{name} is not a table; it is a column of {}.",
                owners.join(", ")
            ));
        }
        hints.push(format!("There is no table {name}."));
        for column in columns_read_from(failed_sql, &name) {
            let owners = tables_with_column(schema, &column);
            if !owners.is_empty() {
                hints.push(format!(
                    "{column}, which the query reads from {name}, is a column of {}.",
                    owners.join(", ")
                ));
            }
        }
        hints.push(format!(
            "The tables are: {}.",
            table_names(schema).join(", ")
        ));
    } else if let Some(name) = error_subject(error, "no such column:") {
        let column = name.rsplit('.').next().unwrap_or(&name).to_string();
        let owners = tables_with_column(schema, &column);
        if owners.is_empty() {
            let closest = closest_columns(schema, &column);
            if !closest.is_empty() {
                hints.push(format!(
                    "No table has a column {column}; the closest are {}.",
                    closest.join(", ")
                ));
            }
        } else {
            hints.push(format!("{column} is a column of {}.", owners.join(", ")));
        }
        for table in referenced_tables(failed_sql) {
            if let Some(table) = schema.table(&table) {
                let columns: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
                hints.push(format!(
                    "Columns of {}: {}.",
                    table.name,
                    columns.join(", ")
                ));
            }
        }
    } else if let Some(name) = error_subject(error, "ambiguous column name:") {
        hints.push(format!(
            "Qualify {name} with the alias of the table it should come from."
        ));
    } else if error.contains("misuse of aggregate") {
        hints.push("Filter on aggregates with HAVING, not WHERE.".into());
    }
    hints
}

/// The columns `sql` reads through `table` or its alias (`T2.Country` after `JOIN Address
/// AS T2`), each once, in the order they appear.
fn columns_read_from(sql: &str, table: &str) -> Vec<String> {
    let dialect = SQLiteDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, sql).tokenize() else {
        return Vec::new();
    };
    let words = non_blank(&tokens);
    let word = |token: &Token| match token {
        Token::Word(w) => Some(w.clone()),
        _ => None,
    };
    let mut names = vec![unquote(table).to_lowercase()];
    for (i, token) in words.iter().enumerate() {
        let Some(w) = word(token) else { continue };
        if !unquote(&w.value).eq_ignore_ascii_case(&unquote(table)) {
            continue;
        }
        let alias = match words.get(i + 1).and_then(|t| word(t)) {
            Some(next) if next.keyword == Keyword::AS => words.get(i + 2).and_then(|t| word(t)),
            Some(next) if next.keyword == Keyword::NoKeyword => Some(next),
            _ => None,
        };
        if let Some(alias) = alias {
            names.push(alias.value.to_lowercase());
        }
    }
    let mut columns: Vec<String> = Vec::new();
    for window in words.windows(3) {
        let (Some(qualifier), Token::Period, Some(column)) =
            (word(window[0]), window[1], word(window[2]))
        else {
            continue;
        };
        let column = unquote(&column.value);
        if names.contains(&qualifier.value.to_lowercase())
            && !columns.iter().any(|c| c.eq_ignore_ascii_case(&column))
        {
            columns.push(column);
        }
    }
    columns
}

/// Up to three `table.column` names most like `column` (ignoring case and `_`), best first.
fn closest_columns(schema: &Schema, column: &str) -> Vec<String> {
    let simplify = |name: &str| name.to_lowercase().replace(['_', ' '], "");
    let wanted = simplify(column);
    let mut scored: Vec<(f64, String)> = schema
        .tables
        .iter()
        .flat_map(|table| {
            table.columns.iter().map(|c| {
                let name = simplify(&c.name);
                let contains = !name.is_empty()
                    && name.len() >= 3
                    && (wanted.contains(&name) || name.contains(&wanted));
                let score = strsim::normalized_levenshtein(&wanted, &name).max(if contains {
                    0.7
                } else {
                    0.0
                });
                (score, format!("{}.{}", table.name, c.name))
            })
        })
        .filter(|(score, _)| *score >= 0.5)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    scored.into_iter().take(3).map(|(_, name)| name).collect()
}

/// Whether `error` says the query named a table or column the database does not have.
pub(crate) fn names_unknown(error: &str) -> bool {
    error_subject(error, "no such table:").is_some()
        || error_subject(error, "no such column:").is_some()
}

/// Whether `sql` makes the mistake `error` reported again: it still reads the table that
/// does not exist, or still names the column that does not.
pub(crate) fn repeats_failure(error: &str, sql: &str) -> bool {
    if let Some(table) = error_subject(error, "no such table:") {
        let table = unquote(&table);
        return referenced_tables(sql)
            .iter()
            .any(|t| unquote(t).eq_ignore_ascii_case(&table));
    }
    if let Some(column) = error_subject(error, "no such column:") {
        let wanted: Vec<String> = column
            .split('.')
            .map(|p| unquote(p).to_lowercase())
            .collect();
        let dialect = SQLiteDialect {};
        let Ok(tokens) = Tokenizer::new(&dialect, sql).tokenize() else {
            return false;
        };
        let parts: Vec<String> = tokens
            .iter()
            .filter(|t| !matches!(t, Token::Whitespace(_)))
            .map(|t| match t {
                Token::Word(w) => unquote(&w.value).to_lowercase(),
                other => other.to_string(),
            })
            .collect();
        let pattern: Vec<String> = dotted_tokens(&wanted);
        return parts
            .windows(pattern.len())
            .any(|w| w == pattern.as_slice());
    }
    false
}

/// `["t2", "x"]` as the token sequence `t2 . x`.
fn dotted_tokens(parts: &[String]) -> Vec<String> {
    let mut pattern = Vec::with_capacity(parts.len() * 2);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            pattern.push(".".to_string());
        }
        pattern.push(part.clone());
    }
    pattern
}

/// The column of a "no such column" error, unquoted, with its qualifier when it has one
/// (`T1.TrackId` -> `(Some("T1"), "TrackId")`).
pub(crate) fn missing_column(error: &str) -> Option<(Option<String>, String)> {
    let subject = error_subject(error, "no such column:")?;
    Some(match subject.rsplit_once('.') {
        Some((qualifier, column)) => (Some(unquote(qualifier)), unquote(column)),
        None => (None, unquote(&subject)),
    })
}

/// The identifier after `marker` in an error ("no such column: T1.TrackId in SELECT ...").
pub(crate) fn error_subject(error: &str, marker: &str) -> Option<String> {
    let start = error.find(marker)? + marker.len();
    let subject: String = error[start..]
        .trim_start()
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    (!subject.is_empty()).then_some(subject)
}

fn tables_with_column(schema: &Schema, column: &str) -> Vec<String> {
    schema
        .tables
        .iter()
        .filter(|t| t.column(column).is_some())
        .map(|t| t.name.clone())
        .collect()
}

fn table_names(schema: &Schema) -> Vec<String> {
    schema.tables.iter().map(|t| t.name.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::db::schema::introspect;

    fn schema() -> Schema {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE Customer(CustomerId INTEGER PRIMARY KEY, Address TEXT, Country TEXT);
             CREATE TABLE Genre(GenreId INTEGER PRIMARY KEY, Name TEXT);
             CREATE TABLE Track(TrackId INTEGER PRIMARY KEY, GenreId INTEGER);",
        )
        .unwrap();
        introspect(&conn, ":memory:").unwrap()
    }

    #[test]
    fn a_missing_table_that_is_a_column_is_named() {
        let hints = repair_hints(
            "no such table: Address",
            "SELECT * FROM Customer JOIN Address",
            &schema(),
        );
        assert_eq!(
            hints,
            [
                "Address is not a table; it is a column of Customer.",
                "There is no table Address.",
                "The tables are: Customer, Genre, Track."
            ]
        );
    }

    #[test]
    fn a_query_that_makes_the_same_mistake_is_a_repeat() {
        let table = "no such table: Address";
        assert!(repeats_failure(
            table,
            "SELECT 1 FROM Customer JOIN address AS a ON 1"
        ));
        assert!(!repeats_failure(table, "SELECT Address FROM Customer"));
        let column = "no such column: T2.UnitPrice in SELECT ... at offset 3";
        assert!(repeats_failure(
            column,
            "SELECT SUM(T2.UnitPrice) FROM Invoice AS T2"
        ));
        assert!(!repeats_failure(
            column,
            "SELECT SUM(T3.UnitPrice) FROM InvoiceLine AS T3"
        ));
        assert!(!repeats_failure("syntax error", "SELECT 1"));
    }

    #[test]
    fn a_missing_table_names_the_tables_holding_the_columns_read_from_it() {
        let hints = repair_hints(
            "no such table: Place",
            "SELECT COUNT(T1.CustomerId) FROM Customer AS T1 JOIN Place AS T2 \
             ON T1.PlaceId = T2.PlaceId WHERE T2.Country = 'Germany' AND T2.Name <> ''",
            &schema(),
        );
        assert_eq!(
            hints,
            [
                "There is no table Place.",
                "Country, which the query reads from Place, is a column of Customer.",
                "Name, which the query reads from Place, is a column of Genre.",
                "The tables are: Customer, Genre, Track."
            ]
        );
    }

    #[test]
    fn a_missing_column_lists_where_it_lives_and_what_is_in_scope() {
        let hints = repair_hints(
            "no such column: T1.TrackId in SELECT ... at offset 22",
            "SELECT count(T1.TrackId) FROM Genre AS T1 JOIN Track AS T2 ON 1",
            &schema(),
        );
        assert_eq!(
            hints,
            [
                "TrackId is a column of Track.",
                "Columns of Genre: GenreId, Name.",
                "Columns of Track: TrackId, GenreId."
            ]
        );
        assert!(repair_hints("syntax error", "SELEC", &schema()).is_empty());
        assert_eq!(
            repair_hints(
                "no such column: T1.Genre_Name",
                "SELECT T1.Genre_Name FROM Genre AS T1",
                &schema()
            )[0],
            "No table has a column Genre_Name; the closest are Genre.Name, Genre.GenreId, \
             Track.GenreId."
        );
    }
}

/// Rewrites a column reference SQLite could not resolve when the schema says unambiguously
/// what was meant, so the query runs without another generation:
/// - the alias is wrong (`T2.Name` where `T2` is `course_arrange` and only `T1`, `teacher`,
///   has `Name`) -> `T1.Name`;
/// - the spelling is off (`pet_type` where the query's tables have only `PetType`) ->
///   `PetType`.
///
/// `None` when the error is another one or the fix would be a guess between several.
pub(crate) fn fix_column_reference(
    error: &str,
    failed_sql: &str,
    schema: &Schema,
) -> Option<String> {
    let (qualifier, column) = missing_column(error)?;
    let dialect = SQLiteDialect {};
    let mut tokens = Tokenizer::new(&dialect, failed_sql).tokenize().ok()?;
    let aliases = table_aliases(&tokens, schema);
    if aliases.is_empty() {
        return None;
    }
    let has_column = |table: &str, column: &str| {
        schema
            .table(table)
            .is_some_and(|t| t.column(column).is_some())
    };
    let replacement: (Option<String>, String) = match &qualifier {
        Some(qualifier) => {
            // The same alias may name the same table in several SELECTs of one query
            // (`... EXCEPT SELECT T1.Name FROM Artist AS T1 ...`): one owner, not several.
            let mut owners: Vec<&(String, String)> = Vec::new();
            for pair in aliases.iter().filter(|(alias, table)| {
                !alias.eq_ignore_ascii_case(qualifier) && has_column(table, &column)
            }) {
                let known = owners.iter().any(|(alias, table)| {
                    alias.eq_ignore_ascii_case(&pair.0) && table.eq_ignore_ascii_case(&pair.1)
                });
                if !known {
                    owners.push(pair);
                }
            }
            if owners.len() > 1
                && owners
                    .iter()
                    .all(|(_, table)| table.eq_ignore_ascii_case(&owners[0].1))
            {
                // One table under two names, `country AS T1` outside and a bare `country` in a
                // subquery: the name the query qualifies columns with is the one in scope.
                owners.retain(|(alias, _)| used_as_qualifier(&tokens, alias));
            }
            match owners.as_slice() {
                [(alias, _)] => (Some(alias.clone()), column.clone()),
                _ => {
                    let tables: Vec<&str> = aliases
                        .iter()
                        .filter(|(alias, _)| alias.eq_ignore_ascii_case(qualifier))
                        .map(|(_, table)| table.as_str())
                        .collect();
                    let [table] = tables.as_slice() else {
                        return None;
                    };
                    (
                        Some(qualifier.clone()),
                        near_miss(schema, &[table], &column)?,
                    )
                }
            }
        }
        None => {
            let tables: Vec<&str> =
                dedup_case_insensitive(aliases.iter().map(|(_, table)| table.as_str()).collect());
            (None, near_miss(schema, &tables, &column)?)
        }
    };
    let matches_column = |token: &Token| matches!(token, Token::Word(word) if word.value.eq_ignore_ascii_case(&column));
    let mut changed = false;
    let mut index = 0;
    while index < tokens.len() {
        match &qualifier {
            Some(qualifier) => {
                let is_reference = matches!(&tokens[index], Token::Word(w) if w.value.eq_ignore_ascii_case(qualifier))
                    && matches!(tokens.get(index + 1), Some(Token::Period))
                    && tokens.get(index + 2).is_some_and(matches_column);
                if is_reference {
                    let (alias, name) = &replacement;
                    if let Some(alias) = alias {
                        tokens[index] = Token::make_word(alias, None);
                    }
                    tokens[index + 2] = Token::make_word(name, quote_style(name));
                    changed = true;
                    index += 3;
                    continue;
                }
            }
            None => {
                let qualified = index > 0 && matches!(tokens[index - 1], Token::Period);
                if !qualified && matches_column(&tokens[index]) {
                    tokens[index] = Token::make_word(&replacement.1, quote_style(&replacement.1));
                    changed = true;
                }
            }
        }
        index += 1;
    }
    changed.then(|| tokens.iter().map(Token::to_string).collect())
}

/// `failed_sql` with an unqualified `column` that SQLite found ambiguous read from the
/// first table that has it, when every table in scope that has it is joined to the others
/// on that very column (`FROM files JOIN song AS T1 ON T1.f_id = files.f_id`): the value is
/// then the same whichever is named, and the first one is the side a LEFT JOIN keeps.
/// `None` for a query with subqueries or a RIGHT or FULL join, where the first table is not
/// plainly the right one.
pub(crate) fn qualify_ambiguous_column(
    error: &str,
    failed_sql: &str,
    schema: &Schema,
) -> Option<String> {
    let column = unquote(&error_subject(error, "ambiguous column name:")?);
    if column.contains('.') {
        return None;
    }
    let dialect = SQLiteDialect {};
    let tokens = Tokenizer::new(&dialect, failed_sql).tokenize().ok()?;
    let keyword_count = |keyword: Keyword| {
        tokens
            .iter()
            .filter(|t| matches!(t, Token::Word(w) if w.keyword == keyword))
            .count()
    };
    if keyword_count(Keyword::SELECT) != 1
        || keyword_count(Keyword::RIGHT) + keyword_count(Keyword::FULL) > 0
    {
        return None;
    }
    let owners: Vec<String> = table_aliases(&tokens, schema)
        .into_iter()
        .filter(|(_, table)| {
            schema
                .table(table)
                .is_some_and(|t| t.column(&column).is_some())
        })
        .map(|(alias, _)| alias)
        .collect();
    if owners.len() < 2 || !joined_on_column(&tokens, &owners, &column) {
        return None;
    }
    let is_column = |token: &Token| matches!(token, Token::Word(w) if unquote(&w.value).eq_ignore_ascii_case(&column));
    let mut fixed: Vec<Token> = Vec::with_capacity(tokens.len() + 4);
    let mut changed = false;
    for (index, token) in tokens.iter().enumerate() {
        let qualified = index > 0 && matches!(tokens[index - 1], Token::Period);
        let qualifies = matches!(tokens.get(index + 1), Some(Token::Period));
        let named_as = previous_word(&tokens[..index]).is_some_and(|w| w.keyword == Keyword::AS);
        if is_column(token) && !qualified && !qualifies && !named_as {
            fixed.push(Token::make_word(&owners[0], quote_style(&owners[0])));
            fixed.push(Token::Period);
            changed = true;
        }
        fixed.push(token.clone());
    }
    changed.then(|| fixed.iter().map(Token::to_string).collect())
}

/// Whether equalities `a.column = b.column` between the `aliases` link all of them.
fn joined_on_column(tokens: &[Token], aliases: &[String], column: &str) -> bool {
    let words = non_blank(tokens);
    let owner_of = |qualifier: &Token, name: &Token| -> Option<usize> {
        let (Token::Word(qualifier), Token::Word(name)) = (qualifier, name) else {
            return None;
        };
        if !unquote(&name.value).eq_ignore_ascii_case(column) {
            return None;
        }
        aliases
            .iter()
            .position(|alias| alias.eq_ignore_ascii_case(&qualifier.value))
    };
    let mut linked = vec![false; aliases.len()];
    linked[0] = true;
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    for window in words.windows(7) {
        if !matches!(window[1], Token::Period)
            || !matches!(window[3], Token::Eq)
            || !matches!(window[5], Token::Period)
        {
            continue;
        }
        if let (Some(left), Some(right)) = (
            owner_of(window[0], window[2]),
            owner_of(window[4], window[6]),
        ) {
            pairs.push((left, right));
        }
    }
    // Spread "linked" along the equalities until nothing changes.
    let mut grew = true;
    while grew {
        grew = false;
        for &(a, b) in &pairs {
            if linked[a] != linked[b] {
                linked[a] = true;
                linked[b] = true;
                grew = true;
            }
        }
    }
    linked.iter().all(|&l| l)
}

/// The last word before the end of `tokens`, whitespace aside.
fn previous_word(tokens: &[Token]) -> Option<&sqlparser::tokenizer::Word> {
    match tokens
        .iter()
        .rev()
        .find(|t| !matches!(t, Token::Whitespace(_)))?
    {
        Token::Word(word) => Some(word),
        _ => None,
    }
}

/// The tokens of a query without its whitespace.
fn non_blank(tokens: &[Token]) -> Vec<&Token> {
    tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect()
}

/// Whether `alias.` occurs in the query.
fn used_as_qualifier(tokens: &[Token], alias: &str) -> bool {
    tokens.windows(2).any(|pair| {
        matches!(&pair[0], Token::Word(word) if word.value.eq_ignore_ascii_case(alias))
            && matches!(pair[1], Token::Period)
    })
}

/// `(alias, table)` for every table in FROM and JOIN clauses, the table itself standing for
/// its own name when it has no alias.
fn table_aliases(tokens: &[Token], schema: &Schema) -> Vec<(String, String)> {
    let words = non_blank(tokens);
    let mut aliases = Vec::new();
    let mut index = 0;
    while index < words.len() {
        let opens_table = match words[index] {
            Token::Word(word) => matches!(word.keyword, Keyword::FROM | Keyword::JOIN),
            Token::Comma => aliases.last().is_some() && in_from_list(&words[..index]),
            _ => false,
        };
        index += 1;
        if !opens_table {
            continue;
        }
        let Some(Token::Word(table)) = words.get(index) else {
            continue;
        };
        if schema.table(&table.value).is_none() {
            continue;
        }
        index += 1;
        if matches!(words.get(index), Some(Token::Word(w)) if w.keyword == Keyword::AS) {
            index += 1;
        }
        let alias = match words.get(index) {
            Some(Token::Word(w)) if w.keyword == Keyword::NoKeyword || w.quote_style.is_some() => {
                index += 1;
                w.value.clone()
            }
            _ => table.value.clone(),
        };
        aliases.push((alias, table.value.clone()));
    }
    aliases
}

/// Whether a comma continues a FROM list (`FROM a AS x, b AS y`), not a select list.
fn in_from_list(before: &[&Token]) -> bool {
    for token in before.iter().rev() {
        if let Token::Word(word) = token {
            match word.keyword {
                Keyword::FROM | Keyword::JOIN | Keyword::ON => return true,
                Keyword::SELECT
                | Keyword::WHERE
                | Keyword::GROUP
                | Keyword::ORDER
                | Keyword::BY => {
                    return false;
                }
                _ => {}
            }
        }
    }
    false
}

/// The one column of `tables` whose name equals `column` ignoring case, `_` and spaces.
fn near_miss(schema: &Schema, tables: &[&str], column: &str) -> Option<String> {
    let folded = |name: &str| -> String {
        name.chars()
            .filter(|c| !matches!(c, '_' | ' '))
            .flat_map(char::to_lowercase)
            .collect()
    };
    let wanted = folded(column);
    let mut found: Vec<String> = Vec::new();
    for table in tables {
        let Some(table) = schema.table(table) else {
            continue;
        };
        for candidate in &table.columns {
            if folded(&candidate.name) == wanted
                && !found
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case(&candidate.name))
            {
                found.push(candidate.name.clone());
            }
        }
    }
    match found.as_slice() {
        [name] if !name.eq_ignore_ascii_case(column) => Some(name.clone()),
        _ => None,
    }
}

fn dedup_case_insensitive(mut names: Vec<&str>) -> Vec<&str> {
    let mut seen: Vec<&str> = Vec::new();
    names.retain(|name| {
        let new = !seen.iter().any(|s| s.eq_ignore_ascii_case(name));
        if new {
            seen.push(name);
        }
        new
    });
    names
}

pub(crate) fn unquote(name: &str) -> String {
    name.trim_matches(|c| matches!(c, '"' | '`' | '[' | ']'))
        .to_string()
}

fn quote_style(name: &str) -> Option<char> {
    needs_quotes(name).then_some('"')
}

#[cfg(test)]
mod column_fix_tests {
    use super::*;
    use crate::core::db::schema::introspect;
    use rusqlite::Connection;

    fn schema() -> Schema {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE teacher (Teacher_ID INTEGER PRIMARY KEY, Name TEXT, Age INTEGER);
             CREATE TABLE course_arrange (Course_ID INTEGER, Teacher_ID INTEGER, Grade INTEGER);
             CREATE TABLE pets (PetID INTEGER PRIMARY KEY, PetType TEXT, weight REAL);",
        )
        .unwrap();
        introspect(&conn, ":memory:").unwrap()
    }

    #[test]
    fn a_column_under_the_wrong_alias_moves_to_the_table_that_has_it() {
        let sql = "SELECT T2.Name, COUNT(*) FROM teacher AS T1 JOIN course_arrange AS T2 \
                   ON T1.Teacher_ID = T2.Teacher_ID GROUP BY T2.Name";
        let fixed = fix_column_reference("no such column: T2.Name", sql, &schema()).unwrap();
        assert_eq!(
            fixed,
            "SELECT T1.Name, COUNT(*) FROM teacher AS T1 JOIN course_arrange AS T2 \
             ON T1.Teacher_ID = T2.Teacher_ID GROUP BY T1.Name"
        );
    }

    #[test]
    fn an_alias_repeated_across_a_compound_query_is_one_owner() {
        let sql = "SELECT T2.Name FROM teacher AS T1 JOIN course_arrange AS T2 ON 1 \
                   EXCEPT SELECT T1.Name FROM teacher AS T1 JOIN course_arrange AS T2 ON 1";
        let fixed = fix_column_reference("no such column: T2.Name", sql, &schema()).unwrap();
        assert!(fixed.starts_with("SELECT T1.Name FROM teacher"), "{fixed}");
    }

    #[test]
    fn a_table_aliased_outside_and_bare_in_a_subquery_takes_the_alias_in_use() {
        let sql = "SELECT T1.Age, T2.Name FROM teacher AS T1 JOIN course_arrange AS T2 \
                   ON T1.Teacher_ID = T2.Teacher_ID WHERE T1.Age = (SELECT MAX(Age) FROM teacher)";
        let fixed = fix_column_reference("no such column: T2.Name", sql, &schema()).unwrap();
        assert!(fixed.starts_with("SELECT T1.Age, T1.Name FROM"), "{fixed}");
    }

    #[test]
    fn a_misspelt_column_becomes_the_one_that_exists() {
        let sql = "SELECT pet_type, MAX(weight) FROM pets GROUP BY pet_type";
        assert_eq!(
            fix_column_reference("no such column: pet_type", sql, &schema()).as_deref(),
            Some("SELECT PetType, MAX(weight) FROM pets GROUP BY PetType")
        );
        let sql = "SELECT p.pet_type FROM pets p";
        assert_eq!(
            fix_column_reference("no such column: p.pet_type", sql, &schema()).as_deref(),
            Some("SELECT p.PetType FROM pets p")
        );
    }

    #[test]
    fn an_ambiguous_column_joined_on_itself_is_read_from_the_first_table() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE files(f_id INTEGER PRIMARY KEY, formats TEXT);
             CREATE TABLE song(song_name TEXT, f_id INTEGER REFERENCES files, resolution INT);",
        )
        .unwrap();
        let schema = introspect(&conn, ":memory:").unwrap();
        let sql = "SELECT f_id FROM files JOIN song AS T1 ON T1.f_id = files.f_id \
                   WHERE formats = 'mp4' AND T1.resolution < 1000 ORDER BY f_id";
        let fixed = qualify_ambiguous_column("ambiguous column name: f_id", sql, &schema);
        assert_eq!(
            fixed.as_deref(),
            Some(
                "SELECT files.f_id FROM files JOIN song AS T1 ON T1.f_id = files.f_id \
                 WHERE formats = 'mp4' AND T1.resolution < 1000 ORDER BY files.f_id"
            )
        );
        assert!(conn.prepare(&fixed.unwrap()).is_ok());
        let not_joined_on_it =
            "SELECT f_id FROM files JOIN song AS T1 ON T1.resolution = files.f_id";
        assert_eq!(
            qualify_ambiguous_column("ambiguous column name: f_id", not_joined_on_it, &schema),
            None
        );
        let with_subquery = "SELECT f_id FROM files JOIN song AS T1 ON T1.f_id = files.f_id \
                             WHERE f_id IN (SELECT f_id FROM song)";
        assert_eq!(
            qualify_ambiguous_column("ambiguous column name: f_id", with_subquery, &schema),
            None
        );
    }

    #[test]
    fn a_table_name_that_needs_quotes_keeps_them_as_the_qualifier() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE \"music files\"(f_id INTEGER PRIMARY KEY, formats TEXT);
             CREATE TABLE song(f_id INTEGER REFERENCES \"music files\", resolution INT);",
        )
        .unwrap();
        let schema = introspect(&conn, ":memory:").unwrap();
        let sql = "SELECT f_id FROM \"music files\" JOIN song ON song.f_id = \"music files\".f_id";
        let fixed = qualify_ambiguous_column("ambiguous column name: f_id", sql, &schema).unwrap();
        assert!(
            fixed.starts_with("SELECT \"music files\".f_id FROM"),
            "{fixed}"
        );
        assert!(conn.prepare(&fixed).is_ok(), "{fixed}");
    }

    #[test]
    fn no_guess_when_the_column_is_nowhere_or_the_error_is_another() {
        let schema = schema();
        let sql = "SELECT T1.Course FROM teacher AS T1 JOIN course_arrange AS T2 ON 1";
        assert_eq!(
            fix_column_reference("no such column: T1.Course", sql, &schema),
            None
        );
        assert_eq!(
            fix_column_reference("no such table: Course", sql, &schema),
            None
        );
        // Both tables have Teacher_ID: the alias was not the problem.
        let sql = "SELECT T3.Teacher_ID FROM teacher AS T1 JOIN course_arrange AS T2 ON 1";
        assert_eq!(
            fix_column_reference("no such column: T3.Teacher_ID", sql, &schema),
            None
        );
    }
}
