"""Hyperparameter-search throughput: trials one after another vs several at once.

    .venv/bin/python benchmarks/tuning_benchmark.py [--events 6000] [--trials 4] [--epochs 3] [--parallel 2]

SparkDLTrigger ran its grid search on Spark executors and found it scaled almost
linearly with executors. Here a trial is ``tasks.learning.tuning.run_trial``
(train on the prepared train split, score on the test split) in a process of
its own, as an Airflow task is. The same trials (HLF model, a grid over
hidden layers and optimizers) run side by side in one invocation:

- serially: one trial process at a time (``TOPO_HPO_MAX_PARALLEL_TRIALS=1``),
- in parallel: ``--parallel`` trial processes at once (the DAG's default 2).

Reports wall time, trials per minute and the ratio. Builds its dataset under
benchmarks/work/tuning-<events>/ if missing (generate, ingest, prepare).
Writes benchmarks/results/tuning.json and prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.ingest_benchmark import machine  # noqa: E402

TRIAL = """
import json, sys
from tasks.learning.tuning import run_trial
trial = json.loads(sys.argv[3])
print(json.dumps(run_trial(sys.argv[1], sys.argv[2], "hlf", trial, epochs=int(sys.argv[4]), seed=1)))
"""


def dataset(work: Path, events: int) -> Path:
    from tasks.core.runtime import dask_client
    from tasks.core.settings import Settings
    from tasks.datasets.prepare import PrepareSettings, prepare
    from tasks.events.ingest import ingest
    from tasks.events.samples import discover_samples
    from tasks.generator.generate import SampleRequest, generate

    root = work / f"tuning-{events}"
    if (root / "prepared" / "_summary.json").exists():
        return root / "prepared"
    with dask_client(Settings(dask_workers=2)) as client:
        generate(root / "raw", SampleRequest(events=events, seed=5), client)
        ingest(discover_samples(root / "raw"), root / "events", client)
        prepare(root / "events", root / "prepared", client, PrepareSettings(seed=5))
    return root / "prepared"


def run(prepared: Path, trials: list[dict], epochs: int, parallel: int, out: Path) -> tuple[float, list[dict]]:
    def one(trial: dict) -> dict:
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                TRIAL,
                str(prepared),
                str(out / f"trial-{trial['index']:03d}"),
                json.dumps(trial),
                str(epochs),
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        if done.returncode:
            raise RuntimeError(done.stderr[-3000:])
        return json.loads(done.stdout.strip().splitlines()[-1])

    started = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        results = list(pool.map(one, trials))
    return time.perf_counter() - started, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=REPO / "benchmarks" / "work")
    args = parser.parse_args()

    from tasks.learning.tuning import expand_grid

    prepared = dataset(args.workdir, args.events)
    n_train = json.loads((prepared / "_summary.json").read_text())["train"]["events"]
    grid = {
        "hidden": [[50, 20, 10], [100, 50], [64], [32, 32, 32]],
        "optimizer": ["adam", "rmsprop"],
        "learning_rate": [1e-3],
    }
    trials = expand_grid(grid, "hlf")[: args.trials]
    figures = {}
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for name, parallel in (("serial", 1), ("parallel", args.parallel)):
            seconds, results = run(prepared, trials, args.epochs, parallel, Path(tmp) / name)
            figures[name] = {
                "trials_at_once": parallel,
                "seconds": round(seconds, 2),
                "trials_per_minute": round(60 * len(trials) / seconds, 2),
                "mean_trial_seconds": round(sum(r["finished"] - r["started"] for r in results) / len(results), 2),
            }
    ratio = figures["serial"]["seconds"] / figures["parallel"]["seconds"]
    result = {
        "machine": machine(),
        "command": " ".join(["benchmarks/tuning_benchmark.py", *sys.argv[1:]]),
        "model": "hlf",
        "train_events": n_train,
        "trials": len(trials),
        "epochs": args.epochs,
        **figures,
        "parallel_speedup": round(ratio, 2),
    }
    out = REPO / "benchmarks" / "results" / "tuning.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"""
| trials at once | wall time (s) | trials/min | mean time per trial (s) |
|---|---|---|---|
| 1 (serial) | {figures["serial"]["seconds"]} | {figures["serial"]["trials_per_minute"]} | {figures["serial"]["mean_trial_seconds"]} |
| {args.parallel} | {figures["parallel"]["seconds"]} | {figures["parallel"]["trials_per_minute"]} | {figures["parallel"]["mean_trial_seconds"]} |

{args.parallel} at once: {ratio:.2f}× the serial throughput ({len(trials)} HLF trials, {args.epochs} epochs on {n_train} training events).""")


if __name__ == "__main__":
    main()
