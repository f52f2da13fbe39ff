"""What every DAG shares: defaults, the contract gate, the model choice, and
the model half of a pipeline.

The model chain, one mapped chain per model, then one report for the run:

    train_model (pool gpu, queue TOPO_TRAINING_QUEUE) → evaluate_model → validate_predictions (gate, no retry)
        → register_model → compare_model → approve_promotion (a person, when the run's
        Param require_approval asks for one) → promote_model ──→ report_run

Call ``train_evaluate_promote(prepared, models)`` inside a ``@dag`` function:
``prepared`` is the XCom of a prepared run (topo_airflow.payloads.Prepared),
``models`` the XCom of a list of model names.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import task

from tasks.core.settings import parse_time_setting
from topo_airflow import stages
from topo_airflow.approval import PromotionApproval

START = pendulum.datetime(2026, 1, 1, tz="UTC")
RETRIES = {"retries": 2, "retry_delay": timedelta(seconds=30)}
"""Every stage retries twice (training resumes from its last epoch); gates set retries=0."""
TRAINING_QUEUE = parse_time_setting("training_queue")
"""Read when the DAG is parsed. Executors with queues (Celery in docker-compose.yml)
send training to the GPU worker's queue; the LocalExecutor ignores it."""


def dag_defaults(doc: str | None) -> dict:
    """The arguments every DAG of the project shares (start, no catch-up, retries, its docs in the UI)."""
    return {"start_date": START, "catchup": False, "default_args": RETRIES, "doc_md": doc}


def contract_gate(task_id: str, contract: str, dataset: Callable[[dict], Path], dask: bool = True):
    """A quality gate task: the dataset named by the payload must keep
    data_contracts/<contract>.json. No retries: a broken dataset is not fixed
    by trying again; a failure stops everything downstream."""

    @task(task_id=task_id, retries=0, doc_md=f"Gate: the dataset keeps `data_contracts/{contract}.json`; no retry.")
    def gate(payload: dict) -> dict:
        return payload | {"contract": stages.check_contract(contract, dataset(payload), dask=dask)}

    return gate


@task
def choose_models() -> list[str]:
    """The models this run trains (Param `models`): one mapped chain each."""
    return stages.choose_models()


def train_evaluate_promote(prepared, models):
    @task(pool="gpu", queue=TRAINING_QUEUE)
    def train_model(feeds: dict, model: str) -> dict:
        """One classifier, resuming from its backup if this is a retry."""
        return stages.train(feeds, model)

    @task
    def evaluate_model(trained: dict) -> dict:
        """Metrics, plots and the HTML report of one trained model."""
        return stages.evaluate(trained)

    validate_predictions = contract_gate("validate_predictions", "predictions", stages.predictions_of, dask=False)

    @task
    def register_model(evaluated: dict) -> dict:
        """Track the run in MLflow and add a version to topo-<model> (no promotion)."""
        return stages.register(evaluated)

    @task
    def compare_model(registered: dict) -> dict:
        """Champion and challenger scored on this run's test split; nothing moves yet."""
        return stages.compare(registered)

    @task
    def promote_model(approved: dict) -> dict:
        """The challenger becomes champion if it is better and, where asked, approved."""
        return stages.promote(approved)

    @task
    def report_run(decisions: list[dict]) -> dict:
        """One page for the run: the AUC table, the promotion decisions, links to each report."""
        # By index, not by iterating: the lazy sequence's iterator ends by asking
        # for one item past the end, which the task log shows as an error.
        return stages.report([decisions[i] for i in range(len(decisions))])

    trained = train_model.partial(feeds=prepared).expand(model=models)
    evaluated = validate_predictions.expand(payload=evaluate_model.expand(trained=trained))
    compared = compare_model.expand(registered=register_model.expand(evaluated=evaluated))
    # Not retried: a retry would ask again a person who already answered.
    approved = PromotionApproval.partial(task_id="approve_promotion", retries=0).expand(compared=compared)
    return report_run(promote_model.expand(approved=approved.output))
