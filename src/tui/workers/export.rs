//! Writes a result to CSV or JSON on its own thread, so a large export never blocks the UI.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::core::db::exec::{Cell, QueryResult};
use crate::tui::app::{ExportFormat, Msg, WorkerError};

pub fn spawn(format: ExportFormat, result: QueryResult, name: &str, dir: &Path, out: Sender<Msg>) {
    let path = export_path(dir, name, format);
    let spawned = thread::Builder::new().name("export".into()).spawn(move || {
        let written = write(format, &result, &path)
            .map(|()| path)
            .map_err(WorkerError::Export);
        let _ = out.send(Msg::Exported(written));
    });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the export thread");
    }
}

/// `<dir>/<question slug>-<unix time>.<ext>`.
pub(crate) fn export_path(dir: &Path, name: &str, format: ExportFormat) -> PathBuf {
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .take(8)
        .collect::<Vec<_>>()
        .join("-");
    let slug = if slug.is_empty() {
        "results".into()
    } else {
        slug
    };
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    dir.join(format!("{slug}-{stamp}.{}", format.extension()))
}

pub fn write(format: ExportFormat, result: &QueryResult, path: &Path) -> Result<(), String> {
    let shown = path.display().to_string();
    let fail = |e: &dyn std::fmt::Display| format!("cannot write '{shown}': {e}");
    // A configured export_dir that does not exist yet is where the user wants files to go.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create '{}': {e}", dir.display()))?;
    }
    match format {
        ExportFormat::Csv => {
            let mut writer = csv::Writer::from_path(path).map_err(|e| fail(&e))?;
            writer.write_record(&result.columns).map_err(|e| fail(&e))?;
            for row in &result.rows {
                let cells = row.iter().map(|c| match c {
                    Cell::Null => String::new(),
                    other => other.to_string(),
                });
                writer.write_record(cells).map_err(|e| fail(&e))?;
            }
            writer.flush().map_err(|e| fail(&e))
        }
        ExportFormat::Json => {
            let rows: Vec<OrderedRow<'_>> = result
                .rows
                .iter()
                .map(|cells| OrderedRow {
                    columns: &result.columns,
                    cells,
                })
                .collect();
            let file = std::fs::File::create(path).map_err(|e| fail(&e))?;
            serde_json::to_writer_pretty(std::io::BufWriter::new(file), &rows).map_err(|e| fail(&e))
        }
    }
}

/// A row as a JSON object whose keys keep the result's column order (a `serde_json::Map`
/// sorts them).
struct OrderedRow<'a> {
    columns: &'a [String],
    cells: &'a [Cell],
}

impl serde::Serialize for OrderedRow<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.cells.len()))?;
        for (name, cell) in self.columns.iter().zip(self.cells) {
            map.serialize_entry(name, cell)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_csv_and_json() {
        let dir = tempfile::tempdir().unwrap();
        let result = QueryResult {
            columns: vec!["Name".into(), "n".into()],
            rows: vec![
                vec![Cell::Text("a, \"b\"".into()), Cell::Integer(2)],
                vec![Cell::Null, Cell::Real(1.5)],
            ],
            total_rows: Some(2),
            cut: None,
        };
        let csv_path = dir.path().join("r.csv");
        write(ExportFormat::Csv, &result, &csv_path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&csv_path).unwrap(),
            "Name,n\n\"a, \"\"b\"\"\",2\n,1.5\n"
        );
        let json_path = dir.path().join("r.json");
        write(ExportFormat::Json, &result, &json_path).unwrap();
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
        assert_eq!(value[0]["n"], 2);
        assert_eq!(value[1]["Name"], serde_json::Value::Null);
        // Keys keep the column order.
        let text = std::fs::read_to_string(&json_path).unwrap();
        assert!(
            text.find("\"Name\"").unwrap() < text.find("\"n\"").unwrap(),
            "{text}"
        );
        let zebra = QueryResult {
            columns: vec!["z".into(), "a".into()],
            rows: vec![vec![Cell::Integer(1), Cell::Integer(2)]],
            total_rows: Some(1),
            cut: None,
        };
        // An export_dir that does not exist yet is created.
        let nested = dir.path().join("exports/new");
        let zebra_path = nested.join("z.json");
        write(ExportFormat::Json, &zebra, &zebra_path).unwrap();
        let compact: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&zebra_path).unwrap()).unwrap();
        assert_eq!(compact[0]["z"], 1);
        let written = std::fs::read_to_string(&zebra_path).unwrap();
        assert!(
            written.find("\"z\"").unwrap() < written.find("\"a\"").unwrap(),
            "{written}"
        );
        let path = export_path(dir.path(), "How many albums?", ExportFormat::Csv);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("how-many-albums-") && name.ends_with(".csv"),
            "{name}"
        );
    }
}
