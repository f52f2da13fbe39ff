"""The Dask client: the configured scheduler when one is named, otherwise a
LocalCluster sized to the machine. Dask is imported here, lazily."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tasks.core.settings import Settings

log = logging.getLogger(__name__)


@contextmanager
def dask_client(settings: Settings) -> Iterator[distributed.Client]:  # noqa: F821
    """A connected ``distributed.Client``, closed (with its LocalCluster) on exit."""
    from distributed import Client, LocalCluster

    if settings.dask_scheduler:
        log.info("connecting to Dask scheduler %s", settings.dask_scheduler)
        with Client(settings.dask_scheduler) as client:
            yield client
        return
    # One thread per worker process: the feature kernel holds the GIL, and
    # processes keep a crashing chunk from taking the others down.
    log.info("starting a Dask LocalCluster with %d worker processes", settings.dask_workers)
    # The in-process scheduler and nannies log every start and stop at INFO;
    # in a task log that buries the pipeline's own progress.
    for name in (
        "distributed.scheduler",
        "distributed.nanny",
        "distributed.core",
        "distributed.batched",
        "distributed.http.proxy",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)
    with (
        _workers_skip_airflow_main(),
        LocalCluster(
            n_workers=settings.dask_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@contextmanager
def _workers_skip_airflow_main() -> Iterator[None]:
    """Dask starts worker processes with multiprocessing's "spawn", which
    re-executes the parent's main script in each of them. In an Airflow task
    that script is the ``airflow`` CLI, and in a task process (where Airflow
    deliberately puts the metadata database out of reach) importing it fails:
    every worker would die at birth. The workers need nothing from it, so while
    the cluster lives the main module does not say where it came from."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    path = getattr(main, "__file__", None) or ""
    if main is None or not (path.endswith("/airflow") or (spec is not None and spec.name.startswith("airflow"))):
        yield
        return
    had_file = hasattr(main, "__file__")
    try:
        if had_file:
            del main.__file__
        main.__spec__ = None
        yield
    finally:
        if had_file:
            main.__file__ = path
        main.__spec__ = spec


def gpu_count() -> int:
    """NVIDIA GPUs on this machine, asked of nvidia-smi (importing TensorFlow
    to count them would take 15 s); 0 without a driver."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def training_slots(settings: Settings) -> int:
    """Size of the Airflow pool ``gpu``: one training task per GPU, or
    ``cpu_training_slots`` on a machine without one (TensorFlow already spreads
    one training over every core, so more at once mostly contend)."""
    return gpu_count() or settings.cpu_training_slots
