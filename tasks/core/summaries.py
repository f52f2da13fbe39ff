"""What each stage returns and writes as its ``_summary.json`` (or
``training.json``), declared once. These are the JSON documents a later stage,
a contract, the run report or the user reads; their keys are a format.

TypedDicts: the values stay plain dicts (JSON in, JSON out), the keys are named here.
"""

from __future__ import annotations

from typing import Any, TypedDict

Cutflow = dict[str, int]
"""Events at each step of ``schema.CUTFLOW_STEPS``."""


class SampleInput(TypedDict):
    label: int
    files: list[str]


class IngestSummary(TypedDict):
    """tasks.events.ingest.ingest; ``_summary.json`` holds all but ``output`` and ``seconds``."""

    output: str
    samples: dict[str, SampleInput]
    cutflow: dict[str, Cutflow]  # per sample
    files: dict[str, Cutflow]  # per input file
    non_finite: dict[str, dict[str, int]]  # per file: field → events rejected for it
    bad_files: dict[str, str]  # file → what is wrong with it
    events_written: int
    seconds: float
    source: str  # the event source of the files (tasks.events.sources): delphes, pfnano, nanoaod
    particle_content: bool  # False: the events carry the HLF and the lepton row only (plain NanoAOD)
    data_config: dict[str, Any]  # the config the files were read with (tasks.events.data_config)
    layouts: dict[str, dict[str, str]]  # per good file: role → the collection it was found in


class ScalerRef(TypedDict):
    path: str  # relative to the prepared dataset
    sha256: str


class PreparedSplit(TypedDict):
    events: int
    per_class: dict[str, int]
    shards: dict[str, int]  # shard path relative to the dataset → events


class PrepareSummary(TypedDict):
    """tasks.datasets.prepare.prepare; also its ``_summary.json``."""

    output: str
    settings: dict[str, Any]
    input_per_class: dict[str, int]
    kept_per_class: int
    test_per_class: int
    train: PreparedSplit
    test: PreparedSplit
    dev: dict[str, int]
    scaler: ScalerRef
    columns: list[str]
    gru_shape: list[int]
    seconds: float


class FeedSplit(TypedDict):
    events: int
    bytes: int
    shards: dict[str, int]


class HlfFeedRef(TypedDict):
    """Where the HLF-only feed is inside the feeds directory, and its size per split
    (its own ``_summary.json`` lists the shards)."""

    path: str
    train: dict[str, int]
    test: dict[str, int]


class FeedsSummary(TypedDict):
    """tasks.datasets.feeds.write_feeds; also its ``_summary.json``."""

    output: str
    prepared: str
    scaler: ScalerRef
    compression: str
    train: FeedSplit
    test: FeedSplit
    hlf: HlfFeedRef
    seconds: float


class TrainingRecord(TypedDict):
    """tasks.learning.train.train; also the model directory's ``training.json``."""

    model: str
    inputs: str
    settings: dict[str, Any]
    devices: dict[str, Any]
    prepared: str | None
    feed: dict[str, str]
    feed_format: str  # the files read: settings.feed ("petastorm" for the NumPy feed), or "hlf" (the HLF-only feed)
    reader: str  # "tf.data", or "numpy" (tasks/datasets/numpy_feed.py)
    workers: list[str] | None  # the addresses of a multi-worker run's workers (worker 0 the chief)
    scaler_sha256: str | None
    train_events: int
    test_events: int
    epochs_run: int
    resumed_after_epochs: int
    parameters: int
    seconds_this_process: float
    events_per_s_per_epoch: list[float]
    final: dict[str, float]


class GeneratedManifest(TypedDict):
    """tasks.generator.generate.generate; also the sample's ``_generated.json``."""

    request: dict[str, Any]
    events_per_sample: dict[str, int]
    files: dict[str, list[str]]
