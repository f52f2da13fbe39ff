"""Validate a dataset against its contract: partition by partition on Dask,
then the dataset-level tables, then one verdict.

Each worker reads one partition, builds its tables (views.py) and runs the
contract's ``schema`` and ``partition`` suites on them; only the GX results and
a few facts come back. The client combines the facts into the dataset-level
tables (datasets.py), runs their suites, and then

- keeps the run: the GX results in ``<root>/<contract>/runs/<run>.json``, a line
  in ``<root>/<contract>/history.jsonl`` (counts, cutflow, verdict), so drift
  can be followed run after run, and GX data docs under
  ``<root>/gx/uncommitted/data_docs/local_site/``,
- copies every failing partition to ``<quarantine>/<contract>/<run>/``,
- raises ContractError, naming each failed rule, partition, column and a few
  example values and events, when a critical expectation failed.

The dataset itself is never modified or moved.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from tasks.contracts import datasets
from tasks.contracts.suites import Contract, ephemeral_context, failures, import_gx, load_contract, run_suite
from tasks.core.errors import TopoError
from tasks.core.storage import write_json

log = logging.getLogger(__name__)

DOCS_PASSING_PARTITIONS = 20
"""Passing GX runs (partitions or groups of them) rendered in the data docs per
run; every failing one is."""


class ContractError(TopoError):
    """A dataset broke its contract; ``report`` has the details."""

    def __init__(self, report: dict):
        super().__init__(format_report(report))
        self.report = report


@dataclass(frozen=True)
class ValidationSettings:
    root: Path
    """History, per-run results and GX data docs: ``<data root>/validation``."""
    quarantine: Path
    """Copies of failing partitions: ``<data root>/quarantine``."""
    run_name: str = ""
    """Names this validation in the history and the docs; default: a UTC timestamp."""

    @classmethod
    def under(cls, data_root: str | Path, run_name: str = "") -> ValidationSettings:
        return cls(Path(data_root) / "validation", Path(data_root) / "quarantine", run_name)


IN_PROCESS_BYTES = 256 * 2**20
"""Without a Dask scheduler to connect to, a dataset smaller than this is
validated in the calling process: a LocalCluster started for it would cost more
than the validation (its workers each import GX and pandas, ~6 s of a core,
before the first row is read; ~15 s of a smoke run's gate)."""


def worth_a_cluster(dataset: str | Path) -> bool:
    """Whether validating ``dataset`` pays for starting a LocalCluster."""
    dataset = Path(dataset)
    files = [dataset] if dataset.is_file() else (f for f in dataset.rglob("*") if f.is_file())
    total = 0
    for f in files:
        total += f.stat().st_size
        if total >= IN_PROCESS_BYTES:
            return True
    return False


GROUP_PARTITIONS = 50
"""Partitions validated together by one GX run at most. GX costs ~0.2 s per
suite run whatever the size, so partitions are grouped: one run for the
group's rows, one per distinct schema. A failing group is re-validated
partition by partition, so failures and quarantine name exact partitions."""


def check_group(contract: Contract, group: list[datasets.Partition]) -> list[dict]:
    """Run on a worker: the schema and partition suites over a group of
    partitions of one split; one entry per partition. Entries share result
    objects ({"label", "result"}) where one GX run covered several."""
    import pandas as pd

    context = ephemeral_context()
    entries, frames = [], []
    for partition in group:
        entry = {
            "name": partition.name,
            "split": partition.split,
            "files": list(partition.files),
            "facts": {},
            "results": {},
        }
        entries.append(entry)
        try:
            view = datasets.view(contract.name, partition)
        except Exception as exc:  # a file that cannot be read fails its contract, naming the file
            entry["error"] = f"{partition.files[0]}: cannot be read: {type(exc).__name__}: {exc}"
            continue
        entry["facts"], entry["rows"] = view.facts, view.facts.get("rows", len(view.rows))
        frames.append((entry, view))

    def run(table, frame, label, split):
        result = run_suite(context, f"{contract.name}.{table}", contract.expectations(table, split), frame, label)
        return {"label": label, "result": result}

    schemas: dict[tuple, dict] = {}
    for entry, view in frames:
        signature = tuple(map(tuple, view.schema.astype(str).to_numpy().tolist()))
        if signature not in schemas:
            schemas[signature] = run("schema", view.schema, entry["name"], entry["split"])
        entry["results"]["schema"] = schemas[signature]
    if not frames:
        return entries
    split = frames[0][0]["split"]
    label = frames[0][0]["name"] + (f" and {len(frames) - 1} more" if len(frames) > 1 else "")
    together = run("partition", pd.concat([v.rows for _, v in frames], ignore_index=True), label, split)
    for entry, view in frames:
        exact = together["result"]["success"] or len(frames) == 1
        # a failing group is re-run part by part, to find which partitions broke the rules
        entry["results"]["partition"] = together if exact else run("partition", view.rows, entry["name"], split)
    return entries


def _groups(parts: list[datasets.Partition], workers: int) -> list[list[datasets.Partition]]:
    """Partitions of one split at a time, in about two groups per worker."""
    size = max(1, min(GROUP_PARTITIONS, -(-len(parts) // (2 * workers))))
    out = []
    for split in dict.fromkeys(p.split for p in parts):
        mine = [p for p in parts if p.split == split]
        out += [mine[i : i + size] for i in range(0, len(mine), size)]
    return out


def validate(contract: str, dataset: str | Path, settings: ValidationSettings, client=None) -> dict:
    """Validate ``dataset`` against the contract named ``contract``; the report,
    or ContractError when a critical expectation failed."""
    started = time.perf_counter()
    spec = load_contract(contract)
    dataset = Path(dataset).resolve()
    parts = datasets.partitions(spec.name, dataset, spec.parameters)
    run_name = settings.run_name or dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    log.info(
        "contract %s v%d: validating %s, %d partition(s), on %s",
        spec.name,
        spec.version,
        dataset,
        len(parts),
        "Dask" if client else "this process",
    )
    if client is not None and parts:
        groups = _groups(parts, len(client.scheduler_info(n_workers=-1)["workers"]) or 1)
        checked = [
            c
            for group in client.gather(client.map(check_group, [spec] * len(groups), groups, pure=False))
            for c in group
        ]
    else:
        checked = [c for group in _groups(parts, 1) for c in check_group(spec, group)]
    history = history_path(settings, spec.name)
    origin = datasets.origin(spec.name, dataset)
    successes = _other_successes(history, dataset)
    previous = _last_of_origin(successes, origin)
    tables, facts, notes = datasets.tables(
        spec.name, dataset, [c for c in checked if "error" not in c], spec.parameters, previous
    )
    if origin is not None:
        facts["origin"] = origin
        if previous is None and successes:
            notes.append(f"the previous successful runs came from other inputs than {origin}: not compared")
    context = ephemeral_context()
    dataset_results = {
        name: run_suite(context, f"{spec.name}.{name}", spec.expectations(name), frame, name, key=frame.columns[0])
        for name, frame in tables.items()
    }

    problems = []
    if not parts:
        problems.append(
            {
                "where": "dataset",
                "why": "the dataset has partitions to check",
                "expectation": "partitions present",
                "observed": 0,
                "severity": "critical",
            }
        )
    for c in checked:
        if "error" in c:
            problems.append(
                {
                    "where": c["name"],
                    "why": "the partition can be read",
                    "expectation": "readable",
                    "error": c["error"],
                    "severity": "critical",
                }
            )
        for table, result in c["results"].items():
            problems += [{"where": c["name"], "table": table, **f} for f in failures(result["result"])]
    for table, result in dataset_results.items():
        problems += [{"where": "dataset", "table": table, **f} for f in failures(result)]
    for table, frame in tables.items():  # the rows behind a failed table-level rule are its examples
        for p in problems:
            if p["where"] == "dataset" and p.get("table") == table and "examples" not in p and len(frame):
                p["examples"] = json.loads(frame.head(5).to_json(orient="records"))
    critical = [p for p in problems if p.get("severity", "critical") == "critical"]
    report = {
        "contract": spec.name,
        "version": spec.version,
        "dataset": str(dataset),
        "run": run_name,
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "success": not critical,
        "partitions": len(parts),
        "rows": sum(c.get("rows", 0) for c in checked),
        "failures": critical,
        "warnings": [p for p in problems if p not in critical] + [{"where": "dataset", "why": n} for n in notes],
        "facts": facts,
        "seconds": round(time.perf_counter() - started, 2),
    }
    report["quarantined"] = _quarantine(
        settings.quarantine / spec.name / _safe(run_name), dataset, checked, critical, tables
    )
    try:
        report["docs"], report["pages"] = _publish(settings.root, spec, run_name, checked, dataset_results)
    except Exception as exc:  # the verdict stands without its HTML rendering
        log.warning(
            "contract %s: GX data docs not rendered (%s: %s); the results are in %s",
            spec.name,
            type(exc).__name__,
            exc,
            settings.root / spec.name / "runs",
        )
        report["docs"], report["pages"] = "", {}
    runs = {
        id(r): r for c in checked for r in c["results"].values()
    }  # each GX run once, however many partitions it covered
    write_json(
        results_path(settings.root, spec.name, run_name),
        {
            **report,
            "results": {
                "partitions": [{"label": r["label"], **r["result"]} for r in runs.values()],
                "dataset": dataset_results,
            },
        },
    )
    _append(
        history,
        {
            k: report[k]
            for k in ("time", "run", "dataset", "contract", "version", "success", "partitions", "rows", "facts")
        }
        | {"failed": sorted({f"{p.get('expectation')}({', '.join(p.get('columns', []))})" for p in critical})},
    )
    for w in report["warnings"]:
        log.warning("contract %s: %s", spec.name, _describe(w))
    if critical:
        raise ContractError(report)
    log.info(
        "contract %s v%d passed on %s: %d partition(s), %d rows, %.1f s; report %s",
        spec.name,
        spec.version,
        dataset,
        len(parts),
        report["rows"],
        report["seconds"],
        report["docs"],
    )
    return report


# --- the message ------------------------------------------------------------------------
def _describe(p: dict) -> str:
    where = "dataset" if p["where"] == "dataset" else f"partition {p['where']}"
    if p.get("table") and p["where"] == "dataset":
        where += f" (table {p['table']})"
    text = f"{where}: {p.get('why', '')}"
    if p.get("expectation"):
        text += f" [{p['expectation']}"
        text += f" on {', '.join(p['columns'])}]" if p.get("columns") else "]"
    if p.get("unexpected_count") is not None:
        text += f": {p['unexpected_count']} of {p.get('element_count', '?')} rows"
    if p.get("missing"):
        text += f": missing {', '.join(map(str, p['missing']))}"
    elif "observed" in p and p.get("unexpected_count") is None:
        text += f": observed {json.dumps(p['observed'], default=str)}"
    if p.get("details"):
        text += f" {json.dumps(p['details'], default=str)}"
    if p.get("error"):
        text += f"; error: {p['error']}"
    if p.get("examples"):
        text += f"; e.g. {json.dumps(p['examples'], default=str)}"
    if p.get("at"):
        text += f" at {p['key']} " + ", ".join(map(str, p["at"]))
    return text


def format_report(report: dict) -> str:
    lines = [
        f"contract {report['contract']} v{report['version']} FAILED on {report['dataset']} "
        f"({report['partitions']} partition(s), {report['rows']} rows): {len(report['failures'])} failed rule(s)"
    ]
    lines += [f"  - {_describe(p)}" for p in report["failures"][:20]]
    if len(report["failures"]) > 20:
        lines.append(f"  ... and {len(report['failures']) - 20} more (see the report)")
    lines.append(f"  full report (GX data docs): {report.get('docs', '-')}")
    for where, page in list(report.get("pages", {}).items())[:5]:
        lines.append(f"    {where}: {page}")
    if report.get("quarantined"):
        lines.append(f"  failing partitions copied to: {report['quarantined']}")
    return "\n".join(lines)


# --- keeping the run ----------------------------------------------------------------------
def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def results_path(root: Path, contract: str, run_name: str) -> Path:
    """Where the GX results of one validation run are kept (the run reports read them)."""
    return Path(root) / contract / "runs" / f"{_safe(run_name)}.json"


def history_path(settings: ValidationSettings, contract: str) -> Path:
    return settings.root / contract / "history.jsonl"


def read_history(path: Path) -> list[dict]:
    """Every validation kept for a contract, oldest first."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _other_successes(history: Path, dataset: Path) -> list[dict]:
    """The successful validations of other datasets, oldest first."""
    return [e for e in read_history(history) if e.get("success") and e.get("dataset") != str(dataset)]


def _last_of_origin(successes: list[dict], origin: dict | None) -> dict | None:
    """The last of ``successes``; with ``origin``, the last made from the same kind of inputs."""
    if origin is not None:
        successes = [e for e in successes if e.get("facts", {}).get("origin") == origin]
    return successes[-1] if successes else None


def _append(path: Path, entry: dict) -> None:
    """One line per run; a single O_APPEND write, so concurrent runs interleave whole lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(entry, sort_keys=True, default=_plain) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _plain(value):
    return value.tolist() if hasattr(value, "tolist") else str(value)


def _quarantine(target: Path, dataset: Path, checked: list[dict], critical: list[dict], tables: dict) -> str:
    """Copy the failing partitions' files (and those holding repeated identities)."""
    names = {p["where"] for p in critical if p["where"] != "dataset"}
    identity = tables.get("identity")
    if identity is not None and any(p.get("table") == "identity" for p in critical):
        names |= {n.strip() for cell in identity["partitions"] for n in cell.split(",")}
    files = [(c["name"], f) for c in checked if c["name"] in names for f in c["files"]]
    if not files:
        return ""
    for name, f in files:
        destination = target / Path(name).parent / Path(f).name
        destination.parent.mkdir(parents=True, exist_ok=True)
        if Path(f).exists():
            shutil.copy2(f, destination)
    log.warning("copied %d file(s) of %d failing partition(s) of %s to %s", len(files), len(names), dataset, target)
    return str(target)


def _publish(
    root: Path, spec: Contract, run_name: str, checked: list[dict], dataset_results: dict
) -> tuple[str, dict[str, str]]:
    """GX data docs of this run in the shared site: the dataset tables, every
    failing GX run and the first passing ones; the site's index lists every
    run kept so far. Returns the index URL and the page of each failing run
    (a failing run covers one partition, or one table)."""
    gx = import_gx()
    from great_expectations.core import ExpectationSuiteValidationResult
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    root.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(root))
    run_id = RunIdentifier(run_name=_safe(run_name), run_time=dt.datetime.now(dt.UTC))
    runs = {
        id(r): (f"{spec.name}.{table}", r["label"], r["result"]) for c in checked for table, r in c["results"].items()
    }
    results = [r for r in runs.values() if not r[2].get("success")] + [r for r in runs.values() if r[2].get("success")][
        :DOCS_PASSING_PARTITIONS
    ]
    results += [(f"{spec.name}.{table}", f"dataset-{table}", r) for table, r in dataset_results.items()]
    keys = []
    for suite, batch, result in results:
        key = ValidationResultIdentifier(ExpectationSuiteIdentifier(suite), run_id, _safe(batch))
        context.validation_results_store.set(key, ExpectationSuiteValidationResult(**result))
        keys.append(key)
    sites = context.build_data_docs(resource_identifiers=keys)
    index = next(iter(sites.values())) if sites else ""
    site = Path(index.removeprefix("file://")).parent
    pages = {}
    for suite, batch, result in results:
        if not result.get("success"):
            found = sorted(
                site.glob(f"validations/{suite.replace('.', '/')}/{_safe(run_id.run_name)}/*/{_safe(batch)}.html")
            )
            if found:
                pages[batch.removeprefix("dataset-")] = f"file://{found[-1]}"
    return index, pages
