#!/usr/bin/env bash
# `scripts/try-out.sh --real-node`: the whole user story on a real single-node cluster, with no
# Azure subscription, no cluster and no container engine (needs root for the node's namespaces):
#   the operator's image built from the Dockerfile, `helm install` of the chart, an
#   AzureMLWorkspace + WorkspaceSecret, a pod printing its mounted Secret, and a rotation in the
#   (fake) Key Vault arriving in that running pod.
# Usage: scripts/try-out-real-node.sh [--keep]   (normally through scripts/try-out.sh --real-node)
set -euo pipefail
cd "$(dirname "$0")/.."

KEEP=false
for arg in "$@"; do
  case "$arg" in
    --keep) KEEP=true ;;
    --real-node) ;;
    *) echo "usage: scripts/try-out.sh --real-node [--keep]" >&2; exit 2 ;;
  esac
done
CACHE="${AMLSECRETS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/amlsecrets}"
export AMLSECRETS_TOOLS_DIR="${AMLSECRETS_TOOLS_DIR:-$CACHE/tools}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
[ "$(id -u)" -eq 0 ] || { echo "the real node needs root (namespaces, mounts, cgroups)" >&2; exit 1; }

say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
started=$(date +%s)
work=$(mktemp -d -t amlsecrets-try-out.XXXXXX)
node_pid=
cleanup() {
  exec 7>&- 2>/dev/null || true
  [ -n "$node_pid" ] && { kill -TERM "$node_pid" 2>/dev/null || true; wait "$node_pid" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "building what is missing (node binaries, packages, the operator's image)"
scripts/real-node-deps.sh
BIN=$(scripts/build-control-plane.sh etcd kube-apiserver kubectl helm kubelet kube-controller-manager kube-scheduler pause | tail -n1)
KUBECTL="$BIN/kubectl"
HELM="$BIN/helm"
scripts/build-image.sh >/dev/null
cargo build --quiet -p testenv --bin real-node
TARGET=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')

say "starting the real node (kubelet, containerd, control plane) and the fake Azure"
mkfifo "$work/vault"
"$TARGET/debug/real-node" "$work" --fake-azure <"$work/vault" >"$work/node.env" 2>"$work/node.log" &
node_pid=$!
exec 7>"$work/vault" # keeps the node's stdin open; lines NAME=VALUE rotate vault secrets
for _ in $(seq 1 900); do
  grep -q REAL_NODE_READY=1 "$work/node.env" 2>/dev/null && break
  kill -0 "$node_pid" 2>/dev/null || { cat "$work/node.log" >&2; echo "the node exited" >&2; exit 1; }
  sleep 0.2
done
grep -q REAL_NODE_READY=1 "$work/node.env" || { cat "$work/node.log" >&2; exit 1; }
# shellcheck disable=SC1091
source "$work/node.env"
export KUBECONFIG
export HELM_CACHE_HOME="$work/helm/cache" HELM_CONFIG_HOME="$work/helm/config"
grep -E "Ready in" "$work/node.log" >&2 || true
"$KUBECTL" get nodes -o wide

say "helm install amlsecrets (image amlsecrets:e2e, the fake Azure's CA as extraCaBundle)"
"$HELM" install amlsecrets charts/amlsecrets --namespace amlsecrets-system --create-namespace \
  --set image.repository=amlsecrets --set image.tag=e2e --set image.pullPolicy=Never \
  --set-file extraCaBundle="$FAKE_AZURE_CA_FILE" --wait --timeout 4m
"$KUBECTL" -n amlsecrets-system get pods -o wide

say "applying an AzureMLWorkspace (service principal) and a WorkspaceSecret in namespace ml-team"
"$KUBECTL" create namespace ml-team
"$KUBECTL" -n ml-team create secret generic ml-prod-sp --from-literal=clientSecret="$FAKE_AZURE_CLIENT_SECRET"
"$KUBECTL" apply -f - <<EOF
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
apiVersion: amlsecrets.io/v1alpha1
kind: WorkspaceSecret
metadata:
  name: db-credentials
  namespace: ml-team
spec:
  workspaceRef: {name: ml-prod}
  refreshInterval: 10s
  data:
    - {key: username, ref: "keyvault:db-username"}
    - {key: password, ref: "keyvault:db-password"}
EOF
if ! "$KUBECTL" -n ml-team wait wsec/db-credentials --for=jsonpath='{.status.conditions[0].reason}'=Synced --timeout=120s; then
  "$KUBECTL" -n ml-team get amlws,wsec -o yaml >&2
  "$KUBECTL" -n amlsecrets-system logs deploy/amlsecrets --tail=40 >&2 || true
  exit 1
fi
"$KUBECTL" -n ml-team get amlws,wsec

say "a pod that mounts the Secret and prints it every 2 s"
"$KUBECTL" apply -f - <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: app
  namespace: ml-team
spec:
  terminationGracePeriodSeconds: 0
  automountServiceAccountToken: false
  containers:
    - name: app
      image: amlsecrets-e2e/busybox:local
      imagePullPolicy: Never
      command: ["/bin/busybox", "sh", "-c", "while true; do echo \"\$(/bin/busybox date +%T) password=\$(/bin/busybox cat /secret/password)\"; /bin/busybox sleep 2; done"]
      volumeMounts: [{name: secret, mountPath: /secret, readOnly: true}]
  volumes:
    - name: secret
      secret: {secretName: db-credentials}
EOF
"$KUBECTL" -n ml-team wait pod/app --for=condition=Ready --timeout=90s >/dev/null
sleep 3
"$KUBECTL" -n ml-team logs app --tail=2

say "rotating db-password in the (fake) Key Vault; watching the pod's output"
rotated="rotated-$(date +%s)"
echo "db-password=$rotated" >&7
t0=$(date +%s)
until "$KUBECTL" -n ml-team logs app --tail=1 | grep -q "$rotated"; do
  [ $(( $(date +%s) - t0 )) -lt 90 ] || { echo "the rotation did not arrive in 90 s" >&2; exit 1; }
  sleep 1
done
"$KUBECTL" -n ml-team logs app --tail=3
echo "the new value reached the running pod after $(( $(date +%s) - t0 )) s (refresh interval 10 s + kubelet sync 10 s)" >&2

say "done in $(( $(date +%s) - started )) s"
if $KEEP; then
  echo "Everything keeps running. In another shell:" >&2
  echo "  export KUBECONFIG=$KUBECONFIG" >&2
  echo "  $KUBECTL -n ml-team logs -f app" >&2
  echo "  $KUBECTL -n amlsecrets-system logs deploy/amlsecrets" >&2
  echo "Ctrl-C stops the node and removes it all." >&2
  while sleep 3600; do :; done
fi
