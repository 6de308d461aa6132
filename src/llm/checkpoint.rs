//! Saving a trained model: the trained tensors are written into a copy of the F32 file the
//! model was loaded from, at the positions its GGUF header gives. Everything else in the
//! file (tokenizer, chat template, context length, untrained tensors) stays byte for byte
//! what the base had. (`llama_model_save_to_file` would rebuild the metadata from the
//! loaded model instead, which drops the chat template and records the training window as
//! the context length.)

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use crate::llm::gguf::{GGUF_TYPE_F32, GgufIndex};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("not enough disk space in '{dir}': {needed} needed, {available} free")]
    DiskFull {
        dir: String,
        needed: String,
        available: String,
    },
    #[error("cannot write '{path}': {reason}")]
    Write { path: String, reason: String },
    #[error("'{path}' has no F32 tensor '{name}' of {elements} values to overwrite")]
    Mismatch {
        path: String,
        name: String,
        elements: usize,
    },
    #[error(transparent)]
    Llm(#[from] crate::core::model::LlmError),
}

/// Bytes in a human unit ("6.2 GB").
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Fails with a one-line error when the file system holding `dir` has less than `needed`
/// bytes free.
pub(crate) fn ensure_free_space(dir: &Path, needed: u64) -> Result<(), CheckpointError> {
    let available = fs4::available_space(dir).map_err(|e| CheckpointError::Write {
        path: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    if available < needed {
        return Err(CheckpointError::DiskFull {
            dir: dir.display().to_string(),
            needed: human_bytes(needed),
            available: human_bytes(available),
        });
    }
    Ok(())
}

/// Maps an I/O error on `path` to a one-line error (a full disk says so).
pub(crate) fn write_error(path: &Path, error: &std::io::Error) -> CheckpointError {
    let reason = if error.kind() == std::io::ErrorKind::StorageFull {
        "the disk is full".to_string()
    } else {
        error.to_string()
    };
    CheckpointError::Write {
        path: path.display().to_string(),
        reason,
    }
}

/// Copies `base` (an F32 GGUF) to `out` and overwrites the named tensors with new weights,
/// as `tensors` supplies them. Each name must be an F32 tensor of the same size in `base`.
pub fn write_patched_copy(
    base: &Path,
    out: &Path,
    tensors: impl FnOnce(&mut dyn FnMut(&str, &[f32]) -> std::io::Result<()>) -> std::io::Result<()>,
) -> Result<usize, CheckpointError> {
    let index = GgufIndex::read(base)?;
    std::fs::copy(base, out).map_err(|e| write_error(out, &e))?;
    let mut file: File = OpenOptions::new()
        .write(true)
        .open(out)
        .map_err(|e| write_error(out, &e))?;
    let mut mismatch: Option<CheckpointError> = None;
    let mut written = 0usize;
    let mut bytes: Vec<u8> = Vec::new();
    let mut patch = |name: &str, values: &[f32]| -> std::io::Result<()> {
        let Some(entry) = index
            .tensor(name)
            .filter(|t| t.ggml_type == GGUF_TYPE_F32 && t.elements() == values.len() as u64)
        else {
            mismatch = Some(CheckpointError::Mismatch {
                path: base.display().to_string(),
                name: name.to_string(),
                elements: values.len(),
            });
            return Err(std::io::Error::other("tensor mismatch"));
        };
        bytes.clear();
        bytes.reserve(values.len() * 4);
        for value in values {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        file.seek(SeekFrom::Start(entry.offset))?;
        file.write_all(&bytes)?;
        written += 1;
        Ok(())
    };
    let outcome = tensors(&mut patch);
    if let Some(error) = mismatch {
        let _ = std::fs::remove_file(out);
        return Err(error);
    }
    outcome.and_then(|()| file.sync_all()).map_err(|e| {
        let _ = std::fs::remove_file(out);
        write_error(out, &e)
    })?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(6_170_000_000), "6.2 GB");
    }

    #[test]
    fn a_missing_directory_is_an_error_not_a_panic() {
        assert!(ensure_free_space(Path::new("/nonexistent/nano"), 1).is_err());
        assert!(ensure_free_space(Path::new("."), 1).is_ok());
    }
}
