"""The model registry, on MLflow: tracking, versions, champion, rollback.

- ``register``: one MLflow run per trained model, with its parameters, the
  per-epoch metrics (step = epoch), the test metrics, and as artifacts the
  whole model directory (model, scaler statistics, feature order in
  training.json, history) and the evaluation (metrics, plots, report). The
  model becomes a new version of the registered model of its kind
  (``topo-inclusive``, ``topo-hlf``, ...).
- ``attach_report``: the run report, logged with a version's MLflow run and
  tagged on the version (``run_report``).
- ``promote``: the only way to become ``champion`` (an MLflow alias). The
  challenger and the current champion are scored on the same test events, each
  with its own scaler, and the challenger wins only if it is better by the
  configured physics metric and margin (tasks.learning.metrics). The decision and both scores are
  recorded on the version; every change of champion is appended to a history
  kept on the registered model, so ``rollback`` can undo it. ``promote`` is
  ``compare`` (both scores, the decision) then ``decide`` (the alias moves);
  the approval step of the DAGs puts a person between the two.

Tracking goes to ``Settings.tracking_uri``: a server when configured
(``TOPO_MLFLOW_TRACKING_URI``), else SQLite and files under
``<data root>/mlflow``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path

from tasks.core import schema
from tasks.core.errors import SettingsError, TopoError
from tasks.core.storage import read_json
from tasks.learning.metrics import METRICS, _better, summarise

log = logging.getLogger(__name__)

EXPERIMENT = "topology-classifier"
CHAMPION = "champion"
HISTORY_TAG = "champion_history"


class RegistryError(TopoError):
    """A registry request that cannot be honoured (no such model or version, nothing to roll back)."""


def registered_name(model: str) -> str:
    return f"topo-{model}"


def tracking(tracking_uri: str, experiment: str = EXPERIMENT):
    """mlflow with the tracking URI set and the experiment present; a local
    store keeps its artifacts next to its database, not in the working directory."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # task logs are not terminals
    import mlflow
    from mlflow.exceptions import MlflowException

    local_store = (
        Path(tracking_uri.removeprefix("sqlite:///")).parent if tracking_uri.startswith("sqlite:///") else None
    )
    mlflow.set_tracking_uri(tracking_uri)
    with _store_lock(local_store):
        if mlflow.get_experiment_by_name(experiment) is None:
            location = (local_store / "artifacts").resolve().as_uri() if local_store is not None else None
            try:
                mlflow.create_experiment(experiment, artifact_location=location)
            except MlflowException as error:  # a server another task reached first
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
    mlflow.set_experiment(experiment)
    return mlflow


@contextlib.contextmanager
def _store_lock(local_store: Path | None):
    """Hold an exclusive lock on a local store while it may be created.

    The first call on a new SQLite store creates and migrates its tables; two
    tasks doing that at once (parallel tuning trials) leave alembic's version
    table behind the schema and every later call fails. A server needs no lock."""
    if local_store is None:
        yield
        return
    import fcntl

    local_store.mkdir(parents=True, exist_ok=True)
    with open(local_store / ".store.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def register(model_dir: str | Path, evaluation_dir: str | Path, tracking_uri: str, run_name: str | None = None) -> dict:
    """Track a trained and evaluated model and register it as a new version."""
    model_dir, evaluation_dir = Path(model_dir).resolve(), Path(evaluation_dir).resolve()
    training = read_json(model_dir / "training.json")
    history = read_json(model_dir / "history.json")
    test = summarise(read_json(evaluation_dir / "metrics.json"))
    mlflow = tracking(tracking_uri)
    from mlflow import MlflowClient

    name = registered_name(training["model"])
    client = MlflowClient()
    # A retried task must not register the same model twice.
    for existing in client.search_model_versions(f"name = '{name}'"):
        if existing.tags.get("model_dir") == str(model_dir):
            log.info("%s version %s already registers %s", name, existing.version, model_dir)
            return {"name": name, "version": int(existing.version), "run_id": existing.run_id, "test": test}

    settings = training["settings"]
    params = {
        **{k: (json.dumps(v) if isinstance(v, (list, tuple, dict)) else v) for k, v in settings.items()},
        "parameters": training["parameters"],
        "train_events": training["train_events"],
        "test_events": training["test_events"],
        "scaler_sha256": training["scaler_sha256"],
        "prepared": training["prepared"],
        "devices": ",".join(training["devices"]["gpus"]) or "cpu",
    }
    with mlflow.start_run(run_name=run_name or f"{training['model']}-{time.strftime('%Y%m%dT%H%M%S')}") as run:
        mlflow.log_params(params)
        for epoch in sorted(history, key=int):
            mlflow.log_metrics({k: v for k, v in history[epoch].items()}, step=int(epoch))
        mlflow.log_metrics({f"test_{k}": v for k, v in test.items()})
        mlflow.log_artifacts(str(model_dir), artifact_path="model")
        _log_signature(mlflow, training, run.info.run_id)
        mlflow.log_artifacts(str(evaluation_dir), artifact_path="evaluation")
        source = mlflow.get_artifact_uri("model")
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name, description=f"{training['model']} topology classifier (docs/spec.md)")
    tags = {f"test_{k}": f"{v:.6f}" for k, v in test.items()} | {"model_dir": str(model_dir)}
    version = client.create_model_version(name, source=source, run_id=run.info.run_id, tags=tags)
    log.info(
        "registered %s version %s (run %s): test mean AUC %.4f",
        name,
        version.version,
        run.info.run_id,
        test["mean_auc"],
    )
    return {"name": name, "version": int(version.version), "run_id": run.info.run_id, "test": test}


def _log_signature(mlflow, training: dict, run_id: str) -> None:
    """An MLmodel file beside the model's files: its signature (named inputs,
    shapes, probabilities out) shows in the MLflow UI and in
    ``mlflow.models.get_model_info``. No flavour: the directory is loaded
    with Keras (``download``) or exported (``topo export``)."""
    from mlflow.models import Model

    from tasks.learning.export import mlflow_signature

    with tempfile.TemporaryDirectory(prefix="topo-mlmodel-") as tmp:
        about = {"model": training["model"], "inputs": training["inputs"], "classes": list(schema.CLASS_NAMES)}
        Model(
            artifact_path="model", run_id=run_id, signature=mlflow_signature(training["inputs"]), metadata=about
        ).save(f"{tmp}/MLmodel")
        mlflow.log_artifact(f"{tmp}/MLmodel", artifact_path="model")


def attach_report(name: str, version: int, report: str | Path, tracking_uri: str) -> str:
    """Log a run report with the MLflow run of a registered version; its URI is
    tagged on the version (``run_report``), so the registry leads to it."""
    tracking(tracking_uri)
    from mlflow import MlflowClient

    client = MlflowClient()
    found = client.get_model_version(name, str(version))
    client.log_artifact(found.run_id, str(report), artifact_path="run_report")
    uri = f"{client.get_run(found.run_id).info.artifact_uri}/run_report/{Path(report).name}"
    client.set_model_version_tag(name, str(version), "run_report", uri)
    return uri


def download(
    name: str, tracking_uri: str, version: int | None = None, alias: str | None = None, dst: str | Path | None = None
) -> Path:
    """A registered version's model directory (model.keras, scaler.json, training.json)."""
    mlflow = tracking(tracking_uri)
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        found = (
            client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, str(version))
        )
    except MlflowException as exc:
        raise RegistryError(f"no version {alias or version} of registered model {name!r} ({exc.message})") from exc
    target = Path(dst or tempfile.mkdtemp(prefix="topo-model-"))
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=found.source, dst_path=str(target)))


def _history(client, name: str) -> list[dict]:
    tags = client.get_registered_model(name).tags
    return json.loads(tags.get(HISTORY_TAG, "[]"))


def promote(
    name: str,
    version: int,
    test_path: str | Path,
    fmt: str,
    tracking_uri: str,
    metric: str = "mean_auc",
    margin: float = 0.0,
    data_scaler_path: str | Path | None = None,
) -> dict:
    """Make ``version`` the champion if it beats the current one on the same test data."""
    decision = compare(name, version, test_path, fmt, tracking_uri, metric, margin, data_scaler_path)
    return decide(decision, tracking_uri)


def compare(
    name: str,
    version: int,
    test_path: str | Path,
    fmt: str,
    tracking_uri: str,
    metric: str = "mean_auc",
    margin: float = 0.0,
    data_scaler_path: str | Path | None = None,
) -> dict:
    """Score ``version`` (the challenger) and the current champion on the same
    test data: the decision ``decide`` carries out, with both scores.
    ``promoted`` says whether the challenger wins; nothing moves yet."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from tasks.datasets.scaling import Scaler
    from tasks.learning.metrics import physics_metrics
    from tasks.learning.scoring import predict_split

    if metric not in METRICS:
        raise SettingsError(f"unknown promotion metric {metric!r}; choose one of {', '.join(METRICS)}")
    tracking(tracking_uri)
    client = MlflowClient()
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:  # no champion yet
        current = None
    if current is not None and int(current.version) == int(version):
        raise RegistryError(f"{name} version {version} is already the champion")
    data_scaler = Scaler.load(data_scaler_path) if data_scaler_path else None
    scores = {}
    with tempfile.TemporaryDirectory(prefix="topo-promote-") as tmp:
        contenders = {"challenger": int(version)} | ({"champion": int(current.version)} if current is not None else {})
        for role, number in contenders.items():
            model_dir = download(name, tracking_uri, version=number, dst=Path(tmp) / role)
            scores[role] = summarise(
                physics_metrics(*predict_split(model_dir, Path(test_path), fmt, data_scaler=data_scaler))
            )
    challenger_score = scores["challenger"][metric]
    if current is None:
        better, reason = True, "no champion yet"
    else:
        champion_score = scores["champion"][metric]
        better = _better(metric, challenger_score, champion_score, margin)
        relation = "beats" if better else "does not beat"
        reason = (
            f"challenger {metric} {challenger_score:.4f} {relation} champion v{current.version} "
            f"{champion_score:.4f} by the margin {margin}"
        )
    return {
        "name": name,
        "challenger": int(version),
        "champion_before": int(current.version) if current else None,
        "metric": metric,
        "margin": margin,
        "promoted": better,
        "reason": reason,
        "scores": scores,
        "test_data": str(test_path),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def decide(decision: dict, tracking_uri: str, approval: dict | None = None) -> dict:
    """Carry out ``compare``'s decision: the champion alias moves to a better
    challenger, unless a person was asked and did not approve.

    ``approval`` (from the approval step): ``{"approved": bool, "by": user
    or None, "timed_out": bool, "at": time}``; None when nobody was asked.
    The decision, with the approval, is recorded on the challenger's version
    (tag ``promotion_decision``) either way."""
    from mlflow import MlflowClient

    tracking(tracking_uri)
    client = MlflowClient()
    name, version = decision["name"], decision["challenger"]
    decision = dict(decision)
    if approval is not None:
        decision["approval"] = approval
        if decision["promoted"] and not approval["approved"]:
            who = "the approval timed out" if approval.get("timed_out") else f"rejected by {approval.get('by')}"
            decision["promoted"], decision["reason"] = False, f"{decision['reason']}; {who}"
    client.set_model_version_tag(name, str(version), "promotion_decision", json.dumps(decision)[:5000])
    if decision["promoted"]:
        client.set_registered_model_alias(name, CHAMPION, str(version))
        history = _history(client, name) + [
            {
                "champion": int(version),
                "previous": decision["champion_before"],
                "metric": decision["metric"],
                "score": decision["scores"]["challenger"][decision["metric"]],
                "time": decision["time"],
            }
            | ({"approved_by": approval.get("by")} if approval else {})
        ]
        client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    log.info(
        "%s: %s v%s -> %s (%s)",
        name,
        "promoted" if decision["promoted"] else "kept champion;",
        version,
        CHAMPION if decision["promoted"] else f"v{decision['champion_before']} stays",
        decision["reason"],
    )
    return decision


def rollback(name: str, tracking_uri: str) -> dict:
    """Give the champion alias back to the version that held it before."""
    from mlflow import MlflowClient

    tracking(tracking_uri)
    client = MlflowClient()
    history = _history(client, name)
    if not history or history[-1]["previous"] is None:
        raise RegistryError(f"{name} has no earlier champion to roll back to")
    last = history[-1]
    client.set_registered_model_alias(name, CHAMPION, str(last["previous"]))
    history.append(
        {
            "champion": last["previous"],
            "previous": last["champion"],
            "rollback": True,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    )
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    log.info("%s: rolled back, champion is v%s again (was v%s)", name, last["previous"], last["champion"])
    return {"name": name, "champion": last["previous"], "replaced": last["champion"]}


def champion_history(name: str, tracking_uri: str) -> list[dict]:
    from mlflow import MlflowClient

    tracking(tracking_uri)
    return _history(MlflowClient(), name)
