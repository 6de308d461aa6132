#!/usr/bin/env bash
# Builds the Northwind database that assets/unseen/northwind_pairs.jsonl is asked of: a
# database outside ../shared/ that no rule or threshold was tuned on (docs/eval.md).
# Source: jpwhite3/northwind-SQLite3 (MIT licence), pinned to one commit and checked.
# usage: scripts/fetch-northwind.sh [OUT.sqlite]   (default: runs/northwind.sqlite)
# Offline: NORTHWIND_SQL=path/to/create.sql (the same file, checked the same way).
set -euo pipefail
. "$(dirname "$0")/common.sh"
out=${1:-runs/northwind.sqlite}
commit=4f56e7f5906dfd23b25244c5bfe8fb5da6402efd
url=https://raw.githubusercontent.com/jpwhite3/northwind-SQLite3/$commit/src/create.sql
sha=5854b536dea3fe8c586223bf7b47a793727dd44c34fc32537a68a97fec8e2f4b
build_checked_sqlite "$out" "$url" "$sha" "${NORTHWIND_SQL:-}"
