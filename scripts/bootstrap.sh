#!/usr/bin/env bash
# Create .venv from the lock file (uv.lock). Needs only python3 (3.11) and
# access to PyPI; installs uv for the current user if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v uv >/dev/null 2>&1; then
  export PATH="$HOME/.local/bin:$PATH"
  command -v uv >/dev/null 2>&1 || python3 -m pip install --user --quiet uv || python3 -m pip install --quiet uv
fi
# Bytecode compiled at install: uv does not by default, and where
# PYTHONDONTWRITEBYTECODE is set (CI images often do) Python then compiles every
# module from source in every process: tensorflow took 21 s to import instead
# of 8, airflow 7 instead of 2.4, on each Airflow task and Dask worker.
uv sync --frozen --extra test --python 3.11 --compile-bytecode
