#!/usr/bin/env bash
# A production-like cluster on one machine, every role its own process:
#   PostgreSQL (Debian's package)  Airflow metadata + MLflow backend, 127.0.0.1 only
#   Airflow api-server, scheduler (LocalExecutor), dag-processor, triggerer
#   Dask scheduler + 2 workers     127.0.0.1 only, each worker under a nanny
#   MLflow tracking server         basic-auth, 127.0.0.1 only
#
#   bash scripts/cluster.sh start    # set up on first use, start, wait until healthy
#   bash scripts/cluster.sh status   # what runs, where, and how to log in
#   bash scripts/cluster.sh stop     # stop every role cleanly (data is kept)
#   bash scripts/cluster.sh restart  # after changing plugins/: the dag-processor
#                                    # imports them once, at its start
#
# Everything lives in TOPO_CLUSTER_HOME (default .cluster/): secrets.env
# (generated once, mode 600), the database, logs/, the data root (data/ unless
# TOPO_DATA_ROOT is set). Ports: TOPO_CLUSTER_API_PORT (8080), _PG_PORT (5433),
# _DASK_PORT (8786), _MLFLOW_PORT (5000); fixed at the first start.
# As root, PostgreSQL runs as the `postgres` user (it refuses root).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
H="$(mkdir -p "${TOPO_CLUSTER_HOME:-$repo/.cluster}" && cd "${TOPO_CLUSTER_HOME:-$repo/.cluster}" && pwd)"
PY="$repo/.venv/bin/python"
VENV_BIN="$repo/.venv/bin"
# In start order; stopped in reverse. PostgreSQL is started before and stopped after them.
ROLES=(dask-scheduler dask-worker-1 dask-worker-2 mlflow airflow-api-server airflow-scheduler airflow-dag-processor airflow-triggerer)

say() { echo "[cluster] $*" >&2; }
die() { echo "[cluster] error: $*" >&2; exit 1; }

# --- settings fixed at the first start ------------------------------------------
load_settings() {
  if [ ! -f "$H/cluster.env" ]; then
    cat >"$H/cluster.env" <<EOF
API_PORT=${TOPO_CLUSTER_API_PORT:-8080}
PG_PORT=${TOPO_CLUSTER_PG_PORT:-5433}
DASK_PORT=${TOPO_CLUSTER_DASK_PORT:-8786}
MLFLOW_PORT=${TOPO_CLUSTER_MLFLOW_PORT:-5000}
DATA_ROOT=${TOPO_DATA_ROOT:-$H/data}
EOF
  fi
  # shellcheck disable=SC1091
  source "$H/cluster.env"
  [ -f "$H/secrets.env" ] || bash "$repo/scripts/generate-env.sh" "$H/secrets.env"
  # Plain shell variables, not exported: each role gets only the secrets it needs.
  # shellcheck disable=SC1091
  source "$H/secrets.env"
}

# --- processes ------------------------------------------------------------------
launch() {  # launch NAME CMD...: a new session (so stop reaches its children), output to logs/NAME.log
  local name=$1; shift
  if alive "$name"; then say "$name already running (pid $(cat "$H/run/$name.pid"))"; return; fi
  setsid "$@" >>"$H/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$H/run/$name.pid"
}
alive() { [ -f "$H/run/$1.pid" ] && kill -0 "$(cat "$H/run/$1.pid")" 2>/dev/null; }
halt() {  # SIGTERM to the process group, SIGKILL after 30 s
  local name=$1 pid
  alive "$name" || { rm -f "$H/run/$name.pid"; return 0; }
  pid=$(cat "$H/run/$name.pid")
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
  for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then say "$name did not stop in 30 s; killing it"; kill -KILL -- "-$pid" 2>/dev/null || true; fi
  rm -f "$H/run/$name.pid"
  say "stopped $name"
}
wait_for() {  # wait_for WHAT SECONDS PYTHON-EXPRESSION-THAT-IS-TRUE-WHEN-READY
  local what=$1 seconds=$2 check=$3
  for _ in $(seq "$seconds"); do
    if "$PY" -c "$check" >/dev/null 2>&1; then say "$what ready"; return 0; fi
    sleep 1
  done
  die "$what not ready after $seconds s; see $H/logs/"
}
http_ok() { echo "import urllib.request; urllib.request.urlopen('$1', timeout=3)"; }

# --- PostgreSQL -----------------------------------------------------------------
pg_bin() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$bin" ] || die "PostgreSQL is not installed: apt-get install -y postgresql (Debian) or see README"
  echo "$bin"
}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_uri() { echo "postgresql+psycopg2://airflow:$POSTGRES_PASSWORD@127.0.0.1:$PG_PORT/$1"; }  # pg_uri DATABASE
psql_admin() { PGPASSWORD="$POSTGRES_PASSWORD" psql -h 127.0.0.1 -p "$PG_PORT" -U airflow -v ON_ERROR_STOP=1 -qtA "$@"; }

start_postgres() {
  local bin pgdata="$H/postgres"
  bin=$(pg_bin)
  if [ ! -s "$pgdata/PG_VERSION" ]; then
    say "initialising PostgreSQL in $pgdata"
    mkdir -p "$pgdata"; chmod 700 "$pgdata"
    local pw; pw=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pw"
    if [ "$(id -u)" = 0 ]; then chown postgres "$pgdata" "$pw"; fi
    as_pg test -w "$pgdata" || die "the postgres user cannot write $pgdata: put TOPO_CLUSTER_HOME where it can reach"
    # Passwords on every connection; the superuser is `airflow`, as in the compose file.
    as_pg "$bin/initdb" -D "$pgdata" -U airflow --pwfile="$pw" --auth-local=scram-sha-256 --auth-host=scram-sha-256 >"$H/logs/initdb.log"
    rm -f "$pw"
  fi
  touch "$H/logs/postgres.log"
  if [ "$(id -u)" = 0 ]; then chown postgres "$H/logs/postgres.log"; fi
  if as_pg "$bin/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
    say "postgres already running"
  else
    # TCP on the loopback only, no Unix socket: nothing else on the machine shares it.
    as_pg "$bin/pg_ctl" -D "$pgdata" -l "$H/logs/postgres.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=''" start >/dev/null
    say "postgres ready on 127.0.0.1:$PG_PORT"
  fi
  local db
  for db in airflow mlflow mlflow_auth; do
    [ "$(psql_admin -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" = 1 ] || psql_admin -d postgres -c "CREATE DATABASE $db"
  done
}
stop_postgres() {
  [ -s "$H/postgres/PG_VERSION" ] || return 0
  local bin; bin=$(pg_bin)
  if as_pg "$bin/pg_ctl" -D "$H/postgres" status >/dev/null 2>&1; then
    as_pg "$bin/pg_ctl" -D "$H/postgres" -m fast -w stop >/dev/null
    say "stopped postgres"
  fi
}

# --- the roles' environments ------------------------------------------------------
export_common() {
  export PATH="$VENV_BIN:$PATH" PYTHONPATH="$repo" TOPO_DATA_ROOT="$DATA_ROOT"
}
export_mlflow_client() {
  export TOPO_MLFLOW_TRACKING_URI="http://127.0.0.1:$MLFLOW_PORT"
  export MLFLOW_TRACKING_USERNAME=admin MLFLOW_TRACKING_PASSWORD="$MLFLOW_ADMIN_PASSWORD"
}
export_airflow() {
  export AIRFLOW_HOME="$H/airflow"
  source "$repo/scripts/airflow-env.sh"  # this project's dags/ and plugins/, no examples
  export AIRFLOW__CORE__EXECUTOR=LocalExecutor AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
  export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="$(pg_uri airflow)"
  # Optuna's studies: schema `optuna` of the same database. Said outright: a
  # task's process does not see the metadata database's URL (Airflow 3 keeps
  # tasks off it), so tasks/learning/optuna_search.py cannot infer it there.
  export TOPO_OPTUNA_STORAGE="${TOPO_OPTUNA_STORAGE:-$(pg_uri airflow)?options=-csearch_path%3Doptuna}"
  export AIRFLOW__CORE__FERNET_KEY="$AIRFLOW_FERNET_KEY"
  export AIRFLOW__API_AUTH__JWT_SECRET="$AIRFLOW_JWT_SECRET" AIRFLOW__API__SECRET_KEY="$AIRFLOW_API_SECRET_KEY"
  export AIRFLOW__API__HOST=127.0.0.1 AIRFLOW__API__PORT="$API_PORT"
  export AIRFLOW__API__BASE_URL="http://localhost:$API_PORT"
  export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$API_PORT/execution/"
  # One user, `admin`, whose password is in secrets.env; never "all admins".
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=admin:admin AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=False
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="$H/airflow/passwords.json"
  export TOPO_DASK_SCHEDULER="tcp://127.0.0.1:$DASK_PORT"
  export_mlflow_client
}

# --- start / stop -------------------------------------------------------------------
start() {
  [ -x "$PY" ] || bash "$repo/scripts/bootstrap.sh"
  load_settings
  mkdir -p "$H/logs" "$H/run" "$H/airflow" "$H/dask" "$H/mlflow" "$DATA_ROOT"
  start_postgres

  ( export_common
    launch dask-scheduler dask scheduler --host 127.0.0.1 --port "$DASK_PORT" --dashboard-address "127.0.0.1:$((DASK_PORT + 1))"
    wait_for "dask scheduler" 60 "import socket; socket.create_connection(('127.0.0.1', $DASK_PORT), 2)"
    for i in 1 2; do
      # One thread per worker: the feature kernel holds the GIL (as the LocalCluster does).
      launch "dask-worker-$i" dask worker "tcp://127.0.0.1:$DASK_PORT" --host 127.0.0.1 --name "worker-$i" \
        --dashboard-address 127.0.0.1:0 --nthreads 1 --memory-limit "${TOPO_CLUSTER_WORKER_MEMORY:-4GiB}" --local-directory "$H/dask"
    done
    wait_for "dask workers" 120 "from distributed import Client; c = Client('tcp://127.0.0.1:$DASK_PORT', timeout=5); c.wait_for_workers(2, timeout=5)" )

  ( export_common
    export MLFLOW_ADMIN_PASSWORD MLFLOW_FLASK_SERVER_SECRET_KEY MLFLOW_AUTH_CONFIG_PATH="$H/mlflow/auth.ini"
    export MLFLOW_BACKEND_URI="$(pg_uri mlflow)" MLFLOW_AUTH_DB_URI="$(pg_uri mlflow_auth)"
    export MLFLOW_ARTIFACTS="$H/mlflow/artifacts" MLFLOW_HOST=127.0.0.1 MLFLOW_PORT
    launch mlflow bash "$repo/scripts/mlflow-server.sh"
    wait_for "mlflow" 180 "$(http_ok "http://127.0.0.1:$MLFLOW_PORT/health")" )

  ( export_common; export_airflow
    AIRFLOW_ADMIN_PASSWORD="$AIRFLOW_ADMIN_PASSWORD" bash "$repo/scripts/airflow-users.sh"
    say "migrating the Airflow database"
    (cd "$repo" && source scripts/airflow-init.sh)
    launch airflow-api-server airflow api-server --host 127.0.0.1 --port "$API_PORT"
    # No log servers (they listen on every interface): on one machine the
    # api-server reads the task logs from disk.
    launch airflow-scheduler airflow scheduler --skip-serve-logs
    launch airflow-dag-processor airflow dag-processor
    launch airflow-triggerer airflow triggerer --skip-serve-logs
    wait_for "airflow" 240 "
import json, urllib.request
h = json.load(urllib.request.urlopen('http://127.0.0.1:$API_PORT/api/v2/monitor/health', timeout=3))
assert all(h[c]['status'] == 'healthy' for c in ('metadatabase', 'scheduler', 'triggerer', 'dag_processor'))" )
  status
}

stop() {
  [ -f "$H/cluster.env" ] || { say "no cluster in $H"; return 0; }
  load_settings
  local i
  for ((i = ${#ROLES[@]} - 1; i >= 0; i--)); do halt "${ROLES[i]}"; done
  stop_postgres
}

status() {
  [ -f "$H/cluster.env" ] || { say "no cluster in $H"; return 1; }
  # shellcheck disable=SC1091
  source "$H/cluster.env"
  local name state down=0
  for name in "${ROLES[@]}"; do
    if alive "$name"; then state="running (pid $(cat "$H/run/$name.pid"))"; else state="stopped"; down=1; fi
    printf '  %-22s %s\n' "$name" "$state" >&2
  done
  cat >&2 <<EOF
  Airflow UI/API   http://localhost:$API_PORT   user admin, password: AIRFLOW_ADMIN_PASSWORD in $H/secrets.env
  MLflow           http://localhost:$MLFLOW_PORT   user admin, password: MLFLOW_ADMIN_PASSWORD
  Dask scheduler   tcp://127.0.0.1:$DASK_PORT
  PostgreSQL       127.0.0.1:$PG_PORT (user airflow)
  data root        $DATA_ROOT     logs  $H/logs/
EOF
  return $down
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) status ;;
  *) echo "usage: $0 start|stop|restart|status" >&2; exit 2 ;;
esac
