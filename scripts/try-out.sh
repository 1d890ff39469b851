#!/usr/bin/env bash
# The local try-out: a real kube-apiserver + etcd, a fake Azure (Entra ID, ARM, Key Vault over
# https with a throw-away CA), the operator, an AzureMLWorkspace and a WorkspaceSecret, and the
# synced Secret — no Azure subscription, no cluster, no container engine.
#
# Usage: scripts/try-out.sh [--real-node] [--keep]
#   --real-node  the whole user story on a real single-node cluster (kubelet, containerd; needs
#                root): the operator's image, `helm install` of the chart, a WorkspaceSecret, a
#                pod printing its mounted Secret, and a rotation in the vault arriving in that pod.
#   --keep       leave everything running after the demo (until Ctrl-C) to explore with kubectl.
set -euo pipefail
cd "$(dirname "$0")/.."

KEEP=false
REAL_NODE=false
for arg in "$@"; do
  case "$arg" in
    --keep) KEEP=true ;;
    --real-node) REAL_NODE=true ;;
    *) echo "usage: scripts/try-out.sh [--real-node] [--keep]" >&2; exit 2 ;;
  esac
done
# The test command's build cache (scripts/test.sh): nothing is built twice.
CACHE="${AMLSECRETS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/amlsecrets}"
export AMLSECRETS_TOOLS_DIR="${AMLSECRETS_TOOLS_DIR:-$CACHE/tools}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
if $REAL_NODE; then
  exec scripts/try-out-real-node.sh "$@"
fi

say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
started=$(date +%s)
work=$(mktemp -d -t amlsecrets-try-out.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "building what is missing (control plane binaries from their Go modules, the operator)"
BIN=$(scripts/build-control-plane.sh etcd kube-apiserver kubectl | tail -n1)
KUBECTL="$BIN/kubectl"
cargo build --quiet --bin amlsecrets -p amlsecrets
cargo build --quiet -p testenv --bin control-plane --bin fake-azure
TARGET=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
TARGET="${TARGET:-target}/debug"

# Starts a background process writing `export …` lines; waits for the line matching $3.
start() {
  local name=$1 out=$2 ready=$3; shift 3
  "$@" >"$out" 2>"$work/$name.log" &
  pids+=("$!")
  for _ in $(seq 1 600); do
    grep -q "$ready" "$out" 2>/dev/null && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || { cat "$work/$name.log" >&2; echo "$name exited" >&2; exit 1; }
    sleep 0.2
  done
  echo "$name did not start in 120 s; log: $work/$name.log" >&2; exit 1
}

say "starting the test control plane (kube-apiserver + etcd)"
start control-plane "$work/cp.env" "export KUBECONFIG=" "$TARGET/control-plane" "$work/cp"
# shellcheck disable=SC1091
source "$work/cp.env"
export KUBECONFIG
say "starting the fake Azure"
start fake-azure "$work/azure.env" "FAKE_AZURE_READY=1" "$TARGET/fake-azure" "$work/azure"
# shellcheck disable=SC1091
source "$work/azure.env"

say "installing the CRDs"
"$KUBECTL" apply --server-side -f crds/
"$KUBECTL" wait --for=condition=Established crd --all --timeout=60s >/dev/null

say "running the operator (namespace ml-team, extra CA: the fake Azure's)"
ADMIN_PORT=$(( 20000 + RANDOM % 20000 ))
"$TARGET/amlsecrets" run --namespaces=ml-team --operator-namespace=ml-team \
  --extra-ca-file="$FAKE_AZURE_CA_FILE" --admin-addr="127.0.0.1:$ADMIN_PORT" \
  >"$work/operator.log" 2>&1 &
pids+=("$!")

say "applying an AzureMLWorkspace (service principal) and a WorkspaceSecret"
"$KUBECTL" create namespace ml-team
"$KUBECTL" -n ml-team create secret generic ml-prod-sp --from-literal=clientSecret="$FAKE_AZURE_CLIENT_SECRET"
"$KUBECTL" apply -f - <<EOF
# examples/workspace-service-principal-secret.yaml, pointed at the fakes (cloud: Custom).
apiVersion: amlsecrets.io/v1alpha1
kind: AzureMLWorkspace
metadata:
  name: ml-prod
  namespace: ml-team
spec:
  subscriptionId: 00000000-1111-2222-3333-444444444444
  resourceGroup: rg-ml
  workspaceName: mlw-prod
  cloud: Custom
  customCloud:
    authorityHost: $FAKE_AZURE_AUTHORITY_HOST
    resourceManagerEndpoint: $FAKE_AZURE_ARM_ENDPOINT
    keyVaultDnsSuffix: .vault.test
    keyVaultAudience: $FAKE_AZURE_KEYVAULT_AUDIENCE
  keyVault:
    uri: $FAKE_AZURE_VAULT_URI
  auth:
    servicePrincipal:
      tenantId: $FAKE_AZURE_TENANT
      clientId: $FAKE_AZURE_CLIENT_ID
      clientSecretRef: {name: ml-prod-sp, key: clientSecret}
---
# examples/secret-explicit-items.yaml, reduced to the two secrets the fake vault holds.
apiVersion: amlsecrets.io/v1alpha1
kind: WorkspaceSecret
metadata:
  name: db-credentials
  namespace: ml-team
spec:
  workspaceRef: {name: ml-prod}
  refreshInterval: 1m
  data:
    - {key: username, ref: "keyvault:db-username"}
    - {key: password, ref: "\${{keyvault:db-password}}"}
EOF

say "waiting for the sync"
if ! "$KUBECTL" -n ml-team wait wsec/db-credentials --for=jsonpath='{.status.conditions[0].reason}'=Synced --timeout=120s; then
  "$KUBECTL" -n ml-team get amlws,wsec -o yaml >&2
  tail -n 40 "$work/operator.log" >&2
  exit 1
fi
"$KUBECTL" -n ml-team get amlws,wsec
say "the synced Secret"
"$KUBECTL" -n ml-team get secret db-credentials -o go-template='{{range $k, $v := .data}}{{$k}}: {{$v | base64decode}}{{"\n"}}{{end}}'
say "a few metrics (http://127.0.0.1:$ADMIN_PORT/metrics)"
exec 3<>"/dev/tcp/127.0.0.1/$ADMIN_PORT"
printf 'GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
grep -E '^amlsecrets_(reconciles_total|secret_keys|token_acquisitions_total|leader)' <&3 || true
exec 3<&-

say "done in $(( $(date +%s) - started )) s"
if $KEEP; then
  echo "Everything keeps running. In another shell:" >&2
  echo "  export KUBECONFIG=$KUBECONFIG" >&2
  echo "  $KUBECTL -n ml-team get amlws,wsec,secrets" >&2
  echo "Operator log: $work/operator.log. Ctrl-C stops and removes it all." >&2
  while sleep 3600; do :; done
fi
