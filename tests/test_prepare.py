"""Preparation (docs/spec.md step 4): balance, split, scale, order, on Dask."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from tasks.core import schema
from tasks.core.errors import SettingsError
from tasks.datasets.prepare import PrepareError, PrepareSettings, load_prepared, order_particles, prepare
from tasks.datasets.scaling import Scaler, ScalerError
from tasks.events.ingest import read_lfeatures

ETA, PHI = schema.LLF_COLUMNS.index("Eta"), schema.LLF_COLUMNS.index("Phi")


def split_table(out, split):
    return pq.read_table(out / split)


def ingested_by_id(ingested_events):
    table = pq.read_table(ingested_events)
    llf, offsets = read_lfeatures(table.column("lfeatures"))
    hlf = np.asarray(table.column("hfeatures").combine_chunks().values, np.float32).reshape(-1, schema.HLF_FEATURES)
    return {e: (hlf[i], llf[offsets[i] : offsets[i + 1]]) for i, e in enumerate(table.column("event_id").to_pylist())}


def test_classes_balanced_and_splits_disjoint(prepared, ingested_events):
    out, summary, settings = prepared
    labels = pq.read_table(ingested_events, columns=["label"]).column("label").to_numpy()
    smallest = int(np.bincount(labels).min())
    assert summary["kept_per_class"] == smallest
    assert summary["test_per_class"] == round(smallest * settings.test_fraction)
    train, test = split_table(out, "train"), split_table(out, "test")
    for table, per_class in ((train, smallest - summary["test_per_class"]), (test, summary["test_per_class"])):
        assert np.bincount(table.column("label").to_numpy(), minlength=3).tolist() == [per_class] * 3
    train_ids, test_ids = set(train.column("event_id").to_pylist()), set(test.column("event_id").to_pylist())
    assert len(train_ids) == train.num_rows and not train_ids & test_ids
    assert summary["train"]["events"] == train.num_rows and summary["test"]["events"] == test.num_rows
    assert len(summary["train"]["shards"]) > 1  # the fixture asks for several shards
    onehot = np.asarray(train.column("encoded_label").combine_chunks().values).reshape(-1, 3)
    np.testing.assert_array_equal(onehot.argmax(axis=1), train.column("label").to_numpy())
    assert onehot.sum() == train.num_rows


def test_train_is_shuffled_across_inputs(prepared):
    out, _, _ = prepared
    first = pq.read_table(sorted((out / "train").glob("*.parquet"))[0])
    samples = [e.split("/")[0] for e in first.column("event_id").to_pylist()]
    assert len(set(samples)) == 3, "a shard mixes every class"
    changes = sum(a != b for a, b in zip(samples, samples[1:], strict=False))
    assert changes > len(samples) // 3, f"classes come in runs, not shuffled: {samples}"


def test_scaler_is_fitted_on_train_only(prepared, ingested_events):
    out, summary, _ = prepared
    _, scaler = load_prepared(out)
    raw = ingested_by_id(ingested_events)
    train_ids = split_table(out, "train").column("event_id").to_pylist()
    hlf = np.stack([raw[e][0] for e in train_ids])
    np.testing.assert_allclose(scaler.hlf_min, hlf.min(axis=0))
    np.testing.assert_allclose(scaler.hlf_max, hlf.max(axis=0))
    rows = np.concatenate([raw[e][1] for e in train_ids]).astype(np.float64)
    np.testing.assert_allclose(scaler.llf_mean, rows.mean(axis=0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(scaler.llf_std, rows.std(axis=0), rtol=1e-9, atol=1e-9)
    hlf_scaled = np.asarray(split_table(out, "train").column("HLF_input").combine_chunks().values).reshape(-1, 14)
    assert hlf_scaled.min() >= 0.0 and hlf_scaled.max() <= 1.0 + 1e-6
    assert scaler.n_events == summary["train"]["events"] == len(train_ids)


def test_gru_rows_ordered_by_delta_r_padding_zero_at_the_end(prepared, ingested_events):
    out, _, _ = prepared
    _, scaler = load_prepared(out)
    raw = ingested_by_id(ingested_events)
    table = split_table(out, "test")
    gru = np.asarray(table.column("GRU_input").combine_chunks().values).reshape(
        -1, schema.LLF_ROWS, schema.LLF_FEATURES
    )
    for event_id, n, matrix in zip(
        table.column("event_id").to_pylist(), table.column("n_particles").to_pylist(), gru, strict=True
    ):
        assert np.all(matrix[n:] == 0.0) and not np.any(np.all(matrix[:n] == 0.0, axis=1))
        real = matrix[:n].astype(np.float64) * np.where(scaler.llf_std > 0, scaler.llf_std, 1) + scaler.llf_mean
        original = raw[event_id][1]
        lepton = original[0]
        dphi = np.mod(real[:, PHI] - lepton[PHI] + np.pi, 2 * np.pi) - np.pi
        delta_r = np.hypot(real[:, ETA] - lepton[ETA], dphi)
        assert np.all(np.diff(delta_r) <= 1e-4), f"{event_id}: not in decreasing ΔR"
        np.testing.assert_allclose(real[-1], lepton, rtol=1e-4, atol=1e-3)  # ΔR = 0: the lepton comes last
        # The same particles, reordered.
        np.testing.assert_allclose(np.sort(real[:, 4]), np.sort(original[:, 4].astype(np.float64)), rtol=1e-4)


def test_order_particles_breaks_ties_by_original_order():
    rows = np.zeros((4, schema.LLF_FEATURES), np.float32)
    rows[:, ETA] = [0.0, 1.0, -1.0, 0.5]  # rows 1 and 2 tie at ΔR = 1
    assert order_particles(rows, np.array([0, 4])).tolist() == [1, 2, 3, 0]


def test_dev_subsets_are_the_first_rows(prepared):
    out, summary, settings = prepared
    dev = pq.read_table(out / "dev" / "train.parquet")
    assert dev.num_rows == summary["dev"]["train"] == settings.dev_train_events
    first_shard = pq.read_table(sorted((out / "train").glob("*.parquet"))[0])
    assert dev.column("event_id").to_pylist() == first_shard.column("event_id").to_pylist()[: dev.num_rows]
    assert pq.read_table(out / "dev" / "test.parquet").num_rows == settings.dev_test_events


def test_same_inputs_same_bytes_other_seed_other_split(prepared, ingested_events, dask_client, tmp_path):
    out, _, settings = prepared
    again = prepare(ingested_events, tmp_path / "again", dask_client, settings)
    for path in sorted(p.relative_to(out) for p in out.rglob("*.parquet")) + [out / "scaler.json"]:
        assert (out / path).read_bytes() == (tmp_path / "again" / path).read_bytes(), path
    assert again["scaler"] == load_prepared(out)[0]["scaler"]
    other = prepare(ingested_events, tmp_path / "other", dask_client, PrepareSettings(seed=4, shard_events=12))
    assert set(split_table(tmp_path / "other", "test").column("event_id").to_pylist()) != set(
        split_table(out, "test").column("event_id").to_pylist()
    )
    assert other["kept_per_class"] == again["kept_per_class"]


def test_missing_empty_or_one_sided_inputs_fail_without_touching_the_output(ingested_events, dask_client, tmp_path):
    output = tmp_path / "prepared"
    output.mkdir()
    (output / "keep.txt").write_text("previous good output")
    with pytest.raises(PrepareError, match="does not exist"):
        prepare(tmp_path / "nowhere", output, dask_client)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PrepareError, match="no Parquet parts"):
        prepare(tmp_path / "empty", output, dask_client)
    no_wjets = tmp_path / "no_wjets"
    no_wjets.mkdir()
    for part in ingested_events.glob("part-*.parquet"):
        if "wjets" not in part.name:
            shutil.copy(part, no_wjets)
    with pytest.raises(PrepareError, match="wjets"):
        prepare(no_wjets, output, dask_client)
    assert [p.name for p in output.iterdir()] == ["keep.txt"]
    with pytest.raises(SettingsError, match="test_fraction"):
        PrepareSettings(test_fraction=1.5)


def test_scaler_artifact_must_match_the_data(prepared, ingested_events, dask_client, tmp_path):
    out, _, _ = prepared
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    text = (copy / "scaler.json").read_text()
    (copy / "scaler.json").write_text(text.replace('"n_events": ', '"n_events": 1', 1))
    with pytest.raises(ScalerError, match="does not match its sha256"):
        load_prepared(copy)
    other = prepare(ingested_events, tmp_path / "other", dask_client, PrepareSettings(seed=9, shard_events=50))
    shutil.copy(tmp_path / "other" / "scaler.json", copy / "scaler.json")
    with pytest.raises(ScalerError, match="not the one the data was prepared with"):
        load_prepared(copy)
    assert Scaler.load(tmp_path / "other" / "scaler.json").sha256 == other["scaler"]["sha256"]
    with pytest.raises(ScalerError, match="not found"):
        Scaler.load(tmp_path / "missing.json")
