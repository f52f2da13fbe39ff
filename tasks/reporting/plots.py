"""The plots of the report pages, as PNG bytes (tasks.reporting.page embeds them).

A model's curves come from its evaluation: ``scores.npz`` (labels and class
probabilities of every test event), so the curves are exact at high signal
efficiency, where the trigger works, rather than the 200 thinned points of
``metrics.json``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tasks.core import schema

LABELS = {"qcd": "QCD", "ttbar": "tt̄", "wjets": "W+jets"}
WORKING_POINT = 0.99
"""The signal efficiency the trigger use asks for: keep ~all interesting events."""
SIGNALS = ("ttbar", "wjets")


@dataclass(frozen=True)
class Curve:
    fpr: np.ndarray
    tpr: np.ndarray
    auc: float


def curves_of(scores_file: Path) -> dict[str, Curve]:
    """One-vs-rest ROC of each class from an evaluation's ``scores.npz``."""
    from sklearn.metrics import roc_auc_score, roc_curve

    with np.load(scores_file) as data:
        labels, probabilities = data["labels"], data["probabilities"]
    out = {}
    for k, name in enumerate(schema.CLASS_NAMES):
        is_class = labels == k
        if is_class.all() or not is_class.any():
            continue  # one class only: no curve
        fpr, tpr, _ = roc_curve(is_class, probabilities[:, k])
        out[name] = Curve(fpr, tpr, float(roc_auc_score(is_class, probabilities[:, k])))
    return out


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on workers
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def roc_overlay(curves: dict[str, dict[str, Curve]]) -> bytes:
    """Per class, the ROC curve of every model, overlaid."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(schema.CLASS_NAMES), figsize=(14, 4.6))
    for ax, name in zip(axes, schema.CLASS_NAMES, strict=True):
        for model, by_class in curves.items():
            if name in by_class:
                c = by_class[name]
                ax.plot(c.fpr, c.tpr, label=f"{model} (AUC {c.auc:.4f})")
        ax.plot([0, 1], [0, 1], ls=":", c="grey")
        ax.set(
            xscale="log",
            xlim=(1e-4, 1),
            ylim=(0, 1.01),
            xlabel="background efficiency (false-positive rate)",
            ylabel="signal efficiency",
            title=f"{LABELS[name]} vs rest",
        )
        ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def rejection(curves: dict[str, dict[str, Curve]], fpr99: dict[str, dict[str, float | None]]) -> bytes:
    """Background rejection (1 / FPR, log scale) against signal efficiency for the
    trigger signals, with the 99 % working point of each model marked."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(SIGNALS), figsize=(12, 4.6))
    for ax, name in zip(axes, SIGNALS, strict=True):
        for model, by_class in curves.items():
            if name not in by_class:
                continue
            c = by_class[name]
            keep = (c.tpr >= 0.5) & (c.fpr > 0)
            (line,) = ax.plot(c.tpr[keep], 1 / c.fpr[keep], label=model)
            rate = fpr99.get(model, {}).get(name)
            if rate:
                ax.plot([WORKING_POINT], [1 / rate], "o", color=line.get_color())
                ax.annotate(
                    f"{rate:.3f}", (WORKING_POINT, 1 / rate), textcoords="offset points", xytext=(-36, 4), fontsize=8
                )
        ax.axvline(WORKING_POINT, ls="--", c="grey", lw=1)
        ax.set(
            yscale="log",
            xlim=(0.5, 1.0),
            xlabel=f"{LABELS[name]} signal efficiency",
            ylabel="background rejection (1 / FPR)",
            title=f"{LABELS[name]}: rejection, {WORKING_POINT:.0%} working point dashed",
        )
        ax.legend(loc="upper right", fontsize=8)
    return _png(fig)


def training_curves(histories: dict[str, dict]) -> bytes:
    """Loss and accuracy per epoch of each model: validation solid, training dashed."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for model, history in histories.items():
            epochs = sorted(history, key=int)
            x = [int(e) + 1 for e in epochs]
            (line,) = ax.plot(x, [history[e].get("val_" + metric, np.nan) for e in epochs], marker="o", label=model)
            ax.plot(x, [history[e].get(metric, np.nan) for e in epochs], ls="--", color=line.get_color())
        ax.set(xlabel="epoch", ylabel=metric, title=f"{metric} per epoch (validation solid, training dashed)")
        ax.legend(fontsize=8)
    return _png(fig)


def trial_scores(indices: list[int], scores: list[float], metric: str, best: int) -> bytes:
    """The score of each trial of a search, the best one marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    colours = ["#d62728" if i == best else "#1f77b4" for i in indices]
    ax.bar([str(i) for i in indices], scores, color=colours)
    ax.set(xlabel="trial", ylabel=metric, title=f"{metric} of each trial (best in red)")
    low, high = min(scores), max(scores)
    pad = (high - low) * 0.2 or 0.01
    ax.set_ylim(low - pad, high + pad)
    return _png(fig)
