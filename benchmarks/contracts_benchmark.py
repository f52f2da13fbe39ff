"""Contract validation speed, side by side in one run on the same datasets.

    .venv/bin/python benchmarks/contracts_benchmark.py [--events 30000]

Uses the datasets the feed benchmark keeps under benchmarks/work/ (run
``make bench-feeds`` first). For each contract (ingested_events, prepared,
feeds) reports events/s validated

- in this process, partitions grouped into one GX run per suite (the
  default), and with one GX run per partition (GROUP_PARTITIONS = 1, the
  straightforward way: GX's fixed cost per run then dominates),
- on a Dask LocalCluster of 1 and of 2 worker processes (each warmed up by a
  first validation, so GX's ~7 s import is not counted),
- on a LocalCluster of 2 workers started for the one validation and closed
  after it, as a gate task does when no Dask scheduler is named: what
  ``IN_PROCESS_BYTES`` (tasks/contracts/validation.py) weighs against the
  first column,

and where the time goes: building the partition tables (views) alone, in this
process. Writes benchmarks/results/contracts.json and prints Markdown for
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.ingest_benchmark import machine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=30000, help="the feed benchmark's sample size (default 30000)")
    parser.add_argument(
        "--workdir", type=Path, default=REPO / "benchmarks" / "work", help="where the feed benchmark keeps its data"
    )
    args = parser.parse_args()

    from distributed import Client, LocalCluster

    from tasks.contracts import ValidationSettings, validate, validation
    from tasks.contracts import datasets as adapters
    from tasks.contracts.suites import import_gx, load_contract

    datasets = {
        "ingested_events": args.workdir / f"events-{args.events}",
        "prepared": args.workdir / f"feeds-{args.events}" / "prepared",
        "feeds": args.workdir / f"feeds-{args.events}" / "tfrecord-gzip",
    }
    missing = [str(p) for p in datasets.values() if not (p / "_summary.json").exists()]
    if missing:
        sys.exit(f"missing {', '.join(missing)}: run `make bench-feeds` (with --events {args.events}) first")
    import_gx()
    results = {}
    with tempfile.TemporaryDirectory(prefix="topo-bench-contracts-") as tmp:
        settings = ValidationSettings.under(tmp)
        for contract, path in datasets.items():
            row = {}
            spec = load_contract(contract)
            parts = adapters.partitions(spec.name, path, spec.parameters)
            started = time.perf_counter()
            for p in parts:
                adapters.view(spec.name, p)
            row["views only, this process"] = time.perf_counter() - started
            started = time.perf_counter()
            report = validate(contract, path, settings)
            row["this process"] = time.perf_counter() - started
            grouping, validation.GROUP_PARTITIONS = validation.GROUP_PARTITIONS, 1
            started = time.perf_counter()
            validate(contract, path, settings)
            row["this process, one GX run per partition"] = time.perf_counter() - started
            validation.GROUP_PARTITIONS = grouping
            row["events"] = (
                report["rows"]
                if contract != "feeds"
                else report["facts"]["rows"]["train"] + report["facts"]["rows"]["test"]
            )
            row["partitions"] = len(parts)
            results[contract] = row
        from tasks.core.runtime import dask_client
        from tasks.core.settings import Settings

        for contract, path in datasets.items():
            started = time.perf_counter()
            with dask_client(Settings(dask_workers=2)) as client:
                validate(contract, path, settings, client)
            results[contract]["a LocalCluster of 2 started for it"] = time.perf_counter() - started
            results[contract]["megabytes"] = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20
        for workers in (1, 2):
            with (
                LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as cluster,
                Client(cluster) as client,
            ):
                for contract, path in datasets.items():
                    validate(contract, path, settings, client)  # warm-up: GX imported on every worker
                    started = time.perf_counter()
                    validate(contract, path, settings, client)
                    results[contract][f"Dask, {workers} worker{'s' if workers > 1 else ''}"] = (
                        time.perf_counter() - started
                    )
    out = {
        "machine": machine(),
        "command": "python benchmarks/contracts_benchmark.py " + " ".join(sys.argv[1:]),
        "seconds": {
            c: {k: round(v, 2) for k, v in r.items() if k not in ("events", "partitions", "megabytes")}
            for c, r in results.items()
        },
        "megabytes": {c: round(r["megabytes"], 1) for c, r in results.items()},
        "events": {c: r["events"] for c, r in results.items()},
        "partitions": {c: r["partitions"] for c, r in results.items()},
        "events_per_s": {
            c: {k: round(r["events"] / v) for k, v in r.items() if k not in ("events", "partitions", "megabytes")}
            for c, r in results.items()
        },
        "dask_2_over_1_workers": {c: round(r["Dask, 1 worker"] / r["Dask, 2 workers"], 2) for c, r in results.items()},
        "cold_cluster_over_this_process": {
            c: round(r["a LocalCluster of 2 started for it"] / r["this process"], 2) for c, r in results.items()
        },
        "grouped_over_per_partition": {
            c: round(r["this process, one GX run per partition"] / r["this process"], 2) for c, r in results.items()
        },
    }
    (REPO / "benchmarks" / "results" / "contracts.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    columns = (
        "this process, one GX run per partition",
        "this process",
        "Dask, 1 worker",
        "Dask, 2 workers",
        "a LocalCluster of 2 started for it",
    )
    print(
        "\n| contract | events (partitions, MB) | "
        + " | ".join(columns)
        + " | grouped ÷ per partition | 2 ÷ 1 workers | views alone |"
    )
    print("|---|---|" + "---|" * (len(columns) + 3))
    for c, r in results.items():
        cells = [f"{r[k]:.1f} s ({r['events'] / r[k]:,.0f} ev/s)" for k in columns]
        print(
            f"| {c} | {r['events']:,} ({r['partitions']}, {r['megabytes']:.0f} MB) | "
            + " | ".join(cells)
            + f" | {r[columns[0]] / r['this process']:.1f}× | {r['Dask, 1 worker'] / r['Dask, 2 workers']:.2f} | {r['views only, this process']:.1f} s |"
        )


if __name__ == "__main__":
    main()
