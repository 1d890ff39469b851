#!/usr/bin/env bash
# The real node's PID 1: runs inside fresh PID, mount and network namespaces
# (`unshare --pid --mount --net --fork --kill-child --mount-proc --propagation private`),
# so every process it starts, every mount it makes and every interface it creates dies with it.
#
# Usage: node.sh DIR BIN_DIR [IMAGE_ARCHIVE…]
#   DIR holds the configuration written by the harness (node/config.rs); logs go to DIR/logs.
#   BIN_DIR holds etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kubectl.
# Writes DIR/started once every component runs and the images are imported; exits (and so
# ends the namespaces) as soon as any component exits.
set -euo pipefail
dir=$1 bin=$2
shift 2
node_ip=$(cat "$dir/node-ip")
service_ip=$(cat "$dir/service-ip")
log() { echo "node: $*" >&2; }

# Writable places the components hard-code, private to this mount namespace.
for d in /run /var/lib /var/log; do mount -t tmpfs -o mode=0755 tmpfs "$d"; done
# The kubelet "fixes" these host-wide sysctls; show it the values it wants instead.
for kv in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1; do
  key=${kv%=*} want=${kv#*=}
  if [ "$(cat "/proc/sys/$key")" != "$want" ]; then
    file="$dir/sysctl/${key//\//.}"
    mkdir -p "$dir/sysctl"
    echo "$want" >"$file"
    mount --bind "$file" "/proc/sys/$key"
  fi
done

# Every pod's cgroup lives under one cgroup of our own in each hierarchy (cgroup v1 is not
# namespaced); the harness's watchdog removes it once the namespace's processes are gone.
cgroup_root=$(cat "$dir/cgroup-root")
for hierarchy in /sys/fs/cgroup/*/; do mkdir -p "$hierarchy$cgroup_root"; done
if [ -d "/sys/fs/cgroup/cpuset/$cgroup_root" ]; then
  cat /sys/fs/cgroup/cpuset/cpuset.cpus >"/sys/fs/cgroup/cpuset/$cgroup_root/cpuset.cpus"
  cat /sys/fs/cgroup/cpuset/cpuset.mems >"/sys/fs/cgroup/cpuset/$cgroup_root/cpuset.mems"
fi

# The node's address: a veth pair living entirely in this namespace (no dummy driver here),
# and the `kubernetes` Service's ClusterIP as a local address, where the API server listens
# on 443 (no kube-proxy, no iptables rule needed).
ip link set lo up
ip link add node0 type veth peer name node0-peer
ip addr add "$node_ip/24" dev node0
ip link set node0 up
ip link set node0-peer up
ip route add default dev node0
ip addr add "$service_ip/32" dev lo

mkdir -p "$dir/logs"
declare -A pids=()
start() {
  local name=$1
  shift
  "$@" >"$dir/logs/$name.log" 2>&1 &
  pids[$!]=$name
}
wait_for() { # wait_for WHAT TEST…: up to 60 s
  local what=$1
  shift
  for _ in $(seq 1 600); do
    "$@" && return 0
    sleep 0.1
  done
  log "$what did not come up; see $dir/logs"
  exit 1
}

start etcd "$bin/etcd" --name=node --data-dir=/var/lib/etcd \
  --listen-client-urls=http://127.0.0.1:2379 --advertise-client-urls=http://127.0.0.1:2379 \
  --listen-peer-urls=http://127.0.0.1:2380 --initial-advertise-peer-urls=http://127.0.0.1:2380 \
  --initial-cluster=node=http://127.0.0.1:2380 --unsafe-no-fsync=true --log-level=warn
# shellcheck disable=SC2046 # one argument per line
start kube-apiserver "$bin/kube-apiserver" $(cat "$dir/apiserver.args")
start containerd containerd --config "$dir/containerd.toml"
wait_for containerd test -S "$dir/containerd.sock"
for image in "$@"; do
  ctr --address "$dir/containerd.sock" -n k8s.io images import "$image" >"$dir/logs/import.log" 2>&1 ||
    { log "importing $image failed: $(cat "$dir/logs/import.log")"; exit 1; }
done
# The other components need the API server's bootstrap RBAC policy in place.
apiserver_ready() {
  [ "$("$bin/kubectl" --kubeconfig="$dir/scheduler.kubeconfig" get --raw=/readyz 2>/dev/null)" = ok ]
}
wait_for kube-apiserver apiserver_ready
# shellcheck disable=SC2046
start kube-controller-manager "$bin/kube-controller-manager" $(cat "$dir/controller-manager.args")
# shellcheck disable=SC2046
start kube-scheduler "$bin/kube-scheduler" $(cat "$dir/scheduler.args")
# shellcheck disable=SC2046
start kubelet "$bin/kubelet" $(cat "$dir/kubelet.args")
# The harness's way in: the API server through a socket file (the test process lives outside).
start apiserver-bridge socat "UNIX-LISTEN:$dir/apiserver.sock,fork,unlink-early" "TCP:$node_ip:443"
wait_for apiserver-bridge test -S "$dir/apiserver.sock"
touch "$dir/started"
log "started: ${pids[*]}"

# Any component ending ends the node (and, being PID 1, everything in it).
set +e
wait -n "${!pids[@]}"
status=$?
for pid in "${!pids[@]}"; do
  kill -0 "$pid" 2>/dev/null || log "${pids[$pid]} exited (status $status); log: $dir/logs/${pids[$pid]}.log"
done
exit 1
