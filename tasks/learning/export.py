"""A trained model in the forms that leave the project: a TensorFlow
SavedModel (TF Serving, TFX) and ONNX (ONNX Runtime, C++ trigger code), with
what a consumer needs to feed them beside them.

An export directory holds:

- ``saved_model/``: ``model.export(format="tf_saved_model")``, serving
  signature ``serve`` with the model's named inputs;
- ``model.onnx``: the same graph through tf2onnx, inputs ``HLF_input``
  (events × 14) and/or ``GRU_input`` (events × particles × 19, any number of
  particles, zero rows are padding), output ``probabilities`` (events × 3,
  in ``classes`` order);
- ``scaler.json``: the standardisation the inputs must go through first
  (the model was trained on scaled features; tasks.datasets.scaling);
- ``features.json``: the inputs, their shapes and their feature order, the
  class order, the ordering of the particles, and the parity measured at
  export;
- ``training.json``: the training record, unchanged.

The export checks itself: it scores synthetic events (standard-normal
features, a random number of real particles) with Keras and with ONNX
Runtime and refuses to write anything if they differ by more than
``PARITY_TOLERANCE``.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np

from tasks.core import schema
from tasks.core.errors import TopoError
from tasks.core.storage import atomic_directory, read_json, write_json
from tasks.datasets.readers import input_names, model_input

log = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
SAVED_MODEL_DIR = "saved_model"
FEATURES_FILE = "features.json"
OPSET = 17  # ONNX Runtime 1.16+ and most C++ runtimes in HEP software stacks read it
PARITY_TOLERANCE = 1e-5  # largest |p_keras - p_onnx| accepted, per class probability
PARITY_EVENTS = 256
OUTPUT_NAME = "probabilities"


class ExportError(TopoError):
    """The model could not be exported faithfully."""


def input_shapes(inputs: str) -> dict[str, list[int | None]]:
    """Each named input's shape, None where any size goes (events, particles)."""
    shapes = {"HLF_input": [None, schema.HLF_FEATURES], "GRU_input": [None, None, schema.LLF_FEATURES]}
    return {name: shapes[name] for name in input_names(inputs)}


def features_record(inputs: str) -> dict:
    """What a consumer outside the project must know to feed the exported model."""
    columns = {"HLF_input": list(schema.HLF_COLUMNS), "GRU_input": list(schema.LLF_COLUMNS)}
    return {
        "inputs": {name: {"shape": shape, "features": columns[name]} for name, shape in input_shapes(inputs).items()},
        "output": {"name": OUTPUT_NAME, "classes": list(schema.CLASS_NAMES)},
        "scaling": "standardise with scaler.json first: (x - mean) / std per feature (tasks.datasets.scaling)",
        "particles": (
            "GRU_input rows: the particles ordered as tasks.datasets.prepare.order_particles orders them "
            f"(at most {schema.LLF_ROWS}), then zero rows as padding"
        ),
    }


def mlflow_signature(inputs: str):
    """The model's signature for MLflow: named float32 tensors in, class probabilities out."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    def spec(name, shape):
        return TensorSpec(np.dtype(np.float32), tuple(-1 if d is None else d for d in shape), name)

    return ModelSignature(
        inputs=Schema([spec(n, shape) for n, shape in input_shapes(inputs).items()]),
        outputs=Schema([spec(OUTPUT_NAME, [None, len(schema.CLASS_NAMES)])]),
    )


def synthetic_events(inputs: str, n: int = PARITY_EVENTS, particles: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    """Scaled-looking inputs: standard-normal features, each event with a random
    number of real particles followed by zero padding."""
    rng = np.random.default_rng(seed)
    events = {}
    for name, shape in input_shapes(inputs).items():
        dims = [n if i == 0 else (particles if d is None else d) for i, d in enumerate(shape)]
        x = rng.standard_normal(dims).astype(np.float32)
        if name == "GRU_input":
            real = rng.integers(1, particles + 1, size=n)
            x[np.arange(particles)[None, :] >= real[:, None]] = 0.0
        events[name] = x
    return events


def keras_probabilities(model, inputs: str, events: dict[str, np.ndarray]) -> np.ndarray:
    return np.asarray(model.predict_on_batch(model_input(inputs, events.get("GRU_input"), events.get("HLF_input"))))


def onnx_session(path: str | Path):
    """An ONNX Runtime session on the CPU (no TensorFlow imported)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # warnings about unused initialisers are not the user's business
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_probabilities(session, events: dict[str, np.ndarray]) -> np.ndarray:
    return session.run([OUTPUT_NAME], {i.name: events[i.name] for i in session.get_inputs()})[0]


def _to_onnx(model, inputs: str, path: Path) -> None:
    import tensorflow as tf
    import tf2onnx

    names = input_names(inputs)
    specs = [tf.TensorSpec(input_shapes(inputs)[n], tf.float32, name=n) for n in names]

    @tf.function
    def probabilities(*tensors):
        return {OUTPUT_NAME: model(list(tensors) if len(tensors) > 1 else tensors[0], training=False)}

    proto, _ = tf2onnx.convert.from_function(probabilities, input_signature=specs, opset=OPSET)
    path.write_bytes(proto.SerializeToString())


def export(model_dir: str | Path, output: str | Path) -> dict:
    """Write the SavedModel, ONNX, scaler and feature record of the model in
    ``model_dir`` (a directory of topo train) to ``output``, atomically."""
    import keras

    import tasks.learning.models  # noqa: F401  registers the custom layers

    model_dir, output = Path(model_dir), Path(output)
    for needed in ("model.keras", "scaler.json", "training.json"):
        if not (model_dir / needed).exists():
            raise ExportError(f"{model_dir} is not a trained model directory: {needed} is missing")
    training = read_json(model_dir / "training.json")
    inputs = training["inputs"]
    started = time.perf_counter()
    model = keras.models.load_model(model_dir / "model.keras")
    with atomic_directory(output) as tmp:
        log.info("exporting %s from %s: SavedModel", training["model"], model_dir)
        model.export(str(tmp / SAVED_MODEL_DIR), format="tf_saved_model", verbose=False)
        log.info("exporting %s: ONNX (opset %d, tf2onnx)", training["model"], OPSET)
        _to_onnx(model, inputs, tmp / ONNX_FILE)
        events = synthetic_events(inputs)
        difference = float(
            np.abs(
                keras_probabilities(model, inputs, events) - onnx_probabilities(onnx_session(tmp / ONNX_FILE), events)
            ).max()
        )
        if not difference <= PARITY_TOLERANCE:
            raise ExportError(
                f"{model_dir}: ONNX and Keras disagree by {difference:.2e} on {PARITY_EVENTS} synthetic events "
                f"(tolerance {PARITY_TOLERANCE:.0e}); nothing written to {output}"
            )
        shutil.copy2(model_dir / "scaler.json", tmp / "scaler.json")
        shutil.copy2(model_dir / "training.json", tmp / "training.json")
        record = features_record(inputs) | {
            "model": training["model"],
            "opset": OPSET,
            "parity": {"events": PARITY_EVENTS, "max_abs_difference": difference, "tolerance": PARITY_TOLERANCE},
        }
        write_json(tmp / FEATURES_FILE, record)
    seconds = time.perf_counter() - started
    log.info("exported %s to %s in %.1f s (ONNX vs Keras: %.1e)", training["model"], output, seconds, difference)
    return {
        "output": str(output),
        "model": training["model"],
        "onnx": str(output / ONNX_FILE),
        "saved_model": str(output / SAVED_MODEL_DIR),
        "max_abs_difference": difference,
        "seconds": round(seconds, 1),
    }
