#!/usr/bin/env bash
# Set up everything, then run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/system-packages.sh  # PostgreSQL and Chromium, for the cluster and UI tests
source scripts/airflow-env.sh
# The project's own modules too (bootstrap compiled the dependencies): every
# Airflow task and Dask worker imports them.
python -m compileall -q tasks dags plugins tests >/dev/null
exec python -m pytest "$@"
