"""Training that never waits (issue 17), measured side by side in one run.

    .venv/bin/python benchmarks/training_input_benchmark.py [--events 30000] [--epochs 3]

Uses the feed benchmark's sample (benchmarks/work/feeds-<events>/; runs
benchmarks/feed_benchmark.py first when it is missing). Every figure is
training events/s per epoch, the mean after the first epoch (tracing), with
the paper's settings (batch 128, Adam at 5e-4), on this machine's CPU:

1. **Trimmed batches**: the inclusive and GRU models on the TFRecord feed,
   every batch padded to 801 rows (``bucket_batches=0``) against sorting
   windows of 16 batches cut to their longest sequence (the default), each
   with and without XLA (``jit_compile``).
2. **Feeds against memory**: the inclusive model (trimmed) and the HLF model
   fed by each feed (petastorm, TFRecord; HLF also the HLF-only feed)
   against the same batches from memory (the feed's own epoch, cached in
   memory by ``tf.data``, then replayed).
3. **The reader alone**: TFRecord inclusive batches of 1024 with 1 and 2
   shards read at once (``workers``), events/s, for the scaling.

Writes benchmarks/results/training_input.json and prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.ingest_benchmark import machine  # noqa: E402

BATCH = 128
RATE = 5e-4


def fit_rate(model_name: str, dataset, steps: int, events: int, epochs: int, jit: bool = False) -> float:
    """Train a fresh model for ``epochs`` on ``dataset`` (repeating, ``steps`` per
    epoch); events/s per epoch, mean after the first."""
    import keras

    from tasks.learning.models import build_model

    keras.utils.set_random_seed(1)
    model = build_model(model_name)
    model.compile(optimizer=keras.optimizers.Adam(RATE), loss="categorical_crossentropy", jit_compile=jit)
    times = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.started)

    model.fit(dataset, epochs=epochs, steps_per_epoch=steps, verbose=0, callbacks=[Clock()])
    return events / (sum(times[1:]) / len(times[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=30000, help="the feed benchmark's sample (default 30000)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per measurement, the first untimed (default 3)")
    parser.add_argument("--workdir", type=Path, default=REPO / "benchmarks" / "work", help="where the sample is kept")
    args = parser.parse_args()
    work = args.workdir / f"feeds-{args.events}"
    if not (work / "tfrecord-none" / "hlf" / "_summary.json").exists():
        feed_benchmark = [sys.executable, str(REPO / "benchmarks" / "feed_benchmark.py"), "--events", str(args.events)]
        subprocess.run(feed_benchmark, check=True)

    import tensorflow as tf

    from tasks.datasets.readers import BUCKET_BATCHES, open_feed, steps_per_epoch
    from tasks.learning.records import model_record

    n_train = json.loads((work / "prepared" / "_summary.json").read_text())["train"]["events"]
    steps = steps_per_epoch(n_train, BATCH)
    paths = {
        "petastorm": work / "prepared" / "train",
        "tfrecord": work / "tfrecord-none" / "train",
        "hlf": work / "tfrecord-none" / "hlf" / "train",
    }

    def rate(model, fmt, bucket=BUCKET_BATCHES, jit=False, cached=False):
        inputs = model_record(model).inputs
        options = {"training": True, "seed": 1, "bucket_batches": bucket}
        if cached:  # the feed's own batches of one epoch, then replayed from memory
            with open_feed(paths[fmt], fmt, inputs, BATCH, num_epochs=1, **options) as one_epoch:
                memory = one_epoch.cache()
                for _ in memory:
                    pass
                return fit_rate(model, memory.repeat(), steps, n_train, args.epochs, jit)
        with open_feed(paths[fmt], fmt, inputs, BATCH, num_epochs=None, **options) as data:
            return fit_rate(model, data, steps, n_train, args.epochs, jit)

    trimmed = {}
    for model in ("inclusive", "gru"):
        row = {}
        for bucket in (0, BUCKET_BATCHES):
            for jit in (False, True):
                name = f"{'padded' if bucket == 0 else 'trimmed'}{', XLA' if jit else ''}"
                row[name] = rate(model, "tfrecord", bucket, jit)
        trimmed[model] = row
        print(model, {k: round(v) for k, v in row.items()}, flush=True)

    against_memory = {}
    for model, feeds in (("inclusive", ("petastorm", "tfrecord")), ("hlf", ("petastorm", "tfrecord", "hlf"))):
        for fmt in feeds:
            fed, memory = rate(model, fmt), rate(model, fmt, cached=True)
            against_memory[f"{model}, {fmt}"] = {"feed": fed, "memory": memory, "ratio": fed / memory}
            print(model, fmt, round(fed), round(memory), flush=True)

    reader = {}
    for workers in (1, 2):
        options = {"training": True, "seed": 1, "num_epochs": 3, "workers": workers}
        with open_feed(paths["tfrecord"], "tfrecord", "inclusive", 1024, **options) as data:
            for _ in data.take(1):
                pass
            n, started = 0, time.perf_counter()
            for _, y in data:
                n += int(y.shape[0])
            reader[f"{workers} shard(s) at once"] = n / (time.perf_counter() - started)
    print("reader", {k: round(v) for k, v in reader.items()}, flush=True)

    results = {
        "machine": machine() + f", TensorFlow {tf.__version__}, CPU only",
        "command": "python benchmarks/training_input_benchmark.py " + " ".join(sys.argv[1:]),
        "train_events": n_train,
        "batch_size": BATCH,
        "bucket_batches": BUCKET_BATCHES,
        "training_events_per_s": {m: {k: round(v, 1) for k, v in row.items()} for m, row in trimmed.items()},
        "trimmed_vs_padded": {m: round(row["trimmed"] / row["padded"], 2) for m, row in trimmed.items()},
        "xla_vs_not": {
            m: {k: round(row[f"{k}, XLA"] / row[k], 2) for k in ("padded", "trimmed")} for m, row in trimmed.items()
        },
        "feed_vs_memory": {k: {n: round(v, 2) for n, v in r.items()} for k, r in against_memory.items()},
        "reader_inclusive_1024_events_per_s": {k: round(v) for k, v in reader.items()},
    }
    out = REPO / "benchmarks" / "results" / "training_input.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
