"""Optuna as a search strategy: the space, ask and tell on a real SQLite study that resumes, pruning, and a
real study through `airflow dags test` twice."""

from __future__ import annotations

import json
import math

import pytest

from tasks.learning.optuna_search import (
    ask_trials,
    check_space,
    open_study,
    pruning_callback,
    storage_url,
    tell_trials,
)
from tasks.learning.tuning import TuningError

SPACE = {
    "hidden": [[8], [16, 8]],
    "optimizer": ["adam", "rmsprop"],
    "learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
    "batch_size": {"low": 8, "high": 32},
}


def _result(trial: dict, score: float, **extra) -> dict:
    return {
        "index": trial["index"],
        "score": score,
        "model": "hlf",
        "epochs": 2,
        "seed": 1,
        "prepared": "/data/prepared",
        "model_dir": f"/t/{trial['index']}",
        "search": "search-a",
        "hyperparameters": trial["hyperparameters"],
    } | extra


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({}, "non-empty"),
        ({"layers": [1]}, "unknown search space key"),
        ({"learning_rate": {"low": 1e-2, "high": 1e-4}}, "low < high"),
        ({"learning_rate": {"low": 0, "high": 1e-2, "log": True}}, "low > 0"),
        ({"optimizer": ["adam", "sgd-nesterov"]}, "cannot train hlf"),
        ({"batch_size": "32"}, "list of choices"),
    ],
)
def test_a_bad_space_is_refused_before_any_trial(space, message):
    with pytest.raises(TuningError, match=message):
        check_space(space, "hlf")


def test_a_study_is_asked_told_and_resumed_where_it_is_kept(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = ask_trials("hlf-mean_auc", url, SPACE, "hlf", "mean_auc", 3, seed=1)
    assert [t["index"] for t in first] == [0, 1, 2]
    for t in first:
        h = t["hyperparameters"]
        assert h["hidden"] in ([8], [16, 8]) and h["optimizer"] in ("adam", "rmsprop")  # lists come back as lists
        assert 1e-4 <= h["learning_rate"] <= 1e-2 and isinstance(h["batch_size"], int) and 8 <= h["batch_size"] <= 32
    results = [_result(first[0], 0.7), _result(first[1], 0.9), _result(first[2], math.nan)]
    best = tell_trials("hlf-mean_auc", url, "mean_auc", 1, results)
    assert (best["index"], best["score"], best["study_trials"]) == (1, 0.9, 3)
    assert best["hyperparameters"] == first[1]["hyperparameters"] and best["prepared"] == "/data/prepared"
    assert tell_trials("hlf-mean_auc", url, "mean_auc", 1, results)["index"] == 1  # a retried tell changes nothing

    # A second search of the same study resumes it: new numbers, the earlier best stays the best until beaten.
    second = ask_trials("hlf-mean_auc", url, SPACE, "hlf", "mean_auc", 2, seed=1)
    assert [t["index"] for t in second] == [3, 4]
    best = tell_trials("hlf-mean_auc", url, "mean_auc", 1, [_result(second[0], 0.8), _result(second[1], 0.6)])
    assert (best["index"], best["search"], best["study_trials"]) == (1, "search-a", 5)
    study = open_study("hlf-mean_auc", url, "mean_auc", 1)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    with pytest.raises(TuningError, match="needs minimize"):
        open_study("hlf-mean_auc", url, "fpr99_ttbar", 1)  # the same study cannot change direction

    # Where studies are kept: beside Airflow's SQLite database, or under the data root outside Airflow.
    monkeypatch.delenv("TOPO_OPTUNA_STORAGE", raising=False)
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{tmp_path}/home/airflow.db")
    assert storage_url(tmp_path / "data") == f"sqlite:///{tmp_path}/home/optuna.db"
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql+psycopg2://a:b@127.0.0.1:5432/airflow")
    assert storage_url(tmp_path / "data").endswith("/airflow?options=-csearch_path%3Doptuna")


def _fitting_model():
    """A model as Keras' fit hands it to callbacks (fit sets stop_training first)."""
    import keras

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.stop_training = False
    return model


def test_a_trial_far_behind_the_others_is_pruned_on_its_validation_loss(tmp_path):

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    trials = ask_trials("s", url, {"optimizer": ["adam"]}, "hlf", "mean_auc", 3, seed=0)
    study = open_study("s", url, "mean_auc", 0)
    for t in trials[:2]:  # two finished trials whose loss fell to 0.5
        callback = pruning_callback(t["optuna"], "mean_auc", 0)
        callback.set_model(_fitting_model())
        for epoch, loss in enumerate([1.0, 0.7, 0.5]):
            callback.on_epoch_end(epoch, {"val_loss": loss})
        assert callback.pruned_at is None and not callback.model.stop_training
    tell_trials("s", url, "mean_auc", 0, [_result(trials[0], 0.8), _result(trials[1], 0.82)])
    slow = pruning_callback(trials[2]["optuna"], "mean_auc", 0)
    slow.set_model(_fitting_model())
    slow.on_epoch_end(0, {"val_loss": 3.0})  # the warm-up epoch is never pruned
    assert slow.pruned_at is None
    slow.on_epoch_end(1, {"val_loss": 2.9})
    assert slow.pruned_at == 2 and slow.model.stop_training
    tell_trials("s", url, "mean_auc", 0, [_result(trials[2], 0.5, pruned_at=2)])
    assert open_study("s", url, "mean_auc", 0).trials[2].state.name == "PRUNED"
    assert json.loads(json.dumps(study.trials[0].params)) == {"optimizer": '"adam"'}


@pytest.mark.slow
def test_a_study_runs_end_to_end_in_airflow_and_a_second_search_resumes_it(prepared, tmp_path):
    """`airflow dags test` of tune_hyperparameters with strategy optuna, twice with the same study."""
    from tests.support.airflow_service import dags_test

    out, _, _ = prepared
    home, data = tmp_path / "airflow", tmp_path / "data"
    conf = {
        "strategy": "optuna",
        "model": "hlf",
        "prepared": str(out),
        "study": "resumed",
        "n_trials": 2,
        "epochs": 2,
        "space": {"hidden": [[8], [16]], "learning_rate": {"low": 1e-3, "high": 1e-2, "log": True}},
    }
    for _ in range(2):
        log = dags_test("tune_hyperparameters", conf, home, data)
        assert "[exit status 0]" in log and "state=failed" not in log, log[-5000:]
    study = open_study("resumed", f"sqlite:///{home / 'optuna.db'}", "mean_auc", 42)  # beside airflow.db
    assert len(study.trials) == 4 and all(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)
    searches = sorted((data / "tuning").iterdir())
    assert len(searches) == 2
    assert sorted(p.name for p in searches[1].glob("trial-*")) == ["trial-002", "trial-003"]  # resumed, not restarted
    tuned = json.loads((data / "hyperparameters" / "hlf.json").read_text())
    assert tuned["hyperparameters"] == {
        k: json.loads(v) if isinstance(v, str) else v for k, v in study.best_trial.params.items()
    }
    assert tuned["score"] == pytest.approx(study.best_value)
    assert "The best trial" in (searches[1] / "report.html").read_text()
