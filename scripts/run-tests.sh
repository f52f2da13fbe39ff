#!/usr/bin/env bash
# Set up everything, then run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/system-packages.sh  # PostgreSQL and Chromium, for the cluster and UI tests
source scripts/airflow-env.sh
exec python -m pytest "$@"
