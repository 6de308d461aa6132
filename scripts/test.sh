#!/usr/bin/env bash
# Installs what is missing and runs the whole test suite, the real-model tests included.
set -euo pipefail
. "$(dirname "$0")/common.sh"
install_system_packages
fetch_model
fetch_embedder
cd "$repo_root"
cargo test --no-fail-fast "$@"
