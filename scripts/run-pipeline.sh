#!/usr/bin/env bash
# Set up everything, then run the topology_classifier DAG once with
# `airflow dags test` (SQLite, in one process, Dask LocalCluster) on the
# embedded defaults; print where the outputs are, the AUC table and the path
# of the run's HTML report.
# Extra arguments are passed on as DAG params, e.g.:
#   scripts/run-pipeline.sh generate_events=20000 seed=7
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
source scripts/airflow-env.sh
conf="{}"
if (($#)); then
  conf=$(python3 -c 'import json,sys
def v(x):
    try: return json.loads(x)
    except ValueError: return x
print(json.dumps({k: v(x) for k, _, x in (a.partition("=") for a in sys.argv[1:])}))' "$@")
fi
mkdir -p "$AIRFLOW_HOME"
source scripts/airflow-init.sh
airflow dags test topology_classifier --conf "$conf" 2>&1 | tee "$AIRFLOW_HOME/last-run.log"
# `airflow dags test` names the run itself: its outputs are the newest run directory.
echo
exec topo summary  # scripts/airflow-env.sh put the environment on PATH
