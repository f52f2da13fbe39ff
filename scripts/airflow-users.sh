#!/usr/bin/env bash
# Write the Airflow users' passwords file (SimpleAuthManager: one user,
# `admin`) from AIRFLOW_ADMIN_PASSWORD, readable by its owner only, to
# $AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE. Used by the local
# cluster and the compose init service; nothing is printed.
set -euo pipefail
out="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?}"
: "${AIRFLOW_ADMIN_PASSWORD:?set it (scripts/generate-env.sh makes one)}"
mkdir -p "$(dirname "$out")"
umask 077
python3 -c 'import json, os, sys; json.dump({"admin": os.environ["AIRFLOW_ADMIN_PASSWORD"]}, open(sys.argv[1], "w"))' "$out"
