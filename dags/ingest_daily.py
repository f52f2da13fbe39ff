"""
### ingest_daily

One day of raw files becomes one validated partition, keyed on the run's data
interval (the day from `data_interval_start`, UTC):

1. **find_day_files**: `<raw root>/<YYYY-MM-DD>/<qcd|ttbar|wjets>/*.root`
   (raw root: `$TOPO_RAW_ROOT`, default `<data root>/raw`). **Empty-day
   rule:** a day without a directory or without any ROOT file is *skipped*:
   the task ends as skipped and logs why, nothing downstream runs, nothing is
   written, and a partition published earlier for that day is left as it is.
2. **ingest_day**: ingestion on Dask into
   `<data root>/staging/events/<day>/`; event ids start with the day, so
   files of the same name on different days stay distinct events.
3. **validate_day**: the `ingested_events` contract (Great Expectations, no
   retries). A broken day stops here: its staging copy is kept for inspection,
   failing parts are quarantined, the published partition is not touched.
4. **publish_day**: moves the staged day to `<data root>/events/<day>/`,
   replacing that day's previous partition and nothing else, and updates the
   Asset `topo://events/daily`, which triggers `retrain_classifier`.

Backfill: `airflow backfill create --dag-id ingest_daily --from-date
2026-01-01 --to-date 2026-01-03` runs each day independently; add
`--reprocess-behavior completed` to redo days already done (same files, same
partition, byte for byte). Land a day's files with
`topo generate --day 2026-01-01 --seed 1`.
"""

from __future__ import annotations

from airflow.sdk import CronDataIntervalTimetable, dag, get_current_context, task

from topo_airflow import stages
from topo_airflow.chain import contract_gate, dag_defaults
from topo_airflow.params import validated_events_asset


@dag(
    dag_id="ingest_daily",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    max_active_runs=2,
    tags=["hep", "topology-classifier", "daily"],
    **dag_defaults(__doc__),
)
def ingest_daily():
    @task
    def find_day_files() -> dict:
        """The day of this data interval; skipped when it brought no file."""
        return stages.find_day_files()

    @task
    def ingest_day(found: dict) -> dict:
        """The day's ROOT files → a staged Parquet partition, on Dask."""
        return stages.ingest_day(found)

    validate_day = contract_gate("validate_day", "ingested_events", stages.staged_day_of)

    @task(outlets=[validated_events_asset()])
    def publish_day(validated: dict) -> dict:
        """The validated day replaces events/<day>; the Asset tells retraining."""
        published = stages.publish_day(validated)
        get_current_context()["outlet_events"][validated_events_asset()].extra = dict(published)
        return published

    publish_day(validate_day(ingest_day(find_day_files())))


ingest_daily()
