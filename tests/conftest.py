"""Shared fixtures: a small generated sample and one capped Dask cluster per session."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Tests get an Airflow home of their own (SQLite, created on demand): they never
# read or write the user's Airflow. Set before anything imports airflow.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="topo-airflow-")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

# Numba caches compiled kernels next to the sources; keep test runs from
# depending on (or polluting) a cache made by another numba version.
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".pytest_cache", "numba"))


@pytest.fixture(scope="session")
def generated_sample(tmp_path_factory):
    """150 events (50 per class) in two files per class, uproot branch naming."""
    from tasks.generator.generate import SampleRequest, generate

    out = tmp_path_factory.mktemp("sample") / "raw"
    generate(out, SampleRequest(events=150, files_per_sample=2, mix=(1, 1, 1), seed=11))
    return out


@pytest.fixture(scope="session")
def dask_client():
    """A real two-worker LocalCluster, capped so tests cannot exhaust the machine."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, memory_limit="3GiB", dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="session")
def ingested_events(generated_sample, dask_client, tmp_path_factory):
    """The generated sample ingested in chunks of 20 events: many small parts."""
    from tasks.events.ingest import ingest
    from tasks.events.samples import discover_samples

    out = tmp_path_factory.mktemp("ingested") / "events"
    ingest(discover_samples(generated_sample), out, dask_client, chunk=20)
    return out


@pytest.fixture(scope="session")
def prepared(ingested_events, dask_client, tmp_path_factory):
    """Prepared data in several shards and row groups, so that shuffling,
    bucketing and rebatching all have something to do."""
    from tasks.datasets.prepare import PrepareSettings, prepare

    out = tmp_path_factory.mktemp("prepared") / "prepared"
    settings = PrepareSettings(seed=3, shard_events=12, row_group_events=5, dev_train_events=7, dev_test_events=4)
    return out, prepare(ingested_events, out, dask_client, settings), settings


@pytest.fixture(scope="session")
def local_cluster():
    """scripts/cluster.sh started in a temporary home on free ports; stopped at
    the end, and the stop must leave no process of it behind."""
    from tests.support.local_cluster import LocalCluster

    cluster = LocalCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        processes = cluster.processes()
        stopped = cluster.stop()
        survivors = [p for p in processes if p.is_running() and p.status() != "zombie"]
        cluster.remove()
    assert stopped.returncode == 0, stopped.stderr
    assert not survivors, f"cluster.sh stop left {survivors}"


# scripts/run-tests.sh runs the suite on two pytest-xdist workers. A module
# is one unit of work, so its module-scoped fixtures are built once; the two
# modules on the local cluster share its session fixture, so they are one
# unit too. The longest units go first, in roughly their measured order, so
# that neither worker is left with a long module at the end while the other
# idles. (xdist's own `--dist loadgroup` cannot do the grouping with pytest 9:
# it renames the items through an attribute pytest no longer reads.)
LONGEST_FIRST = [
    "test_compose_up",  # builds the images, then a run with a killed worker
    "local-cluster",  # the cluster's and the browser's runs
    "test_train_evaluate",
    "test_airflow_operations",
    "test_pipeline_airflow",
    "test_jax_training",
    "test_retraining",
    "test_optuna_search",
]
SHARED_UNITS = {"test_local_cluster": "local-cluster", "test_ui_browser": "local-cluster"}


def unit_of(nodeid: str) -> str:
    """The unit of work of a test: its module, or the unit its module shares."""
    module = nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")
    return SHARED_UNITS.get(module, module)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(unit_of(item.nodeid), len(rank)))  # stable: the rest keep their order


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    """Units handed out whole, in collection order (the order above)."""
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

    config.option.loadscopereorder = False
    return UnitScheduling(config, log)
