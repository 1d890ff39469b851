#!/usr/bin/env bash
# Creates, once, the Python virtualenv holding Microsoft's Azure SDK for Python at the versions
# pinned in tests/azure_sdk/requirements.txt (the judge of the fake Azure servers, run by
# tests/azure_sdk.rs), and prints the path of its python. The venv lives under the cache
# (${AMLSECRETS_CACHE:-~/.cache/amlsecrets}/python/azure-sdk-KEY), keyed by the requirements file
# and the Python version, so a change of either makes a new one. Needs python3 with venv and pip
# (PYTHON overrides which one) and the package registry.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${AMLSECRETS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/amlsecrets}"
REQ=tests/azure_sdk/requirements.txt
PY="${PYTHON:-python3}"
die() { echo "sdk-venv.sh: $*" >&2; exit 1; }
command -v "$PY" >/dev/null || die "$PY not found: the Azure SDK tests need Python 3.9 or later with venv (apt-get install python3 python3-venv)"
pyver="$("$PY" -c 'import sys; print(sys.version.split()[0])')" || die "$PY does not run"
key="$( { cat "$REQ"; echo "$pyver"; } | sha256sum | cut -c1-16)"
VENV="$CACHE/python/azure-sdk-$key"
if [[ ! -e "$VENV/.complete" ]]; then
  mkdir -p "$CACHE/python"
  exec 9>"$CACHE/python/.lock"
  flock 9  # parallel tests may ask at once: one creates, the others wait and reuse
  if [[ ! -e "$VENV/.complete" ]]; then
    rm -rf "$VENV"
    echo "sdk-venv.sh: creating $VENV (Python $pyver)" >&2
    "$PY" -m venv "$VENV" >&2 || die "'$PY -m venv' failed (on Debian: apt-get install python3-venv)"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$REQ" >&2 \
      || { rm -rf "$VENV"; die "pip could not install $REQ"; }
    touch "$VENV/.complete"
  fi
fi
echo "$VENV/bin/python"
