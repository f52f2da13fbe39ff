"""Physics metrics of a classifier and the promotion rules built on them.

``physics_metrics``: per class one-vs-rest AUC (and the ROC curve points),
accuracy, the row-normalised confusion matrix, and for tt̄ and W+jets the
background false-positive rate at the threshold that keeps 99 % of that
signal. ``summarise`` turns them into the promotion metrics (``METRICS``);
``lower_is_better`` and ``_better`` say which of two scores wins.

Light on purpose (NumPy and scikit-learn are imported when used): Airflow
imports ``METRICS`` when it parses the DAGs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tasks.core import schema

if TYPE_CHECKING:
    import numpy as np

SIGNAL_EFFICIENCY = 0.99
SIGNALS = ("ttbar", "wjets")
METRICS = ("mean_auc", "auc_qcd", "auc_ttbar", "auc_wjets", "fpr99_ttbar", "fpr99_wjets", "accuracy")
"""Promotion metrics; fpr99_* (background rate at 99 % signal efficiency) are
better when lower, the others when higher."""


def physics_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict:
    """Metrics of class probabilities (n, 3) against integer labels (n,)."""
    import numpy as np
    from sklearn.metrics import roc_auc_score, roc_curve

    n_classes = len(schema.CLASS_NAMES)
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((n_classes, n_classes))
    np.add.at(confusion, (labels, predicted), 1)
    confusion = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    out: dict = {
        "events": int(len(labels)),
        "accuracy": float((predicted == labels).mean()),
        "confusion_matrix": confusion.round(6).tolist(),
        "classes": {},
    }
    for c, name in enumerate(schema.CLASS_NAMES):
        is_class = labels == c
        score = probabilities[:, c]
        fpr, tpr, _ = roc_curve(is_class, score)
        entry = {"auc": float(roc_auc_score(is_class, score)), "roc": _thin(fpr, tpr)}
        if name in SIGNALS:
            # The score cut that keeps 99 % of the signal, and what it lets through of the rest.
            threshold = float(np.quantile(score[is_class], 1.0 - SIGNAL_EFFICIENCY, method="lower"))
            entry["threshold_at_99pct_signal"] = threshold
            entry["signal_efficiency"] = float((score[is_class] >= threshold).mean())
            entry["background_fpr_at_99pct_signal"] = float((score[~is_class] >= threshold).mean())
        out["classes"][name] = entry
    return out


def _thin(fpr: np.ndarray, tpr: np.ndarray, points: int = 200) -> dict:
    """At most ``points`` points of a ROC curve, enough to draw it."""
    import numpy as np

    idx = np.unique(np.linspace(0, len(fpr) - 1, min(points, len(fpr))).astype(int))
    return {"fpr": fpr[idx].round(6).tolist(), "tpr": tpr[idx].round(6).tolist()}


def summarise(metrics: dict) -> dict[str, float]:
    """The promotion metrics of an evaluation (``physics_metrics``)."""
    classes = metrics["classes"]
    aucs = [c["auc"] for c in classes.values()]
    out = {"accuracy": metrics["accuracy"], "mean_auc": float(sum(aucs) / len(aucs))}
    for name, c in classes.items():
        out[f"auc_{name}"] = c["auc"]
        if "background_fpr_at_99pct_signal" in c:
            out[f"fpr99_{name}"] = c["background_fpr_at_99pct_signal"]
    return out


def lower_is_better(metric: str) -> bool:
    return metric.startswith("fpr99_")


def _better(metric: str, challenger: float, champion: float, margin: float) -> bool:
    """Strictly better by more than ``margin``: a tie keeps the champion."""
    if lower_is_better(metric):
        return challenger < champion - margin
    return challenger > champion + margin
