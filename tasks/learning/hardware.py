"""Where a training runs: the Keras backend, its devices, and the workers of a multi-worker run.

One process (the default): every GPU the backend sees, with TensorFlow's
MirroredStrategy or Keras' ``DataParallel`` on JAX when there are several;
the CPU without one.

Several processes, on one machine or several (``TF_CONFIG``, the cluster
spec tf.distribute and Kubeflow's TFJob set; ``topo train --workers``):
data-parallel training with ``keras.distribution`` on the JAX backend, one
copy of the model per device, gradients averaged across all of them every
step (NCCL between GPUs, Gloo between CPUs). TensorFlow's
MultiWorkerMirroredStrategy, what the paper's pipeline ran, fails inside
Keras 3's ``Model.fit`` (keras-team/keras#20585, seen with Keras 3.15.1 and
TF 2.21), so a multi-worker run asks for ``KERAS_BACKEND=jax``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from tasks.core.errors import SettingsError

log = logging.getLogger(__name__)

MULTI_WORKER_ISSUE = "https://github.com/keras-team/keras/issues/20585"
HEARTBEAT_S = 30
"""How soon the others give up on a worker that died (JAX's coordination service
heartbeat; JAX's default is 100 s). ``TOPO_WORKER_HEARTBEAT_S`` overrides it."""


@dataclass(frozen=True)
class Workers:
    """The processes of one data-parallel training; worker 0 is the chief,
    which writes the model, and its address the coordinator's."""

    addresses: tuple[str, ...]
    index: int

    def __post_init__(self) -> None:
        if not self.addresses or any(":" not in a for a in self.addresses):
            raise SettingsError(f"workers must be host:port addresses, got {list(self.addresses)}")
        if not 0 <= self.index < len(self.addresses):
            raise SettingsError(f"worker index {self.index} is not one of the {len(self.addresses)} workers")

    @property
    def count(self) -> int:
        return len(self.addresses)

    @property
    def chief(self) -> bool:
        return self.index == 0

    def own(self, path: Path) -> Path:
        """A file or directory of this worker's own: the chief's is ``path``, worker i's ``path.worker<i>``."""
        return path if self.chief else path.with_name(f"{path.name}.worker{self.index}")

    def tf_config(self) -> str:
        return json.dumps(
            {"cluster": {"worker": list(self.addresses)}, "task": {"type": "worker", "index": self.index}}
        )


def workers_from_environment(environ=os.environ) -> Workers | None:
    """The workers ``TF_CONFIG`` names, or None (one process)."""
    text = environ.get("TF_CONFIG")
    if not text:
        return None
    try:
        spec = json.loads(text)
        addresses = tuple(spec["cluster"]["worker"])
        task = spec.get("task", {})
        index = int(task.get("index", 0))
    except (ValueError, KeyError, TypeError) as error:
        raise SettingsError(
            f"TF_CONFIG must look like {{'cluster': {{'worker': ['host:port', ...]}}, 'task': {{'index': i}}}}: {error}"
        ) from None
    if (
        task.get("type", "worker") != "worker"
        or set(spec["cluster"]) - {"worker", "chief"}
        or "chief" in spec["cluster"]
    ):
        raise SettingsError("TF_CONFIG: only a cluster of 'worker' tasks is supported (worker 0 is the chief)")
    workers = Workers(addresses, index)
    return workers if workers.count > 1 else None


def backend() -> str:
    import keras

    return keras.backend.backend()


def devices(workers: Workers | None = None) -> dict:
    """The devices and strategy of this training: ``backend``, ``gpus``,
    ``strategy``, ``replicas`` (devices in all), ``processes``, and
    ``_scope``, a context to build and fit the model in."""
    name = backend()
    if workers is not None and name != "jax":
        raise SettingsError(
            f"multi-worker training runs on Keras' JAX backend: set KERAS_BACKEND=jax ({name}'s "
            f"MultiWorkerMirroredStrategy fails inside Keras' Model.fit: {MULTI_WORKER_ISSUE})"
        )
    if name == "tensorflow":
        return _tensorflow_devices()
    if name == "jax":
        return _jax_devices(workers)
    raise SettingsError(f"Keras backend {name!r} is not supported for training; use tensorflow or jax")


def _tensorflow_devices() -> dict:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    strategy = tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    return {
        "backend": "tensorflow",
        "gpus": [g.name for g in gpus],
        "strategy": type(strategy).__name__,
        "replicas": strategy.num_replicas_in_sync,
        "processes": 1,
        "_scope": strategy.scope,
    }


def _jax_devices(workers: Workers | None) -> dict:
    import logging

    import jax
    import keras

    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # "no TPU" is not news
    if workers is not None:
        # Gloo carries the CPU collectives between processes (GPUs use NCCL);
        # the heartbeat makes the others fail instead of waiting for a dead worker.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(
            workers.addresses[0],
            workers.count,
            workers.index,
            heartbeat_timeout_seconds=int(os.environ.get("TOPO_WORKER_HEARTBEAT_S", HEARTBEAT_S)),
        )
    everywhere = jax.devices()
    distribution = None
    if len(everywhere) > 1:
        # Every process feeds its own share of each batch (tasks.datasets.numpy_feed):
        # Keras must not shard the data itself.
        distribution = keras.distribution.DataParallel(devices=everywhere, auto_shard_dataset=False)
    return {
        "backend": "jax",
        "gpus": [str(d) for d in everywhere if d.platform == "gpu"],
        "strategy": type(distribution).__name__ if distribution else "default",
        "replicas": len(everywhere),
        "processes": jax.process_count(),
        "_scope": distribution.scope if distribution else contextlib.nullcontext,
    }


def agree_on_resume(workers: Workers, kept: list[int]) -> int:
    """The epoch every worker resumes after: the newest that all of them hold
    a backup of (each keeps its two newest; workers killed one epoch apart
    still share one). None shared: all start again from the first epoch."""
    import numpy as np
    from jax.experimental import multihost_utils

    mine = np.full(2, -1, np.int32)
    mine[: len(kept[-2:])] = kept[-2:]
    everyone = np.asarray(multihost_utils.process_allgather(mine)).reshape(-1, 2)
    shared = set.intersection(*({int(e) for e in row if e >= 0} for row in everyone))
    if not shared and any(row.max() >= 0 for row in everyone):
        log.warning("the workers' backups share no epoch (%s, worker 0 first): all start again", everyone.tolist())
    return max(shared, default=0)
