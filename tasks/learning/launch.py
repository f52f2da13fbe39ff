"""A launcher: one data-parallel training in several worker processes on this machine.

``train_processes(...)`` starts ``processes`` workers (``python -m
tasks.learning.launch``, Keras on JAX, ``TF_CONFIG`` naming free local ports),
one GPU each where the machine has enough, relays their log lines prefixed
with the worker, and returns the chief's training record. If one worker fails
the others are stopped and the error names it; started again with the same
output (an Airflow retry), the workers resume from their backups. What
``topo train --processes N`` and the DAG Param ``training_processes`` run.

Across machines, start one ``topo train --cluster host0:port,host1:port,...
--worker-index i`` per machine instead (docs/architecture.md).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
from dataclasses import asdict
from pathlib import Path

from tasks.core.errors import SettingsError, TopoError
from tasks.core.summaries import TrainingRecord
from tasks.learning.hardware import Workers

log = logging.getLogger(__name__)


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def train_processes(
    prepared: str | Path | None,
    output: str | Path,
    settings,
    tfrecord: str | Path | None = None,
    processes: int = 2,
) -> TrainingRecord:
    """Train ``settings`` (a TrainSettings) in ``processes`` workers; the chief's record."""
    from tasks.core.runtime import gpu_count

    if processes < 2:
        raise SettingsError(f"a multi-process training needs at least 2 processes, got {processes}")
    output = Path(output)
    addresses = tuple(f"127.0.0.1:{p}" for p in free_ports(processes))
    gpus = gpu_count()
    request = json.dumps(
        {
            "prepared": str(prepared) if prepared else None,
            "output": str(output),
            "tfrecord": str(tfrecord) if tfrecord else None,
        }
        | {"settings": asdict(settings)}
    )
    log.info(
        "training %s in %d worker processes (%s)",
        settings.model,
        processes,
        "one GPU each" if gpus >= processes else "CPU",
    )
    workers = []
    for index in range(processes):
        env = os.environ | {"KERAS_BACKEND": "jax", "TF_CONFIG": Workers(addresses, index).tf_config()}
        if gpus >= processes:
            env["CUDA_VISIBLE_DEVICES"] = str(index)
        worker = subprocess.Popen(
            [sys.executable, "-m", "tasks.learning.launch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        worker.stdin.write(request)
        worker.stdin.close()
        workers.append(worker)
    tails = [[] for _ in workers]
    relays = [threading.Thread(target=_relay, args=(w, i, tails[i]), daemon=True) for i, w in enumerate(workers)]
    for relay in relays:
        relay.start()
    try:
        failed = _wait(workers)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.wait()
        for relay in relays:
            relay.join(timeout=5)
    if failed is not None:
        last = "\n".join(tails[failed][-15:])
        raise TopoError(
            f"training worker {failed} of {processes} failed (exit status {workers[failed].returncode}); the others "
            f"were stopped. Started again with the same output, the workers resume from their backups. "
            f"Its last lines:\n{last}"
        )
    return json.loads((output / "training.json").read_text())


def _relay(worker: subprocess.Popen, index: int, tail: list[str]) -> None:
    for line in worker.stderr:
        line = line.rstrip()
        tail.append(line)
        del tail[:-50]
        if index == 0 or not line.startswith("INFO"):  # the others' progress repeats the chief's
            log.info("[worker %d] %s", index, line)


def _wait(workers: list[subprocess.Popen]) -> int | None:
    """Until all have ended well (None) or one has failed (its index)."""
    import time

    while True:
        codes = [w.poll() for w in workers]
        for index, code in enumerate(codes):
            if code not in (None, 0):
                return index
        if all(code == 0 for code in codes):
            return None
        time.sleep(0.2)


def _worker() -> None:
    """One worker: the request on stdin, TF_CONFIG in the environment."""
    from tasks.learning.train import TrainSettings, train

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")  # the launcher adds the time
    request = json.loads(sys.stdin.read())
    options = request["settings"]
    options["learning_rates"] = tuple(tuple(step) for step in options["learning_rates"])
    if options.get("hidden") is not None:
        options["hidden"] = tuple(options["hidden"])
    train(request["prepared"], request["output"], TrainSettings(**options), tfrecord=request["tfrecord"])


if __name__ == "__main__":
    _worker()
