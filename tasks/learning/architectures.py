"""What a hyperparameter search varies of a model: ``Architecture``.

``Architecture()`` is the paper's model: its dense hidden layers are the
record's (tasks.learning.records.ModelRecord.hidden) unless ``hidden`` says
otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks.core.errors import SettingsError

ACTIVATIONS = ("relu", "tanh", "elu", "selu", "sigmoid", "gelu")


@dataclass(frozen=True)
class Architecture:
    """What the grid varies of a model; the defaults are the paper's model."""

    hidden: tuple[int, ...] | None = None  # dense hidden layer widths; None: the model record's (paper) widths
    activation: str = "relu"
    recurrent_units: int = 50

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise SettingsError(f"unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        if self.recurrent_units < 1 or any(int(w) < 1 for w in self.hidden or ()):
            raise SettingsError(
                f"layer widths must be at least 1: hidden {self.hidden}, recurrent_units {self.recurrent_units}"
            )

    def hidden_of(self, paper: tuple[int, ...]) -> tuple[int, ...]:
        """The dense hidden layer widths: ours if set, else ``paper`` (a record's ``hidden``)."""
        return tuple(self.hidden) if self.hidden is not None else tuple(paper)
