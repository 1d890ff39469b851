#!/usr/bin/env bash
# Runs every test of amlsecrets: formatting, clippy, unit tests, the integration tests against
# a real kube-apiserver + etcd and the fake Azure servers (judged by Microsoft's Azure SDK), and
# the end-to-end tests on a real single-node cluster (kubelet, containerd; tests/real_node.rs).
# Builds, installs or fetches whatever is missing first (cached under ~/.cache/amlsecrets).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${AMLSECRETS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/amlsecrets}"
export AMLSECRETS_TOOLS_DIR="${AMLSECRETS_TOOLS_DIR:-$CACHE/tools}"
# One Cargo build cache for every checkout of this repository on the machine.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

step "toolchain components"
for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done

step "test control plane and tools (etcd, kube-apiserver, kubectl, helm)"
scripts/build-control-plane.sh etcd kube-apiserver kubectl helm

# --- Azure SDK judge (tests/azure_sdk.rs): Microsoft's Azure SDK for Python in a cached venv ---
step "Python venv with Microsoft's Azure SDK (tests/azure_sdk/requirements.txt)"
AMLSECRETS_SDK_PYTHON="$(scripts/sdk-venv.sh)"
export AMLSECRETS_SDK_PYTHON
# --- end Azure SDK judge ---

step "real node: packages (containerd, runc, CNI plugins, buildah, …) and binaries (kubelet, …)"
scripts/real-node-deps.sh
scripts/build-control-plane.sh kubelet kube-controller-manager kube-scheduler pause

step "images: the operator from the Dockerfile, busybox, pause (buildah, no daemon)"
scripts/build-image.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test"
log="$(mktemp)"
# The real-node tests append their measured figures (node start, rotation, failover, memory) here.
export AMLSECRETS_MEASUREMENTS="$(mktemp)"
trap 'rm -f "$log" "$AMLSECRETS_MEASUREMENTS"' EXIT
cargo test --workspace -- "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if [ -s "$AMLSECRETS_MEASUREMENTS" ]; then
  step "real-node measurements"
  cat "$AMLSECRETS_MEASUREMENTS"
fi
# One closing line for the whole run (cargo prints one per test binary, the last often empty).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) g += $i } }
     END { printf "\ntests: %d passed, %d failed, %d skipped\n", p, f, g }' "$log"
exit "$status"
