#!/usr/bin/env python3
"""Converts all-MiniLM-L6-v2 (Hugging Face format: config.json, model.safetensors,
tokenizer.json) into a BERT GGUF that llama.cpp runs, without torch.

Usage: convert-embedder.py MODEL_DIR OUT.gguf

Layout follows llama.cpp's own BERT conversion: tensor names from gguf's BERT name map,
2-D weights as F16 (token-type embedding F32), WordPiece vocabulary with continuation
pieces `##x` stored as `x` and other pieces prefixed with U+2581, mean pooling.
"""
import json
import sys
from pathlib import Path

import numpy as np
from gguf import GGUFWriter, MODEL_ARCH, MODEL_TENSOR, TokenType, get_tensor_name_map
from gguf.constants import PoolingType
from safetensors.numpy import load_file


def main(model_dir: Path, out: Path) -> None:
    config = json.loads((model_dir / "config.json").read_text())
    tokenizer = json.loads((model_dir / "tokenizer.json").read_text())
    tensors = load_file(str(model_dir / "model.safetensors"))
    blocks = int(config["num_hidden_layers"])
    name_map = get_tensor_name_map(MODEL_ARCH.BERT, blocks)

    writer = GGUFWriter(str(out), "bert")
    writer.add_name("all-MiniLM-L6-v2")
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_block_count(blocks)
    writer.add_head_count(int(config["num_attention_heads"]))
    writer.add_layer_norm_eps(float(config["layer_norm_eps"]))
    writer.add_causal_attention(False)
    writer.add_pooling_type(PoolingType.MEAN)
    writer.add_token_type_count(int(config.get("type_vocab_size", 2)))
    writer.add_file_type(1)  # mostly F16

    vocab = tokenizer["model"]["vocab"]
    ordered = sorted(vocab.items(), key=lambda kv: kv[1])
    if [i for _, i in ordered] != list(range(len(ordered))):
        raise SystemExit("tokenizer.json vocabulary ids are not contiguous")
    tokens, types = [], []
    for piece, _ in ordered:
        if piece.startswith("[") and piece.endswith("]"):
            tokens.append(piece.encode())
            types.append(TokenType.CONTROL)
        elif piece.startswith("##"):
            tokens.append(piece[2:].encode())
            types.append(TokenType.NORMAL)
        else:
            tokens.append(("\u2581" + piece).encode())
            types.append(TokenType.NORMAL)
    writer.add_tokenizer_model("bert")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_scores([0.0] * len(tokens))
    writer.add_bos_token_id(vocab["[CLS]"])
    writer.add_eos_token_id(vocab["[SEP]"])
    writer.add_sep_token_id(vocab["[SEP]"])
    writer.add_unk_token_id(vocab["[UNK]"])
    writer.add_pad_token_id(vocab["[PAD]"])
    writer.add_mask_token_id(vocab["[MASK]"])
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(True)

    written = 0
    for name, data in tensors.items():
        if name.endswith("position_ids") or name.startswith("pooler.") or ".pooler." in name:
            continue
        base = name[len("bert."):] if name.startswith("bert.") else name
        suffix = ""
        for candidate in (".weight", ".bias"):
            if base.endswith(candidate):
                base, suffix = base[: -len(candidate)], candidate
        mapped = name_map.get_name(base)
        if mapped is None:
            raise SystemExit(f"no GGUF name for tensor {name}")
        data = data.astype(np.float32)
        if data.ndim == 2 and mapped != name_map.get_name("embeddings.token_type_embeddings"):
            data = data.astype(np.float16)
        writer.add_tensor(mapped + suffix, data)
        written += 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"wrote {out} ({written} tensors, {len(tokens)} tokens)", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
