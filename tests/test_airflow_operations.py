"""Operating the product through a running Airflow (`airflow standalone`, LocalExecutor,
SQLite): Params refused at trigger time, the hyperparameter fan-out under its
concurrency limit, a promotion waiting for a person. (Backfills run on the
local cluster's PostgreSQL: tests/test_local_cluster.py.)"""

from __future__ import annotations

import json
import urllib.parse
from datetime import datetime

import pytest

from tests.support.airflow_service import AirflowService, wait_until

MAX_PARALLEL_TRIALS = 2


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    root = tmp_path_factory.mktemp("service")
    service = AirflowService(
        root / "airflow",
        root / "data",
        {
            "TOPO_DASK_WORKERS": "1",  # several tasks at once on two cores: one Dask worker each
            "TOPO_HPO_MAX_PARALLEL_TRIALS": str(MAX_PARALLEL_TRIALS),
            "AIRFLOW__CORE__PARALLELISM": "8",
        },
    )
    service.start()
    service.cli("pools", "set", "gpu", "4", "more slots than the trial limit, so the limit is what holds")
    try:
        yield service
    finally:
        service.stop()


@pytest.mark.slow
def test_invalid_params_are_refused_when_the_run_is_triggered(airflow):
    airflow.wait_for_dag("topology_classifier")
    for conf, field in [
        ({"epochs": 0}, "epochs"),
        ({"models": []}, "models"),
        ({"models": ["bdt"]}, "models"),
        ({"feed_format": "csv"}, "feed_format"),
        ({"learning_rate": "fast"}, "learning_rate"),
        ({"test_fraction": 1.5}, "test_fraction"),
    ]:
        status, body = airflow.request(
            "POST", "/api/v2/dags/topology_classifier/dagRuns", {"logical_date": None, "conf": conf}
        )
        assert status == 400, (conf, body)
        assert f"param {field}" in body["detail"], body
    assert airflow.runs("topology_classifier") == []  # refused: no run, so no task ever started
    # And the API is not open to anyone.
    assert airflow.request("GET", "/api/v2/dags", auth=False)[0] == 401


@pytest.mark.slow
def test_hyperparameter_trials_fan_out_within_the_concurrency_limit(airflow, prepared):
    out, _, _ = prepared
    grid = {"hidden": [[4], [8]], "optimizer": ["adam", "sgd"], "batch_size": [16], "learning_rate": [5e-3]}
    airflow.unpause("tune_hyperparameters")
    status, body = airflow.request(
        "POST",
        "/api/v2/dags/tune_hyperparameters/dagRuns",
        {"logical_date": None, "conf": {"prepared": str(out), "grid": grid, "epochs": 1}},
    )
    assert status == 200, body
    [run] = airflow.wait_for_runs("tune_hyperparameters", 1, timeout=900)
    assert run["state"] == "success", airflow.failed_task_logs("tune_hyperparameters", run["dag_run_id"])
    trials = [
        t for t in airflow.task_instances("tune_hyperparameters", run["dag_run_id"]) if t["task_id"] == "run_trial"
    ]
    assert sorted(t["map_index"] for t in trials) == [0, 1, 2, 3] and all(t["state"] == "success" for t in trials)
    spans = [(datetime.fromisoformat(t["start_date"]), datetime.fromisoformat(t["end_date"])) for t in trials]
    overlap = max(sum(1 for s, e in spans if s <= moment < e) for moment, _ in spans)
    assert overlap == MAX_PARALLEL_TRIALS, spans  # trials ran side by side, never more than the limit

    tuned = json.loads((airflow.data_root / "hyperparameters" / "hlf.json").read_text())
    results = [json.loads(p.read_text()) for p in sorted((airflow.data_root / "tuning").glob("*/trial-*/trial.json"))]
    assert len(results) == 4 and tuned["score"] == max(r["score"] for r in results) and tuned["trials"] == 4
    assert tuned["hyperparameters"] in [r["hyperparameters"] for r in results]
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{airflow.data_root / 'mlflow' / 'mlflow.db'}")
    tracked = mlflow.search_runs(experiment_names=["topology-classifier-tuning"], output_format="list")
    assert sorted(r.data.params["hidden"] for r in tracked) == ["[4]", "[4]", "[8]", "[8]"]

    # The search's report page, in the run reports' style, offline, and in the Airflow UI.
    from tests.support.reports import open_report

    [report] = list((airflow.data_root / "tuning").glob("*/report.html"))
    shown = open_report(report)
    assert list(shown["sections"]) == ["best", "trials", "scores", "training"] and not shown["remote_requests"]
    assert shown["images"]["score of each trial"] > 0 and shown["images"]["training curves of every trial"] > 0
    assert f"{tuned['score']:.4f}" in shown["text"] and "4 trials of the hlf classifier" in shown["text"]
    path = f"/topo/reports/tune_hyperparameters/{urllib.parse.quote(run['dag_run_id'], safe='')}"
    status, page = airflow.fetch("GET", path)
    assert status == 200 and page == report.read_text(), page[:500]
    assert airflow.fetch("GET", path, auth=False)[0] in (401, 403)  # Airflow's access rules hold
    status, body = airflow.fetch("GET", "/topo/reports/tune_hyperparameters/no-such-run")
    assert status == 404 and "has no report yet" in body
    status, body = airflow.request("GET", "/api/v2/plugins")
    [view] = [v for p in body["plugins"] if p["name"] == "topo_reports" for v in p["external_views"]]
    assert view["destination"] == "dag_run" and view["href"] == "topo/reports/{DAG_ID}/{RUN_ID}"


@pytest.mark.slow
def test_a_promotion_waits_for_a_person_who_approves_or_rejects_and_silence_rejects(airflow):
    """require_approval: each winning challenger (no champion yet: all three
    win) waits in awaiting_input for an answer over the REST API. Approved, the
    alias moves; rejected, it does not; unanswered, the timeout rejects. Each
    decision and who made it is recorded on the version."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from tasks.learning.registry import CHAMPION, tracking

    dag = "topology_classifier"
    airflow.unpause(dag)
    conf = {"smoke": True, "models": ["hlf", "gru", "inclusive"], "use_tuned": False}
    run_id = airflow.trigger(dag, conf | {"require_approval": True, "approval_timeout_minutes": 1})
    run = f"/api/v2/dags/{dag}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
    answers = {"topo-hlf": "Approve", "topo-gru": "Reject"}  # topo-inclusive: nobody answers
    answered, waited = {}, set()

    def answer_what_is_asked():
        status, body = airflow.request("GET", f"{run}/hitlDetails")
        assert status == 200, body
        for detail in body["hitl_details"]:
            name = detail["subject"].split()[1]  # "Promote topo-hlf v1 to champion?"
            ti = detail["task_instance"]
            assert ti["task_id"] == "approve_promotion", ti
            if ti["state"] != "awaiting_input" or not airflow.parked(run_id, ti["task_id"], ti["map_index"]):
                continue  # answered before it is parked for good, the task can be failed (AirflowClient.parked)
            waited.add(name)
            if name in answers and name not in answered:
                assert detail["options"] == ["Approve", "Reject"] and "| challenger | v1 |" in detail["body"], detail
                path = f"{run}/taskInstances/approve_promotion/{ti['map_index']}/hitlDetails"
                status, reply = airflow.request("PATCH", path, {"chosen_options": [answers[name]]})
                assert status == 200, reply
                answered[name] = reply["responded_by"]["name"]
        if airflow.runs(dag)[-1]["state"] == "failed":
            raise AssertionError(airflow.failed_task_logs(dag, run_id))
        return len(answered) == len(answers)

    wait_until(answer_what_is_asked, 900, "the approvals were never asked", 2)
    assert answered == {"topo-hlf": "admin", "topo-gru": "admin"}
    [finished] = airflow.wait_for_runs(dag, 1, timeout=600)
    assert finished["state"] == "success", airflow.failed_task_logs(dag, run_id)
    assert waited >= set(answers)  # they really waited for the person
    states = {(t["task_id"], t["map_index"]): t["state"] for t in airflow.task_instances(dag, run_id)}
    assert {s for (task, _), s in states.items() if task in ("approve_promotion", "promote_model")} == {"success"}

    tracking(f"sqlite:///{airflow.data_root / 'mlflow' / 'mlflow.db'}")
    client = MlflowClient()
    decision = {
        m: json.loads(client.get_model_version(f"topo-{m}", "1").tags["promotion_decision"])
        for m in ("hlf", "gru", "inclusive")
    }
    assert decision["hlf"]["promoted"] and decision["hlf"]["approval"] | {"at": None} == {
        "approved": True, "by": "admin", "timed_out": False, "at": None, "asked": True,
    }  # fmt: skip
    assert int(client.get_model_version_by_alias("topo-hlf", CHAMPION).version) == 1
    assert not decision["gru"]["promoted"] and decision["gru"]["approval"]["by"] == "admin"
    assert decision["gru"]["reason"].endswith("rejected by admin")
    silent = decision["inclusive"]
    assert not silent["promoted"] and silent["approval"]["timed_out"] and silent["approval"]["by"] is None
    for model in ("gru", "inclusive"):
        with pytest.raises(MlflowException):
            client.get_model_version_by_alias(f"topo-{model}", CHAMPION)  # the champion did not move
    # Smoke mode capped what was read and trained: one file per sample, one epoch.
    [run_dir] = [p.parent for p in (airflow.data_root / "runs").glob("*/report.html")]
    summary = json.loads((run_dir / "events" / "_summary.json").read_text())
    assert all(len(s["files"]) == 1 for s in summary["samples"].values())
    assert {json.loads((run_dir / "models" / m / "training.json").read_text())["epochs_run"] for m in decision} == {1}
    # And the run's report says who decided.
    [report] = list((airflow.data_root / "runs").glob("*/report.html"))
    text = report.read_text()
    assert "approved by admin" in text and "rejected by admin" in text and "timed out: rejected" in text
