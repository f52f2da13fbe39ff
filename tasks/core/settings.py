"""One typed settings object, read from ``TOPO_*`` environment variables.

Every setting has a default that works on a laptop with no setup; a cluster
changes environment variables (or DAG Params), never code.

| variable | setting | default |
|---|---|---|
| TOPO_DATA_ROOT | data_root | ``data/`` in the repository |
| TOPO_DASK_SCHEDULER | dask_scheduler | empty: start a LocalCluster |
| TOPO_DASK_WORKERS | dask_workers | number of cores, at most 4 |
| TOPO_INGEST_CHUNK | ingest_chunk | 1000 events per Dask task |
| TOPO_SHARD_EVENTS | shard_events | 2000 events per prepared shard |
| TOPO_TFRECORD_COMPRESSION | tfrecord_compression | gzip (or none) |
| TOPO_MLFLOW_TRACKING_URI | mlflow_tracking_uri | empty: SQLite + files under <data root>/mlflow |
| TOPO_RAW_ROOT | raw_root | empty: <data root>/raw (the dated layout raw/<YYYY-MM-DD>/<sample>/) |
| TOPO_CPU_TRAINING_SLOTS | cpu_training_slots | 1: slots of the Airflow pool `gpu` on a machine without GPUs |
| TOPO_HPO_MAX_PARALLEL_TRIALS | hpo_max_parallel_trials | 2: trials of one search running at once |
| TOPO_TRAINING_QUEUE | training_queue | default: the executor queue of training tasks (docker-compose.yml: gpu, the GPU worker's) |
"""

from __future__ import annotations

import logging
import os
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

from tasks.core.catalog import Catalog
from tasks.core.errors import SettingsError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]


def _default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


@dataclass(frozen=True)
class Settings:
    data_root: Path = field(default_factory=lambda: REPO_ROOT / "data")
    dask_scheduler: str = ""
    dask_workers: int = field(default_factory=_default_workers)
    ingest_chunk: int = 1000
    shard_events: int = 2000
    tfrecord_compression: str = "gzip"
    mlflow_tracking_uri: str = ""
    raw_root: str = ""
    cpu_training_slots: int = 1
    hpo_max_parallel_trials: int = 2
    training_queue: str = "default"

    @property
    def catalog(self) -> Catalog:
        """Every output path under this data root (tasks/core/catalog.py); raw
        days under ``raw_root`` when set, else ``<data root>/raw``."""
        return Catalog.under(self.data_root, Path(self.raw_root).expanduser() if self.raw_root else None)

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI: the configured server, else a local SQLite store."""
        return self.mlflow_tracking_uri or f"sqlite:///{(self.catalog.mlflow / 'mlflow.db').resolve()}"

    def __post_init__(self) -> None:
        if self.dask_workers < 1:
            raise SettingsError(f"dask_workers must be at least 1, got {self.dask_workers}")
        if self.ingest_chunk < 1:
            raise SettingsError(f"ingest_chunk must be at least 1 event, got {self.ingest_chunk}")
        if self.shard_events < 1:
            raise SettingsError(f"shard_events must be at least 1 event, got {self.shard_events}")
        for name in ("cpu_training_slots", "hpo_max_parallel_trials"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.tfrecord_compression not in ("gzip", "none"):
            raise SettingsError(f"tfrecord_compression must be gzip or none, got {self.tfrecord_compression!r}")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> Settings:
        """Settings from ``TOPO_<NAME>`` variables, then explicit overrides."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = environ.get(f"TOPO_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            try:
                values[f.name] = _parse(f.name, raw)
            except ValueError as exc:
                raise SettingsError(f"TOPO_{f.name.upper()}={raw!r}: {exc}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def parse_time_setting(name: str, environ: dict[str, str] | None = None):
    """One setting, read when Airflow parses a DAG file (a pool size, a queue).

    Only its own ``TOPO_*`` variable is read, so an unrelated bad variable
    cannot break the import of every DAG; a bad value of this one falls back
    to the default with a warning, and the tasks, which read all settings,
    fail naming it."""
    environ = os.environ if environ is None else environ
    default = {f.name: f for f in fields(Settings)}[name]
    fallback = default.default_factory() if default.default_factory is not MISSING else default.default
    raw = environ.get(f"TOPO_{name.upper()}")
    if raw is None or raw == "":
        return fallback
    try:
        value = _parse(name, raw)
        Settings(**{name: value})
    except (ValueError, SettingsError) as exc:
        log.warning("TOPO_%s=%r is not valid (%s); using %r while parsing DAGs", name.upper(), raw, exc, fallback)
        return fallback
    return value


def _parse(name: str, raw: str) -> object:
    if name == "data_root":
        return Path(raw).expanduser()
    if name in ("dask_workers", "ingest_chunk", "shard_events", "cpu_training_slots", "hpo_max_parallel_trials"):
        return int(raw)
    return raw
