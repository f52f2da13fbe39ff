"""
### topology_classifier

The LHC event-topology classifier pipeline (Nguyen et al. 2018; CERN's
SparkDLTrigger), stage by stage:

1. **generate_sample**: when no `input_dir` is given, write a Delphes-schema
   sample of QCD, tt̄ and W+jets (`generate_events` events, `seed`). The
   sample is keyed on its parameters and reused when it already exists.
2. **ingest_events**: read the ROOT files on Dask, apply the trigger-like
   selection, build the 801 × 19 low-level and 14 high-level features, and
   write a Parquet dataset with its cutflow under
   `<data root>/runs/<run id>/events`.
3. **prepare_datasets**: undersample to balanced classes, split train/test by
   event identity, fit the scaler on train, order particles by ΔR from the
   lepton, and write Petastorm-ready Parquet shards (`HLF_input`,
   `GRU_input`, `encoded_label`), dev subsets and `scaler.json` under
   `<data root>/runs/<run id>/prepared`.
4. **write_feeds**: the same rows as TFRecord shards under
   `<data root>/runs/<run id>/tfrecord`.

Later stages (training, evaluation, registration) are added by the following
issues. Stage logic lives in `tasks/`; this file only
wires it. Settings come from `TOPO_*` environment variables (README).
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import Param, dag, get_current_context, task


def _run_key(run_id: str) -> str:
    """A directory name for the run's outputs: retries and re-runs of the same
    run write to the same place."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", run_id)


@dag(
    dag_id="topology_classifier",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    tags=["hep", "topology-classifier"],
    params={
        "input_dir": Param("", type="string",
                           description="Directory with qcd/, ttbar/, wjets/ subdirectories of ROOT files. "
                                       "Empty: generate a sample."),  # fmt: skip
        "generate_events": Param(7000, type="integer", minimum=30, maximum=5_000_000,
                                 description="Events to generate when input_dir is empty."),  # fmt: skip
        "seed": Param(42, type="integer", minimum=0, description="Seed of the generated sample."),
        "split_seed": Param(42, type="integer", minimum=0,
                            description="Seed of undersampling, the train/test split and the shuffle."),  # fmt: skip
        "test_fraction": Param(0.2, type="number", exclusiveMinimum=0, exclusiveMaximum=1,
                               description="Share of each class kept for the test split."),  # fmt: skip
    },
)
def topology_classifier():
    @task
    def generate_sample() -> str:
        """The input directory: the given one, or a generated sample."""
        from tasks.config import Settings
        from tasks.generate import SampleRequest, generate
        from tasks.runtime import dask_client

        params = get_current_context()["params"]
        if params["input_dir"]:
            return params["input_dir"]
        settings = Settings.from_env()
        request = SampleRequest(events=params["generate_events"], seed=params["seed"])
        output = settings.data_root / "raw" / f"generated-n{request.events}-seed{request.seed}"
        with dask_client(settings) as client:
            generate(output, request, client)
        return str(output)

    @task
    def ingest_events(input_dir: str) -> dict:
        """ROOT files → selected events with LLF/HLF as Parquet, on Dask."""
        from tasks.config import Settings
        from tasks.ingest import discover_samples, ingest
        from tasks.runtime import dask_client

        settings = Settings.from_env()
        output = settings.data_root / "runs" / _run_key(get_current_context()["run_id"]) / "events"
        with dask_client(settings) as client:
            summary = ingest(discover_samples(input_dir), output, client, chunk=settings.ingest_chunk)
        return {
            "events": summary["output"],
            "events_written": summary["events_written"],
            "bad_files": sorted(summary["bad_files"]),
        }

    @task
    def prepare_datasets(ingested: dict) -> dict:
        """Balanced, split, scaled training data (Petastorm-ready Parquet), on Dask."""
        from tasks.config import Settings
        from tasks.prepare import PrepareSettings, prepare
        from tasks.runtime import dask_client

        params = get_current_context()["params"]
        settings = Settings.from_env()
        output = Path(ingested["events"]).parent / "prepared"
        options = PrepareSettings(seed=params["split_seed"], test_fraction=params["test_fraction"], shard_events=settings.shard_events)
        with dask_client(settings) as client:
            summary = prepare(ingested["events"], output, client, options)
        return {"prepared": summary["output"], "train_events": summary["train"]["events"],
                "test_events": summary["test"]["events"], "scaler_sha256": summary["scaler"]["sha256"]}  # fmt: skip

    @task
    def write_feeds(prepared: dict) -> dict:
        """The prepared rows as TFRecord shards, on Dask."""
        from tasks.config import Settings
        from tasks.feeds import write_tfrecords
        from tasks.runtime import dask_client

        settings = Settings.from_env()
        output = Path(prepared["prepared"]).parent / "tfrecord"
        with dask_client(settings) as client:
            summary = write_tfrecords(prepared["prepared"], output, client, compression=settings.tfrecord_compression)
        return {"petastorm": prepared["prepared"], "tfrecord": summary["output"], "train_events": summary["train"]["events"],
                "test_events": summary["test"]["events"]}  # fmt: skip

    write_feeds(prepare_datasets(ingest_events(generate_sample())))


topology_classifier()
