"""Inference speed of the exported models: Keras against ONNX Runtime, side by side in one run.

    .venv/bin/python benchmarks/inference_benchmark.py [--batches 1 64 1024] [--seconds 3]

For each of the paper's models (HLF, GRU, inclusive; default architectures,
weights as built: speed does not depend on their values) the Keras model is
converted as ``topo export`` converts it, and the same synthetic events
(scaled-looking features, particle sequences padded to 801 rows as
``topo predict`` feeds them) are scored

- with Keras, ``predict_on_batch`` (what ``topo predict`` does with a
  model.keras), TensorFlow backend, and
- with ONNX Runtime on the CPU (``topo predict --onnx``),

at each batch size, alternating the two per repeat so that machine noise
falls on both. Reports the median batch latency, its 95th percentile and
events/s (batch size / median latency). Both use every core (TensorFlow's
and ONNX Runtime's default thread pools). Writes
benchmarks/results/inference.json and prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.ingest_benchmark import machine  # noqa: E402

MODELS = ("hlf", "gru", "inclusive")


def _time(score, events, seconds: float, least: int = 3) -> list[float]:
    """Latencies of repeated calls, after one warm-up call."""
    score(events)
    latencies, started = [], time.perf_counter()
    while len(latencies) < least or time.perf_counter() - started < seconds:
        t = time.perf_counter()
        score(events)
        latencies.append(time.perf_counter() - t)
    return latencies


def _summary(latencies: list[float], batch: int) -> dict:
    import numpy as np

    median = float(np.median(latencies))
    return {
        "median_ms": round(median * 1e3, 3),
        "p95_ms": round(float(np.percentile(latencies, 95)) * 1e3, 3),
        "events_per_s": round(batch / median, 1),
        "repeats": len(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64, 1024], help="batch sizes (default 1 64 1024)")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per model, runtime and batch size")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "inference.json")
    args = parser.parse_args()

    import numpy as np

    import tasks.learning.models as models
    from tasks.core import schema
    from tasks.learning.export import _to_onnx, keras_probabilities, onnx_probabilities, onnx_session, synthetic_events

    results = {}
    with tempfile.TemporaryDirectory(prefix="topo-bench-inference-") as tmp:
        for name in MODELS:
            model = models.build_model(name)
            _to_onnx(model, name, Path(tmp) / f"{name}.onnx")
            session = onnx_session(Path(tmp) / f"{name}.onnx")
            runtimes = {
                "keras": lambda e, model=model, name=name: keras_probabilities(model, name, e),
                "onnxruntime": lambda e, session=session: onnx_probabilities(session, e),
            }
            rows = {}
            for batch in args.batches:
                events = synthetic_events(name, n=batch, particles=schema.LLF_ROWS, seed=batch)
                latencies = {runtime: [] for runtime in runtimes}
                for _ in range(3):  # alternate, so that noise falls on both
                    for runtime, score in runtimes.items():
                        latencies[runtime] += _time(score, events, args.seconds / 3)
                difference = float(np.abs(runtimes["keras"](events) - runtimes["onnxruntime"](events)).max())
                rows[str(batch)] = {r: _summary(latencies[r], batch) for r in runtimes} | {
                    "max_abs_difference": difference
                }
                row = rows[str(batch)]
                print(
                    f"{name} batch {batch}: keras {row['keras']['events_per_s']:.0f} ev/s, "
                    f"onnxruntime {row['onnxruntime']['events_per_s']:.0f} ev/s",
                    file=sys.stderr,
                )
            results[name] = rows
    report = {
        "machine": machine(),
        "command": "make bench-inference",
        "particles_per_event": schema.LLF_ROWS,
        "seconds_per_cell": args.seconds,
        "models": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print("| model | batch | Keras ev/s | ORT ev/s | ORT / Keras | Keras median (p95) ms | ORT median (p95) ms |")
    print("|---|---|---|---|---|---|---|")
    for name, rows in results.items():
        for batch, row in rows.items():
            k, o = row["keras"], row["onnxruntime"]
            print(
                f"| {name} | {batch} | {k['events_per_s']:,.0f} | {o['events_per_s']:,.0f} | "
                f"{o['events_per_s'] / k['events_per_s']:.1f} | {k['median_ms']:.2f} ({k['p95_ms']:.2f}) | "
                f"{o['median_ms']:.2f} ({o['p95_ms']:.2f}) |"
            )


if __name__ == "__main__":
    main()
