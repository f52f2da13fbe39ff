"""
### topology_classifier

The LHC event-topology classifier pipeline (Nguyen et al. 2018; CERN's
SparkDLTrigger), stage by stage:

1. **generate_sample**: when no `input_dir` is given, write a Delphes-schema
   sample of QCD, tt̄ and W+jets (`generate_events` events, `seed`, with the
   `generator`: the toy, or Pythia 8 with `pileup` through a fast detector).
   The sample is keyed on its parameters and reused when it already exists.
2. **ingest_events**: read the ROOT files on Dask (as the data config
   `data_config` says; default `data_configs/delphes.yaml`), apply the trigger-like
   selection, build the 801 × 19 low-level and 14 high-level features, and
   write a Parquet dataset with its cutflow under
   `<data root>/runs/<run id>/events`.
3. **prepare_datasets**: undersample to balanced classes, split train/test by
   event identity, fit the scaler on train, order particles by ΔR from the
   lepton, and write Petastorm-ready Parquet shards (`HLF_input`,
   `GRU_input`, `encoded_label`), dev subsets and `scaler.json` under
   `<data root>/runs/<run id>/prepared`.
4. **write_feeds**: the same rows as TFRecord shards under
   `<data root>/runs/<run id>/tfrecord`, and the HLF-only feed (`tfrecord/hlf`)
   that HLF models read.
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
8. **compare_model**, **approve_promotion**, **promote_model** (one each per
   model): the explicit promotion step. The new version and the current
   champion are scored on this run's test split; the `champion` alias moves
   only if the new version is better by `promotion_metric` and
   `promotion_margin` and, with `require_approval` (off here), a person
   approved it in Required Actions within `approval_timeout_minutes`.
   `topo rollback --model <model>` undoes it.
9. **report_run**: `<data root>/runs/<run id>/report.html` and
   `summary.json`: one self-contained page with every model side by side
   (ROC curves overlaid per class, background rejection at the 99 % working
   point, the AUC table beside the paper's), the cutflow and the class balance,
   each contract's verdict and rules, the promotion decisions with both scores
   and the champion history, the training curves. Logged to MLflow with each
   registered version (tag `run_report`) and shown in the UI under the run's
   **Report** tab; the AUC table is also in the task log.

**Params** are checked against their JSON schema when the run is created (the
trigger form, the REST API, `airflow dags test --conf`): a wrong value is
refused with a message before any task runs. `smoke: true` runs the whole
chain on a small subset (at most 1,000 generated events, 500 read per file,
one file per sample, one epoch).

**Quality gates** (`validate_events`, `validate_prepared`, `validate_feeds`,
`validate_predictions`) check each dataset against its Great Expectations
contract in `data_contracts/`, partition by partition on Dask (in the task's
own process for a dataset under 256 MiB when no scheduler is named). A broken
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

from tasks.core import schema
from topo_airflow import stages
from topo_airflow.chain import choose_models, contract_gate, dag_defaults, train_evaluate_promote
from topo_airflow.params import optional_text, smoke_param, split_params, training_params


@dag(
    dag_id="topology_classifier",
    schedule=None,
    max_active_runs=1,
    tags=["hep", "topology-classifier"],
    params={
        "input_dir": optional_text(
            "Directory with qcd/, ttbar/, wjets/ subdirectories of ROOT files. Empty: generate a sample."
        ),
        "data_config": optional_text(
            "A data config (YAML: the source, tree, collections and branches of each role) for input_dir. "
            "Empty: the source is told from the files (Delphes, CMS PFNano, CMS NanoAOD) and read as "
            "data_configs/<source>.yaml says; delphes.yaml reads the paper's and the standard Delphes cards."
        ),
        "generate_events": Param(
            7000,
            type="integer",
            minimum=30,
            maximum=5_000_000,
            description="Events to generate when input_dir is empty.",
        ),
        "seed": Param(42, type="integer", minimum=0, description="Random seed of the generated sample."),
        "generator": Param(
            "toy",
            type="string",
            enum=list(schema.GENERATORS),
            description="Generator of the sample when input_dir is empty: toy (parametrised classes, seconds) or "
            "pythia8 (Pythia 8 at 13 TeV through a fast CMS-like detector, ~1 s per 10 selected events per core).",
        ),
        "pileup": Param(
            schema.DEFAULT_PILEUP,
            type="number",
            minimum=0,
            maximum=schema.MAX_PILEUP,
            section="Generator",
            description="pythia8: mean minimum-bias interactions overlaid per event.",
        ),
        **split_params("kept for the test split"),
        "smoke": smoke_param(),
        **training_params(),
    },
    **dag_defaults(__doc__),
)
def topology_classifier():
    @task
    def generate_sample() -> str:
        """The input directory: the given one, or a generated sample."""
        return stages.generate_sample()

    @task
    def ingest_events(input_dir: str) -> dict:
        """ROOT files → selected events with LLF/HLF as Parquet, on Dask."""
        return stages.ingest_events(input_dir)

    @task
    def prepare_datasets(ingested: dict) -> dict:
        """Balanced, split, scaled training data (Petastorm-ready Parquet), on Dask."""
        return stages.prepare(ingested)

    @task
    def write_feeds(prepared: dict) -> dict:
        """The prepared rows as TFRecord shards and the HLF-only feed, on Dask."""
        return stages.write_feeds(prepared)

    validate_events = contract_gate("validate_events", "ingested_events", stages.events_of)
    validate_prepared = contract_gate("validate_prepared", "prepared", stages.prepared_of)
    validate_feeds = contract_gate("validate_feeds", "feeds", stages.tfrecord_of)

    ingested = validate_events(ingest_events(generate_sample()))
    feeds = validate_feeds(write_feeds(validate_prepared(prepare_datasets(ingested))))
    train_evaluate_promote(feeds, choose_models())


topology_classifier()
