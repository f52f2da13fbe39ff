"""Hyperparameter search: the grid, one trial, the best set, and where training finds it.

SparkDLTrigger tuned the HLF classifier by grid search over the number of layers and
units per layer, the activation, the optimizer, the batch size and the
learning rate, scoring each model by its AUC. A grid here is a JSON object of
lists, one list per hyperparameter (``GRID_KEYS``); every combination is one
trial. A trial trains on the train split of a prepared dataset and is scored
on its test split by one of the promotion metrics (tasks.learning.metrics.METRICS).

The best set is written to ``<data root>/hyperparameters/<model>.json`` with
where it came from; ``topology_classifier`` and ``retrain_classifier`` read it
(``tuned_settings``) unless told not to. Tune on a preparation other than the
one the final model is judged on: a search picks what does best on its test
split.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from dataclasses import replace
from pathlib import Path

from tasks.core.catalog import Catalog
from tasks.core.errors import SettingsError, TopoError
from tasks.core.storage import read_json, write_json
from tasks.learning.metrics import METRICS, lower_is_better, summarise

log = logging.getLogger(__name__)

GRID_KEYS = ("hidden", "recurrent_units", "activation", "optimizer", "batch_size", "learning_rate")
"""``hidden``: widths of the dense hidden layers, e.g. [50, 20, 10] (the number of
layers and units per layer); ``recurrent_units``: width of the GRU/LSTM of the
particle-sequence models; ``learning_rate``: a constant rate."""
MAX_TRIALS = 500


class TuningError(TopoError):
    """A search that cannot run or finish (bad grid, no trial succeeded)."""


def apply(settings, hyperparameters: dict):
    """``settings`` (tasks.learning.train.TrainSettings) with a trial's or a tuned set's values."""
    unknown = set(hyperparameters) - set(GRID_KEYS)
    if unknown:
        raise SettingsError(f"unknown hyperparameter(s) {', '.join(sorted(unknown))}; known: {', '.join(GRID_KEYS)}")
    changes: dict = {}
    for key, value in hyperparameters.items():
        if key == "hidden":
            changes["hidden"] = tuple(int(w) for w in value)
        elif key == "learning_rate":
            changes["learning_rates"] = ((0, float(value)),)
        else:
            changes[key] = value
    return replace(settings, **changes)


def check_keys(search: dict, what: str, shape: str = "") -> None:
    """A grid or a search space: a non-empty JSON object keyed by ``GRID_KEYS``."""
    if not isinstance(search, dict) or not search:
        raise TuningError(f"the {what} must be a non-empty JSON object{shape}, got {search!r}")
    unknown = set(search) - set(GRID_KEYS)
    if unknown:
        raise TuningError(f"unknown {what} key(s) {', '.join(sorted(unknown))}; known: {', '.join(GRID_KEYS)}")


def check_trainable(model: str, hyperparameters: dict, what: str) -> None:
    """Build the training settings with ``hyperparameters``, so that a bad value
    fails before any trial runs; the error names ``what`` was being checked."""
    from tasks.learning.train import TrainSettings

    try:
        apply(TrainSettings(model=model, feed="petastorm"), hyperparameters)
    except (SettingsError, TypeError, ValueError) as exc:
        raise TuningError(f"{what} cannot train {model}: {exc}") from None


def expand_grid(grid: dict, model: str) -> list[dict]:
    """Every combination of the grid's values, in a fixed order; each checked
    by building the training settings, so a bad value fails before any trial runs."""
    check_keys(grid, "grid", " of lists")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise TuningError(f"grid key {key!r} needs a non-empty list of values, got {values!r}")
    keys = [k for k in GRID_KEYS if k in grid]
    trials = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in keys))]
    if len(trials) > MAX_TRIALS:
        raise TuningError(f"the grid has {len(trials)} combinations, more than {MAX_TRIALS}; narrow it")
    for trial in trials:
        check_trainable(model, trial, f"grid combination {trial}")
    return [{"index": i, "hyperparameters": t} for i, t in enumerate(trials)]


def run_trial(
    prepared: str | Path,
    output: str | Path,
    model: str,
    trial: dict,
    epochs: int,
    seed: int,
    metric: str = "mean_auc",
    callbacks: tuple = (),
) -> dict:
    """Train one combination on ``prepared``/train and score it on ``prepared``/test.

    ``output/trial.json`` keeps the result (with start and end times); a trial
    that already finished with the same settings is not run again. A callback
    that stops training early (a search's pruner) says after which epoch in
    ``pruned_at``; the result keeps it."""
    from tasks.learning.metrics import physics_metrics
    from tasks.learning.scoring import predict_split
    from tasks.learning.train import TrainSettings, train

    if metric not in METRICS:
        raise SettingsError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    prepared, output = Path(prepared), Path(output)
    settings = apply(TrainSettings(model=model, feed="petastorm", epochs=epochs, seed=seed), trial["hyperparameters"])
    record = output / "trial.json"
    key = {
        "model": model,
        "hyperparameters": trial["hyperparameters"],
        "epochs": epochs,
        "seed": seed,
        "prepared": str(prepared),
        "metric": metric,
    }
    if record.exists() and {k: read_json(record).get(k) for k in key} == key:
        log.info("trial %d already done: %s", trial["index"], record)
        return read_json(record)
    started = time.time()
    # an HLF model reads the HLF-only feed, if written
    trained = train(prepared, output / "model", settings, callbacks=callbacks)
    test = Path(trained["feed"]["test"])
    scores = summarise(physics_metrics(*predict_split(output / "model", test, trained["feed_format"])))
    result = key | {
        "index": trial["index"],
        "score": scores[metric],
        "scores": scores,
        "started": started,
        "finished": time.time(),
        "model_dir": str(output / "model"),
        "pruned_at": next((c.pruned_at for c in callbacks if getattr(c, "pruned_at", None)), None),
    }
    write_json(record, result)
    log.info(
        "trial %d %s: %s %.4f in %.0f s",
        trial["index"],
        trial["hyperparameters"],
        metric,
        result["score"],
        result["finished"] - started,
    )
    return result


def best_trial(trials: list[dict], metric: str) -> dict:
    """The best scored trial; NaN scores (a diverged model) never win."""
    scored = [t for t in trials if t and not math.isnan(t["score"])]
    if not scored:
        raise TuningError(f"no trial produced a {metric} score ({len(trials)} trials)")
    sign = 1 if lower_is_better(metric) else -1
    return min(scored, key=lambda t: (sign * t["score"], t["index"]))  # a tie goes to the earlier trial


def find_prepared(data_root: str | Path, given: str = "") -> Path:
    """The dataset a search runs on: ``given``, else the newest prepared dataset
    of a pipeline or retraining run under ``data_root``."""
    if given:
        if not (Path(given) / "_summary.json").exists():
            raise SettingsError(f"prepared dataset {given} has no _summary.json; is it a prepare output?")
        return Path(given)
    found = Catalog.under(data_root).prepared_datasets()
    if not found:
        raise SettingsError(f"no prepared dataset under {data_root}; run topology_classifier first or set 'prepared'")
    return found[-1]


def tuned_path(data_root: str | Path, model: str) -> Path:
    return Catalog.under(data_root).tuned(model)


def save_best(data_root: str | Path, best: dict, search: str, n_trials: int) -> Path:
    """Write the winning set where training reads it, with its provenance."""
    path = tuned_path(data_root, best["model"])
    write_json(
        path,
        {
            "model": best["model"],
            "hyperparameters": best["hyperparameters"],
            "metric": best["metric"],
            "score": best["score"],
            "epochs": best["epochs"],
            "prepared": best["prepared"],
            "search": search,
            "trials": n_trials,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )
    return path


def tuned_settings(settings, data_root: str | Path):
    """``settings`` with the tuned set of its model applied, if a search wrote one;
    returns (settings, the tuned record or None)."""
    path = tuned_path(data_root, settings.model)
    if not path.exists():
        return settings, None
    tuned = read_json(path)
    log.info(
        "using tuned hyperparameters for %s from %s (search %s, %s %.4f): %s",
        settings.model,
        path,
        tuned.get("search"),
        tuned.get("metric"),
        tuned.get("score", math.nan),
        tuned["hyperparameters"],
    )
    return apply(settings, tuned["hyperparameters"]), tuned


def log_trial(tracking_uri: str, search: str, trial: dict) -> str:
    """One MLflow run per trial in the experiment ``topology-classifier-tuning``."""
    import json

    from tasks.learning.registry import tracking

    mlflow = tracking(tracking_uri, experiment="topology-classifier-tuning")
    params = {
        k: json.dumps(v) if isinstance(v, (list, tuple, dict)) else v for k, v in trial["hyperparameters"].items()
    }
    with mlflow.start_run(run_name=f"{search}-trial{trial['index']:03d}") as run:
        mlflow.set_tags({"search": search, "model": trial["model"], "trial": trial["index"]})
        if trial.get("pruned_at"):
            mlflow.set_tag("pruned_after_epoch", trial["pruned_at"])
        mlflow.log_params(
            params
            | {"model": trial["model"], "epochs": trial["epochs"], "seed": trial["seed"], "prepared": trial["prepared"]}
        )
        mlflow.log_metrics(
            {f"test_{k}": v for k, v in trial["scores"].items() if not math.isnan(v)}
            | {"seconds": trial["finished"] - trial["started"]}
        )
    return run.info.run_id
