"""The run catalog: every output path of the pipeline, named once.

Stages take and return paths; this module is the one place that knows where
those paths are. Everything lives under the data root
(``Settings.data_root``), raw daily files under the raw root::

    raw/generated-n<N>-seed<S>/<sample>/       a sample generated for a DAG run (reused; pythia8:
                                               generated-pythia8-pu<μ>-n<N>-seed<S>)
    raw/generated/                             ``topo generate``'s default output
    <raw root>/<YYYY-MM-DD>/<sample>/          what a day brought (the daily layout)
    staging/events/<YYYY-MM-DD>/               a day's ingestion, until its contract passes
    events/<YYYY-MM-DD>/                       a published, validated daily partition
    runs/<run>/                                a topology_classifier run (``RunLayout``)
    retraining/<run>/                          a retrain_classifier run (same layout)
    tuning/<run>/trial-NNN/                    one trial of a search
    hyperparameters/<model>.json               the best set of the last search
    events/manual, prepared/manual, ...        the CLI's layout (``Catalog.manual``)

A run's layout (``RunLayout``)::

    events/  prepared/  tfrecord/  models/<model>/  evaluation/<model>/  report.html  summary.json

Run ids become directory names through ``run_key``, so a retried or re-run
task writes to the same place.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from tasks.core.errors import SettingsError

DAY_FORMAT = "%Y-%m-%d"

RUN_KINDS = ("runs", "retraining", "tuning")
"""Where runs of each kind live under the data root: pipeline runs, retraining runs, searches."""


def run_key(run_id: str) -> str:
    """A directory name for a run id (Airflow run ids hold ':' and '+')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", run_id)


def parse_day(day: str) -> dt.date:
    try:
        return dt.datetime.strptime(day, DAY_FORMAT).date()
    except ValueError:
        raise SettingsError(f"{day!r} is not a day in YYYY-MM-DD form") from None


def day_name(day: str) -> str:
    """``day`` checked and written as YYYY-MM-DD."""
    return parse_day(day).strftime(DAY_FORMAT)


@dataclass(frozen=True)
class RunLayout:
    """The outputs of one run. ``evaluations`` None: each model's evaluation
    sits next to it as ``<model dir>-evaluation`` (the CLI's layout)."""

    root: Path
    events: Path
    prepared: Path
    tfrecord: Path
    models: Path
    evaluations: Path | None

    @classmethod
    def under(cls, root: str | Path) -> RunLayout:
        """The layout of a pipeline or retraining run directory."""
        root = Path(root)
        return cls(root, root / "events", root / "prepared", root / "tfrecord", root / "models", root / "evaluation")

    @property
    def run(self) -> str:
        return self.root.name

    def model(self, name: str) -> Path:
        return self.models / name

    def evaluation(self, name: str) -> Path:
        return evaluation_of(self.model(name)) if self.evaluations is None else self.evaluations / name

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    def trial(self, index: int) -> Path:
        """One trial of a search (tuning runs)."""
        return self.root / f"trial-{index:03d}"


def evaluation_of(model_dir: str | Path) -> Path:
    """Where ``topo evaluate`` writes by default: ``<model dir>-evaluation``."""
    model_dir = Path(model_dir)
    return model_dir.parent / f"{model_dir.name}-evaluation"


def export_of(model_dir: str | Path) -> Path:
    """Where ``topo export`` writes a model directory by default: ``<model dir>-export``."""
    model_dir = Path(model_dir)
    return model_dir.parent / f"{model_dir.name}-export"


def tfrecord_of(prepared: str | Path) -> Path:
    """The feeds of a prepared dataset, where ``topo feeds`` writes by default:
    a run's ``tfrecord`` beside its ``prepared``, else ``<prepared>-tfrecord``."""
    prepared = Path(prepared)
    if prepared.name == "prepared":
        return prepared.parent / "tfrecord"
    return prepared.parent / f"{prepared.name}-tfrecord"


@dataclass(frozen=True)
class Catalog:
    """Every output location under one data root (``Settings.catalog``)."""

    data_root: Path
    raw_root: Path

    @classmethod
    def under(cls, data_root: str | Path, raw_root: str | Path | None = None) -> Catalog:
        data_root = Path(data_root)
        return cls(data_root, Path(raw_root) if raw_root else data_root / "raw")

    # --- runs ------------------------------------------------------------------
    def run(self, run_id: str, kind: str = "runs") -> RunLayout:
        if kind not in RUN_KINDS:
            raise SettingsError(f"unknown run kind {kind!r}; choose one of {', '.join(RUN_KINDS)}")
        return RunLayout.under(self.data_root / kind / run_key(run_id))

    def find_run(self, run: str) -> RunLayout:
        """A run by directory or by id (pipeline runs first, then retraining runs)."""
        if Path(run).is_dir():
            return RunLayout.under(run)
        for kind in ("runs", "retraining"):
            layout = self.run(run, kind)
            if layout.root.is_dir():
                return layout
        raise SettingsError(f"no run {run!r} under {self.data_root / 'runs'} or {self.data_root / 'retraining'}")

    def latest_run(self, kind: str = "runs") -> RunLayout:
        """The run whose ingestion (pipeline runs) or preparation finished last."""
        marker = "events" if kind == "runs" else "prepared"
        found = sorted((self.data_root / kind).glob(f"*/{marker}/_summary.json"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise SettingsError(f"no run under {self.data_root / kind}")
        return RunLayout.under(found[-1].parent.parent)

    def prepared_datasets(self) -> list[Path]:
        """Prepared datasets of pipeline and retraining runs, oldest first."""
        found = [
            *self.data_root.glob("runs/*/prepared/_summary.json"),
            *self.data_root.glob("retraining/*/prepared/_summary.json"),
        ]
        return [p.parent for p in sorted(found, key=lambda p: p.stat().st_mtime)]

    def manual(self) -> RunLayout:
        """The CLI's defaults when no path is given."""
        prepared = self.data_root / "prepared" / "manual"
        return RunLayout(
            self.data_root,
            self.data_root / "events" / "manual",
            prepared,
            tfrecord_of(prepared),
            self.data_root / "models" / "manual",
            None,
        )

    # --- raw inputs ----------------------------------------------------------------
    def generated(
        self, events: int | None = None, seed: int | None = None, generator: str = "toy", pileup: float = 0.0
    ) -> Path:
        """A generated sample: keyed on its parameters for DAG runs (and reused), else
        ``raw/generated``. A toy sample keeps the name it had before Pythia came."""
        if events is None:
            return self.data_root / "raw" / "generated"
        kind = "" if generator == "toy" else f"-{generator}-pu{pileup:g}"
        return self.data_root / "raw" / f"generated{kind}-n{events}-seed{seed}"

    def raw_day(self, day: str) -> Path:
        return self.raw_root / day_name(day)

    # --- daily partitions --------------------------------------------------------
    def staging_partition(self, day: str) -> Path:
        return self.data_root / "staging" / "events" / day_name(day)

    @property
    def partitions(self) -> Path:
        return self.data_root / "events"

    def partition(self, day: str) -> Path:
        return self.partitions / day_name(day)

    # --- learning ------------------------------------------------------------------
    def tuned(self, model: str) -> Path:
        """The best hyperparameters of the last search for ``model``."""
        return self.data_root / "hyperparameters" / f"{model}.json"

    def export(self, model: str, which: str) -> Path:
        """Where ``topo export`` writes a registered version (``which``: v<N> or the alias)."""
        return self.data_root / "exports" / f"{model}-{which}"

    @property
    def mlflow(self) -> Path:
        return self.data_root / "mlflow"
