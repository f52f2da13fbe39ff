"""Scheduled retraining, run by a real Airflow (`airflow dags test`): a better
challenger is promoted, a worse one is not, and one command rolls back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.airflow_service import dags_test

TOPO = str(Path(sys.executable).with_name("topo"))
# Nobody answers in `airflow dags test`: the approval step (on by default here) is
# tested through a running Airflow in tests/test_airflow_operations.py.
AUTOMATIC = {"use_tuned": False, "require_approval": False}
WEAK = {"models": ["hlf"], "epochs": 1, "learning_rate": "1e-7", "batch_size": 64} | AUTOMATIC
STRONG = {"models": ["hlf"], "epochs": 25, "learning_rate": "1e-2", "batch_size": 16} | AUTOMATIC


@pytest.fixture(scope="module")
def daily_partitions(tmp_path_factory, dask_client):
    """Two published days, as ingest_daily leaves them."""
    from tasks.core.catalog import Catalog
    from tasks.events.ingest import ingest
    from tasks.events.samples import discover_samples
    from tasks.generator.generate import SampleRequest, generate

    data = tmp_path_factory.mktemp("retraining") / "data"
    for i, day in enumerate(("2026-02-01", "2026-02-02")):
        raw = data / "raw" / day
        generate(raw, SampleRequest(events=450, files_per_sample=1, mix=(1, 1, 1), seed=300 + i))
        ingest(discover_samples(raw), Catalog.under(data).partition(day), dask_client, id_prefix=f"{day}/")
    return data


def _succeeded(log: str) -> None:
    assert "[exit status 0]" in log and "DagRun Finished" in log and "state=success" in log, log[-5000:]
    assert "state=failed" not in log, log[-5000:]


@pytest.mark.slow
def test_a_better_challenger_is_promoted_a_worse_one_is_not_and_rollback_undoes(daily_partitions, tmp_path):
    from mlflow import MlflowClient

    from tasks.learning.registry import champion_history, tracking

    data, home = daily_partitions, tmp_path / "airflow"
    uri = f"sqlite:///{data / 'mlflow' / 'mlflow.db'}"

    first = dags_test("retrain_classifier", WEAK | {"window_days": 7}, home, data)
    _succeeded(first)
    assert "PROMOTED" in first and "no champion yet" in first
    assert [h["champion"] for h in champion_history("topo-hlf", uri)] == [1]

    better = dags_test("retrain_classifier", STRONG, home, data)
    _succeeded(better)
    assert "PROMOTED" in better
    assert [h["champion"] for h in champion_history("topo-hlf", uri)] == [1, 2]

    worse = dags_test("retrain_classifier", WEAK, home, data)
    _succeeded(worse)
    assert "not promoted" in worse and "does not beat champion v2" in worse
    assert [h["champion"] for h in champion_history("topo-hlf", uri)] == [1, 2]

    # Every decision is recorded on its version with both scores, judged on the same test events.
    tracking(uri)
    client = MlflowClient()
    decisions = {
        v: json.loads(client.get_model_version("topo-hlf", str(v)).tags["promotion_decision"]) for v in (1, 2, 3)
    }
    assert [decisions[v]["promoted"] for v in (1, 2, 3)] == [True, True, False]
    assert decisions[2]["scores"]["challenger"]["mean_auc"] > decisions[2]["scores"]["champion"]["mean_auc"]
    assert decisions[3]["scores"]["challenger"]["mean_auc"] <= decisions[3]["scores"]["champion"]["mean_auc"]
    assert len({Path(decisions[v]["test_data"]).parent.parent.name for v in (1, 2, 3)}) == 3  # a run directory each...
    summaries = [json.loads(p.read_text()) for p in sorted((data / "retraining").glob("*/prepared/_summary.json"))]
    assert len({json.dumps(s["test"]["per_class"]) for s in summaries}) == 1  # ...holding the same window's test split
    reports = sorted((data / "retraining").glob("*/report.html"))
    assert len(reports) == 3 and "not promoted" in max(reports, key=lambda p: p.stat().st_mtime).read_text()

    rolled = subprocess.run(
        [TOPO, "rollback", "--model", "hlf"],
        env=os.environ | {"TOPO_DATA_ROOT": str(data)},
        capture_output=True,
        text=True,
    )
    assert rolled.returncode == 0, rolled.stderr
    assert int(client.get_model_version_by_alias("topo-hlf", "champion").version) == 1
