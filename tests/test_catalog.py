"""The run catalog: one place for every output path, in every layout."""

from __future__ import annotations

import os

import pytest

from tasks.core.catalog import Catalog, RunLayout, evaluation_of, run_key, tfrecord_of
from tasks.core.errors import SettingsError
from tasks.core.settings import Settings


def test_a_pipeline_run_layout(tmp_path):
    run = Catalog.under(tmp_path).run("manual__2026-01-01T00:00:00+00:00")
    root = tmp_path / "runs" / "manual__2026-01-01T00_00_00_00_00"
    assert run.root == root and run.run == root.name
    assert (run.events, run.prepared, run.tfrecord) == (root / "events", root / "prepared", root / "tfrecord")
    assert run.model("gru") == root / "models" / "gru"
    assert run.evaluation("gru") == root / "evaluation" / "gru"
    assert (run.report, run.summary) == (root / "report.html", root / "summary.json")


def test_retraining_and_tuning_runs_live_apart(tmp_path):
    catalog = Catalog.under(tmp_path)
    assert catalog.run("r1", "retraining").prepared == tmp_path / "retraining" / "r1" / "prepared"
    retraining = catalog.run("r1", "retraining")
    assert tfrecord_of(retraining.prepared) == retraining.tfrecord  # a run's feeds sit beside its prepared data
    assert catalog.run("s1", "tuning").trial(7) == tmp_path / "tuning" / "s1" / "trial-007"
    with pytest.raises(SettingsError, match="unknown run kind 'weekly'"):
        catalog.run("x", "weekly")


def test_the_cli_layout_keeps_its_defaults(tmp_path):
    manual = Catalog.under(tmp_path).manual()
    assert manual.events == tmp_path / "events" / "manual"
    assert manual.prepared == tmp_path / "prepared" / "manual"
    assert manual.tfrecord == tmp_path / "prepared" / "manual-tfrecord" == tfrecord_of(manual.prepared)
    assert manual.model("hlf") == tmp_path / "models" / "manual" / "hlf"
    assert (
        manual.evaluation("hlf")
        == tmp_path / "models" / "manual" / "hlf-evaluation"
        == evaluation_of(manual.model("hlf"))
    )


def test_daily_partitions_and_raw_days(tmp_path):
    catalog = Settings(data_root=tmp_path, raw_root=str(tmp_path / "landing")).catalog
    assert catalog.raw_day("2026-01-02") == tmp_path / "landing" / "2026-01-02"
    assert catalog.staging_partition("2026-01-02") == tmp_path / "staging" / "events" / "2026-01-02"
    assert catalog.partition("2026-01-02") == tmp_path / "events" / "2026-01-02"
    with pytest.raises(SettingsError, match="'2026-13-01' is not a day"):
        catalog.partition("2026-13-01")
    assert Settings(data_root=tmp_path).catalog.raw_day("2026-01-02") == tmp_path / "raw" / "2026-01-02"


def test_generated_samples_tuned_sets_and_mlflow(tmp_path):
    catalog = Catalog.under(tmp_path)
    assert catalog.generated(7000, 42) == tmp_path / "raw" / "generated-n7000-seed42"
    assert catalog.generated() == tmp_path / "raw" / "generated"
    assert catalog.generated(7000, 42, "pythia8", 30.0) == tmp_path / "raw" / "generated-pythia8-pu30-n7000-seed42"
    assert catalog.generated(7000, 42, "pythia8", 20.0) != catalog.generated(7000, 42, "pythia8", 30.0)
    assert catalog.tuned("hlf") == tmp_path / "hyperparameters" / "hlf.json"
    assert Settings(data_root=tmp_path).tracking_uri == f"sqlite:///{(tmp_path / 'mlflow' / 'mlflow.db').resolve()}"


def test_finding_runs_by_id_directory_or_age(tmp_path):
    catalog = Catalog.under(tmp_path)
    with pytest.raises(SettingsError, match="no run under"):
        catalog.latest_run()
    for age, name in enumerate(("old", "new")):
        (catalog.run(name).events).mkdir(parents=True)
        (catalog.run(name).events / "_summary.json").write_text("{}")
        os.utime(catalog.run(name).events / "_summary.json", (1e9 + age, 1e9 + age))
    (catalog.run("r", "retraining").prepared).mkdir(parents=True)
    assert catalog.latest_run().run == "new"
    assert catalog.find_run("old") == catalog.run("old")
    assert catalog.find_run("r") == catalog.run("r", "retraining")
    assert catalog.find_run(str(catalog.run("old").root)) == RunLayout.under(catalog.run("old").root)
    with pytest.raises(SettingsError, match="no run 'missing'"):
        catalog.find_run("missing")
    assert run_key("a b:c") == "a_b_c"
