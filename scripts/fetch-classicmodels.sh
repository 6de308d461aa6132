#!/usr/bin/env bash
# Builds the ClassicModels database that assets/unseen/classicmodels_pairs.jsonl is asked of: a
# second database outside ../shared/ that no rule or threshold was tuned on (docs/eval.md).
# Source: excomplicated/classicmodelssqlite (a SQLite copy of the mysqltutorial.org
# 'classicmodels' sample, itself the Eclipse BIRT "Classic Models" sample database; the repository
# has no LICENSE file, see assets/unseen/README.md), pinned to one commit and checked.
# usage: scripts/fetch-classicmodels.sh [OUT.sqlite]   (default: runs/classicmodels.sqlite)
# Offline: CLASSICMODELS_SQL=path/to/classicmodels.sql (the same file, checked the same way).
set -euo pipefail
. "$(dirname "$0")/common.sh"
out=${1:-runs/classicmodels.sqlite}
commit=32f0335a66322a65a19dc6840a18b2328ae1a9db
url=https://raw.githubusercontent.com/excomplicated/classicmodelssqlite/$commit/classicmodels.sql
sha=43e8614cf3cebc8062878abc3b3688c221df4d25bb0865a21a128dafca157dbe
build_checked_sqlite "$out" "$url" "$sha" "${CLASSICMODELS_SQL:-}"
