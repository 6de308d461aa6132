//! Checks a model file before llama.cpp sees it: llama.cpp aborts the whole process on
//! some malformed inputs, and a one-line error naming the path is what the user needs.

use std::io::Read;
use std::path::Path;

use crate::core::llm_api::LlmError;

const GGUF_MAGIC: &[u8; 4] = b"GGUF";

pub fn validate_gguf(path: &Path) -> Result<(), LlmError> {
    let shown = path.display().to_string();
    let mut file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => LlmError::ModelNotFound(shown.clone()),
        _ => LlmError::Load {
            path: shown.clone(),
            reason: e.to_string(),
        },
    })?;
    if !file.metadata().map(|m| m.is_file()).unwrap_or(false) {
        return Err(LlmError::NotGguf(shown));
    }
    let mut header = [0u8; 8];
    match file.read_exact(&mut header) {
        Ok(()) if &header[..4] == GGUF_MAGIC => {
            let version = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            if (1..=3).contains(&version) {
                Ok(())
            } else {
                Err(LlmError::Load {
                    path: shown,
                    reason: format!("unsupported GGUF version {version}"),
                })
            }
        }
        _ => Err(LlmError::NotGguf(shown)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_files_that_are_not_gguf() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("model.gguf");
        std::fs::write(&text, "not a model").unwrap();
        assert_eq!(
            validate_gguf(&text).unwrap_err().to_string(),
            format!("'{}' is not a GGUF model file", text.display())
        );
        let missing = dir.path().join("missing.gguf");
        assert!(matches!(
            validate_gguf(&missing),
            Err(LlmError::ModelNotFound(_))
        ));
        let good = dir.path().join("ok.gguf");
        std::fs::write(&good, [b'G', b'G', b'U', b'F', 3, 0, 0, 0]).unwrap();
        assert!(validate_gguf(&good).is_ok());
    }
}
