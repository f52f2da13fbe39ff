"""Contracts as data: loading ``data_contracts/<name>.json`` and running its
Great Expectations suites on pandas tables.

A contract file holds GX 1.x expectation suites (the JSON GX itself writes:
``name``, ``expectations`` of ``type``/``kwargs``/``meta``), one per table the
contract looks at:

- ``schema``: one row per column of a partition (name, type),
- ``partition``: one row per event of a partition (tasks/contracts/views.py),
- any other name: a small table combined from all partitions
  (tasks/contracts/datasets.py), e.g. events per class.

Every expectation carries ``meta.why``: the rule in words, which is what a
failure message leads with. ``meta.splits`` limits an expectation to the
partitions of those splits.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.core.errors import SettingsError
from tasks.core.settings import REPO_ROOT

log = logging.getLogger(__name__)

CONTRACTS_DIR = Path(os.environ.get("TOPO_CONTRACTS_DIR") or REPO_ROOT / "data_contracts")

RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 5}
"""Enough of each failure to name it (counts, five example values), small
enough to send back from a worker and keep for every run."""


@dataclass(frozen=True)
class Contract:
    name: str
    version: int
    description: str
    suites: dict[str, dict]
    parameters: dict[str, Any]
    path: Path

    def expectations(self, table: str, split: str | None = None) -> list[dict]:
        """The expectations of one table, those limited to other splits left out."""
        return [
            e
            for e in self.suites[table]["expectations"]
            if split is None or split in e.get("meta", {}).get("splits", [split])
        ]


def available() -> list[str]:
    return sorted(p.stem for p in CONTRACTS_DIR.glob("*.json"))


def load_contract(name: str) -> Contract:
    """The contract ``name`` (a file in data_contracts/, or a path to one)."""
    path = Path(name) if name.endswith(".json") else CONTRACTS_DIR / f"{name}.json"
    if not path.is_file():
        raise SettingsError(
            f"no data contract {name!r}: {path} does not exist; the contracts are {', '.join(available())}"
        )
    try:
        doc = json.loads(path.read_text())
        suites = doc["suites"]
        for table, suite in suites.items():
            for e in suite["expectations"]:
                if not e.get("meta", {}).get("why"):
                    raise ValueError(f"suite {table}: expectation {e['type']} has no meta.why")
        return Contract(
            doc["contract"], int(doc["version"]), doc.get("description", ""), suites, doc.get("parameters", {}), path
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise SettingsError(f"data contract {path} is malformed: {exc}") from None


def import_gx():
    """``great_expectations``, imported so that it works in any process.

    GX imports pyspark, whose ``pyspark.sql.connect.utils`` calls ``sys.exit(0)``
    when ``__main__`` has neither ``__file__`` nor ``__spec__`` (it assumes a
    doctest run): ``python -c`` and some worker processes. ``sys.ps1`` (an
    interactive session) is the one marker it accepts, set only for the import.
    """
    if "great_expectations" in sys.modules:
        return sys.modules["great_expectations"]
    main = sys.modules.get("__main__")
    fake_interactive = (
        main is not None
        and getattr(main, "__spec__", None) is None
        and not hasattr(main, "__file__")
        and not hasattr(sys, "ps1")
    )
    if fake_interactive:
        sys.ps1 = ">>> "
    # Before the import: importing GX logs ~200 INFO lines of its own bookkeeping
    # ("Skipping registering function ...") into every task log that validates.
    for name in ("great_expectations", "great_expectations._docs_decorators"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pyspark's "does not yet fully support pandas >= 3"
            import great_expectations as gx
    finally:
        if fake_interactive:
            del sys.ps1
    return gx


def ephemeral_context():
    """An in-memory GX context without progress bars (they flood task logs)."""
    gx = import_gx()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    # No docs site: GX's default makes a temporary directory per context, never removed.
    config = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False))
    context = gx.get_context(mode="ephemeral", project_config=config)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def run_suite(context, suite_name: str, expectations: list[dict], frame, asset: str, key: str = "event_id") -> dict:
    """Validate ``frame`` (a pandas DataFrame) against ``expectations``; the GX
    validation result as JSON. Failures list the ``key`` of their rows."""
    gx = import_gx()

    suite = gx.ExpectationSuite(name=suite_name, expectations=[dict(e) for e in expectations])
    source = context.data_sources.add_or_update_pandas(f"contract-{suite_name}")
    batch_definition = source.add_dataframe_asset(asset).add_batch_definition_whole_dataframe("whole")
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    result_format = dict(RESULT_FORMAT)
    if key in frame.columns:
        result_format["unexpected_index_column_names"] = [key]  # examples name their events (samples, shards)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = batch.validate(suite, result_format=result_format)
    source.delete_asset(asset)
    return json.loads(json.dumps(result.to_json_dict(), default=str))


def failures(result: dict) -> list[dict]:
    """The failed expectations of a GX result, each as a small dict a person can
    read: rule, expectation, column(s), counts, examples."""
    out = []
    for r in result.get("results", []):
        if r.get("success"):
            continue
        config = r["expectation_config"]
        kwargs = config.get("kwargs", {})
        res = r.get("result") or {}
        columns = [kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs]
        key = (res.get("unexpected_index_column_names") or [None])[0]
        failure = {
            "why": config.get("meta", {}).get("why", ""),
            "expectation": config["type"],
            "columns": columns,
            "severity": config.get("severity", "critical"),
            "unexpected_count": res.get("unexpected_count"),
            "element_count": res.get("element_count"),
            "examples": res.get("partial_unexpected_list", [])[:5],
            "key": key,
            "at": [row.get(key) for row in res.get("partial_unexpected_index_list", [])[:5] if isinstance(row, dict)],
            "missing": res.get("partial_missing_list"),
            "observed": res.get("observed_value"),
            "details": res.get("details"),
        }
        error = _exception_message(r.get("exception_info"))
        if error:
            failure["error"] = error
        out.append({k: v for k, v in failure.items() if v not in (None, [], "")})
    return out


def _exception_message(info) -> str:
    if not isinstance(info, dict):
        return ""
    if info.get("raised_exception"):
        return str(info.get("exception_message", ""))
    for value in info.values():  # keyed by metric when raised while computing one
        if isinstance(value, dict) and value.get("exception_message"):
            return str(value["exception_message"]).splitlines()[0]
    return ""
