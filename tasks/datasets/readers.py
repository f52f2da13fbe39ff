"""``tf.data`` input pipelines over the prepared data, in either format.

``open_feed(path, fmt=...)`` yields a batched ``tf.data.Dataset`` of
``((GRU_input, HLF_input), encoded_label)`` for the inclusive classifier,
``(HLF_input, encoded_label)`` or ``(GRU_input, encoded_label)``; the format is
one setting (``petastorm`` reads the prepared Parquet shards, ``tfrecord`` the
TFRecord shards). ``hlf`` reads the HLF-only feed (tasks/datasets/feeds.py),
for models of HLF inputs only: a split is read into memory at once (17 floats
an event) and every epoch is a permutation of it drawn from ``(seed, epoch)``.
Training shuffles the order of shards (TFRecord) or row groups (Petastorm)
anew every epoch on top of the full shuffle the data got when prepared;
evaluation reads in a fixed order.

The published SparkDLTrigger files use the same column names and parse here
too: their TFRecords store all 801 × 19 values and their Parquet stores
doubles, which are cast to float32.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from tasks.core import schema
from tasks.core.errors import SettingsError
from tasks.datasets.feeds import FeedError  # noqa: F401  (raised here, defined with the format)
from tasks.datasets.prepare import GRU_SIZE

FORMATS = ("petastorm", "tfrecord")
HLF_FORMAT = "hlf"  # the HLF-only feed: chosen for HLF models where it exists, not a user's format
INPUTS = {
    "inclusive": ("GRU_input", "HLF_input"),
    "hlf": ("HLF_input",),
    "gru": ("GRU_input",),
}
N_CLASSES = len(schema.CLASS_NAMES)


def input_names(inputs: str) -> tuple[str, ...]:
    """The Keras inputs of a model of this input kind (``INPUTS``); a SettingsError for an unknown kind."""
    try:
        return INPUTS[inputs]
    except (KeyError, TypeError):
        raise SettingsError(f"unknown model inputs {inputs!r}; choose one of {', '.join(INPUTS)}") from None


def check_feed_options(fmt: str, inputs: str, batch_size: int, bucket_batches: int = 0) -> None:
    if fmt not in (*FORMATS, HLF_FORMAT):
        raise SettingsError(f"unknown feed format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == HLF_FORMAT and input_names(inputs) != ("HLF_input",):
        raise SettingsError(f"the HLF-only feed holds no particle data: it cannot feed {inputs} inputs")
    input_names(inputs)
    if batch_size < 1:
        raise SettingsError(f"batch_size must be at least 1, got {batch_size}")
    if bucket_batches < 0:
        raise SettingsError(f"bucket_batches must be at least 0, got {bucket_batches}")


def feed_files(path: str | Path, fmt: str) -> list[str]:
    """The shards of one split: ``path`` is a directory of .parquet or .tfrecord files."""
    path = Path(path)
    suffixes = (".tfrecord", ".tfrecord.gz") if fmt == "tfrecord" else (".parquet",)
    if path.is_dir():
        files = sorted(str(p) for p in path.iterdir() if p.name.endswith(suffixes))
        if not files and fmt == "tfrecord":
            # Spark's TFRecord writer (the published files) names shards part-r-NNNNN, without a suffix.
            files = sorted(str(p) for p in path.glob("part-*") if p.suffix == "")
    else:
        files = [str(path)] if path.exists() else []
    if not files:
        raise FeedError(f"no {' or '.join(suffixes)} files in {path} (feed format {fmt!r})")
    if fmt == "tfrecord" and len({f.endswith(".gz") for f in files}) > 1:
        raise FeedError(f"{path} mixes compressed (.tfrecord.gz) and plain (.tfrecord) shards")
    return files


def feed_event_ids(path: str | Path, fmt: str) -> list[str]:
    """The event identities of a split in the order an evaluation reads it
    (shards sorted, rows in stored order). Feeds without an ``event_id``
    (the published files) get ``<shard>:<row>``."""
    import pyarrow.parquet as pq

    from tasks.datasets.feeds import iter_records, parse_example

    ids = []
    for f in feed_files(path, fmt):
        name = Path(f).name
        if fmt != "tfrecord":
            parquet = pq.ParquetFile(f)
            if "event_id" in parquet.schema_arrow.names:
                ids += parquet.read(columns=["event_id"]).column("event_id").to_pylist()
            else:
                ids += [f"{name}:{i}" for i in range(parquet.metadata.num_rows)]
        else:
            for i, record in enumerate(iter_records(f)):
                found = parse_example(record).get("event_id", ("", []))[1]
                ids.append(found[0].decode() if found else f"{name}:{i}")
    return ids


@contextmanager
def open_feed(
    path: str | Path,
    fmt: str,
    inputs: str = "inclusive",
    batch_size: int = 128,
    training: bool = False,
    seed: int = 0,
    num_epochs: int | None = 1,
    first_epoch: int = 0,
    workers: int = 2,
    bucket_batches: int = 0,
    positions: bool = False,
) -> Iterator[tf.data.Dataset]:  # noqa: F821
    """A batched dataset over the shards in ``path``.

    ``num_epochs`` passes (``None``: forever), each batched on its own, so an
    epoch is exactly ``steps_per_epoch(events, batch_size)`` batches: give
    Keras that number. In training, the order of epoch ``e`` is a function of
    ``(seed, e)``, and the first epoch is ``first_epoch``: a resumed training
    continues with the order an uninterrupted one would have had. ``workers``
    TFRecord shards are read at once in training.

    ``bucket_batches`` > 0 (models with particle inputs): the stream is read
    in windows of that many batches, each window sorted by the events' real
    sequence length and cut into batches trimmed to their longest sequence
    (``sorting_window``); an epoch keeps its number of batches. In training
    the batches of a window come in an order drawn from ``(seed, e,
    window)``; otherwise in length order, window after window.

    ``positions``: every element is ``(x, y, position)``, the position of
    each event in the stored order (what evaluation needs to put bucketed
    scores back in the order of ``feed_event_ids``).
    """
    check_feed_options(fmt, inputs, batch_size, bucket_batches)
    if positions and training:
        raise SettingsError("positions are for evaluation (training=False): a training epoch is reshuffled")
    files = feed_files(path, fmt)
    make_epoch = {"tfrecord": _tfrecord_epoch, "petastorm": _petastorm_epoch_dataset, HLF_FORMAT: _hlf_epoch}[fmt]
    window = bucket_batches if "GRU_input" in input_names(inputs) else 0
    one_epoch = make_epoch(files, inputs, batch_size * (window or 1), training, seed, workers)
    if window or positions:
        one_epoch = _bucketed(one_epoch, inputs, batch_size, max(window, 1), seed, training, positions, bool(window))
    import tensorflow as tf

    last = first_epoch + num_epochs if num_epochs is not None else 2**62
    yield tf.data.Dataset.range(first_epoch, last).flat_map(one_epoch).prefetch(tf.data.AUTOTUNE)


def steps_per_epoch(events: int, batch_size: int) -> int:
    return -(-events // batch_size)


def model_input(inputs: str, gru, hlf):
    """What a model of this input kind is fed: (GRU_input, HLF_input), or one of them."""
    names = input_names(inputs)  # raises for an unknown kind
    given = {"GRU_input": gru, "HLF_input": hlf}
    if len(names) > 1:
        return tuple(given[n] for n in names)
    return given[names[0]]


def _arrange(inputs: str, gru, hlf, label):
    return model_input(inputs, gru, hlf), label


# --- sorting windows -------------------------------------------------------------
BUCKET_BATCHES = 16
"""The default sorting window, in batches (training and evaluation; docs/benchmarks.md, "Trimmed batches")."""
BUCKET_ROWS = 32
"""Trimmed batches are cut to a multiple of this many rows (or the full length):
a bounded number of batch shapes, each a compile on JAX or XLA."""


def real_lengths(gru):
    """Rows up to and including each event's last real (non-zero) row: (n, L, 19) → (n,)."""
    import tensorflow as tf

    real = tf.reduce_any(tf.not_equal(gru, 0.0), axis=-1)
    position = tf.range(1, tf.shape(gru)[1] + 1)
    return tf.reduce_max(tf.where(real, position[None, :], 0), axis=1)


def sorting_window(gru, others: tuple, batch_size: int, key=None, trim: bool = True):
    """One window of events → its batches: sorted by real length (ties in
    stream order), cut into batches of ``batch_size``, each trimmed to its
    longest sequence rounded up to ``BUCKET_ROWS``; the batches in an order
    drawn from ``key`` (shape [2], int64), or in length order without one.
    ``trim=False``: the window as it is, cut into batches in stream order.
    A dataset of (gru, *others)."""
    import tensorflow as tf

    n = tf.shape(gru)[0]
    full = tf.shape(gru)[1]
    if trim:
        lengths = real_lengths(gru)
        order = tf.argsort(lengths, stable=True)
    else:
        lengths, order = None, tf.range(n)
    k = (n + batch_size - 1) // batch_size

    def batch(j):
        take = order[j * batch_size : tf.minimum((j + 1) * batch_size, n)]
        rows = full
        if trim:
            longest = tf.reduce_max(tf.gather(lengths, take))
            rows = tf.minimum(((longest + BUCKET_ROWS - 1) // BUCKET_ROWS) * BUCKET_ROWS, full)
        return (tf.gather(gru, take)[:, :rows], *(tf.gather(o, take) for o in others))

    batches = tf.range(k) if key is None else tf.random.experimental.stateless_shuffle(tf.range(k), seed=key)
    return tf.data.Dataset.from_tensor_slices(batches).map(batch)


def _bucketed(
    one_epoch, inputs: str, batch_size: int, window: int, seed: int, training: bool, positions: bool, trim: bool
):
    """``one_epoch`` (windows of ``window`` batches, arranged for ``inputs``) →
    sorted, trimmed batches (``trim``), with each event's stored position
    appended (``positions``)."""
    import tensorflow as tf

    def split(features, label):
        if inputs == "hlf":
            return features, (label,)  # no sequence: windows only number the events
        gru, hlf = (features[0], features[1:]) if inputs == "inclusive" else (features, ())
        return gru, (*hlf, label)

    def join(gru, *rest):
        if positions:
            *rest, position = rest
        if inputs == "hlf":
            arranged = (gru, rest[0])
        else:
            *hlf, label = rest
            arranged = _arrange(inputs, gru, hlf[0] if hlf else None, label)
        return (*arranged, position) if positions else arranged

    def epoch_of(epoch):
        def one_window(index, element):
            gru, others = split(*element)
            if positions:
                n = tf.shape(gru, out_type=tf.int64)[0]
                others = (*others, index * window * batch_size + tf.range(n, dtype=tf.int64))
            key = None
            if training:
                key = tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64) * 1_000_003 + index])
            return sorting_window(gru, others, batch_size, key, trim=trim)

        return one_epoch(epoch).enumerate().flat_map(one_window).map(join)

    return epoch_of


# --- TFRecord -------------------------------------------------------------------
def _tfrecord_epoch(files, inputs, batch_size, training, seed, workers):
    import tensorflow as tf

    spec = {"encoded_label": tf.io.FixedLenFeature([N_CLASSES], tf.float32)}
    if "HLF_input" in input_names(inputs):
        spec["HLF_input"] = tf.io.FixedLenFeature([schema.HLF_FEATURES], tf.float32)
    if "GRU_input" in input_names(inputs):
        # Ours hold the real rows only, the published ones all 801 × 19: a
        # ragged feature padded with zeros at the end reads both.
        spec["GRU_input"] = tf.io.RaggedFeature(tf.float32)

    def parse(records):
        parsed = tf.io.parse_example(records, spec)
        gru = hlf = None
        if "GRU_input" in parsed:
            flat = parsed["GRU_input"].to_tensor(default_value=0.0, shape=[None, GRU_SIZE])
            gru = tf.reshape(flat, [-1, schema.LLF_ROWS, schema.LLF_FEATURES])
        if "HLF_input" in parsed:
            hlf = parsed["HLF_input"]
        return _arrange(inputs, gru, hlf, parsed["encoded_label"])

    compression = "GZIP" if files[0].endswith(".gz") else ""
    names = tf.constant(files)

    def one_epoch(epoch):
        if training:
            # Shard order from (seed, epoch); shards read `workers` at a time,
            # interleaved in a fixed pattern, so the epoch's order is reproducible.
            order = tf.random.experimental.stateless_shuffle(names, seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
            records = tf.data.Dataset.from_tensor_slices(order).interleave(
                lambda f: tf.data.TFRecordDataset(f, compression_type=compression),
                cycle_length=max(1, min(workers, len(files))),
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True,
            )
        else:
            records = tf.data.TFRecordDataset(names, compression_type=compression)  # file after file: a fixed order
        return records.batch(batch_size).map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    return one_epoch


# --- the HLF-only feed ------------------------------------------------------------
def _hlf_epoch(files, inputs, batch_size, training, seed, workers):
    import pyarrow.parquet as pq
    import tensorflow as tf

    columns = ["HLF_input", "encoded_label"]
    parts = []
    for f in files:
        table = pq.read_table(f, columns=columns) if set(columns) <= set(pq.read_schema(f).names) else None
        if table is None:
            raise FeedError(f"{f} lacks column(s) {', '.join(columns)}: not an HLF-only feed shard")
        parts.append(table)

    def stacked(column, width):
        flat = [np.asarray(t.column(column).combine_chunks().flatten(), np.float32) for t in parts]
        return tf.constant(np.concatenate(flat).reshape(-1, width))

    hlf, label = stacked("HLF_input", schema.HLF_FEATURES), stacked("encoded_label", N_CLASSES)
    n = int(hlf.shape[0])

    def one_epoch(epoch):
        if not training:
            return tf.data.Dataset.from_tensor_slices((hlf, label)).batch(batch_size)
        key = tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)])
        order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=key)
        return (
            tf.data.Dataset.from_tensor_slices(order)
            .batch(batch_size)
            .map(
                lambda rows: (tf.gather(hlf, rows), tf.gather(label, rows)),
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True,
            )
        )

    return one_epoch


# --- Petastorm ------------------------------------------------------------------
def _petastorm_epoch_dataset(files, inputs, batch_size, training, seed, workers):
    import pyarrow.parquet as pq
    import tensorflow as tf

    columns = ["encoded_label", *input_names(inputs)]
    found = pq.read_schema(files[0])
    missing = [c for c in columns if c not in found.names]
    if missing:
        raise FeedError(f"{files[0]} lacks column(s) {', '.join(missing)} needed for {inputs} inputs")
    for column in columns:
        if not _is_flat_list(found.field(column).type):
            raise FeedError(
                f"{files[0]}: column {column} is {found.field(column).type}; petastorm reads plain lists of "
                "numbers only (a Spark ML vector or a nested list must be flattened first)"
            )
    shapes = {
        "encoded_label": (N_CLASSES,),
        "HLF_input": (schema.HLF_FEATURES,),
        "GRU_input": (schema.LLF_ROWS, schema.LLF_FEATURES),
    }
    urls = ["file://" + str(Path(f).resolve()) for f in files]

    def batches(epoch):
        # petastorm treats seed 0 as "unseeded": derive a non-zero one per epoch.
        for batch in _petastorm_pass(urls, columns, training, seed * 1_000_003 + int(epoch) + 1):
            yield tuple(np.asarray(getattr(batch, c), np.float32).reshape((-1, *shapes[c])) for c in columns)

    def arrange(label, *features):
        named = dict(zip(input_names(inputs), features, strict=True))
        return _arrange(inputs, named.get("GRU_input"), named.get("HLF_input"), label)

    signature = tuple(tf.TensorSpec((None, *shapes[c]), tf.float32) for c in columns)

    def one_epoch(epoch):
        # Petastorm yields one batch per row group; rebatch slices them to the
        # requested size without going through single events.
        return (
            tf.data.Dataset.from_generator(batches, args=(epoch,), output_signature=signature)
            .map(arrange)
            .rebatch(batch_size)
        )

    return one_epoch


def _petastorm_pass(urls, columns, training, seed):
    """One pass over the row groups, in an order given by ``seed`` when training.

    A reader per pass because petastorm 0.13.1 shuffles row groups once and
    then repeats that order every epoch (and seed 0 means unseeded). Its thread
    pool can also end an epoch early and silently drop row groups (seen here
    with one worker: 17 of 36 rows, about one read in five); the synchronous
    "dummy" pool reads in tf.data's generator thread, which prefetch already
    overlaps with training, and never loses rows.
    """
    from petastorm import make_batch_reader

    # petastorm 0.13 drives pyarrow 14 through deprecated APIs; the FutureWarnings
    # (and its INFO lines about missing petastorm metadata, which plain Parquet
    # never has) say nothing a user can act on.
    logging.getLogger("petastorm").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        reader = make_batch_reader(
            urls, schema_fields=columns, num_epochs=1, shuffle_row_groups=training, seed=seed, reader_pool_type="dummy"
        )
        try:
            yield from reader
        finally:
            # Not `with reader`: its exit prints "Cache cleanup complete." to
            # stdout (there is no cache), which would corrupt `topo`'s JSON.
            reader.stop()
            reader.join()


def _is_flat_list(arrow_type) -> bool:
    import pyarrow as pa

    return pa.types.is_list(arrow_type) and (
        pa.types.is_floating(arrow_type.value_type) or pa.types.is_integer(arrow_type.value_type)
    )


# --- in memory (the benchmark's baseline) ------------------------------------------
def in_memory_dataset(arrays: dict, inputs: str, batch_size: int):
    """NumPy arrays → tf.data, the usual way: slices of the arrays, then batch."""
    import tensorflow as tf

    gru = arrays.get("GRU_input")
    hlf = arrays.get("HLF_input")
    names = input_names(inputs)
    element = _arrange(
        inputs, gru if "GRU_input" in names else None, hlf if "HLF_input" in names else None, arrays["encoded_label"]
    )
    return tf.data.Dataset.from_tensor_slices(element).batch(batch_size).prefetch(tf.data.AUTOTUNE)
