//! A tiny Qwen2-architecture model written as GGUF by the tests themselves (a few MB):
//! 2 blocks, 256-wide, random F32 weights, and a byte-level BPE vocabulary (GPT-2's byte to
//! character mapping, no merges, ChatML control tokens), so llama.cpp loads it, tokenises
//! any text, renders chats with its template, trains and quantizes it like the real model.

#![allow(dead_code)]

use std::path::Path;

pub const N_EMBD: usize = 256;
pub const N_FF: usize = 512;
pub const N_LAYER: usize = 2;
pub const N_VOCAB: usize = 512;
const N_HEAD: u32 = 4;
const N_HEAD_KV: u32 = 2;
const HEAD_DIM: usize = N_EMBD / N_HEAD as usize;

/// GGUF metadata values used here.
enum Value {
    U32(u32),
    F32(f32),
    Bool(bool),
    Str(String),
    Strs(Vec<String>),
    I32s(Vec<i32>),
    F32s(Vec<f32>),
}

struct Writer {
    kv: Vec<(String, Value)>,
    tensors: Vec<(String, Vec<u64>, Vec<f32>)>,
}

fn push_str(out: &mut Vec<u8>, text: &str) {
    out.extend((text.len() as u64).to_le_bytes());
    out.extend(text.as_bytes());
}

impl Writer {
    fn kv(&mut self, key: &str, value: Value) {
        self.kv.push((key.to_string(), value));
    }

    fn tensor(&mut self, name: &str, dims: &[u64], data: Vec<f32>) {
        assert_eq!(dims.iter().product::<u64>() as usize, data.len(), "{name}");
        self.tensors.push((name.to_string(), dims.to_vec(), data));
    }

    fn write(&self, path: &Path) {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend((self.kv.len() as u64).to_le_bytes());
        for (key, value) in &self.kv {
            push_str(&mut out, key);
            match value {
                Value::U32(v) => {
                    out.extend(4u32.to_le_bytes());
                    out.extend(v.to_le_bytes());
                }
                Value::F32(v) => {
                    out.extend(6u32.to_le_bytes());
                    out.extend(v.to_le_bytes());
                }
                Value::Bool(v) => {
                    out.extend(7u32.to_le_bytes());
                    out.push(u8::from(*v));
                }
                Value::Str(v) => {
                    out.extend(8u32.to_le_bytes());
                    push_str(&mut out, v);
                }
                Value::Strs(values) => {
                    out.extend(9u32.to_le_bytes());
                    out.extend(8u32.to_le_bytes());
                    out.extend((values.len() as u64).to_le_bytes());
                    for v in values {
                        push_str(&mut out, v);
                    }
                }
                Value::I32s(values) => {
                    out.extend(9u32.to_le_bytes());
                    out.extend(5u32.to_le_bytes());
                    out.extend((values.len() as u64).to_le_bytes());
                    for v in values {
                        out.extend(v.to_le_bytes());
                    }
                }
                Value::F32s(values) => {
                    out.extend(9u32.to_le_bytes());
                    out.extend(6u32.to_le_bytes());
                    out.extend((values.len() as u64).to_le_bytes());
                    for v in values {
                        out.extend(v.to_le_bytes());
                    }
                }
            }
        }
        let mut offset = 0u64;
        for (name, dims, data) in &self.tensors {
            push_str(&mut out, name);
            out.extend((dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(0u32.to_le_bytes()); // F32
            out.extend(offset.to_le_bytes());
            offset += (data.len() * 4) as u64;
            offset = offset.div_ceil(32) * 32;
        }
        while !out.len().is_multiple_of(32) {
            out.push(0);
        }
        for (_, _, data) in &self.tensors {
            for v in data {
                out.extend(v.to_le_bytes());
            }
            while !out.len().is_multiple_of(32) {
                out.push(0);
            }
        }
        std::fs::write(path, out).expect("the tiny model is written");
    }
}

/// Deterministic pseudo-random weights (xorshift), roughly N(0, scale²).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        let mut sum = 0.0f32;
        for _ in 0..4 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            sum += (self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
        }
        sum * 1.732
    }
    fn fill(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next() * scale).collect()
    }
}

/// GPT-2's byte-to-character table: byte `b` is token `b`'s text.
fn byte_tokens() -> Vec<String> {
    let mut printable: Vec<u32> = (u32::from('!')..=u32::from('~')).collect();
    printable.extend(u32::from('¡')..=u32::from('¬'));
    printable.extend(u32::from('®')..=u32::from('ÿ'));
    let mut table = vec![0u32; 256];
    let mut extra = 0;
    for byte in 0..256u32 {
        table[byte as usize] = if printable.contains(&byte) {
            byte
        } else {
            extra += 1;
            255 + extra
        };
    }
    table
        .into_iter()
        .map(|c| char::from_u32(c).unwrap().to_string())
        .collect()
}

pub const IM_START: i32 = 256;
pub const IM_END: i32 = 257;
pub const END_OF_TEXT: i32 = 258;

/// Writes the tiny model to `path` (F32, about 3 MB); `seed` varies the weights.
pub fn write_tiny_model(path: &Path, seed: u64) {
    let mut w = Writer {
        kv: Vec::new(),
        tensors: Vec::new(),
    };
    w.kv("general.architecture", Value::Str("qwen2".into()));
    w.kv("general.name", Value::Str("tiny test model".into()));
    w.kv("general.file_type", Value::U32(0));
    w.kv("qwen2.context_length", Value::U32(8192));
    w.kv("qwen2.embedding_length", Value::U32(N_EMBD as u32));
    w.kv("qwen2.block_count", Value::U32(N_LAYER as u32));
    w.kv("qwen2.feed_forward_length", Value::U32(N_FF as u32));
    w.kv("qwen2.attention.head_count", Value::U32(N_HEAD));
    w.kv("qwen2.attention.head_count_kv", Value::U32(N_HEAD_KV));
    w.kv("qwen2.rope.freq_base", Value::F32(10000.0));
    w.kv("qwen2.attention.layer_norm_rms_epsilon", Value::F32(1e-6));

    let mut tokens = byte_tokens();
    let mut types = vec![1i32; 256];
    for special in ["<|im_start|>", "<|im_end|>", "<|endoftext|>"] {
        tokens.push(special.into());
        types.push(3);
    }
    while tokens.len() < N_VOCAB {
        tokens.push(format!("[UNUSED_{}]", tokens.len()));
        types.push(5);
    }
    w.kv("tokenizer.ggml.model", Value::Str("gpt2".into()));
    w.kv("tokenizer.ggml.pre", Value::Str("qwen2".into()));
    w.kv("tokenizer.ggml.tokens", Value::Strs(tokens));
    w.kv("tokenizer.ggml.token_type", Value::I32s(types));
    w.kv("tokenizer.ggml.scores", Value::F32s(vec![0.0; N_VOCAB]));
    w.kv("tokenizer.ggml.merges", Value::Strs(Vec::new()));
    w.kv("tokenizer.ggml.eos_token_id", Value::U32(IM_END as u32));
    w.kv(
        "tokenizer.ggml.padding_token_id",
        Value::U32(END_OF_TEXT as u32),
    );
    w.kv(
        "tokenizer.ggml.bos_token_id",
        Value::U32(END_OF_TEXT as u32),
    );
    w.kv("tokenizer.ggml.add_bos_token", Value::Bool(false));
    w.kv(
        "tokenizer.chat_template",
        Value::Str(
            "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + \
             message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt \
             %}{{ '<|im_start|>assistant\n' }}{% endif %}"
                .into(),
        ),
    );

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
    let (e, f, v) = (N_EMBD as u64, N_FF as u64, N_VOCAB as u64);
    let kv_dim = u64::from(N_HEAD_KV) * HEAD_DIM as u64;
    w.tensor(
        "token_embd.weight",
        &[e, v],
        rng.fill(N_EMBD * N_VOCAB, 0.5),
    );
    w.tensor("output_norm.weight", &[e], vec![1.0; N_EMBD]);
    for layer in 0..N_LAYER {
        let name = |t: &str| format!("blk.{layer}.{t}");
        w.tensor(&name("attn_norm.weight"), &[e], vec![1.0; N_EMBD]);
        w.tensor(
            &name("attn_q.weight"),
            &[e, e],
            rng.fill((e * e) as usize, 0.06),
        );
        w.tensor(&name("attn_q.bias"), &[e], rng.fill(N_EMBD, 0.02));
        w.tensor(
            &name("attn_k.weight"),
            &[e, kv_dim],
            rng.fill((e * kv_dim) as usize, 0.06),
        );
        w.tensor(
            &name("attn_k.bias"),
            &[kv_dim],
            rng.fill(kv_dim as usize, 0.02),
        );
        w.tensor(
            &name("attn_v.weight"),
            &[e, kv_dim],
            rng.fill((e * kv_dim) as usize, 0.06),
        );
        w.tensor(
            &name("attn_v.bias"),
            &[kv_dim],
            rng.fill(kv_dim as usize, 0.02),
        );
        w.tensor(
            &name("attn_output.weight"),
            &[e, e],
            rng.fill((e * e) as usize, 0.06),
        );
        w.tensor(&name("ffn_norm.weight"), &[e], vec![1.0; N_EMBD]);
        w.tensor(
            &name("ffn_gate.weight"),
            &[e, f],
            rng.fill((e * f) as usize, 0.06),
        );
        w.tensor(
            &name("ffn_up.weight"),
            &[e, f],
            rng.fill((e * f) as usize, 0.06),
        );
        w.tensor(
            &name("ffn_down.weight"),
            &[f, e],
            rng.fill((e * f) as usize, 0.04),
        );
    }
    w.write(path);
}

/// Writes a LoRA adapter for the tiny model (rank `rank` on every block's attn_q and
/// ffn_down), in the GGUF layout llama.cpp's convert_lora_to_gguf.py produces.
pub fn write_tiny_lora(path: &Path, rank: usize, seed: u64) {
    let mut w = Writer {
        kv: Vec::new(),
        tensors: Vec::new(),
    };
    w.kv("general.architecture", Value::Str("qwen2".into()));
    w.kv("general.type", Value::Str("adapter".into()));
    w.kv("adapter.type", Value::Str("lora".into()));
    w.kv("adapter.lora.alpha", Value::F32(rank as f32));
    let mut rng = Rng(0xA076_1D64_78BD_642F ^ seed | 1);
    let r = rank as u64;
    for layer in 0..N_LAYER {
        for (tensor, n_in, n_out) in [("attn_q", N_EMBD, N_EMBD), ("ffn_down", N_FF, N_EMBD)] {
            let name = format!("blk.{layer}.{tensor}.weight");
            w.tensor(
                &format!("{name}.lora_a"),
                &[n_in as u64, r],
                rng.fill(n_in * rank, 0.5),
            );
            w.tensor(
                &format!("{name}.lora_b"),
                &[r, n_out as u64],
                rng.fill(rank * n_out, 0.5),
            );
        }
    }
    w.write(path);
}
