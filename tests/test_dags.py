"""DAG integrity: the files parse, the graph is as intended, and parsing stays light."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[1] / "dags"
HEAVY = (
    "tensorflow",
    "dask",
    "distributed",
    "great_expectations",
    "uproot",
    "awkward",
    "numba",
    "pyarrow",
    "petastorm",
)


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"topology_classifier", "ingest_daily", "retrain_classifier", "tune_hyperparameters"}


def _assert_chain(dag, chain):
    for upstream, downstream in zip(chain, chain[1:], strict=False):
        assert downstream in dag.get_task(upstream).downstream_task_ids, (upstream, downstream)


def _assert_retries(dag, default=2):
    for t in dag.tasks:
        # a broken contract is not fixed by retrying, nor a person asked again; every other stage retries
        assert t.retries == (0 if t.task_id.startswith(("validate_", "approve_")) else default), t.task_id


def test_every_dag_is_documented_and_tagged(dagbag):
    for dag in dagbag.dags.values():
        assert {"hep", "topology-classifier"} <= set(dag.tags), dag.dag_id
        assert dag.doc_md and all(task_id in dag.doc_md for task_id in dag.task_ids), dag.dag_id
        for t in dag.tasks:
            if t.task_id.startswith(("train_", "run_trial")):
                assert t.pool == "gpu", (dag.dag_id, t.task_id)  # training shares the GPUs
                assert t.queue == "default", (dag.dag_id, t.task_id)  # TOPO_TRAINING_QUEUE unset


def test_every_dag_can_be_triggered_from_the_form_with_its_defaults(dagbag):
    """Airflow's trigger form marks a non-nullable field required and refuses
    an empty one: a default of "" would block every trigger from the UI."""
    for dag in dagbag.dags.values():
        for name in dag.params:
            param = dag.params.get_param(name)
            types = param.schema["type"] if isinstance(param.schema["type"], list) else [param.schema["type"]]
            if param.value in ("", None):
                assert "null" in types, (dag.dag_id, name, param.schema)
            param.resolve()  # the default itself is valid


def test_topology_classifier_graph(dagbag):
    dag = dagbag.dags["topology_classifier"]
    chain = [
        "generate_sample",
        "ingest_events",
        "validate_events",
        "prepare_datasets",
        "validate_prepared",
        "write_feeds",
        "validate_feeds",
        "train_model",
        "evaluate_model",
        "validate_predictions",
        "register_model",
        "compare_model",
        "approve_promotion",
        "promote_model",
        "report_run",
    ]
    assert set(dag.task_ids) == set(chain) | {"choose_models"}
    _assert_chain(dag, chain)
    assert dag.get_task("choose_models").downstream_task_ids == {"train_model"}
    _assert_retries(dag)
    assert set(dag.params) == {
        "input_dir",
        "data_config",
        "generate_events",
        "generator",
        "pileup",
        "seed",
        "split_seed",
        "test_fraction",
        "smoke",
        "models",
        "feed_format",
        "epochs",
        "batch_size",
        "learning_rate",
        "bucket_batches",
        "training_processes",
        "train_seed",
        "use_tuned",
        "promotion_metric",
        "promotion_margin",
        "require_approval",
        "approval_timeout_minutes",
    }
    assert dag.params["require_approval"] is False  # the demo promotes by itself
    assert dag.params["models"] == ["hlf", "gru", "inclusive"]
    from tasks.learning.records import MODEL_NAMES

    assert dag.params.get_param("models").schema["examples"] == list(MODEL_NAMES)  # a multi-select of them all
    assert dag.params["bucket_batches"] > 0  # trimmed sequence batches by default
    assert dag.params["training_processes"] == 1  # one process unless asked


def test_ingest_daily_is_keyed_on_the_day_and_announces_its_partition(dagbag):
    dag = dagbag.dags["ingest_daily"]
    _assert_chain(dag, ["find_day_files", "ingest_day", "validate_day", "publish_day"])
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable" and dag.timetable.expression == "0 0 * * *"
    assert [a.uri for a in dag.get_task("publish_day").outlets] == ["topo://events/daily"]
    assert dag.get_task("validate_day").retries == 0 and dag.get_task("ingest_day").retries == 2


def test_retraining_runs_on_a_schedule_and_on_new_partitions(dagbag):
    dag = dagbag.dags["retrain_classifier"]
    _assert_chain(
        dag,
        [
            "select_window",
            "prepare_window",
            "validate_prepared",
            "train_model",
            "evaluate_model",
            "validate_predictions",
            "register_model",
            "compare_model",
            "approve_promotion",
            "promote_model",
            "report_run",
        ],
    )
    assert dag.get_task("choose_models").downstream_task_ids == {"train_model"}
    assert type(dag.timetable).__name__ == "AssetOrTimeSchedule"
    assert dag.timetable.timetable.expression == "0 4 * * 1"
    assert dag.timetable.asset_condition.uri == "topo://events/daily"  # what ingest_daily's publish_day updates
    _assert_retries(dag)
    assert {"window_days", "window_end", "models", "promotion_metric", "promotion_margin"} <= set(dag.params)
    assert dag.params["require_approval"] is True  # a person approves what will filter the data
    from topo_airflow.approval import PromotionApproval

    assert dag.get_task("approve_promotion").operator_class is PromotionApproval  # one per model (mapped)
    probe = PromotionApproval(task_id="probe", compared={})
    assert probe.options == ["Approve", "Reject"] and probe.defaults == ["Reject"]  # a timeout rejects


def test_hyperparameter_search_fans_out_under_a_limit(dagbag):
    from tasks.core.settings import Settings

    dag = dagbag.dags["tune_hyperparameters"]
    _assert_chain(dag, ["plan_trials", "run_trial", "select_best"])
    trial = dag.get_task("run_trial")
    assert trial.max_active_tis_per_dagrun == Settings.from_env().hpo_max_parallel_trials
    assert set(dag.params["grid"]) == {"hidden", "activation", "optimizer", "batch_size", "learning_rate"}


def test_parsing_the_dags_imports_nothing_heavy():
    code = (
        "import runpy, sys, json, pathlib\n"
        f"for f in sorted(pathlib.Path({str(DAGS)!r}).glob('*.py')): runpy.run_path(str(f))\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_training_goes_to_the_queue_named_when_the_dags_are_parsed():
    """docker-compose.yml sets TOPO_TRAINING_QUEUE=gpu: only training reaches the GPU worker."""
    import os

    code = (
        "import json\nfrom airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(DAGS)!r})\n"
        "print(json.dumps(sorted({(t.task_id, t.queue) for d in bag.dags.values() for t in d.tasks if t.queue != 'default'})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ | {"TOPO_TRAINING_QUEUE": "gpu"},
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [["run_trial", "gpu"], ["train_model", "gpu"]]


def test_an_unrelated_bad_setting_does_not_break_dag_import_and_the_task_names_it():
    """Settings read at parse time read only their own variable: a bad TOPO_DASK_WORKERS
    (or a bad TOPO_HPO_MAX_PARALLEL_TRIALS) leaves every DAG importable; the tasks,
    which read all settings, fail naming the variable."""
    import os

    code = (
        "import json\nfrom airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(DAGS)!r})\n"
        "limit = bag.dags['tune_hyperparameters'].get_task('run_trial').max_active_tis_per_dagrun\n"
        "print(json.dumps({'errors': {k: str(v) for k, v in bag.import_errors.items()}, 'dags': sorted(bag.dag_ids), 'limit': limit}))"
    )
    bad = {"TOPO_DASK_WORKERS": "many", "TOPO_HPO_MAX_PARALLEL_TRIALS": "lots"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ | bad)
    parsed = json.loads(out.stdout.strip().splitlines()[-1])
    assert parsed["errors"] == {}
    assert len(parsed["dags"]) == 4
    assert parsed["limit"] == 2  # the default, with a warning, while parsing

    from tasks.core.errors import SettingsError
    from topo_airflow import stages

    old = {k: os.environ.get(k) for k in bad}
    os.environ.update(bad)
    try:
        with pytest.raises(SettingsError, match="TOPO_DASK_WORKERS='many'"):
            stages.settings()  # what every task body reads first
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def test_trigger_form_fields_are_grouped_in_sections(dagbag):
    """What a run usually chooses stays in the form's open "Run Parameters";
    the settings most runs keep are grouped in sections (collapsed until opened)."""

    def sections(dag_id):
        dag = dagbag.dags[dag_id]
        return {name: dag.params.get_param(name).schema.get("section") for name in dag.params}

    pipeline = sections("topology_classifier")
    assert {n for n, s in pipeline.items() if s is None} == {
        "input_dir",
        "data_config",
        "generate_events",
        "seed",
        "generator",
        "smoke",
        "models",
        "feed_format",
    }
    assert {s for s in pipeline.values() if s} == {"Generator", "Data split", "Training", "Promotion"}
    assert pipeline["epochs"] == pipeline["learning_rate"] == "Training" and pipeline["split_seed"] == "Data split"
    retraining = sections("retrain_classifier")
    assert {n for n, s in retraining.items() if s is None} == {"window_days", "window_end", "models"}
    assert retraining["promotion_margin"] == "Promotion"
    tuning = sections("tune_hyperparameters")
    assert tuning["epochs"] == tuning["train_seed"] == "Training" and tuning["grid"] is None


def test_every_gate_comes_from_the_one_factory(dagbag):
    """Gates are made by topo_airflow.chain.contract_gate: same retries (none), same docs."""
    for dag in dagbag.dags.values():
        for t in dag.tasks:
            if t.task_id.startswith("validate_"):
                assert t.retries == 0 and "data_contracts/" in (t.doc_md or ""), (dag.dag_id, t.task_id)


def test_the_generator_and_its_pileup_are_refused_outside_what_exists(dagbag):
    from airflow.sdk.definitions.param import ParamValidationError

    from tasks.core import schema

    params = dagbag.dags["topology_classifier"].params
    generator, pileup = params.get_param("generator"), params.get_param("pileup")
    assert generator.resolve("pythia8") == "pythia8" and pileup.resolve(20) == 20
    with pytest.raises(ParamValidationError):
        generator.resolve("herwig")
    with pytest.raises(ParamValidationError):
        pileup.resolve(schema.MAX_PILEUP + 1)
