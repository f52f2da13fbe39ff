"""The production-like cluster of scripts/cluster.sh, as CI runs it: PostgreSQL,
the Airflow components with the LocalExecutor, a Dask scheduler with two
workers and the MLflow server, each its own process. A run triggered through
the REST API with Params; a training task killed midway and resumed by its
retry; a Dask worker killed during ingestion; backfills and reprocessing of
daily partitions; who may talk to what."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from tests.support import mlflow_client
from tests.support.airflow_service import wait_until
from tests.support.files import file_hashes
from tests.support.local_cluster import ROLES

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

MODEL = "gru"  # the slowest model to train: epochs long enough to be killed in
EPOCHS = 3  # killed after the first: two left for the retry to resume
DAG = "topology_classifier"
DAYS = ("2026-01-01", "2026-01-02", "2026-01-03")
EMPTY_DAY = "2026-01-04"
REPO = Path(__file__).resolve().parents[1]


def mlflow_get(cluster, path: str, auth: bool = True) -> tuple[int, dict]:
    return mlflow_client.mlflow_get(cluster.mlflow_url, cluster.secrets()["MLFLOW_ADMIN_PASSWORD"], path, auth)


def test_every_role_runs_on_localhost_only_and_asks_for_credentials(local_cluster):
    assert all(local_cluster.pid(role) and psutil.pid_exists(local_cluster.pid(role)) for role in ROLES)
    listening = {
        (p.name(), c.laddr.ip, c.laddr.port)
        for p in local_cluster.processes()
        for c in p.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    }
    ports = {port for _, _, port in listening}
    assert set(local_cluster.ports.values()) <= ports, listening  # Airflow, PostgreSQL, Dask, MLflow
    assert {ip for _, ip, _ in listening} <= {"127.0.0.1", "::1"}, listening
    assert local_cluster.api.request("GET", "/api/v2/dags", auth=False)[0] == 401
    assert mlflow_get(local_cluster, "/api/2.0/mlflow/registered-models/search", auth=False)[0] == 401
    assert mlflow_get(local_cluster, "/api/2.0/mlflow/registered-models/search")[0] == 200
    assert (local_cluster.home / "secrets.env").stat().st_mode & 0o077 == 0


def test_the_compose_healthcheck_finds_each_live_job_in_the_metadata_database(local_cluster):
    """scripts/airflow-job-alive.py (docker-compose.yml's healthcheck of the
    scheduler, dag processor and triggerer) against this cluster's PostgreSQL."""
    url = f"postgresql+psycopg2://airflow:{local_cluster.secrets()['POSTGRES_PASSWORD']}@127.0.0.1:{local_cluster.ports['PG']}/airflow"

    def alive(*args: str) -> subprocess.CompletedProcess:
        script = REPO / "scripts" / "airflow-job-alive.py"
        env = os.environ | {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url}
        return subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True, text=True, timeout=60)

    from airflow.utils.net import get_hostname

    host = get_hostname()  # what Airflow records as the job's host (here not socket.getfqdn())
    for job in ("SchedulerJob", "DagProcessorJob", "TriggererJob"):
        assert alive(job, host).returncode == 0, (job, alive(job, host).stderr)
    elsewhere = alive("SchedulerJob", "no-such-host")
    assert elsewhere.returncode == 1 and "no running SchedulerJob on no-such-host" in elsewhere.stderr
    assert alive("SchedulerJob", host, "0").returncode == 1  # no heartbeat is younger than 0 s


def test_a_run_triggered_through_the_api_resumes_a_killed_training_and_registers_its_model(local_cluster):
    api = local_cluster.api
    api.unpause(DAG)
    run_id = api.trigger(
        DAG,
        {"generate_events": 1000, "models": [MODEL], "feed_format": "tfrecord", "epochs": EPOCHS, "use_tuned": False},
    )
    runs = local_cluster.data_root / "runs"

    def one_epoch_done():
        if api.runs(DAG)[-1]["state"] == "failed":
            raise AssertionError(f"run failed before training:\n{api.failed_task_logs(DAG, run_id)}")
        progress = list(runs.glob(f"*/models/{MODEL}.progress.json")) if runs.exists() else []
        return progress and len(json.loads(progress[0].read_text() or "{}")) >= 1

    wait_until(one_epoch_done, 900, "no training epoch finished")
    [ti] = [t for t in api.task_instances(DAG, run_id) if t["task_id"] == "train_model"]
    # The task runner titles its process with the task instance's id.
    [victim] = [
        p
        for p in psutil.process_iter(["cmdline"])
        if f"airflow worker -- {ti['id']}" in " ".join(p.info["cmdline"] or [])
    ]
    victim.send_signal(signal.SIGKILL)

    [run] = api.wait_for_runs(DAG, 1, timeout=900)
    assert run["state"] == "success", api.failed_task_logs(DAG, run_id)
    [ti] = [t for t in api.task_instances(DAG, run_id) if t["task_id"] == "train_model"]
    assert ti["try_number"] == 2  # killed once, then retried
    [training] = runs.glob(f"*/models/{MODEL}/training.json")
    result = json.loads(training.read_text())
    assert result["resumed_after_epochs"] >= 1  # the retry went on from the backup...
    assert result["epochs_run"] == EPOCHS  # ...to the end, with every epoch's metrics
    assert not list(runs.glob(f"*/models/{MODEL}.backup"))  # a finished training keeps no backup

    status, body = mlflow_get(local_cluster, f"/api/2.0/mlflow/registered-models/get?name=topo-{MODEL}")
    assert status == 200, body
    model = body["registered_model"]
    assert [v["version"] for v in model["latest_versions"]] == ["1"]
    assert {a["alias"]: a["version"] for a in model.get("aliases", [])} == {
        "champion": "1"
    }  # the first model is promoted


def test_killing_a_dask_worker_during_ingestion_gives_the_same_output(local_cluster, tmp_path):
    from distributed import Client

    from tasks.events.ingest import ingest
    from tasks.events.samples import discover_samples
    from tasks.generator.generate import SampleRequest, generate

    with Client(local_cluster.dask_scheduler) as client:
        raw = local_cluster.data_root / "raw" / "worker-kill"
        generate(raw, SampleRequest(events=3000, files_per_sample=2, seed=7), client)
        samples = discover_samples(raw)
        undisturbed = ingest(samples, tmp_path / "undisturbed", client, chunk=20)
        pids = client.run(os.getpid)
        with ThreadPoolExecutor(1) as pool:
            disturbed = pool.submit(ingest, samples, tmp_path / "disturbed", client, chunk=20)
            busy = wait_until(
                lambda: [
                    w for w, tasks in client.processing().items() if any(t.startswith("process_chunk") for t in tasks)
                ],
                120,
                "no chunk ever ran",
                0.01,
            )
            os.kill(pids[busy[0]], signal.SIGKILL)
            killed_midway = not disturbed.done()
            result = disturbed.result(timeout=600)
        assert killed_midway
        client.wait_for_workers(2, timeout=120)  # the nanny started a new worker process
        assert pids[busy[0]] not in client.run(os.getpid).values()

    assert result["events_written"] == undisturbed["events_written"] > 0
    assert result["cutflow"] == undisturbed["cutflow"]
    assert file_hashes(tmp_path / "disturbed") == file_hashes(tmp_path / "undisturbed")


def test_no_secret_reaches_a_log(local_cluster):
    secrets = [v for v in local_cluster.secrets().values() if len(v) >= 16]
    assert len(secrets) == 7
    logs = [
        p
        for d in (local_cluster.home / "logs", local_cluster.home / "airflow" / "logs")
        for p in d.rglob("*")
        if p.is_file()
    ]
    assert any("task_id=train_model" in str(p) for p in logs)  # the task logs are among them
    leaks = [(p, s[:4]) for p in logs for s in secrets if s in p.read_text(errors="replace")]
    assert not leaks


def test_an_optuna_study_is_kept_in_the_postgresql_metadata_database_and_resumed(local_cluster, prepared, monkeypatch):
    """strategy optuna on the cluster: the study lives in schema `optuna` of
    Airflow's PostgreSQL (never in Airflow's own tables), and a second search
    of the same study continues it."""
    import psycopg2

    from tasks.learning.optuna_search import open_study, storage_url

    out, _, _ = prepared
    api = local_cluster.api
    api.unpause("tune_hyperparameters")
    conf = {
        "strategy": "optuna",
        "model": "hlf",
        "prepared": str(out),
        "study": "on-postgresql",
        "n_trials": 2,
        "epochs": 1,
        "space": {"hidden": [[8], [16]], "learning_rate": {"low": 1e-3, "high": 1e-2, "log": True}},
    }
    for searches in (1, 2):
        api.trigger("tune_hyperparameters", conf)
        runs = api.wait_for_runs("tune_hyperparameters", searches, timeout=900)
        failed = [r["dag_run_id"] for r in runs if r["state"] != "success"]
        assert not failed, "\n".join(api.failed_task_logs("tune_hyperparameters", r) for r in failed)
    password, port = local_cluster.secrets()["POSTGRES_PASSWORD"], local_cluster.ports["PG"]
    metadata = f"postgresql+psycopg2://airflow:{password}@127.0.0.1:{port}/airflow"
    # The study storage a task of this cluster uses: the one its metadata database gives.
    monkeypatch.delenv("TOPO_OPTUNA_STORAGE", raising=False)
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", metadata)
    study = open_study("on-postgresql", storage_url("/nowhere"), "mean_auc", 42)
    assert len(study.trials) == 4 and [t.number for t in study.trials] == [0, 1, 2, 3]  # resumed, not restarted
    with psycopg2.connect(f"postgresql://airflow:{password}@127.0.0.1:{port}/airflow") as db, db.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM optuna.trials")
        assert cursor.fetchone() == (4,)
        cursor.execute("SELECT to_regclass('public.trials')")
        assert cursor.fetchone() == (None,)  # nothing of Optuna's among Airflow's own tables


def test_backfill_makes_one_partition_per_day_and_reprocessing_replaces_only_that_day(local_cluster):
    from tasks.generator.generate import SampleRequest, generate

    airflow, data = local_cluster.api, local_cluster.data_root
    for i, day in enumerate(DAYS):
        generate(data / "raw" / day, SampleRequest(events=90, files_per_sample=1, mix=(1, 1, 1), seed=100 + i))
    (data / "raw" / EMPTY_DAY / "qcd").mkdir(parents=True)  # the directory exists, no file came
    airflow.unpause("ingest_daily")
    # Unpausing starts the latest interval's scheduled run at once; let it finish
    # so that the runs below are the backfill's. (On SQLite, `airflow standalone`,
    # creating a backfill while the scheduler writes was refused half-done or
    # crashed the scheduler: this test runs on PostgreSQL, as a deployment does.)
    wait_until(lambda: airflow.runs("ingest_daily"), 120, "no scheduled run after unpausing")
    airflow.wait_for_runs("ingest_daily", 1, run_type="scheduled")
    airflow.backfill("ingest_daily", DAYS[0], EMPTY_DAY)
    runs = airflow.wait_for_runs("ingest_daily", 4, run_type="backfill")
    failed = [r["dag_run_id"] for r in runs if r["state"] != "success"]
    assert not failed, "\n".join(airflow.failed_task_logs("ingest_daily", r) for r in failed)
    assert [datetime.fromisoformat(r["logical_date"]).strftime("%Y-%m-%d") for r in runs] == [*DAYS, EMPTY_DAY]

    events = data / "events"
    assert sorted(p.name for p in events.iterdir()) == list(DAYS)  # three partitions; the empty day wrote none
    empty_run = runs[-1]["dag_run_id"]
    states = {t["task_id"]: t["state"] for t in airflow.task_instances("ingest_daily", empty_run)}
    assert states["find_day_files"] == "skipped" and states["publish_day"] == "skipped", states
    for day in DAYS:
        ids = pq.read_table(events / day, columns=["event_id"]).column(0).to_pylist()
        assert ids and all(i.startswith(f"{day}/") for i in ids)  # event ids carry their day
    # Each validated day was announced to the retraining DAG.
    status, body = airflow.request("GET", "/api/v2/assets/events?limit=50")
    assert status == 200
    assert sorted(e["extra"]["day"] for e in body["asset_events"] if e["extra"].get("day")) == list(DAYS)

    before = {day: file_hashes(events / day) for day in DAYS}
    inode = {day: (events / day).stat().st_ino for day in DAYS}
    for _attempt in (1, 2):
        # Reprocessing clears the day's run and runs it again (same run id).
        airflow.backfill("ingest_daily", DAYS[1], DAYS[1], reprocess="completed")
        [again] = [r for r in airflow.runs("ingest_daily") if r["logical_date"].startswith(DAYS[1])]
        assert again["state"] == "success", airflow.failed_task_logs("ingest_daily", again["dag_run_id"])
        assert (events / DAYS[1]).stat().st_ino != inode[DAYS[1]]  # the day was written again...
        inode[DAYS[1]] = (events / DAYS[1]).stat().st_ino
        assert file_hashes(events / DAYS[1]) == before[DAYS[1]]  # ...with identical content
        for day in (DAYS[0], DAYS[2]):  # and the other days were not touched at all
            assert (events / day).stat().st_ino == inode[day] and file_hashes(events / day) == before[day]
