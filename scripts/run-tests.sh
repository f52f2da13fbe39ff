#!/usr/bin/env bash
# Set up everything, then run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
source scripts/airflow-env.sh
exec python -m pytest "$@"
