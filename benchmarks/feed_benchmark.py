"""Feed speed, measured side by side in one run on the same prepared rows.

    .venv/bin/python benchmarks/feed_benchmark.py [--events 30000] [--epochs 3]

Generates (once, kept under benchmarks/work/) and ingests a sample, prepares
it, writes the TFRecord feed (gzip and plain), then for the inclusive inputs
((GRU_input, HLF_input), label) and the HLF-only inputs, batch 128 and 1024,
reads the training split through:

- petastorm (the prepared Parquet shards),
- TFRecord (gzip and plain shards),
- for HLF-only inputs, the HLF-only feed (``<feeds>/hlf``), which HLF models read,
- the in-memory baseline: the same rows as NumPy arrays,
  ``from_tensor_slices(...).batch(...)``,

in training mode (shuffled), each as training reads it: one stream of epochs
from one iterator (``num_epochs=None``), the first epoch untimed, then at
least ``--epochs`` epochs and 2 s. It reports events/s and MB/s of tensors
delivered (61,004 bytes an event for inclusive inputs). Also write speed per
format and bytes on disk per event, and how much faster the HLF-only feed
reads HLF inputs than the best of the full-event readers. Writes
benchmarks/results/feeds.json and prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.ingest_benchmark import machine  # noqa: E402
from tasks.core import schema  # noqa: E402

TENSOR_BYTES = {
    "inclusive": 4 * (schema.LLF_ROWS * schema.LLF_FEATURES + schema.HLF_FEATURES + 3),
    "hlf": 4 * (schema.HLF_FEATURES + 3),
}


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.name.startswith("_"))


def timed_stream(dataset, epoch_events: int, epochs: int, min_seconds: float = 2.0) -> tuple[int, float]:
    """Events and seconds read from one stream of epochs, as training reads it
    (one iterator): the first epoch untimed (tracing, file cache), then at least
    ``epochs`` epochs and ``min_seconds``."""
    n, started, iterator = 0, None, iter(dataset)
    for batch in iterator:
        n += int(batch[1].shape[0])
        if started is None:
            if n >= epoch_events:
                n, started = 0, time.perf_counter()
            continue
        if n >= epochs * epoch_events and time.perf_counter() - started >= min_seconds:
            break
    return n, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=30000, help="generated events (default 30000)")
    parser.add_argument("--epochs", type=int, default=3, help="timed passes per reader (default 3)")
    parser.add_argument("--workdir", type=Path, default=REPO / "benchmarks" / "work", help="where the sample is kept")
    args = parser.parse_args()

    import numpy as np
    import pyarrow.parquet as pq
    from distributed import Client, LocalCluster

    from tasks.datasets.feeds import write_feeds
    from tasks.datasets.prepare import GRU_SIZE, PrepareSettings, prepare
    from tasks.events.ingest import ingest
    from tasks.events.samples import discover_samples
    from tasks.generator.generate import SampleRequest, generate

    raw = args.workdir / f"raw-{args.events}"
    events = args.workdir / f"events-{args.events}"
    work = args.workdir / f"feeds-{args.events}"
    writes = {}
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster) as client:
        generate(raw, SampleRequest(events=args.events, files_per_sample=4, seed=2026), client)
        if not (events / "_summary.json").exists():
            ingest(discover_samples(raw), events, client)
        started = time.perf_counter()
        summary = prepare(events, work / "prepared", client, PrepareSettings(seed=1))
        writes["prepare + petastorm Parquet (2 workers)"] = time.perf_counter() - started
        for compression in ("gzip", "none"):
            started = time.perf_counter()
            write_feeds(work / "prepared", work / f"tfrecord-{compression}", client, compression=compression)
            writes[f"TFRecord {compression} (2 workers)"] = time.perf_counter() - started
    n_train = summary["train"]["events"]
    n_all = n_train + summary["test"]["events"]
    dense = 4 * (GRU_SIZE + schema.HLF_FEATURES + 3)
    hlf_bytes = dir_bytes(work / "tfrecord-none" / "hlf")
    disk = {
        "petastorm Parquet": dir_bytes(work / "prepared" / "train") + dir_bytes(work / "prepared" / "test"),
        "TFRecord gzip": dir_bytes(work / "tfrecord-gzip") - dir_bytes(work / "tfrecord-gzip" / "hlf"),
        "TFRecord none": dir_bytes(work / "tfrecord-none") - hlf_bytes,
        "HLF-only Parquet (written with the TFRecords)": hlf_bytes,
    }

    import tensorflow as tf

    from tasks.datasets.readers import in_memory_dataset, open_feed

    table = pq.read_table(work / "prepared" / "train", columns=["HLF_input", "GRU_input", "encoded_label"])
    arrays = {c: np.asarray(table.column(c).combine_chunks().values, np.float32) for c in table.column_names}
    arrays["GRU_input"] = arrays["GRU_input"].reshape(-1, schema.LLF_ROWS, schema.LLF_FEATURES)
    arrays["HLF_input"] = arrays["HLF_input"].reshape(-1, schema.HLF_FEATURES)
    arrays["encoded_label"] = arrays["encoded_label"].reshape(-1, 3)
    del table

    readers = {}
    for inputs in ("inclusive", "hlf"):
        for batch in (128, 1024):
            row = {}
            n, s = timed_stream(in_memory_dataset(arrays, inputs, batch).repeat(), n_train, args.epochs)
            row["in-memory NumPy"] = n / s
            feeds = [
                ("petastorm", "petastorm", work / "prepared" / "train"),
                ("TFRecord gzip", "tfrecord", work / "tfrecord-gzip" / "train"),
                ("TFRecord none", "tfrecord", work / "tfrecord-none" / "train"),
            ]
            if inputs == "hlf":
                feeds.append(("HLF-only feed", "hlf", work / "tfrecord-none" / "hlf" / "train"))
            for name, fmt, path in feeds:
                with open_feed(path, fmt, inputs, batch, training=True, seed=1, num_epochs=None) as dataset:
                    n, s = timed_stream(dataset, n_train, args.epochs)
                assert n >= args.epochs * n_train, (name, n)
                row[name] = n / s
            readers[f"{inputs}, batch {batch}"] = row
            print(inputs, batch, {k: round(v) for k, v in row.items()}, flush=True)

    results = {
        "machine": machine() + f", TensorFlow {tf.__version__}, CPU only",
        "command": "python benchmarks/feed_benchmark.py " + " ".join(sys.argv[1:]),
        "train_events": n_train,
        "test_events": summary["test"]["events"],
        "dense_float32_bytes_per_event": dense,
        "bytes_on_disk_per_event": {k: round(v / n_all) for k, v in disk.items()},
        "size_vs_dense": {k: round(v / n_all / dense, 3) for k, v in disk.items()},
        "write_events_per_s": {k: round(n_all / v) for k, v in writes.items()},
        "read_events_per_s": {k: {r: round(v) for r, v in row.items()} for k, row in readers.items()},
        "read_mb_per_s": {
            k: {r: round(v * TENSOR_BYTES[k.split(",")[0]] / 1e6, 1) for r, v in row.items()}
            for k, row in readers.items()
        },
        "read_vs_in_memory": {
            k: {r: round(v / row["in-memory NumPy"], 2) for r, v in row.items()} for k, row in readers.items()
        },
        "hlf_only_feed_vs_best_full_event_reader": {
            k: round(
                row["HLF-only feed"] / max(v for r, v in row.items() if r not in ("HLF-only feed", "in-memory NumPy")),
                1,
            )
            for k, row in readers.items()
            if "HLF-only feed" in row
        },
    }
    out = REPO / "benchmarks" / "results" / "feeds.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    names = list(dict.fromkeys(r for row in readers.values() for r in row))
    print("\n| inputs, batch | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for k, row in readers.items():
        cells = [
            f"{row[r]:,.0f} ev/s, {row[r] * TENSOR_BYTES[k.split(',')[0]] / 1e6:,.0f} MB/s ({row[r] / row['in-memory NumPy']:.2f}×)"
            if r in row
            else "—"
            for r in names
        ]
        print(f"| {k} | " + " | ".join(cells) + " |")
    print("\n| format | write events/s | bytes on disk per event | vs dense float32 |")
    print("|---|---|---|---|")
    speeds = [f"{n_all / w:,.0f} ({wname})" for wname, w in writes.items()] + ["with the TFRecords"]
    for (name, v), speed in zip(disk.items(), speeds, strict=True):
        print(f"| {name} | {speed} | {v / n_all:,.0f} | {v / n_all / dense:.2f}× |")


if __name__ == "__main__":
    main()
