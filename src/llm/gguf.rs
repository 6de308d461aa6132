//! Checks a model file before llama.cpp sees it: llama.cpp aborts the whole process on
//! some malformed inputs, and a one-line error naming the path is what the user needs.
//! The same goes for a well-formed model of the wrong kind: an embedding model asked to
//! generate ends in a `GGML_ASSERT` (exit 134), so [`model_kind`] tells chat models,
//! sentence embedders and adapters apart from their metadata first.
//! Also reads a GGUF file's table of contents (a few metadata values and where each
//! tensor's bytes lie), which fine-tuning uses to write trained tensors into a copy of the
//! base model in place.

use std::collections::HashMap;
use std::io::{BufReader, Read, Seek};
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

/// Architectures llama.cpp only runs as encoders (no text generation).
const ENCODER_ARCHITECTURES: &[&str] = &[
    "bert",
    "nomic-bert",
    "nomic-bert-moe",
    "jina-bert-v2",
    "jina-bert-v3",
    "neo-bert",
    "modern-bert",
    "t5encoder",
];

/// What a GGUF model file is for, as far as the app is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelKind {
    /// Generates text; `chat_template` says whether it carries `tokenizer.chat_template`.
    Chat { arch: String, chat_template: bool },
    /// Turns text into vectors (an encoder, or a decoder converted with a pooling type).
    Embedding { arch: String },
    /// A LoRA adapter, which needs its base model.
    Adapter { arch: String },
}

impl ModelKind {
    /// How an error names it: "an embedding model (bert)".
    pub fn describe(&self) -> String {
        match self {
            ModelKind::Chat { arch, .. } => format!("a chat model ({arch})"),
            ModelKind::Embedding { arch } => format!("an embedding model ({arch})"),
            ModelKind::Adapter { arch } => format!("a LoRA adapter ({arch}), not a model"),
        }
    }
}

/// Reads what kind of model `path` holds, from its metadata alone (no tensor is read).
pub fn model_kind(path: &Path) -> Result<ModelKind, LlmError> {
    let index = GgufIndex::read_metadata(path)?;
    let arch = index.architecture().unwrap_or("unknown").to_string();
    if index.text("general.type") == Some("adapter") {
        return Ok(ModelKind::Adapter { arch });
    }
    // Pooling type 0 is "none": per-token outputs, as a generating model has.
    let pools = index
        .int(&format!("{arch}.pooling_type"))
        .is_some_and(|pooling| pooling > 0);
    let bidirectional = matches!(
        index.metadata.get(&format!("{arch}.attention.causal")),
        Some(GgufValue::Bool(false))
    );
    if ENCODER_ARCHITECTURES.contains(&arch.as_str()) || pools || bidirectional {
        return Ok(ModelKind::Embedding { arch });
    }
    let chat_template = index.text("tokenizer.chat_template").is_some();
    Ok(ModelKind::Chat {
        arch,
        chat_template,
    })
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
        Self::read_header(path, true)
    }

    /// Reads the metadata of `path` only, without the tensor table.
    pub fn read_metadata(path: &Path) -> Result<Self, LlmError> {
        Self::read_header(path, false)
    }

    fn read_header(path: &Path, with_tensors: bool) -> Result<Self, LlmError> {
        validate_gguf(path)?;
        let bad = |reason: String| LlmError::Load {
            path: path.display().to_string(),
            reason,
        };
        let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
        let mut reader = HeaderReader {
            inner: BufReader::with_capacity(1 << 20, file),
        };
        read_index(&mut reader, with_tensors)
            .map_err(|e| bad(format!("malformed GGUF header: {e}")))
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
    inner: BufReader<R>,
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
        // Relative: a plain seek would drop the buffer for every token of the vocabulary.
        self.inner.seek_relative(delta)
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

fn read_index<R: Read + Seek>(
    reader: &mut HeaderReader<R>,
    with_tensors: bool,
) -> std::io::Result<GgufIndex> {
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
    if !with_tensors {
        return Ok(index);
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

    /// Metadata values a crafted header holds.
    enum Kv<'a> {
        Text(&'a str),
        U32(u32),
        Bool(bool),
    }

    /// A GGUF v3 file with `pairs` as metadata and no tensors: enough for [`model_kind`].
    fn crafted(dir: &Path, name: &str, pairs: &[(&str, Kv<'_>)]) -> std::path::PathBuf {
        let mut file = b"GGUF".to_vec();
        file.extend(3u32.to_le_bytes());
        file.extend(0u64.to_le_bytes());
        file.extend((pairs.len() as u64).to_le_bytes());
        for (key, value) in pairs {
            string(&mut file, key);
            match value {
                Kv::Text(text) => {
                    file.extend(8u32.to_le_bytes());
                    string(&mut file, text);
                }
                Kv::U32(n) => {
                    file.extend(4u32.to_le_bytes());
                    file.extend(n.to_le_bytes());
                }
                Kv::Bool(b) => {
                    file.extend(7u32.to_le_bytes());
                    file.push(u8::from(*b));
                }
            }
        }
        let path = dir.join(name);
        std::fs::write(&path, &file).unwrap();
        path
    }

    fn kind_of(pairs: &[(&str, Kv<'_>)]) -> ModelKind {
        let dir = tempfile::tempdir().unwrap();
        model_kind(&crafted(dir.path(), "m.gguf", pairs)).unwrap()
    }

    #[test]
    fn encoders_and_pooling_models_are_embedding_models() {
        let embedding = |arch: &str| ModelKind::Embedding { arch: arch.into() };
        for arch in ["bert", "nomic-bert", "jina-bert-v2"] {
            let kind = kind_of(&[("general.architecture", Kv::Text(arch))]);
            assert_eq!(kind, embedding(arch));
        }
        // A decoder converted for embeddings (gte-Qwen2 and the like) declares its pooling.
        let pooled = kind_of(&[
            ("general.architecture", Kv::Text("qwen2")),
            ("qwen2.pooling_type", Kv::U32(1)),
        ]);
        assert_eq!(pooled, embedding("qwen2"));
        let bidirectional = kind_of(&[
            ("general.architecture", Kv::Text("llama")),
            ("llama.attention.causal", Kv::Bool(false)),
        ]);
        assert_eq!(bidirectional, embedding("llama"));
        assert_eq!(
            embedding("bert").describe(),
            "an embedding model (bert)".to_string()
        );
    }

    #[test]
    fn decoders_are_chat_models_with_or_without_a_template() {
        let with_template = kind_of(&[
            ("general.architecture", Kv::Text("qwen2")),
            ("qwen2.pooling_type", Kv::U32(0)),
            (
                "tokenizer.chat_template",
                Kv::Text("{% for m in messages %}{% endfor %}"),
            ),
        ]);
        assert_eq!(
            with_template,
            ModelKind::Chat {
                arch: "qwen2".into(),
                chat_template: true
            }
        );
        let bare = kind_of(&[
            ("general.architecture", Kv::Text("llama")),
            ("llama.attention.causal", Kv::Bool(true)),
        ]);
        assert_eq!(
            bare,
            ModelKind::Chat {
                arch: "llama".into(),
                chat_template: false
            }
        );
        let adapter = kind_of(&[
            ("general.architecture", Kv::Text("qwen2")),
            ("general.type", Kv::Text("adapter")),
        ]);
        assert_eq!(
            adapter,
            ModelKind::Adapter {
                arch: "qwen2".into()
            }
        );
    }

    #[test]
    fn a_model_of_the_wrong_kind_is_refused_before_llama_cpp_loads_it() {
        let dir = tempfile::tempdir().unwrap();
        let embedder = crafted(
            dir.path(),
            "minilm.gguf",
            &[("general.architecture", Kv::Text("bert"))],
        );
        let error = crate::llm::engine::check_chat_model(&embedder).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "'{}' is an embedding model (bert); --model needs a chat model such as \
                 Qwen2.5-Coder",
                embedder.display()
            )
        );
        let chat = crafted(
            dir.path(),
            "qwen.gguf",
            &[("general.architecture", Kv::Text("qwen2"))],
        );
        assert!(crate::llm::engine::check_chat_model(&chat).is_ok());
        let error = crate::llm::embedder::LlamaEmbedder::load(&chat, 1)
            .err()
            .unwrap();
        assert_eq!(
            error.to_string(),
            format!(
                "'{}' is a chat model (qwen2); --embed-model needs a sentence-embedding model \
                 such as all-MiniLM-L6-v2",
                chat.display()
            )
        );
    }

    #[test]
    fn metadata_is_read_without_the_tensor_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = crafted(
            dir.path(),
            "m.gguf",
            &[("general.architecture", Kv::Text("bert"))],
        );
        // A tensor count the file does not hold: reading the tensor table would fail.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[8..16].copy_from_slice(&5u64.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        assert!(GgufIndex::read(&path).is_err());
        let index = GgufIndex::read_metadata(&path).unwrap();
        assert_eq!(index.architecture(), Some("bert"));
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
