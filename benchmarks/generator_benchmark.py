"""Pythia 8 generation speed per class, detector response and pileup included.

    .venv/bin/python benchmarks/generator_benchmark.py [--events 200] [--pileup 30] [--partons 400]

For each class, one process writes ``--events`` lepton-filtered events into a
file (``generate.write_file``: Pythia, the minimum-bias pool, the overlay, the
detector, the ROOT write), which is then ingested (the trigger-like
selection). Reported per class: Pythia events generated per written event
(the generator-level filter), written events/s per core, the fraction the
selection keeps, and selected events/s per core (the target: at least 2 for
QCD). The per-file setup (Pythia's initialisation, the minimum-bias pool) is
timed apart, on a one-event file, and ``steady_selected_per_second`` leaves
it out: what a file of many events costs per event. Also the toy generator on
the same counts, side by side.

Writes benchmarks/results/generator.json and prints a Markdown table for
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
from tasks.core import schema  # noqa: E402
from tasks.events.ingest import process_chunk  # noqa: E402


def selected(path: Path, out: Path) -> int:
    """Events of ``path`` that pass the selection (ingested as one chunk)."""
    import uproot

    entries = uproot.open(path)["Delphes"].num_entries
    result = process_chunk("bench", 0, str(path), 0, entries, str(out), source="delphes")
    if "error" in result:
        raise SystemExit(f"{path}: {result['error']}")
    return result["cutflow"]["written"]


def repeated_hadronization(partons: int) -> dict:
    """What keeping the first pass of k hadronizations does to QCD: every
    parton-level event is hadronized all k times and the passes counted.
    ``kept_per_pass`` is what keep-the-first writes per event that keep-all
    (the natural weighting) would write; 1 would be no bias."""
    import pythia8mc

    from tasks.generator import pythia

    hard = pythia.HardEvents("qcd", seed=77)
    counts = []
    for _ in range(partons):
        parton = hard.next_parton_level()
        passes = 0
        for _ in range(hard.tries):
            hard.pythia.event = pythia8mc.Event(parton)
            passes += hard.hadronize() is not None
        counts.append(passes)
    total = sum(counts)
    return {
        "tries": hard.tries,
        "parton_events": partons,
        "passes": total,
        "pass_per_try": total / (partons * hard.tries),
        "parton_events_with_a_pass": sum(c > 0 for c in counts),
        "parton_events_with_two_or_more": sum(c > 1 for c in counts),
        "kept_per_pass": sum(c > 0 for c in counts) / total if total else None,
    }


def main() -> None:
    from tasks.generator.generate import write_file

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--pileup", type=float, default=30.0)
    parser.add_argument("--partons", type=int, default=400, help="QCD parton-level events of the bias probe")
    args = parser.parse_args()

    rows = {}
    with tempfile.TemporaryDirectory(prefix="topo-bench-gen-") as tmp:
        tmp = Path(tmp)
        for generator in ("pythia8", "toy"):
            for sample in schema.CLASS_NAMES:
                path = tmp / generator / f"{sample}_000.root"
                path.parent.mkdir(exist_ok=True)
                started = time.perf_counter()
                write_file(str(path.with_name(f"setup-{sample}.root")), sample, 1, seed=2026, generator=generator,
                           pileup=args.pileup)  # fmt: skip
                setup = time.perf_counter() - started
                started = time.perf_counter()
                report = write_file(str(path), sample, args.events, seed=2026, generator=generator, pileup=args.pileup)
                seconds = time.perf_counter() - started
                steady = max(seconds - setup, 1e-9) * args.events / (args.events - 1)
                out = tmp / f"{generator}-{sample}-events"
                out.mkdir()
                kept = selected(path, out)
                counts = report.get("pythia", {"parton_events": args.events, "hadronizations": args.events})
                rows[f"{generator}/{sample}"] = {
                    "written": args.events,
                    "seconds": seconds,
                    "written_per_second": args.events / seconds,
                    "pythia_events_per_written": counts["parton_events"] / args.events,
                    "hadronizations_per_written": counts["hadronizations"] / args.events,
                    "mean_forced_weight": report.get("pythia", {}).get("mean_forced_weight", 1.0),
                    "selected_fraction": kept / args.events,
                    "selected_per_second": kept / seconds,
                    "setup_seconds": setup,
                    "steady_selected_per_second": kept / steady,
                }
    results = {
        "machine": machine(),
        "command": "make bench-generator",
        "events_per_class": args.events,
        "pileup": args.pileup,
        "rows": rows,
        "qcd_repeated_hadronization": repeated_hadronization(args.partons),
    }
    (REPO / "benchmarks" / "results" / "generator.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print("| generator / class | written/s | parton-level events per written | hadronizations per written "
          "| selected | selected/s | per-file setup (s) | selected/s without it |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for key, r in rows.items():
        print(
            f"| {key} | {r['written_per_second']:.2f} | {r['pythia_events_per_written']:.1f} | "
            f"{r['hadronizations_per_written']:.1f} | {r['selected_fraction']:.0%} | {r['selected_per_second']:.2f} | "
            f"{r['setup_seconds']:.1f} | {r['steady_selected_per_second']:.2f} |"
        )


if __name__ == "__main__":
    main()
