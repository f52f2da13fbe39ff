"""Stage 0: write a Delphes-schema sample of the three classes as ROOT files.

Layout: ``<output>/<sample>/<sample>_<NNN>.root`` plus ``_generated.json``
with the parameters, so that a directory is reused only when it was made with
the same ones. Each file has its own seed derived from (seed, class, file
index): files can be written in parallel and are reproducible one by one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tasks.core import schema
from tasks.core.errors import SettingsError
from tasks.core.storage import atomic_directory, read_json, write_json
from tasks.core.summaries import GeneratedManifest
from tasks.events.delphes import COLLECTIONS, TREE_NAME

log = logging.getLogger(__name__)

MANIFEST = "_generated.json"
BRANCH_STYLES = ("uproot", "delphes")
GENERATORS = schema.GENERATORS
MINBIAS_POOL = 200  # minimum-bias events generated per file and reused for its pileup
WRITE_BATCH = 500


@dataclass(frozen=True)
class SampleRequest:
    """What to generate. ``mix`` is the QCD : tt̄ : W+jets ratio of event counts
    (None: the generator's ``schema.DEFAULT_MIX``)."""

    events: int = 7000
    files_per_sample: int = 2
    mix: tuple[float, float, float] | None = None
    seed: int = 42
    branch_style: str = "uproot"
    generator: str = "toy"
    pileup: float = schema.DEFAULT_PILEUP  # mean minimum-bias interactions overlaid per event (pythia8 only)

    def __post_init__(self) -> None:
        if self.generator not in GENERATORS:
            raise SettingsError(f"generator must be one of {', '.join(GENERATORS)}, got {self.generator!r}")
        if self.mix is None:
            object.__setattr__(self, "mix", schema.DEFAULT_MIX[self.generator])
        if self.events < len(schema.CLASS_NAMES):
            raise SettingsError(f"events must be at least {len(schema.CLASS_NAMES)}, got {self.events}")
        if self.files_per_sample < 1:
            raise SettingsError(f"files_per_sample must be at least 1, got {self.files_per_sample}")
        if len(self.mix) != len(schema.CLASS_NAMES) or min(self.mix) <= 0:
            raise SettingsError(f"mix needs {len(schema.CLASS_NAMES)} positive weights (QCD:tt̄:W+jets), got {self.mix}")
        if self.branch_style not in BRANCH_STYLES:
            raise SettingsError(f"branch_style must be one of {BRANCH_STYLES}, got {self.branch_style!r}")
        if not 0 <= self.pileup <= schema.MAX_PILEUP:
            raise SettingsError(
                f"pileup (mean interactions per event) must be within 0–{schema.MAX_PILEUP:g}, got {self.pileup}"
            )

    def describe(self) -> dict:
        """What the manifest records (a toy request is recorded as before the generators existed)."""
        out = asdict(self) | {"mix": list(self.mix)}
        if self.generator == "toy":
            del out["generator"], out["pileup"]
        return out

    def events_per_class(self) -> list[int]:
        weights = np.asarray(self.mix, float) / sum(self.mix)
        counts = np.floor(weights * self.events).astype(int)
        counts[np.argmax(weights)] += self.events - counts.sum()
        return [max(int(c), 1) for c in counts]

    def plan(self) -> list[tuple[str, int, int]]:
        """(sample, file index, events) for every file to write."""
        jobs = []
        for name, n in zip(schema.CLASS_NAMES, self.events_per_class(), strict=True):
            per_file = np.full(self.files_per_sample, n // self.files_per_sample)
            per_file[: n % self.files_per_sample] += 1
            jobs += [(name, i, int(k)) for i, k in enumerate(per_file) if k > 0]
        return jobs


def parse_mix(text: str) -> tuple[float, float, float]:
    """Parse 'QCD:ttbar:W' weights such as '1:2:4'."""
    try:
        parts = tuple(float(p) for p in text.split(":"))
    except ValueError:
        raise SettingsError(f"mix must look like 1:2:4 (QCD:tt̄:W+jets), got {text!r}") from None
    if len(parts) != 3:
        raise SettingsError(f"mix must have three weights (QCD:tt̄:W+jets), got {text!r}")
    return parts  # type: ignore[return-value]


def _columns(events: list) -> dict[str, dict[str, np.ndarray]]:
    """Per-event objects → per-collection flat columns and counts."""
    import awkward as ak

    def jagged(rows_per_event, names, dtypes):
        counts = np.array([len(r) for r in rows_per_event], np.int64)
        flat = (
            np.concatenate([np.asarray(r, float).reshape(-1, len(names)) for r in rows_per_event])
            if counts.sum()
            else np.zeros((0, len(names)))
        )
        return ak.zip(
            {n: ak.unflatten(flat[:, i].astype(d), counts) for i, (n, d) in enumerate(zip(names, dtypes, strict=True))}
        )

    def stacked(parts, width):
        return np.concatenate(parts) if parts else np.zeros((0, width))

    f4, i4, u4 = np.float32, np.int32, np.uint32
    tracks = [stacked(e.tracks, 7) for e in events]
    photons = [stacked(e.photons, 3) for e in events]
    neutrals = [stacked(e.neutrals, 3) for e in events]
    by_pt = lambda objs: sorted(objs, key=lambda o: -o[0])  # noqa: E731  Delphes orders these by pT
    return {
        "EFlowTrack": jagged(tracks, COLLECTIONS["EFlowTrack"], (f4, f4, f4, i4, f4, f4, f4)),
        "EFlowPhoton": jagged(photons, COLLECTIONS["EFlowPhoton"], (f4, f4, f4)),
        "EFlowNeutralHadron": jagged(neutrals, COLLECTIONS["EFlowNeutralHadron"], (f4, f4, f4)),
        "Electron": jagged([by_pt(e.electrons) for e in events], COLLECTIONS["Electron"], (f4, f4, f4, i4)),
        "MuonTight": jagged([by_pt(e.muons) for e in events], COLLECTIONS["MuonTight"], (f4, f4, f4, i4)),
        "Jet": jagged([by_pt(e.jets) for e in events], COLLECTIONS["Jet"], (f4, f4, f4, u4)),
        "MissingET": jagged(
            [[(np.hypot(*e.invisible), np.arctan2(e.invisible[1], e.invisible[0]))] for e in events],
            COLLECTIONS["MissingET"],
            (f4, f4),
        ),
    }


def _shuffle_eflow(ev, rng: np.random.Generator) -> None:
    """EFlow collections come in no particular order in Delphes output."""
    for name in ("tracks", "photons", "neutrals"):
        parts = getattr(ev, name)
        if parts:
            rows = np.concatenate(parts)
            setattr(ev, name, [rows[rng.permutation(len(rows))]])


def _toy_events(sample: str, rng: np.random.Generator):
    from tasks.generator.physics import EventFactory

    make = getattr(EventFactory(rng), sample)

    def batch(k: int) -> list:
        events = []
        for _ in range(k):
            ev = make()
            _shuffle_eflow(ev, rng)  # draws interleaved with the event's own: the files stay as they were
            events.append(ev)
        return events

    return batch


def _pythia_events(sample: str, rng: np.random.Generator, pileup: float):
    """Pythia 8 events of ``sample`` with pileup, through the detector, seeded from ``rng``."""
    from tasks.generator.detector import Detector
    from tasks.generator.pythia import MAX_SEED, HardEvents, MinBiasPool

    hard_seed, pool_seed = (int(s) for s in rng.integers(0, MAX_SEED, size=2))
    hard = HardEvents(sample, hard_seed)
    pool = MinBiasPool(pool_seed, MINBIAS_POOL) if pileup > 0 else None
    detector = Detector(rng)

    def make(k: int) -> list:
        events = []
        for particles in hard.take(k):
            if pool is not None:
                particles, _ = pool.overlay(particles, pileup, rng)
            ev = detector.reconstruct(particles)
            _shuffle_eflow(ev, rng)
            events.append(ev)
        return events

    make.hard = hard  # what the filter took, for write_file's report
    return make


def write_file(
    path: str,
    sample: str,
    n_events: int,
    seed: int,
    branch_style: str = "uproot",
    generator: str = "toy",
    pileup: float = schema.DEFAULT_PILEUP,
) -> dict:
    """Generate ``n_events`` events of ``sample`` into one ROOT file at ``path``;
    for Pythia, the report also says what its filter took (``pythia``)."""
    import uproot

    label = schema.LABELS[sample]
    rng = np.random.default_rng([seed, label, _file_key(path)])
    make_batch = _toy_events(sample, rng) if generator == "toy" else _pythia_events(sample, rng, pileup)
    naming = {}
    if branch_style == "delphes":
        naming = {
            "counter_name": lambda counted: f"{counted}_size",
            "field_name": lambda outer, inner: f"{outer}.{inner}",
        }
    tmp = Path(path).with_name(f".{Path(path).name}.tmp")
    with uproot.recreate(tmp) as out:
        tree = None
        done = 0
        while done < n_events:
            batch = make_batch(min(WRITE_BATCH, n_events - done))
            data = _columns(batch)
            if tree is None:
                tree = out.mktree(TREE_NAME, {k: v.type for k, v in data.items()}, **naming)
            tree.extend(data)
            done += len(batch)
    tmp.rename(path)
    report = {"file": str(path), "sample": sample, "events": n_events}
    hard = getattr(make_batch, "hard", None)
    if hard is not None:
        report["pythia"] = {
            "parton_events": hard.generated,
            "hadronizations": hard.hadronized,
            "mean_forced_weight": float(np.mean(hard.weights)) if hard.weights else 1.0,
        }
    return report


def _file_key(path: str) -> int:
    """A stable integer from the file name (Python's hash() is salted per process)."""
    import zlib

    return zlib.crc32(Path(path).name.encode())


def generate(output: str | Path, request: SampleRequest, client=None) -> GeneratedManifest:
    """Write the sample described by ``request`` under ``output``; returns a summary.

    Files are written on the Dask ``client`` when one is given, else in this
    process. If ``output`` already holds a sample made with the same request it
    is reused as it is.
    """
    output = Path(output)
    wanted = request.describe()
    if (output / MANIFEST).exists() and read_json(output / MANIFEST).get("request") == wanted:
        log.info("reusing the sample in %s (generated with the same parameters)", output)
        return read_json(output / MANIFEST)
    jobs = request.plan()
    started = time.perf_counter()
    with atomic_directory(output) as tmp:
        for name in schema.CLASS_NAMES:
            (tmp / name).mkdir()
        args = [
            (str(tmp / s / f"{s}_{i:03d}.root"), s, n, request.seed, request.branch_style, request.generator,
             request.pileup)
            for s, i, n in jobs
        ]  # fmt: skip
        if client is not None:
            futures = client.map(write_file, *zip(*args, strict=True), pure=False)
            results = []
            for k, fut in enumerate(futures, 1):
                results.append(fut.result())
                log.info("generated %d/%d files", k, len(futures))
        else:
            results = []
            for k, a in enumerate(args, 1):
                results.append(write_file(*a))
                log.info("generated %s (%d events), %d/%d files", Path(a[0]).name, a[2], k, len(args))
        files = {name: [] for name in schema.CLASS_NAMES}
        for r in results:
            files[r["sample"]].append(str(output / r["sample"] / Path(r["file"]).name))
        summary: GeneratedManifest = {
            "request": wanted,
            "events_per_sample": dict(zip(schema.CLASS_NAMES, request.events_per_class(), strict=True)),
            "files": {k: sorted(v) for k, v in files.items()},
        }
        write_json(tmp / MANIFEST, summary)
    log.info(
        "generated %d events in %d files under %s in %.1f s",
        request.events,
        len(jobs),
        output,
        time.perf_counter() - started,
    )
    return summary
