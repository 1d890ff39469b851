#!/usr/bin/env bash
# Runs the efficiency benchmark: builds the release operator, then runs it against the test
# control plane and the fake Key Vault. Options go to the benchmark (see tests/testenv/src/bin/bench.rs);
# the last line of output is a JSON summary.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${AMLSECRETS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/amlsecrets}"
export AMLSECRETS_TOOLS_DIR="${AMLSECRETS_TOOLS_DIR:-$CACHE/tools}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
scripts/build-control-plane.sh etcd kube-apiserver >/dev/null
cargo build --release --bin amlsecrets >&2
exec cargo run --release -q -p testenv --bin bench -- --operator "$CARGO_TARGET_DIR/release/amlsecrets" "$@"
