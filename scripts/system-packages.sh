#!/usr/bin/env bash
# The Debian packages beyond Python that the local cluster and its tests use:
# PostgreSQL (the metadata database of scripts/cluster.sh) and Chromium (the
# browser of the UI test). Installs only what is missing: as root with
# apt-get, otherwise with sudo; says what to install where it cannot.
set -euo pipefail
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
echo "[system-packages] installing ${need[*]}" >&2
if [ "$(id -u)" = 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "[system-packages] error: need ${need[*]} (Debian: apt-get install -y ${need[*]}) and cannot install as $(id -un)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
