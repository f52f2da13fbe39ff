"""Task bodies shared by the DAGs: read the run's context and Params, call a
stage in ``tasks/``, return a payload (topo_airflow.payloads) for XCom.

Every path comes from the run catalog (tasks.core.catalog): payloads carry
the run and the model, not paths. Heavy modules (TensorFlow, Dask, Great
Expectations) are imported inside the functions, so DAG files that import
this stay light.
"""

from __future__ import annotations

import logging
from pathlib import Path

from airflow.sdk import get_current_context

from topo_airflow.params import effective
from topo_airflow.payloads import (
    Approved,
    Compared,
    Day,
    DayIngested,
    DayPublished,
    Decision,
    Evaluated,
    GateResult,
    Ingested,
    Prepared,
    Registered,
    RunRef,
    RunReport,
    SearchResult,
    Trained,
    TrialResult,
    Window,
)

log = logging.getLogger(__name__)


def run_key(run_id: str | None = None) -> str:
    """A directory name for the run's outputs: retries and re-runs of the same
    run write to the same place."""
    from tasks.core.catalog import run_key as key

    return key(run_id or get_current_context()["run_id"])


def params() -> dict:
    """This run's Params, smoke caps applied."""
    return effective(get_current_context()["params"])


def settings():
    from tasks.core.settings import Settings

    return Settings.from_env()


def this_run(kind: str = "runs") -> RunRef:
    return {"run": run_key(), "kind": kind}


def run_of(payload: RunRef) -> RunRef:
    """The run a payload names, to start the next task's payload with."""
    return {"run": payload["run"], "kind": payload["kind"]}


def layout(ref: RunRef):
    """The catalog's layout of the run a payload names."""
    return settings().catalog.run(ref["run"], ref["kind"])


# --- contract gates ------------------------------------------------------------
def events_of(ref: RunRef) -> Path:
    return layout(ref).events


def prepared_of(ref: RunRef) -> Path:
    return layout(ref).prepared


def tfrecord_of(ref: RunRef) -> Path:
    return layout(ref).tfrecord


def predictions_of(ref: Evaluated) -> Path:
    return layout(ref).evaluation(ref["model"]) / "predictions.parquet"


def staged_day_of(day: Day) -> Path:
    return settings().catalog.staging_partition(day["day"])


def check_contract(contract: str, dataset: str | Path, dask: bool = True) -> GateResult:
    """A quality gate: validate ``dataset`` against data_contracts/<contract>.json.

    A broken contract fails the task at once (AirflowFailException: no retry
    can fix the data), so nothing downstream runs; the log names the failed
    rules and where the GX data docs are."""
    from airflow.sdk.exceptions import AirflowFailException

    from tasks.contracts import ContractError, ValidationSettings, validate
    from tasks.contracts.validation import worth_a_cluster
    from tasks.core.runtime import dask_client

    config = settings()
    dataset = Path(dataset)
    # A file is named with its folder: each model's predictions.parquet keeps its own results.
    label = f"{dataset.parent.name}-{dataset.stem}" if dataset.suffix else dataset.name
    options = ValidationSettings.under(config.data_root, run_name=f"{run_key()}-{label}")
    # A scheduler that is already running costs nothing to use; a LocalCluster
    # only pays for itself on a dataset of some size.
    dask = dask and (bool(config.dask_scheduler) or worth_a_cluster(dataset))
    try:
        if dask:
            with dask_client(config) as client:
                report = validate(contract, dataset, options, client)
        else:
            report = validate(contract, dataset, options)
    except ContractError as exc:
        raise AirflowFailException(str(exc)) from None
    return {"contract": contract, "rows": report["rows"], "docs": report["docs"], "warnings": len(report["warnings"])}


# --- topology_classifier ---------------------------------------------------------
def generate_sample() -> str:
    """The input directory: the given one, or a generated sample (reused when it exists)."""
    from tasks.core import schema
    from tasks.core.runtime import dask_client
    from tasks.generator.generate import SampleRequest, generate

    p, config = params(), settings()
    if p["input_dir"]:
        return p["input_dir"]
    request = SampleRequest(
        events=p["generate_events"],
        seed=p["seed"],
        generator=p.get("generator", "toy"),
        pileup=p.get("pileup", schema.DEFAULT_PILEUP),
    )
    output = config.catalog.generated(request.events, request.seed, request.generator, request.pileup)
    with dask_client(config) as client:
        generate(output, request, client)
    return str(output)


def ingest_events(input_dir: str) -> Ingested:
    """ROOT files → the run's selected events with LLF/HLF, on Dask."""
    from tasks.core.runtime import dask_client
    from tasks.events.ingest import ingest
    from tasks.events.samples import Sample, discover_samples

    p, config = params(), settings()
    samples = discover_samples(input_dir)
    if p.get("files_per_sample"):  # smoke: a small subset
        samples = [Sample(s.name, s.label, s.files[: p["files_per_sample"]]) for s in samples]
    ref = this_run()
    with dask_client(config) as client:
        summary = ingest(
            samples,
            layout(ref).events,
            client,
            chunk=config.ingest_chunk,
            data_config=p.get("data_config"),
            max_events_per_file=p.get("max_events_per_file"),
        )
    return ref | {"events_written": summary["events_written"], "bad_files": sorted(summary["bad_files"])}


def prepare(ref: RunRef, events: list[Path] | None = None) -> Prepared:
    """Balanced, split, scaled training data from ingested events, on Dask:
    the run's own events, or the given partitions (retraining)."""
    from tasks.core.runtime import dask_client
    from tasks.datasets.prepare import PrepareSettings
    from tasks.datasets.prepare import prepare as run_prepare

    p, config = params(), settings()
    options = PrepareSettings(seed=p["split_seed"], test_fraction=p["test_fraction"], shard_events=config.shard_events)
    where = layout(ref)
    source = [str(e) for e in events] if events is not None else where.events
    with dask_client(config) as client:
        summary = run_prepare(source, where.prepared, client, options)
    return {
        **run_of(ref),
        "feeds": ["petastorm"],
        "train_events": summary["train"]["events"],
        "test_events": summary["test"]["events"],
        "scaler_sha256": summary["scaler"]["sha256"],
    }


def write_feeds(prepared: Prepared) -> Prepared:
    """The prepared rows as TFRecord shards and the HLF-only feed next to them, on Dask."""
    from tasks.core.runtime import dask_client
    from tasks.datasets.feeds import write_feeds

    config = settings()
    where = layout(prepared)
    with dask_client(config) as client:
        write_feeds(where.prepared, where.tfrecord, client, compression=config.tfrecord_compression)
    return prepared | {"feeds": ["petastorm", "tfrecord", "hlf"]}


def choose_models() -> list[str]:
    """The models this run trains (Param ``models``)."""
    return list(params()["models"])


# --- the model chain ------------------------------------------------------------------
def train(feeds: Prepared, model: str) -> Trained:
    """One classifier from the run's Params (and the tuned hyperparameters when
    ``use_tuned``), resuming from its backup if this is a retry."""
    from airflow.sdk.exceptions import AirflowFailException

    from tasks.learning.train import TrainSettings, parse_schedule
    from tasks.learning.train import train as run_train
    from tasks.learning.tuning import tuned_settings

    p, config = params(), settings()
    feed = p.get("feed_format", "petastorm")
    if feed not in feeds["feeds"]:  # a wiring error no retry can fix
        raise AirflowFailException(f"feed {feed!r} was not written for this run (written: {', '.join(feeds['feeds'])})")
    options = TrainSettings(
        model=model,
        feed=feed,
        epochs=p["epochs"],
        batch_size=p["batch_size"],
        learning_rates=parse_schedule(p["learning_rate"]),
        seed=p["train_seed"],
        bucket_batches=p.get("bucket_batches", TrainSettings.bucket_batches),
    )
    tuned = None
    if p.get("use_tuned", True):
        options, tuned = tuned_settings(options, config.data_root)
    where = layout(feeds)
    tfrecord = where.tfrecord if "tfrecord" in feeds["feeds"] else None
    processes = p.get("training_processes", 1)
    if processes > 1:
        from tasks.learning.launch import train_processes

        result = train_processes(where.prepared, where.model(model), options, tfrecord=tfrecord, processes=processes)
    else:
        result = run_train(where.prepared, where.model(model), options, tfrecord=tfrecord)
    return {
        **run_of(feeds),
        "model": model,
        "epochs_run": result["epochs_run"],
        "tuned": bool(tuned),
        "resumed_after_epochs": result["resumed_after_epochs"],
        "val_accuracy": result["final"].get("val_accuracy"),
    }


def evaluate(trained: Trained) -> Evaluated:
    """Metrics, plots, the HTML report and per-event scores of one trained model."""
    from tasks.learning.evaluate import evaluate as run_evaluate

    where, model = layout(trained), trained["model"]
    metrics = run_evaluate(where.model(model), where.evaluation(model))
    return {
        **run_of(trained),
        "model": model,
        "accuracy": metrics["accuracy"],
        "auc": {name: c["auc"] for name, c in metrics["classes"].items()},
    }


def register(evaluated: Evaluated) -> Registered:
    """Track the model in MLflow and add a version to topo-<model> (no promotion)."""
    from tasks.learning.registry import register as run_register

    where, model = layout(evaluated), evaluated["model"]
    result = run_register(
        where.model(model), where.evaluation(model), settings().tracking_uri, run_name=f"{model}-{run_key()}"
    )
    return {
        **run_of(evaluated),
        "model": model,
        "name": result["name"],
        "version": result["version"],
        "run_id": result["run_id"],
    }


def compare(registered: Registered) -> Compared:
    """Champion and challenger scored on this run's test split (nothing moves
    yet): whether the challenger wins, by the run's promotion metric."""
    from tasks.learning.registry import compare as run_compare

    p = params()
    prepared = layout(registered).prepared
    decision = run_compare(
        registered["name"],
        registered["version"],
        prepared / "test",
        "petastorm",
        settings().tracking_uri,
        metric=p["promotion_metric"],
        margin=p["promotion_margin"],
        data_scaler_path=prepared / "scaler.json",
    )
    log.info(
        "%s v%s against the champion: %s; scores %s",
        registered["name"],
        registered["version"],
        decision["reason"],
        {role: s[decision["metric"]] for role, s in decision["scores"].items()},
    )
    return {**run_of(registered), "model": registered["model"], "decision": decision}


def promote(approved: Approved) -> Decision:
    """The alias moves to a better challenger unless its approval was refused;
    the decision, both scores and the approval are kept on the version."""
    from tasks.learning.registry import decide

    decision = decide(approved["decision"], settings().tracking_uri, approved["approval"])
    log.info(
        "promotion of %s v%s: %s (%s)",
        decision["name"],
        decision["challenger"],
        "PROMOTED" if decision["promoted"] else "not promoted",
        decision["reason"],
    )
    kept = {k: decision[k] for k in ("name", "challenger", "champion_before", "promoted", "reason", "metric")}
    return {
        **run_of(approved),
        "model": approved["model"],
        **kept,
        "scores": {role: s[decision["metric"]] for role, s in decision["scores"].items()},
        "approval": approved["approval"],
    }


def report(decisions: list[Decision]) -> RunReport:
    """The run's one-page report (models side by side, data, contracts, promotions),
    logged to MLflow with each version the run registered."""
    from tasks.learning.registry import attach_report
    from tasks.reporting.run_report import auc_table, summarise_run

    decisions = list(decisions)
    where, config = layout(decisions[0]), settings()
    title = {"retraining": "Retraining run"}.get(decisions[0]["kind"], "Topology classifier run")
    summary = summarise_run(where, decisions, config.tracking_uri, config.data_root / "validation", title)
    for d in decisions:
        attach_report(d["name"], d["challenger"], where.report, config.tracking_uri)
    log.info("run %s:\n%s\nreport: %s", where.run, auc_table(summary), summary["report"])
    return {
        **run_of(decisions[0]),
        "report": summary["report"],
        "summary": str(where.summary),
    }


# --- ingest_daily ------------------------------------------------------------------------
def find_day_files() -> Day:
    """The day of this data interval; skipped (the empty-day rule) when it brought no file."""
    from airflow.sdk.exceptions import AirflowSkipException

    from tasks.events.daily import has_input

    day = get_current_context()["data_interval_start"].in_timezone("UTC").strftime("%Y-%m-%d")
    catalog = settings().catalog
    raw = catalog.raw_day(day)
    if not has_input(raw):
        raise AirflowSkipException(
            f"no ROOT files for {day} under {raw}/<qcd|ttbar|wjets>/: nothing to ingest (empty-day rule: the day "
            f"is skipped; {catalog.partition(day)} is left as it is)"
        )
    return {"day": day}


def ingest_day(found: Day) -> DayIngested:
    """The day's ROOT files → a staged Parquet partition, on Dask."""
    from tasks.core.runtime import dask_client
    from tasks.events.ingest import ingest
    from tasks.events.samples import discover_samples

    config, day = settings(), found["day"]
    with dask_client(config) as client:
        summary = ingest(
            discover_samples(config.catalog.raw_day(day)),
            config.catalog.staging_partition(day),
            client,
            chunk=config.ingest_chunk,
            id_prefix=f"{day}/",
        )
    return {"day": day, "events_written": summary["events_written"], "bad_files": sorted(summary["bad_files"])}


def publish_day(validated: DayIngested) -> DayPublished:
    """The validated day replaces events/<day>."""
    from tasks.events.daily import publish

    config, day = settings(), validated["day"]
    final = publish(config.catalog.staging_partition(day), config.data_root, day)
    return {"day": day, "partition": str(final), "events": validated["events_written"]}


# --- retrain_classifier ------------------------------------------------------------------
def select_window() -> Window:
    """The validated partitions of the window; skipped when there are none."""
    from airflow.sdk.exceptions import AirflowSkipException

    from tasks.events.daily import window

    p, config = params(), settings()
    found = window(config.data_root, p["window_days"], p["window_end"])
    if not found:
        raise AirflowSkipException(
            f"no validated partition under {config.catalog.partitions} in the "
            f"{p['window_days']} days up to {p['window_end'] or 'the newest'}: nothing to retrain on"
        )
    return {"partitions": [str(p) for p in found], "days": [p.name for p in found]}


def prepare_window(selected: Window) -> Prepared:
    """One training dataset from the window's partitions, on Dask."""
    return prepare(this_run("retraining"), [Path(p) for p in selected["partitions"]]) | {"days": selected["days"]}


# --- tune_hyperparameters ------------------------------------------------------------------
def find_dataset() -> str:
    from tasks.learning.tuning import find_prepared

    return str(find_prepared(settings().data_root, params()["prepared"]))


def _study(p: dict) -> tuple[str, str]:
    """The Optuna study of a search: its name (default <model>-<metric>) and storage."""
    from tasks.learning.optuna_search import storage_url

    return p["study"] or f"{p['model']}-{p['metric']}", storage_url(settings().data_root)


def plan_trials(max_parallel: int) -> list[dict]:
    from tasks.learning.tuning import expand_grid

    p = params()
    if p["strategy"] == "optuna":
        from tasks.learning.optuna_search import ask_trials

        name, url = _study(p)
        trials = ask_trials(name, url, p["space"], p["model"], p["metric"], p["n_trials"], p["train_seed"])
    else:
        trials = expand_grid(p["grid"], p["model"])
    log.info("%d %s trials of %s, at most %d at once", len(trials), p["strategy"], p["model"], max_parallel)
    return trials


def run_trial(prepared: str, trial: dict) -> TrialResult:
    from tasks.learning.tuning import log_trial
    from tasks.learning.tuning import run_trial as run_one

    p, config = params(), settings()
    output = config.catalog.run(run_key(), "tuning").trial(trial["index"])
    callbacks = ()
    if "optuna" in trial:  # report each epoch's validation loss; stop when the pruner says so
        from tasks.learning.optuna_search import pruning_callback

        callbacks = (pruning_callback(trial["optuna"], p["metric"], p["train_seed"]),)
    result = run_one(prepared, output, p["model"], trial, p["epochs"], p["train_seed"], p["metric"], callbacks)
    result["search"] = run_key()
    result["mlflow_run_id"] = log_trial(config.tracking_uri, run_key(), result)
    return {k: result.get(k) for k in TrialResult.__annotations__}  # type: ignore[return-value]


def select_best(trials: list[TrialResult]) -> SearchResult:
    from tasks.learning.tuning import best_trial, save_best
    from tasks.reporting.tuning_report import write_search_report

    p = params()
    trials = sorted(trials, key=lambda t: t["index"])
    if p["strategy"] == "optuna":
        from tasks.learning.optuna_search import tell_trials

        name, url = _study(p)
        best = tell_trials(name, url, p["metric"], p["train_seed"], trials)
        log.info("study %r: %d trials; the best is trial %d", name, best["study_trials"], best["index"])
    else:
        best = best_trial(trials, p["metric"])
    for t in trials:
        log.info(
            "%s trial %3d  %s %.4f  %s%s",
            "*" if t["index"] == best["index"] else " ",
            t["index"],
            p["metric"],
            t["score"],
            t["hyperparameters"],
            f"  (pruned after epoch {t['pruned_at']})" if t.get("pruned_at") else "",
        )
    out: SearchResult = {
        "best": best["index"],
        "score": best["score"],
        "hyperparameters": best["hyperparameters"],
        "trials": len(trials),
        "strategy": p["strategy"],
    }
    if p["write_best"]:
        out["written"] = str(save_best(settings().data_root, best, run_key(), len(trials)))
    search = settings().catalog.run(run_key(), "tuning")
    out["report"] = str(write_search_report(search, p["metric"], best["index"], out.get("written"), best))
    log.info("report of the search: %s", out["report"])
    return out
