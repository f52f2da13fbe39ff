"""The model half of a pipeline, the same in every DAG that trains.

One mapped chain per model, then one report for the run:

    train_model (pool gpu, queue TOPO_TRAINING_QUEUE) → evaluate_model → validate_predictions (gate, no retry)
        → register_model → promote_model ──→ report_run

Call ``train_evaluate_promote(feeds, models)`` inside a ``@dag`` function:
``feeds`` is the XCom of a dict with ``petastorm`` (the prepared dataset) and
optionally ``tfrecord``; ``models`` the XCom of a list of model names.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import task

from tasks.core.settings import Settings
from topo_airflow import stages

START = pendulum.datetime(2026, 1, 1, tz="UTC")
RETRIES = {"retries": 2, "retry_delay": timedelta(seconds=30)}
"""Every stage retries twice (training resumes from its last epoch); gates set retries=0."""
TRAINING_QUEUE = Settings.from_env().training_queue
"""Read when the DAG is parsed. Executors with queues (Celery in docker-compose.yml)
send training to the GPU worker's queue; the LocalExecutor ignores it."""


def train_evaluate_promote(feeds, models):
    @task(pool="gpu", queue=TRAINING_QUEUE)
    def train_model(feeds: dict, model: str) -> dict:
        """One classifier, resuming from its backup if this is a retry."""
        return stages.train(feeds, model)

    @task
    def evaluate_model(trained: dict) -> dict:
        """Metrics, plots and the HTML report of one trained model."""
        return stages.evaluate(trained)

    @task(retries=0)
    def validate_predictions(evaluated: dict) -> dict:
        """Gate: the model's test-split scores keep data_contracts/predictions.json."""
        return stages.check_predictions(evaluated)

    @task
    def register_model(evaluated: dict) -> dict:
        """Track the run in MLflow and add a version to topo-<model> (no promotion)."""
        return stages.register(evaluated)

    @task
    def promote_model(registered: dict) -> dict:
        """Champion only if better than the current one on this run's test split."""
        return stages.promote(registered)

    @task
    def report_run(decisions: list[dict]) -> dict:
        """One page for the run: the AUC table, the promotion decisions, links to each report."""
        return stages.report(decisions)

    trained = train_model.partial(feeds=feeds).expand(model=models)
    evaluated = validate_predictions.expand(evaluated=evaluate_model.expand(trained=trained))
    return report_run(promote_model.expand(registered=register_model.expand(evaluated=evaluated)))
