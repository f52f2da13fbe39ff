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
data_root="${TOPO_DATA_ROOT:-$PWD/data}"
python3 - "$data_root/runs" <<'PY'
import json, sys, pathlib
runs = sorted(pathlib.Path(sys.argv[1]).glob("*/events/_summary.json"), key=lambda p: p.stat().st_mtime)
if not runs:
    sys.exit(f"no run output under {sys.argv[1]}: see the log above")
events = runs[-1].parent
print(f"\nOutputs of run {events.parent.name}:")
summary = json.loads((events / "_summary.json").read_text())
print(f"  events dataset: {events}  ({summary['events_written']} events)")
print(f"  cutflow:        {events / '_cutflow.json'}")
for name, c in summary["cutflow"].items():
    print(f"    {name:6s} read {c['read']:7d}  written {c['written']:7d}")
if summary["bad_files"]:
    print("  bad input files:", *summary["bad_files"], sep="\n    ")
prepared = events.parent / "prepared"
if (prepared / "_summary.json").exists():
    p = json.loads((prepared / "_summary.json").read_text())
    print(f"  prepared data:  {prepared}  (Petastorm-ready Parquet: train {p['train']['events']}, test {p['test']['events']} events,"
          f" {p['kept_per_class']} per class)")
    print(f"  scaler:         {prepared / 'scaler.json'}")
tfrecord = events.parent / "tfrecord"
if (tfrecord / "_summary.json").exists():
    print(f"  TFRecord feed:  {tfrecord}")
for metrics in sorted((events.parent / "evaluation").glob("*/metrics.json")):
    m = json.loads(metrics.read_text())
    print(f"  {m['model']:9s} model: {events.parent / 'models' / m['model']}")
    print(f"            report: {metrics.parent / 'report.html'}")
summary = events.parent / "summary.json"
if summary.exists():
    from tasks.reporting.run_report import auc_table
    s = json.loads(summary.read_text())
    print("\nTest-split AUC of each model (one-vs-rest):\n" + auc_table(s))
    print(f"\nHTML report of the run: {s['report']}")
else:
    sys.exit("the run did not finish: see the log above")
PY
