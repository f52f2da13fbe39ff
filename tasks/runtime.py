"""The Dask client: the configured scheduler when one is named, otherwise a
LocalCluster sized to the machine. Dask is imported here, lazily."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from tasks.config import Settings

log = logging.getLogger(__name__)


@contextmanager
def dask_client(settings: Settings) -> Iterator["distributed.Client"]:  # noqa: F821
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
    for name in ("distributed.scheduler", "distributed.nanny", "distributed.core", "distributed.batched", "distributed.http.proxy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with LocalCluster(
        n_workers=settings.dask_workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
    ) as cluster, Client(cluster) as client:
        yield client


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
