"""What a contract sees of one partition: tables GX can check.

GX validates flat pandas columns, while the events carry lists (14 HLF, the
801 × 19 particle rows). Each view therefore turns a partition into

- ``schema``: one row per column, with its Arrow type written the way the
  contracts spell it (``list<float>``, ``fixed_size_list<float>[14]``),
- ``rows``: one row per event: the scalar columns as they are, list columns
  unpacked by name (the 14 HLF) or summarised by a derived check named after
  what it checks (``row0_is_lepton``, ``nonzero_padding_values``),
- ``facts``: small numbers the dataset-level tables are combined from (counts
  per class, event-identity hashes), never the events themselves.

A column missing from the file leaves its derived checks out of ``rows``; the
expectations on them then fail naming the column, as does the schema suite.
Views run on Dask workers and import only numpy, pandas and pyarrow.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tasks.core import schema

TYPE_COLUMNS = ("isChHad", "isNeuHad", "isGamma", "isEle", "isMu")
_COL = {name: i for i, name in enumerate(schema.LLF_COLUMNS)}


@dataclass
class PartitionView:
    schema: pandas.DataFrame  # noqa: F821
    rows: pandas.DataFrame  # noqa: F821
    facts: dict = field(default_factory=dict)


def type_name(arrow_type) -> str:
    """An Arrow type as the contracts write it: dictionaries as their values,
    without field names or nullability."""
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        return type_name(arrow_type.value_type)
    if pa.types.is_fixed_size_list(arrow_type):
        return f"fixed_size_list<{type_name(arrow_type.value_type)}>[{arrow_type.list_size}]"
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return f"list<{type_name(arrow_type.value_type)}>"
    if pa.types.is_large_string(arrow_type):
        return "string"
    return str(arrow_type)


def schema_table(arrow_schema):
    import pandas as pd

    return pd.DataFrame({"column": arrow_schema.names, "type": [type_name(f.type) for f in arrow_schema]})


def event_hashes(ids) -> np.ndarray:
    """64-bit hashes of event identities: what identity checks compare across
    partitions (8 bytes an event travel, not the identities)."""
    return np.frombuffer(b"".join(hashlib.blake2b(i.encode(), digest_size=8).digest() for i in ids), "<u8").astype(
        np.uint64
    )


def _flat(table, column: str, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Values and per-row lengths of a list column (fixed-size or not)."""
    import pyarrow as pa

    array = table.column(column).combine_chunks()
    if pa.types.is_fixed_size_list(array.type):
        lengths = np.full(len(array), array.type.list_size, np.int64)
        values = np.asarray(array.flatten(), dtype)
    else:
        offsets = np.asarray(array.offsets)
        lengths = np.diff(offsets)
        values = np.asarray(array.values, dtype)[offsets[0] : offsets[-1]]
    return values, lengths


def _scalars(table, names) -> dict:
    out = {}
    for name in names:
        if name in table.column_names:
            column = table.column(name)
            out[name] = (
                column.to_pylist()
                if name in ("event_id", "sample")
                else np.asarray(column.to_numpy(zero_copy_only=False))
            )
    return out


def _per_event(values: np.ndarray, lengths: np.ndarray, fn) -> np.ndarray:
    """fn reduced over each event's slice of a flat array (ufunc.reduceat, with
    empty events given the reduction's identity)."""
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    out = np.zeros(len(lengths), values.dtype if fn is not np.add else np.float64)
    nonempty = lengths > 0
    if values.size and nonempty.any():
        out[nonempty] = fn.reduceat(values, starts[nonempty])
    return out


def _non_finite(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """NaN and infinite values per event."""
    return _per_event((~np.isfinite(values)).astype(np.int64), lengths, np.add).astype(np.int64)


def _unpack_hlf(table, column: str, rows: dict) -> np.ndarray:
    """The 14 HLF of list ``column`` as named columns of ``rows`` (when every
    event has 14), and ``<column>_length``; returns non-finite values per event."""
    hlf, lengths = _flat(table, column)
    rows[f"{column}_length"] = lengths
    if (lengths == schema.HLF_FEATURES).all():
        for i, name in enumerate(schema.HLF_COLUMNS):
            rows[name] = hlf.reshape(-1, schema.HLF_FEATURES)[:, i]
    return _non_finite(hlf, lengths)


# --- ingested events -----------------------------------------------------------
def ingested_view(path: str | Path, labels: dict[str, int] | None = None) -> PartitionView:
    """``labels``: sample name → label, from the ingestion summary (default:
    the class names of schema.py)."""
    import pandas as pd
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    rows = _scalars(table, ("event_id", "sample", "entry", "label", "n_tracks", "n_photons", "n_neutrals"))
    n = table.num_rows
    non_finite = np.zeros(n, np.int64)
    if "hfeatures" in table.column_names:
        non_finite += _unpack_hlf(table, "hfeatures", rows)
    if "lfeatures" in table.column_names:
        llf, lengths = _flat(table, "lfeatures")
        non_finite += _non_finite(llf, lengths)
        whole = lengths % schema.LLF_FEATURES == 0
        rows["lfeatures_whole_rows"] = whole
        rows["llf_rows"] = lengths / schema.LLF_FEATURES
        if whole.all():
            rows.update(_particle_checks(llf.reshape(-1, schema.LLF_FEATURES), lengths // schema.LLF_FEATURES))
            if {"n_tracks", "n_photons", "n_neutrals"} <= set(rows):
                counts = 1 + rows["n_tracks"].astype(np.int64) + rows["n_photons"] + rows["n_neutrals"]
                rows["llf_rows_match_counts"] = counts == lengths // schema.LLF_FEATURES
    rows["non_finite_values"] = non_finite
    if "sample" in rows and "label" in rows:
        labels = labels or schema.LABELS
        expected = [labels.get(s, -1) for s in rows["sample"]]
        rows["sample_matches_label"] = np.asarray(expected) == rows["label"]
    facts = {"rows": n}
    if "label" in rows:
        facts["per_class"] = {name: int((rows["label"] == c).sum()) for c, name in enumerate(schema.CLASS_NAMES)}
    return PartitionView(schema_table(table.schema), pd.DataFrame(rows), facts)


def _particle_checks(particles: np.ndarray, n_rows: np.ndarray) -> dict:
    """Per-event checks of the low-level rows: the lepton in row 0, one-hot
    particle types, angular ranges."""
    first = np.concatenate([[0], np.cumsum(n_rows)[:-1]]).astype(np.int64)
    has_rows = n_rows > 0
    safe_first = np.minimum(first, max(len(particles) - 1, 0))
    lepton = particles[safe_first] if len(particles) else np.zeros((len(n_rows), schema.LLF_FEATURES), np.float32)
    types = particles[:, [_COL[c] for c in TYPE_COLUMNS]]
    one_hot = np.isin(types, (0.0, 1.0)).all(axis=1) & (types.sum(axis=1) == 1)
    nan = np.where(has_rows, 0.0, np.nan)  # an event without rows has no lepton
    return {
        "row0_is_lepton": has_rows & ((lepton[:, _COL["isEle"]] + lepton[:, _COL["isMu"]]) == 1),
        "lepton_pt": lepton[:, _COL["Pt"]] + nan,
        "lepton_isolation": lepton[:, _COL["ChPFIso"]]
        + lepton[:, _COL["GammaPFIso"]]
        + lepton[:, _COL["NeuPFIso"]]
        + nan,
        "particle_type_one_hot": _per_event((~one_hot).astype(np.int64), n_rows, np.add) == 0,
        "particle_abs_eta_max": _per_event(np.abs(particles[:, _COL["Eta"]]), n_rows, np.maximum),
        "particle_abs_phi_max": _per_event(np.abs(particles[:, _COL["Phi"]]), n_rows, np.maximum),
    }


# --- prepared shards ---------------------------------------------------------------
def prepared_view(path: str | Path) -> PartitionView:
    import pandas as pd
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    n = table.num_rows
    rows = _scalars(table, ("event_id", "label", "n_particles"))
    non_finite = np.zeros(n, np.int64)
    if "HLF_input" in table.column_names:
        non_finite += _unpack_hlf(table, "HLF_input", rows)
    if "GRU_input" in table.column_names:
        gru, lengths = _flat(table, "GRU_input")
        rows["GRU_input_length"] = lengths
        non_finite += _non_finite(gru, lengths)
        size = schema.LLF_ROWS * schema.LLF_FEATURES
        if (lengths == size).all() and "n_particles" in rows:
            matrix = gru.reshape(n, schema.LLF_ROWS, schema.LLF_FEATURES)
            real = np.arange(schema.LLF_ROWS)[None, :] < rows["n_particles"][:, None].astype(np.int64)
            row_nonzero = (matrix != 0).any(axis=2)
            rows["nonzero_padding_values"] = ((matrix != 0) & ~real[:, :, None]).sum(axis=(1, 2))
            rows["empty_particle_rows"] = (real & ~row_nonzero).sum(axis=1)
    if "encoded_label" in table.column_names and "label" in rows:
        onehot, lengths = _flat(table, "encoded_label")
        non_finite += _non_finite(onehot, lengths)
        k = len(schema.CLASS_NAMES)
        if (lengths == k).all():
            expected = np.eye(k, dtype=np.float32)[np.clip(rows["label"].astype(np.int64), 0, k - 1)]
            rows["encoded_label_matches_label"] = (
                (onehot.reshape(n, k) == expected).all(axis=1) & (rows["label"] >= 0) & (rows["label"] < k)
            )
        else:
            rows["encoded_label_matches_label"] = np.zeros(n, bool)
    rows["non_finite_values"] = non_finite
    facts = {"rows": n}
    if "label" in rows:
        facts["per_class"] = {name: int((rows["label"] == c).sum()) for c, name in enumerate(schema.CLASS_NAMES)}
    if "event_id" in rows:
        facts["event_hashes"] = np.sort(event_hashes(rows["event_id"]))
    return PartitionView(schema_table(table.schema), pd.DataFrame(rows), facts)


# --- feeds: a TFRecord shard and an HLF-only shard against their Parquet shard ---------
def feeds_view(
    tfrecord: str | Path, parquet: str | Path, hlf: str | Path, sample_rows: int, seed: int
) -> PartitionView:
    """Counts every record of the TFRecord shard and every row of the HLF-only
    shard, and compares a seeded sample of them (always the first and the
    last) with the Parquet rows at the same positions. A missing HLF-only
    shard counts 0 rows."""
    import pandas as pd
    import pyarrow.parquet as pq

    from tasks.datasets.feeds import iter_records, parse_example

    parquet_file = pq.ParquetFile(parquet)
    n_parquet = parquet_file.metadata.num_rows
    rng = np.random.default_rng([seed, n_parquet])
    wanted = {0, max(n_parquet - 1, 0)} | set(
        rng.choice(n_parquet, min(sample_rows, n_parquet), replace=False).tolist() if n_parquet else []
    )
    sampled, n_records = {}, 0
    for i, record in enumerate(iter_records(tfrecord)):
        if i in wanted:
            sampled[i] = parse_example(record)
        n_records += 1
    kinds = {}
    for example in sampled.values():
        kinds.update({name: kind for name, (kind, _) in example.items()})
    positions = sorted(p for p in sampled if p < n_parquet)
    table = (
        parquet_file.read(columns=["event_id", "HLF_input", "GRU_input", "encoded_label"]).take(positions)
        if positions
        else None
    )
    compared = ("event_id", "HLF_input", "encoded_label")
    hlf_rows, in_hlf = 0, {}
    if Path(hlf).exists():
        hlf_file = pq.ParquetFile(hlf)
        hlf_rows = hlf_file.metadata.num_rows
        there = [p for p in positions if p < hlf_rows]
        found = hlf_file.read(columns=list(compared)).take(there).to_pylist() if there else []
        in_hlf = dict(zip(there, found, strict=True))
    rows = {
        "position": positions,
        "event_id": [],
        "same_in_hlf_feed": [],
        "same_event_id": [],
        "same_HLF_input": [],
        "same_GRU_input": [],
        "same_encoded_label": [],
    }
    for j, p in enumerate(positions):
        example = sampled[p]
        expected_id = table.column("event_id")[j].as_py()
        rows["event_id"].append(expected_id)
        got_id = example.get("event_id", ("", [b""]))[1]
        rows["same_event_id"].append(bool(got_id) and got_id[0].decode() == expected_id)
        for name in ("HLF_input", "GRU_input", "encoded_label"):
            want = np.asarray(table.column(name)[j].values, np.float32)
            got = np.asarray(example.get(name, ("", np.zeros(0, np.float32)))[1], np.float32)
            if name == "GRU_input":  # TFRecord keeps the real rows; the rest must be zero padding
                same = got.size <= want.size and np.array_equal(got, want[: got.size]) and not want[got.size :].any()
            else:
                same = np.array_equal(got, want)
            rows[f"same_{name}"].append(bool(same))
        rows["same_in_hlf_feed"].append(in_hlf.get(p) == {c: table.column(c)[j].as_py() for c in compared})
    schema_frame = pd.DataFrame({"column": list(kinds), "type": list(kinds.values())})
    return PartitionView(
        schema_frame,
        pd.DataFrame(rows),
        {"rows": n_records, "tfrecord_rows": n_records, "petastorm_rows": n_parquet, "hlf_rows": hlf_rows},
    )


# --- predictions ---------------------------------------------------------------------
def predictions_view(path: str | Path) -> PartitionView:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    frame = table.to_pandas()
    probabilities = [f"p_{name}" for name in schema.CLASS_NAMES]
    if set(probabilities) <= set(frame.columns):
        frame["probability_sum"] = frame[probabilities].astype("float64").sum(axis=1, skipna=False)
    return PartitionView(schema_table(table.schema), frame, {"rows": table.num_rows})
