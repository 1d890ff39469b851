#!/usr/bin/env bash
# Builds, once, the pinned binaries the integration tests run: kube-apiserver and kubectl
# (from the k8s.io/kubernetes Go module, staging modules replaced at the matching v0.x
# version), etcd (from the etcd server module) and helm (from the Helm Go module); for the
# real node also kubelet, kube-controller-manager, kube-scheduler (same module) and the pause
# container's binary (a static build of the module's build/pause/linux/pause.c, needs a C compiler).
# Binaries are cached outside the repository, keyed by version, and reused by later runs.
#
# Usage: scripts/build-control-plane.sh [kube-apiserver|etcd|kubectl|helm|kubelet|
#          kube-controller-manager|kube-scheduler|pause ...]
#   (no argument: the control plane's four: etcd, kube-apiserver, kubectl, helm). Prints the bin directory on its last line.
# Environment: AMLSECRETS_TOOLS_DIR (default: $XDG_CACHE_HOME or ~/.cache, then amlsecrets/tools).
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"   # matches k8s-openapi's newest feature (v1_37)
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"

TOOLS_DIR="${AMLSECRETS_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/amlsecrets/tools}"
BIN_DIR="$TOOLS_DIR/bin"
SRC_DIR="$TOOLS_DIR/src"
mkdir -p "$BIN_DIR" "$SRC_DIR"
# One build at a time per tools directory (test binaries may start in parallel).
if command -v flock >/dev/null; then
  exec 9>"$TOOLS_DIR/.build.lock"
  flock 9
fi
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
export CGO_ENABLED=0

log() { echo "build-control-plane: $*" >&2; }

# Writes a throw-away Go module in $1 that depends on $2@$3 and imports the packages $4…,
# so that `go mod tidy` resolves the dependency graph; extra replace lines come on stdin.
# Skipped when $1 was already resolved for the same packages.
wrapper_module() {
  local dir=$1 module=$2 version=$3
  shift 3
  if [ -f "$dir/go.sum" ] && [ "$(cat "$dir/.packages" 2>/dev/null)" = "$*" ]; then
    cat >/dev/null
    return
  fi
  log "resolving $module@$version"
  mkdir -p "$dir"
  cat >"$dir/go.mod" <<GOMOD
module amlsecrets.local/tools

go 1.26

require $module $version
GOMOD
  cat >>"$dir/go.mod"
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    printf '\t_ "%s"\n' "$@"
    printf ')\n'
  } >"$dir/tools.go"
  (cd "$dir" && go mod tidy -e >/dev/null)
  echo "$*" >"$dir/.packages"
}

# Every Kubernetes binary is resolved in one module, so each gets the same dependency
# versions whichever is built first.
KUBE_PACKAGES=(k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl
  k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-controller-manager
  k8s.io/kubernetes/cmd/kube-scheduler)

build_kubernetes() {
  local name=$1 pkg=$2
  local out="$BIN_DIR/$name-$KUBE_VERSION"
  [ -x "$out" ] && { log "$name $KUBE_VERSION cached"; return; }
  local dir="$SRC_DIR/kubernetes-$KUBE_VERSION"
  local staging="v0.${KUBE_VERSION#v1.}"
  # k8s.io/kubernetes replaces its staging modules with local paths; a consumer must
  # replace them with the published v0.x tags instead.
  local gomod
  gomod=$(cd "$SRC_DIR" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$gomod" | awk '{print $1}' | sort -u |
    sed "s|.*|replace & => & $staging|" |
    wrapper_module "$dir" k8s.io/kubernetes "$KUBE_VERSION" "${KUBE_PACKAGES[@]}"
  log "building $name $KUBE_VERSION"
  local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  local v=k8s.io/component-base/version
  (cd "$dir" && go build -trimpath -o "$out.tmp" \
    -ldflags "-s -w -X $v.gitVersion=$KUBE_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean" \
    "$pkg")
  mv "$out.tmp" "$out"
}

build_etcd() {
  local out="$BIN_DIR/etcd-$ETCD_VERSION"
  [ -x "$out" ] && { log "etcd $ETCD_VERSION cached"; return; }
  local dir="$SRC_DIR/etcd-$ETCD_VERSION"
  wrapper_module "$dir" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3 </dev/null
  log "building etcd $ETCD_VERSION"
  (cd "$dir" && go build -trimpath -ldflags "-s -w" -o "$out.tmp" go.etcd.io/etcd/server/v3)
  mv "$out.tmp" "$out"
}

build_helm() {
  local out="$BIN_DIR/helm-$HELM_VERSION"
  [ -x "$out" ] && { log "helm $HELM_VERSION cached"; return; }
  local dir="$SRC_DIR/helm-$HELM_VERSION"
  wrapper_module "$dir" helm.sh/helm/v3 "$HELM_VERSION" helm.sh/helm/v3/cmd/helm </dev/null
  log "building helm $HELM_VERSION"
  (cd "$dir" && go build -trimpath -o "$out.tmp" \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" helm.sh/helm/v3/cmd/helm)
  mv "$out.tmp" "$out"
}

# The pause container's process (PID 1 of every pod sandbox), static so that the image is
# `FROM scratch`; its source ships in the k8s.io/kubernetes module.
build_pause() {
  local out="$BIN_DIR/pause-$KUBE_VERSION"
  [ -x "$out" ] && { log "pause $KUBE_VERSION cached"; return; }
  local dir
  dir=$(cd "$SRC_DIR" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  command -v cc >/dev/null || { log "pause needs a C compiler (apt-get install gcc libc6-dev)"; exit 1; }
  log "building pause $KUBE_VERSION"
  cc -Os -static -Wall -DVERSION="$KUBE_VERSION" -o "$out.tmp" "$dir/build/pause/linux/pause.c"
  strip "$out.tmp" 2>/dev/null || true
  mv "$out.tmp" "$out"
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(etcd kube-apiserver kubectl helm)
for t in "${targets[@]}"; do
  case $t in
    kube-apiserver) build_kubernetes kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver; v=$KUBE_VERSION ;;
    kubectl) build_kubernetes kubectl k8s.io/kubernetes/cmd/kubectl; v=$KUBE_VERSION ;;
    kubelet | kube-controller-manager | kube-scheduler)
      build_kubernetes "$t" "k8s.io/kubernetes/cmd/$t"; v=$KUBE_VERSION ;;
    pause) build_pause; v=$KUBE_VERSION ;;
    etcd) build_etcd; v=$ETCD_VERSION ;;
    helm) build_helm; v=$HELM_VERSION ;;
    *) echo "unknown target: $t" >&2; exit 2 ;;
  esac
  # The unversioned name always points at the pinned version, even if others are cached.
  ln -sfn "$t-$v" "$BIN_DIR/$t"
done
echo "$BIN_DIR"
