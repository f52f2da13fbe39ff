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
5. **train_model** (one mapped task per model: HLF, particle-sequence GRU,
   inclusive): Keras training from the chosen feed, on every GPU present or
   the CPU, resuming from its last epoch backup when retried; per-epoch
   metrics in the task log. Output: `<data root>/runs/<run id>/models/<model>`.
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
   `promotion_metric` and `promotion_margin`. `topo rollback` undoes it.

**Quality gates** (`validate_events`, `validate_prepared`, `validate_feeds`,
`validate_predictions`) check each dataset against its Great Expectations
contract in `data_contracts/`, partition by partition on Dask. A broken
contract fails its gate at once, without retries: nothing downstream runs,
no model is trained or promoted. The task log names each failed rule,
partition, column and example values; the GX data docs are under
`<data root>/validation/gx/uncommitted/data_docs/local_site/`, the history of
every validation in `<data root>/validation/<contract>/history.jsonl`, and
failing partitions are copied to `<data root>/quarantine/<contract>/<run>/`.

Stage logic lives in `tasks/`; this file only wires it. Settings come from
`TOPO_*` environment variables (README).
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import Param, dag, get_current_context, task


TRAINED_MODELS = ("hlf", "gru", "inclusive")
"""The three classifiers of the paper; the LSTM and Transformer variants are
trained with `topo train --model ...`."""


def _run_key(run_id: str) -> str:
    """A directory name for the run's outputs: retries and re-runs of the same
    run write to the same place."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", run_id)


def _check_contract(contract: str, dataset: str, dask: bool = True) -> dict:
    """A quality gate: validate ``dataset`` against data_contracts/<contract>.json.

    A broken contract fails the task at once (AirflowFailException: no retry
    can fix the data), so nothing downstream runs; the log names the failed
    rules and where the GX data docs are."""
    from airflow.sdk.exceptions import AirflowFailException

    from tasks.config import Settings
    from tasks.contracts import ContractError, ValidationSettings, validate
    from tasks.runtime import dask_client

    settings = Settings.from_env()
    options = ValidationSettings.under(settings.data_root, run_name=f"{_run_key(get_current_context()['run_id'])}-{Path(dataset).name}")
    try:
        if dask:
            with dask_client(settings) as client:
                report = validate(contract, dataset, options, client)
        else:
            report = validate(contract, dataset, options)
    except ContractError as exc:
        raise AirflowFailException(str(exc)) from None
    return {"contract": contract, "rows": report["rows"], "docs": report["docs"], "warnings": len(report["warnings"])}


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
        "feed_format": Param("tfrecord", type="string", enum=["tfrecord", "petastorm"],
                             description="Which feed training reads."),  # fmt: skip
        # Defaults sized for the embedded demo sample (~800 training events): the
        # seed's 6 epochs of batch 128 at 5e-4 were ~27,000 steps an epoch on
        # 3.4 M events and leave a model trained on this sample near chance.
        "epochs": Param(30, type="integer", minimum=1, maximum=1000,
                        description="Training epochs. The seed: 6, on 3.4 M events."),  # fmt: skip
        "batch_size": Param(64, type="integer", minimum=1, maximum=65536,
                            description="Events per batch. The seed: 128."),  # fmt: skip
        "learning_rate": Param("0:2e-3,18:5e-4", type="string", pattern=r"^\s*(\d+:)?[0-9.eE+-]+(\s*,\s*\d+:[0-9.eE+-]+)*\s*$",
                               description="A rate, or epoch:rate steps. The seed: 0:5e-4,2:2e-4,4:1e-4."),  # fmt: skip
        "train_seed": Param(42, type="integer", minimum=0, description="Seed of weights, dropout and data order."),
        "promotion_metric": Param("mean_auc", type="string",
                                  enum=["mean_auc", "auc_qcd", "auc_ttbar", "auc_wjets", "fpr99_ttbar", "fpr99_wjets", "accuracy"],
                                  description="What a new model must improve to become champion (fpr99_*: lower is better)."),  # fmt: skip
        "promotion_margin": Param(0.0, type="number", minimum=0, description="By how much it must improve it."),
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

    @task(retries=0)
    def validate_events(ingested: dict) -> dict:
        """Gate: the ingested events keep data_contracts/ingested_events.json."""
        return ingested | {"contract": _check_contract("ingested_events", ingested["events"])}

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

    @task(retries=0)
    def validate_prepared(prepared: dict) -> dict:
        """Gate: the training data keeps data_contracts/prepared.json (balanced, disjoint, scaled, padded)."""
        return prepared | {"contract": _check_contract("prepared", prepared["prepared"])}

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

    @task(retries=0)
    def validate_feeds(feeds: dict) -> dict:
        """Gate: Petastorm and TFRecord feeds keep data_contracts/feeds.json (same rows, same values)."""
        return feeds | {"contract": _check_contract("feeds", feeds["tfrecord"])}

    @task
    def train_model(feeds: dict, model: str) -> dict:
        """One classifier, resuming from its backup if this is a retry."""
        from tasks.train import TrainSettings, parse_schedule, train

        params = get_current_context()["params"]
        settings = TrainSettings(model=model, feed=params["feed_format"], epochs=params["epochs"], batch_size=params["batch_size"],
                                 learning_rates=parse_schedule(params["learning_rate"]), seed=params["train_seed"])  # fmt: skip
        output = Path(feeds["petastorm"]).parent / "models" / model
        result = train(feeds["petastorm"], output, settings, tfrecord=feeds["tfrecord"])
        return {"model": model, "model_dir": str(output), "epochs_run": result["epochs_run"],
                "resumed_after_epochs": result["resumed_after_epochs"], "val_accuracy": result["final"].get("val_accuracy")}  # fmt: skip

    @task
    def evaluate_model(trained: dict) -> dict:
        """Metrics, plots and the HTML report of one trained model."""
        from tasks.evaluate import evaluate

        output = Path(trained["model_dir"]).parent.parent / "evaluation" / trained["model"]
        metrics = evaluate(trained["model_dir"], output)
        return {"model": trained["model"], "report": str(output / "report.html"), "accuracy": metrics["accuracy"],
                "auc": {name: c["auc"] for name, c in metrics["classes"].items()}}  # fmt: skip

    @task(retries=0)
    def validate_predictions(evaluated: dict) -> dict:
        """Gate: the model's test-split scores keep data_contracts/predictions.json."""
        predictions = str(Path(evaluated["report"]).parent / "predictions.parquet")
        return evaluated | {"contract": _check_contract("predictions", predictions, dask=False)}

    @task
    def register_model(evaluated: dict) -> dict:
        """Track the run in MLflow and add a version to topo-<model> (no promotion)."""
        from tasks.config import Settings
        from tasks.registry import register

        model_dir = Path(evaluated["report"]).parent.parent.parent / "models" / evaluated["model"]
        result = register(model_dir, Path(evaluated["report"]).parent, Settings.from_env().tracking_uri,
                          run_name=f"{evaluated['model']}-{_run_key(get_current_context()['run_id'])}")  # fmt: skip
        return {"model": evaluated["model"], "name": result["name"], "version": result["version"], "run_id": result["run_id"]}

    @task
    def promote_model(registered: dict) -> dict:
        """Champion only if better than the current one on this run's test split."""
        from tasks.config import Settings
        from tasks.registry import promote

        params = get_current_context()["params"]
        settings = Settings.from_env()
        run_dir = settings.data_root / "runs" / _run_key(get_current_context()["run_id"])
        decision = promote(registered["name"], registered["version"], run_dir / "prepared" / "test", "petastorm",
                           settings.tracking_uri, metric=params["promotion_metric"],
                           margin=params["promotion_margin"], data_scaler_path=run_dir / "prepared" / "scaler.json")  # fmt: skip
        return {k: decision[k] for k in ("name", "challenger", "champion_before", "promoted", "reason")}

    ingested = validate_events(ingest_events(generate_sample()))
    feeds = validate_feeds(write_feeds(validate_prepared(prepare_datasets(ingested))))
    trained = train_model.partial(feeds=feeds).expand(model=list(TRAINED_MODELS))
    evaluated = validate_predictions.expand(evaluated=evaluate_model.expand(trained=trained))
    promote_model.expand(registered=register_model.expand(evaluated=evaluated))


topology_classifier()
