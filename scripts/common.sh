# Shared by the set-up scripts: installs what the build needs and fetches the model.
# Sourced, not run. Every step is skipped when its result is already there.

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The llama.cpp and DuckDB builds take minutes; a target directory outside the checkout survives
# fresh clones, so a second run (or CI on the same machine) reuses it.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/nano-analyst/cargo-target}"

say() { echo "setup: $*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    say "need root for: $*"; return 1; fi
}

install_system_packages() {
  local missing=()
  command -v cmake >/dev/null || missing+=(cmake)
  command -v c++ >/dev/null || missing+=(g++)
  command -v clang >/dev/null || missing+=(clang)
  dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
  command -v python3 >/dev/null || missing+=(python3 python3-pip)
  # The embedding model's converter runs in a virtual environment.
  python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
  command -v tmux >/dev/null || missing+=(tmux)
  # The PostgreSQL tests start their own server from these binaries (tests/support/postgres.rs).
  [ -x /usr/lib/postgresql/15/bin/initdb ] || command -v initdb >/dev/null || missing+=(postgresql-15)
  # ...and make its TLS certificates with the openssl tool.
  command -v openssl >/dev/null || missing+=(openssl)
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if ! command -v cargo >/dev/null; then
    [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
  fi
  command -v cargo >/dev/null || { say "cargo not found: install Rust (rustup) first"; return 1; }
}

fetch_model() {
  NANO_ANALYST_MODEL="${NANO_ANALYST_MODEL:-$("$repo_root/scripts/fetch-model.sh")}"
  export NANO_ANALYST_MODEL
}

# The embedding model for schema retrieval. Optional: when it cannot be fetched or
# converted the app runs retrieval on BM25 alone and says so, so a failure only warns.
fetch_embedder() {
  local path
  if path="$("$repo_root/scripts/fetch-embedder.sh")"; then
    NANO_ANALYST_EMBED_MODEL="${NANO_ANALYST_EMBED_MODEL:-$path}"
    export NANO_ANALYST_EMBED_MODEL
  else
    say "could not fetch the embedding model; schema retrieval will use BM25 only"
  fi
}

# Builds an SQLite database from one SQL script, pinned by its sha256: downloaded from URL, or
# copied from LOCAL when that is set (offline). Leaves an existing OUT alone; a failed check or
# build leaves no OUT behind.
# usage: build_checked_sqlite OUT URL SHA256 [LOCAL]
build_checked_sqlite() (
  set -euo pipefail
  local out=$1 url=$2 sha=$3 local_copy=${4:-}
  if [[ -e $out ]]; then
    echo "$out already exists" >&2
    exit 0
  fi
  mkdir -p "$(dirname "$out")"
  local tmp
  tmp=$(mktemp)
  trap 'rm -f "$tmp" "$out.partial"' EXIT
  if [[ -n $local_copy ]]; then
    cp "$local_copy" "$tmp"
  else
    curl -fsSL "$url" -o "$tmp"
  fi
  echo "$sha  $tmp" | sha256sum -c --quiet -
  python3 - "$tmp" "$out.partial" <<'PY'
import sqlite3, sys
script, out = sys.argv[1], sys.argv[2]
with open(script, encoding="utf-8") as sql:
    connection = sqlite3.connect(out)
    connection.executescript(sql.read())
    connection.commit()
    connection.close()
PY
  mv "$out.partial" "$out"
  echo "wrote $out"
)
