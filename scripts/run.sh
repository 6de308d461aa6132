#!/usr/bin/env bash
# Installs what is missing, builds, and opens the app: scripts/run.sh sample_dbs/chinook.db
set -euo pipefail
. "$(dirname "$0")/common.sh"
install_system_packages
fetch_model
fetch_embedder
cd "$repo_root"
cargo build --release --quiet
exec "$CARGO_TARGET_DIR/release/nano-analyst" "$@"
