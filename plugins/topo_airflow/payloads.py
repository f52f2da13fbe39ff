"""What the tasks pass each other through XCom, declared once.

A payload names the run (its catalog kind and key) and, after training, the
model; each task rebuilds the paths it needs from the run catalog
(tasks.core.catalog) instead of taking apart a path it was given. Small
facts (counts, versions, scores) ride along for the logs and the UI.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict


class GateResult(TypedDict):
    """A passed contract gate (a failed one fails its task)."""

    contract: str
    rows: int
    docs: str
    warnings: int


class RunRef(TypedDict):
    """A run of the catalog: ``Catalog.run(run, kind)``."""

    run: str
    kind: str  # runs | retraining
    contract: NotRequired[GateResult]  # added by a gate


class Ingested(RunRef):
    events_written: int
    bad_files: list[str]


class Prepared(RunRef):
    # The feeds written for the run: petastorm (the prepared Parquet itself), tfrecord and hlf once written.
    feeds: list[str]
    train_events: int
    test_events: int
    scaler_sha256: str
    days: NotRequired[list[str]]  # retraining: the window's days


class Trained(RunRef):
    model: str
    epochs_run: int
    tuned: bool
    resumed_after_epochs: int
    val_accuracy: float | None


class Evaluated(RunRef):
    model: str
    accuracy: float
    auc: dict[str, float]


class Registered(RunRef):
    model: str
    name: str
    version: int
    run_id: str


class Compared(RunRef):
    model: str
    decision: dict  # tasks.learning.registry.compare: both scores, whether the challenger wins


class Approval(TypedDict):
    approved: bool
    by: str | None  # who answered; None when nobody was asked or nobody answered
    timed_out: bool
    at: str | None
    asked: bool  # False: approval not required, or nothing to approve


class Approved(Compared):
    approval: Approval


class Decision(RunRef):
    model: str
    name: str
    challenger: int
    champion_before: int | None
    promoted: bool
    reason: str
    metric: str
    scores: dict[str, float]
    approval: Approval


class RunReport(RunRef):
    report: str
    summary: str


class Day(TypedDict):
    """A day of the daily layout: ``Catalog.raw_day``, ``staging_partition``, ``partition``."""

    day: str
    contract: NotRequired[GateResult]


class DayIngested(Day):
    events_written: int
    bad_files: list[str]


class DayPublished(Day):
    partition: str
    events: int


class Window(TypedDict):
    partitions: list[str]
    days: list[str]


class TrialResult(TypedDict):
    index: int
    model: str
    hyperparameters: dict
    metric: str
    score: float
    epochs: int
    prepared: str
    started: float
    finished: float
    mlflow_run_id: str
    seed: int
    model_dir: str
    search: str  # the tuning run's key
    pruned_at: int | None  # the epoch after which Optuna's pruner stopped it; None: ran every epoch


class SearchResult(TypedDict):
    best: int  # the best trial's index (optuna: its number in the study, maybe of an earlier search)
    score: float
    hyperparameters: dict
    trials: int
    strategy: str  # grid or optuna
    report: str
    written: NotRequired[str]
