"""Keras on JAX against Keras on TensorFlow, side by side on this machine's CPU (issue 17, part 6).

    .venv/bin/python benchmarks/backends_benchmark.py [--events 4000] [--rounds 2]

The GPU check (benchmarks/gpu_check.py) run under each backend in turn, alternating
(tf, jax, tf, jax, ...: this machine is shared and noisy), on the same made-up events
(the demo's lengths; benchmarks/work/backends-<events>/): the paper's inclusive
model, batch 128, trimmed batches from the NumPy feed, 2 epochs; the figure is the
second epoch (the first carries the compiles). On TensorFlow the batches go through
tf.data (``NumpyFeed.tf_dataset``), on JAX straight from the generator.

Also the NumPy feed alone, inclusive batches of 1024 (trimmed windows of 16), with
1 and 2 row groups read at once (``readers``), alternating, for its scaling.

Writes benchmarks/results/backends.json and prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.gpu_check import made_up_events  # noqa: E402
from benchmarks.ingest_benchmark import machine  # noqa: E402


def feed_scaling(split: Path, rounds: int) -> dict[str, list[float]]:
    import time

    from tasks.datasets.numpy_feed import NumpyFeed

    found = {"1": [], "2": []}
    for round_ in range(rounds):
        for readers in found:
            feed = NumpyFeed(
                split, "inclusive", 1024, training=True, seed=round_, bucket_batches=16, readers=int(readers)
            )
            started = time.perf_counter()
            events = sum(len(y) for _, y in feed.epoch(0))
            found[readers].append(round(events / (time.perf_counter() - started), 1))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=2, help="runs per backend, alternating (default: 2)")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    work = REPO / "benchmarks" / "work" / f"backends-{args.events}"
    if not (work / "train").exists():
        made_up_events(work, args.events)
    runs = {"tensorflow": [], "jax": []}
    for round_ in range(args.rounds):
        for backend in runs:
            out = work / f"{backend}-{round_}.json"
            command = [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--prepared", str(work)]
            command += ["--batch-size", str(args.batch_size), "--output", str(out)]
            print(f"round {round_ + 1}: {backend}", file=sys.stderr)
            subprocess.run(command, check=True, env=os.environ | {"KERAS_BACKEND": backend}, stdout=subprocess.DEVNULL)
            runs[backend].append(json.loads(out.read_text()))
    scaling = feed_scaling(work / "train", args.rounds)
    rate = {b: statistics.mean(r["steady_events_per_s"] for r in rs) for b, rs in runs.items()}
    result = {
        "machine": machine(),
        "command": " ".join(["benchmarks/backends_benchmark.py", *sys.argv[1:]]),
        "events": args.events,
        "batch_size": args.batch_size,
        "steady_events_per_s": {b: [r["steady_events_per_s"] for r in rs] for b, rs in runs.items()},
        "first_epoch_events_per_s": {b: [r["epochs"][0]["events_per_s"] for r in rs] for b, rs in runs.items()},
        "feed_events_per_s": {b: [r["feed_events_per_s"] for r in rs] for b, rs in runs.items()},
        "rows_kept": runs["jax"][0]["rows_kept"],
        "numpy_feed_1024_events_per_s_by_readers": scaling,
        "jax_over_tensorflow": round(rate["jax"] / rate["tensorflow"], 2),
        "versions": {b: rs[0]["machine"] for b, rs in runs.items()},
    }
    path = REPO / "benchmarks" / "results" / "backends.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print("| backend | epoch 1 (compiles), events/s | epoch 2, events/s | the feed alone, events/s |")
    print("|---|---|---|---|")
    for b in runs:
        first = ", ".join(f"{v:,.0f}" for v in result["first_epoch_events_per_s"][b])
        steady = ", ".join(f"{v:,.0f}" for v in result["steady_events_per_s"][b])
        feed = ", ".join(f"{v:,.0f}" for v in result["feed_events_per_s"][b])
        print(f"| {b} | {first} | {steady} | {feed} |")
    print(f"\nJAX / TensorFlow (epoch 2): {result['jax_over_tensorflow']}×")
    print("\nThe NumPy feed alone, batches of 1024: " + "; ".join(f"{r} reader(s): {v}" for r, v in scaling.items()))


if __name__ == "__main__":
    main()
