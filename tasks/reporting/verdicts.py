"""The data contracts' verdicts on one run's datasets, for the report pages.

Every validation leaves a line in ``<validation>/<contract>/history.jsonl`` and
its GX results in ``<validation>/<contract>/runs/<validation run>.json``
(tasks.contracts.validation). Here they are read back for the datasets that
lie under one run directory and folded into one row per rule: how many
suite runs checked it, how many failed, and why the rule exists.
"""

from __future__ import annotations

import json
from pathlib import Path

from tasks.contracts.validation import results_path

CONTRACT_ORDER = ("ingested_events", "prepared", "feeds", "predictions")
"""Pipeline order; other contracts follow by name."""


def run_verdicts(validation_root: Path, run_dir: Path) -> list[dict]:
    """The last validation of every dataset under ``run_dir``, pipeline order."""
    run_dir = Path(run_dir).resolve()
    found = []
    if not Path(validation_root).is_dir():
        return found
    contracts = sorted(
        (p for p in Path(validation_root).iterdir() if (p / "history.jsonl").exists()),
        key=lambda p: (CONTRACT_ORDER.index(p.name) if p.name in CONTRACT_ORDER else len(CONTRACT_ORDER), p.name),
    )
    for folder in contracts:
        last: dict[str, dict] = {}
        for line in (folder / "history.jsonl").read_text().splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            if Path(entry["dataset"]).resolve().is_relative_to(run_dir):
                last[entry["dataset"]] = entry  # a re-validated dataset: the newest verdict counts
        for dataset, entry in last.items():
            details = results_path(validation_root, folder.name, entry["run"])
            report = json.loads(details.read_text()) if details.exists() else {}
            found.append(
                {
                    "contract": entry["contract"],
                    "version": entry.get("version"),
                    "dataset": str(Path(dataset).resolve().relative_to(run_dir)),
                    "success": entry["success"],
                    "partitions": entry.get("partitions"),
                    "rows": entry.get("rows"),
                    "failed": entry.get("failed", []),
                    "rules": rules_of(report.get("results", {})),
                    "warnings": [w.get("why", "") for w in report.get("warnings", [])],
                    "docs": report.get("docs", ""),
                    "time": entry.get("time"),
                }
            )
    return found


def rules_of(results: dict) -> list[dict]:
    """One row per rule (suite, expectation, column) over every GX run of a validation."""
    suites = list(results.get("partitions", [])) + list(results.get("dataset", {}).values())
    rules: dict[tuple, dict] = {}
    for suite in suites:
        for r in suite.get("results", []):
            config = r["expectation_config"]
            kwargs = config.get("kwargs", {})
            column = kwargs.get("column") or ", ".join(v for k, v in kwargs.items() if k.startswith("column_"))
            key = (suite.get("suite_name", ""), config["type"], column)
            rule = rules.setdefault(
                key,
                {
                    "suite": key[0],
                    "expectation": key[1],
                    "column": column,
                    "why": config.get("meta", {}).get("why", ""),
                    "severity": config.get("severity", "critical"),
                    "checked": 0,
                    "failed": 0,
                },
            )
            rule["checked"] += 1
            rule["failed"] += 0 if r.get("success") else 1
    return list(rules.values())
