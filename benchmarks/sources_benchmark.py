"""PFNano against Delphes, events/s per core, for the same particle counts.

    .venv/bin/python benchmarks/sources_benchmark.py [--copies 200] [--repeats 7]

The real PFNano sample (tests/data/coffea_pfnano.root: 10 events, ~1,820
candidates each) is replicated ``--copies`` times into a PFNano file, and
the same events as the PFNano source reads them (tracks with their vertex,
photons, neutral hadrons, leptons, jets, MET) are written as a Delphes file
(split TClonesArray naming, as Delphes writes it). Both are then ingested
chunk by chunk in this process (``process_chunk``: read, select and kernel,
Parquet for passing events), alternately, ``--repeats`` times; the best of
each is kept. Numba compilation is excluded (a warm-up chunk of each first).

Writes benchmarks/results/sources.json and prints a Markdown row for
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.ingest_benchmark import machine  # noqa: E402
from tasks.events.delphes import COLLECTIONS, TREE_NAME  # noqa: E402
from tasks.events.ingest import plan_chunks, process_chunk  # noqa: E402
from tasks.events.sources import get_source  # noqa: E402

PFNANO = REPO / "tests" / "data" / "coffea_pfnano.root"
CHUNK = 500


def write_pfnano(path: Path, copies: int) -> int:
    """The branches the PFNano config reads, the file's events repeated ``copies`` times."""
    import awkward as ak
    import uproot

    config = get_source("pfnano").config
    wanted = {"PV": ["x", "y", "z"]}
    for spec in config.roles.values():
        wanted.setdefault(spec.collections[0], []).extend(f for _, f in spec.branch_fields())
    tree = uproot.open(PFNANO)["Events"]
    data = {}
    for collection, fields in wanted.items():
        arrays = tree.arrays([f"{collection}_{f}" for f in dict.fromkeys(fields)], library="ak")
        arrays = ak.concatenate([arrays] * copies)
        if collection in ("PV", "MET"):  # one per event: flat branches, as NanoAOD has them
            data.update({name: ak.to_numpy(arrays[name]) for name in arrays.fields})
        else:
            data[collection] = ak.zip({name.split("_", 1)[1]: arrays[name] for name in arrays.fields})
    with uproot.recreate(path) as f:
        f.mktree("Events", {k: v.type if hasattr(v, "type") else v.dtype for k, v in data.items()})
        for start in range(0, len(data["MET_pt"]), CHUNK):  # baskets of a chunk, as real files have several
            f["Events"].extend({k: v[start : start + CHUNK] for k, v in data.items()})
    return tree.num_entries * copies


def write_delphes(path: Path, source_file: Path, n: int) -> None:
    """The events as the PFNano source reads them, in a Delphes file of the paper's card."""
    import awkward as ak
    import uproot

    chunk = get_source("pfnano").read_chunk(str(source_file), 0, n)
    roles = dict(chunk.collections())
    data = {}
    for (collection, branches), (role, spec) in zip(COLLECTIONS.items(), get_source("delphes").config.roles.items(),
                                                    strict=True):  # fmt: skip
        if role == "met":
            one = np.ones(n, np.int64)
            data[collection] = ak.zip({"MET": ak.unflatten(chunk.met, one), "Phi": ak.unflatten(chunk.met_phi, one)})
            continue
        c = roles[role]
        counts = np.diff(c.offsets)
        columns = {}
        for (neutral, _), branch in zip(spec.fields, branches, strict=True):
            values = c[neutral].astype(np.int32 if branch in ("PID", "Charge", "BTag") else np.float32)
            columns[branch] = ak.unflatten(values, counts)
        data[collection] = ak.zip(columns)
    naming = {"counter_name": lambda c: f"{c}_size", "field_name": lambda outer, inner: f"{outer}.{inner}"}
    with uproot.recreate(path) as f:
        tree = f.mktree(TREE_NAME, {k: v.type for k, v in data.items()}, **naming)
        for start in range(0, n, CHUNK):
            tree.extend({k: v[start : start + CHUNK] for k, v in data.items()})


def ingest_once(path: Path, source: str, n: int, out: Path) -> tuple[float, dict]:
    flow: dict[str, int] = {}
    started = time.perf_counter()
    for start, stop in plan_chunks(n, CHUNK):
        result = process_chunk("bench", 0, str(path), start, stop, str(out), source=source)
        if "error" in result:
            raise SystemExit(f"{path}: {result['error']}")
        for k, v in result["cutflow"].items():
            flow[k] = flow.get(k, 0) + v
    return time.perf_counter() - started, flow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="topo-bench-sources-") as tmp:
        tmp = Path(tmp)
        pfnano, delphes = tmp / "pfnano.root", tmp / "delphes.root"
        n = write_pfnano(pfnano, args.copies)
        write_delphes(delphes, pfnano, n)
        particles = {}
        for kind, path in (("pfnano", pfnano), ("delphes", delphes)):
            chunk = get_source(kind).read_chunk(str(path), 0, CHUNK)
            particles[kind] = {
                role: float(np.diff(getattr(chunk, role).offsets).mean())
                for role in ("tracks", "photons", "neutral_hadrons")
            }
            process_chunk("warm", 0, str(path), 0, 10, str(tmp), source=kind)  # numba compiles here
        assert particles["pfnano"] == particles["delphes"], particles
        best = {"pfnano": float("inf"), "delphes": float("inf")}
        flows = {}
        for _ in range(args.repeats):
            for kind, path in (("pfnano", pfnano), ("delphes", delphes)):
                out = Path(tempfile.mkdtemp(dir=tmp))
                seconds, flows[kind] = ingest_once(path, kind, n, out)
                best[kind] = min(best[kind], seconds)
        read_best = {}
        for kind, path in (("pfnano", pfnano), ("delphes", delphes)):
            source, times = get_source(kind), []
            for _ in range(args.repeats):
                started = time.perf_counter()
                for start, stop in plan_chunks(n, CHUNK):
                    source.read_chunk(str(path), start, stop)
                times.append(time.perf_counter() - started)
            read_best[kind] = min(times)
        sizes = {"pfnano": pfnano.stat().st_size, "delphes": delphes.stat().st_size}
    rates = {k: n / s for k, s in best.items()}
    results = {
        "machine": machine(),
        "command": "make bench-sources",
        "events": n,
        "chunk": CHUNK,
        "particles_per_event": particles["pfnano"],
        "file_bytes": sizes,
        "seconds_best_of": {"repeats": args.repeats, **best},
        "read_seconds_best_of": read_best,
        "events_per_second_one_core": rates,
        "delphes_over_pfnano": rates["delphes"] / rates["pfnano"],
        "cutflow": flows,
    }
    out = REPO / "benchmarks" / "results" / "sources.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"| {n} | {rates['delphes']:.0f} | {rates['pfnano']:.0f} | {results['delphes_over_pfnano']:.2f}× |")


if __name__ == "__main__":
    main()
