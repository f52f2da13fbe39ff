"""The feature scaler of docs/spec.md step 4, fitted on the training split only.

HLF: min-max to [0, 1]. LLF: per-feature standardisation over the real
particle rows (padding is not data and stays exactly zero). The statistics
are merged from per-partition partial sums, so fitting never needs the whole
training set on one machine, and saved as a small versioned JSON artifact
next to the datasets; training, evaluation and inference load that file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tasks.core import schema
from tasks.core.errors import TopoError
from tasks.core.storage import read_json, write_json

FORMAT = "topo-scaler"
VERSION = 1


class ScalerError(TopoError):
    """A scaler artifact that is missing, malformed, or does not match the data."""


@dataclass
class PartialStats:
    """Sufficient statistics of one partition's training events (Chan et al.
    parallel variance: count, mean and sum of squared deviations merge exactly)."""

    hlf_min: np.ndarray
    hlf_max: np.ndarray
    n_events: int
    llf_count: int
    llf_mean: np.ndarray
    llf_m2: np.ndarray

    @classmethod
    def empty(cls) -> PartialStats:
        return cls(
            np.full(schema.HLF_FEATURES, np.inf),
            np.full(schema.HLF_FEATURES, -np.inf),
            0,
            0,
            np.zeros(schema.LLF_FEATURES),
            np.zeros(schema.LLF_FEATURES),
        )

    @classmethod
    def of(cls, hlf: np.ndarray, llf_rows: np.ndarray) -> PartialStats:
        """Statistics of (n, 14) HLF and the (rows, 19) real LLF rows of n events."""
        stats = cls.empty()
        if len(hlf):
            stats.hlf_min, stats.hlf_max, stats.n_events = (
                hlf.min(axis=0).astype(np.float64),
                hlf.max(axis=0).astype(np.float64),
                len(hlf),
            )
        if len(llf_rows):
            rows = llf_rows.astype(np.float64)
            stats.llf_count = len(rows)
            stats.llf_mean = rows.mean(axis=0)
            stats.llf_m2 = ((rows - stats.llf_mean) ** 2).sum(axis=0)
        return stats

    def merge(self, other: PartialStats) -> PartialStats:
        n = self.llf_count + other.llf_count
        if n == 0:
            mean, m2 = self.llf_mean, self.llf_m2
        else:
            delta = other.llf_mean - self.llf_mean
            mean = self.llf_mean + delta * (other.llf_count / n)
            m2 = self.llf_m2 + other.llf_m2 + delta**2 * (self.llf_count * other.llf_count / n)
        return PartialStats(
            np.minimum(self.hlf_min, other.hlf_min),
            np.maximum(self.hlf_max, other.hlf_max),
            self.n_events + other.n_events,
            n,
            mean,
            m2,
        )


@dataclass(frozen=True)
class Scaler:
    hlf_min: np.ndarray
    hlf_max: np.ndarray
    llf_mean: np.ndarray
    llf_std: np.ndarray
    n_events: int
    n_particles: int

    @classmethod
    def fit(cls, stats: PartialStats) -> Scaler:
        if stats.n_events == 0 or stats.llf_count == 0:
            raise ScalerError("cannot fit the scaler: the training split is empty")
        return cls(
            stats.hlf_min.copy(),
            stats.hlf_max.copy(),
            stats.llf_mean.copy(),
            np.sqrt(stats.llf_m2 / stats.llf_count),
            stats.n_events,
            stats.llf_count,
        )

    # A constant feature (zero range or spread in the training data) is only
    # shifted, never divided by zero.
    def scale_hlf(self, hlf: np.ndarray) -> np.ndarray:
        span = self.hlf_max - self.hlf_min
        return ((hlf - self.hlf_min) / np.where(span > 0, span, 1.0)).astype(np.float32)

    def scale_llf_rows(self, rows: np.ndarray) -> np.ndarray:
        """Standardise real particle rows (never padding)."""
        return ((rows - self.llf_mean) / np.where(self.llf_std > 0, self.llf_std, 1.0)).astype(np.float32)

    def unscale_hlf(self, scaled: np.ndarray) -> np.ndarray:
        span = self.hlf_max - self.hlf_min
        return scaled * np.where(span > 0, span, 1.0) + self.hlf_min

    def unscale_llf_rows(self, rows: np.ndarray) -> np.ndarray:
        return rows * np.where(self.llf_std > 0, self.llf_std, 1.0) + self.llf_mean

    def to_dict(self) -> dict:
        body = {
            "format": FORMAT,
            "version": VERSION,
            "fitted_on": "train split",
            "hlf": {
                "columns": list(schema.HLF_COLUMNS),
                "min": self.hlf_min.tolist(),
                "max": self.hlf_max.tolist(),
                "transform": "(x - min) / (max - min)",
            },
            "llf": {
                "columns": list(schema.LLF_COLUMNS),
                "mean": self.llf_mean.tolist(),
                "std": self.llf_std.tolist(),
                "transform": "(x - mean) / std on real particle rows; padding rows stay 0",
            },
            "n_events": self.n_events,
            "n_particles": self.n_particles,
        }
        return {**body, "sha256": _digest(body)}

    @property
    def sha256(self) -> str:
        return self.to_dict()["sha256"]

    def save(self, path: str | Path) -> str:
        write_json(path, self.to_dict())
        return self.sha256

    @classmethod
    def load(cls, path: str | Path, expect_sha256: str | None = None) -> Scaler:
        """Load and check an artifact: format, version, feature order, digest."""
        path = Path(path)
        if not path.exists():
            raise ScalerError(f"scaler artifact {path} not found")
        try:
            data = read_json(path)
            body = {k: v for k, v in data.items() if k != "sha256"}
            if data.get("format") != FORMAT or data.get("version") != VERSION:
                raise ScalerError(
                    f"{path}: not a {FORMAT} v{VERSION} artifact (format={data.get('format')!r}, version={data.get('version')!r})"
                )
            if data["hlf"]["columns"] != list(schema.HLF_COLUMNS) or data["llf"]["columns"] != list(schema.LLF_COLUMNS):
                raise ScalerError(f"{path}: feature order differs from this code's schema (tasks/core/schema.py)")
            if data.get("sha256") != _digest(body):
                raise ScalerError(f"{path}: content does not match its sha256; the file was edited or damaged")
            scaler = cls(
                np.array(data["hlf"]["min"]),
                np.array(data["hlf"]["max"]),
                np.array(data["llf"]["mean"]),
                np.array(data["llf"]["std"]),
                int(data["n_events"]),
                int(data["n_particles"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ScalerError(f"{path}: malformed scaler artifact ({type(exc).__name__}: {exc})") from exc
        if expect_sha256 is not None and scaler.sha256 != expect_sha256:
            raise ScalerError(
                f"{path}: scaler {scaler.sha256[:12]} is not the one the data was prepared with ({expect_sha256[:12]}); "
                "the artifact and the dataset come from different preparation runs"
            )
        return scaler


def _digest(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
