"""docs/spec.md step 4 on Dask: undersample, split, scale, order; out of core.

Three passes over the ingested parts, none of which brings the events onto
one machine:

1. **keys**: every event gets three seeded 64-bit keys from a keyed hash of its
   ``event_id`` (selection, split, order). Only the keys of the first two
   (16 bytes an event) and the labels come back to the driver, which finds
   per class the threshold that keeps exactly the smallest class's count
   (undersampling without replacement) and, among those, the threshold that
   puts exactly ``test_fraction`` of them in test. A class split is thereby
   balanced as well, and an event's fate depends only on its identity and the
   seed.
2. **scatter**: each part is filtered with those thresholds and its events
   sent to output buckets by their order key (written as small Parquet pieces
   on disk); the training events' partial scaler statistics come back.
3. **gather**: each bucket is sorted by order key (a full shuffle: bucket ×
   position is a uniform random permutation), its particles ordered by
   decreasing ΔR from the lepton, scaled with the statistics fitted on train,
   padded to 801 × 19 and written as a Petastorm-ready shard.

Output (written atomically)::

    <output>/train/part-NNNNN.parquet   shuffled training events
    <output>/test/part-NNNNN.parquet    test events, in order-key order
    <output>/dev/{train,test}.parquet    small seeded subsets (the first rows)
    <output>/scaler.json                 the fitted statistics (tasks/datasets/scaling.py)
    <output>/_summary.json               counts, settings, scaler digest
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tasks.core import schema
from tasks.core.errors import SettingsError, TopoError
from tasks.core.storage import atomic_directory, read_json, write_json
from tasks.core.summaries import PrepareSummary
from tasks.datasets.scaling import PartialStats, Scaler

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
PREPARED_COLUMNS = ("event_id", "label", "n_particles", "HLF_input", "GRU_input", "encoded_label")
"""Columns of a prepared shard. HLF_input, GRU_input and encoded_label carry
the names of the published SparkDLTrigger datasets; GRU_input is the 801 × 19
matrix flattened row by row (petastorm 0.13 reads plain lists only)."""
GRU_SIZE = schema.LLF_ROWS * schema.LLF_FEATURES


class PrepareError(TopoError):
    """The ingested data cannot be prepared (missing, empty, a class absent)."""


@dataclass(frozen=True)
class PrepareSettings:
    seed: int = 42
    test_fraction: float = 0.2
    shard_events: int = 2000  # events per output shard: ~120 MB dense in memory
    row_group_events: int = 256  # the unit petastorm reads and shuffles
    dev_train_events: int = 1000
    dev_test_events: int = 250

    def __post_init__(self) -> None:
        if not 0.0 < self.test_fraction < 1.0:
            raise SettingsError(f"test_fraction must be between 0 and 1, got {self.test_fraction}")
        for name in ("shard_events", "row_group_events"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("dev_train_events", "dev_test_events", "seed"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{name} must not be negative, got {getattr(self, name)}")


# --- keys ----------------------------------------------------------------------
def event_keys(event_ids: list[str], seed: int) -> np.ndarray:
    """(n, 3) uint64: selection, split and order keys of each event, a keyed
    BLAKE2 hash of its id, so they depend on nothing but the id and the random seed."""
    key = f"topo-prepare:{seed}".encode()
    digest = b"".join(hashlib.blake2b(e.encode(), digest_size=24, key=key).digest() for e in event_ids)
    return np.frombuffer(digest, "<u8").reshape(-1, 3)


def _part_files(events_dirs: list[Path]) -> list[str]:
    parts: list[str] = []
    for events_dir in events_dirs:
        if not events_dir.is_dir():
            raise PrepareError(f"ingested dataset {events_dir} does not exist; run ingestion first")
        parts += sorted(str(p) for p in events_dir.glob("*.parquet"))
    if not parts:
        raise PrepareError(
            f"ingested dataset {', '.join(map(str, events_dirs))} holds no Parquet parts (no event passed the selection?)"
        )
    return parts


def _read(path: str, columns: list[str]):
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=columns)
    except Exception as exc:
        raise PrepareError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
    return table


def _label_keys(path: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pass 1 on a worker: labels and (selection, split) keys of a part."""
    import pyarrow.parquet as pq

    missing = [c for c in ("event_id", "label", "hfeatures", "lfeatures") if c not in pq.read_schema(path).names]
    if missing:
        raise PrepareError(f"{path} lacks column(s) {', '.join(missing)}; is it an ingestion output?")
    table = _read(path, ["event_id", "label"])
    keys = event_keys(table.column("event_id").to_pylist(), seed)
    return np.asarray(table.column("label"), np.int8), keys[:, :2].copy()


@dataclass(frozen=True)
class Plan:
    """The driver's decisions: per class, the largest selection key kept and
    the largest split key that goes to test."""

    select_max: tuple[int, ...]
    test_max: tuple[int, ...]
    per_class: int
    test_per_class: int
    train_shards: int
    test_shards: int


def plan(labels: np.ndarray, keys: np.ndarray, settings: PrepareSettings) -> tuple[Plan, dict[str, int]]:
    counts = {name: int((labels == label).sum()) for label, name in enumerate(schema.CLASS_NAMES)}
    empty = [name for name, n in counts.items() if n == 0]
    if empty:
        raise PrepareError(
            f"class(es) {', '.join(empty)} have no events after ingestion (counts: {counts}); "
            "cannot undersample to balanced classes"
        )
    per_class = min(counts.values())
    test_per_class = round(per_class * settings.test_fraction)
    if test_per_class < 1 or test_per_class >= per_class:
        raise PrepareError(
            f"the smallest class has {per_class} events: too few for a {settings.test_fraction:.0%} test split"
        )
    select_max, test_max = [], []
    for label in range(len(schema.CLASS_NAMES)):
        select, split = keys[labels == label, 0], keys[labels == label, 1]
        if len(np.unique(select)) != len(select):
            raise PrepareError(
                f"duplicate event_id in class {schema.CLASS_NAMES[label]}: the same events were ingested twice?"
            )
        threshold = np.partition(select, per_class - 1)[per_class - 1]
        kept_split = split[select <= threshold]
        select_max.append(int(threshold))
        test_max.append(int(np.partition(kept_split, test_per_class - 1)[test_per_class - 1]))
    n_classes = len(schema.CLASS_NAMES)
    return Plan(
        tuple(select_max),
        tuple(test_max),
        per_class,
        test_per_class,
        train_shards=math.ceil(n_classes * (per_class - test_per_class) / settings.shard_events),
        test_shards=math.ceil(n_classes * test_per_class / settings.shard_events),
    ), counts


# --- scatter -------------------------------------------------------------------
def _bucket(order_key: np.ndarray, n_buckets: int) -> np.ndarray:
    top = (order_key >> np.uint64(11)).astype(np.float64) / 2.0**53  # uniform in [0, 1)
    return np.minimum((top * n_buckets).astype(np.int64), n_buckets - 1)


def _scatter(index: int, path: str, the_plan: Plan, seed: int, pieces: str) -> dict:
    """Pass 2 on a worker: keep, split and bucket the events of one part."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tasks.events.ingest import read_lfeatures

    table = _read(path, ["event_id", "label", "hfeatures", "lfeatures"])
    labels = np.asarray(table.column("label"), np.int64)
    keys = event_keys(table.column("event_id").to_pylist(), seed)
    keep = keys[:, 0] <= np.asarray(the_plan.select_max, np.uint64)[labels]
    is_test = keys[:, 1] <= np.asarray(the_plan.test_max, np.uint64)[labels]
    table = table.append_column("order_key", pa.array(keys[:, 2]))
    result: dict = {"stats": PartialStats.empty(), "pieces": []}
    for split, in_split in (("train", keep & ~is_test), ("test", keep & is_test)):
        rows = np.flatnonzero(in_split)
        if split == "train" and len(rows):
            chosen = table.take(pa.array(rows))
            llf, _ = read_lfeatures(chosen.column("lfeatures"))
            hlf = np.asarray(chosen.column("hfeatures").combine_chunks().values, np.float32).reshape(
                -1, schema.HLF_FEATURES
            )
            result["stats"] = PartialStats.of(hlf, llf)
        n_buckets = the_plan.train_shards if split == "train" else the_plan.test_shards
        buckets = _bucket(keys[rows, 2], n_buckets)
        for bucket in np.unique(buckets):
            piece = Path(pieces) / f"{split}-{bucket:05d}-{index:06d}.parquet"
            pq.write_table(table.take(pa.array(rows[buckets == bucket])), piece, compression="lz4")
            result["pieces"].append((split, int(bucket), str(piece)))
    return result


# --- gather --------------------------------------------------------------------
def order_particles(llf: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Row permutation that orders each event's particles by decreasing ΔR from
    its lepton (row 0); ties keep their original order."""
    n_events = len(offsets) - 1
    lengths = np.diff(offsets)
    event = np.repeat(np.arange(n_events), lengths)
    first = offsets[:-1][event]
    lep_eta = llf[first, schema.LLF_COLUMNS.index("Eta")].astype(np.float64)
    lep_phi = llf[first, schema.LLF_COLUMNS.index("Phi")].astype(np.float64)
    deta = llf[:, schema.LLF_COLUMNS.index("Eta")] - lep_eta
    dphi = np.mod(llf[:, schema.LLF_COLUMNS.index("Phi")] - lep_phi + np.pi, 2 * np.pi) - np.pi
    delta_r = np.sqrt(deta * deta + dphi * dphi)
    return np.lexsort((np.arange(len(llf)), -delta_r, event))


def _gather(split: str, bucket: int, pieces: list[str], out: str, scaler: Scaler, row_group: int) -> dict:
    """Pass 3 on a worker: one output shard."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Pieces in part order and a stable sort: the shard's row order depends only
    # on the keys (64-bit, so ties practically never happen) and the part names.
    table = pa.concat_tables([pq.read_table(p) for p in sorted(pieces)])
    table = table.take(pa.array(np.argsort(np.asarray(table.column("order_key")), kind="stable")))
    hlf, gru, n_particles = model_inputs(table, scaler)
    labels = np.asarray(table.column("label"), np.int8)
    n = len(table)
    columns = {
        "event_id": table.column("event_id"),
        "label": pa.array(labels, pa.int8()),
        "n_particles": pa.array(n_particles, pa.int16()),
        "HLF_input": float_lists(hlf.ravel(), schema.HLF_FEATURES, n),
        "GRU_input": float_lists(gru.ravel(), GRU_SIZE, n),
        "encoded_label": float_lists(
            np.eye(len(schema.CLASS_NAMES), dtype=np.float32)[labels].ravel(), len(schema.CLASS_NAMES), n
        ),
    }
    pq.write_table(
        pa.table(columns),
        out,
        row_group_size=row_group,
        compression="zstd",
        compression_level=1,
        use_dictionary=["event_id"],
        write_statistics=["event_id", "label", "n_particles"],
    )
    return {
        "split": split,
        "bucket": bucket,
        "path": out,
        "events": n,
        "per_class": np.bincount(labels, minlength=len(schema.CLASS_NAMES)).tolist(),
    }


def model_inputs(table, scaler: Scaler) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An ingested table's events as the models see them: scaled HLF (n, 14),
    ordered, standardised, zero-padded GRU input (n, 801 × 19), and the number
    of real particles. Training data and inference both go through here."""
    from tasks.events.ingest import read_lfeatures
    from tasks.events.kernel import dense_llf

    llf, offsets = read_lfeatures(table.column("lfeatures"))
    rows = scaler.scale_llf_rows(llf[order_particles(llf, offsets)])
    gru = dense_llf(rows, offsets).reshape(len(table), GRU_SIZE)
    hlf = np.asarray(table.column("hfeatures").combine_chunks().values, np.float32).reshape(-1, schema.HLF_FEATURES)
    return scaler.scale_hlf(hlf), gru, np.diff(offsets)


def float_lists(values: np.ndarray, width: int, n: int):
    """A list<float32> column of ``n`` rows of ``width`` values (petastorm reads
    plain lists, not fixed-size ones)."""
    import pyarrow as pa

    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * width)
    return pa.ListArray.from_arrays(offsets, pa.array(values, pa.float32()))


# --- the stage -----------------------------------------------------------------
def prepare(
    events_dir: str | Path | list[str | Path], output: str | Path, client, settings: PrepareSettings = PrepareSettings()
) -> PrepareSummary:
    """Turn an ingested dataset (or several, such as the daily partitions of a
    window) into balanced, split, scaled training data."""
    from distributed import wait

    started = time.perf_counter()
    events_dirs = [Path(d) for d in events_dir] if isinstance(events_dir, (list, tuple)) else [Path(events_dir)]
    output = Path(output)
    parts = _part_files(events_dirs)
    log.info(
        "preparing %d ingested parts from %s (seed %d)", len(parts), ", ".join(map(str, events_dirs)), settings.seed
    )
    keyed = client.gather(client.map(_label_keys, parts, seed=settings.seed, pure=False))
    labels = np.concatenate([lab for lab, _ in keyed])
    keys = np.concatenate([k for _, k in keyed])
    del keyed
    the_plan, input_counts = plan(labels, keys, settings)
    log.info(
        "classes before undersampling: %s; keeping %d per class (%d train + %d test)",
        input_counts,
        the_plan.per_class,
        the_plan.per_class - the_plan.test_per_class,
        the_plan.test_per_class,
    )

    with atomic_directory(output) as tmp:
        pieces_dir = tmp / "_pieces"
        pieces_dir.mkdir()
        futures = client.map(
            _scatter,
            range(len(parts)),
            parts,
            the_plan=the_plan,
            seed=settings.seed,
            pieces=str(pieces_dir),
            pure=False,
        )
        wait(futures)
        scattered = client.gather(futures)  # in part order: the merged statistics do not depend on timing
        stats = PartialStats.empty()
        for result in scattered:
            stats = stats.merge(result["stats"])
        scaler = Scaler.fit(stats)
        scaler_sha = scaler.save(tmp / "scaler.json")
        log.info(
            "scaler fitted on %d training events (%d particles): %s",
            scaler.n_events,
            scaler.n_particles,
            scaler_sha[:12],
        )

        by_bucket: dict[tuple[str, int], list[str]] = {}
        for result in scattered:
            for split, bucket, piece in result["pieces"]:
                by_bucket.setdefault((split, bucket), []).append(piece)
        for split in SPLITS:
            (tmp / split).mkdir()
        jobs = sorted(by_bucket.items())
        shards = client.gather(
            client.map(
                _gather,
                [s for (s, _), _ in jobs],
                [b for (_, b), _ in jobs],
                [p for _, p in jobs],
                [str(tmp / s / f"part-{b:05d}.parquet") for (s, b), _ in jobs],
                scaler=scaler,
                row_group=settings.row_group_events,
                pure=False,
            )
        )
        import shutil

        shutil.rmtree(pieces_dir)
        dev = _write_dev(tmp, settings)
        summary = _summary(output, settings, input_counts, the_plan, shards, scaler_sha, dev, started)
        write_json(tmp / "_summary.json", summary)
    log.info(
        "prepared %d train and %d test events in %d shards in %.1f s -> %s",
        summary["train"]["events"],
        summary["test"]["events"],
        len(shards),
        summary["seconds"],
        output,
    )
    return summary


def _write_dev(tmp: Path, settings: PrepareSettings) -> dict[str, int]:
    """The first rows of each split: a seeded subset, since rows are in order-key order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp / "dev").mkdir()
    sizes = {}
    for split, wanted in (("train", settings.dev_train_events), ("test", settings.dev_test_events)):
        batches, have = [], 0
        for shard in sorted((tmp / split).glob("*.parquet")):
            for batch in pq.ParquetFile(shard).iter_batches(batch_size=settings.row_group_events):
                if have >= wanted:
                    break
                batches.append(batch.slice(0, wanted - have))
                have += len(batches[-1])
        table = (
            pa.Table.from_batches(batches)
            if batches
            else pq.read_schema(next((tmp / split).glob("*.parquet"))).empty_table()
        )
        pq.write_table(
            table,
            tmp / "dev" / f"{split}.parquet",
            row_group_size=settings.row_group_events,
            compression="zstd",
            compression_level=1,
            use_dictionary=["event_id"],
        )
        sizes[split] = table.num_rows
    return sizes


def _summary(
    output: Path, settings: PrepareSettings, input_counts, the_plan: Plan, shards, scaler_sha, dev, started
) -> PrepareSummary:
    splits = {}
    for split in SPLITS:
        mine = sorted((s for s in shards if s["split"] == split), key=lambda s: s["bucket"])
        per_class = np.sum([s["per_class"] for s in mine], axis=0).tolist() if mine else [0] * len(schema.CLASS_NAMES)
        splits[split] = {
            "events": sum(s["events"] for s in mine),
            "per_class": dict(zip(schema.CLASS_NAMES, per_class, strict=True)),
            "shards": {f"{split}/{Path(s['path']).name}": s["events"] for s in mine},
        }
    return {
        "output": str(output),
        "settings": asdict(settings),
        "input_per_class": input_counts,
        "kept_per_class": the_plan.per_class,
        "test_per_class": the_plan.test_per_class,
        **splits,
        "dev": dev,
        "scaler": {"path": "scaler.json", "sha256": scaler_sha},
        "columns": list(PREPARED_COLUMNS),
        "gru_shape": [schema.LLF_ROWS, schema.LLF_FEATURES],
        "seconds": round(time.perf_counter() - started, 2),
    }


def load_prepared(path: str | Path) -> tuple[PrepareSummary, Scaler]:
    """The summary of a prepared dataset and its scaler, checked to belong together."""
    path = Path(path)
    if not (path / "_summary.json").exists():
        raise PrepareError(f"{path} is not a prepared dataset (no _summary.json); run preparation first")
    summary = read_json(path / "_summary.json")
    return summary, Scaler.load(path / summary["scaler"]["path"], expect_sha256=summary["scaler"]["sha256"])
