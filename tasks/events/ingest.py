"""Stage 1: input files (Delphes, CMS PFNano or NanoAOD ROOT) → selected events with LLF and HLF, as a Parquet dataset.

The file format is the event source's (tasks.events.sources): detected from
the files unless ``source=`` or the data config names it; one source per
ingestion. Its kind travels to the workers, which look the reader up there. Runs on
Dask in two waves: every file is inspected (readable? tree and branches
present? how many events?), then every chunk of ``chunk`` entries
of every good file is read, selected and turned into features by a worker,
which writes its Parquet part straight into the output's temporary directory
(nothing big travels back to the client). A file that fails at any point is
listed in the summary and its parts are dropped; the others are kept. The
output directory is replaced only when at least one file was good.

Output ``<output>/``:
- ``part-<sample>-<file>-<first entry>.parquet``: ``schema.EVENT_COLUMNS``
- ``_cutflow.json``: events read / rejected at each cut / written, per sample
- ``_summary.json``: inputs, per-file cutflow, bad files (the timing goes to the log)
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from pathlib import Path

import numpy as np

from tasks.core import schema
from tasks.core.errors import InputFileError, SettingsError, TopoError
from tasks.core.storage import atomic_directory, write_json
from tasks.core.summaries import IngestSummary
from tasks.events.samples import Sample, check_unique_names
from tasks.events.sources import detect_source, get_source, one_source, source_of_config

log = logging.getLogger(__name__)


PART_METADATA = "topo"
"""The key of a part's Parquet metadata: its event source and whether its events have particles."""


def part_origin(path: str | Path) -> dict:
    """What a part's metadata says of its events (``{}`` for a part written before it did)."""
    import pyarrow.parquet as pq

    metadata = pq.read_schema(path).metadata or {}
    raw = metadata.get(PART_METADATA.encode())
    return json.loads(raw) if raw else {}


class IngestError(TopoError):
    """No usable input at all; the existing output, if any, is untouched."""


def plan_chunks(n_entries: int, chunk: int) -> list[tuple[int, int]]:
    return [(start, min(start + chunk, n_entries)) for start in range(0, n_entries, chunk)]


# --- work done on the workers ---------------------------------------------------
def _inspect(path: str, source: str | None = None, data_config: str | None = None) -> dict:
    try:
        kind = source or detect_source(path)
        entries, layout = get_source(kind, data_config).examine(path)
        return {"path": path, "entries": entries, "layout": layout, "source": kind}
    except InputFileError as exc:
        return {"path": path, "error": exc.problem}
    except Exception as exc:  # a worker must report, not die: the client decides
        return {"path": path, "error": f"{type(exc).__name__}: {exc}"}


def _part_name(sample: str, path: str, start: int) -> str:
    return f"part-{sample}-{Path(path).stem}-{start:010d}.parquet"


def process_chunk(
    sample: str,
    label: int,
    path: str,
    start: int,
    stop: int,
    out_dir: str,
    id_prefix: str = "",
    source: str = "delphes",
    data_config: str | None = None,
) -> dict:
    """Select and featurise entries [start, stop) of ``path``, a file of the
    event source of kind ``source``; write their part.

    Returns the chunk's cutflow and, for events rejected as non-finite, which
    fields were bad; or an error naming the file.
    """
    try:
        return _process_chunk(sample, label, path, start, stop, out_dir, id_prefix, source, data_config)
    except InputFileError as exc:
        return {"path": path, "start": start, "error": exc.problem}
    except Exception as exc:
        return {"path": path, "start": start, "error": f"{type(exc).__name__}: {exc}"}


def _process_chunk(
    sample: str,
    label: int,
    path: str,
    start: int,
    stop: int,
    out_dir: str,
    id_prefix: str,
    source: str,
    data_config: str | None = None,
) -> dict:
    from tasks.events.kernel import EMPTY_PARTICLE_MAP, NO_ISOLATED_LEPTON, PASSED, compute_features

    chunk = get_source(source, data_config).read_chunk(path, start, stop)
    feats = compute_features(chunk)
    passed = feats.status == PASSED
    finite, bad_fields = _finite_events(feats, passed)
    keep = passed & finite
    cutflow = {
        "read": int(len(feats.status)),
        "rejected_empty_particle_map": int((feats.status == EMPTY_PARTICLE_MAP).sum()),
        "rejected_no_isolated_lepton": int((feats.status == NO_ISOLATED_LEPTON).sum()),
        "rejected_non_finite": int((passed & ~finite).sum()),
        "written": int(keep.sum()),
    }
    part = None
    if keep.any():
        table = event_table(sample, label, path, start, feats, keep, id_prefix)
        origin = {"source": source, "particle_content": chunk.particle_content}
        table = table.replace_schema_metadata({PART_METADATA: json.dumps(origin, sort_keys=True)})
        part = _part_name(sample, path, start)
        write_part(table, Path(out_dir) / part)
    return {"path": path, "start": start, "cutflow": cutflow, "non_finite": bad_fields, "part": part}


def write_part(table, path: Path) -> None:
    """Parquet with dictionaries only where they pay (strings): trying them on
    millions of distinct floats costs time and saves nothing."""
    import pyarrow.parquet as pq

    pq.write_table(table, path, compression="zstd", compression_level=1, use_dictionary=["event_id", "sample"])


def _finite_events(feats, passed: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """Which passing events have only finite features, and which fields were not."""
    hlf_ok = np.isfinite(feats.hlf)
    row_ok = np.isfinite(feats.llf)
    n = len(passed)
    llf_ok = np.ones((n, schema.LLF_FEATURES), bool)
    lengths = np.diff(feats.llf_offsets)
    filled = lengths > 0
    if filled.any():
        # Per event and column: are all its rows finite?
        llf_ok[filled] = np.logical_and.reduceat(row_ok, feats.llf_offsets[:-1][filled], axis=0)
    finite = hlf_ok.all(axis=1) & llf_ok.all(axis=1)
    bad: Counter[str] = Counter()
    for e in np.flatnonzero(passed & ~finite):
        bad.update(f"HLF {feats.hlf_columns[c]}" for c in np.flatnonzero(~hlf_ok[e]))
        bad.update(f"LLF {feats.llf_columns[c]}" for c in np.flatnonzero(~llf_ok[e]))
    return finite, dict(bad)


def event_table(sample: str, label: int, path: str, start: int, feats, keep: np.ndarray, id_prefix: str = ""):
    """The Parquet table of the kept events of a chunk (``schema.EVENT_COLUMNS``).

    ``lfeatures`` holds each event's filled LLF rows flattened (19 × n_rows
    float32, never null): one list level instead of a list of fixed-size
    lists makes the Parquet write about a quarter faster for the same bytes.
    ``read_lfeatures`` turns it back into rows. ``event_id`` is
    ``<id_prefix><sample>/<file name>:<entry>``; daily partitions prefix the
    day, so files of the same name on two days stay distinct events.
    """
    import pyarrow as pa

    idx = np.flatnonzero(keep)
    name = Path(path).name
    lengths = np.diff(feats.llf_offsets)[idx]
    starts = feats.llf_offsets[:-1][idx]
    # Rows of the kept events: concatenated ranges [start, start + length).
    first = np.zeros(len(idx), np.int64)
    np.cumsum(lengths[:-1], out=first[1:])
    rows = np.arange(lengths.sum()) + np.repeat(starts - first, lengths)
    offsets = np.zeros(len(idx) + 1, np.int32)
    np.cumsum(lengths * schema.LLF_FEATURES, out=offsets[1:])
    lfeatures_type = pa.list_(pa.field("item", pa.float32(), nullable=False))
    counts = feats.group_counts[idx]
    columns = {
        "event_id": pa.array([f"{id_prefix}{sample}/{name}:{start + i}" for i in idx], pa.string()),
        "sample": pa.array([sample] * len(idx), pa.string()).dictionary_encode(),
        "entry": pa.array(start + idx, pa.int64()),
        "label": pa.array(np.full(len(idx), label), pa.int8()),
        "hfeatures": pa.FixedSizeListArray.from_arrays(
            pa.array(feats.hlf[idx].ravel(), pa.float32()), schema.HLF_FEATURES
        ),
        "lfeatures": pa.ListArray.from_arrays(
            pa.array(offsets), pa.array(feats.llf[rows].ravel(), pa.float32()), type=lfeatures_type
        ),
        "n_tracks": pa.array(counts[:, 0], pa.int16()),
        "n_photons": pa.array(counts[:, 1], pa.int16()),
        "n_neutrals": pa.array(counts[:, 2], pa.int16()),
    }
    fields = [pa.field(key, column.type, nullable=key != "lfeatures") for key, column in columns.items()]
    return pa.table(columns, schema=pa.schema(fields))


def read_lfeatures(column) -> tuple[np.ndarray, np.ndarray]:
    """Decode an ``lfeatures`` column (pyarrow Array or ChunkedArray) into the
    compact LLF rows (n_rows, 19) and per-event row offsets (n_events + 1), the
    form ``tasks.events.kernel.dense_llf`` expands."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    offsets = np.asarray(column.offsets, np.int64)
    values = np.asarray(column.values, np.float32)[offsets[0] : offsets[-1]]
    return values.reshape(-1, schema.LLF_FEATURES), (offsets - offsets[0]) // schema.LLF_FEATURES


# --- the stage ---------------------------------------------------------------
def ingest(
    samples: list[Sample],
    output: str | Path,
    client,
    chunk: int = 1000,
    id_prefix: str = "",
    max_events_per_file: int | None = None,
    source: str | None = None,
    data_config: str | None = None,
) -> IngestSummary:
    """Ingest ``samples``, files of one event source, into the Parquet dataset
    ``output`` on the Dask ``client``. The source is ``source``, else the one
    ``data_config`` is for, else detected from the files (a ``SettingsError``
    naming the files when they mix sources); it is read as ``data_config``
    says, else as its own config (``data_configs/<source>.yaml``).

    Returns the run summary (also written to ``output/_summary.json``, less
    the timing and the output path, so the same input gives the same bytes). Raises
    ``IngestError`` when no input file is usable; ``output`` is then untouched.
    ``max_events_per_file`` reads only the first entries of each file (a smoke run).
    """
    from distributed import as_completed

    if chunk < 1:
        raise SettingsError(f"chunk must be at least 1 event, got {chunk}")
    if data_config is not None:
        configured = source_of_config(data_config)  # a bad config fails here, not as every file bad
        if source not in (None, configured):
            raise SettingsError(f"data config {data_config} is for source {configured!r}, not {source!r}")
        source = configured
    if source is not None:
        get_source(source, data_config)  # an unknown kind fails here too
    check_unique_names(samples)
    output = Path(output)
    started = time.perf_counter()
    sample_of = {f: s for s in samples for f in s.files}
    files = [f for s in samples for f in s.files]
    log.info("ingesting %d files of %d samples into %s", len(files), len(samples), output)

    inspected = client.gather(client.map(_inspect, files, source=source, data_config=data_config, pure=False))
    bad: dict[str, str] = {r["path"]: r["error"] for r in inspected if "error" in r}
    for path, problem in bad.items():
        log.error("bad input file %s: %s", path, problem)
    if len(bad) < len(files):
        source = one_source({r["path"]: r["source"] for r in inspected if "error" not in r})
        reader = get_source(source, data_config)
        log.info("reading %s files as data config %s says", source, reader.config.path)
    good = [
        (r["path"], r["entries"] if max_events_per_file is None else min(r["entries"], max_events_per_file))
        for r in inspected
        if "error" not in r
    ]
    if not good:
        raise IngestError(
            f"every input file is bad ({len(bad)} files):\n" + "\n".join(f"  {p}: {e}" for p, e in bad.items())
        )

    with atomic_directory(output) as tmp:
        jobs = [
            (sample_of[p].name, sample_of[p].label, p, a, b, str(tmp))
            for p, n in good
            for a, b in plan_chunks(n, chunk)
        ]
        total_events = sum(n for _, n in good)
        log.info("%d good files, %d events, %d chunks of up to %d events", len(good), total_events, len(jobs), chunk)
        futures = client.map(
            process_chunk,
            *zip(*jobs, strict=True),
            id_prefix=id_prefix,
            source=source,
            data_config=data_config,
            pure=False,
        )
        results, done_events, last_log = [], 0, 0.0
        for fut in as_completed(futures):
            r = fut.result()
            results.append(r)
            if "error" in r:
                log.error("bad input file %s (entries from %d): %s", r["path"], r["start"], r["error"])
                bad.setdefault(r["path"], r["error"])
                continue
            done_events += r["cutflow"]["read"]
            now = time.perf_counter()
            if now - last_log > 5 or len(results) == len(jobs):
                rate = done_events / max(now - started, 1e-9)
                log.info(
                    "ingested %d/%d chunks, %d/%d events (%.0f%%), %.0f events/s",
                    len(results),
                    len(jobs),
                    done_events,
                    total_events,
                    100 * done_events / total_events,
                    rate,
                )
                last_log = now
        if len(bad) == len(files):
            raise IngestError("every input file is bad:\n" + "\n".join(f"  {p}: {e}" for p, e in bad.items()))
        # A file that failed in any chunk is dropped whole: no partial files.
        for r in results:
            if r["path"] in bad and r.get("part"):
                (tmp / r["part"]).unlink(missing_ok=True)
        kept = [r for r in results if r["path"] not in bad]
        if not any(r["part"] for r in kept):
            _write_empty_part(tmp)
        summary = _summary(samples, sample_of, kept, bad, output, time.perf_counter() - started)
        summary["source"] = source
        summary["particle_content"] = reader.config.particle_content
        summary["data_config"] = reader.config.describe()
        summary["layouts"] = {r["path"]: r["layout"] for r in inspected if "layout" in r and r["path"] not in bad}
        write_json(tmp / "_cutflow.json", summary["cutflow"])
        # Where and how fast are the caller's to know: the file depends on the input alone.
        write_json(tmp / "_summary.json", {k: v for k, v in summary.items() if k not in ("seconds", "output")})
    chosen = Counter(json.dumps(layout, sort_keys=True) for layout in summary["layouts"].values())
    for layout, n in sorted(chosen.items()):
        log.info("%d file(s) matched %s", n, ", ".join(f"{role} in {c}" for role, c in json.loads(layout).items()))
    log.info("cutflow:\n%s", format_cutflow(summary["cutflow"]))
    if bad:
        log.warning(
            "%d bad input file(s) skipped:\n%s", len(bad), "\n".join(f"  {p}: {e}" for p, e in sorted(bad.items()))
        )
    log.info("wrote %d events to %s in %.1f s", summary["events_written"], output, summary["seconds"])
    return summary


def _write_empty_part(directory: Path) -> None:
    """A dataset with no selected event still has a schema to read."""
    from tasks.events.kernel import ChunkFeatures

    empty = ChunkFeatures(
        status=np.zeros(0, np.int8),
        hlf=np.zeros((0, schema.HLF_FEATURES), np.float32),
        llf=np.zeros((0, schema.LLF_FEATURES), np.float32),
        llf_offsets=np.zeros(1, np.int64),
        group_counts=np.zeros((0, 3), np.int32),
    )
    write_part(event_table("none", 0, "none", 0, empty, np.zeros(0, bool)), directory / "part-empty.parquet")


def _summary(
    samples: list[Sample],
    sample_of: dict[str, Sample],
    results: list[dict],
    bad: dict[str, str],
    output: Path,
    seconds: float,
) -> IngestSummary:
    cutflow = {s.name: dict.fromkeys(schema.CUTFLOW_STEPS, 0) for s in samples}
    per_file: dict[str, dict[str, int]] = {}
    non_finite: dict[str, dict[str, int]] = {}
    for r in sorted(results, key=lambda r: (r["path"], r["start"])):
        name = sample_of[r["path"]].name
        file_flow = per_file.setdefault(r["path"], dict.fromkeys(schema.CUTFLOW_STEPS, 0))
        for step, n in r["cutflow"].items():
            cutflow[name][step] += n
            file_flow[step] += n
        for fld, n in r["non_finite"].items():
            non_finite.setdefault(r["path"], Counter())[fld] += n
    for path, fields in non_finite.items():
        log.warning(
            "%s: %d event(s) rejected for non-finite values in %s",
            path,
            per_file[path]["rejected_non_finite"],
            ", ".join(f"{f} ({n})" for f, n in sorted(fields.items())),
        )
    return {
        "output": str(output),
        "samples": {s.name: {"label": s.label, "files": list(s.files)} for s in samples},
        "cutflow": cutflow,
        "files": per_file,
        "non_finite": {p: dict(sorted(f.items())) for p, f in non_finite.items()},
        "bad_files": dict(sorted(bad.items())),
        "events_written": sum(c["written"] for c in cutflow.values()),
        "seconds": round(seconds, 3),
    }


def format_cutflow(cutflow: dict[str, dict[str, int]]) -> str:
    """A plain-text table, one row per sample, for logs and the CLI."""
    header = ["sample", *schema.CUTFLOW_STEPS, "efficiency"]
    rows = []
    for name, c in cutflow.items():
        eff = c["written"] / c["read"] if c["read"] else 0.0
        rows.append([name, *(str(c[s]) for s in schema.CUTFLOW_STEPS), f"{eff:.3f}"])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(r, widths, strict=True)) for r in [header, *rows])
