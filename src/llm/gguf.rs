//! Checks a model file before llama.cpp sees it: llama.cpp aborts the whole process on
//! some malformed inputs, and a one-line error naming the path is what the user needs.
//! Also reads a GGUF file's table of contents (a few metadata values and where each
//! tensor's bytes lie), which fine-tuning uses to write trained tensors into a copy of the
//! base model in place.

use std::collections::HashMap;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::core::model::LlmError;

const GGUF_MAGIC: &[u8; 4] = b"GGUF";

pub(crate) fn validate_gguf(path: &Path) -> Result<(), LlmError> {
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

/// GGUF's tensor type id for 32-bit floats.
pub(crate) const GGUF_TYPE_F32: u32 = 0;

/// A metadata value kept by [`GgufIndex`] (arrays are skipped: they are the vocabulary).
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
}

/// One tensor's entry in the table of contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufTensor {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: u32,
    /// Absolute position of the tensor's first byte in the file.
    pub offset: u64,
}

impl GgufTensor {
    pub(crate) fn elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// The table of contents of a GGUF file: scalar metadata and tensor positions.
#[derive(Debug, Clone, Default)]
pub struct GgufIndex {
    pub metadata: HashMap<String, GgufValue>,
    pub tensors: Vec<GgufTensor>,
}

impl GgufIndex {
    /// Reads the header of `path` (not the tensor data).
    pub fn read(path: &Path) -> Result<Self, LlmError> {
        validate_gguf(path)?;
        let bad = |reason: String| LlmError::Load {
            path: path.display().to_string(),
            reason,
        };
        let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
        let mut reader = HeaderReader {
            inner: BufReader::with_capacity(1 << 20, file),
        };
        read_index(&mut reader).map_err(|e| bad(format!("malformed GGUF header: {e}")))
    }

    pub fn text(&self, key: &str) -> Option<&str> {
        match self.metadata.get(key) {
            Some(GgufValue::Text(text)) => Some(text),
            _ => None,
        }
    }

    pub(crate) fn int(&self, key: &str) -> Option<i64> {
        match self.metadata.get(key) {
            Some(GgufValue::Int(value)) => Some(*value),
            _ => None,
        }
    }

    pub fn architecture(&self) -> Option<&str> {
        self.text("general.architecture")
    }

    /// The model's transformer block count (`<arch>.block_count`).
    pub fn block_count(&self) -> Option<u32> {
        let arch = self.architecture()?;
        u32::try_from(self.int(&format!("{arch}.block_count"))?).ok()
    }

    pub fn tensor(&self, name: &str) -> Option<&GgufTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Total number of weights, which sizes the F32 copy (4 bytes each).
    pub(crate) fn parameter_count(&self) -> u64 {
        self.tensors.iter().map(GgufTensor::elements).sum()
    }
}

struct HeaderReader<R> {
    inner: R,
}

impl<R: Read + Seek> HeaderReader<R> {
    fn bytes<const N: usize>(&mut self) -> std::io::Result<[u8; N]> {
        let mut buf = [0u8; N];
        self.inner.read_exact(&mut buf)?;
        Ok(buf)
    }
    fn u32(&mut self) -> std::io::Result<u32> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }
    fn u64(&mut self) -> std::io::Result<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }
    fn string(&mut self) -> std::io::Result<String> {
        let len = self.u64()?;
        if len > 1 << 30 {
            return Err(invalid("a string longer than 1 GiB"));
        }
        let mut buf = vec![0u8; len as usize];
        self.inner.read_exact(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
    fn skip(&mut self, bytes: u64) -> std::io::Result<()> {
        let delta = i64::try_from(bytes).map_err(|_| invalid("a value that does not fit"))?;
        self.inner.seek(SeekFrom::Current(delta)).map(|_| ())
    }
    fn position(&mut self) -> std::io::Result<u64> {
        self.inner.stream_position()
    }

    /// Reads one value of GGUF type `kind`; arrays are skipped (`None`).
    fn value(&mut self, kind: u32) -> std::io::Result<Option<GgufValue>> {
        Ok(Some(match kind {
            0 => GgufValue::Int(i64::from(self.bytes::<1>()?[0])),
            1 => GgufValue::Int(i64::from(i8::from_le_bytes(self.bytes()?))),
            2 => GgufValue::Int(i64::from(u16::from_le_bytes(self.bytes()?))),
            3 => GgufValue::Int(i64::from(i16::from_le_bytes(self.bytes()?))),
            4 => GgufValue::Int(i64::from(self.u32()?)),
            5 => GgufValue::Int(i64::from(i32::from_le_bytes(self.bytes()?))),
            6 => GgufValue::Float(f64::from(f32::from_le_bytes(self.bytes()?))),
            7 => GgufValue::Bool(self.bytes::<1>()?[0] != 0),
            8 => GgufValue::Text(self.string()?),
            9 => {
                let item = self.u32()?;
                let count = self.u64()?;
                match scalar_size(item) {
                    Some(size) => self.skip(size * count)?,
                    None if item == 8 => {
                        for _ in 0..count {
                            let len = self.u64()?;
                            self.skip(len)?;
                        }
                    }
                    None => return Err(invalid("nested arrays")),
                }
                return Ok(None);
            }
            10 => GgufValue::Int(i64::try_from(self.u64()?).unwrap_or(i64::MAX)),
            11 => GgufValue::Int(i64::from_le_bytes(self.bytes()?)),
            12 => GgufValue::Float(f64::from_le_bytes(self.bytes()?)),
            other => return Err(invalid(&format!("unknown value type {other}"))),
        }))
    }
}

fn scalar_size(kind: u32) -> Option<u64> {
    match kind {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

fn read_index<R: Read + Seek>(reader: &mut HeaderReader<R>) -> std::io::Result<GgufIndex> {
    let _magic = reader.bytes::<4>()?;
    let version = reader.u32()?;
    if version < 2 {
        return Err(invalid("GGUF version 1 is not supported"));
    }
    let tensor_count = reader.u64()?;
    let kv_count = reader.u64()?;
    let mut index = GgufIndex::default();
    for _ in 0..kv_count {
        let key = reader.string()?;
        let kind = reader.u32()?;
        if let Some(value) = reader.value(kind)? {
            index.metadata.insert(key, value);
        }
    }
    let mut relative = Vec::new();
    for _ in 0..tensor_count {
        let name = reader.string()?;
        let n_dims = reader.u32()?;
        if n_dims > 8 {
            return Err(invalid("a tensor with more than 8 dimensions"));
        }
        let dims = (0..n_dims)
            .map(|_| reader.u64())
            .collect::<std::io::Result<Vec<u64>>>()?;
        let ggml_type = reader.u32()?;
        let offset = reader.u64()?;
        relative.push(GgufTensor {
            name,
            dims,
            ggml_type,
            offset,
        });
    }
    let alignment = index
        .int("general.alignment")
        .and_then(|a| u64::try_from(a).ok())
        .filter(|a| *a > 0)
        .unwrap_or(32);
    let header_end = reader.position()?;
    let data_start = header_end.div_ceil(alignment) * alignment;
    for tensor in &mut relative {
        tensor.offset += data_start;
    }
    index.tensors = relative;
    Ok(index)
}
#[cfg(test)]
mod tests {
    use super::*;

    fn string(out: &mut Vec<u8>, text: &str) {
        out.extend((text.len() as u64).to_le_bytes());
        out.extend(text.as_bytes());
    }

    #[test]
    fn reads_metadata_and_tensor_positions() {
        let mut file = b"GGUF".to_vec();
        file.extend(3u32.to_le_bytes());
        file.extend(1u64.to_le_bytes()); // tensors
        file.extend(3u64.to_le_bytes()); // metadata
        string(&mut file, "general.architecture");
        file.extend(8u32.to_le_bytes());
        string(&mut file, "qwen2");
        string(&mut file, "qwen2.block_count");
        file.extend(4u32.to_le_bytes());
        file.extend(2u32.to_le_bytes());
        string(&mut file, "tokenizer.ggml.tokens");
        file.extend(9u32.to_le_bytes());
        file.extend(8u32.to_le_bytes());
        file.extend(2u64.to_le_bytes());
        string(&mut file, "a");
        string(&mut file, "bc");
        string(&mut file, "output_norm.weight");
        file.extend(1u32.to_le_bytes());
        file.extend(4u64.to_le_bytes());
        file.extend(GGUF_TYPE_F32.to_le_bytes());
        file.extend(0u64.to_le_bytes());
        while !file.len().is_multiple_of(32) {
            file.push(0);
        }
        let data_start = file.len() as u64;
        file.extend([0u8; 16]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        std::fs::write(&path, &file).unwrap();

        let index = GgufIndex::read(&path).unwrap();
        assert_eq!(index.architecture(), Some("qwen2"));
        assert_eq!(index.block_count(), Some(2));
        let tensor = index.tensor("output_norm.weight").unwrap();
        assert_eq!(tensor.offset, data_start);
        assert_eq!(tensor.elements(), 4);
        assert_eq!(index.parameter_count(), 4);
    }

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
