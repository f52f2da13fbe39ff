"""docker-compose.yml really up (tests/support/compose_stack.py): every service
healthy, only the two UIs published and only on 127.0.0.1, the API behind its
login, a run triggered over the REST API on the Celery workers (training on
the `gpu` queue's worker, Dask work on the compose Dask cluster, the model in
the compose MLflow behind its login), the training worker's container killed
mid-training and the task's retry resuming; `compose down` leaves nothing."""

from __future__ import annotations

import json
import os
import signal

import psutil
import pytest

from tests.support import mlflow_client
from tests.support.airflow_service import wait_until
from tests.support.compose_stack import ComposeStack

pytestmark = [pytest.mark.slow, pytest.mark.compose]

DAG = "topology_classifier"
MODEL = "gru"  # the slowest to train: its epochs are long enough to kill a worker in
EPOCHS = 3  # killed after the first: two left for the retry to resume
ONE_SHOT = {"airflow-init"}
PUBLISHED = {"airflow-api-server", "mlflow"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = ComposeStack(tmp_path_factory.mktemp("compose"))
    try:
        stack.start()
        yield stack
    finally:
        down, left = stack.stop()
    assert down.returncode == 0, down.stderr
    assert not left, f"compose down left {left}"
    assert not stack.engine_processes_left(), "the engine this test started is still running"


def mlflow_get(stack, path: str, auth: bool = True) -> tuple[int, dict]:
    return mlflow_client.mlflow_get(stack.mlflow_url, stack.secrets()["MLFLOW_ADMIN_PASSWORD"], path, auth)


def test_every_service_is_healthy_and_only_the_uis_listen_on_localhost(stack):
    services = stack.services()
    states = {(s["Service"], s["State"], s.get("Health", ""), s.get("ExitCode")) for s in services}
    assert {s["Service"] for s in services} >= PUBLISHED | ONE_SHOT | {"postgres", "redis", "training-worker"}
    unhealthy = [s for s in states if s[0] not in ONE_SHOT and (s[1], s[2]) != ("running", "healthy")]
    assert not unhealthy, states
    assert all(s[1:] == ("exited", "", 0) for s in states if s[0] in ONE_SHOT), states
    assert sum(s["Service"] == "dask-worker" for s in services) == 2

    published = {
        (s["Service"], p["URL"], p["PublishedPort"])
        for s in services
        for p in s.get("Publishers") or []
        if p["PublishedPort"]
    }
    assert published == {("airflow-api-server", "127.0.0.1", stack.ui_port), ("mlflow", "127.0.0.1", stack.mlflow_port)}
    # The host's view: whatever the engine listens on for the stack is loopback only.
    engine = {"dockerd", "docker-proxy", "containerd"}

    def name(pid: int | None) -> str | None:  # the other tests' processes come and go meanwhile
        try:
            return psutil.Process(pid).name() if pid else None
        except psutil.NoSuchProcess:
            return None

    outside = [
        (c.laddr.ip, c.laddr.port)
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and name(c.pid) in engine and c.laddr.ip not in ("127.0.0.1", "::1")
    ]
    assert not outside


def test_the_api_and_mlflow_want_a_login(stack):
    assert stack.api.request("GET", "/api/v2/dags", auth=False)[0] == 401
    status, body = stack.api.request("GET", "/api/v2/dags")
    assert status == 200 and DAG in {d["dag_id"] for d in body["dags"]}, body
    assert mlflow_get(stack, "/api/2.0/mlflow/registered-models/search", auth=False)[0] == 401
    assert mlflow_get(stack, "/api/2.0/mlflow/registered-models/search")[0] == 200


def test_a_run_over_the_rest_api_runs_on_the_workers_and_survives_a_killed_training_worker(stack):
    api = stack.api
    api.unpause(DAG)
    run_id = api.trigger(
        DAG,
        {"generate_events": 1000, "models": [MODEL], "feed_format": "tfrecord", "epochs": EPOCHS, "use_tuned": False},
    )
    progress = f"/data/runs/*/models/{MODEL}.progress.json"

    def one_epoch_done():
        if api.runs(DAG)[-1]["state"] == "failed":
            raise AssertionError(f"run failed before training:\n{api.failed_task_logs(DAG, run_id)}")
        text = stack.exec("dask-scheduler", "sh", "-c", f"cat {progress} 2>/dev/null || true").strip()
        return text and len(json.loads(text)) >= 1

    wait_until(one_epoch_done, 1200, "no training epoch finished", 2)
    worker = stack.container("training-worker")
    hostname = stack.inspect(worker, "{{.Config.Hostname}}")
    os.kill(int(stack.inspect(worker, "{{.State.Pid}}")), signal.SIGKILL)  # the container's main process dies
    wait_until(lambda: int(stack.inspect(worker, "{{.RestartCount}}")) >= 1, 120, "the killed worker never restarted")

    [run] = api.wait_for_runs(DAG, 1, timeout=1200)
    assert run["state"] == "success", api.failed_task_logs(DAG, run_id)
    tis = {t["task_id"]: t for t in api.task_instances(DAG, run_id)}
    train = tis["train_model"]
    assert train["try_number"] == 2  # killed once with its worker, then retried
    assert (train["queue"], train["hostname"]) == ("gpu", hostname)  # on the training worker, both tries
    assert tis["ingest_events"]["queue"] == "default"
    assert tis["ingest_events"]["hostname"] == stack.inspect(stack.container("airflow-worker"), "{{.Config.Hostname}}")
    result = json.loads(stack.exec("dask-scheduler", "sh", "-c", f"cat /data/runs/*/models/{MODEL}/training.json"))
    assert result["resumed_after_epochs"] >= 1 and result["epochs_run"] == EPOCHS  # the retry went on from its backup

    # The ingestion's chunks ran on the compose Dask cluster, not in the worker.
    prefixes = stack.exec(
        "dask-scheduler", "python", "-c",
        "from distributed import Client\n"
        "with Client('tcp://localhost:8786', timeout=30) as c:\n"
        "    print(' '.join(c.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))))",
    ).split()  # fmt: skip
    assert "process_chunk" in prefixes, prefixes

    status, body = mlflow_get(stack, f"/api/2.0/mlflow/registered-models/get?name=topo-{MODEL}")
    assert status == 200, body
    assert [v["version"] for v in body["registered_model"]["latest_versions"]] == ["1"]
