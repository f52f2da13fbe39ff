"""The GPU check: the inclusive model trained on N prepared events on Keras' JAX backend; events/s per epoch.

Made for a GPU host that has Python with JAX (CUDA), NumPy and pyarrow but no
TensorFlow and no internet: it needs this repository and three wheels
(Keras, namex, optree; ``bash scripts/gpu-check-wheels.sh`` fetches them,
about 3 MiB). On such a host::

    python3 -m pip install --no-deps --target /tmp/keras .gpu-wheels/*.whl
    PYTHONPATH=/tmp/keras:. python3 benchmarks/gpu_check.py --events 60000

Here (CPU): ``make gpu-check`` (a small N).

The events: ``--prepared DIR`` trains on a prepared split (``<prepared>/train``);
without it, N events are made up in the prepared layout (801 × 19 particle
rows, zero-padded, with the real lengths of the README's demo: mean 442,
90 % below 655; random feature values). Speed does not depend on the
values, only on the lengths, which set how far each trimmed batch runs.

What is timed: ``Model.fit`` of the paper's inclusive model (GRU 50 on the
particles ⊕ the 14 HLF, Adam) fed by the NumPy feed (tasks/datasets/numpy_feed.py)
with trimmed batches (sorting windows of 16 batches, the training default).
Each distinct batch length compiles once (at most 26 with BUCKET_ROWS = 32),
so the first epoch carries the compiles; the later ones are the steady rate.
The feed alone is timed too: input must outrun training.

On JAX a masked GRU never takes cuDNN's fused kernel (that is TensorFlow's
path): these figures are Keras' generic recurrent loop (``lax.scan``), one
step per particle row. Target on an H200: at least 30,000 events/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET = 30_000  # inclusive events/s on an H200 (issue 17)
DEMO_LENGTH = (442, 165)  # mean and spread of the demo's real particle rows (docs/benchmarks.md, "Trimmed batches")


def made_up_events(directory: Path, n: int, seed: int = 0, row_group: int = 256) -> Path:
    """``n`` events in the prepared layout (``<directory>/train/*.parquet``)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tasks.core import schema
    from tasks.datasets.prepare import float_lists

    rows, width = schema.LLF_ROWS, schema.LLF_FEATURES
    rng = np.random.default_rng(seed)
    out = directory / "train"
    out.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(out / "part-00000.parquet", _schema()) as writer:
        for start in range(0, n, row_group):
            k = min(row_group, n - start)
            lengths = np.clip(rng.normal(*DEMO_LENGTH, k).round(), 20, rows).astype(int)
            gru = rng.normal(size=(k, rows, width)).astype(np.float32)
            gru[np.arange(rows)[None, :] >= lengths[:, None]] = 0.0
            labels = rng.integers(0, 3, k)
            columns = {
                "n_particles": pa.array(lengths, pa.int32()),
                "HLF_input": float_lists(rng.normal(size=k * schema.HLF_FEATURES), schema.HLF_FEATURES, k),
                "GRU_input": float_lists(gru.ravel(), rows * width, k),
                "encoded_label": float_lists(np.eye(3, dtype=np.float32)[labels].ravel(), 3, k),
            }
            writer.write_table(pa.table(columns, schema=_schema()))
    return out


def _schema():
    import pyarrow as pa

    floats = pa.list_(pa.float32())
    return pa.schema(
        [("n_particles", pa.int32()), ("HLF_input", floats), ("GRU_input", floats), ("encoded_label", floats)]
    )


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=60_000, help="events to make up (default: 60000)")
    parser.add_argument("--prepared", type=Path, help="a prepared dataset to train on instead (its train split)")
    parser.add_argument("--batch-size", type=int, default=1024, help="events per batch (default: 1024)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs; the first carries the compiles (default: 2)")
    parser.add_argument("--bucket-batches", type=int, default=16, help="sorting window in batches (0: pad to 801)")
    parser.add_argument("--mixed-precision", action="store_true", help="bfloat16 compute, float32 output")
    parser.add_argument("--output", type=Path, help="write the figures here as JSON too")
    args = parser.parse_args(argv)

    import keras
    import numpy as np

    from tasks.datasets.numpy_feed import NumpyFeed
    from tasks.learning.models import build_model

    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        started = time.perf_counter()
        split = args.prepared / "train" if args.prepared else made_up_events(Path(scratch), args.events)
        made = time.perf_counter() - started
        feed = NumpyFeed(split, "inclusive", args.batch_size, training=True, seed=1, bucket_batches=args.bucket_batches)
        print(f"{feed.events} events in {split} ({made:.1f} s to make); timing the feed alone", file=sys.stderr)
        started = time.perf_counter()
        rows = sum(x[0].shape[0] * x[0].shape[1] for x, _ in feed.epoch(0))
        feed_seconds = time.perf_counter() - started

        if args.mixed_precision:
            keras.mixed_precision.set_global_policy("mixed_bfloat16")
        keras.utils.set_random_seed(1)
        model = build_model("inclusive")
        model.compile(optimizer=keras.optimizers.Adam(5e-4), loss="categorical_crossentropy", metrics=["accuracy"])
        epochs = []

        class Clock(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.started = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                seconds = time.perf_counter() - self.started
                epochs.append(
                    {
                        "epoch": epoch + 1,
                        "seconds": round(seconds, 3),
                        "events_per_s": round(feed.events / seconds, 1),
                        "loss": float(logs["loss"]),
                    }
                )
                print(f"epoch {epoch + 1}: {seconds:.2f} s, {feed.events / seconds:,.0f} events/s", file=sys.stderr)

        training = NumpyFeed(
            split,
            "inclusive",
            args.batch_size,
            training=True,
            seed=1,
            num_epochs=None,
            bucket_batches=args.bucket_batches,
        )
        # On TensorFlow (for comparison: benchmarks/backends_benchmark.py) through tf.data, which takes any length.
        batches = training.tf_dataset() if keras.backend.backend() == "tensorflow" else iter(training)
        model.fit(
            batches, epochs=args.epochs, steps_per_epoch=len(training), callbacks=[Clock()], verbose=0, shuffle=False
        )

    steady = epochs[1:] or epochs
    best = max(e["events_per_s"] for e in steady)
    result = {
        "what": f"the inclusive model, Model.fit on Keras' {keras.backend.backend()} backend, fed by the NumPy feed "
        "with trimmed batches",
        "machine": _machine(keras.backend.backend()) | {"python": platform.python_version(), "numpy": np.__version__},
        "events": feed.events,
        "made_up": args.prepared is None,
        "batch_size": args.batch_size,
        "bucket_batches": args.bucket_batches,
        "mixed_precision": args.mixed_precision,
        "rows_kept": round(rows / (feed.events * 801), 3),
        "feed_events_per_s": round(feed.events / feed_seconds, 1),
        "epochs": epochs,
        "steady_events_per_s": best,
        "target_events_per_s": TARGET,
        "target_met": best >= TARGET,
        "note": "a masked GRU on JAX runs Keras' generic recurrent loop, never cuDNN's kernel",
    }
    if args.output:
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


def _machine(backend: str) -> dict:
    import keras

    if backend == "jax":
        import jax

        devices, version = jax.devices(), jax.__version__
        return {
            "backend": backend,
            "devices": [str(d) for d in devices],
            "platform": devices[0].platform,
            "jax": version,
            "keras": keras.__version__,
        }
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return {
        "backend": backend,
        "devices": [g.name for g in gpus] or ["CPU"],
        "platform": "gpu" if gpus else "cpu",
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


if __name__ == "__main__":
    main()
