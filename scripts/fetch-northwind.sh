#!/usr/bin/env bash
# Builds the Northwind database that assets/unseen/northwind_pairs.jsonl is asked of: a
# database outside ../shared/ that no rule or threshold was tuned on (docs/eval.md).
# Source: jpwhite3/northwind-SQLite3 (MIT licence), pinned to one commit and checked.
# usage: scripts/fetch-northwind.sh [OUT.sqlite]   (default: runs/northwind.sqlite)
# Offline: NORTHWIND_SQL=path/to/create.sql (the same file, checked the same way).
set -euo pipefail
out=${1:-runs/northwind.sqlite}
commit=4f56e7f5906dfd23b25244c5bfe8fb5da6402efd
url=https://raw.githubusercontent.com/jpwhite3/northwind-SQLite3/$commit/src/create.sql
sha=5854b536dea3fe8c586223bf7b47a793727dd44c34fc32537a68a97fec8e2f4b
if [[ -e $out ]]; then
    echo "$out already exists" >&2
    exit 0
fi
mkdir -p "$(dirname "$out")"
tmp=$(mktemp)
trap 'rm -f "$tmp" "$out.partial"' EXIT
if [[ -n ${NORTHWIND_SQL:-} ]]; then
    cp "$NORTHWIND_SQL" "$tmp"
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
