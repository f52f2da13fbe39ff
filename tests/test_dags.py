"""DAG integrity: the files parse, the graph is as intended, and parsing stays light."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[1] / "dags"
HEAVY = ("tensorflow", "dask", "distributed", "great_expectations", "uproot", "awkward", "numba", "pyarrow", "petastorm")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "topology_classifier" in dagbag.dag_ids


def test_topology_classifier_graph(dagbag):
    dag = dagbag.dags["topology_classifier"]
    chain = ["generate_sample", "ingest_events", "validate_events", "prepare_datasets", "validate_prepared", "write_feeds",
             "validate_feeds", "train_model", "evaluate_model", "validate_predictions", "register_model", "promote_model"]
    assert set(dag.task_ids) == set(chain)
    for upstream, downstream in zip(chain, chain[1:]):
        assert dag.get_task(upstream).downstream_task_ids == {downstream}
    assert set(dag.tags) == {"hep", "topology-classifier"}
    assert dag.doc_md and all(task_id in dag.doc_md for task_id in chain)
    gates = {t for t in chain if t.startswith("validate_")}
    for t in dag.tasks:
        # a broken contract is not fixed by retrying; every other stage retries
        assert t.retries == (0 if t.task_id in gates else 2), t.task_id
    assert set(dag.params) == {"input_dir", "generate_events", "seed", "split_seed", "test_fraction", "feed_format",
                               "epochs", "batch_size", "learning_rate", "train_seed", "promotion_metric",
                               "promotion_margin"}  # fmt: skip


def test_parsing_the_dags_imports_nothing_heavy():
    code = (
        "import runpy, sys, json, pathlib\n"
        f"for f in sorted(pathlib.Path({str(DAGS)!r}).glob('*.py')): runpy.run_path(str(f))\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
