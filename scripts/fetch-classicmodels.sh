#!/usr/bin/env bash
# Builds the ClassicModels database that assets/unseen/classicmodels_pairs.jsonl is asked of: a
# second database outside ../shared/ that no rule or threshold was tuned on (docs/eval.md).
# Source: excomplicated/classicmodelssqlite (a SQLite copy of the mysqltutorial.org
# 'classicmodels' sample, itself the Eclipse BIRT "Classic Models" sample database; the repository
# has no LICENSE file, see assets/unseen/README.md), pinned to one commit and checked.
# usage: scripts/fetch-classicmodels.sh [OUT.sqlite]   (default: runs/classicmodels.sqlite)
# Offline: CLASSICMODELS_SQL=path/to/classicmodels.sql (the same file, checked the same way).
set -euo pipefail
out=${1:-runs/classicmodels.sqlite}
commit=32f0335a66322a65a19dc6840a18b2328ae1a9db
url=https://raw.githubusercontent.com/excomplicated/classicmodelssqlite/$commit/classicmodels.sql
sha=43e8614cf3cebc8062878abc3b3688c221df4d25bb0865a21a128dafca157dbe
if [[ -e $out ]]; then
    echo "$out already exists" >&2
    exit 0
fi
mkdir -p "$(dirname "$out")"
tmp=$(mktemp)
trap 'rm -f "$tmp" "$out.partial"' EXIT
if [[ -n ${CLASSICMODELS_SQL:-} ]]; then
    cp "$CLASSICMODELS_SQL" "$tmp"
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
