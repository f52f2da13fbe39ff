"""``topo``: every stage of the pipeline from the command line, outside Airflow.

Settings come from ``TOPO_*`` environment variables (see tasks/core/settings.py);
options given here override them for one run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from tasks.contracts.validation import ContractError
from tasks.core import schema
from tasks.core.catalog import evaluation_of, tfrecord_of
from tasks.core.errors import SettingsError, TopoError
from tasks.core.settings import Settings
from tasks.datasets.readers import BUCKET_BATCHES
from tasks.learning.records import MODEL_NAMES

DATA_CONFIG_HELP = (
    "YAML naming the source, the tree and the collections and branches of each role (default: the source "
    "told from the files: data_configs/delphes.yaml, which also finds the standard Delphes cards' names, "
    "pfnano.yaml or nanoaod.yaml)"
)


def _add_dask_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Dask")
    g.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="Dask scheduler to use, e.g. tcp://10.0.0.5:8786 (default: $TOPO_DASK_SCHEDULER, "
        "else a LocalCluster on this machine)",
    )
    g.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes of the LocalCluster (default: $TOPO_DASK_WORKERS, else cores, at most 4)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="topo",
        description="LHC event-topology classifier pipeline: each stage as a command. "
        "Outputs go under the data root ($TOPO_DATA_ROOT, default ./data in the repository).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = sub.add_parser(
        "generate",
        help="write a Delphes-schema sample of QCD, tt̄ and W+jets as ROOT files",
        description="Write a generated sample: <output>/<qcd|ttbar|wjets>/<sample>_NNN.root. "
        "Same options and seed give identical files.",
    )
    gen.add_argument("--output", type=Path, help="output directory (default: <data root>/raw/generated)")
    gen.add_argument(
        "--day", help="land the sample as that day's raw files, <raw root>/<YYYY-MM-DD>/ (the daily layout)"
    )
    gen.add_argument("--events", type=int, default=7000, help="total events over the three classes (default: 7000)")
    gen.add_argument("--files-per-sample", type=int, default=2, help="ROOT files per class (default: 2)")
    gen.add_argument(
        "--mix",
        default=None,
        help="QCD:tt̄:W+jets ratio of generated events (default: 1:2:4 for toy, 7:1:1 for pythia8, "
        "about equal selected events)",
    )
    gen.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    gen.add_argument(
        "--branch-style",
        choices=("uproot", "delphes"),
        default="uproot",
        help="branch names: uproot 'EFlowTrack_PT' or real-Delphes 'EFlowTrack.PT' (default: uproot)",
    )
    gen.add_argument(
        "--generator",
        choices=schema.GENERATORS,
        default="toy",
        help="toy: the fast parametrised classes; pythia8: Pythia 8 at 13 TeV through a fast CMS-like detector "
        "(tasks/generator/pythia.py, detector.py; about 100× slower) (default: toy)",
    )
    gen.add_argument(
        "--pileup",
        type=float,
        default=schema.DEFAULT_PILEUP,
        help=f"pythia8: mean minimum-bias interactions per event (default: {schema.DEFAULT_PILEUP:g})",
    )
    gen.add_argument("--parallel", action="store_true", help="write the files in parallel on Dask")
    _add_dask_options(gen)

    ing = sub.add_parser(
        "ingest",
        help="select events and build LLF/HLF Parquet from ROOT files, on Dask",
        description="Read ROOT files with uproot on a Dask cluster, apply the trigger-like selection, "
        "and write a Parquet dataset of events with 801×19 LLF and 14 HLF, a cutflow "
        "and a run summary. Bad files are reported and skipped.",
    )
    src = ing.add_mutually_exclusive_group()
    src.add_argument(
        "--input",
        type=Path,
        help="directory with one subdirectory of .root files per sample, named qcd, ttbar, wjets "
        "(default: <data root>/raw/generated)",
    )
    src.add_argument(
        "--samples", type=Path, help="YAML/JSON file listing samples: {samples: [{name, label, files: [globs]}]}"
    )
    ing.add_argument("--output", type=Path, help="output dataset directory (default: <data root>/events/manual)")
    ing.add_argument("--data-config", type=Path, help=DATA_CONFIG_HELP)
    ing.add_argument("--chunk", type=int, help="events per Dask task (default: $TOPO_INGEST_CHUNK, else 1000)")
    _add_dask_options(ing)

    prep = sub.add_parser(
        "prepare",
        help="undersample, split, scale and order ingested events into training data, on Dask",
        description="Balance the classes by undersampling (seeded, without replacement), split "
        "train/test by event identity, fit the scaler on train, order particles by "
        "decreasing ΔR from the lepton, and write Petastorm-ready Parquet shards "
        "(HLF_input, GRU_input, encoded_label), dev subsets and scaler.json.",
    )
    prep.add_argument("--events", type=Path, help="ingested dataset (default: <data root>/events/manual)")
    prep.add_argument("--output", type=Path, help="prepared dataset directory (default: <data root>/prepared/manual)")
    prep.add_argument("--seed", type=int, default=42, help="seed of undersampling, split and shuffle (default: 42)")
    prep.add_argument(
        "--test-fraction", type=float, default=0.2, help="share of each class in the test split (default: 0.2)"
    )
    prep.add_argument(
        "--shard-events", type=int, help="events per output shard (default: $TOPO_SHARD_EVENTS, else 2000)"
    )
    prep.add_argument(
        "--row-group-events",
        type=int,
        default=256,
        help="Parquet row-group size, the unit petastorm reads (default: 256)",
    )
    prep.add_argument(
        "--dev-train-events", type=int, default=1000, help="events in the dev subset of train (default: 1000)"
    )
    prep.add_argument(
        "--dev-test-events", type=int, default=250, help="events in the dev subset of test (default: 250)"
    )
    _add_dask_options(prep)

    feeds = sub.add_parser(
        "feeds",
        help="write the TFRecord shards and the HLF-only feed of a prepared dataset, on Dask",
        description="Write one TFRecord shard per prepared Parquet shard (same rows, same order), "
        "with the SparkDLTrigger feature names, and the HLF-only feed (<output>/hlf: event_id, HLF_input, "
        "encoded_label) that HLF models train on. The prepared Parquet is the Petastorm feed.",
    )
    feeds.add_argument("--prepared", type=Path, help="prepared dataset (default: <data root>/prepared/manual)")
    feeds.add_argument(
        "--output",
        type=Path,
        help="feeds directory (default: a run's tfrecord beside its prepared, else <prepared>-tfrecord)",
    )
    feeds.add_argument(
        "--compression",
        choices=("gzip", "none"),
        help="TFRecord compression (default: $TOPO_TFRECORD_COMPRESSION, else gzip)",
    )
    _add_dask_options(feeds)

    tr = sub.add_parser(
        "train",
        help="train a classifier on a prepared dataset (CPU, or every GPU present); resumes if killed",
        description="Train one model from either feed. A killed run continues from its last epoch "
        "backup when started again with the same output. Writes model.keras, scaler.json, "
        "history.json and training.json.",
    )
    tr.add_argument("--prepared", type=Path, help="prepared dataset (default: <data root>/prepared/manual)")
    tr.add_argument("--tfrecord", type=Path, help="TFRecord feed, for --feed tfrecord (default: <prepared>-tfrecord)")
    tr.add_argument("--model", default="inclusive", choices=MODEL_NAMES, help="the classifier (default: inclusive)")
    tr.add_argument(
        "--feed",
        default="tfrecord",
        help="tfrecord, petastorm, or numpy (NumPy batches from the prepared Parquet; the feed on KERAS_BACKEND=jax) "
        "(default: tfrecord)",
    )
    tr.add_argument("--output", type=Path, help="model directory (default: <data root>/models/manual/<model>)")
    tr.add_argument("--epochs", type=int, default=6, help="epochs (default: 6, as SparkDLTrigger)")
    tr.add_argument("--batch-size", type=int, default=128, help="events per batch (default: 128, as SparkDLTrigger)")
    tr.add_argument(
        "--learning-rate",
        default="0:5e-4,2:2e-4,4:1e-4",
        help="a rate, or epoch:rate steps (default: SparkDLTrigger's 0:5e-4,2:2e-4,4:1e-4)",
    )
    tr.add_argument(
        "--early-stopping",
        type=int,
        default=0,
        metavar="PATIENCE",
        help="stop after this many epochs without a better validation loss, keeping the best (default: 0, off)",
    )
    tr.add_argument("--seed", type=int, default=42, help="seed of weights, dropout and data order (default: 42)")
    tr.add_argument("--mixed-precision", action="store_true", help="float16 compute on GPUs (bfloat16 on CPU)")
    tr.add_argument(
        "--xla",
        choices=("auto", "on", "off"),
        default="auto",
        help="XLA compilation of the training step: auto is Keras' choice (on with GPUs, off on a CPU with "
        "TensorFlow); on: 1.8-2.1x faster on CPU once each batch length is compiled (default: auto)",
    )
    tr.add_argument(
        "--bucket-batches",
        type=int,
        default=BUCKET_BATCHES,
        metavar="K",
        help="sort the training stream in windows of K batches by sequence length and cut each batch to its "
        f"longest sequence (default: {BUCKET_BATCHES}; 0: every batch padded to 801 rows)",
    )
    tr.add_argument(
        "--cluster",
        metavar="HOST:PORT,...",
        help="train data-parallel across these worker processes, one `topo train` each, on KERAS_BACKEND=jax; "
        "worker 0 coordinates and writes --output (sets TF_CONFIG; default: TF_CONFIG if set, else one process)",
    )
    tr.add_argument("--worker-index", type=int, default=0, help="this process's place in --cluster (default: 0)")
    tr.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="N",
        help="train data-parallel in N worker processes on this machine, one GPU each where there are enough, "
        "on Keras' JAX backend (default: 1)",
    )
    tr.add_argument(
        "--tuned",
        action="store_true",
        help="use the best hyperparameters of the last search, <data root>/hyperparameters/<model>.json",
    )

    ev = sub.add_parser(
        "evaluate",
        help="score a trained model on its test split: metrics.json, plots, report.html",
        description="Per-class ROC/AUC, row-normalised confusion matrix, accuracy, background rate at "
        "99%% signal efficiency for tt̄ and W+jets, training curves, and an HTML report.",
    )
    ev.add_argument("--model-dir", type=Path, required=True, help="a directory written by topo train")
    ev.add_argument("--output", type=Path, help="report directory (default: <model dir>-evaluation)")
    ev.add_argument("--feed", help="petastorm or tfrecord (default: the feed the model was trained from)")
    ev.add_argument("--test", type=Path, help="test split to score (default: the one the model was trained with)")

    reg = sub.add_parser(
        "register",
        help="track a trained, evaluated model in MLflow and register it as a new version",
        description="Log parameters, per-epoch metrics, test metrics, the model directory and the "
        "evaluation to MLflow ($TOPO_MLFLOW_TRACKING_URI, else SQLite under the data root) "
        "and add a version to the registered model topo-<model>. Does not promote.",
    )
    reg.add_argument("--model-dir", type=Path, required=True, help="a directory written by topo train")
    reg.add_argument("--evaluation", type=Path, help="its evaluation directory (default: <model dir>-evaluation)")

    pro = sub.add_parser(
        "promote",
        help="make a registered version champion if it beats the current one on the same test data",
        description="Score the version and the current champion on the same test split (each with its own "
        "scaler) and move the 'champion' alias only if the version is better by the metric "
        "and margin. The decision is recorded on the version; promotions are kept in a history.",
    )
    pro.add_argument("--model", required=True, choices=MODEL_NAMES, help="model kind (registered as topo-<model>)")
    pro.add_argument("--version", type=int, required=True, help="the challenger's version number")
    pro.add_argument(
        "--test",
        type=Path,
        required=True,
        help="test split both are scored on (a prepared test/ or TFRecord test/ directory)",
    )
    pro.add_argument("--feed", default="petastorm", help="format of --test: petastorm or tfrecord (default: petastorm)")
    pro.add_argument(
        "--scaler",
        type=Path,
        help="scaler.json the test split was prepared with (default: found next to a prepared split)",
    )
    pro.add_argument(
        "--metric",
        default="mean_auc",
        help="mean_auc, auc_<class>, fpr99_ttbar, fpr99_wjets (lower is better) or accuracy (default: mean_auc)",
    )
    pro.add_argument("--margin", type=float, default=0.0, help="how much better the challenger must be (default: 0)")

    rb = sub.add_parser(
        "rollback",
        help="give the champion alias back to the previous champion",
        description="Undo the last change of champion of topo-<model>, using the promotion history.",
    )
    rb.add_argument("--model", required=True, choices=MODEL_NAMES, help="model kind")

    pr = sub.add_parser(
        "predict",
        help="score ROOT files or an ingested Parquet dataset with a trained or registered model",
        description="Select and featurise the events (ROOT input) as ingestion does, scale them with the "
        "model's own scaler, and write event_id, p_qcd, p_ttbar, p_wjets, predicted as Parquet. ROOT files of "
        "any source (Delphes, CMS PFNano, CMS NanoAOD) are told apart by their trees; the source and data "
        "config go into the output's metadata. Events without particles (NanoAOD) need an HLF model.",
    )
    pr.add_argument(
        "--input", required=True, help="a .root file, a directory or glob of them, or an ingested Parquet dataset"
    )
    pr.add_argument("--output", type=Path, required=True, help="the predictions Parquet file to write")
    pr.add_argument("--data-config", type=Path, help=DATA_CONFIG_HELP)
    which = pr.add_mutually_exclusive_group(required=True)
    which.add_argument("--model-dir", type=Path, help="a directory written by topo train")
    which.add_argument(
        "--model", choices=MODEL_NAMES, help="a registered model kind (topo-<model>), with --alias or --version"
    )
    which.add_argument(
        "--onnx",
        type=Path,
        metavar="EXPORT_DIR",
        help="a directory written by topo export: scores with ONNX Runtime, without importing TensorFlow",
    )
    pr.add_argument("--alias", default="champion", help="registered alias to use with --model (default: champion)")
    pr.add_argument("--version", type=int, help="registered version to use with --model (instead of the alias)")

    ex = sub.add_parser(
        "export",
        help="write a trained or registered model as a SavedModel and ONNX, with its scaler and feature order",
        description="Export for use outside the project (TF Serving, ONNX Runtime, C++ trigger code): "
        "saved_model/, model.onnx (inputs HLF_input and/or GRU_input, output probabilities), scaler.json, "
        "features.json (input shapes, feature and class order, the parity measured) and training.json. "
        "The export scores synthetic events with Keras and ONNX Runtime and writes nothing if they differ "
        "by more than 1e-5.",
    )
    source = ex.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-dir", type=Path, help="a directory written by topo train")
    source.add_argument("--model", choices=MODEL_NAMES, help="a registered model kind (topo-<model>)")
    ex.add_argument("--alias", default="champion", help="registered alias to use with --model (default: champion)")
    ex.add_argument("--version", type=int, help="registered version to use with --model (instead of the alias)")
    ex.add_argument(
        "--output",
        type=Path,
        help="export directory (default: <model dir>-export, or <data root>/exports/<model>-<vN or alias>)",
    )

    sub.add_parser(
        "training-slots",
        help="how many training tasks may run at once: the size of the Airflow pool 'gpu'",
        description="The number of NVIDIA GPUs (nvidia-smi), or $TOPO_CPU_TRAINING_SLOTS (default 1) without one. "
        "scripts/airflow-init.sh sizes the pool 'gpu' with it.",
    )
    val = sub.add_parser(
        "validate",
        help="check a dataset against its data contract (Great Expectations), on Dask",
        description="Validate a dataset against a contract in data_contracts/ (ingested_events, prepared, "
        "feeds, predictions) partition by partition on Dask. Exit status 1 when a critical "
        "expectation fails; the report names each failed rule, partition, column and examples. "
        "Results are kept under <data root>/validation (history.jsonl, per-run JSON, GX data "
        "docs) and failing partitions copied to <data root>/quarantine.",
    )
    val.add_argument("contract", help="contract name (a file in data_contracts/) or path to a contract .json")
    val.add_argument(
        "dataset",
        type=Path,
        nargs="?",
        help="the dataset: an ingested events dir, a prepared dir, a TFRecord feed dir, or a predictions file/dir",
    )
    val.add_argument(
        "--run-name", default="", help="name of this validation in the history and docs (default: UTC time)"
    )
    val.add_argument(
        "--history", action="store_true", help="print the contract's validation history instead of validating"
    )
    val.add_argument("--local", action="store_true", help="validate in this process instead of on Dask")
    _add_dask_options(val)

    sub.add_parser(
        "summary",
        help="where the outputs of a run are, its cutflow and its AUC table",
        description="Print what a finished run produced: the events, prepared data and feeds with their "
        "counts, each model and its report, and the table of test-split AUCs. RUN is a run id "
        "or a run directory (default: the newest pipeline run).",
    ).add_argument(
        "run", nargs="?", help="run id (a directory under <data root>/runs or retraining) or a run directory"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("distributed").setLevel(logging.WARNING)
    try:
        settings = Settings.from_env(
            dask_scheduler=getattr(args, "scheduler", None), dask_workers=getattr(args, "workers", None)
        )
        result = {
            "generate": _generate,
            "ingest": _ingest,
            "prepare": _prepare,
            "feeds": _feeds,
            "train": _train,
            "evaluate": _evaluate,
            "register": _register,
            "promote": _promote,
            "rollback": _rollback,
            "predict": _predict,
            "export": _export,
            "validate": _validate,
            "training-slots": _training_slots,
            "summary": _summary,
        }[args.command](args, settings)
    except ContractError as exc:
        print(f"topo {args.command}: {exc}", file=sys.stderr)
        return 1
    except TopoError as exc:
        print(f"topo {args.command}: error: {exc}", file=sys.stderr)
        return 2
    print(result if isinstance(result, str) else json.dumps(result, indent=2, default=str))
    return 0


def _generate(args, settings: Settings) -> dict:
    from tasks.generator.generate import SampleRequest, generate, parse_mix

    request = SampleRequest(
        events=args.events,
        files_per_sample=args.files_per_sample,
        mix=parse_mix(args.mix) if args.mix else None,
        seed=args.seed,
        branch_style=args.branch_style,
        generator=args.generator,
        pileup=args.pileup,
    )
    if args.day and args.output:
        raise SettingsError("give --day or --output, not both")
    if args.day:
        output = settings.catalog.raw_day(args.day)
    else:
        output = args.output or settings.catalog.generated()
    if args.parallel:
        from tasks.core.runtime import dask_client

        with dask_client(settings) as client:
            summary = generate(output, request, client)
    else:
        summary = generate(output, request)
    return {"output": str(output), "events_per_sample": summary["events_per_sample"]}


def _training_slots(args, settings: Settings) -> dict:
    from tasks.core.runtime import gpu_count, training_slots

    return {"gpus": gpu_count(), "slots": training_slots(settings)}


def _ingest(args, settings: Settings) -> dict:
    from tasks.core.runtime import dask_client
    from tasks.events.ingest import format_cutflow, ingest
    from tasks.events.samples import discover_samples, load_samples_file

    samples = (
        load_samples_file(args.samples)
        if args.samples
        else discover_samples(args.input or settings.catalog.generated())
    )
    output = args.output or settings.catalog.manual().events
    with dask_client(settings) as client:
        summary = ingest(
            samples,
            output,
            client,
            chunk=settings.ingest_chunk if args.chunk is None else args.chunk,
            data_config=str(args.data_config) if args.data_config else None,
        )
    print(format_cutflow(summary["cutflow"]), file=sys.stderr)
    return {k: summary[k] for k in ("output", "events_written", "bad_files", "seconds")}


def _prepare(args, settings: Settings) -> dict:
    from tasks.core.runtime import dask_client
    from tasks.datasets.prepare import PrepareSettings, prepare

    options = PrepareSettings(
        seed=args.seed,
        test_fraction=args.test_fraction,
        shard_events=args.shard_events or settings.shard_events,
        row_group_events=args.row_group_events,
        dev_train_events=args.dev_train_events,
        dev_test_events=args.dev_test_events,
    )
    manual = settings.catalog.manual()
    events = args.events or manual.events
    output = args.output or manual.prepared
    with dask_client(settings) as client:
        summary = prepare(events, output, client, options)
    return {k: summary[k] for k in ("output", "input_per_class", "kept_per_class", "dev", "scaler", "seconds")} | {
        split: {k: summary[split][k] for k in ("events", "per_class")} for split in ("train", "test")
    }


def _feeds(args, settings: Settings) -> dict:
    from tasks.core.runtime import dask_client
    from tasks.datasets.feeds import write_feeds

    prepared = args.prepared or settings.catalog.manual().prepared
    output = args.output or tfrecord_of(prepared)
    with dask_client(settings) as client:
        summary = write_feeds(prepared, output, client, compression=args.compression or settings.tfrecord_compression)
    return (
        {k: summary[k] for k in ("output", "compression", "seconds")}
        | {split: {k: summary[split][k] for k in ("events", "bytes")} for split in ("train", "test")}
        | {"hlf": summary["hlf"]}
    )


def _train(args, settings: Settings) -> dict:
    from tasks.learning.train import TrainSettings, parse_schedule, train

    options = TrainSettings(
        model=args.model,
        feed=args.feed,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rates=parse_schedule(args.learning_rate),
        early_stopping_patience=args.early_stopping,
        seed=args.seed,
        mixed_precision=args.mixed_precision,
        xla=args.xla,
        bucket_batches=args.bucket_batches,
    )
    if args.tuned:
        from tasks.learning.tuning import tuned_path, tuned_settings

        options, tuned = tuned_settings(options, settings.data_root)
        if tuned is None:
            raise SettingsError(f"--tuned: no search has written {tuned_path(settings.data_root, args.model)} yet")
    manual = settings.catalog.manual()
    prepared = args.prepared or manual.prepared
    tfrecord = args.tfrecord or tfrecord_of(prepared)
    output = args.output or manual.model(args.model)
    if args.cluster:
        from tasks.learning.hardware import Workers

        os.environ["TF_CONFIG"] = Workers(tuple(args.cluster.split(",")), args.worker_index).tf_config()
    if args.processes > 1:
        if args.cluster:
            raise SettingsError("--processes starts its own workers: give it or --cluster, not both")
        from tasks.learning.launch import train_processes

        result = train_processes(prepared, output, options, tfrecord=tfrecord, processes=args.processes)
    else:
        result = train(prepared, output, options, tfrecord=tfrecord)
    return {"output": str(output)} | {
        k: result[k]
        for k in ("model", "feed_format", "reader", "workers", "epochs_run", "resumed_after_epochs", "final", "devices")
    }


def _evaluate(args, settings: Settings) -> dict:
    from tasks.learning.evaluate import evaluate

    output = args.output or evaluation_of(args.model_dir)
    metrics = evaluate(args.model_dir, output, fmt=args.feed, test_path=args.test)
    return {
        "output": str(output),
        "report": str(output / "report.html"),
        "accuracy": metrics["accuracy"],
        "auc": {n: c["auc"] for n, c in metrics["classes"].items()},
    }


def _register(args, settings: Settings) -> dict:
    from tasks.learning.registry import register

    evaluation = args.evaluation or evaluation_of(args.model_dir)
    return register(args.model_dir, evaluation, settings.tracking_uri)


def _promote(args, settings: Settings) -> dict:
    from tasks.learning.registry import promote, registered_name

    scaler = args.scaler or (args.test.parent / "scaler.json" if (args.test.parent / "scaler.json").exists() else None)
    return promote(
        registered_name(args.model),
        args.version,
        args.test,
        args.feed,
        settings.tracking_uri,
        metric=args.metric,
        margin=args.margin,
        data_scaler_path=scaler,
    )


def _rollback(args, settings: Settings) -> dict:
    from tasks.learning.registry import registered_name, rollback

    return rollback(registered_name(args.model), settings.tracking_uri)


def _registered_model_dir(args, settings: Settings) -> Path:
    """--model-dir as given, or the registered version (--version, else --alias) downloaded."""
    if args.model_dir is not None:
        return args.model_dir
    from tasks.learning.registry import download, registered_name

    return download(
        registered_name(args.model),
        settings.tracking_uri,
        version=args.version,
        alias=None if args.version else args.alias,
    )


def _export(args, settings: Settings) -> dict:
    from tasks.core.catalog import export_of
    from tasks.learning.export import export

    model_dir = _registered_model_dir(args, settings)
    output = args.output
    if output is None:
        which = f"v{args.version}" if args.version else args.alias
        output = export_of(args.model_dir) if args.model_dir else settings.catalog.export(args.model, which)
    return export(model_dir, output)


def _predict(args, settings: Settings) -> dict:
    from tasks.learning.predict import predict

    model_dir = args.onnx if args.onnx is not None else _registered_model_dir(args, settings)
    from tasks.contracts import ValidationSettings

    return predict(
        args.input,
        args.output,
        model_dir,
        contracts=ValidationSettings.under(settings.data_root),
        data_config=str(args.data_config) if args.data_config else None,
    )


def _validate(args, settings: Settings) -> dict:
    from tasks.contracts import ValidationSettings, validate
    from tasks.core.runtime import dask_client

    options = ValidationSettings.under(settings.data_root, args.run_name)
    if args.history:
        from tasks.contracts import load_contract
        from tasks.contracts.validation import history_path, read_history

        path = history_path(options, load_contract(args.contract).name)
        return {"history": str(path), "runs": read_history(path)}
    if args.dataset is None:
        raise SettingsError("give the dataset to validate (or --history)")
    if args.local:
        report = validate(args.contract, args.dataset, options)
    else:
        with dask_client(settings) as client:
            report = validate(args.contract, args.dataset, options, client)
    return {
        k: report[k]
        for k in ("contract", "version", "dataset", "success", "partitions", "rows", "warnings", "docs", "run")
    }


def _summary(args, settings: Settings) -> str:
    from tasks.reporting.run_report import describe_run

    run = settings.catalog.find_run(args.run) if args.run else settings.catalog.latest_run()
    if not run.summary.exists():
        raise TopoError(f"run {run.run} did not finish (no {run.summary}):\n{describe_run(run)}")
    return describe_run(run)


if __name__ == "__main__":
    sys.exit(main())
