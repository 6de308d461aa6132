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
            let rows: Vec<serde_json::Map<String, serde_json::Value>> = result
                .rows
                .iter()
                .map(|row| {
                    result
                        .columns
                        .iter()
                        .zip(row)
                        .map(|(name, cell)| {
                            (name.clone(), serde_json::to_value(cell).unwrap_or_default())
                        })
                        .collect()
                })
                .collect();
            let file = std::fs::File::create(path).map_err(|e| fail(&e))?;
            serde_json::to_writer_pretty(std::io::BufWriter::new(file), &rows).map_err(|e| fail(&e))
        }
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
        let path = export_path(dir.path(), "How many albums?", ExportFormat::Csv);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("how-many-albums-") && name.ends_with(".csv"),
            "{name}"
        );
    }
}
