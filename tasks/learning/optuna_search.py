"""Optuna as the second search strategy: TPE sampling, pruning on the
per-epoch validation loss, the study kept in a database so that a later
search of the same study resumes it.

The trials stay what the grid's are (mapped Airflow tasks running
tasks.learning.tuning.run_trial): the study is driven by ask and tell.
``ask_trials`` asks for a batch of trials before any runs (TPE proposes them
from every finished trial of the study, earlier searches included); each
trial reports its validation loss after every epoch and stops when the
pruner says so; ``tell_trials`` gives the study each result. The best set is
the study's best finished trial, written where training reads it exactly as
the grid's best.

A search space is a JSON object, one entry per hyperparameter
(tasks.learning.tuning.GRID_KEYS):

- a list: the choices (categorical; a choice may itself be a list, e.g.
  ``hidden: [[50, 20, 10], [100, 50]]``);
- ``{"low": a, "high": b}``, with ``"log": true`` for a log scale: a range,
  of integers when both ends are integers.

Where the study is kept (``storage_url``): ``$TOPO_OPTUNA_STORAGE`` if set;
in an Airflow task, beside the metadata database: SQLite → ``optuna.db``
next to ``airflow.db``, PostgreSQL → the same database, schema ``optuna``
(Optuna's tables include an ``alembic_version`` of its own, which must not
meet Airflow's); elsewhere ``<data root>/optuna.db``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

from tasks.core.errors import SettingsError
from tasks.learning.metrics import METRICS, lower_is_better
from tasks.learning.tuning import GRID_KEYS, MAX_TRIALS, TuningError, check_keys, check_trainable

log = logging.getLogger(__name__)

SCHEMA = "optuna"
PRUNER_STARTUP_TRIALS = 2  # finished trials before any pruning: the median needs something to compare with
PRUNER_WARMUP_EPOCHS = 1  # the first epoch's loss says little about the last
RECORD_KEYS = ("model", "epochs", "seed", "prepared", "model_dir", "search")
"""Kept on each trial of the study, so that the best set can be written (and
reported) by a later search than the one that ran it."""


def _import_optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def check_space(space: dict, model: str) -> dict:
    """The space, checked: known keys, well-formed choices and ranges, and
    every choice (and each range's ends) able to train ``model``."""
    check_keys(space, "search space")
    for key, entry in space.items():
        if isinstance(entry, list):
            values = entry
        elif isinstance(entry, dict) and {"low", "high"} <= set(entry) <= {"low", "high", "log"}:
            low, high = entry["low"], entry["high"]
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or low >= high:
                raise TuningError(f"search space {key!r}: need numbers low < high, got {entry!r}")
            if entry.get("log") and low <= 0:
                raise TuningError(f"search space {key!r}: a log range needs low > 0, got {entry!r}")
            values = [low, high]
        else:
            raise TuningError(f"search space {key!r} needs a list of choices or {{low, high[, log]}}, got {entry!r}")
        if not values:
            raise TuningError(f"search space {key!r} needs at least one choice")
        for value in values:
            check_trainable(model, {key: value}, f"search space {key!r} value {value!r}")
    return space


def _suggest(trial, space: dict) -> dict:
    chosen = {}
    for key in (k for k in GRID_KEYS if k in space):
        entry = space[key]
        if isinstance(entry, list):
            # Optuna's choices are scalars: a list-valued choice travels as its JSON text.
            picked = trial.suggest_categorical(key, [json.dumps(v) for v in entry])
            chosen[key] = json.loads(picked)
        elif all(isinstance(v, int) for v in (entry["low"], entry["high"])):
            chosen[key] = trial.suggest_int(key, entry["low"], entry["high"], log=bool(entry.get("log")))
        else:
            chosen[key] = trial.suggest_float(key, entry["low"], entry["high"], log=bool(entry.get("log")))
    return chosen


def storage_url(data_root: str | Path) -> str:
    """Where studies are kept (see the module docstring)."""
    if os.environ.get("TOPO_OPTUNA_STORAGE"):
        return os.environ["TOPO_OPTUNA_STORAGE"]
    metadata = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")
    if not metadata and os.environ.get("AIRFLOW_HOME"):
        try:
            from airflow.configuration import conf

            metadata = conf.get("database", "sql_alchemy_conn", fallback="")
        except Exception:  # noqa: BLE001  no Airflow configuration here: keep the study under the data root
            metadata = ""
    if metadata.startswith("sqlite:///"):
        return f"sqlite:///{Path(metadata.removeprefix('sqlite:///')).parent / 'optuna.db'}"
    if metadata.startswith("postgresql"):
        base = metadata.replace("postgresql+asyncpg", "postgresql+psycopg2")
        return f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{SCHEMA}"
    return f"sqlite:///{Path(data_root) / 'optuna.db'}"


def _storage(url: str):
    optuna = _import_optuna()
    if url.startswith("postgresql"):
        import sqlalchemy

        # The schema must exist before Optuna creates its tables in it.
        plain = url.split("?")[0]
        engine = sqlalchemy.create_engine(plain)
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        engine.dispose()
    elif url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})


def open_study(name: str, url: str, metric: str, seed: int):
    """The study ``name`` in ``url``, created if new (TPE with ``seed``, median pruner)."""
    optuna = _import_optuna()
    if metric not in METRICS:
        raise SettingsError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    direction = "minimize" if lower_is_better(metric) else "maximize"
    study = optuna.create_study(
        study_name=name,
        storage=_storage(url),
        direction=direction,
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=4),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=PRUNER_WARMUP_EPOCHS),
        load_if_exists=True,
    )
    if study.direction.name.lower() != direction:
        raise TuningError(
            f"study {name!r} in {url} {study.direction.name.lower()}s; metric {metric!r} needs {direction}"
        )
    return study


def ask_trials(name: str, url: str, space: dict, model: str, metric: str, n_trials: int, seed: int) -> list[dict]:
    """Ask the study for ``n_trials`` new trials; each as the grid's trials are
    (``index``, ``hyperparameters``) with where its study is."""
    if not 1 <= n_trials <= MAX_TRIALS:
        raise TuningError(f"n_trials must be between 1 and {MAX_TRIALS}, got {n_trials}")
    check_space(space, model)
    study = open_study(name, url, metric, seed)
    earlier = len(study.trials)
    trials = []
    for _ in range(n_trials):
        trial = study.ask()
        trials.append(
            {
                "index": trial.number,
                "hyperparameters": _suggest(trial, space),
                "optuna": {"study": name, "storage": url, "trial_id": trial._trial_id},
            }
        )
    log.info("study %r (%s): %d earlier trials, %d asked", name, url.split("?")[0], earlier, n_trials)
    return trials


def pruning_callback(trial_info: dict, metric: str, seed: int):
    """A Keras callback reporting each epoch's validation loss to the trial and
    stopping training when the pruner says so (the trial is then marked pruned)."""
    import keras

    optuna = _import_optuna()
    study = open_study(trial_info["study"], trial_info["storage"], metric, seed)
    trial = optuna.trial.Trial(study, trial_info["trial_id"])

    class Pruning(keras.callbacks.Callback):
        pruned_at: int | None = None

        def on_epoch_end(self, epoch, logs=None):
            loss = (logs or {}).get("val_loss")
            if loss is None or not math.isfinite(loss):
                return
            # The study minimises or maximises the metric; the loss always falls as a model learns.
            trial.report(-loss if study.direction.name == "MAXIMIZE" else loss, epoch)
            if trial.should_prune():
                log.info("trial %d pruned after epoch %d (val_loss %.4f)", trial.number, epoch + 1, loss)
                self.pruned_at = epoch + 1
                self.model.stop_training = True

    return Pruning()


def tell_trials(name: str, url: str, metric: str, seed: int, results: list[dict]) -> dict:
    """Give the study each trial's result (pruned, failed for a NaN score, or its
    score); a trial already told (a retried task) is left as it is. Returns the
    study's best finished trial: its ``RECORD_KEYS``, index, score, metric,
    hyperparameters and the number of trials in the study."""
    optuna = _import_optuna()
    study = open_study(name, url, metric, seed)
    known = {t.number: t for t in study.get_trials(deepcopy=False)}  # one read of the storage, not one per result
    for result in results:
        number = result["index"]
        if known[number].state != optuna.trial.TrialState.RUNNING:
            continue
        # What the best set needs to be written from a later search's tell, too.
        running = optuna.trial.Trial(study, known[number]._trial_id)
        for key in RECORD_KEYS:
            running.set_user_attr(key, result.get(key))
        if result.get("pruned_at"):
            study.tell(number, state=optuna.trial.TrialState.PRUNED)
        elif math.isnan(result["score"]):
            study.tell(number, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(number, result["score"])
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not finished:
        raise TuningError(f"study {name!r}: no trial finished with a {metric} score ({len(study.trials)} trials)")
    best = study.best_trial
    # Choices went in as JSON text (_suggest); ranges as numbers.
    hyperparameters = {k: (json.loads(v) if isinstance(v, str) else v) for k, v in best.params.items()}
    return best.user_attrs | {
        "index": best.number,
        "score": best.value,
        "metric": metric,
        "hyperparameters": hyperparameters,
        "study_trials": len(study.trials),
    }
