"""The classifiers this project knows, one record each: the single list every
other module derives model names, inputs, paper architecture and published
numbers from.

Light on purpose (no Keras, no TensorFlow): Airflow imports it when it parses
the DAGs. A record names its builder in tasks/learning/models.py as a string,
which models.build_model resolves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from tasks.core.errors import SettingsError

Inputs = Literal["hlf", "gru", "inclusive"]
"""The feed inputs a model takes: the keys of tasks.datasets.readers.INPUTS."""

_HLF_AUC = MappingProxyType({"qcd": 0.987, "ttbar": 0.985, "wjets": 0.981})
_INCLUSIVE_AUC = MappingProxyType({"qcd": 0.995, "ttbar": 0.997, "wjets": 0.995})
# Nguyen et al. 2018, on 3.4 M simulated events (QCD, tt̄, W+jets); the
# LSTM and Transformer variants are compared against the inclusive numbers.


@dataclass(frozen=True)
class ModelRecord:
    name: str
    inputs: Inputs
    builder: str  # the name of its builder function in tasks/learning/models.py
    hidden: tuple[int, ...]  # the paper's dense hidden layer widths (after the recurrent layer, if any)
    published_auc: MappingProxyType | None = field(default=None, hash=False)  # class → AUC; None: not published
    description: str = ""


MODELS: dict[str, ModelRecord] = {
    r.name: r
    for r in (
        ModelRecord(
            "hlf",
            "hlf",
            "build_hlf_model",
            (50, 20, 10),
            _HLF_AUC,
            "Dense 50 → 20 → 10 (ReLU) → 3 softmax on the 14 high-level features.",
        ),
        ModelRecord(
            "gru", "gru", "build_gru_model", (), None, "Masking → GRU(50) → 3 softmax on the particle sequence."
        ),
        ModelRecord(
            "inclusive",
            "inclusive",
            "build_inclusive_model",
            (25,),
            _INCLUSIVE_AUC,
            "GRU(50) on the particle sequence ⊕ the high-level features → Dense 25 → 3 softmax.",
        ),
        ModelRecord(
            "inclusive_lstm",
            "inclusive",
            "build_inclusive_lstm_model",
            (25,),
            _INCLUSIVE_AUC,
            "The inclusive classifier with an LSTM(50) instead of the GRU.",
        ),
        ModelRecord(
            "inclusive_transformer",
            "inclusive",
            "build_inclusive_transformer_model",
            (25,),
            _INCLUSIVE_AUC,
            "The inclusive classifier with a small Transformer encoder over the particles.",
        ),
    )
}
MODEL_NAMES: tuple[str, ...] = tuple(MODELS)


def model_record(name: str) -> ModelRecord:
    """The record of model ``name``; a SettingsError naming the known ones otherwise."""
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise SettingsError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}") from None
