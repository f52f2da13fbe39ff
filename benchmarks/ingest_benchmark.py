"""Ingestion speed, measured side by side in one run on the same generated files.

    .venv/bin/python benchmarks/ingest_benchmark.py [--events 8000] [--reference-events 200]

1. reference: the per-event Python implementation (tests/support/reference.py, the
   shape of SparkDLTrigger's Spark UDF), on the first ``--reference-events`` events;
2. fast, one core: read + numba kernel + Parquet write, chunk after chunk in
   this process (``tasks.events.ingest.process_chunk``);
3. fast on a Dask LocalCluster of 1 and of 2 single-threaded workers
   (``tasks.events.ingest.ingest``, wall time including scheduling).

Writes benchmarks/results/ingest.json and prints a Markdown table for
docs/benchmarks.md. Numba compilation is excluded (a warm-up chunk runs first
on every process).
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tasks.core import schema  # noqa: E402
from tasks.events.ingest import ingest, plan_chunks, process_chunk  # noqa: E402
from tasks.events.samples import discover_samples  # noqa: E402
from tasks.events.sources import get_source  # noqa: E402
from tasks.generator.generate import SampleRequest, generate  # noqa: E402
from tests.support.reference import reference_features  # noqa: E402

SOURCE = get_source("delphes")


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def time_reference(files: list[str], n_events: int) -> tuple[int, float]:
    """Reference on the first events of each file, split evenly, reading included."""
    per_file = max(1, n_events // len(files))
    done, started = 0, time.perf_counter()
    for path in files:
        status, _, _ = reference_features(SOURCE.read_chunk(path, 0, per_file))
        done += len(status)
    return done, time.perf_counter() - started


def time_fast_one_core(samples, chunk: int, out: Path) -> tuple[int, float]:
    out.mkdir(parents=True)
    jobs = []
    for s in samples:
        for path in s.files:
            jobs += [(s.name, s.label, path, a, b) for a, b in plan_chunks(SOURCE.inspect(path), chunk)]
    process_chunk(*jobs[0][:3], 0, 5, str(out / "warmup"))  # compile / load the numba cache
    started = time.perf_counter()
    read = 0
    for job in jobs:
        result = process_chunk(*job, str(out))
        read += result["cutflow"]["read"]
    return read, time.perf_counter() - started


def time_steps(files: list[str], out: Path) -> dict[str, float]:
    """Seconds per step of the fast path over all files, one core: where the time goes."""
    from tasks.events.ingest import event_table, write_part
    from tasks.events.kernel import PASSED, compute_features

    out.mkdir(parents=True)
    steps = {
        "read (uproot, 27 branches -> CSR)": 0.0,
        "kernel (selection + LLF/HLF)": 0.0,
        "Arrow table + Parquet write": 0.0,
    }
    names = list(steps)
    for i, path in enumerate(files):
        t0 = time.perf_counter()
        chunk = SOURCE.read_chunk(path, 0, SOURCE.inspect(path))
        t1 = time.perf_counter()
        feats = compute_features(chunk)
        t2 = time.perf_counter()
        write_part(event_table("s", 0, path, 0, feats, feats.status == PASSED), out / f"{i}.parquet")
        t3 = time.perf_counter()
        for name, seconds in zip(names, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            steps[name] += seconds
    return {k: round(v, 3) for k, v in steps.items()}


def time_dask(samples, chunk: int, workers: int, out: Path) -> tuple[dict, float]:
    """Wall time of ``ingest`` on a fresh LocalCluster of ``workers`` processes."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        warm = [type(s)(s.name, s.label, s.files[:1]) for s in samples[:1]]
        ingest(warm, out / "warmup", client, chunk=50)  # every worker loads the kernels
        started = time.perf_counter()
        summary = ingest(samples, out / "events", client, chunk=chunk)
        return summary, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=8000, help="generated events (default 8000)")
    parser.add_argument("--reference-events", type=int, default=200, help="events for the slow reference (default 200)")
    parser.add_argument("--chunk", type=int, default=1000, help="events per chunk (default 1000)")
    parser.add_argument("--workdir", type=Path, default=REPO / "benchmarks" / "work", help="where the sample is kept")
    args = parser.parse_args()

    raw = args.workdir / f"raw-{args.events}"
    generate(raw, SampleRequest(events=args.events, files_per_sample=4, seed=2026))
    samples = discover_samples(raw)
    files = [f for s in samples for f in s.files]

    ref_n, ref_s = time_reference(files, args.reference_events)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        fast_n, fast_s = time_fast_one_core(samples, args.chunk, Path(tmp) / "one-core")
        steps = time_steps(files, Path(tmp) / "steps")
        _, d1_s = time_dask(samples, args.chunk, 1, Path(tmp) / "dask1")
        d2, d2_s = time_dask(samples, args.chunk, 2, Path(tmp) / "dask2")
        parquet_bytes = sum(p.stat().st_size for p in (Path(tmp) / "dask2" / "events").glob("*.parquet"))
    written = d2["events_written"]
    dense_bytes = 4 * (schema.LLF_ROWS * schema.LLF_FEATURES + schema.HLF_FEATURES)
    ref_rate, fast_rate = ref_n / ref_s, fast_n / fast_s
    d1_rate, d2_rate = fast_n / d1_s, fast_n / d2_s
    results = {
        "machine": machine(),
        "command": "python benchmarks/ingest_benchmark.py " + " ".join(sys.argv[1:]),
        "events_generated": fast_n,
        "events_written": written,
        "reference": {"events": ref_n, "seconds": round(ref_s, 3), "events_per_s_per_core": round(ref_rate, 2)},
        "fast_one_core": {"events": fast_n, "seconds": round(fast_s, 3), "events_per_s_per_core": round(fast_rate, 1)},
        "dask_1_worker": {
            "seconds": round(d1_s, 3),
            "events_per_s": round(d1_rate, 1),
            "events_per_s_per_core": round(d1_rate, 1),
        },
        "dask_2_workers": {
            "seconds": round(d2_s, 3),
            "events_per_s": round(d2_rate, 1),
            "events_per_s_per_core": round(d2_rate / 2, 1),
        },
        "one_core_seconds_per_step": steps,
        "speedup_fast_vs_reference": round(fast_rate / ref_rate, 1),
        "speedup_2_vs_1_workers": round(d2_rate / d1_rate, 2),
        "parquet_bytes_per_written_event": round(parquet_bytes / written),
        "dense_float32_bytes_per_event": dense_bytes,
    }
    out = REPO / "benchmarks" / "results" / "ingest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(
        f"""
| path | events | seconds | events/s per core |
|---|---|---|---|
| per-event reference (Python, seed-UDF shape) | {ref_n} | {ref_s:.2f} | {ref_rate:.1f} |
| fast path, one core (read + kernel + Parquet) | {fast_n} | {fast_s:.2f} | {fast_rate:.0f} |
| fast path, Dask LocalCluster, 1 worker | {fast_n} | {d1_s:.2f} | {d1_rate:.0f} |
| fast path, Dask LocalCluster, 2 workers | {fast_n} | {d2_s:.2f} | {d2_rate / 2:.0f} ({d2_rate:.0f} in all) |

Fast / reference: **{fast_rate / ref_rate:.0f}×**; 2 workers / 1 worker: **{d2_rate / d1_rate:.2f}×**;
Parquet: {parquet_bytes / written / 1024:.1f} KiB per written event (dense float32 LLF+HLF: {dense_bytes / 1024:.1f} KiB).

| step (all {fast_n} events, one core) | seconds |
|---|---|
"""
        + "\n".join(f"| {name} | {seconds:.2f} |" for name, seconds in steps.items())
    )


if __name__ == "__main__":
    main()
