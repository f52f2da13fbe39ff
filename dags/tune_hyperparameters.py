"""
### tune_hyperparameters

Grid search, as the seed did with Spark: every combination of the `grid` is
one trial, a mapped task that trains `model` on the train split of a prepared
dataset and scores it on its test split by `metric`.

1. **find_dataset**: `prepared`, or the newest prepared dataset under
   `<data root>/runs/` and `<data root>/retraining/`.
2. **plan_trials**: the grid's combinations, each checked before any trial
   runs (a bad value fails here, naming the combination). Grid keys:
   `hidden` (dense hidden layer widths: the number of layers and units per
   layer), `recurrent_units`, `activation`, `optimizer`, `batch_size`,
   `learning_rate`.
3. **run_trial** (one mapped task per combination): at most
   `$TOPO_HPO_MAX_PARALLEL_TRIALS` (default 2) trials of a search run at once,
   and all training shares the pool `gpu`. Each trial is an MLflow run in the
   experiment `topology-classifier-tuning`; its model and `trial.json` are
   under `<data root>/tuning/<run id>/trial-NNN/`.
4. **select_best**: the best trial (NaN scores never win, ties go to the
   earlier trial), written to `<data root>/hyperparameters/<model>.json`,
   which `topology_classifier` and `retrain_classifier` read when `use_tuned`
   (and `topo train --tuned`). The table of all trials is in the task log.

Tune on a dataset other than the one the final model is judged on.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task
from topo_airflow import stages
from topo_airflow.chain import RETRIES, START, TRAINING_QUEUE
from topo_airflow.params import ALL_MODELS, PROMOTION_METRICS, optional_text

from tasks.core.settings import Settings
from tasks.learning.tuning import GRID_KEYS

MAX_PARALLEL_TRIALS = Settings.from_env().hpo_max_parallel_trials
"""Read when the DAG is parsed: the limit is part of the task's definition."""

SEED_GRID = {"hidden": [[50, 20, 10], [100, 50]], "activation": ["relu", "tanh"], "optimizer": ["adam", "rmsprop"],
             "batch_size": [64], "learning_rate": [1e-3]}  # fmt: skip


@dag(
    dag_id="tune_hyperparameters",
    schedule=None,
    start_date=START,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    default_args=RETRIES,
    tags=["hep", "topology-classifier", "tuning"],
    params={
        "model": Param("hlf", type="string", enum=list(ALL_MODELS), description="The classifier to tune."),
        "prepared": optional_text("A prepared dataset. Empty: the newest one under the data root."),
        "grid": Param(SEED_GRID, type="object", minProperties=1,
                      propertyNames={"enum": list(GRID_KEYS)},
                      additionalProperties={"type": "array", "minItems": 1},
                      description="Lists of values per hyperparameter; every combination is a trial."),  # fmt: skip
        "epochs": Param(5, type="integer", minimum=1, maximum=1000, description="Epochs per trial."),
        "train_seed": Param(42, type="integer", minimum=0, description="Seed of every trial (same start, fair comparison)."),
        "metric": Param("mean_auc", type="string", enum=PROMOTION_METRICS,
                        description="What the best trial maximises (fpr99_*: minimises)."),  # fmt: skip
        "write_best": Param(True, type="boolean",
                            description="Write the best set to <data root>/hyperparameters/<model>.json for training."),  # fmt: skip
    },
)
def tune_hyperparameters():
    @task
    def find_dataset() -> str:
        """The prepared dataset the trials train and score on."""
        from tasks.learning.tuning import find_prepared

        return str(find_prepared(stages.settings().data_root, stages.params()["prepared"]))

    @task
    def plan_trials() -> list[dict]:
        """Every combination of the grid, checked before any trial runs."""
        from tasks.learning.tuning import expand_grid

        params = stages.params()
        trials = expand_grid(params["grid"], params["model"])
        print(f"{len(trials)} trials of {params['model']}, at most {MAX_PARALLEL_TRIALS} at once")
        return trials

    @task(pool="gpu", queue=TRAINING_QUEUE, max_active_tis_per_dagrun=MAX_PARALLEL_TRIALS)
    def run_trial(prepared: str, trial: dict) -> dict:
        """Train and score one combination; track it in MLflow."""
        from tasks.learning.tuning import log_trial, run_trial as run_one

        params, settings = stages.params(), stages.settings()
        output = settings.data_root / "tuning" / stages.run_key() / f"trial-{trial['index']:03d}"
        result = run_one(prepared, output, params["model"], trial, params["epochs"], params["train_seed"], params["metric"])
        result["mlflow_run_id"] = log_trial(settings.tracking_uri, stages.run_key(), result)
        return {k: result[k] for k in ("index", "model", "hyperparameters", "metric", "score", "epochs", "prepared",
                                       "started", "finished", "mlflow_run_id")}  # fmt: skip

    @task
    def select_best(trials: list[dict]) -> dict:
        """The best trial, written where training reads it."""
        from tasks.learning.tuning import best_trial, save_best

        params = stages.params()
        trials = sorted(trials, key=lambda t: t["index"])
        best = best_trial(trials, params["metric"])
        for t in trials:
            print(f"{'*' if t is best else ' '} trial {t['index']:3d}  {params['metric']} {t['score']:.4f}  {t['hyperparameters']}")
        out = {"best": best["index"], "score": best["score"], "hyperparameters": best["hyperparameters"], "trials": len(trials)}
        if params["write_best"]:
            out["written"] = str(save_best(stages.settings().data_root, best, stages.run_key(), len(trials)))
        return out

    select_best(run_trial.partial(prepared=find_dataset()).expand(trial=plan_trials()))


tune_hyperparameters()
