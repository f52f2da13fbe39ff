"""
### tune_hyperparameters

Two strategies (`strategy`), the same trials: a mapped task per trial that
trains `model` on the train split of a prepared dataset and scores it on its
test split by `metric`.

- **grid**, as SparkDLTrigger did with Spark: every combination of `grid`.
- **optuna**: `n_trials` trials asked of the Optuna study `study` (default
  `<model>-<metric>`), TPE sampling over `space` (a list of choices, or
  `{low, high[, log]}` per hyperparameter), each trial pruned by the median
  pruner on its per-epoch validation loss. The study is kept beside
  Airflow's metadata database (SQLite: `optuna.db` next to `airflow.db`;
  PostgreSQL: schema `optuna`; or `$TOPO_OPTUNA_STORAGE`), so a later search
  of the same study resumes it: TPE learns from every earlier trial, and the
  best set is the study's best.

1. **find_dataset**: `prepared`, or the newest prepared dataset under
   `<data root>/runs/` and `<data root>/retraining/`.
2. **plan_trials**: the grid's combinations, or the trials asked of the
   study, each checked before any trial runs (a bad value fails here, naming
   the combination or the space's entry). Grid keys:
   `hidden` (dense hidden layer widths: the number of layers and units per
   layer), `recurrent_units`, `activation`, `optimizer`, `batch_size`,
   `learning_rate`.
3. **run_trial** (one mapped task per combination): at most
   `$TOPO_HPO_MAX_PARALLEL_TRIALS` (default 2) trials of a search run at once,
   and all training shares the pool `gpu`. Each trial is an MLflow run in the
   experiment `topology-classifier-tuning`; its model and `trial.json` are
   under `<data root>/tuning/<run id>/trial-NNN/`.
4. **select_best**: the best trial (NaN scores never win, ties go to the
   earlier trial; optuna: each result told to the study, the study's best), written to `<data root>/hyperparameters/<model>.json`,
   which `topology_classifier` and `retrain_classifier` read when `use_tuned`
   (and `topo train --tuned`). The table of all trials is in the task log;
   the search's page (every trial, its scores, the training curves) is
   `<data root>/tuning/<run id>/report.html`, under the run's **Report** tab.

Tune on a dataset other than the one the final model is judged on.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from tasks.core.settings import parse_time_setting
from tasks.learning.tuning import GRID_KEYS, MAX_TRIALS
from topo_airflow import stages
from topo_airflow.chain import TRAINING_QUEUE, dag_defaults
from topo_airflow.params import ALL_MODELS, PROMOTION_METRICS, optional_text

MAX_PARALLEL_TRIALS = parse_time_setting("hpo_max_parallel_trials")
"""Read when the DAG is parsed: the limit is part of the task's definition."""

SPARKDLTRIGGER_GRID = {
    "hidden": [[50, 20, 10], [100, 50]],
    "activation": ["relu", "tanh"],
    "optimizer": ["adam", "rmsprop"],
    "batch_size": [64],
    "learning_rate": [1e-3],
}
"""The search SparkDLTrigger ran on the HLF classifier."""
OPTUNA_SPACE = {
    "hidden": [[50, 20, 10], [100, 50], [50, 50, 50]],
    "activation": ["relu", "tanh"],
    "optimizer": ["adam", "rmsprop"],
    "batch_size": [32, 64, 128],
    "learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
}
"""SparkDLTrigger's choices, widened, with the learning rate on a log range."""
TRAINING = "Training"  # a trigger-form section, collapsed until opened


@dag(
    dag_id="tune_hyperparameters",
    schedule=None,
    max_active_runs=1,
    tags=["hep", "topology-classifier", "tuning"],
    params={
        "model": Param("hlf", type="string", enum=list(ALL_MODELS), description="The classifier to tune."),
        "strategy": Param(
            "grid",
            type="string",
            enum=["grid", "optuna"],
            description="grid: every combination of grid. optuna: n_trials TPE trials over space, with pruning.",
        ),
        "prepared": optional_text("A prepared dataset. Empty: the newest one under the data root."),
        "grid": Param(
            SPARKDLTRIGGER_GRID,
            type="object",
            minProperties=1,
            propertyNames={"enum": list(GRID_KEYS)},
            additionalProperties={"type": "array", "minItems": 1},
            description="Lists of values per hyperparameter; every combination is a trial.",
        ),
        "space": Param(
            OPTUNA_SPACE,
            type="object",
            minProperties=1,
            propertyNames={"enum": list(GRID_KEYS)},
            description="optuna: per hyperparameter, a list of choices or {low, high, log}.",
        ),
        "n_trials": Param(
            8, type="integer", minimum=1, maximum=MAX_TRIALS, description="optuna: trials asked of the study."
        ),
        "study": optional_text("optuna: the study to create or resume. Empty: <model>-<metric>."),
        "metric": Param(
            "mean_auc",
            type="string",
            enum=PROMOTION_METRICS,
            description="What the best trial maximises (fpr99_*: minimises).",
        ),
        "write_best": Param(
            True,
            type="boolean",
            description="Write the best set to <data root>/hyperparameters/<model>.json for training.",
        ),
        "epochs": Param(5, type="integer", minimum=1, maximum=1000, section=TRAINING, description="Epochs per trial."),
        "train_seed": Param(
            42,
            type="integer",
            minimum=0,
            section=TRAINING,
            description="Random seed of every trial (same start, fair comparison).",
        ),
    },
    **dag_defaults(__doc__),
)
def tune_hyperparameters():
    @task
    def find_dataset() -> str:
        """The prepared dataset the trials train and score on."""
        return stages.find_dataset()

    @task
    def plan_trials() -> list[dict]:
        """Every combination of the grid, checked before any trial runs."""
        return stages.plan_trials(MAX_PARALLEL_TRIALS)

    @task(pool="gpu", queue=TRAINING_QUEUE, max_active_tis_per_dagrun=MAX_PARALLEL_TRIALS)
    def run_trial(prepared: str, trial: dict) -> dict:
        """Train and score one combination; track it in MLflow."""
        return stages.run_trial(prepared, trial)

    @task
    def select_best(trials: list[dict]) -> dict:
        """The best trial, written where training reads it."""
        return stages.select_best(trials)

    select_best(run_trial.partial(prepared=find_dataset()).expand(trial=plan_trials()))


tune_hyperparameters()
