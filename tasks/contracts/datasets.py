"""Where each contract's partitions are, how one is checked, and the small
tables combined from all of them.

One adapter per dataset kind (the contract's name): ``partitions`` lists the
files of a dataset as units of work, ``view`` turns one into the tables GX
checks (tasks/contracts/views.py), and ``tables`` builds the dataset-level
tables from the partitions' facts, e.g. events per class, identities seen in
both splits, the cutflow against the previous successful run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tasks.contracts import views
from tasks.core import schema
from tasks.core.errors import SettingsError
from tasks.core.storage import read_json


@dataclass(frozen=True)
class Partition:
    """One unit of validation: a file (or a TFRecord shard and its Parquet shard)."""

    name: str  # relative to the dataset: what messages and the quarantine use
    files: tuple[str, ...]
    split: str | None = None
    options: dict = field(default_factory=dict)


def _summary(dataset: Path, what: str) -> dict:
    path = dataset / "_summary.json"
    if not path.is_file():
        raise SettingsError(f"{dataset} is not {what}: {path.name} is missing")
    return read_json(path)


def origin(kind: str, dataset: Path) -> dict | None:
    """What an ingested dataset's inputs are: their source kind and, for a
    generated sample, its generator and pileup (None for other contracts).
    The cutflow drift check compares datasets of one origin only: a Pythia
    sample's selection efficiencies are not the toy's, nor NanoAOD's Delphes'."""
    if kind != "ingested_events":
        return None
    from tasks.generator.generate import MANIFEST

    summary = _summary(Path(dataset), "an ingested dataset")
    roots = {Path(f).parent.parent for s in summary.get("samples", {}).values() for f in s.get("files", [])}
    generated = set()
    for root in roots:
        if (root / MANIFEST).is_file():
            request = read_json(root / MANIFEST).get("request", {})
            generated.add(f"{request.get('generator', 'toy')} pileup {request.get('pileup', 0)}")
    out = {"source": summary.get("source", "delphes")}
    if generated:
        out["generated"] = sorted(generated)
    return out


def _need(dataset: Path) -> Path:
    dataset = Path(dataset)
    if not dataset.exists():
        raise SettingsError(f"dataset {dataset} does not exist")
    return dataset


# --- partitions -----------------------------------------------------------------------
def partitions(kind: str, dataset: Path, parameters: dict) -> list[Partition]:
    dataset = _need(dataset)
    if kind == "ingested_events":
        labels = {name: s["label"] for name, s in _summary(dataset, "an ingested dataset").get("samples", {}).items()}
        return [Partition(p.name, (str(p),), options={"labels": labels}) for p in sorted(dataset.glob("*.parquet"))]
    if kind == "prepared":
        _summary(dataset, "a prepared dataset")
        return [
            Partition(f"{split}/{p.name}", (str(p),), split)
            for split in ("train", "test")
            for p in sorted((dataset / split).glob("*.parquet"))
        ]
    if kind == "feeds":
        from tasks.datasets.feeds import HLF_FEED

        prepared = Path(_summary(dataset, "a TFRecord feed")["prepared"])
        out = []
        for split in ("train", "test"):
            for shard in sorted((dataset / split).glob("*.tfrecord*")):
                name = shard.name.split(".")[0] + ".parquet"
                files = (str(shard), str(prepared / split / name), str(dataset / HLF_FEED / split / name))
                out.append(Partition(f"{split}/{shard.name}", files, split, dict(parameters)))
        return out
    if kind == "predictions":
        files = [dataset] if dataset.is_file() else sorted(dataset.glob("*.parquet"))
        return [Partition(p.name, (str(p),)) for p in files]
    raise SettingsError(f"no dataset adapter for contract {kind!r}")


def view(kind: str, partition: Partition) -> views.PartitionView:
    if kind == "ingested_events":
        return views.ingested_view(partition.files[0], partition.options.get("labels"))
    if kind == "prepared":
        return views.prepared_view(partition.files[0])
    if kind == "feeds":
        return views.feeds_view(
            *partition.files,
            partition.options.get("sample_rows_per_shard", 16),
            partition.options.get("sample_seed", 0),
        )
    return views.predictions_view(partition.files[0])


# --- dataset-level tables ------------------------------------------------------------------
def tables(
    kind: str, dataset: Path, checked: list[dict], parameters: dict, previous: dict | None
) -> tuple[dict, dict, list[str]]:
    """(tables for the dataset suites, facts to keep in the history, notes).

    ``checked``: per partition, its name, split and facts; ``previous``: the
    history entry of the last successful run of this contract on another
    dataset, if any."""
    import pandas as pd

    dataset = Path(dataset)
    if kind == "ingested_events":
        per_class = _sum_classes(c["facts"] for c in checked)
        classes = pd.DataFrame(
            {
                "label": range(len(schema.CLASS_NAMES)),
                "class": schema.CLASS_NAMES,
                "events": [per_class[n] for n in schema.CLASS_NAMES],
            }
        )
        cutflow = {
            s: {"read": c["read"], "written": c["written"]}
            for s, c in _summary(dataset, "an ingested dataset")["cutflow"].items()
        }
        table, notes = _cutflow_table(
            cutflow, (previous or {}).get("facts", {}).get("cutflow"), parameters.get("cutflow_sigma_floor", 0.002)
        )
        return {"classes": classes, "cutflow": table}, {"per_class": per_class, "cutflow": cutflow}, notes
    if kind == "prepared":
        summary = _summary(dataset, "a prepared dataset")
        by_split = {s: _sum_classes(c["facts"] for c in checked if c["split"] == s) for s in ("train", "test")}
        target = float(summary.get("settings", {}).get("test_fraction", 0.2))
        rows = []
        for name in schema.CLASS_NAMES:
            train, test = by_split["train"][name], by_split["test"][name]
            total = train + test
            # prepare.py puts round(test_fraction × class count) events in test: half an event of slack
            slack = 0.5 / total if total else 0.0
            deviation = max(0.0, abs(test / total - target) - slack) if total else 0.0
            rows.append(
                {
                    "class": name,
                    "train_events": train,
                    "test_events": test,
                    "total_events": total,
                    "test_fraction_deviation": deviation,
                }
            )
        identity = _repeated_identities(checked)
        return (
            {"classes": pd.DataFrame(rows), "identity": identity},
            {"per_class": by_split, "repeated_identities": len(identity)},
            [],
        )
    if kind == "feeds":
        prepared = _summary(Path(_summary(dataset, "a TFRecord feed")["prepared"]), "a prepared dataset")
        found = {c["name"].split(".")[0]: c["facts"] for c in checked}
        rows = []
        for split in ("train", "test"):
            for shard, events in sorted(prepared[split]["shards"].items()):
                facts = found.get(shard.split(".")[0], {})
                rows.append(
                    {
                        "shard": shard,
                        "prepared_rows": events,
                        "petastorm_rows": facts.get("petastorm_rows", 0),
                        "tfrecord_rows": facts.get("tfrecord_rows", 0),
                        "hlf_rows": facts.get("hlf_rows", 0),
                    }
                )
        frame = pd.DataFrame(rows, columns=["shard", "prepared_rows", "petastorm_rows", "tfrecord_rows", "hlf_rows"])
        return (
            {"shards": frame},
            {"rows": {s: int(frame[frame.shard.str.startswith(s)].tfrecord_rows.sum()) for s in ("train", "test")}},
            [],
        )
    return {}, {"rows": sum(c["facts"].get("rows", 0) for c in checked)}, []


def _sum_classes(facts) -> dict[str, int]:
    total = dict.fromkeys(schema.CLASS_NAMES, 0)
    for f in facts:
        for name, n in f.get("per_class", {}).items():
            total[name] = total.get(name, 0) + n
    return total


def _cutflow_table(cutflow: dict, previous: dict | None, sigma_floor: float):
    """Per sample: efficiency now and before, and the pull between them."""
    import pandas as pd

    rows, notes = [], []
    if not previous:
        notes.append("no previous successful run of this contract: the cutflow drift check had nothing to compare with")
    for sample, now in sorted(cutflow.items()):
        eff = now["written"] / now["read"] if now["read"] else float("nan")
        row = {
            "sample": sample,
            "read": now["read"],
            "written": now["written"],
            "efficiency": eff,
            "previous_efficiency": None,
            "cutflow_efficiency_pull": None,
        }
        before = (previous or {}).get(sample)
        if before and before.get("read") and now["read"]:
            eff0 = before["written"] / before["read"]
            variance = eff * (1 - eff) / now["read"] + eff0 * (1 - eff0) / before["read"]
            row["previous_efficiency"] = eff0
            row["cutflow_efficiency_pull"] = (eff - eff0) / max(math.sqrt(variance), sigma_floor)
        elif previous:
            notes.append(f"sample {sample}: not in the previous successful run, its cutflow drift is not checked")
        rows.append(row)
    return pd.DataFrame(
        rows, columns=["sample", "read", "written", "efficiency", "previous_efficiency", "cutflow_efficiency_pull"]
    ).astype({"previous_efficiency": "float64", "cutflow_efficiency_pull": "float64"}), notes


def _repeated_identities(checked: list[dict]):
    """Identities (64-bit hashes) seen more than once across all shards, with
    where: in both splits (a leak) or twice in one (a duplicate)."""
    import pandas as pd

    hashes = [c["facts"]["event_hashes"] for c in checked if "event_hashes" in c["facts"]]
    if not hashes:
        return pd.DataFrame(columns=["event_id", "partitions"])
    every = np.concatenate(hashes)
    values, counts = np.unique(every, return_counts=True)
    repeated = values[counts > 1]
    rows = []
    for h in repeated[:1000]:
        where = [c for c in checked if "event_hashes" in c["facts"] and np.isin(h, c["facts"]["event_hashes"])]
        rows.append({"event_id": _identity(h, where[0]["files"][0]), "partitions": ", ".join(c["name"] for c in where)})
    return pd.DataFrame(rows, columns=["event_id", "partitions"])


def _identity(event_hash, path: str) -> str:
    """The event_id behind a hash: read back from the one column of one shard
    (only for the few repeated identities of a failing dataset)."""
    import pyarrow.parquet as pq

    ids = pq.read_table(path, columns=["event_id"]).column("event_id").to_pylist()
    matches = [i for i, h in zip(ids, views.event_hashes(ids), strict=True) if h == event_hash]
    return matches[0] if matches else f"hash {int(event_hash):016x}"
