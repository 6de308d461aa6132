//! The fixed general set `train run` judges every candidate by: 100 questions of the Spider
//! dev subset (chosen once with `eval --sample 100`'s stratified sampler, shipped as
//! `assets/general-set.json`) and their nine databases (`sample_dbs/spider/`). Both are
//! compiled into the binary (about 600 KB) and written out under the cache directory on
//! first use, so the gate works wherever the binary runs.

use std::path::{Path, PathBuf};

use crate::error::AppError;
use crate::llm::checkpoint::write_error;

/// Questions in the shipped set.
pub const SIZE: usize = 100;

const DATASET: &str = include_str!("../../../assets/general-set.json");

const DATABASES: [(&str, &[u8]); 9] = [
    (
        "course_teach",
        include_bytes!("../../../sample_dbs/spider/course_teach/course_teach.sqlite"),
    ),
    (
        "cre_Doc_Template_Mgt",
        include_bytes!(
            "../../../sample_dbs/spider/cre_Doc_Template_Mgt/cre_Doc_Template_Mgt.sqlite"
        ),
    ),
    (
        "flight_2",
        include_bytes!("../../../sample_dbs/spider/flight_2/flight_2.sqlite"),
    ),
    (
        "museum_visit",
        include_bytes!("../../../sample_dbs/spider/museum_visit/museum_visit.sqlite"),
    ),
    (
        "network_1",
        include_bytes!("../../../sample_dbs/spider/network_1/network_1.sqlite"),
    ),
    (
        "orchestra",
        include_bytes!("../../../sample_dbs/spider/orchestra/orchestra.sqlite"),
    ),
    (
        "pets_1",
        include_bytes!("../../../sample_dbs/spider/pets_1/pets_1.sqlite"),
    ),
    (
        "voter_1",
        include_bytes!("../../../sample_dbs/spider/voter_1/voter_1.sqlite"),
    ),
    (
        "world_1",
        include_bytes!("../../../sample_dbs/spider/world_1/world_1.sqlite"),
    ),
];

/// Where the set lies on disk.
pub struct GeneralSet {
    pub dataset: PathBuf,
    /// Spider layout: `<db_dir>/<db_id>/<db_id>.sqlite`.
    pub db_dir: PathBuf,
}

/// Writes the set under `dir` (again only when a file is missing or differs in size).
pub fn materialize(dir: &Path) -> Result<GeneralSet, AppError> {
    let dataset = dir.join("general-set.json");
    write_if_changed(&dataset, DATASET.as_bytes())?;
    let db_dir = dir.join("database");
    for (id, bytes) in DATABASES {
        let path = db_dir.join(id).join(format!("{id}.sqlite"));
        write_if_changed(&path, bytes)?;
    }
    Ok(GeneralSet { dataset, db_dir })
}

fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<(), AppError> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == bytes.len() as u64) {
        return Ok(());
    }
    let failed = |e: std::io::Error| AppError::from(write_error(path, &e));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    std::fs::write(path, bytes).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_set_has_a_hundred_questions_on_its_databases() {
        let dir = tempfile::tempdir().unwrap();
        let set = materialize(dir.path()).unwrap();
        let items = crate::core::eval::load_dataset(&set.dataset, "").unwrap();
        assert_eq!(items.len(), SIZE);
        for item in &items {
            let db = set
                .db_dir
                .join(&item.db_id)
                .join(format!("{}.sqlite", item.db_id));
            assert!(db.is_file(), "{}", db.display());
        }
        // Every gold query runs on its database.
        for item in &items {
            let db = crate::core::db::exec::ReadOnlyDb::open(
                &set.db_dir
                    .join(&item.db_id)
                    .join(format!("{}.sqlite", item.db_id)),
            )
            .unwrap();
            db.execute(&item.gold_sql, crate::core::db::exec::ExecLimits::default())
                .unwrap_or_else(|e| panic!("{}: {e}", item.gold_sql));
        }
    }
}
