#!/usr/bin/env bash
# Builds the images the real node runs, without a container engine and without pulling:
#   amlsecrets:e2e               the operator, from the repository's Dockerfile (BINARY=prebuilt:
#                                a static release binary built here with cargo, see the Dockerfile)
#   amlsecrets-e2e/busybox:local busybox-static on an empty base, for the consumer pods
#   registry.k8s.io/pause:3.10   the pod sandbox (static build of kubernetes' pause.c)
# with buildah (vfs storage and chroot isolation under the cache directory; nothing is written
# to /etc) and exports each as a docker archive that `ctr images import` loads.
#
# Usage: scripts/build-image.sh [--operator-only]
# Prints the images directory on its last line: amlsecrets.tar, busybox.tar, pause.tar.
# Environment: AMLSECRETS_CACHE (default ~/.cache/amlsecrets), CARGO_TARGET_DIR (default
# $AMLSECRETS_CACHE/target, shared with scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${AMLSECRETS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/amlsecrets}"
export AMLSECRETS_TOOLS_DIR="${AMLSECRETS_TOOLS_DIR:-$CACHE/tools}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
IMAGES="$CACHE/images"
BUILDAH_DIR="$CACHE/buildah"
OPERATOR_IMAGE="${AMLSECRETS_E2E_IMAGE:-amlsecrets:e2e}"
operator_only=false
[ "${1:-}" = "--operator-only" ] && operator_only=true

log() { echo "build-image: $*" >&2; }
mkdir -p "$IMAGES" "$BUILDAH_DIR/cni"
command -v buildah >/dev/null || scripts/real-node-deps.sh

# buildah would otherwise create /etc/cni/net.d (its default network configuration directory).
cat >"$BUILDAH_DIR/containers.conf" <<CONF
[network]
network_config_dir = "$BUILDAH_DIR/cni"
CONF
export CONTAINERS_CONF="$BUILDAH_DIR/containers.conf"
buildah() {
  command buildah --root "$BUILDAH_DIR/root" --runroot "$BUILDAH_DIR/run" --storage-driver vfs "$@"
}

# build NAME ARCHIVE CONTEXT [bud args…]: builds, exports to ARCHIVE, drops the local copy.
build() {
  local name=$1 archive=$2 context=$3
  shift 3
  buildah bud --quiet --isolation chroot --layers=false -t "$name" "$@" "$context" >/dev/null
  rm -f "$archive.tmp"
  buildah push --quiet "$name" "docker-archive:$archive.tmp:$name" >/dev/null
  buildah rmi "$name" >/dev/null
  # Stages leave working containers and untagged images behind; the storage is ours alone.
  buildah rm --all >/dev/null
  buildah rmi --prune >/dev/null 2>&1 || true
  mv "$archive.tmp" "$archive"
  log "$name -> $archive"
}

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT

if ! $operator_only; then
  if [ ! -s "$IMAGES/pause.tar" ]; then
    bin=$(scripts/build-control-plane.sh pause | tail -n1)
    mkdir -p "$ctx/pause"
    cp "$bin/pause" "$ctx/pause/pause"
    printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$ctx/pause/Containerfile"
    build registry.k8s.io/pause:3.10 "$IMAGES/pause.tar" "$ctx/pause" -f "$ctx/pause/Containerfile"
  fi
  if [ ! -s "$IMAGES/busybox.tar" ]; then
    mkdir -p "$ctx/busybox/bin"
    cp /bin/busybox "$ctx/busybox/bin/busybox"
    printf 'FROM scratch\nCOPY bin/busybox /bin/busybox\nENTRYPOINT ["/bin/busybox"]\n' >"$ctx/busybox/Containerfile"
    build amlsecrets-e2e/busybox:local "$IMAGES/busybox.tar" "$ctx/busybox" -f "$ctx/busybox/Containerfile"
  fi
fi

# The operator: the release binary, static glibc. An explicit --target keeps these artifacts
# apart from the normal build and keeps build scripts and proc macros dynamic.
target="$(uname -m)-unknown-linux-gnu"
log "cargo build --release --target $target (static)"
# The binary's path as cargo reports it (a cargo configuration may place the target dir elsewhere).
binary=$(RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --quiet --release --locked --bin amlsecrets --target "$target" --message-format=json |
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n1)
[ -x "$binary" ] || { echo "build-image: cargo reported no amlsecrets binary" >&2; exit 1; }
if ! ldd "$binary" 2>&1 | grep -qE 'statically linked|not a dynamic executable'; then
  echo "build-image: $binary is not static" >&2
  exit 1
fi
stamp=$(sha256sum "$binary" Dockerfile | sha256sum | cut -c1-16)
if [ "$(cat "$IMAGES/amlsecrets.stamp" 2>/dev/null)" != "$stamp" ] || [ ! -s "$IMAGES/amlsecrets.tar" ]; then
  mkdir -p "$ctx/operator"
  cp "$binary" "$ctx/operator/amlsecrets"
  build "$OPERATOR_IMAGE" "$IMAGES/amlsecrets.tar" "$ctx/operator" -f Dockerfile --build-arg BINARY=prebuilt
  echo "$stamp" >"$IMAGES/amlsecrets.stamp"
else
  log "$OPERATOR_IMAGE up to date ($IMAGES/amlsecrets.tar)"
fi
echo "$IMAGES"
