"""Training that resumes: one classifier on a prepared dataset, CPU or GPU.

``train(...)`` builds the model (tasks/learning/models.py), feeds it from either format
(tasks/datasets/readers.py; HLF models read the HLF-only feed where the feeds stage
wrote one, so they never read particle data), and writes ``<output>/``: ``model.keras``, ``scaler.json``
(what inference needs with the model), ``history.json`` (per-epoch metrics)
and ``training.json`` (settings, devices, timing). The output appears
atomically when training has finished.

Resuming: after every epoch the weights and optimizer state go to
``<output>.backup/``, written whole or not at all (tasks/learning/backup.py); per-epoch metrics go to
``<output>.progress.json`` as they happen, just after. A killed and retried task finds both and
continues from the last backup instead of starting over; a finished run removes them. The data order of every epoch
is derived from the random seed and the epoch number, so a resumed run sees the same
data in the same order as one that was never interrupted.

Feeds: tf.data over the TFRecord or Petastorm files (tasks/datasets/readers.py),
or NumPy batches read with pyarrow (``feed="numpy"``, tasks/datasets/numpy_feed.py):
the only feed where Keras runs on JAX, which needs no TensorFlow.

Devices (tasks/learning/hardware.py): every visible GPU is used
(MirroredStrategy on TensorFlow, DataParallel on JAX, when there are several);
with none, the CPU. Several worker processes (``TF_CONFIG``) train one model
data-parallel on JAX: each reads the same batches and feeds its share, the
chief writes ``<output>``, worker i its own ``<output>.worker<i>``; every
worker keeps its own backup, and a run whose worker died is started again
(all workers) to resume. ``mixed_precision`` computes in float16 on GPUs,
keeping the output layer float32.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from tasks.core.errors import SettingsError
from tasks.core.storage import atomic_directory, read_json, write_json
from tasks.core.summaries import TrainingRecord
from tasks.datasets.numpy_feed import NUMPY_FORMAT
from tasks.datasets.readers import BUCKET_BATCHES, FORMATS, HLF_FORMAT, steps_per_epoch
from tasks.learning.architectures import Architecture
from tasks.learning.backup import backup_epochs, epoch_backup
from tasks.learning.records import model_record

log = logging.getLogger(__name__)

PAPER_SCHEDULE = ((0, 5e-4), (2, 2e-4), (4, 1e-4))
"""SparkDLTrigger's inclusive-classifier learning rates: (first epoch, rate)."""
OPTIMIZERS = ("adam", "nadam", "rmsprop", "sgd", "adagrad")
TRAINING_FEEDS = (*FORMATS, NUMPY_FORMAT)
XLA_CHOICES = ("auto", "on", "off")


def parse_schedule(text: str) -> tuple[tuple[int, float], ...]:
    """'0:5e-4,2:2e-4,4:1e-4' → ((0, 5e-4), (2, 2e-4), (4, 1e-4)); a bare
    number is a constant rate."""
    try:
        if ":" not in text:
            return ((0, float(text)),)
        steps = tuple((int(e), float(r)) for e, r in (item.split(":") for item in text.split(",")))
    except ValueError:
        raise SettingsError(
            f"learning-rate schedule {text!r} must look like '0:5e-4,2:2e-4,4:1e-4' or '1e-3'"
        ) from None
    return steps


@dataclass(frozen=True)
class TrainSettings:
    model: str = "inclusive"
    feed: str = "tfrecord"
    epochs: int = 6
    batch_size: int = 128
    learning_rates: tuple[tuple[int, float], ...] = PAPER_SCHEDULE
    early_stopping_patience: int = 0  # epochs without val_loss improvement; 0: off
    seed: int = 42
    mixed_precision: bool = False
    # XLA (Keras' jit_compile): "auto" is Keras' choice (on GPUs, off on a CPU with
    # TensorFlow, always on JAX); "on" wins 1.8-2.1x on CPU once each batch shape is
    # compiled (docs/benchmarks.md, "Training input"), so long CPU trainings gain.
    xla: str = "auto"
    # Batches from sorting windows of this many batches, cut to their longest
    # sequence (tasks.datasets.readers.open_feed), in training and validation;
    # 0: padded to 801.
    bucket_batches: int = BUCKET_BATCHES
    # The architecture and optimizer (tasks.learning.architectures.Architecture); the defaults
    # are the paper's, a hyperparameter search changes them.
    hidden: tuple[int, ...] | None = None
    activation: str = "relu"
    recurrent_units: int = 50
    optimizer: str = "adam"

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise SettingsError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        _ = self.architecture  # validates hidden, activation, recurrent_units
        model_record(self.model)  # validates the model name
        if self.feed not in TRAINING_FEEDS:
            raise SettingsError(f"unknown feed format {self.feed!r}; choose one of {', '.join(TRAINING_FEEDS)}")
        if self.xla not in XLA_CHOICES:
            raise SettingsError(f"xla must be one of {', '.join(XLA_CHOICES)}, got {self.xla!r}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.bucket_batches < 0:
            raise SettingsError(f"bucket_batches must be at least 0 (0: off), got {self.bucket_batches}")
        rates = self.learning_rates
        if (
            not rates
            or rates[0][0] != 0
            or any(r <= 0 for _, r in rates)
            or list(rates) != sorted(rates, key=lambda s: s[0])
        ):
            raise SettingsError(
                f"learning-rate schedule must start at epoch 0, rise in epoch, and have rates > 0: {rates}"
            )

    def rate_at(self, epoch: int) -> float:
        return [r for e, r in self.learning_rates if e <= epoch][-1]

    @property
    def architecture(self) -> Architecture:
        return Architecture(
            hidden=None if self.hidden is None else tuple(self.hidden),
            activation=self.activation,
            recurrent_units=self.recurrent_units,
        )


def hlf_feed_of(prepared: Path | None, tfrecord: Path | None) -> Path | None:
    """The HLF-only feed written with these feeds (``tfrecord``, or by default
    those of ``prepared``) from this very preparation; None if there is none."""
    from tasks.core.catalog import tfrecord_of
    from tasks.datasets.feeds import HLF_FEED

    feeds = tfrecord or (tfrecord_of(prepared) if prepared else None)
    if feeds is None or not (feeds / HLF_FEED / "_summary.json").exists():
        return None
    summary = read_json(feeds / HLF_FEED / "_summary.json")
    source = prepared or Path(summary["prepared"])
    if Path(summary["prepared"]).resolve() != source.resolve() or not (source / "_summary.json").exists():
        return None
    if read_json(source / "_summary.json")["scaler"]["sha256"] != summary["scaler"]["sha256"]:
        # prepared again since the feeds were written: the feed holds other events
        log.warning("%s was written from an earlier preparation of %s: not used", feeds / HLF_FEED, source)
        return None
    return feeds / HLF_FEED


def feed_paths(prepared: Path | None, tfrecord: Path | None, feed: str, inputs: str = "") -> tuple[dict, str]:
    """The train and test splits to read, and their format: HLF models read
    the HLF-only feed where the feeds stage wrote one, whatever ``feed`` says."""
    from tasks.datasets.readers import HLF_FORMAT

    hlf = hlf_feed_of(prepared, tfrecord) if inputs == "hlf" else None
    if hlf is not None:
        return {"train": hlf / "train", "test": hlf / "test"}, HLF_FORMAT
    return _format_paths(prepared, tfrecord, feed), feed


def _format_paths(prepared: Path | None, tfrecord: Path | None, feed: str) -> dict[str, Path]:
    if feed in ("petastorm", NUMPY_FORMAT):
        if prepared is None:
            raise SettingsError(f"feed {feed!r} needs the prepared (Parquet) directory")
        return {"train": prepared / "train", "test": prepared / "test"}
    if tfrecord is None:
        raise SettingsError("feed 'tfrecord' needs the TFRecord directory (tfrecord=...)")
    return {"train": tfrecord / "train", "test": tfrecord / "test"}


def dataset_info(paths: dict[str, Path], feed: str) -> dict:
    """Event counts and scaler of the data to train on.

    A prepared dataset says both in its ``_summary.json`` (and its scaler is
    checked against the data). Other datasets in the same layout, such as the
    published SparkDLTrigger files (already scaled, no scaler shipped), are
    counted from their files; the model is then saved without a scaler and
    can be evaluated on such data but not used on raw events.
    """
    from tasks.datasets.prepare import load_prepared
    from tasks.datasets.readers import feed_files

    root = paths["train"].parent
    if (root / "_summary.json").exists():
        summary = read_json(root / "_summary.json")
        source = Path(summary.get("prepared", root))  # a TFRecord feed names the preparation it came from
        _, scaler = load_prepared(source)  # checks that data and scaler belong together
        return {
            "train": summary["train"]["events"],
            "test": summary["test"]["events"],
            "scaler": source / summary["scaler"]["path"],
            "scaler_sha256": summary["scaler"]["sha256"],
        }
    log.warning("no _summary.json in %s: an external dataset, counted from its files, without a scaler", root)
    return {
        split: sum(count_events(f, feed) for f in feed_files(paths[split], feed)) for split in ("train", "test")
    } | {"scaler": None, "scaler_sha256": None}


def count_events(path: str, feed: str) -> int:
    """Rows of a Parquet file, or records of a TFRecord file (read through its framing)."""
    import gzip
    import struct

    if feed != "tfrecord":  # Parquet: petastorm or the HLF-only feed
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    n = 0
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        while header := f.read(12):
            (length,) = struct.unpack("<Q", header[:8])
            f.seek(length + 4, 1)
            n += 1
    return n


def _epoch_log(progress: Path, total_epochs: int, n_train: int):
    """A Keras callback: one log line per epoch, as it ends, and the metrics
    kept in a progress file that survives a kill."""
    import keras

    class EpochLog(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.history = read_json(progress) if progress.exists() else {}

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self.started
            record = {k: float(v) for k, v in (logs or {}).items()}
            record.update(
                seconds=round(seconds, 3),
                events_per_s=round(n_train / seconds, 1),
                learning_rate=float(self.model.optimizer.learning_rate),
            )
            self.history[str(epoch)] = record
            write_json(progress, self.history)
            shown = "  ".join(
                f"{k}={v:.4f}" for k, v in record.items() if k not in ("seconds", "events_per_s", "learning_rate")
            )
            log.info(
                "epoch %d/%d: %s  lr=%.1e  %.1f s, %.0f events/s",
                epoch + 1,
                total_epochs,
                shown,
                record["learning_rate"],
                seconds,
                record["events_per_s"],
            )

    return EpochLog()


def _dropout_streams(model, seed: int):
    """A Keras callback: each epoch's dropout masks a function of (seed, epoch).

    A layer's random stream (its SeedGenerator, a counter advanced every
    step) is not in the weights BackupAndRestore keeps, so a resumed run drew
    other dropout masks than an uninterrupted one (3e-3 apart in loss after a
    kill at epoch 1). Setting every stream at the start of each epoch from
    (seed, epoch, layer) makes a resumed epoch draw exactly what it would have."""
    import keras
    import numpy as np

    def layers(node):
        for layer in getattr(node, "layers", []):
            yield layer
            yield from layers(layer)

    found = (getattr(layer, "seed_generator", None) for layer in layers(model))
    generators = [g for g in found if isinstance(g, keras.random.SeedGenerator)]

    class DropoutStreams(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            for index, generator in enumerate(generators):
                start = (seed * 1_000_003 + epoch * 7_919 + index) % 2**31  # index < 7,919: distinct per epoch
                generator.state.assign(np.array([start, 0], generator.state.dtype))

    return DropoutStreams()


@contextmanager
def _training_data(paths, fmt, numpy_reader, inputs, settings, done_before, hardware, workers, n_test, replicas):
    """What ``Model.fit`` reads: the training and validation batches (tf.data
    datasets, or NumPy batches: generators on JAX, wrapped in tf.data on
    TensorFlow) and how many of them an epoch takes."""
    from tasks.datasets.readers import open_feed

    train_options = dict(training=True, seed=settings.seed, first_epoch=done_before)
    if numpy_reader:
        from tasks.datasets.numpy_feed import NumpyFeed

        share = dict(
            replicas=replicas,
            shard=(workers.index, workers.count) if workers else (0, 1),
            bucket_batches=settings.bucket_batches,
        )
        feeds = [
            NumpyFeed(paths["train"], inputs, settings.batch_size, num_epochs=None, **train_options, **share),
            NumpyFeed(paths["test"], inputs, settings.batch_size, num_epochs=None, **share),
        ]
        train_data, test_data = (f.tf_dataset() if hardware["backend"] == "tensorflow" else iter(f) for f in feeds)
        try:
            yield {"x": train_data, "validation_data": test_data, "validation_steps": len(feeds[1])}
        finally:
            for batches in (train_data, test_data):
                if hasattr(batches, "close"):
                    batches.close()  # stops its reading thread, which would read on ahead
        return
    with (
        open_feed(
            paths["train"],
            fmt,
            inputs,
            settings.batch_size,
            num_epochs=settings.epochs - done_before,
            bucket_batches=settings.bucket_batches,
            **train_options,
        ) as train_data,
        open_feed(paths["test"], fmt, inputs, settings.batch_size, bucket_batches=settings.bucket_batches) as test_data,
    ):
        import tensorflow as tf

        # A known length spares Keras a search for the end of the test data (and a warning every epoch).
        test_data = test_data.apply(
            tf.data.experimental.assert_cardinality(steps_per_epoch(n_test, settings.batch_size))
        )
        yield {"x": train_data, "validation_data": test_data}


def train(
    prepared: str | Path | None,
    output: str | Path,
    settings: TrainSettings = TrainSettings(),
    tfrecord: str | Path | None = None,
    callbacks: tuple = (),
) -> TrainingRecord:
    """Train ``settings.model`` on a prepared dataset; see the module docstring.
    ``callbacks``: more Keras callbacks (a search's pruning), run after the project's own."""
    import keras

    from tasks.learning.hardware import agree_on_resume, backend, devices, workers_from_environment
    from tasks.learning.models import build_model

    prepared, output = (Path(prepared) if prepared else None), Path(output)
    workers = workers_from_environment()
    own = workers.own if workers else (lambda path: path)
    inputs = model_record(settings.model).inputs
    feed, keras_backend = settings.feed, backend()
    if keras_backend != "tensorflow" and feed != NUMPY_FORMAT:
        log.info("Keras runs on %s, without tf.data: the NumPy feed reads the prepared Parquet", keras_backend)
        feed = NUMPY_FORMAT
    numpy_reader = feed == NUMPY_FORMAT  # reads the files of the Petastorm feed or the HLF-only feed
    paths, fmt = feed_paths(
        prepared, Path(tfrecord) if tfrecord else None, "petastorm" if numpy_reader else feed, inputs
    )
    data = dataset_info(paths, fmt)
    backup = own(output.with_name(output.name + ".backup"))
    progress = own(output.with_name(output.name + ".progress.json"))
    metrics_so_far = read_json(progress) if progress.exists() else {}
    # The metrics come just after the backup: resume from a backup whose epochs they all have.
    kept = [epochs for epochs in backup_epochs(backup) if epochs <= len(metrics_so_far)]
    hardware = devices(workers)  # first: JAX joins its workers before it computes anything
    done_before = agree_on_resume(workers, kept) if workers else max(kept, default=0)
    if done_before:
        # An epoch the metrics have beyond the backup resumed from (another worker's) is trained again.
        write_json(progress, {k: v for k, v in metrics_so_far.items() if int(k) < done_before})
        log.info("resuming %s from its backup: %d of %d epochs were done", settings.model, done_before, settings.epochs)
    else:  # nothing to resume from: what is left belongs to nothing
        shutil.rmtree(backup, ignore_errors=True)
        progress.unlink(missing_ok=True)
    keras.utils.set_random_seed(settings.seed)
    scope = hardware.pop("_scope")
    log.info(
        "training %s on %s (Keras on %s, %s, %d replica(s) in %d process(es)%s); feed %s, batch %d, %d epochs",
        settings.model,
        ", ".join(hardware["gpus"]) or "CPU",
        hardware["backend"],
        hardware["strategy"],
        hardware["replicas"],
        hardware["processes"],
        f", worker {workers.index} of {workers.count}" if workers else "",
        ("HLF-only" if fmt == HLF_FORMAT else fmt) + (" files, NumPy batches" if numpy_reader else ""),
        settings.batch_size,
        settings.epochs,
    )
    n_train = data["train"]
    started = time.perf_counter()
    policy = keras.mixed_precision.global_policy()
    if settings.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16" if hardware["gpus"] else "mixed_bfloat16")
    # On JAX each process hands the devices its share of every NumPy batch, padded
    # and weighted to divide among them (MirroredStrategy splits batches itself).
    feed_replicas = hardware["replicas"] if numpy_reader and hardware["backend"] == "jax" else 1
    try:  # the policy is global: only this model is built under it
        with scope():
            model = build_model(settings.model, settings.architecture)
            optimizer = {
                "adam": keras.optimizers.Adam,
                "nadam": keras.optimizers.Nadam,
                "rmsprop": keras.optimizers.RMSprop,
                "sgd": keras.optimizers.SGD,
                "adagrad": keras.optimizers.Adagrad,
            }[settings.optimizer]
            model.compile(
                optimizer=optimizer(settings.rate_at(0)),
                loss="categorical_crossentropy",
                jit_compile={"auto": "auto", "on": True, "off": False}[settings.xla],
                # Padding weighs 0: accuracy must count the weights.
                **({"weighted_metrics": ["accuracy"]} if feed_replicas > 1 else {"metrics": ["accuracy"]}),
            )
    finally:
        keras.mixed_precision.set_global_policy(policy)
    project_callbacks = [
        keras.callbacks.LearningRateScheduler(lambda epoch, _: settings.rate_at(epoch)),
        epoch_backup(backup, done_before),
        _epoch_log(progress, settings.epochs, n_train),  # after the backup: an epoch in the metrics is backed up
        _dropout_streams(model, settings.seed),
    ]
    if settings.early_stopping_patience:
        project_callbacks.append(
            keras.callbacks.EarlyStopping(patience=settings.early_stopping_patience, restore_best_weights=True)
        )
    fed = _training_data(
        paths, fmt, numpy_reader, inputs, settings, done_before, hardware, workers, data["test"], feed_replicas
    )
    with fed as data_of_fit, scope():
        model.fit(
            **data_of_fit,
            epochs=settings.epochs,
            callbacks=[*project_callbacks, *callbacks],
            verbose=0,
            shuffle=False,
            steps_per_epoch=steps_per_epoch(n_train, settings.batch_size),
        )
    history = read_json(progress)
    with atomic_directory(own(output)) as tmp:
        model.save(tmp / "model.keras")
        if data["scaler"] is not None:
            shutil.copy(data["scaler"], tmp / "scaler.json")
        write_json(tmp / "history.json", history)
        result: TrainingRecord = {
            "model": settings.model,
            "inputs": inputs,
            "settings": asdict(settings),
            "devices": hardware,
            "workers": list(workers.addresses) if workers else None,
            "prepared": str(prepared) if prepared else None,
            "feed": {k: str(v) for k, v in paths.items()},
            "feed_format": fmt,
            "reader": NUMPY_FORMAT if numpy_reader else "tf.data",
            "scaler_sha256": data["scaler_sha256"],
            "train_events": n_train,
            "test_events": data["test"],
            "epochs_run": len(history),
            "resumed_after_epochs": done_before,
            "parameters": int(model.count_params()),
            "seconds_this_process": round(time.perf_counter() - started, 2),
            "events_per_s_per_epoch": [history[e]["events_per_s"] for e in sorted(history, key=int)],
            "final": history[max(history, key=int)],
        }
        write_json(tmp / "training.json", result)
    shutil.rmtree(backup, ignore_errors=True)
    progress.unlink(missing_ok=True)
    log.info(
        "trained %s: %d epochs (%d resumed), val_accuracy %.4f -> %s",
        settings.model,
        len(history),
        done_before,
        result["final"].get("val_accuracy", math.nan),
        own(output),
    )
    return result
