#!/usr/bin/env bash
# Build every image docker-compose.yml needs on a machine without registry
# access, from Debian packages and the lock file, and point the compose file
# at them through .env:
#   bash scripts/compose-images.sh            # base, PostgreSQL, Redis, topo-classifier (cpu)
#   bash scripts/compose-images.sh --gpu      # also topo-classifier-gpu (the training worker's)
#   bash scripts/compose-images.sh --host-ca  # first copy this machine's CA bundle into docker/ca/
#                                             # (a proxy that re-signs TLS)
#   bash scripts/compose-images.sh --report FILE   # build times and sizes as JSON
#   bash scripts/compose-images.sh --env-file FILE # another env file than .env
# Needs a running Docker engine, mmdebstrap and root (or user namespaces) for
# the base. Images that exist are kept (the base, PostgreSQL and Redis) or
# rebuilt from the layer cache (the project's); --rebuild makes all afresh.
# With registry access none of this is needed: the compose file's defaults
# are the official images (postgres:16, redis:7, python:3.11-slim).
set -euo pipefail
cd "$(dirname "$0")/.."

suite=bookworm
mirror="${TOPO_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
base_image="topo-local/python:3.11-$suite"
postgres_image="topo-local/postgres:15"
redis_image="topo-local/redis:7"
tag="${TOPO_IMAGE_TAG:-latest}"
gpu=0 host_ca=0 rebuild=0 report="" env_file=.env
while [ $# -gt 0 ]; do
  case "$1" in
    --gpu) gpu=1 ;;
    --host-ca) host_ca=1 ;;
    --rebuild) rebuild=1 ;;
    --report) report="$2"; shift ;;
    --env-file) env_file="$2"; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "compose-images.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

docker info >/dev/null 2>&1 || { echo "compose-images.sh: no Docker engine answers (start dockerd first)" >&2; exit 1; }
# The legacy builder: Debian's engine has no buildx, and nothing here needs BuildKit.
export DOCKER_BUILDKIT=0
times=()

exists() { [ "$rebuild" = 0 ] && docker image inspect "$1" >/dev/null 2>&1; }
timed() {  # timed NAME COMMAND...: run it, remember how long it took
  local name=$1 start; shift
  start=$(date +%s)
  "$@"
  times+=("$name=$(( $(date +%s) - start ))")
}

if [ "$host_ca" = 1 ]; then
  cp /etc/ssl/certs/ca-certificates.crt docker/ca/host.crt
  echo "copied this machine's CA bundle to docker/ca/host.crt" >&2
fi

build_base() {
  command -v mmdebstrap >/dev/null || { echo "compose-images.sh: mmdebstrap missing (apt-get install mmdebstrap)" >&2; exit 1; }
  local root
  root=$(mktemp -d)
  # Python 3.11 with pip, shaped like python:3.11-slim (`python`, `pip`, pip
  # allowed to install into the system interpreter), without docs.
  mmdebstrap --variant=minbase --include=python3,python3-pip,ca-certificates \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='ln -sf /usr/bin/python3 "$1/usr/local/bin/python"' \
    --customize-hook='ln -sf /usr/bin/pip3 "$1/usr/local/bin/pip"' \
    --customize-hook='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED' \
    "$suite" "$root" "$mirror" >/dev/null
  tar -C "$root" -c . | docker import -c 'CMD ["python3"]' - "$base_image" >/dev/null
  rm -rf "$root"
}

exists "$base_image" || timed base build_base
for spec in "postgres:$postgres_image" "redis:$redis_image"; do
  dir=${spec%%:*} image=${spec#*:}
  exists "$image" || timed "$dir" docker build -q --build-arg BASE_IMAGE="$base_image" -t "$image" "docker/$dir" >/dev/null
done
timed cpu docker build -q --build-arg BASE_IMAGE="$base_image" --target cpu -t "topo-classifier:$tag" . >/dev/null
if [ "$gpu" = 1 ]; then
  timed gpu docker build -q --build-arg BASE_IMAGE="$base_image" --target gpu -t "topo-classifier-gpu:$tag" . >/dev/null
fi

# The variables, beside the generated secrets (made first if missing).
[ -e "$env_file" ] || bash scripts/generate-env.sh "$env_file"
set_env() {  # set_env KEY VALUE: replace or append the line KEY=...
  if grep -q "^$1=" "$env_file"; then sed -i "s|^$1=.*|$1=$2|" "$env_file"; else echo "$1=$2" >>"$env_file"; fi
}
set_env TOPO_BASE_IMAGE "$base_image"
set_env TOPO_POSTGRES_IMAGE "$postgres_image"
set_env TOPO_REDIS_IMAGE "$redis_image"

images=("$base_image" "$postgres_image" "$redis_image" "topo-classifier:$tag")
[ "$gpu" = 1 ] && images+=("topo-classifier-gpu:$tag")
python3 - "$report" "${#times[@]}" "${times[@]}" "${images[@]}" <<'PY'
import json, subprocess, sys

report, n = sys.argv[1], int(sys.argv[2])
times = dict(t.split("=") for t in sys.argv[3 : 3 + n])
images = sys.argv[3 + n :]
sizes = {i: int(subprocess.check_output(["docker", "image", "inspect", "-f", "{{.Size}}", i])) for i in images}
for image, size in sizes.items():
    print(f"{image:40s} {size / 2**20:8.0f} MiB", file=sys.stderr)
for step, seconds in times.items():
    print(f"built {step} in {seconds} s", file=sys.stderr)
if report:
    with open(report, "w") as f:
        json.dump({"build_seconds": {k: int(v) for k, v in times.items()}, "size_bytes": sizes}, f, indent=2)
PY
echo "images ready; $env_file points docker-compose.yml at them" >&2
