"""The topology_classifier DAG run by a real Airflow (`airflow dags test`, SQLite)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


@pytest.mark.slow
def test_dag_runs_every_stage_from_generation_to_evaluation(tmp_path):
    env = os.environ | {
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "TOPO_DATA_ROOT": str(tmp_path / "data"),
        "TOPO_DASK_WORKERS": "2",
    }
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True)
    run = subprocess.run(
        [
            AIRFLOW,
            "dags",
            "test",
            "topology_classifier",
            "--conf",
            json.dumps({"generate_events": 300, "seed": 5, "epochs": 2, "batch_size": 16}),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-5000:]
    assert "state=success" in log
    errors = [line for line in log.splitlines() if "[error" in line]
    assert not errors, errors  # a successful run's log carries no error-level line
    assert "Skipping registering function" not in log  # nor GX's bookkeeping at import
    # Small datasets and no Dask scheduler named: each gate validates in its own process.
    assert log.count("partition(s), on this process") == 6, "events, prepared, feeds, three predictions"
    assert (tmp_path / "data" / "raw" / "generated-n300-seed5" / "_generated.json").exists()
    [events] = list((tmp_path / "data" / "runs").glob("*/events"))
    summary = json.loads((events / "_summary.json").read_text())
    assert pq.read_table(events).num_rows == summary["events_written"] > 0
    assert "cutflow:" in log and "ingested" in log  # progress and cutflow reach the task log
    prepared = json.loads((events.parent / "prepared" / "_summary.json").read_text())
    assert len(set(prepared["train"]["per_class"].values())) == 1  # balanced
    assert pq.read_table(events.parent / "prepared" / "train").num_rows == prepared["train"]["events"] > 0
    feeds = json.loads((events.parent / "tfrecord" / "_summary.json").read_text())
    assert (
        feeds["train"]["events"] == prepared["train"]["events"]
        and feeds["test"]["events"] == prepared["test"]["events"]
    )
    for model in ("hlf", "gru", "inclusive"):
        training = json.loads((events.parent / "models" / model / "training.json").read_text())
        assert training["epochs_run"] == 2 and training["settings"]["feed"] == "tfrecord"
        metrics = json.loads((events.parent / "evaluation" / model / "metrics.json").read_text())
        assert metrics["events"] == prepared["test"]["events"]
        assert (events.parent / "evaluation" / model / "report.html").exists()
    assert "epoch 2/2" in log  # per-epoch metrics reach the task log
    # Registered and, as the first version of each model, promoted to champion.
    # Every quality gate ran and kept its result; no partition was quarantined.
    for contract in ("ingested_events", "prepared", "feeds", "predictions"):
        history = (tmp_path / "data" / "validation" / contract / "history.jsonl").read_text().splitlines()
        assert all(json.loads(line)["success"] for line in history) and history, contract
    assert len((tmp_path / "data" / "validation" / "predictions" / "history.jsonl").read_text().splitlines()) == 3
    assert not (tmp_path / "data" / "quarantine").exists()
    from tasks.learning.registry import champion_history

    tracking = f"sqlite:///{tmp_path / 'data' / 'mlflow' / 'mlflow.db'}"
    for model in ("hlf", "gru", "inclusive"):
        assert [h["champion"] for h in champion_history(f"topo-{model}", tracking)] == [1]
    # The run's one-page report: the AUC table of every model, also in the log.
    summary = json.loads((events.parent / "summary.json").read_text())
    assert [m["model"] for m in summary["models"]] == ["gru", "hlf", "inclusive"]
    assert all(m["promoted"] and 0 <= m["auc"]["ttbar"] <= 1 for m in summary["models"])
    page = (events.parent / "report.html").read_text()
    assert all(f"evaluation/{model}/report.html" in page for model in ("hlf", "gru", "inclusive"))
    assert "AUC qcd" in log and f"report: {events.parent / 'report.html'}" in log
    # The page a physicist shares, as a browser shows it offline: every section, every plot.
    from tasks.reporting.run_report import SECTIONS
    from tests.support.reports import open_report

    shown = open_report(
        events.parent / "report.html", Path(os.environ.get("TOPO_TEST_OUTPUT", ".test-output")) / "run-report.png"
    )
    assert list(shown["sections"]) == list(SECTIONS) and not shown["remote_requests"]
    plots = ["ROC curves per class", "background rejection against signal efficiency", "training curves of every model"]
    plots += [f"training curves of {model}" for model in ("gru", "hlf", "inclusive")]
    assert all(shown["images"].get(alt, 0) > 0 for alt in plots), shown["images"]
    text = shown["text"]
    assert "paper W+jets" in text and "0.981" in text  # the AUC table beside the paper's
    assert "no isolated lepton" in text and "train (after)" in text  # cutflow and class balance
    assert [c["contract"] for c in summary["contracts"]] == ["ingested_events", "prepared", "feeds"] + [
        "predictions"
    ] * 3
    assert all(c["success"] for c in summary["contracts"]) and "lepton_isolation" in text  # each rule, inline
    assert "Champion history of hlf" in text and "no champion yet" in text
    # Logged with each registered version, and the version points to it.
    from mlflow import MlflowClient

    client = MlflowClient(tracking)
    for model in ("hlf", "gru", "inclusive"):
        version = client.get_model_version(f"topo-{model}", "1")
        assert version.tags["run_report"].endswith("run_report/report.html")
        assert [a.path for a in client.list_artifacts(version.run_id, "run_report")] == ["run_report/report.html"]
    # What scripts/run-pipeline.sh prints at the end: where everything is and the AUC table.
    run_dir = events.parent
    shown = subprocess.run(
        [sys.executable, "-m", "tasks.cli", "summary", run_dir.name],
        capture_output=True,
        text=True,
        env=os.environ | {"TOPO_DATA_ROOT": str(tmp_path / "data")},
        check=True,
    ).stdout
    assert f"Outputs of run {run_dir.name}:" in shown and f"hlf       model: {run_dir / 'models' / 'hlf'}" in shown
    assert "Test-split AUC of each model" in shown and f"HTML report of the run: {run_dir / 'report.html'}" in shown


def test_invalid_params_stop_the_run_before_any_task(tmp_path):
    from tests.support.airflow_service import dags_test

    log = dags_test(
        "topology_classifier", {"models": ["hlf", "svm"], "epochs": 5}, tmp_path / "airflow", tmp_path / "data"
    )
    assert "[exit status 0]" not in log
    assert "Invalid input for param models" in log and "'svm' is not one of" in log, log[-3000:]
    assert "starting task_id" not in log and not (tmp_path / "data").exists()


@pytest.mark.slow
def test_dag_stops_at_the_first_broken_contract(tmp_path, generated_sample):
    """Input with events whose MET is negative (a corrupt MissingET branch): the
    ingested-events contract fails, its task is not retried, and nothing
    after it runs: no preparation, no training, no registration."""
    from tests.support.events import write_root
    from tests.test_ingest import good_events

    raw = tmp_path / "raw"
    shutil.copytree(generated_sample, raw)
    broken = good_events(4)
    for e in broken:
        e["met"] = (-25.0, 0.3)
    write_root(raw / "qcd" / "corrupt_met.root", broken)
    env = os.environ | {
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "TOPO_DATA_ROOT": str(tmp_path / "data"),
        "TOPO_DASK_WORKERS": "2",
    }
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True)
    run = subprocess.run(
        [AIRFLOW, "dags", "test", "topology_classifier", "--conf", json.dumps({"input_dir": str(raw), "epochs": 1})],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = run.stdout + run.stderr
    assert "contract ingested_events v1 FAILED" in log, log[-5000:]
    assert "HLF MET >= 0 [expect_column_values_to_be_between on MET]: 4 of" in log
    assert "corrupt_met.root" in log  # the events are named
    assert "validation/gx/uncommitted/data_docs/local_site" in log  # and where the full report is
    assert log.count("starting task_id=validate_events") == 1 and "up_for_retry" not in log  # failed at once, no retry
    assert "starting task_id=prepare_datasets" not in log
    [run_dir] = list((tmp_path / "data" / "runs").iterdir())
    assert (run_dir / "events" / "_summary.json").exists()
    assert not (run_dir / "prepared").exists() and not (run_dir / "models").exists()
    assert not (tmp_path / "data" / "mlflow").exists()
    quarantined = list((tmp_path / "data" / "quarantine" / "ingested_events").rglob("*corrupt_met*.parquet"))
    assert len(quarantined) == 1
