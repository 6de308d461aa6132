//! Plain-text result tables for the terminal (`ask` without `--json`).

use unicode_width::UnicodeWidthStr;

use crate::core::db::exec::QueryResult;

const MAX_CELL_WIDTH: usize = 40;

pub fn render(result: &QueryResult, max_rows: usize) -> String {
    let rows: Vec<Vec<String>> = result
        .rows
        .iter()
        .take(max_rows)
        .map(|row| {
            row.iter()
                .map(|cell| clip(&cell.preview(MAX_CELL_WIDTH)))
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = result.columns.iter().map(|c| c.width()).collect();
    for row in &rows {
        for (index, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(index) {
                *width = (*width).max(cell.width());
            }
        }
    }
    let mut out = String::new();
    push_row(&mut out, &result.columns, &widths);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&rule.join("-+-"));
    out.push('\n');
    for row in &rows {
        push_row(&mut out, row, &widths);
    }
    out
}

fn push_row(out: &mut String, cells: &[String], widths: &[usize]) {
    let padded: Vec<String> = cells
        .iter()
        .zip(widths)
        .map(|(cell, width)| format!("{cell}{}", " ".repeat(width.saturating_sub(cell.width()))))
        .collect();
    out.push_str(padded.join(" | ").trim_end());
    out.push('\n');
}

fn clip(text: &str) -> String {
    let single_line = text.replace(['\n', '\r', '\t'], " ");
    if single_line.width() <= MAX_CELL_WIDTH {
        return single_line;
    }
    let mut clipped = String::new();
    for ch in single_line.chars() {
        if clipped.width() + 1 >= MAX_CELL_WIDTH {
            break;
        }
        clipped.push(ch);
    }
    clipped.push('…');
    clipped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::db::exec::Cell;

    #[test]
    fn aligns_by_display_width() {
        let result = QueryResult {
            columns: vec!["name".into(), "n".into()],
            rows: vec![
                vec![Cell::Text("日本".into()), Cell::Integer(3)],
                vec![Cell::Null, Cell::Real(1.5)],
            ],
            total_rows: Some(2),
            cut: None,
        };
        assert_eq!(
            render(&result, 10),
            "name | n\n-----+----\n日本 | 3\nNULL | 1.5\n"
        );
    }

    #[test]
    fn big_values_show_their_size_not_their_bytes() {
        let result = QueryResult {
            columns: vec!["doc".into(), "image".into()],
            rows: vec![vec![
                Cell::Text("x".repeat(12_345)),
                Cell::Blob(vec![0; 1 << 20]),
            ]],
            total_rows: Some(1),
            cut: None,
        };
        let table = render(&result, 10);
        let row = table.lines().nth(2).unwrap();
        assert_eq!(
            row,
            format!("{}… (12,345 chars) | <blob 1.0 MiB>", "x".repeat(24))
        );
    }
}
