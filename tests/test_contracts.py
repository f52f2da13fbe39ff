"""Data contracts: real Great Expectations validations, on the Dask workers, of
real datasets, and of copies broken on purpose one way at a time."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.contracts import ContractError, ValidationSettings, available, load_contract, validate
from tasks.core import schema
from tasks.core.errors import SettingsError

HLF_MET = schema.HLF_COLUMNS.index("MET")


@pytest.fixture(scope="module")
def tfrecords(prepared, dask_client, tmp_path_factory):
    from tasks.datasets.feeds import write_feeds

    out = tmp_path_factory.mktemp("feeds") / "tfrecord"
    write_feeds(prepared[0], out, dask_client, compression="gzip")
    return out


def settings(tmp_path, run="run"):
    return ValidationSettings.under(tmp_path / "data", run_name=run)


def digest(directory):
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())).hexdigest()


def copy_dataset(source, tmp_path, name="copy"):
    target = tmp_path / name
    shutil.copytree(source, target)
    return target


def rewrite(part, change):
    """Replace a Parquet file with ``change(table)``."""
    table = pq.read_table(part)
    pq.write_table(change(table), part)


def set_list_value(table, column, row, index, value):
    """The table with element ``index`` of row ``row``'s list in ``column`` set to ``value``."""
    array = table.column(column).combine_chunks()
    values = np.asarray(
        array.values if not pa.types.is_fixed_size_list(array.type) else array.flatten(), np.float32
    ).copy()
    start = row * array.type.list_size if pa.types.is_fixed_size_list(array.type) else array.offsets[row].as_py()
    values[start + index] = value
    if pa.types.is_fixed_size_list(array.type):
        new = pa.FixedSizeListArray.from_arrays(pa.array(values), array.type.list_size)
    else:
        new = pa.ListArray.from_arrays(array.offsets, pa.array(values, array.type.value_type))
    return table.set_column(table.column_names.index(column), column, new)


def expect_failure(contract, dataset, tmp_path, client=None, run="run") -> ContractError:
    with pytest.raises(ContractError) as info:
        validate(contract, dataset, settings(tmp_path, run), client)
    return info.value


# --- what a passing validation leaves -------------------------------------------------
def test_contracts_are_gx_suites_stored_as_data():
    from tasks.contracts.suites import import_gx

    gx = import_gx()

    assert available() == ["feeds", "ingested_events", "predictions", "prepared"]
    for name in available():
        contract = load_contract(name)
        for table, suite in contract.suites.items():
            built = gx.ExpectationSuite(name=suite["name"], expectations=suite["expectations"])
            assert len(built.expectations) == len(suite["expectations"]) > 0, (name, table)


def test_every_stage_output_passes_and_the_run_is_kept(ingested_events, prepared, tfrecords, dask_client, tmp_path):
    before = {p: digest(p) for p in (ingested_events, prepared[0], tfrecords)}
    reports = [
        validate(c, d, settings(tmp_path, f"good-{c}"), dask_client)
        for c, d in (("ingested_events", ingested_events), ("prepared", prepared[0]), ("feeds", tfrecords))
    ]
    assert [r["success"] for r in reports] == [True] * 3
    assert reports[0]["rows"] == pq.read_table(ingested_events).num_rows
    assert reports[1]["rows"] == prepared[1]["train"]["events"] + prepared[1]["test"]["events"]
    assert reports[2]["rows"] == reports[1]["rows"]  # every TFRecord record was counted
    assert reports[0]["partitions"] == len(list(ingested_events.glob("*.parquet"))) > 1
    # No history yet: the cutflow drift check says it had nothing to compare with.
    assert any("no previous successful run" in w["why"] for w in reports[0]["warnings"])
    root = tmp_path / "data" / "validation"
    for r in reports:
        history = [json.loads(line) for line in (root / r["contract"] / "history.jsonl").read_text().splitlines()]
        assert history[-1]["success"] and history[-1]["dataset"] == r["dataset"]
        assert (root / r["contract"] / "runs" / f"good-{r['contract']}.json").exists()
    index = root / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    assert reports[0]["docs"] == f"file://{index}" and "ingested_events.partition" in index.read_text()
    assert not (tmp_path / "data" / "quarantine").exists()
    assert {p: digest(p) for p in before} == before  # validation never touches the data


# --- ingested events, broken one way at a time -------------------------------------------
def first_part(dataset):
    return sorted(dataset.glob("*.parquet"))[0]


def test_nan_in_one_hlf_fails_naming_column_partition_and_event(ingested_events, tmp_path):
    broken = copy_dataset(ingested_events, tmp_path)
    part = first_part(broken)
    event_id = pq.read_table(part).column("event_id")[0].as_py()
    rewrite(part, lambda t: set_list_value(t, "hfeatures", 0, HLF_MET, np.nan))
    error = expect_failure("ingested_events", broken, tmp_path)
    message = str(error)
    assert "expect_column_values_to_not_be_null on MET" in message and part.name in message and event_id in message
    assert "non_finite_values" in message and "no NaN or infinity" in message
    assert {p["where"] for p in error.report["failures"]} == {part.name}
    quarantined = tmp_path / "data" / "quarantine" / "ingested_events" / "run" / part.name
    assert quarantined.read_bytes() == part.read_bytes()
    assert not json.loads((tmp_path / "data" / "validation" / "ingested_events" / "history.jsonl").read_text())[
        "success"
    ]


def test_wrong_label_fails(ingested_events, tmp_path):
    broken = copy_dataset(ingested_events, tmp_path)
    part = first_part(broken)
    rewrite(
        part,
        lambda t: t.set_column(
            t.column_names.index("label"), "label", pa.array([7] + t.column("label").to_pylist()[1:], pa.int8())
        ),
    )
    message = str(expect_failure("ingested_events", broken, tmp_path))
    assert "label is 0 QCD, 1 ttbar or 2 W+jets [expect_column_values_to_be_in_set on label]: 1 of" in message
    assert "e.g. [7]" in message


def test_missing_column_fails_the_schema(ingested_events, tmp_path):
    broken = copy_dataset(ingested_events, tmp_path)
    part = first_part(broken)
    rewrite(part, lambda t: t.drop(["hfeatures"]))
    error = expect_failure("ingested_events", broken, tmp_path)
    schema_failures = [f for f in error.report["failures"] if f.get("table") == "schema"]
    assert schema_failures and schema_failures[0]["missing"] == ["hfeatures"]
    assert "missing hfeatures" in str(error)
    assert "every column of schema.EVENT_COLUMNS is present" in str(error)
    assert all(f["where"] == part.name for f in error.report["failures"])


def test_broken_selection_fails(ingested_events, tmp_path):
    """A lepton below 23 GeV in row 0, a particle type that is not one-hot."""
    broken = copy_dataset(ingested_events, tmp_path)
    part = first_part(broken)
    pt, is_gamma = schema.LLF_COLUMNS.index("Pt"), schema.LLF_COLUMNS.index("isGamma")
    rewrite(
        part,
        lambda t: set_list_value(
            set_list_value(t, "lfeatures", 0, pt, 12.0), "lfeatures", 1, schema.LLF_FEATURES + is_gamma, 1.0
        ),
    )
    message = str(expect_failure("ingested_events", broken, tmp_path))
    assert "selection: lepton pT >= 23 GeV [expect_column_values_to_be_between on lepton_pt]" in message
    assert "particle_type_one_hot" in message


def test_missing_class_and_cutflow_drift_fail_at_dataset_level(ingested_events, tmp_path):
    validate("ingested_events", ingested_events, settings(tmp_path, "baseline"))  # the previous successful run
    drifted = copy_dataset(ingested_events, tmp_path)
    cutflow = json.loads((drifted / "_summary.json").read_text())
    cutflow["cutflow"]["ttbar"]["read"] *= 3  # a third of the efficiency: a changed selection or sample
    (drifted / "_summary.json").write_text(json.dumps(cutflow))
    error = expect_failure("ingested_events", drifted, tmp_path, run="drifted")
    [failure] = error.report["failures"]
    assert (
        failure["where"] == "dataset"
        and failure["table"] == "cutflow"
        and failure["columns"] == ["cutflow_efficiency_pull"]
    )
    assert failure["at"] == ["ttbar"] and "at sample ttbar" in str(error)
    assert not error.report["quarantined"]  # nothing partition-specific to copy

    no_wjets = copy_dataset(ingested_events, tmp_path, "no-wjets")
    for part in no_wjets.glob("part-wjets-*.parquet"):
        part.unlink()
    message = str(expect_failure("ingested_events", no_wjets, tmp_path, run="no-wjets"))
    assert (
        "every class is present [expect_column_values_to_be_between on events]: 1 of 3 rows" in message
        and "wjets" in message
    )


def test_cutflow_drift_compares_only_datasets_of_the_same_origin(ingested_events, tmp_path):
    """A Pythia sample after a toy one (the demo's generator switched) is not a
    drift: its efficiencies are compared with earlier Pythia runs only."""
    toy = copy_dataset(ingested_events, tmp_path, "toy")
    summary = json.loads((toy / "_summary.json").read_text())
    summary["cutflow"]["qcd"] = {k: n * 20 for k, n in summary["cutflow"]["qcd"].items()}  # room for a 5σ pull
    (toy / "_summary.json").write_text(json.dumps(summary))
    validate("ingested_events", toy, settings(tmp_path, "toy"))  # the toy baseline
    pythia = copy_dataset(toy, tmp_path, "pythia")
    root = tmp_path / "generated-pythia8"
    root.mkdir()
    (root / "_generated.json").write_text(json.dumps({"request": {"generator": "pythia8", "pileup": 30.0}}))
    for sample in summary["samples"].values():
        sample["files"] = [str(root / name / "file.root") for name in ("qcd",)]
    summary["cutflow"]["qcd"]["read"] *= 5  # Pythia's QCD efficiency is a fifth of the toy's
    (pythia / "_summary.json").write_text(json.dumps(summary))
    report = validate("ingested_events", pythia, settings(tmp_path, "pythia"))
    assert report["success"]
    assert any("other inputs" in w["why"] for w in report["warnings"])
    assert report["facts"]["origin"] == {"source": "delphes", "generated": ["pythia8 pileup 30.0"]}

    again = copy_dataset(pythia, tmp_path, "pythia-again")  # a second Pythia run is compared with the first
    summary["cutflow"]["qcd"]["read"] //= 5  # the toy's efficiency: a drift for Pythia
    (again / "_summary.json").write_text(json.dumps(summary))
    error = expect_failure("ingested_events", again, tmp_path, run="pythia-again")
    assert error.report["failures"][0]["at"] == ["qcd"]


# --- prepared data -------------------------------------------------------------------------
def test_unbalanced_classes_fail(prepared, tmp_path, dask_client):
    broken = copy_dataset(prepared[0], tmp_path)
    shard = sorted((broken / "train").glob("*.parquet"))[0]
    rewrite(shard, lambda t: t.filter(pa.compute.not_equal(t.column("label"), 0)))
    message = str(expect_failure("prepared", broken, tmp_path, dask_client))
    assert "undersampling leaves exactly equal class counts" in message and "total_events" in message


def test_event_in_both_splits_fails_naming_it(prepared, tmp_path, dask_client):
    broken = copy_dataset(prepared[0], tmp_path)
    train = sorted((broken / "train").glob("*.parquet"))[0]
    test = sorted((broken / "test").glob("*.parquet"))[0]
    leaked = pq.read_table(train).slice(0, 1)
    rewrite(test, lambda t: pa.concat_tables([t.slice(1), leaked]))  # same size: only the identity check can see it
    error = expect_failure("prepared", broken, tmp_path, dask_client)
    [failure] = [f for f in error.report["failures"] if f.get("table") == "identity"]
    assert failure["examples"][0]["event_id"] == leaked.column("event_id")[0].as_py()
    assert "train and test are disjoint" in str(error)
    quarantine = tmp_path / "data" / "quarantine" / "prepared" / "run"
    assert (quarantine / "train" / train.name).exists() and (quarantine / "test" / test.name).exists()


def test_nonzero_padding_and_unscaled_hlf_fail(prepared, tmp_path, dask_client):
    broken = copy_dataset(prepared[0], tmp_path)
    shard = sorted((broken / "train").glob("*.parquet"))[0]
    n_particles = pq.read_table(shard).column("n_particles")[0].as_py()
    rewrite(
        shard,
        lambda t: set_list_value(
            set_list_value(t, "GRU_input", 0, (n_particles + 3) * schema.LLF_FEATURES, 0.5),
            "HLF_input",
            1,
            HLF_MET,
            1.7,
        ),
    )
    error = expect_failure("prepared", broken, tmp_path, dask_client)
    found = {tuple(f["columns"]) for f in error.report["failures"]}
    assert ("nonzero_padding_values",) in found and ("MET",) in found
    assert all(f["where"] == f"train/{shard.name}" for f in error.report["failures"])
    # The same value in a test shard is allowed: scaling is fitted on train only.
    broken = copy_dataset(prepared[0], tmp_path, "test-only")
    shard = sorted((broken / "test").glob("*.parquet"))[0]
    rewrite(shard, lambda t: set_list_value(t, "HLF_input", 1, HLF_MET, 1.7))
    assert validate("prepared", broken, settings(tmp_path, "test-only"), dask_client)["success"]


# --- feeds ------------------------------------------------------------------------------------
def test_tfrecord_that_differs_from_the_parquet_fails(prepared, tfrecords, tmp_path, dask_client):
    from tasks.datasets.feeds import frame_record, iter_records

    broken = copy_dataset(tfrecords, tmp_path)
    summary = json.loads((broken / "_summary.json").read_text())
    shard = sorted((broken / "train").glob("*.tfrecord.gz"))[0]
    records = list(iter_records(shard))
    import gzip

    with gzip.open(shard, "wb") as f:  # the last record lost
        f.write(b"".join(frame_record(r) for r in records[:-1]))
    error = expect_failure("feeds", broken, tmp_path, dask_client)
    [rows] = [f for f in error.report["failures"] if f["columns"] == ["prepared_rows", "tfrecord_rows"]]
    assert rows["where"] == "dataset" and "the TFRecord feed has the rows of the prepared data" in str(error)
    assert summary["prepared"] == str(prepared[0])

    # A truncated shard: the error names it.
    shard.write_bytes(gzip.compress(b"".join(frame_record(r) for r in records))[:-200])
    error = expect_failure("feeds", broken, tmp_path, dask_client, run="truncated")
    assert shard.name in str(error) and "cannot be read" in str(error)


def test_tfrecord_values_are_compared_with_parquet(prepared, tmp_path, dask_client):
    """Rows swapped inside one Parquet shard: the counts still match, the values do not."""
    from tasks.datasets.feeds import write_feeds

    broken_prepared = copy_dataset(prepared[0], tmp_path, "prepared")
    feeds = tmp_path / "tfrecord"
    write_feeds(broken_prepared, feeds, dask_client, compression="none")
    shard = sorted((broken_prepared / "train").glob("*.parquet"))[0]
    rewrite(shard, lambda t: pa.concat_tables([t.slice(1), t.slice(0, 1)]))
    message = str(expect_failure("feeds", feeds, tmp_path, dask_client))
    assert "TFRecord and Parquet hold the same events in the same order" in message and f"train/{shard.stem}" in message


def test_an_hlf_only_feed_that_differs_from_the_parquet_fails(prepared, tfrecords, tmp_path, dask_client):
    """The HLF-only feed with its last row lost, then with one HLF value changed:
    each fails its own rule, naming the shard."""
    broken = copy_dataset(tfrecords, tmp_path)
    shard = sorted((broken / "hlf" / "train").glob("*.parquet"))[0]
    original = pq.read_table(shard)
    pq.write_table(original.slice(0, original.num_rows - 1), shard)
    error = expect_failure("feeds", broken, tmp_path, dask_client)
    assert [f["where"] for f in error.report["failures"] if f["columns"] == ["prepared_rows", "hlf_rows"]] == [
        "dataset"
    ]
    assert "the HLF-only feed has the rows of the prepared data" in str(error)

    rewrite(shard, lambda t: set_list_value(original, "HLF_input", 0, HLF_MET, 123.0))
    message = str(expect_failure("feeds", broken, tmp_path, dask_client, run="changed"))
    assert "the HLF-only feed has the event" in message and f"train/{shard.stem}" in message


# --- predictions and the CLI ---------------------------------------------------------------------
def test_predictions_contract(tmp_path):
    from tasks.learning.scoring import predictions_table

    p = np.array([[0.2, 0.3, 0.5], [0.9, 0.05, 0.05]], np.float32)
    good = tmp_path / "good.parquet"
    pq.write_table(predictions_table(["a", "b"], p), good)
    assert validate("predictions", good, settings(tmp_path))["success"]
    bad = tmp_path / "bad.parquet"
    pq.write_table(predictions_table(["a", "b"], p * np.array([[1.0], [1.5]], np.float32)), bad)
    message = str(expect_failure("predictions", bad, tmp_path))
    assert (
        "the class probabilities sum to 1" in message
        and "probabilities are in [0, 1]" in message
        and "at event_id b" in message
    )


def test_cli_validate(ingested_events, tmp_path):
    import subprocess
    import sys

    env = {"TOPO_DATA_ROOT": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    topo = [sys.executable, "-m", "tasks.cli", "validate"]
    ok = subprocess.run(
        topo + ["ingested_events", str(ingested_events), "--local", "--run-name", "cli"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert json.loads(ok.stdout)["success"] is True
    broken = copy_dataset(ingested_events, tmp_path)
    rewrite(first_part(broken), lambda t: set_list_value(t, "hfeatures", 2, HLF_MET, -3.0))
    bad = subprocess.run(topo + ["ingested_events", str(broken), "--local"], env=env, capture_output=True, text=True)
    assert bad.returncode == 1 and "HLF MET >= 0" in bad.stderr and "e.g. [-3.0]" in bad.stderr
    history = subprocess.run(
        topo + ["ingested_events", "--history"], env=env, capture_output=True, text=True, check=True
    )
    assert [r["success"] for r in json.loads(history.stdout)["runs"]] == [True, False]
    unknown = subprocess.run(topo + ["nonsense", str(broken)], env=env, capture_output=True, text=True)
    assert unknown.returncode == 2 and "no data contract 'nonsense'" in unknown.stderr


def test_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(SettingsError, match="does not exist"):
        validate("prepared", tmp_path / "nowhere", settings(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SettingsError, match="_summary.json is missing"):
        validate("prepared", tmp_path / "empty", settings(tmp_path))


def test_the_contracts_readme_lists_every_rule():
    readme = (load_contract("prepared").path.parent / "README.md").read_text()
    for name in available():
        contract = load_contract(name)
        assert f"`{name}` (v{contract.version})" in readme
        for table, suite in contract.suites.items():
            for e in suite["expectations"]:
                assert e["meta"]["why"] in readme, (name, table, e["meta"]["why"])


def test_gx_imports_in_a_process_without_a_main_file():
    """pyspark (imported by GX) exits the process when __main__ has no file,
    as in `python -c` and some worker processes; import_gx keeps it alive."""
    import subprocess
    import sys

    code = (
        "import logging; logging.basicConfig(level=logging.INFO); "
        "from tasks.contracts.suites import import_gx; gx = import_gx(); print('alive', gx.__version__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=str(load_contract("prepared").path.parents[1])
    )
    assert out.returncode == 0 and "alive 1." in out.stdout, out.stderr[-2000:]
    # nor does the import fill a task log with GX's bookkeeping at INFO
    assert "Skipping registering function" not in out.stderr, out.stderr[-2000:]


def test_a_cluster_is_started_only_for_a_dataset_worth_it(ingested_events, monkeypatch):
    from tasks.contracts import validation

    assert not validation.worth_a_cluster(ingested_events)  # a test sample: validated in the gate's process
    monkeypatch.setattr(validation, "IN_PROCESS_BYTES", 1024)
    assert validation.worth_a_cluster(ingested_events)
    assert validation.worth_a_cluster(next(ingested_events.rglob("*.parquet")))  # a single file too
