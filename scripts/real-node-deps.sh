#!/usr/bin/env bash
# Installs the Debian packages the real single-node cluster needs when any is missing:
# containerd + runc (the container runtime), the CNI plugins (bridge, host-local, loopback),
# buildah (images without a daemon), busybox-static (the consumer pods' image), socat (the
# harness's bridges into the node's network namespace), iptables, a C compiler (the pause
# binary). Needs root (or passwordless sudo) the first time; a no-op once they are present.
set -euo pipefail

packages=(containerd runc containernetworking-plugins buildah busybox-static socat iptables gcc libc6-dev util-linux iproute2)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "real-node-deps: installing ${missing[*]}" >&2
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
if ! command -v apt-get >/dev/null; then
  echo "real-node-deps: missing ${missing[*]} and no apt-get: install them by hand" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
