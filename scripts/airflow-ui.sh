#!/usr/bin/env bash
# Set up, then start the Airflow UI and every component on this machine with
# `airflow standalone` (api-server, scheduler with the LocalExecutor,
# dag-processor, triggerer; SQLite in .airflow/). Open http://localhost:8080
# and log in as `admin` with the password standalone generated:
#   cat .airflow/simple_auth_manager_passwords.json.generated
# Stop with Ctrl-C. AIRFLOW__API__PORT changes the port.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
source scripts/airflow-env.sh
mkdir -p "$AIRFLOW_HOME"
source scripts/airflow-init.sh
export AIRFLOW__CORE__EXECUTOR="${AIRFLOW__CORE__EXECUTOR:-LocalExecutor}"
export AIRFLOW__API__HOST="${AIRFLOW__API__HOST:-127.0.0.1}"  # the UI on this machine only
echo "Airflow UI: http://localhost:${AIRFLOW__API__PORT:-8080}  user admin, password in $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
exec airflow standalone
