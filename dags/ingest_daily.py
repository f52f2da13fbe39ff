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
from topo_airflow.chain import RETRIES, START
from topo_airflow.params import validated_events_asset


@dag(
    dag_id="ingest_daily",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=START,
    catchup=False,
    max_active_runs=2,
    doc_md=__doc__,
    default_args=RETRIES,
    tags=["hep", "topology-classifier", "daily"],
)
def ingest_daily():
    @task
    def find_day_files() -> dict:
        """The day of this data interval and its raw directory; skipped when it brought no file."""
        from airflow.sdk.exceptions import AirflowSkipException

        from tasks.events.daily import has_input, partition, raw_day

        day = get_current_context()["data_interval_start"].in_timezone("UTC").strftime("%Y-%m-%d")
        settings = stages.settings()
        raw = raw_day(settings.raw_dir, day)
        if not has_input(raw):
            raise AirflowSkipException(
                f"no ROOT files for {day} under {raw}/<qcd|ttbar|wjets>/: nothing to ingest (empty-day rule: the day "
                f"is skipped; {partition(settings.data_root, day)} is left as it is)"
            )
        return {"day": day, "raw": str(raw)}

    @task
    def ingest_day(found: dict) -> dict:
        """The day's ROOT files → a staged Parquet partition, on Dask."""
        from tasks.events.daily import staging_partition
        from tasks.events.ingest import discover_samples, ingest
        from tasks.core.runtime import dask_client

        settings = stages.settings()
        staged = staging_partition(settings.data_root, found["day"])
        with dask_client(settings) as client:
            summary = ingest(discover_samples(found["raw"]), staged, client, chunk=settings.ingest_chunk, id_prefix=f"{found['day']}/")
        return found | {"staged": str(staged), "events_written": summary["events_written"], "bad_files": sorted(summary["bad_files"])}

    @task(retries=0)
    def validate_day(ingested: dict) -> dict:
        """Gate: the staged day keeps data_contracts/ingested_events.json."""
        return ingested | {"contract": stages.check_contract("ingested_events", ingested["staged"])}

    @task(outlets=[validated_events_asset()])
    def publish_day(validated: dict) -> dict:
        """The validated day replaces events/<day>; the Asset tells retraining."""
        from tasks.events.daily import publish

        final = publish(validated["staged"], stages.settings().data_root, validated["day"])
        get_current_context()["outlet_events"][validated_events_asset()].extra = {
            "day": validated["day"], "partition": str(final), "events": validated["events_written"]}  # fmt: skip
        return {"day": validated["day"], "partition": str(final), "events": validated["events_written"]}

    publish_day(validate_day(ingest_day(find_day_files())))


ingest_daily()
