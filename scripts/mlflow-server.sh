#!/usr/bin/env bash
# Start the MLflow tracking server with its basic-auth app (every request needs
# a user and password), for the local cluster and docker-compose.yml alike:
#   MLFLOW_BACKEND_URI   the tracking store (PostgreSQL)
#   MLFLOW_AUTH_DB_URI   the users and permissions store
#   MLFLOW_ADMIN_PASSWORD, MLFLOW_FLASK_SERVER_SECRET_KEY  from the generated env file
#   MLFLOW_ARTIFACTS     where artifacts are kept (served through the server)
#   MLFLOW_HOST (127.0.0.1), MLFLOW_PORT (5000)
# MLflow reads the users store only from an ini file: it is written here,
# readable by this user only, and never printed.
set -euo pipefail
: "${MLFLOW_BACKEND_URI:?}" "${MLFLOW_AUTH_DB_URI:?}" "${MLFLOW_ADMIN_PASSWORD:?}" "${MLFLOW_FLASK_SERVER_SECRET_KEY:?}" "${MLFLOW_ARTIFACTS:?}"
ini="${MLFLOW_AUTH_CONFIG_PATH:-$(mktemp -d)/auth.ini}"
(umask 077; cat >"$ini" <<INI
[mlflow]
default_permission = READ
database_uri = $MLFLOW_AUTH_DB_URI
admin_username = admin
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
INI
)
export MLFLOW_AUTH_CONFIG_PATH="$ini" MLFLOW_AUTH_ADMIN_PASSWORD="$MLFLOW_ADMIN_PASSWORD" MLFLOW_FLASK_SERVER_SECRET_KEY
mkdir -p "$MLFLOW_ARTIFACTS"
exec mlflow server --app-name basic-auth --host "${MLFLOW_HOST:-127.0.0.1}" --port "${MLFLOW_PORT:-5000}" --workers 1 \
  --backend-store-uri "$MLFLOW_BACKEND_URI" --artifacts-destination "$MLFLOW_ARTIFACTS"
