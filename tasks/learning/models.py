"""The classifiers of docs/spec.md as pure Keras builders (no data, no training).

- ``hlf``: Dense 50 → 20 → 10 (ReLU) → 3 softmax on HLF_input.
- ``gru``: Masking → GRU(50) → Dense 3 softmax on GRU_input (the particle-
  sequence classifier).
- ``inclusive``: [Masking → GRU(50) → Dropout 0.2] ⊕ [HLF_input → Dropout 0.2]
  → Dense 25 ReLU → Dense 3 softmax.
- ``inclusive_lstm``: the same with an LSTM(50), as in SparkDLTrigger's later notebooks.
- ``inclusive_transformer``: the particle branch as a small Transformer encoder
  (masked self-attention, masked mean pooling) instead of the GRU.

The GRU and LSTM keep Keras' defaults (tanh, sigmoid recurrent activation, no
recurrent dropout, reset_after), which is what lets them run on the cuDNN
kernel on a GPU; the padding rows are at the end and exactly zero, so the
Masking layer's mask is right-padded, which cuDNN requires. The output layer
is float32 even under mixed precision.

The hyperparameter search (tasks/learning/tuning.py) varies an
``Architecture`` (tasks/learning/architectures.py): the widths of the dense
hidden layers, their activation, and the width of the recurrent layer.
``Architecture()`` is the paper's model. Which models exist, their inputs and
their builder here: tasks/learning/records.py.
"""

from __future__ import annotations

import keras
from keras import ops

from tasks.core import schema
from tasks.learning.architectures import Architecture
from tasks.learning.records import model_record

N_CLASSES = len(schema.CLASS_NAMES)


def _dense_stack(x, widths: tuple[int, ...], activation: str):
    for units in widths:
        x = keras.layers.Dense(units, activation=activation)(x)
    return x


@keras.saving.register_keras_serializable(package="topo")
class RealParticles(keras.layers.Layer):
    """True for the rows that are particles, False for the zero padding."""

    def call(self, particles):
        return ops.any(ops.not_equal(particles, 0.0), axis=-1)


@keras.saving.register_keras_serializable(package="topo")
class PairMask(keras.layers.Layer):
    """(batch, n, n) attention mask: both particles real."""

    def call(self, real):
        return ops.logical_and(real[:, None, :], real[:, :, None])


@keras.saving.register_keras_serializable(package="topo")
class MaskedMean(keras.layers.Layer):
    """Mean over the real particles only."""

    def call(self, values, real):
        weights = ops.cast(real, values.dtype)[..., None]
        return ops.sum(values * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)


def _particles():
    # Any number of rows, not just the 801 of the paper's padding: a batch cut
    # to its longest real sequence (the rest is zero padding the mask skips)
    # scores the same and trains faster; the published 801-row inputs still fit.
    return keras.Input((None, schema.LLF_FEATURES), name="GRU_input")


def _hlf():
    return keras.Input((schema.HLF_FEATURES,), name="HLF_input")


def _softmax(x):
    return keras.layers.Dense(N_CLASSES, activation="softmax", dtype="float32", name="class_probabilities")(x)


def build_hlf_model(arch: Architecture = Architecture()) -> keras.Model:
    hlf = _hlf()
    x = _dense_stack(hlf, arch.hidden_of(model_record("hlf").hidden), arch.activation)
    return keras.Model(hlf, _softmax(x), name="hlf")


def build_gru_model(arch: Architecture = Architecture()) -> keras.Model:
    particles = _particles()
    x = keras.layers.Masking(mask_value=0.0)(particles)
    x = keras.layers.GRU(arch.recurrent_units, activation="tanh", name="gru")(x)
    x = _dense_stack(x, arch.hidden_of(model_record("gru").hidden), arch.activation)
    return keras.Model(particles, _softmax(x), name="gru")


def _transformer_branch(particles, d_model: int = 16, heads: int = 2, blocks: int = 1):
    """Self-attention over n rows costs O(n²) per event (n up to 801): kept small.
    No positional encoding: the ΔR order is in the features themselves."""
    real = RealParticles(name="real_particles")(particles)
    pair_mask = PairMask(name="pair_mask")(real)
    x = keras.layers.Dense(d_model, name="embed")(particles)
    for i in range(blocks):
        a = keras.layers.MultiHeadAttention(heads, d_model // heads, name=f"attention_{i}")(
            x, x, attention_mask=pair_mask
        )
        x = keras.layers.LayerNormalization(name=f"norm_a{i}")(x + a)
        f = keras.layers.Dense(2 * d_model, activation="relu", name=f"ff_in_{i}")(x)
        f = keras.layers.Dense(d_model, name=f"ff_out_{i}")(f)
        x = keras.layers.LayerNormalization(name=f"norm_f{i}")(x + f)
    return MaskedMean(name="masked_mean")(x, real)


def build_inclusive_model(
    recurrent: str = "gru", arch: Architecture = Architecture(), dropout: float = 0.2
) -> keras.Model:
    """The inclusive classifier; ``recurrent`` is gru, lstm or transformer."""
    particles, hlf = _particles(), _hlf()
    if recurrent == "transformer":
        x = _transformer_branch(particles)
    else:
        masked = keras.layers.Masking(mask_value=0.0)(particles)
        layer = {"gru": keras.layers.GRU, "lstm": keras.layers.LSTM}[recurrent]
        x = layer(arch.recurrent_units, activation="tanh", name=recurrent)(masked)
    x = keras.layers.Dropout(dropout)(x)
    h = keras.layers.Dropout(dropout)(hlf)
    x = keras.layers.Concatenate()([x, h])
    name = "inclusive" if recurrent == "gru" else f"inclusive_{recurrent}"
    x = _dense_stack(x, arch.hidden_of(model_record(name).hidden), arch.activation)
    return keras.Model([particles, hlf], _softmax(x), name=name)


def build_inclusive_lstm_model(arch: Architecture = Architecture()) -> keras.Model:
    return build_inclusive_model("lstm", arch)


def build_inclusive_transformer_model(arch: Architecture = Architecture()) -> keras.Model:
    return build_inclusive_model("transformer", arch)


def build_model(name: str, arch: Architecture = Architecture()):
    """A fresh, uncompiled model by name (tasks.learning.records.MODELS), the paper's unless ``arch`` says otherwise."""
    builder = globals()[model_record(name).builder]
    return builder(arch=arch)
