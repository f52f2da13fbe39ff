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
5. **choose_models**, then **train_model** (one mapped task per model in `models`, by
   default the paper's HLF, particle-sequence GRU and inclusive): Keras
   training from the chosen feed, on every GPU present or the CPU, in the
   Airflow pool `gpu` (one slot per GPU), resuming from its last epoch backup
   when retried; the best hyperparameters of the last search when
   `use_tuned`; per-epoch metrics in the task log.
   Output: `<data root>/runs/<run id>/models/<model>`.
6. **evaluate_model** (one per model): ROC/AUC per class, confusion matrix,
   background rate at 99 % signal efficiency, plots, `report.html` and the
   per-event scores `predictions.parquet` under
   `<data root>/runs/<run id>/evaluation/<model>`.
7. **register_model** (one per model): an MLflow run with parameters,
   per-epoch metrics, test metrics, model and report; a new version of the
   registered model `topo-<model>`.
8. **promote_model** (one per model): the explicit promotion step. The new
   version and the current champion are scored on this run's test split;
   the `champion` alias moves only if the new version is better by
   `promotion_metric` and `promotion_margin`. `topo rollback --model <model>` undoes it.
9. **report_run**: `<data root>/runs/<run id>/report.html` and
   `summary.json`: the AUC table of every model, its promotion decision, and
   links to each model's report; the AUC table is also in the task log.

**Params** are checked against their JSON schema when the run is created (the
trigger form, the REST API, `airflow dags test --conf`): a wrong value is
refused with a message before any task runs. `smoke: true` runs the whole
chain on a small subset (at most 1,000 generated events, 500 read per file,
one file per sample, one epoch).

**Quality gates** (`validate_events`, `validate_prepared`, `validate_feeds`,
`validate_predictions`) check each dataset against its Great Expectations
contract in `data_contracts/`, partition by partition on Dask. A broken
contract fails its gate at once, without retries (every other task retries
twice, 30 s apart): nothing downstream runs,
no model is trained or promoted. The task log names each failed rule,
partition, column and example values; the GX data docs are under
`<data root>/validation/gx/uncommitted/data_docs/local_site/`, the history of
every validation in `<data root>/validation/<contract>/history.jsonl`, and
failing partitions are copied to `<data root>/quarantine/<contract>/<run>/`.

Stage logic lives in `tasks/`; this file only wires it. Settings come from
`TOPO_*` environment variables (README).
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task
from topo_airflow import stages
from topo_airflow.chain import RETRIES, START, train_evaluate_promote
from topo_airflow.params import optional_text, smoke_param, split_params, training_params


@dag(
    dag_id="topology_classifier",
    schedule=None,
    start_date=START,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    default_args=RETRIES,
    tags=["hep", "topology-classifier"],
    params={
        "input_dir": optional_text("Directory with qcd/, ttbar/, wjets/ subdirectories of ROOT files. "
                                       "Empty: generate a sample."),  # fmt: skip
        "generate_events": Param(7000, type="integer", minimum=30, maximum=5_000_000,
                                 description="Events to generate when input_dir is empty."),  # fmt: skip
        "seed": Param(42, type="integer", minimum=0, description="Seed of the generated sample."),
        **split_params("kept for the test split"),
        "smoke": smoke_param(),
        **training_params(),
    },
)
def topology_classifier():
    @task
    def generate_sample() -> str:
        """The input directory: the given one, or a generated sample."""
        from tasks.generator.generate import SampleRequest, generate
        from tasks.core.runtime import dask_client

        params, settings = stages.params(), stages.settings()
        if params["input_dir"]:
            return params["input_dir"]
        request = SampleRequest(events=params["generate_events"], seed=params["seed"])
        output = settings.data_root / "raw" / f"generated-n{request.events}-seed{request.seed}"
        with dask_client(settings) as client:
            generate(output, request, client)
        return str(output)

    @task
    def ingest_events(input_dir: str) -> dict:
        """ROOT files → selected events with LLF/HLF as Parquet, on Dask."""
        from tasks.events.ingest import Sample, discover_samples, ingest
        from tasks.core.runtime import dask_client

        params, settings = stages.params(), stages.settings()
        samples = discover_samples(input_dir)
        if params.get("files_per_sample"):  # smoke: a small subset
            samples = [Sample(s.name, s.label, s.files[: params["files_per_sample"]]) for s in samples]
        output = settings.data_root / "runs" / stages.run_key() / "events"
        with dask_client(settings) as client:
            summary = ingest(samples, output, client, chunk=settings.ingest_chunk, max_events_per_file=params.get("max_events_per_file"))
        return {"events": summary["output"], "events_written": summary["events_written"], "bad_files": sorted(summary["bad_files"])}

    @task(retries=0)
    def validate_events(ingested: dict) -> dict:
        """Gate: the ingested events keep data_contracts/ingested_events.json."""
        return ingested | {"contract": stages.check_contract("ingested_events", ingested["events"])}

    @task
    def prepare_datasets(ingested: dict) -> dict:
        """Balanced, split, scaled training data (Petastorm-ready Parquet), on Dask."""
        from pathlib import Path

        return stages.prepare(ingested["events"], Path(ingested["events"]).parent / "prepared")

    @task(retries=0)
    def validate_prepared(prepared: dict) -> dict:
        """Gate: the training data keeps data_contracts/prepared.json (balanced, disjoint, scaled, padded)."""
        return prepared | {"contract": stages.check_contract("prepared", prepared["prepared"])}

    @task
    def write_feeds(prepared: dict) -> dict:
        """The prepared rows as TFRecord shards, on Dask."""
        return stages.write_feeds(prepared)

    @task(retries=0)
    def validate_feeds(feeds: dict) -> dict:
        """Gate: Petastorm and TFRecord feeds keep data_contracts/feeds.json (same rows, same values)."""
        return feeds | {"contract": stages.check_contract("feeds", feeds["tfrecord"])}

    @task
    def choose_models() -> list[str]:
        """The models this run trains (Param `models`): one mapped chain each."""
        return list(stages.params()["models"])

    ingested = validate_events(ingest_events(generate_sample()))
    feeds = validate_feeds(write_feeds(validate_prepared(prepare_datasets(ingested))))
    train_evaluate_promote(feeds, choose_models())


topology_classifier()
