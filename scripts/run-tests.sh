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
# Two workers (most of a run waits on Airflow, Docker or Dask, not on the CPU),
# one module per worker at a time, the longest first (tests/conftest.py); the
# slowest tests are listed at the end. PYTEST_WORKERS=0 runs in one process.
exec python -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadscope --durations=30 "$@"
