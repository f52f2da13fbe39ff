"""The NumPy feed: batches of NumPy arrays read with pyarrow from Parquet, no TensorFlow.

What Keras trains on where tf.data is not there (``KERAS_BACKEND=jax``, a GPU
host with JAX and no TensorFlow: benchmarks/gpu_check.py), and a third feed
on TensorFlow (``feed="numpy"``). It reads the prepared Parquet (the
Petastorm feed's files) or the HLF-only feed, and makes the batches the
tf.data readers make (tasks/datasets/readers.py):

- Training reads the row groups in an order drawn from ``(seed, epoch)``, on
  top of the full shuffle the data got when prepared; evaluation in stored
  order. Models of HLF inputs only hold a split in memory (17 floats an
  event) and draw a permutation of all events per epoch, as the HLF-only
  feed's reader does.
- ``bucket_batches`` > 0: sorting windows of that many batches, each sorted
  by real sequence length and cut into batches trimmed to their longest
  sequence rounded up to ``BUCKET_ROWS`` (``readers.sorting_window``); the
  batches of a window in an order drawn from ``(seed, epoch, window)``.
- An epoch is exactly ``len(feed)`` batches.
- Data parallel (``replicas`` devices in all, ``shard=(i, n)`` for process
  ``i`` of ``n``): every process reads the same stream and builds the same
  batches, then keeps its own contiguous share of each (tf.data's DATA
  sharding). A batch that does not divide among the devices is padded with
  copies of its first events of sample weight 0, and its real events weigh
  ``padded / real``: Keras divides a batch's weighted loss by its size, so
  the loss, and so the step, are those of the real events alone. Batches are
  then ``(x, y, sample_weight)``.

Reading runs one batch window ahead in a thread (pyarrow and NumPy release
the GIL), so the next batches are ready while a step runs.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from tasks.core import schema
from tasks.datasets.feeds import FeedError
from tasks.datasets.readers import (
    BUCKET_ROWS,
    N_CLASSES,
    check_feed_options,
    feed_files,
    input_names,
    model_input,
    steps_per_epoch,
)

NUMPY_FORMAT = "numpy"
SHAPES = {
    "encoded_label": (N_CLASSES,),
    "HLF_input": (schema.HLF_FEATURES,),
    "GRU_input": (schema.LLF_ROWS, schema.LLF_FEATURES),
}


def real_lengths(gru: np.ndarray) -> np.ndarray:
    """Rows up to and including each event's last non-zero row: (n, L, 19) → (n,)."""
    real = np.any(gru != 0.0, axis=-1)
    last = real.shape[1] - np.argmax(real[:, ::-1], axis=1)
    return np.where(real.any(axis=1), last, 0)


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([int(k) for k in key])


class NumpyFeed:
    """Batches ``(x, y)`` of one split, ``x`` arranged for ``inputs``
    (``readers.model_input``); iterate for ``num_epochs`` epochs (``None``:
    forever) from ``first_epoch``, or take one with ``epoch(e)``."""

    def __init__(
        self,
        path: str | Path,
        inputs: str = "inclusive",
        batch_size: int = 128,
        training: bool = False,
        seed: int = 0,
        num_epochs: int | None = 1,
        first_epoch: int = 0,
        bucket_batches: int = 0,
        replicas: int = 1,
        shard: tuple[int, int] = (0, 1),
        readers: int | None = None,
    ):
        check_feed_options("petastorm", inputs, batch_size, bucket_batches)  # Parquet, any model inputs
        index, processes = shard
        if not (0 <= index < processes and replicas >= processes and replicas % processes == 0):
            raise FeedError(
                f"shard {index} of {processes} on {replicas} device(s) in all is not a data-parallel layout"
            )
        self.replicas, self.shard = replicas, shard
        self.readers = readers or min(8, os.cpu_count() or 1)
        import pyarrow.parquet as pq

        self.inputs, self.batch_size, self.training, self.seed = inputs, batch_size, training, seed
        self.num_epochs, self.first_epoch = num_epochs, first_epoch
        self.columns = [*input_names(inputs), "encoded_label"]
        self.window = bucket_batches if "GRU_input" in self.columns else 0
        self.row_groups: list[tuple[str, int]] = []
        self.events = 0
        for f in feed_files(path, NUMPY_FORMAT):
            try:
                parquet = pq.ParquetFile(f)
            except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
                raise FeedError(f"{f} is not a readable Parquet file: {error}") from None
            missing = [c for c in self.columns if c not in parquet.schema_arrow.names]
            if missing:
                raise FeedError(f"{f} lacks column(s) {', '.join(missing)} needed for {inputs} inputs")
            self.row_groups += [(f, i) for i in range(parquet.metadata.num_row_groups)]
            self.events += parquet.metadata.num_rows
        self._in_memory = None
        if self.columns == ["HLF_input", "encoded_label"]:
            self._in_memory = self._concatenate(self._read(g) for g in self.row_groups)

    def __len__(self) -> int:
        return steps_per_epoch(self.events, self.batch_size)

    def __iter__(self) -> Iterator[tuple]:
        last = None if self.num_epochs is None else self.first_epoch + self.num_epochs
        epochs = iter(range(self.first_epoch, last)) if last is not None else _count(self.first_epoch)
        yield from _ahead(b for e in epochs for b in self.epoch(e))

    def epoch(self, epoch: int) -> Iterator[tuple]:
        """The batches of one epoch."""
        if self._in_memory is not None:
            arrays = self._in_memory
            order = _rng(self.seed, epoch).permutation(self.events) if self.training else np.arange(self.events)
            for start in range(0, self.events, self.batch_size):
                yield self._arrange({c: a[order[start : start + self.batch_size]] for c, a in arrays.items()})
            return
        groups = self.row_groups
        if self.training:
            groups = [groups[i] for i in _rng(self.seed, epoch).permutation(len(groups))]
        size = self.batch_size * max(self.window, 1)
        for index, window in enumerate(self._windows(groups, size)):
            key = (self.seed, epoch, index) if self.training else None
            yield from self._sorting_window(window, key) if self.window else self._batches(window)

    def tf_dataset(self):
        """These batches as a tf.data dataset (Keras on TensorFlow): any batch length."""
        import tensorflow as tf

        def spec(column):
            shape = (None, None, schema.LLF_FEATURES) if column == "GRU_input" else (None, *SHAPES[column])
            return tf.TensorSpec(shape, tf.float32)

        features = [spec(c) for c in input_names(self.inputs)]
        signature = (tuple(features) if len(features) > 1 else features[0], spec("encoded_label"))
        if self.replicas > 1:
            signature = (*signature, tf.TensorSpec((None,), tf.float32))
        return tf.data.Dataset.from_generator(lambda: iter(self), output_signature=signature)

    # --- reading ---
    def _read(self, group: tuple[str, int]) -> dict[str, np.ndarray]:
        import pyarrow.parquet as pq

        f, i = group
        table = pq.ParquetFile(f).read_row_group(i, columns=self.columns)
        arrays = {}
        for c in self.columns:
            values = table.column(c).combine_chunks()
            flat = np.asarray(values.flatten().to_numpy(zero_copy_only=False), np.float32)
            width = int(np.prod(SHAPES[c]))
            if flat.size != len(table) * width:
                raise FeedError(f"{f}, row group {i}: column {c} does not hold {width} values per event")
            arrays[c] = flat.reshape((len(table), *SHAPES[c]))
        if "GRU_input" in arrays and self.window:
            arrays["_length"] = real_lengths(arrays["GRU_input"])
        return arrays

    def _concatenate(self, parts) -> dict[str, np.ndarray]:
        parts = list(parts)
        if not parts:  # a split without events
            return {c: np.zeros((0, *SHAPES[c]), np.float32) for c in self.columns}
        return {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}

    def _windows(self, groups, size: int) -> Iterator[dict[str, np.ndarray]]:
        """Row groups in this order → windows of exactly ``size`` events (the last one shorter).
        ``readers`` row groups are read at once, in threads, ahead of need."""
        pending, held = [], 0
        with ThreadPoolExecutor(self.readers, thread_name_prefix="numpy-feed-read") as pool:
            ahead = [pool.submit(self._read, g) for g in groups[: 2 * self.readers]]
            for later in [*groups[2 * self.readers :], *[None] * len(ahead)]:
                part = ahead.pop(0).result()
                if later is not None:
                    ahead.append(pool.submit(self._read, later))
                pending.append(part)
                held += len(part["encoded_label"])
                while held >= size:
                    joined = self._concatenate(pending)
                    yield {c: a[:size] for c, a in joined.items()}
                    pending, held = [{c: a[size:] for c, a in joined.items()}], held - size
        if held:
            yield self._concatenate(pending)

    # --- batching ---
    def _arrange(self, arrays: dict) -> tuple:
        if self.replicas > 1:
            arrays = self._share(arrays)
        x = model_input(self.inputs, arrays.get("GRU_input"), arrays.get("HLF_input"))
        return (x, arrays["encoded_label"], arrays["weight"]) if self.replicas > 1 else (x, arrays["encoded_label"])

    def _share(self, arrays: dict) -> dict:
        """The batch padded to divide among the devices, weighted, and this process's share of it."""
        n = len(arrays["encoded_label"])
        padded = -(-n // self.replicas) * self.replicas
        extra = np.arange(padded - n) % n  # copies of the first events
        weight = np.concatenate([np.full(n, padded / n, np.float32), np.zeros(padded - n, np.float32)])
        arrays = {c: np.concatenate([a, a[extra]]) for c, a in arrays.items()} | {"weight": weight}
        index, processes = self.shard
        size = padded // processes
        return {c: a[index * size : (index + 1) * size] for c, a in arrays.items()}

    def _batches(self, window: dict) -> Iterator[tuple]:
        n = len(window["encoded_label"])
        for start in range(0, n, self.batch_size):
            yield self._arrange({c: a[start : start + self.batch_size] for c, a in window.items()})

    def _sorting_window(self, window: dict, key) -> Iterator[tuple]:
        lengths = window.pop("_length")
        order = np.argsort(lengths, kind="stable")
        starts = list(range(0, len(order), self.batch_size))
        if key is not None:
            starts = [starts[i] for i in _rng(*key).permutation(len(starts))]
        full = window["GRU_input"].shape[1]
        for start in starts:
            take = order[start : start + self.batch_size]
            rows = min(-(-int(lengths[take].max(initial=0)) // BUCKET_ROWS) * BUCKET_ROWS, full)
            batch = {c: a[take] for c, a in window.items() if c != "GRU_input"}
            batch["GRU_input"] = np.ascontiguousarray(window["GRU_input"][take, :rows])
            yield self._arrange(batch)


def _count(start: int) -> Iterator[int]:
    while True:
        yield start
        start += 1


def _ahead(items: Iterator, depth: int = 32) -> Iterator:
    """``items``, produced in a thread up to ``depth`` ahead; an error there is raised here."""
    done = object()
    buffer: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False  # the consumer has gone

    def produce():
        try:
            for item in items:
                if not put(item):
                    return
            put(done)
        except BaseException as error:  # handed to the consumer, raised there
            put(error)

    thread = threading.Thread(target=produce, name="numpy-feed", daemon=True)
    thread.start()
    try:
        while (item := buffer.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)
