"""Task bodies shared by the DAGs: read the run's context and Params, call a
stage in ``tasks/``, return paths and small summaries for XCom.

Heavy modules (TensorFlow, Dask, Great Expectations) are imported inside the
functions, so DAG files that import this stay light.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from airflow.sdk import get_current_context

from topo_airflow.params import effective

log = logging.getLogger(__name__)


def run_key(run_id: str | None = None) -> str:
    """A directory name for the run's outputs: retries and re-runs of the same
    run write to the same place."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", run_id or get_current_context()["run_id"])


def params() -> dict:
    """This run's Params, smoke caps applied."""
    return effective(get_current_context()["params"])


def settings():
    from tasks.core.settings import Settings

    return Settings.from_env()


def check_contract(contract: str, dataset: str, dask: bool = True) -> dict:
    """A quality gate: validate ``dataset`` against data_contracts/<contract>.json.

    A broken contract fails the task at once (AirflowFailException: no retry
    can fix the data), so nothing downstream runs; the log names the failed
    rules and where the GX data docs are."""
    from airflow.sdk.exceptions import AirflowFailException

    from tasks.contracts import ContractError, ValidationSettings, validate
    from tasks.core.runtime import dask_client

    config = settings()
    options = ValidationSettings.under(config.data_root, run_name=f"{run_key()}-{Path(dataset).name}")
    try:
        if dask:
            with dask_client(config) as client:
                report = validate(contract, dataset, options, client)
        else:
            report = validate(contract, dataset, options)
    except ContractError as exc:
        raise AirflowFailException(str(exc)) from None
    return {"contract": contract, "rows": report["rows"], "docs": report["docs"], "warnings": len(report["warnings"])}


def prepare(events: str | list[str], output: Path) -> dict:
    """Balanced, split, scaled training data from ingested events, on Dask."""
    from tasks.datasets.prepare import PrepareSettings, prepare as run_prepare
    from tasks.core.runtime import dask_client

    p, config = params(), settings()
    options = PrepareSettings(seed=p["split_seed"], test_fraction=p["test_fraction"], shard_events=config.shard_events)
    with dask_client(config) as client:
        summary = run_prepare(events, output, client, options)
    return {"prepared": summary["output"], "train_events": summary["train"]["events"],
            "test_events": summary["test"]["events"], "scaler_sha256": summary["scaler"]["sha256"]}  # fmt: skip


def write_feeds(prepared: dict) -> dict:
    """The prepared rows as TFRecord shards next to them, on Dask."""
    from tasks.datasets.feeds import write_tfrecords
    from tasks.core.runtime import dask_client

    config = settings()
    output = Path(prepared["prepared"]).parent / "tfrecord"
    with dask_client(config) as client:
        summary = write_tfrecords(prepared["prepared"], output, client, compression=config.tfrecord_compression)
    return {"petastorm": prepared["prepared"], "tfrecord": summary["output"], "train_events": summary["train"]["events"],
            "test_events": summary["test"]["events"]}  # fmt: skip


def train(feeds: dict, model: str) -> dict:
    """One classifier from the run's Params (and the tuned hyperparameters when
    ``use_tuned``), resuming from its backup if this is a retry."""
    from tasks.learning.tuning import tuned_settings
    from tasks.learning.train import TrainSettings, parse_schedule, train as run_train

    p = params()
    options = TrainSettings(model=model, feed=p["feed_format"] if feeds.get("tfrecord") else "petastorm",
                            epochs=p["epochs"], batch_size=p["batch_size"],
                            learning_rates=parse_schedule(p["learning_rate"]), seed=p["train_seed"])  # fmt: skip
    tuned = None
    if p.get("use_tuned", True):
        options, tuned = tuned_settings(options, settings().data_root)
    output = Path(feeds["petastorm"]).parent / "models" / model
    result = run_train(feeds["petastorm"], output, options, tfrecord=feeds.get("tfrecord"))
    return {"model": model, "model_dir": str(output), "epochs_run": result["epochs_run"], "tuned": bool(tuned),
            "resumed_after_epochs": result["resumed_after_epochs"], "val_accuracy": result["final"].get("val_accuracy")}  # fmt: skip


def evaluate(trained: dict) -> dict:
    """Metrics, plots, the HTML report and per-event scores of one trained model."""
    from tasks.learning.evaluate import evaluate as run_evaluate

    output = Path(trained["model_dir"]).parent.parent / "evaluation" / trained["model"]
    metrics = run_evaluate(trained["model_dir"], output)
    return {"model": trained["model"], "report": str(output / "report.html"), "accuracy": metrics["accuracy"],
            "auc": {name: c["auc"] for name, c in metrics["classes"].items()}}  # fmt: skip


def check_predictions(evaluated: dict) -> dict:
    predictions = str(Path(evaluated["report"]).parent / "predictions.parquet")
    return evaluated | {"contract": check_contract("predictions", predictions, dask=False)}


def register(evaluated: dict) -> dict:
    """Track the model in MLflow and add a version to topo-<model> (no promotion)."""
    from tasks.learning.registry import register as run_register

    evaluation = Path(evaluated["report"]).parent
    model_dir = evaluation.parent.parent / "models" / evaluated["model"]
    result = run_register(model_dir, evaluation, settings().tracking_uri, run_name=f"{evaluated['model']}-{run_key()}")
    return {"model": evaluated["model"], "name": result["name"], "version": result["version"], "run_id": result["run_id"],
            "run_dir": str(evaluation.parent.parent)}  # fmt: skip


def promote(registered: dict) -> dict:
    """Champion only if better than the current one on this run's test split;
    the decision and both scores are logged and kept in the registry."""
    from tasks.learning.registry import promote as run_promote

    p = params()
    prepared = Path(registered["run_dir"]) / "prepared"
    decision = run_promote(registered["name"], registered["version"], prepared / "test", "petastorm", settings().tracking_uri,
                           metric=p["promotion_metric"], margin=p["promotion_margin"],
                           data_scaler_path=prepared / "scaler.json")  # fmt: skip
    log.info("promotion of %s v%s: %s; scores %s", registered["name"], registered["version"],
             "PROMOTED" if decision["promoted"] else "not promoted", decision["scores"])  # fmt: skip
    return {k: decision[k] for k in ("name", "challenger", "champion_before", "promoted", "reason", "metric")} | {
        "scores": {role: s[decision["metric"]] for role, s in decision["scores"].items()}, "run_dir": registered["run_dir"]}


def report(decisions: list[dict]) -> dict:
    """The run's one-page report: the AUC table and the promotion decisions."""
    from tasks.reporting.run_report import auc_table, summarise_run

    decisions = list(decisions)
    run_dir = Path(decisions[0]["run_dir"])
    summary = summarise_run(run_dir, decisions)
    log.info("run %s:\n%s\nreport: %s", run_dir.name, auc_table(summary), summary["report"])
    return {"report": summary["report"], "summary": str(run_dir / "summary.json")}
