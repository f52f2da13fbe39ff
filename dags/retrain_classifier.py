"""
### retrain_classifier

Scheduled retraining with champion and challenger. Runs every Monday at 04:00
UTC **and** whenever `ingest_daily` publishes a validated partition (Asset
`topo://events/daily`); trigger it by hand with Params as well.

1. **select_window**: the validated daily partitions of the last
   `window_days` calendar days up to `window_end` (default: the newest
   published day). No partition: the run is skipped, with the reason logged.
2. **prepare_window**: one balanced, split, scaled dataset from the whole
   window, under `<data root>/retraining/<run id>/prepared`, then the
   `prepared` contract (**validate_prepared**).
3. **choose_models** (the Param `models`), then per model the challenger:
   **train_model** (pool `gpu`, tuned hyperparameters when `use_tuned`),
   **evaluate_model**, the predictions contract (**validate_predictions**)
   and **register_model** (a new version of `topo-<model>`).
4. **compare_model**: champion and challenger are scored on the same
   held-out test split of this window, each with its own scaler; the
   challenger wins only if it beats the champion by `promotion_margin` in
   `promotion_metric` (for example `fpr99_ttbar`, the background rate at 99 %
   signal efficiency, or `mean_auc`).
   **approve_promotion** (`require_approval`, on here): a winning challenger
   waits for a person in **Required Actions**, who sees both scores and
   approves or rejects; no answer within `approval_timeout_minutes` rejects.
   **promote_model**: the alias moves if the challenger won and was approved.
   The decision, both scores and who approved or rejected are stored on the
   model version (`promotion_decision` tag) and in the champion history.
5. **report_run**: the AUC table and the decisions, in
   `<data root>/retraining/<run id>/report.html`.

Rollback to the previous champion: `topo rollback --model <model>`.
"""

from __future__ import annotations

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task

from topo_airflow import stages
from topo_airflow.chain import choose_models, contract_gate, dag_defaults, train_evaluate_promote
from topo_airflow.params import optional_text, split_params, training_params, validated_events_asset


@dag(
    dag_id="retrain_classifier",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 4 * * 1", timezone="UTC"), assets=validated_events_asset()
    ),
    max_active_runs=1,
    tags=["hep", "topology-classifier", "retraining"],
    params={
        "window_days": Param(
            7,
            type="integer",
            minimum=1,
            maximum=3660,
            description="Days of validated partitions to train on.",
        ),
        "window_end": optional_text(
            "Last day of the window, YYYY-MM-DD. Empty: the newest published day.",
            pattern=r"^(\d{4}-\d{2}-\d{2})?$",
        ),
        **split_params("held out to judge champion and challenger"),
        **training_params(feed=False, require_approval=True),
    },
    **dag_defaults(__doc__),
)
def retrain_classifier():
    @task
    def select_window() -> dict:
        """The validated partitions of the window; skipped when there are none."""
        return stages.select_window()

    @task
    def prepare_window(selected: dict) -> dict:
        """One training dataset from the window's partitions, on Dask."""
        return stages.prepare_window(selected)

    # Training reads the prepared Parquet (the Petastorm feed) directly.
    validate_prepared = contract_gate("validate_prepared", "prepared", stages.prepared_of)

    train_evaluate_promote(validate_prepared(prepare_window(select_window())), choose_models())


retrain_classifier()
