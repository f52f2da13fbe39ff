"""Scoring a split with a trained model: probabilities in stored order, and
the predictions table written from them.

``predict_split`` reads a test split through the feed (tasks.datasets.readers)
in bucketed batches (sequences cut to the longest of their batch, the scores
put back in stored order) and, when the split was prepared with another scaler than the model's,
rescales the inputs so that the model sees them as it expects (``_rescale``).
``predictions_table`` is the Arrow form of scores per event that evaluation
and prediction write (the predictions contract).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tasks.core import schema
from tasks.core.storage import read_json
from tasks.datasets.scaling import Scaler, ScalerError


def predict_split(
    model_dir: Path,
    path: Path,
    fmt: str,
    batch_size: int = 1024,
    data_scaler: Scaler | None = None,
    bucket_batches: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probabilities) for a test split, in stored order.

    ``data_scaler`` is the scaler the split was prepared with; when the model
    was trained with another one (a champion from an earlier preparation),
    the inputs are mapped back and rescaled with the model's own statistics,
    so that both models are compared on the same events, each as it expects
    them.
    """
    import keras

    import tasks.learning.models  # noqa: F401  registers the custom layers
    from tasks.datasets.readers import BUCKET_BATCHES, open_feed

    training = read_json(model_dir / "training.json")
    model = keras.models.load_model(model_dir / "model.keras")
    own = Scaler.load(model_dir / "scaler.json") if (model_dir / "scaler.json").exists() else None
    if data_scaler is not None and own is None:
        raise ScalerError(
            f"{model_dir} has no scaler (trained on an external, already scaled dataset): "
            "it cannot be compared on data prepared here"
        )
    convert = data_scaler is not None and data_scaler.sha256 != own.sha256
    window = BUCKET_BATCHES if bucket_batches is None else bucket_batches
    score = compiled(model)
    labels, probabilities, positions = [], [], []
    with open_feed(path, fmt, training["inputs"], batch_size, bucket_batches=window, positions=True) as dataset:
        for x, y, position in dataset:
            if convert:
                x = _rescale(training["inputs"], x, data_scaler, own)
            probabilities.append(np.asarray(score(x)))
            labels.append(np.asarray(y).argmax(axis=1))
            positions.append(np.asarray(position))
    if not positions:
        return np.zeros(0, np.int64), np.zeros((0, len(schema.CLASS_NAMES)), np.float32)
    stored = np.argsort(np.concatenate(positions), kind="stable")  # bucketed order → stored order
    return np.concatenate(labels)[stored], np.concatenate(probabilities)[stored]


def compiled(model):
    """``model(x, training=False)`` as one graph for batches of any shape.

    Called eagerly, the recurrent layers run their 801-step loop op by op in
    Python: 5 s for a batch of two events, against 0.1-0.4 s as a graph. With
    ``reduce_retracing`` the trimmed windows of bucketed scoring (a new row
    count almost every batch) share one trace with unknown dimensions instead
    of one each. Other backends (JAX) are called as they are."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return lambda x: model(x, training=False)
    import tensorflow as tf

    return tf.function(lambda x: model(x, training=False), reduce_retracing=True)


def _rescale(inputs: str, x, source: Scaler, target: Scaler):
    """Inputs scaled with ``source`` as ``target`` would have scaled them;
    padding rows (all zero) stay zero. An unknown ``inputs`` is a SettingsError."""
    from tasks.datasets.readers import input_names

    def hlf(h):
        return target.scale_hlf(source.unscale_hlf(np.asarray(h, np.float64)))

    def gru(g):
        g = np.asarray(g)
        real = np.any(g != 0.0, axis=-1)
        out = np.zeros_like(g)
        out[real] = target.scale_llf_rows(source.unscale_llf_rows(g[real].astype(np.float64)))
        return out

    names = input_names(inputs)  # raises for an unknown kind
    rescale = {"GRU_input": gru, "HLF_input": hlf}
    if len(names) > 1:
        return tuple(rescale[n](part) for n, part in zip(names, x, strict=True))
    return rescale[names[0]](x)


def predictions_table(ids: list[str], probabilities: np.ndarray, labels: np.ndarray | None = None):
    """The predictions as an Arrow table: event_id, [label], p_<class>..., predicted."""
    import pyarrow as pa

    columns = {"event_id": pa.array(ids, pa.string())}
    if labels is not None:
        columns["label"] = pa.array(np.asarray(labels, np.int8), pa.int8())
    columns.update(
        {f"p_{name}": pa.array(probabilities[:, c], pa.float32()) for c, name in enumerate(schema.CLASS_NAMES)}
    )
    predicted = np.asarray(schema.CLASS_NAMES)[probabilities.argmax(axis=1)] if len(probabilities) else []
    columns["predicted"] = pa.array(predicted, pa.string())
    return pa.table(columns)
