"""Hyperparameter search pieces: the grid, architectures, a real trial, the best set and where training reads it."""

from __future__ import annotations

import json
import math

import pytest

from tasks.core.errors import SettingsError
from tasks.learning.train import TrainSettings
from tasks.learning.tuning import (
    TuningError,
    apply,
    best_trial,
    expand_grid,
    log_trial,
    run_trial,
    save_best,
    tuned_path,
    tuned_settings,
)


def test_grid_expands_to_every_combination_in_a_fixed_order():
    trials = expand_grid({"optimizer": ["adam", "sgd"], "hidden": [[8], [16, 8]], "learning_rate": [1e-3]}, "hlf")
    assert [t["index"] for t in trials] == [0, 1, 2, 3]
    # GRID_KEYS order, whatever the order in the request
    assert [t["hyperparameters"] for t in trials] == [
        {"hidden": [8], "optimizer": "adam", "learning_rate": 1e-3},
        {"hidden": [8], "optimizer": "sgd", "learning_rate": 1e-3},
        {"hidden": [16, 8], "optimizer": "adam", "learning_rate": 1e-3},
        {"hidden": [16, 8], "optimizer": "sgd", "learning_rate": 1e-3},
    ]


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({}, "non-empty JSON object"),
        ({"layers": [1]}, "unknown grid key"),
        ({"activation": []}, "non-empty list"),
        ({"activation": ["relu", "swishy"]}, "'activation': 'swishy'.*unknown activation 'swishy'"),
        ({"optimizer": ["adamw"]}, "unknown optimizer 'adamw'"),
        ({"hidden": [[10, 0]]}, "layer widths must be at least 1"),
        ({"batch_size": [0]}, "batch_size must be at least 1"),
        ({"batch_size": list(range(1, 30)), "learning_rate": [0.1 * i for i in range(1, 30)]}, "more than 500"),
    ],
)
def test_a_bad_grid_is_refused_before_any_trial(grid, message):
    with pytest.raises(TuningError, match=message):
        expand_grid(grid, "hlf")


def test_hyperparameters_change_the_built_model():
    from tasks.learning.models import build_model

    settings = apply(TrainSettings(model="hlf"), {"hidden": [8, 4], "activation": "tanh", "learning_rate": 0.01})
    assert settings.hidden == (8, 4) and settings.learning_rates == ((0, 0.01),)
    model = build_model("hlf", settings.architecture)
    dense = [layer for layer in model.layers if layer.__class__.__name__ == "Dense"]
    assert [d.units for d in dense] == [8, 4, 3] and dense[0].activation.__name__ == "tanh"
    # 14·8+8 + 8·4+4 + 4·3+3
    assert model.count_params() == 171
    gru = build_model(
        "inclusive", apply(TrainSettings(model="inclusive"), {"recurrent_units": 7, "hidden": []}).architecture
    )
    assert gru.get_layer("gru").units == 7 and [d.units for d in gru.layers if d.__class__.__name__ == "Dense"] == [3]
    with pytest.raises(SettingsError, match="unknown hyperparameter"):
        apply(TrainSettings(), {"dropout": 0.5})


def test_best_trial_by_direction_of_the_metric_and_never_nan():
    trials = [
        {"index": 0, "score": 0.7},
        {"index": 1, "score": math.nan},
        {"index": 2, "score": 0.9},
        {"index": 3, "score": 0.9},
    ]
    assert best_trial(trials, "mean_auc")["index"] == 2  # the tie goes to the earlier trial
    assert best_trial(trials, "fpr99_ttbar")["index"] == 0  # lower is better
    with pytest.raises(TuningError, match="no trial produced"):
        best_trial([{"index": 0, "score": math.nan}], "mean_auc")


def test_a_trial_trains_scores_is_tracked_and_its_best_set_reaches_training(prepared, tmp_path):
    """A real trial on the session's prepared data, logged to a real MLflow store;
    the saved set is what ``tuned_settings`` (the DAGs, ``topo train --tuned``) applies."""
    out, _, _ = prepared
    trial = {
        "index": 5,
        "hyperparameters": {"hidden": [6], "optimizer": "rmsprop", "batch_size": 16, "learning_rate": 5e-3},
    }
    result = run_trial(out, tmp_path / "trial", "hlf", trial, epochs=2, seed=1)
    assert 0 <= result["score"] <= 1 and result["finished"] > result["started"]
    training = json.loads((tmp_path / "trial" / "model" / "training.json").read_text())
    assert training["settings"]["hidden"] == [6] and training["settings"]["optimizer"] == "rmsprop"
    assert training["settings"]["batch_size"] == 16 and training["epochs_run"] == 2
    again = run_trial(out, tmp_path / "trial", "hlf", trial, epochs=2, seed=1)  # a retried task: not trained twice
    assert again["finished"] == result["finished"]

    tracking = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    run_id = log_trial(tracking, "search-1", result)
    import mlflow

    run = mlflow.get_run(run_id)
    assert run.data.params["hidden"] == "[6]" and run.data.tags["search"] == "search-1"
    assert run.data.metrics["test_mean_auc"] == pytest.approx(result["scores"]["mean_auc"])

    data_root = tmp_path / "data"
    assert tuned_settings(TrainSettings(model="hlf"), data_root) == (TrainSettings(model="hlf"), None)
    written = save_best(data_root, result, "search-1", n_trials=1)
    assert written == tuned_path(data_root, "hlf")
    settings, tuned = tuned_settings(TrainSettings(model="hlf", epochs=3), data_root)
    assert tuned["search"] == "search-1"
    assert (settings.hidden, settings.optimizer, settings.batch_size, settings.epochs) == ((6,), "rmsprop", 16, 3)


def test_a_trial_of_an_hlf_model_reads_the_hlf_only_feed_beside_its_dataset(prepared, tmp_path, dask_client):
    """A run's prepared data with its feeds beside it (the DAG's layout): the
    trial trains and scores on the HLF-only feed; without them, on the full events."""
    import shutil

    from tasks.core.catalog import RunLayout
    from tasks.datasets.feeds import write_feeds

    run = RunLayout.under(tmp_path / "run")
    shutil.copytree(prepared[0], run.prepared)
    trial = {"index": 0, "hyperparameters": {"hidden": [6], "batch_size": 16}}
    full = run_trial(run.prepared, tmp_path / "full", "hlf", trial, epochs=2, seed=1)
    write_feeds(run.prepared, run.tfrecord, dask_client, compression="none")
    fast = run_trial(run.prepared, tmp_path / "fast", "hlf", trial, epochs=2, seed=1)
    training = json.loads((tmp_path / "fast" / "model" / "training.json").read_text())
    assert training["feed_format"] == "hlf" and training["feed"]["test"] == str(run.tfrecord / "hlf" / "test")
    assert json.loads((tmp_path / "full" / "model" / "training.json").read_text())["feed_format"] == "petastorm"
    assert 0 <= fast["score"] <= 1 and set(fast["scores"]) == set(full["scores"])


def test_the_search_dataset_is_the_given_one_or_the_newest_prepared(tmp_path):
    import os

    from tasks.learning.tuning import find_prepared

    with pytest.raises(SettingsError, match="no prepared dataset under"):
        find_prepared(tmp_path)
    with pytest.raises(SettingsError, match="has no _summary.json"):
        find_prepared(tmp_path, str(tmp_path / "nowhere"))
    for i, where in enumerate(("runs/a/prepared", "retraining/b/prepared", "runs/c/prepared")):
        (tmp_path / where).mkdir(parents=True)
        (tmp_path / where / "_summary.json").write_text("{}")
        os.utime(
            tmp_path / where / "_summary.json", (1000 + i * (1 if i != 1 else 10), 1000 + i * (1 if i != 1 else 10))
        )
    assert find_prepared(tmp_path) == tmp_path / "retraining" / "b" / "prepared"  # newest, wherever it is
    assert find_prepared(tmp_path, str(tmp_path / "runs" / "a" / "prepared")) == tmp_path / "runs" / "a" / "prepared"
